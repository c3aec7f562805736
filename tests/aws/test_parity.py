"""Local mode and SageMaker mean the same thing (issue 11 item 4): the same scenarios through both
backends, the local one for real (a small tuning job, its final job `train-local TUNING=... HP="best
epochs=1"` and a head-only retrain `HP="best epochs=1 unfreeze_stages=0"`), the SageMaker one through
botocore's Stubber, agree on the hyperparameters each job receives, on the channels of trials and of the
final job (its init_model: the same best trial's model), on names, on the best trial and on the objective
read from the same log."""
from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone

import pytest

from aws_support import stub_channels, stub_image, stub_trials, training_description, trial_summary
from helpers import FAST_HP
from scripts import job_definition, orchestration
from scripts.aws import features as aws_features, train as aws_train, tune as aws_tune
from scripts.local import features, jobs, train as local_train, tune as local_tune, tuning_jobs

pytestmark = pytest.mark.slow  # the module's fixture runs a real local tuning job

TINY = " ".join(f"{k}={v}" for k, v in {**FAST_HP, "epochs": "2", "debugger": "false", "profiler": "false"}.items())


@pytest.fixture(scope="module")
def local(image_set, tmp_path_factory):
    """`make tune-local` (2 Random trials) then `make train-local TUNING=<it> HP="best epochs=1"`, for real."""
    root = tmp_path_factory.mktemp("parity-jobs")
    saved, saved_env = jobs.JOBS_ROOT, os.environ.get("JOBS_DIR")
    jobs.JOBS_ROOT, os.environ["JOBS_DIR"] = root, str(root)
    features._FILLED.clear()
    try:
        assert local_tune.main(["--data", str(image_set), "--max-jobs", "2", "--max-parallel", "1", "--strategy",
                                "Random", "--hp", TINY, "--local-backbone", "efficientnet_lite0"]) == 0
        [tuning] = list((root / "tuning").iterdir())
        record = json.loads((tuning / tuning_jobs.RECORD).read_text())
        trials = {root / t["job"] for t in record["trials"]}
        final, retrain = [], []
        for hp, made in (("best epochs=1", final), ("best epochs=1 unfreeze_stages=0", retrain)):
            assert local_train.main(["--data", str(image_set), "--tuning", tuning.name, "--hp", hp,
                                     "--local-backbone", "efficientnet_lite0", "--quiet"]) == 0
            made += [p for p in root.iterdir() if (p / jobs.RECORD).is_file() and p not in trials | {*final}]
        yield {"root": root, "tuning": record, "final": final[0], "retrain": retrain[0], "trials": sorted(trials)}
    finally:
        jobs.JOBS_ROOT = saved
        if saved_env is None:
            os.environ.pop("JOBS_DIR", None)
        else:
            os.environ["JOBS_DIR"] = saved_env


def hyperparameters_json(job) -> dict:
    return json.loads((job / "input" / "config" / "hyperparameters.json").read_text())


def summaries(local) -> list[dict]:
    """The local trials as SageMaker lists a tuning job's training jobs."""
    return [trial_summary(t["job"], t["objective"], {k: v for k, v in t["hyperparameters"].items() if v is not None},
                          t["status"]) for t in local["tuning"]["trials"]]


def sent(aws, api_name: str) -> dict:
    return next(params for _, name, params in aws.sent if name == api_name)


def test_best_epochs_10_gives_both_backends_the_same_hyperparameters(local, stubbed, use):
    """`make train TUNING=<t> HP="best epochs=1"` sends SageMaker exactly what `make train-local` gave its final
    job: static < best trial < the final job's fine-tuning < given on both (locally the best trial's values
    used to win; on AWS `best` was refused), and both start from the best trial's model."""
    aws, stubs = stubbed
    use(aws, aws_train)
    tuning, best = local["tuning"]["name"], local["tuning"]["best"]["job"]
    stub_trials(stubs, tuning, summaries(local))
    recorded = hyperparameters_json(local["root"] / best)  # what SageMaker records for the trial
    assert recorded["_tuning_objective_metric"] == "best_valid_loss"
    stubs("sagemaker").add_response("describe_training_job", training_description(best, hyperparameters=recorded),
                                    {"TrainingJobName": best})
    stub_image(stubs, "byoc-classifier-training")
    stub_channels(stubs)
    stubs("sagemaker").add_response("create_training_job", {"TrainingJobArn": "arn:x"}, None)
    assert aws_train.main(["--tuning", tuning, "--hp", "best epochs=1", "--name", "j-1", "--no-wait"]) == 0
    request = sent(aws, "CreateTrainingJob")
    assert request["HyperParameters"] == hyperparameters_json(local["final"])
    assert request["HyperParameters"]["epochs"] == "1" != recorded["epochs"]  # the given value on top
    assert request["HyperParameters"]["unfreeze_stages"] == "1" != recorded["unfreeze_stages"]  # fine-tuned
    assert sent(aws, "DescribeTrainingJob")["TrainingJobName"] == best  # the same best trial
    [init] = [c for c in request["InputDataConfig"] if c["ChannelName"] == "init_model"]
    assert init["DataSource"]["S3DataSource"]["S3Uri"] == training_description(best)["ModelArtifacts"][
        "S3ModelArtifacts"]  # the best trial's model.tar.gz; locally its model dir:
    assert (local["final"] / "input" / "data" / "init_model").resolve() == (local["root"] / best / "model").resolve()
    assert jobs.read_record(local["final"])["final_model"]["job"] in (local["final"].name, best)


def stub_stored_features(stubs, monkeypatch):
    """make tune's shared features: the train and valid listings, then a cache stored for the key (the feature
    job itself: test_shared_features.py)."""
    for _ in range(2):
        stubs("s3").add_response("list_objects_v2", {"KeyCount": 0})
    monkeypatch.setattr(aws_features, "find_cache", lambda aws, key: "s3://b/feature-cache/k/j/output/model.tar.gz")


def test_trials_and_the_final_job_get_the_same_channels(local, stubbed, use, monkeypatch):
    aws, stubs = stubbed
    use(aws, aws_tune, aws_train)
    stub_image(stubs, "byoc-classifier-training")
    stub_channels(stubs, checked=("train", "valid", "weights"))  # what a trial may get: test is not even looked for
    stub_stored_features(stubs, monkeypatch)
    stubs("sagemaker").add_response("create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": "arn:x"}, None)
    assert aws_tune.main(["--name", "t-1", "--no-wait"]) == 0
    trial_channels = [c["ChannelName"] for c in sent(aws, "CreateHyperParameterTuningJob")
                      ["TrainingJobDefinition"]["InputDataConfig"]]
    for trial in local["trials"]:  # the same rule shares the features on both (orchestration.shared_features)
        assert sorted(jobs.read_record(trial)["channels"]) == sorted(trial_channels)
    assert "test" not in trial_channels and "feature_cache" in trial_channels

    tuning, best = local["tuning"]["name"], local["tuning"]["best"]["job"]
    stub_trials(stubs, tuning, summaries(local))
    stubs("sagemaker").add_response("describe_training_job", training_description(
        best, hyperparameters=hyperparameters_json(local["root"] / best)), {"TrainingJobName": best})
    stub_image(stubs, "byoc-classifier-training")
    stub_channels(stubs)
    stubs("sagemaker").add_response("create_training_job", {"TrainingJobArn": "arn:x"}, None)
    aws.sent.clear()  # the feature job's CreateTrainingJob is not the final job's
    assert aws_train.main(["--tuning", tuning, "--hp", "best epochs=1", "--name", "j-1", "--no-wait"]) == 0
    final_channels = [c["ChannelName"] for c in sent(aws, "CreateTrainingJob")["InputDataConfig"]]
    assert sorted(jobs.read_record(local["final"])["channels"]) == sorted(final_channels)
    assert "test" in final_channels and "init_model" in final_channels
    # and the local head-only retrain trained from the shared cache, as its trials did
    assert "feature_cache" in jobs.read_record(local["retrain"])["channels"]
    assert "train': 120 of 120 images from the cache" in (local["retrain"] / jobs.LOG).read_text()


def test_names_are_the_same_on_both(local, stubbed, use, monkeypatch, tmp_path, image_set):
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    monkeypatch.setattr(orchestration, "utc_now", lambda: moment)
    aws, stubs = stubbed
    use(aws, aws_train, aws_tune)
    stub_image(stubs, "byoc-classifier-training")
    stub_channels(stubs)
    stubs("sagemaker").add_response("create_training_job", {"TrainingJobArn": "arn:x"}, None)
    assert aws_train.main(["--hp", "lr=0.01", "--no-wait"]) == 0
    stub_image(stubs, "byoc-classifier-training")
    stub_channels(stubs, checked=("train", "valid", "weights"))
    stubs("sagemaker").add_response("create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": "arn:x"}, None)
    assert aws_tune.main(["--no-wait", "--no-cache"]) == 0
    monkeypatch.setattr(jobs, "JOBS_ROOT", tmp_path)
    local_job, _ = jobs.new_job_name("img-clf", tmp_path)
    local_tuning = local_tune.create_tuning(job_definition.load(), image_set).name
    assert sent(aws, "CreateTrainingJob")["TrainingJobName"] == local_job == "img-clf-20260102-030405"
    assert sent(aws, "CreateHyperParameterTuningJob")["HyperParameterTuningJobName"] == local_tuning == local_job
    # and the trials: <tuning>-NNN locally; SageMaker adds its own -<8 hex digits> to the same stem
    assert [p.name for p in local["trials"]] == [f"{local['tuning']['name']}-00{n}" for n in (1, 2)]


def test_the_same_log_gives_the_same_objective_and_final_metrics(local, stubbed, use, capsys):
    """A trial's log streamed from CloudWatch is read by `make train`'s report with the same regexes and the
    same rule (each metric's last value) as local mode read it."""
    aws, stubs = stubbed
    use(aws, aws_train)
    best = local["root"] / local["tuning"]["best"]["job"]
    lines = [line for line in (best / jobs.LOG).read_text().splitlines() if line]  # CloudWatch keeps no empty ones
    stub_image(stubs, "byoc-classifier-training")
    stub_channels(stubs)
    sm, logs = stubs("sagemaker"), stubs("logs")
    sm.add_response("create_training_job", {"TrainingJobArn": "arn:x"}, None)
    sm.add_response("describe_training_job", training_description("j-1"), {"TrainingJobName": "j-1"})  # no metrics
    streams = {"logStreams": [{"logStreamName": "j-1/algo-1-1767322000"}]}
    events = [{"timestamp": i, "message": line, "ingestionTime": i} for i, line in enumerate(lines)]
    no_more = {"events": [], "nextForwardToken": "f/1", "nextBackwardToken": "b"}
    logs.add_response("describe_log_streams", streams, None)  # during the wait
    logs.add_response("get_log_events", {"events": events, "nextForwardToken": "f/1", "nextBackwardToken": "b"}, None)
    logs.add_response("get_log_events", no_more, None)
    logs.add_response("describe_log_streams", streams, None)  # once more after it
    logs.add_response("get_log_events", no_more, None)
    assert aws_train.main(["--hp", "lr=0.01", "--name", "j-1"]) == 0
    printed = dict(re.findall(r"^(\w+)\s+([0-9.e+-]+)$", capsys.readouterr().out, re.M))
    local_metrics = jobs.read_record(best)["metrics"]
    assert printed and set(printed) == set(local_metrics)
    for name, value in local_metrics.items():
        assert float(printed[name]) == pytest.approx(value, rel=1e-5), name
    assert local_metrics["best_valid_loss"] == local["tuning"]["best"]["objective"]  # the trial's objective


def test_the_same_trials_give_the_same_best_and_table(local, stubbed, use, capsys):
    aws, stubs = stubbed
    use(aws, aws_tune)
    definition = job_definition.load()
    tuning = local["tuning"]["name"]
    state = {"HyperParameterTuningJobName": tuning, "HyperParameterTuningJobStatus": "Completed"}
    stub_trials(stubs, tuning, summaries(local))
    best = local["tuning"]["best"]["job"]
    stubs("sagemaker").add_response("describe_training_job", training_description(best), {"TrainingJobName": best})
    aws_tune.report(aws, state, definition)
    out = capsys.readouterr().out
    assert f"best training job: {best}" in out
    local_tune.print_summary(local["tuning"], definition)
    local_out = capsys.readouterr().out
    rows = [line.split()[0] for line in out.splitlines() if line.startswith(tuning)]
    assert rows == [line.split()[0] for line in local_out.splitlines() if line.startswith(tuning)]
