"""mk/aws.mk: each make variable reaches its script as the right option; DRY_RUN=1 runs end to end."""
from __future__ import annotations

import shutil

import pytest

from aws_support import credential_free_env, make

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


@pytest.mark.parametrize("args, expected", [
    (["tune", "MAX_JOBS=8", "PARENT_TUNING=a b", "STRATEGY=Random", "HP=epochs=3", "DRY_RUN=1"],
     ["-m scripts.aws.tune --dry-run", "--parent 'a' --parent 'b'", "--max-jobs '8'", "--strategy 'Random'",
      "--hp 'epochs=3'", "IMAGE_TAG='abc1234'"]),
    (["tune", "TUNING=t1", "NO_WAIT=1"], ["--attach 't1'", "--no-wait"]),
    (["tune", "NO_CACHE=1"], ["-m scripts.aws.tune", "--no-cache"]),
    (["train", "TUNING=t1", "HP=best", "DATA_S3=s3://b/p/"], ["--tuning 't1'", "--hp 'best'", "--data-s3 's3://b/p/'"]),
    (["train", "HP=lr=0.1", "BACKBONE=resnet18"], ["--hp 'model_name=resnet18 lr=0.1'"]),
    (["deploy", "JOB=j1"], ["-m scripts.aws.deploy", "--job 'j1'"]),
    (["deploy", "MODEL_DATA=s3://b/m.tar.gz"], ["--model-data 's3://b/m.tar.gz'"]),
    (["deploy-finish", "DRY_RUN=1"], ["-m scripts.aws.deploy --dry-run --finish"]),
    (["tune", "PARENT_TUNING=p1 p2"], ["--parent 'p1' --parent 'p2' --warm-start-type 'auto'"]),
    (["upload-data", "DATA=some/dir", "WEIGHTS=w.pth", "DELETE=1"],
     ["--data 'some/dir'", "--weights 'w.pth'", "--delete"]),
    (["push"], ["--tag 'abc1234'", "--engine 'docker'", "--training-image 'byoc-classifier-training'"]),
    (["invoke", "IMAGE=a.jpg b.png", "TOP_K=3"], ["-m scripts.aws.invoke_endpoint 'a.jpg' 'b.png' --top-k '3'"]),
    (["endpoint-metrics", "MINUTES=15"], ["--minutes '15'"]),
    (["cleanup", "DRY_RUN=1"], ["-m scripts.aws.cleanup --dry-run"]),
    (["register", "TUNING=t1", "EVALUATION=e v.json", "APPROVE=1"],
     ["-m scripts.aws.registry register", "--tuning 't1'", "--evaluation 'e v.json' --approve"]),
    (["packages"], ["-m scripts.aws.registry packages"]),
    (["approve", "VERSION=3", "REJECT=1", "NOTE=it's worse"],
     ["-m scripts.aws.registry approve --version '3'", "--reject --note 'it'\\''s worse'"]),
    (["deploy", "PACKAGE=latest-approved", "FORCE=1", "LATENCY_MS=250", "DRY_RUN=1", "DRY_RUN_UPDATE=1"],
     ["--dry-run", "--package 'latest-approved' --force --latency-ms '250'", "--assume-exists"]),
    (["rollback", "FORCE=1", "NO_WAIT=1"], ["-m scripts.aws.rollback --no-wait --force"]),
    (["endpoint-logs", "FOLLOW=1"], ["-m scripts.aws.logs endpoint --minutes '60' --follow"]),
    (["training-logs", "JOB=img-clf-1"], ["-m scripts.aws.logs training 'img-clf-1'"]),
    (["training-logs", "JOB=j", "MINUTES=5"], ["'j'", "--minutes '5'"]),
    (["iam-policy", "OUT=my dir", "DRY_RUN=1"], ["-m scripts.aws.iam_policy --dry-run --out 'my dir'"]),
    (["bootstrap", "DRY_RUN=1"], ["-m scripts.aws.bootstrap --dry-run"]),
    (["teardown", "ALL=1", "YES=1"], ["-m scripts.aws.teardown --all", "--yes"]),
    (["teardown", "ALL=0"], ["-m scripts.aws.teardown"]),
])
def test_make_passes_variables(args, expected):
    result = make("-n", *args)
    assert result.returncode == 0, result.stderr
    command = " ".join(result.stdout.split())
    for piece in expected:
        assert piece in command, command


@pytest.mark.slow
def test_make_dry_run_end_to_end(tmp_path):
    env = credential_free_env(tmp_path)  # no credentials at all
    result = make("-s", "deploy", "DRY_RUN=1", "JOB=img-clf-20260101-000000", env=env)
    assert result.returncode == 0, result.stderr
    assert "sagemaker.CreateEndpoint {" in result.stdout and ":byoc-classifier-serving:abc1234" not in result.stdout
    assert "byoc-classifier-serving:abc1234" in result.stdout


@pytest.mark.slow
def test_make_tune_dry_run_shows_the_feature_job_and_the_estimate(tmp_path):
    env = credential_free_env(tmp_path)
    for split in ("train", "valid"):
        (tmp_path / "set" / split / "a").mkdir(parents=True)
        (tmp_path / "set" / split / "a" / "0.jpg").write_bytes(split.encode())
    result = make("-s", "tune", "DRY_RUN=1", f"DATA={tmp_path / 'set'}", env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "# estimate for 4 trials over 2 train+valid images" in out
    assert out.index('"CLASSIFIER_JOB": "features"') < out.index("sagemaker.CreateHyperParameterTuningJob {")
    assert '"InstanceType": "ml.m5.large"' in out.split("sagemaker.CreateHyperParameterTuningJob {")[1]
    plain = make("-s", "tune", "DRY_RUN=1", "NO_CACHE=1", f"DATA={tmp_path / 'set'}", env=env)
    assert plain.returncode == 0 and "CLASSIFIER_JOB" not in plain.stdout and "# estimate" not in plain.stdout


@pytest.mark.slow
def test_make_dry_run_shows_a_guarded_update_with_the_settings_from_the_command_line(tmp_path):
    """DRY_RUN=1 DRY_RUN_UPDATE=1: the update of an existing endpoint; DEPLOYMENT= and the other settings given
    to make reach the script as their environment variables."""
    env = credential_free_env(tmp_path)
    result = make("-s", "deploy", "DRY_RUN=1", "DRY_RUN_UPDATE=1", "JOB=img-clf-20260101-000000",
                  "DEPLOYMENT=canary", "ENDPOINT_INSTANCE_COUNT=2", env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "sagemaker.UpdateEndpoint {" in out and "sagemaker.CreateEndpoint {" not in out
    assert '"Type": "CANARY"' in out and out.count("cloudwatch.PutMetricAlarm {") == 2
    assert "# cost: realtime, 2 x ml.m5.2xlarge: 1,460 instance-hours a month" in out


@pytest.mark.slow  # several make runs of the dry runs end to end
def test_make_locked_down_targets_dry_run_end_to_end(tmp_path):
    """make iam-policy / bootstrap / teardown ALL=1 with DRY_RUN=1 and no credentials: the documents and the
    requests, nothing sent; the settings of a locked-down account given to make reach them."""
    env = credential_free_env(tmp_path)
    locked = ["NETWORK_SUBNETS=subnet-0123456789abcdef0", "NETWORK_SECURITY_GROUPS=sg-0123456789abcdef0",
              "NETWORK_ISOLATION=true", "KMS_KEY_ID=arn:aws:kms:us-east-1:123456789012:key/"
              "1234abcd-12ab-34cd-56ef-1234567890ab"]
    policy = make("-s", "iam-policy", "DRY_RUN=1", *locked, env=env)
    assert policy.returncode == 0, policy.stderr
    assert "# caller-policy.json" in policy.stdout and '"kms:GenerateDataKey"' in policy.stdout
    assert "arn:aws:s3:::<S3_BUCKET>/byoc-classifier/data/*" in policy.stdout
    boot = make("-s", "bootstrap", "DRY_RUN=1", *locked, env=env)
    assert boot.returncode == 0, boot.stderr
    assert "iam.CreateRole {" in boot.stdout and "s3.PutBucketEncryption {" in boot.stdout
    assert '"kmsKey": "arn:aws:kms:us-east-1:123456789012:key/' in boot.stdout
    down = make("-s", "teardown", "DRY_RUN=1", "ALL=1", env=env)
    assert down.returncode == 0, down.stderr
    assert "# then, once confirmed, the deletion of" in down.stdout and "ecr.DeleteRepository {" in down.stdout
