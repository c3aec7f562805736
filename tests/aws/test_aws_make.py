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
