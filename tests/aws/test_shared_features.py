"""Shared backbone features on SageMaker (make tune): one rule decides (orchestration.shared_features), a
feature job runs first or a stored cache for the same key is reused, and the trials get its model.tar.gz as
their feature_cache channel on the CPU instance type. Checked with the Stubber (every request against the
service models), against moto, and with the training container's feature-job mode for real."""
from __future__ import annotations

import json
import tarfile
from datetime import datetime, timezone

import pytest

from aws_support import (
    BUCKET,
    DATA_URI,
    FAKE_ARN,
    TRAINING_IMAGE,
    put_images,
    stub_channels,
    stub_image,
    training_description,
)
from helpers import FAST_HP, args
from scripts import job_definition, orchestration
from scripts.aws import api_requests, features, tune

NAME = "img-clf-20260102-030405"
MOMENT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
FEATURE_JOB = "features-img-clf-20260102-030405"
DATA_PREFIX = "byoc-classifier/data/fashion-mnist/"
ETAGS = {"train": ["a" * 32, "b" * 32, "c" * 32], "valid": ["d" * 32]}


# --- the rule ---------------------------------------------------------------------------------------------

def test_the_job_definition_shares_features_unless_they_vary_or_train():
    definition = job_definition.load()
    values = orchestration.shared_features(definition)
    assert values is not None and values["unfreeze_stages"] == "0" and values["model_name"] == "resnet50"
    assert orchestration.OBJECTIVE_KEY not in values and not set(values) & set(definition.tuned_names)
    for fixed in ({"unfreeze_stages": "1"}, {"augment": "true"}, {"freeze_backbone": "false"}, {"pretrained": "false"}):
        assert orchestration.shared_features(definition.with_overrides(hyperparameters=fixed)) is None, fixed
    raw = definition.to_dict()
    raw["hyperparameter_ranges"] = {**raw["hyperparameter_ranges"],
                                    "image_size": {"type": "Categorical", "values": ["160", "224"]}}
    raw["static_hyperparameters"] = {k: v for k, v in raw["static_hyperparameters"].items() if k != "image_size"}
    raw.pop("channels", None)
    tuned_size = job_definition.from_dict(raw, definition.path)
    assert orchestration.shared_features(tuned_size) is None  # each trial would need other features


def test_the_key_covers_model_image_size_code_weights_and_images():
    values = orchestration.shared_features(job_definition.load())
    key = orchestration.feature_cache_key(values, "img:1", [], ["x", "y"])
    assert key == orchestration.feature_cache_key(values, "img:1", [], ["y", "x"])  # contents, not their order
    assert key == orchestration.feature_cache_key({**values, "lr": "0.5", "debugger": "false"}, "img:1", [], ["x", "y"])
    others = [orchestration.feature_cache_key(values, "img:2", [], ["x", "y"]),
              orchestration.feature_cache_key(values, "img:1", ["w"], ["x", "y"]),
              orchestration.feature_cache_key(values, "img:1", [], ["x", "z"]),
              orchestration.feature_cache_key({**values, "image_size": "160"}, "img:1", [], ["x", "y"]),
              orchestration.feature_cache_key({**values, "model_name": "resnet18"}, "img:1", [], ["x", "y"])]
    assert len({key, *others}) == 6


# --- the sequence, stubbed -----------------------------------------------------------------------------------

def stub_listings(stubs, cache_objects: list[dict]):
    s3 = stubs("s3")
    for channel in ("train", "valid"):
        contents = [{"Key": f"{DATA_PREFIX}{channel}/c/{n}.jpg", "ETag": f'"{etag}"'}
                    for n, etag in enumerate(ETAGS[channel])]
        s3.add_response("list_objects_v2", {"Contents": contents, "KeyCount": len(contents)},
                        {"Bucket": BUCKET, "Prefix": f"{DATA_PREFIX}{channel}/"})
    key = features.key(orchestration.shared_features(job_definition.load()), TRAINING_IMAGE, ETAGS)
    s3.add_response("list_objects_v2", {"Contents": cache_objects, "KeyCount": len(cache_objects)},
                    {"Bucket": BUCKET, "Prefix": f"byoc-classifier/feature-cache/{key}/"})
    return key


def trial_fields(aws) -> dict:
    [request] = [params for _, api, params in aws.sent if api == "CreateHyperParameterTuningJob"]
    return request["TrainingJobDefinition"]


def test_make_tune_runs_the_feature_job_first_then_reuses_its_cache(stubbed, use, monkeypatch, capsys):
    aws, stubs = stubbed
    use(aws, tune)
    monkeypatch.setattr(orchestration, "utc_now", lambda: MOMENT)
    definition = job_definition.load()
    values = orchestration.shared_features(definition)
    stub_image(stubs, "byoc-classifier-training")
    stub_channels(stubs, checked=("train", "valid", "weights"))
    key = stub_listings(stubs, cache_objects=[])
    output = f"s3://{BUCKET}/byoc-classifier/feature-cache/{key}/"
    expected = api_requests.feature_job(definition, aws.settings, FEATURE_JOB, TRAINING_IMAGE, DATA_URI,
                                        ["train", "valid"], values, output)
    sm = stubs("sagemaker")
    sm.add_response("create_training_job", {"TrainingJobArn": FAKE_ARN}, expected)
    artifact = f"{output}{FEATURE_JOB}/output/model.tar.gz"
    done = training_description(FEATURE_JOB)
    done["ModelArtifacts"] = {"S3ModelArtifacts": artifact}
    sm.add_response("describe_training_job", training_description(FEATURE_JOB, "InProgress"),
                    {"TrainingJobName": FEATURE_JOB})
    sm.add_response("describe_training_job", done, {"TrainingJobName": FEATURE_JOB})
    tuning = api_requests.tuning_job(definition, aws.settings, NAME, TRAINING_IMAGE, DATA_URI, ["train", "valid"],
                                     feature_cache=artifact)
    sm.add_response("create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": FAKE_ARN}, tuning)

    assert tune.main(["--name", NAME, "--no-wait"]) == 0
    assert expected["Environment"]["CLASSIFIER_JOB"] == "features"
    assert expected["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge"  # the backbone pass: the GPU type
    assert "CheckpointConfig" not in expected and "test" not in [c["ChannelName"] for c in expected["InputDataConfig"]]
    trials = trial_fields(aws)
    assert trials["InputDataConfig"][-1] == {
        "ChannelName": "feature_cache", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": artifact, "S3DataDistributionType": "FullyReplicated"}},
        "ContentType": "application/x-tar", "CompressionType": "None", "InputMode": "File"}
    assert trials["ResourceConfig"]["InstanceType"] == "ml.m5.large"  # trials only: the head on CPU
    assert trials["StaticHyperParameters"] == definition.static_hyperparameters  # the same name set (warm start)
    err = capsys.readouterr().err
    assert f"created feature job {FEATURE_JOB}" in err and f"shared features: {artifact}" in err

    # a second make tune with the same key: the stored cache, no feature job
    aws.sent.clear()
    stub_image(stubs, "byoc-classifier-training")
    stub_channels(stubs, checked=("train", "valid", "weights"))
    older = {"Key": f"byoc-classifier/feature-cache/{key}/features-old/output/model.tar.gz",
             "LastModified": MOMENT.replace(year=2025)}
    stored = {"Key": artifact.split(f"{BUCKET}/", 1)[1], "LastModified": MOMENT}
    stub_listings(stubs, cache_objects=[older, stored, {"Key": f"byoc-classifier/feature-cache/{key}/x/output/"
                                                                "output.tar.gz", "LastModified": MOMENT}])
    sm.add_response("create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": FAKE_ARN}, tuning)
    assert tune.main(["--name", NAME, "--no-wait"]) == 0
    assert "CreateTrainingJob" not in [api for _, api, _ in aws.sent]
    assert f"shared features: reusing {artifact}" in capsys.readouterr().err


def test_a_failed_feature_job_stops_before_the_tuning_job(stubbed, use, monkeypatch, capsys):
    aws, stubs = stubbed
    use(aws, tune)
    monkeypatch.setattr(orchestration, "utc_now", lambda: MOMENT)
    stub_image(stubs, "byoc-classifier-training")
    stub_channels(stubs, checked=("train", "valid", "weights"))
    stub_listings(stubs, cache_objects=[])
    stubs("sagemaker").add_response("create_training_job", {"TrainingJobArn": FAKE_ARN})
    stubs("sagemaker").add_response("describe_training_job", training_description(FEATURE_JOB, "Failed"))
    assert tune.main(["--name", NAME, "--no-wait"]) == 1
    err = capsys.readouterr().err
    assert f"feature job {FEATURE_JOB} Failed: AlgorithmError" in err and "NO_CACHE=1" in err
    assert "CreateHyperParameterTuningJob" not in [api for _, api, _ in aws.sent]


# --- the sequence against moto --------------------------------------------------------------------------------

def test_feature_job_then_tuning_job_then_reuse_on_moto(moto, use, monkeypatch):
    use(moto, tune)
    put_images(moto, "byoc-classifier-training")
    s3, sm = moto.client("s3"), moto.client("sagemaker")
    for channel in ("train", "valid", "test"):
        for n in range(2):
            s3.put_object(Bucket=BUCKET, Key=f"{DATA_PREFIX}{channel}/a/{n}.jpg", Body=f"{channel}{n}".encode())
    monkeypatch.setattr(orchestration, "utc_now", lambda: MOMENT)
    assert tune.main(["--name", NAME, "--no-wait"]) == 0
    feature_job = sm.describe_training_job(TrainingJobName=FEATURE_JOB)
    artifact = feature_job["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact.startswith(f"s3://{BUCKET}/byoc-classifier/feature-cache/")
    assert feature_job["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge"
    trials = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=NAME)["TrainingJobDefinition"]
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in trials["InputDataConfig"]}
    assert channels == {"train": f"s3://{BUCKET}/{DATA_PREFIX}train/", "valid": f"s3://{BUCKET}/{DATA_PREFIX}valid/",
                        "feature_cache": artifact}
    assert trials["ResourceConfig"]["InstanceType"] == "ml.m5.large"

    # SageMaker uploads the artifact when the job ends (moto does not): then a second tune reuses it
    s3.put_object(Bucket=BUCKET, Key=artifact.split(f"{BUCKET}/", 1)[1], Body=b"cache")
    second = "img-clf-20260102-040000"
    monkeypatch.setattr(orchestration, "utc_now", lambda: MOMENT.replace(hour=4))
    assert tune.main(["--name", second, "--no-wait"]) == 0
    assert [j["TrainingJobName"] for j in sm.list_training_jobs()["TrainingJobSummaries"]] == [FEATURE_JOB]
    trials = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=second)["TrainingJobDefinition"]
    assert trials["InputDataConfig"][-1]["DataSource"]["S3DataSource"]["S3Uri"] == artifact

    # another image in the data set: another key, a new feature job
    s3.put_object(Bucket=BUCKET, Key=f"{DATA_PREFIX}valid/a/new.jpg", Body=b"new")
    monkeypatch.setattr(orchestration, "utc_now", lambda: MOMENT.replace(hour=5))
    assert tune.main(["--name", "img-clf-20260102-050000", "--no-wait"]) == 0
    assert len(sm.list_training_jobs()["TrainingJobSummaries"]) == 2


# --- the training container's feature-job mode, for real ------------------------------------------------------

TRIAL_HP = {**FAST_HP, "epochs": "2", "lr": "0.003", "dropout": "0.2", "debugger": "false", "profiler": "false"}


def run_container(base, monkeypatch, channels: dict, hp: dict, mode: str = "") -> int:
    from classifier.training.main import main

    for name in ("input/data", "input/config"):
        (base / name).mkdir(parents=True, exist_ok=True)
    for name, path in channels.items():
        (base / "input" / "data" / name).symlink_to(path.resolve())
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    if mode:
        monkeypatch.setenv("CLASSIFIER_JOB", mode)
    else:
        monkeypatch.delenv("CLASSIFIER_JOB", raising=False)
    return main(args(hp))


@pytest.mark.slow
def test_feature_job_mode_and_trials_on_its_artifact_match_the_local_cache(image_set, tmp_path, monkeypatch, caplog):
    from classifier.training import feature_cache
    from scripts.local import features as local_features, jobs

    for name in ("SM_MODEL_DIR", "SM_OUTPUT_DATA_DIR", "SM_CHANNEL_TRAIN", "SM_CHANNEL_VALID", "TRAINING_JOB_NAME"):
        monkeypatch.delenv(name, raising=False)
    data = {"train": image_set / "train", "valid": image_set / "valid"}
    # the feature job, as SageMaker runs it: its model dir is the cache, uploaded as model.tar.gz
    feature_hp = {k: v for k, v in TRIAL_HP.items() if k not in ("lr", "dropout")}
    assert run_container(tmp_path / "feature-job", monkeypatch, data, feature_hp, mode="features") == 0
    model_dir = tmp_path / "feature-job" / "model"
    summary = json.loads((model_dir / "feature_job.json").read_text())
    assert summary["images"] == {"train": 120, "valid": 40} and summary["computed"] == 160
    assert len(feature_cache.load(model_dir, summary["key"])) == 160
    archive = tmp_path / "artifact" / "model.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for path in model_dir.iterdir():
            tar.add(path, arcname=path.name)
    caplog.set_level("INFO")
    caplog.clear()

    def trial(base: str, cache) -> dict:
        assert run_container(tmp_path / base, monkeypatch, {**data, "feature_cache": cache}, TRIAL_HP) == 0
        return json.loads((tmp_path / base / "output" / "data" / "metrics.json").read_text())

    on_artifact = trial("trial-artifact", archive.parent)
    log = caplog.text
    assert "channel 'train': 120 of 120 images from the cache" in log and "unpacked model.tar.gz" in log

    monkeypatch.setattr(jobs, "JOBS_ROOT", tmp_path / "jobs")
    local_features._FILLED.clear()
    values = {**TRIAL_HP, "unfreeze_stages": "0", "pretrained": "true"}
    printed = []
    local_cache = local_features.prepare(values, image_set, echo=printed.append)
    # the pass's progress (classifier/progress.py, here not on a terminal): plain lines, the counts at the end
    assert not [line for line in printed if "\r" in line or "\x1b" in line]
    ends = [line.split(" [")[0] for line in printed if line.startswith("feature pass")]
    assert ends[-2:] == ["feature pass 'train': 120/120 images", "feature pass 'valid': 40/40 images"]
    on_local = trial("trial-local", local_cache)
    assert caplog.text.count("channel 'valid': 40 of 40 images from the cache") == 2
    def losses(metrics):  # the same features, seed and head: the same numbers, epoch by epoch
        return [value for h in metrics["history"] for value in (h["train_loss"], h["valid_loss"], h["valid_accuracy"])]

    # the two passes batch the images differently (and the thread count may differ), so the features agree to
    # float rounding, not bit for bit
    assert losses(on_artifact) == pytest.approx(losses(on_local), rel=1e-5) and len(losses(on_local)) == 6
    assert on_artifact["final"]["valid_loss"] == pytest.approx(on_local["final"]["valid_loss"], rel=1e-5)


def test_feature_job_mode_refuses_features_that_are_not_fixed(image_set, tmp_path, monkeypatch):
    data = {"train": image_set / "train", "valid": image_set / "valid"}
    code = run_container(tmp_path / "job", monkeypatch, data, {**FAST_HP, "unfreeze_stages": "1"}, mode="features")
    assert code == 1
    assert "CLASSIFIER_JOB=features needs fixed backbone features" in (tmp_path / "job/output/failure").read_text()


def test_warm_start_parents_are_checked_before_the_feature_job(stubbed, use, monkeypatch, capsys):
    from test_warm_start import PARENT, parent_description

    aws, stubs = stubbed
    use(aws, tune)
    monkeypatch.setattr(orchestration, "utc_now", lambda: MOMENT)
    definition = job_definition.load()
    stub_image(stubs, "byoc-classifier-training")
    stub_channels(stubs, checked=("train", "valid", "weights"))
    key = stub_listings(stubs, cache_objects=[])
    artifact = f"s3://{BUCKET}/byoc-classifier/feature-cache/{key}/{FEATURE_JOB}/output/model.tar.gz"
    ours = api_requests.tuning_job(definition, aws.settings, NAME, TRAINING_IMAGE, DATA_URI, ["train", "valid"],
                                   feature_cache=artifact)
    running = parent_description(ours, status="InProgress")
    stubs("sagemaker").add_response("describe_hyper_parameter_tuning_job", running,
                                    {"HyperParameterTuningJobName": PARENT})
    assert tune.main(["--name", NAME, "--no-wait", "--parent", PARENT]) == 1
    assert "is InProgress; it must have finished" in capsys.readouterr().err
    assert [api for _, api, _ in aws.sent if api.startswith("Create")] == []  # no feature job was paid for

    # a finished parent that read the same stored cache: the same data, so IdenticalDataAndAlgorithm
    aws.sent.clear()
    stub_image(stubs, "byoc-classifier-training")
    stub_channels(stubs, checked=("train", "valid", "weights"))
    stub_listings(stubs, cache_objects=[{"Key": artifact.split(f"{BUCKET}/", 1)[1], "LastModified": MOMENT}])
    stubs("sagemaker").add_response("describe_hyper_parameter_tuning_job", parent_description(ours),
                                    {"HyperParameterTuningJobName": PARENT})
    stubs("sagemaker").add_response("create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": FAKE_ARN})
    assert tune.main(["--name", NAME, "--no-wait", "--parent", PARENT]) == 0
    [request] = [params for _, api, params in aws.sent if api == "CreateHyperParameterTuningJob"]
    assert request["WarmStartConfig"]["WarmStartType"] == "IdenticalDataAndAlgorithm"
