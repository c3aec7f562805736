"""The AWS flows over HTTP against a local moto server (127.0.0.1, a free port; see conftest.py):
upload (objects read back), push, tune (create, wait, best job), train, deploy, invoke, endpoint metrics,
cleanup. moto accepts the requests and keeps state; its jobs finish at once."""
from __future__ import annotations

import hashlib
import json
import shutil
import urllib.request
from datetime import datetime, timezone

import pytest
from PIL import Image

from aws_support import ACCOUNT, BUCKET, REGION, TAG, moto_backend, put_images
from scripts import job_definition, orchestration
from scripts.aws import (
    cleanup,
    deploy,
    endpoint_metrics,
    invoke_endpoint,
    push_images,
    train,
    training_job,
    tune,
    upload_data,
)

PREFIX = "byoc-classifier/data/set/"


def image_set(root, classes=("a_cat", "b_dog", "c_fox"), per_split=2):
    for split in ("train", "valid", "test"):
        for index, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for n in range(per_split):
                Image.new("RGB", (8, 8), (index * 80, n * 60, 0)).save(folder / f"{n}.{'png' if n else 'jpg'}")
    return root


def test_upload_data_syncs_and_reads_back(moto, tmp_path, settings_path, capsys):
    data = image_set(tmp_path / "set")
    weights = tmp_path / "resnet50.pth"
    weights.write_bytes(b"w" * (upload_data.PART_SIZE + 1024))  # above the part size: a multipart upload
    argv = ["--settings", str(settings_path), "--data", str(data), "--weights", str(weights)]
    assert upload_data.main(argv) == 0
    assert "uploaded 19 file(s)" in capsys.readouterr().out
    s3 = moto.client("s3")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX)["Contents"])
    assert len(keys) == 19 and PREFIX + "train/a_cat/0.jpg" in keys and PREFIX + "weights/resnet50.pth" in keys
    for relative in ("train/a_cat/0.jpg", "test/c_fox/1.png", "weights/resnet50.pth"):
        local = (weights if relative.startswith("weights") else data / relative).read_bytes()
        got = s3.get_object(Bucket=BUCKET, Key=PREFIX + relative)
        assert got["Body"].read() == local
        assert got["Metadata"]["md5"] == hashlib.md5(local).hexdigest()
    assert s3.head_object(Bucket=BUCKET, Key=PREFIX + "test/c_fox/1.png")["ContentType"] == "image/png"
    assert s3.head_object(Bucket=BUCKET, Key=PREFIX + "weights/resnet50.pth")["ETag"].strip('"').endswith("-2")

    assert upload_data.main(argv) == 0  # nothing changed: nothing sent (the multipart ETag matches too)
    assert "uploaded 0 file(s) (0.0 MiB); 19 unchanged" in capsys.readouterr().out

    Image.new("RGB", (9, 9)).save(data / "valid" / "b_dog" / "0.jpg")
    s3.put_object(Bucket=BUCKET, Key=PREFIX + "train/a_cat/stale.jpg", Body=b"old")
    assert upload_data.main(argv) == 0
    out = capsys.readouterr().out
    assert "uploaded 1 file(s)" in out and "1 object(s)" in out and "DELETE=1" in out
    uploaded = s3.get_object(Bucket=BUCKET, Key=PREFIX + "valid/b_dog/0.jpg")["Body"].read()
    assert uploaded == (data / "valid/b_dog/0.jpg").read_bytes()
    assert upload_data.main(argv + ["--delete"]) == 0
    assert "deleted 1 object(s)" in capsys.readouterr().out
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX + "train/a_cat/stale")


def empty_class(data):
    for path in (data / "valid" / "b_dog").iterdir():
        path.unlink()


def other_classes(data):
    (data / "test" / "c_fox").rename(data / "test" / "d_owl")


def no_valid(data):
    shutil.rmtree(data / "valid")


@pytest.mark.parametrize("breakage, words", [
    (empty_class, "channel 'valid' has 1 class folder(s) with no .jpg/.jpeg/.png images: b_dog"),
    (other_classes, "channel 'test' does not hold the same classes as 'train'"),
    (no_valid, "channel 'valid' not found"),
])
def test_upload_data_checks_the_layout_first(moto, tmp_path, settings_path, capsys, breakage, words):
    data = image_set(tmp_path / "set")
    breakage(data)
    assert upload_data.main(["--settings", str(settings_path), "--data", str(data)]) == 1
    assert words in capsys.readouterr().err
    assert "Contents" not in moto.client("s3").list_objects_v2(Bucket=BUCKET)  # nothing sent


def test_push_creates_scanned_repositories(moto):
    commands = []
    pushed = push_images.push(moto, "podman", [("byoc-classifier-training", "byoc-classifier-training"),
                                               ("byoc-classifier-serving", "byoc-classifier-serving")], TAG,
                              lambda command, stdin=None: commands.append((command, stdin)))
    repositories = moto.client("ecr").describe_repositories()["repositories"]
    assert sorted(r["repositoryName"] for r in repositories) == ["byoc-classifier-serving", "byoc-classifier-training"]
    assert all(r["imageScanningConfiguration"]["scanOnPush"] and r["imageTagMutability"] == "MUTABLE"
               for r in repositories)
    login, stdin = commands[0]
    assert login[:5] == ["podman", "login", "--username", "AWS", "--password-stdin"] and stdin
    assert len(pushed) == 4 and pushed[0].endswith(f"/byoc-classifier-training:{TAG}")
    push_images.push(moto, "podman", [("byoc-classifier-serving", "byoc-classifier-serving")], TAG,
                     lambda command, stdin=None: None)  # second time: repositories exist, nothing created


def test_tune_create_wait_and_best_job(moto, use, tmp_path, capsys):
    use(moto, tune)
    put_images(moto, "byoc-classifier-training")
    s3 = moto.client("s3")
    for channel in ("train", "valid", "test"):
        s3.put_object(Bucket=BUCKET, Key=f"byoc-classifier/data/fashion-mnist/{channel}/a/0.jpg", Body=b"x")
    name = "img-clf-20260102-030405"
    assert tune.main(["--name", name, "--no-wait", "--no-cache"]) == 0  # with a feature job: test_shared_features
    created = moto.client("sagemaker").describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    definition = created["TrainingJobDefinition"]
    assert definition["StaticHyperParameters"] == job_definition.load().static_hyperparameters
    assert [c["ChannelName"] for c in definition["InputDataConfig"]] == ["train", "valid"]  # never test
    objective = created["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
    assert objective["MetricName"] == "best_valid_loss"

    # moto's best job is a placeholder: point it at a real (moto) training job, as SageMaker would
    best = f"{name}-002-abcdefgh"
    moto.client("sagemaker").create_training_job(
        TrainingJobName=best,
        HyperParameters={"lr": "0.02", "batch_size": "32", "epochs": "4",
                         "_tuning_objective_metric": "best_valid_loss"},
        AlgorithmSpecification={"TrainingImage": "img", "TrainingInputMode": "File"}, RoleArn=definition["RoleArn"],
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/byoc-classifier/output/"},
        ResourceConfig={"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 60})
    job = moto_backend("sagemaker").hyper_parameter_tuning_jobs[name]
    job.best_training_job.update({
        "TrainingJobName": best, "TunedHyperParameters": {"lr": "0.02", "batch_size": "32", "epochs": "4"},
        "FinalHyperParameterTuningJobObjectiveMetric": {"Type": "Minimize", "MetricName": "best_valid_loss",
                                                        "Value": 0.25}})
    assert tune.main(["--attach", name]) == 0
    out = capsys.readouterr().out
    assert f"best training job: {best}" in out and "best_valid_loss = 0.25" in out
    assert f"s3://{BUCKET}/byoc-classifier/output/{best}/output/model.tar.gz" in out

    # make train TUNING=<it>: the best job's hyperparameters, SageMaker's own key dropped, the recipe's on top
    use(moto, train)
    train_name = "img-clf-20260102-040000"
    assert train.main(["--tuning", name, "--name", train_name, "--no-wait"]) == 0
    hps = moto.client("sagemaker").describe_training_job(TrainingJobName=train_name)["HyperParameters"]
    assert hps["batch_size"] == "32" and hps["epochs"] == "4" and "_tuning_objective_metric" not in hps
    assert {k: hps[k] for k in orchestration.FINE_TUNING} == orchestration.FINE_TUNING
    assert hps["model_name"] == "resnet50"


def test_train_streams_the_log_and_reports(moto, use, capsys):
    use(moto, train)
    put_images(moto, "byoc-classifier-training")
    s3 = moto.client("s3")
    for channel in ("train", "valid", "test"):
        s3.put_object(Bucket=BUCKET, Key=f"byoc-classifier/data/fashion-mnist/{channel}/a/0.jpg", Body=b"x")
    name = "img-clf-20260102-050000"
    logs = moto.client("logs")
    logs.create_log_group(logGroupName=training_job.LOG_GROUP)
    logs.create_log_stream(logGroupName=training_job.LOG_GROUP, logStreamName=f"{name}/algo-1-1767330000")
    now = int(datetime.now(timezone.utc).timestamp() * 1000)
    logs.put_log_events(logGroupName=training_job.LOG_GROUP, logStreamName=f"{name}/algo-1-1767330000", logEvents=[
        {"timestamp": now, "message": "[metrics] epoch=1 train_loss=0.61 valid_loss=0.52 valid_accuracy=0.81"},
        {"timestamp": now + 1, "message": "[metrics] test_loss=0.5 test_accuracy=0.8"}])
    assert train.main(["--hp", "lr=0.01 batch_size=16 epochs=1", "--name", name]) == 0
    out = capsys.readouterr().out
    assert "[metrics] epoch=1 train_loss=0.61" in out and "[metrics] test_loss=0.5" in out
    assert f"model artifact: s3://{BUCKET}/byoc-classifier/output/{name}/output/model.tar.gz" in out
    job = moto.client("sagemaker").describe_training_job(TrainingJobName=name)
    assert job["HyperParameters"]["lr"] == "0.01" and job["EnableManagedSpotTraining"] is True
    assert job["CheckpointConfig"]["S3Uri"] == f"s3://{BUCKET}/byoc-classifier/checkpoints/{name}/"
    assert [c["ChannelName"] for c in job["InputDataConfig"]] == ["train", "valid", "test"]


def test_deploy_invoke_metrics_cleanup(moto, moto_server, use, tmp_path, capsys, monkeypatch):
    use(moto, deploy, invoke_endpoint, endpoint_metrics, cleanup)
    moto.settings.values.update({"autoscaling": True, "data_capture": True})
    put_images(moto, "byoc-classifier-serving")
    sm = moto.client("sagemaker")
    job = "img-clf-20260101-000000"
    sm.create_training_job(
        TrainingJobName=job, AlgorithmSpecification={"TrainingImage": "img", "TrainingInputMode": "File"},
        RoleArn=moto.settings.role_arn, OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/byoc-classifier/output/"},
        ResourceConfig={"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 60})

    assert deploy.main([]) == 0  # no JOB=: the newest completed img-clf-* job
    assert "endpoint img-clf created" in capsys.readouterr().out
    endpoint = sm.describe_endpoint(EndpointName="img-clf")
    assert endpoint["EndpointStatus"] == "InService"
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    variant = config["ProductionVariants"][0]
    assert variant["InstanceType"] == "ml.m5.2xlarge" and variant["ModelName"] == endpoint["EndpointConfigName"]
    model = sm.describe_model(ModelName=variant["ModelName"])
    assert model["PrimaryContainer"]["Image"] == (f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/"
                                                  f"byoc-classifier-serving:{TAG}")
    assert model["PrimaryContainer"]["ModelDataUrl"] == f"s3://{BUCKET}/byoc-classifier/output/{job}/output/model.tar.gz"
    targets = moto.client("application-autoscaling").describe_scalable_targets(ServiceNamespace="sagemaker")
    assert [t["ResourceId"] for t in targets["ScalableTargets"]] == ["endpoint/img-clf/variant/AllTraffic"]

    # invoke through scripts/invoke.py (the one client); moto answers what we queue
    answer = {"predictions": [{"classes": [{"name": "b_dog", "index": 1, "probability": 0.9}]}]}
    queue = {"account_id": ACCOUNT, "region": REGION, "results": [
        {"Body": "", "ContentType": "application/json", "InvokedProductionVariant": "AllTraffic",
         "CustomAttributes": ""}]}
    pictures = [tmp_path / "dog.jpg", tmp_path / "cat.png"]  # two: one JSON request (moto's server cannot take
    for picture in pictures:                                  # a binary body; the Stubber tests cover image/jpeg)
        Image.new("RGB", (8, 8)).save(picture)
    answer["predictions"].append(answer["predictions"][0])
    queue["results"][0]["Body"] = json.dumps(answer)
    request = urllib.request.Request(f"{moto_server}/moto-api/static/sagemaker/endpoint-results",
                                     data=json.dumps(queue).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()
    assert invoke_endpoint.main([str(p) for p in pictures] + ["--top-k", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("1. b_dog") == 2 and "0.9000" in out and str(pictures[1]) in out

    cloudwatch = moto.client("cloudwatch")
    now = datetime.now(timezone.utc)
    dimensions = [{"Name": "EndpointName", "Value": "img-clf"}, {"Name": "VariantName", "Value": "AllTraffic"}]
    cloudwatch.put_metric_data(Namespace="AWS/SageMaker", MetricData=[
        {"MetricName": "Invocations", "Dimensions": dimensions, "Value": 7, "Timestamp": now},
        {"MetricName": "ModelLatency", "Dimensions": dimensions, "Value": 12000, "Timestamp": now}])
    assert endpoint_metrics.main([]) == 0
    out = capsys.readouterr().out
    assert "invocations" in out and " 7" in out and "12.0" in out

    assert cleanup.main([]) == 0
    out = capsys.readouterr().out
    assert "deleted endpoint img-clf" in out and "deleted model img-clf-" in out
    assert sm.list_endpoints()["Endpoints"] == [] and sm.list_models()["Models"] == []
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []
    targets = moto.client("application-autoscaling").describe_scalable_targets(ServiceNamespace="sagemaker")
    assert targets["ScalableTargets"] == []
    assert cleanup.main([]) == 0
    assert "nothing to delete" in capsys.readouterr().out
