"""DRY_RUN=1: every target prints the exact requests it would send, with no credentials at all, and sends
nothing."""
from __future__ import annotations

import json
import re

import pytest
from PIL import Image

from aws_support import write_settings
from scripts import orchestration
from scripts.aws import (
    cleanup,
    deploy,
    endpoint_metrics,
    invoke_endpoint,
    logs,
    push_images,
    registry,
    rollback,
    train,
    tune,
    upload_data,
)


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    """No credentials anywhere, a profile that does not exist, role and bucket unset."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_PROFILE", "nobody")
    path = write_settings(tmp_path / "settings.yaml", **{"aws.role_arn": "", "s3.bucket": "", "aws.profile": "nobody"})
    return ["--settings", str(path), "--dry-run"]


def first_requests(text: str) -> dict[str, dict]:
    """service.Operation -> the parameters of its first printed request (a dry run goes on through the wait)."""
    found: dict[str, dict] = {}
    for name, params in requests_in(text):
        found.setdefault(name, params)
    return found


def requests_in(text: str) -> list[tuple[str, dict]]:
    """(service.Operation, parameters) for each printed request."""
    found, decoder = [], json.JSONDecoder()
    for match in re.finditer(r"^([a-z0-9-]+\.[A-Z][A-Za-z0-9]+) (?=\{)", text, re.M):
        found.append((match.group(1), decoder.raw_decode(text, match.end())[0]))
    return found


@pytest.mark.slow
def test_tune_dry_run(no_credentials, capsys):
    assert tune.main(no_credentials + ["--name", "img-clf-20260102-030405", "--max-jobs", "6"]) == 0
    printed = requests_in(capsys.readouterr().out)
    names = [n for n, _ in printed]
    assert names[0] == "ecr.DescribeImages" and "sagemaker.CreateHyperParameterTuningJob" in names
    create = dict(printed)["sagemaker.CreateHyperParameterTuningJob"]
    assert create["HyperParameterTuningJobName"] == "img-clf-20260102-030405"
    assert create["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 6
    assert create["TrainingJobDefinition"]["RoleArn"] == "arn:aws:iam::<account-id>:role/<SAGEMAKER_ROLE_ARN>"
    assert create["TrainingJobDefinition"]["OutputDataConfig"]["S3OutputPath"].startswith("s3://<S3_BUCKET>/")
    # the job definition's static values fix the features: the feature job's request is shown first
    feature_job = dict(printed)["sagemaker.CreateTrainingJob"]
    assert names.index("sagemaker.CreateTrainingJob") < names.index("sagemaker.CreateHyperParameterTuningJob")
    assert feature_job["Environment"]["CLASSIFIER_JOB"] == "features"
    assert feature_job["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge"
    trials = create["TrainingJobDefinition"]
    assert [c["ChannelName"] for c in trials["InputDataConfig"]] == ["train", "valid", "feature_cache"]
    artifact = trials["InputDataConfig"][2]["DataSource"]["S3DataSource"]["S3Uri"]
    assert artifact == (feature_job["OutputDataConfig"]["S3OutputPath"] + feature_job["TrainingJobName"]
                        + "/output/model.tar.gz")
    assert trials["ResourceConfig"]["InstanceType"] == "ml.m5.large"

    assert tune.main(no_credentials + ["--name", "img-clf-20260102-030405", "--no-cache"]) == 0  # NO_CACHE=1
    printed = requests_in(capsys.readouterr().out)
    assert "sagemaker.CreateTrainingJob" not in dict(printed)
    trials = dict(printed)["sagemaker.CreateHyperParameterTuningJob"]["TrainingJobDefinition"]
    assert [c["ChannelName"] for c in trials["InputDataConfig"]] == ["train", "valid"]
    assert trials["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge"


@pytest.mark.slow
def test_train_dry_run_with_a_tuning_job(no_credentials, capsys):
    assert train.main(no_credentials + ["--tuning", "img-clf-20260101-000000", "--hp", "epochs=9"]) == 0
    printed = first_requests(capsys.readouterr().out)
    # the best trial is the core's choice among the listed trials (as in local mode)
    assert printed["sagemaker.ListTrainingJobsForHyperParameterTuningJob"] == {
        "HyperParameterTuningJobName": "img-clf-20260101-000000", "SortBy": "CreationTime",
        "SortOrder": "Ascending", "MaxResults": 100}
    assert printed["sagemaker.DescribeTrainingJob"] == {
        "TrainingJobName": "<best training job of img-clf-20260101-000000>"}
    hps = printed["sagemaker.CreateTrainingJob"]["HyperParameters"]
    assert hps["dropout"] == "<best dropout>" and hps["epochs"] == "9" and hps["model_name"] == "resnet50"
    assert hps["lr"] == orchestration.FINE_TUNING["lr"]  # the final job's fine-tuning rate, not the head's
    # the same with the word best, as make train-local takes it
    for hp in ("best", "best epochs=9"):
        assert train.main(no_credentials + ["--tuning", "img-clf-20260101-000000", "--hp", hp]) == 0
        hps = first_requests(capsys.readouterr().out)["sagemaker.CreateTrainingJob"]["HyperParameters"]
        assert hps["dropout"] == "<best dropout>" and hps.get("epochs") == ("9" if "epochs" in hp else "auto")
    assert train.main(no_credentials + ["--hp", "best"]) == 1
    assert "HP=best needs TUNING=" in capsys.readouterr().err


@pytest.mark.slow
def test_deploy_and_cleanup_dry_run(no_credentials, capsys):
    assert deploy.main(no_credentials + ["--job", "img-clf-20260101-000000"]) == 0
    names = [n for n, _ in requests_in(capsys.readouterr().out)]
    assert names == ["sagemaker.DescribeTrainingJob", "ecr.DescribeImages", "sagemaker.DescribeEndpoint",
                     "sagemaker.CreateModel", "sagemaker.CreateEndpointConfig", "sagemaker.CreateEndpoint",
                     "sagemaker.DescribeEndpoint"]  # then the wait until InService (one round)
    assert deploy.main(no_credentials + ["--finish"]) == 0  # make deploy-finish DRY_RUN=1
    names = [n for n, _ in requests_in(capsys.readouterr().out)]
    assert names == ["sagemaker.DescribeEndpoint", "sagemaker.DescribeEndpointConfig", "sagemaker.ListTags",
                     "sagemaker.AddTags", "sagemaker.ListEndpointConfigs", "sagemaker.ListModels"]
    assert cleanup.main(no_credentials) == 0
    names = [n for n, _ in requests_in(capsys.readouterr().out)]
    assert "sagemaker.DeleteEndpoint" in names and "sagemaker.DeleteModel" in names


def test_push_dry_run_shows_commands_without_password(no_credentials, capsys):
    assert push_images.main(no_credentials + ["--tag", "abc1234", "--engine", "none"]) == 0
    out = capsys.readouterr().out
    assert "ecr.GetAuthorizationToken" in out and "docker login --username AWS --password-stdin" in out
    assert "docker push <account-id>.dkr.ecr.us-east-1.amazonaws.com/byoc-classifier-serving:latest" in out
    assert "<token>" not in out


@pytest.mark.slow
def test_upload_invoke_and_metrics_dry_run(no_credentials, capsys, tmp_path):
    for split in ("train", "valid"):
        for cls in ("a", "b"):
            (tmp_path / "set" / split / cls).mkdir(parents=True)
            Image.new("RGB", (4, 4)).save(tmp_path / "set" / split / cls / "x.jpg")
    assert upload_data.main(no_credentials + ["--data", str(tmp_path / "set")]) == 0
    printed = requests_in(capsys.readouterr().out)
    puts = [p for n, p in printed if n == "s3.PutObject"]
    assert len(puts) == 4 and puts[0]["Key"] == "byoc-classifier/data/set/train/a/x.jpg"
    assert puts[0]["ContentType"] == "image/jpeg" and len(puts[0]["Metadata"]["md5"]) == 32
    assert invoke_endpoint.main(no_credentials + [str(tmp_path / "set" / "train" / "a" / "x.jpg")]) == 0
    request = first_requests(capsys.readouterr().out)["sagemaker-runtime.InvokeEndpoint"]
    assert request["EndpointName"] == "img-clf" and request["ContentType"] == "image/jpeg"
    assert endpoint_metrics.main(no_credentials) == 0
    request = first_requests(capsys.readouterr().out)["cloudwatch.GetMetricData"]
    assert len(request["MetricDataQueries"]) == 5


def test_dry_run_client_refuses_to_send(no_credentials):
    from scripts.aws import settings as S
    from scripts.aws.client import Aws

    aws = Aws(S.load(no_credentials[1]), dry_run=True)
    with pytest.raises(RuntimeError, match="dry run: refusing to send"):
        aws.client("sagemaker").list_endpoints()  # a direct client call, past Aws.call


@pytest.mark.slow
def test_without_dry_run_missing_profile_or_credentials_say_what_to_do(no_credentials, monkeypatch, tmp_path, capsys):
    real = [a for a in no_credentials if a != "--dry-run"]
    assert cleanup.main(real) == 1
    assert "AWS profile 'nobody' (aws.profile / AWS_PROFILE) is not in ~/.aws/config" in capsys.readouterr().err
    monkeypatch.delenv("AWS_PROFILE")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    path = write_settings(tmp_path / "plain.yaml")
    assert cleanup.main(["--settings", str(path)]) == 1
    err = capsys.readouterr().err
    assert "no AWS credentials found" in err and "DRY_RUN=1" in err


@pytest.mark.slow
def test_registry_rollback_and_logs_dry_runs(no_credentials, capsys, tmp_path):
    assert registry.main(["register"] + no_credentials + ["--job", "img-clf-20260101-000000"]) == 0
    names = [n for n, _ in requests_in(capsys.readouterr().out)]
    assert names == ["sagemaker.DescribeTrainingJob", "s3.GetObject", "s3.GetObject", "ecr.DescribeImages",
                     "sagemaker.DescribeModelPackageGroup", "sagemaker.CreateModelPackageGroup",  # (when missing)
                     "s3.PutObject", "sagemaker.CreateModelPackage"]
    assert registry.main(["packages"] + no_credentials) == 0
    assert [n for n, _ in requests_in(capsys.readouterr().out)][0] == "sagemaker.ListModelPackages"
    assert registry.main(["approve"] + no_credentials + ["--version", "latest-approved"]) == 0
    assert requests_in(capsys.readouterr().out)[-1][0] == "sagemaker.UpdateModelPackage"
    assert rollback.main(no_credentials) == 0
    names = [n for n, _ in requests_in(capsys.readouterr().out)]
    order = [names.index(n) for n in ("sagemaker.UpdateEndpoint", "sagemaker.AddTags", "sagemaker.DeleteModel")]
    assert order == sorted(order)  # the update, then what the endpoint serves recorded, then the old model gone
    assert logs.main(["endpoint"] + no_credentials) == 0
    request = first_requests(capsys.readouterr().out)["logs.FilterLogEvents"]
    assert request["logGroupName"] == "/aws/sagemaker/Endpoints/img-clf"


@pytest.mark.parametrize("endpoint_type, field", [("serverless", "ServerlessConfig"), ("async", None)])
def test_deploy_dry_run_of_each_endpoint_type(no_credentials, capsys, monkeypatch, endpoint_type, field):
    monkeypatch.setenv("ENDPOINT_TYPE", endpoint_type)
    assert deploy.main(no_credentials + ["--model-data", "s3://my-bucket/m/model.tar.gz"]) == 0
    out = capsys.readouterr().out
    config = first_requests(out)["sagemaker.CreateEndpointConfig"]
    if field:
        assert field in config["ProductionVariants"][0] and "InstanceType" not in config["ProductionVariants"][0]
        assert "# cost: serverless, 3072 MB" in out
    else:
        assert config["AsyncInferenceConfig"]["OutputConfig"]["S3OutputPath"] == (
            "s3://<S3_BUCKET>/byoc-classifier/async/img-clf/output")
        assert "application-autoscaling.RegisterScalableTarget" in out  # scale to zero, once InService
