"""Every request the AWS scripts send, checked with botocore's Stubber against the real SageMaker, S3,
ECR, CloudWatch, CloudWatch Logs and Application Auto Scaling models (botocore validates each request's
parameters before the Stubber compares them with the expected ones). The flows run through each script's
main(), as `make` runs them."""
from __future__ import annotations

import base64
import copy
import dataclasses
from datetime import datetime, timezone

import pytest
import yaml
from botocore.stub import ANY

from aws_support import (
    BUCKET,
    DATA_URI,
    FAKE_ARN,
    NOW,
    OLD_MODEL_DATA,
    REGION,
    ROLE,
    SERVING_IMAGE,
    TAG,
    TRAINING_IMAGE,
    endpoint_config_description,
    endpoint_description,
    make_aws,
    record_tags,
    stub_alarm_states,
    stub_channels,
    stub_endpoint_tagged,
    stub_image,
    stub_live_config,
    stub_rollback_alarms,
    stub_trials,
    training_description,
    trial_summary,
    tuning_description,
    write_settings,
)
from scripts import job_definition, orchestration
from scripts.aws import (
    api_requests,
    cleanup,
    debugger,
    deploy,
    endpoint_metrics,
    push_images,
    settings as S,
    train,
    training_job,
    tune,
    upload_data,
)

# --- tuning ---------------------------------------------------------------------------------------------

def test_tuning_request_follows_the_job_definition(settings):
    definition = job_definition.load()
    request = api_requests.tuning_job(definition, settings, "img-clf-20260102-030405", TRAINING_IMAGE, DATA_URI,
                                      ["train", "valid", "test"])
    config = request["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == definition.strategy.name
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Minimize", "MetricName": "best_valid_loss"}
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": definition.limits.max_jobs,
                                        "MaxParallelTrainingJobs": definition.limits.max_parallel_jobs,
                                        "MaxRuntimeInSeconds": definition.limits.max_runtime_seconds}
    ranges = config["ParameterRanges"]
    assert ranges["ContinuousParameterRanges"] == [
        {"Name": "dropout", "MinValue": "0.0", "MaxValue": "0.7", "ScalingType": "Linear"},
        {"Name": "lr", "MinValue": "3e-05", "MaxValue": "0.003", "ScalingType": "Logarithmic"},
        {"Name": "weight_decay", "MinValue": "0.001", "MaxValue": "0.3", "ScalingType": "Logarithmic"}]
    assert "IntegerParameterRanges" not in ranges and "CategoricalParameterRanges" not in ranges
    job = request["TrainingJobDefinition"]
    assert job["StaticHyperParameters"] == definition.static_hyperparameters
    assert job["AlgorithmSpecification"] == {"TrainingImage": TRAINING_IMAGE, "TrainingInputMode": "File",
                                             "MetricDefinitions": definition.metric_definitions}
    assert [c["ChannelName"] for c in job["InputDataConfig"]] == ["train", "valid", "test"]
    assert job["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == DATA_URI + "train/"
    assert job["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge"
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": definition.limits.training_max_runtime_seconds,
                                        "MaxWaitTimeInSeconds": settings.max_wait_seconds}
    assert job["CheckpointConfig"] == {"S3Uri": f"s3://{BUCKET}/byoc-classifier/checkpoints/img-clf-20260102-030405/",
                                       "LocalPath": "/opt/ml/checkpoints"}
    assert job["RoleArn"] == ROLE
    assert "WarmStartConfig" not in request


def test_tune_creates_waits_and_reports(stubbed, use, capsys):
    aws, stubs = stubbed
    use(aws, tune)
    name = "img-clf-20260102-030405"
    definition = job_definition.load()
    stub_image(stubs, "byoc-classifier-training")
    stub_channels(stubs, checked=("train", "valid", "weights"))  # trials never see the test channel
    expected = api_requests.tuning_job(definition, aws.settings, name, TRAINING_IMAGE, DATA_URI, ["train", "valid"])
    sm = stubs("sagemaker")
    sm.add_response("create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": FAKE_ARN}, expected)
    best = trial_summary(f"{name}-002-bbbb", 0.31, {"lr": "0.01", "batch_size": "32", "epochs": "4"})
    running = tuning_description(name, "InProgress", counters={"Completed": 1, "InProgress": 2})
    sm.add_response("describe_hyper_parameter_tuning_job", running, {"HyperParameterTuningJobName": name})
    sm.add_response("describe_hyper_parameter_tuning_job", tuning_description(name, best=best),
                    {"HyperParameterTuningJobName": name})
    trials = [trial_summary(f"{name}-001-aaaa", 0.45, {"lr": "0.001", "batch_size": "16", "epochs": "2"}), best,
              trial_summary(f"{name}-003-cccc", None, {"lr": "0.09", "batch_size": "64", "epochs": "6"}, "Failed")]
    sm.add_response("list_training_jobs_for_hyper_parameter_tuning_job",
                    {"TrainingJobSummaries": trials[:2], "NextToken": "t"},
                    {"HyperParameterTuningJobName": name, "SortBy": "CreationTime", "SortOrder": "Ascending",
                     "MaxResults": 100})
    sm.add_response("list_training_jobs_for_hyper_parameter_tuning_job", {"TrainingJobSummaries": trials[2:]},
                    {"HyperParameterTuningJobName": name, "SortBy": "CreationTime", "SortOrder": "Ascending",
                     "MaxResults": 100, "NextToken": "t"})
    sm.add_response("describe_training_job", training_description(best["TrainingJobName"]),
                    {"TrainingJobName": best["TrainingJobName"]})

    assert tune.main(["--name", name, "--no-cache"]) == 0  # shared features: test_shared_features.py
    out = capsys.readouterr()
    lines = out.out.splitlines()
    table_rows = [line for line in lines if line.startswith(name)]
    assert [row.split()[0] for row in table_rows] == [f"{name}-002-bbbb", f"{name}-001-aaaa", f"{name}-003-cccc"]
    assert f"best training job: {name}-002-bbbb" in out.out
    assert "best_valid_loss = 0.31" in out.out and "lr=0.01" in out.out
    assert f"s3://{BUCKET}/byoc-classifier/output/{name}-002-bbbb/output/model.tar.gz" in out.out
    assert "jobs: 1 completed, 2 running" in out.err  # the status line


def test_tune_overrides_and_attach(stubbed, use, capsys):
    aws, stubs = stubbed
    use(aws, tune)
    name = "img-clf-20260102-030405"
    definition = job_definition.load().with_overrides(max_jobs=8, max_parallel_jobs=3, strategy="Random",
                                                      hyperparameters={"epochs": "3"})
    stub_image(stubs, "byoc-classifier-training")
    stub_channels(stubs, present=("train", "valid"), checked=("train", "valid", "weights"))
    expected = api_requests.tuning_job(definition, aws.settings, name, TRAINING_IMAGE, DATA_URI, ["train", "valid"])
    assert expected["TrainingJobDefinition"]["StaticHyperParameters"]["epochs"] == "3"
    assert expected["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 8
    stubs("sagemaker").add_response("create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": FAKE_ARN},
                                    expected)
    argv = ["--name", name, "--max-jobs", "8", "--max-parallel", "3", "--strategy", "Random", "--hp", "epochs=3",
            "--no-wait", "--no-cache"]
    assert tune.main(argv) == 0
    assert f"make tune TUNING={name}" in capsys.readouterr().out
    # attach: no create, one describe, a failed job exits 1 and says why
    failed = tuning_description(name, "Failed")
    failed["FailureReason"] = "No training job succeeded"
    stubs("sagemaker").add_response("describe_hyper_parameter_tuning_job", failed,
                                    {"HyperParameterTuningJobName": name})
    stubs("sagemaker").add_client_error("list_training_jobs_for_hyper_parameter_tuning_job", "AccessDeniedException",
                                        "not allowed")
    assert tune.main(["--attach", name]) == 1
    out = capsys.readouterr()
    assert "No training job succeeded" in out.out and "cannot list the training jobs" in out.err


@pytest.mark.parametrize("strategy", ["Hyperband", "Grid"])
def test_hyperband_and_grid_requests_are_valid(stubbed, strategy, tmp_path):
    aws, stubs = stubbed
    raw = yaml.safe_load(job_definition.DEFAULT_PATH.read_text())
    raw["strategy"] = strategy
    if strategy == "Grid":
        raw["hyperparameter_ranges"] = {"batch_size": {"type": "Categorical", "values": [16, 32]},
                                        "optimizer": {"type": "Categorical", "values": ["adam", "sgd"]}}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(raw))
    definition = job_definition.load(path)
    request = api_requests.tuning_job(definition, aws.settings, "img-clf-20260102-030405", TRAINING_IMAGE, DATA_URI,
                                      ["train", "valid"])
    config = request["HyperParameterTuningJobConfig"]
    if strategy == "Hyperband":
        assert config["StrategyConfig"] == {"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 30}}
        assert config["TrainingJobEarlyStoppingType"] == "Off"
    else:
        assert "MaxNumberOfTrainingJobs" not in config["ResourceLimits"]
        assert set(config["ParameterRanges"]) == {"CategoricalParameterRanges"}
    stubs("sagemaker").add_response("create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": FAKE_ARN},
                                    request)
    aws.call("sagemaker", "create_hyper_parameter_tuning_job", **request)


def test_spot_needs_max_wait_at_least_max_runtime(tmp_path):
    settings = S.load(write_settings(tmp_path / "s.yaml", **{"training.max_wait_seconds": 60}))
    with pytest.raises(S.SettingsError, match="training.max_wait_seconds .*MAX_WAIT_SECONDS"):
        api_requests.tuning_job(job_definition.load(), settings, "n", TRAINING_IMAGE, DATA_URI, ["train", "valid"])
    settings = S.load(write_settings(tmp_path / "s.yaml", **{"training.max_wait_seconds": 60, "training.spot": False}))
    request = api_requests.training_job(job_definition.load(), settings, "n", TRAINING_IMAGE, DATA_URI, ["train"], {})
    assert request["EnableManagedSpotTraining"] is False and "MaxWaitTimeInSeconds" not in request["StoppingCondition"]


# --- training ---------------------------------------------------------------------------------------------

def stub_logs(stubs, job: str):
    logs = stubs("logs")
    params = {"logGroupName": training_job.LOG_GROUP, "logStreamNamePrefix": f"{job}/"}
    logs.add_client_error("describe_log_streams", "ResourceNotFoundException",
                          "The specified log group does not exist.", expected_params=params)
    stream = f"{job}/algo-1-1767322000"
    logs.add_response("describe_log_streams", {"logStreams": [{"logStreamName": stream}]}, params)
    events = [{"timestamp": 1, "message": "[metrics] epoch=1 train_loss=0.5 valid_loss=0.4 valid_accuracy=0.8",
               "ingestionTime": 1},
              {"timestamp": 2, "message": "[metrics] test_loss=0.41 test_accuracy=0.79", "ingestionTime": 2}]
    logs.add_response("get_log_events", {"events": events, "nextForwardToken": "f/2", "nextBackwardToken": "b/1"},
                      {"logGroupName": training_job.LOG_GROUP, "logStreamName": stream, "startFromHead": True})
    logs.add_response("get_log_events", {"events": [], "nextForwardToken": "f/2", "nextBackwardToken": "b/2"},
                      {"logGroupName": training_job.LOG_GROUP, "logStreamName": stream, "startFromHead": True,
                       "nextToken": "f/2"})
    # the fetch after the job finished
    logs.add_response("describe_log_streams", {"logStreams": [{"logStreamName": stream}]}, params)
    logs.add_response("get_log_events", {"events": [], "nextForwardToken": "f/2", "nextBackwardToken": "b/2"},
                      {"logGroupName": training_job.LOG_GROUP, "logStreamName": stream, "startFromHead": True,
                       "nextToken": "f/2"})


def test_train_with_the_best_hyperparameters_of_a_tuning_job(stubbed, use, capsys):
    aws, stubs = stubbed
    use(aws, train)
    tuning, best, name = "img-clf-20260101-000000", "img-clf-20260101-000000-002-bbbb", "img-clf-20260102-030405"
    definition = job_definition.load()
    sm = stubs("sagemaker")
    # three trials: the core picks the completed one with the best objective (not the failed 0.1)
    stub_trials(stubs, tuning, [trial_summary(f"{tuning}-001-aaaa", 0.5, {"lr": "0.001"}),
                                trial_summary(best, 0.3, {"lr": "0.01"}),
                                trial_summary(f"{tuning}-003-cccc", 0.1, {"lr": "0.09"}, "Failed")])
    recorded = {**definition.static_hyperparameters, "lr": "0.01", "batch_size": "32", "epochs": "4",
                "_tuning_objective_metric": "best_valid_loss", "sagemaker_estimator": "x"}
    sm.add_response("describe_training_job", training_description(best, hyperparameters=recorded),
                    {"TrainingJobName": best})
    stub_image(stubs, "byoc-classifier-training")
    stub_channels(stubs)
    # the final job: the best trial's values, its last backbone stage fine-tuned, HP= on top; from its model
    hps = {**definition.static_hyperparameters, "lr": "0.01", "batch_size": "32", "epochs": "8",
           **orchestration.FINE_TUNING}
    best_model = training_description(best)["ModelArtifacts"]["S3ModelArtifacts"]
    expected = api_requests.training_job(definition, aws.settings, name, TRAINING_IMAGE, DATA_URI,
                                         ["train", "valid", "test"], hps, init_model=best_model)
    assert "_tuning_objective_metric" not in expected["HyperParameters"] and "DebugHookConfig" not in expected
    assert expected["InputDataConfig"][-1]["ChannelName"] == "init_model"
    sm.add_response("create_training_job", {"TrainingJobArn": FAKE_ARN}, expected)
    sm.add_response("describe_training_job", training_description(name, "InProgress", secondary="Training"),
                    {"TrainingJobName": name})
    done = training_description(name, metrics={"valid_loss": 0.4, "best_valid_loss": 0.25, "test_accuracy": 0.79})
    done.update({"EnableManagedSpotTraining": True, "TrainingTimeInSeconds": 1000, "BillableTimeInSeconds": 300})
    sm.add_response("describe_training_job", done, {"TrainingJobName": name})
    stub_logs(stubs, name)

    assert train.main(["--tuning", tuning, "--hp", "epochs=8", "--name", name]) == 0
    out = capsys.readouterr().out
    assert "[metrics] test_loss=0.41" in out  # the streamed log
    assert "test_accuracy" in out and "0.79" in out
    assert "70% saved" in out
    assert f"model artifact: s3://{BUCKET}/byoc-classifier/output/{name}/output/model.tar.gz" in out
    # the final job's best_valid_loss 0.25 beats the best trial's 0.3: its model is the loop's
    assert "the final model is this job's: best_valid_loss 0.2500, better than the best trial's 0.3000" in out
    assert f"next: `make deploy JOB={name}`" in out


def test_train_with_given_hyperparameters_and_failure(stubbed, use, capsys):
    aws, stubs = stubbed
    use(aws, train)
    name = "img-clf-20260102-030405"
    definition = job_definition.load()
    stub_image(stubs, "byoc-classifier-training")
    stub_channels(stubs, present=("train", "valid"))
    hps = {**definition.static_hyperparameters, "lr": "0.05"}
    expected = api_requests.training_job(definition, aws.settings, name, TRAINING_IMAGE, DATA_URI, ["train", "valid"],
                                         hps)
    sm = stubs("sagemaker")
    sm.add_response("create_training_job", {"TrainingJobArn": FAKE_ARN}, expected)
    sm.add_response("describe_training_job", training_description(name, "Failed"), {"TrainingJobName": name})
    assert train.main(["--hp", "lr=0.05", "--name", name, "--no-logs"]) == 1
    out = capsys.readouterr()
    assert "dropout (the training job's default 0.5)" in out.err
    assert "Failed: AlgorithmError: channel 'train' has no class folders" in out.out


def test_train_from_an_earlier_model(stubbed, use, capsys):
    """INIT_MODEL=<training job>: its model.tar.gz becomes the job's init_model channel (incremental training);
    an s3:// URI is taken as it is; a local path or TUNING= beside it is refused before any request."""
    aws, stubs = stubbed
    use(aws, train)
    name, earlier = "img-clf-20260102-030405", "img-clf-20251201-000000"
    definition = job_definition.load()
    sm = stubs("sagemaker")
    sm.add_response("describe_training_job", training_description(earlier), {"TrainingJobName": earlier})
    stub_image(stubs, "byoc-classifier-training")
    stub_channels(stubs, present=("train", "valid"))
    artifact = training_description(earlier)["ModelArtifacts"]["S3ModelArtifacts"]
    expected = api_requests.training_job(definition, aws.settings, name, TRAINING_IMAGE, DATA_URI, ["train", "valid"],
                                         {**definition.static_hyperparameters, "lr": "0.05"}, init_model=artifact)
    assert expected["InputDataConfig"][-1]["DataSource"]["S3DataSource"]["S3Uri"] == artifact
    sm.add_response("create_training_job", {"TrainingJobArn": FAKE_ARN}, expected)
    assert train.main(["--hp", "lr=0.05", "--name", name, "--init-model", earlier, "--no-wait"]) == 0
    assert f"from {artifact}" in capsys.readouterr().out
    assert train.main(["--hp", "lr=0.05", "--init-model", "jobs/some-local-job"]) == 1
    assert "a local model is for make train-local INIT_MODEL=" in capsys.readouterr().err
    assert train.main(["--tuning", "t-1", "--init-model", earlier]) == 1
    assert "--init-model and --tuning both give the job its starting model" in capsys.readouterr().err


def test_train_rejects_unknown_hyperparameter_before_any_request(stubbed, use, capsys):
    aws, stubs = stubbed
    use(aws, train)
    assert train.main(["--hp", "learning_rate=0.1"]) == 1
    assert "unknown hyperparameter(s) learning_rate" in capsys.readouterr().err
    assert aws.sent == []


def test_train_stops_when_the_image_is_not_in_ecr(stubbed, use, capsys):
    aws, stubs = stubbed
    use(aws, train)
    stubs("ecr").add_client_error("describe_images", "ImageNotFoundException", "no such image",
                                  expected_params={"repositoryName": "byoc-classifier-training",
                                                   "imageIds": [{"imageTag": TAG}]})
    assert train.main(["--hp", "lr=0.05"]) == 1
    assert f"{TRAINING_IMAGE} is not in ECR: run `make build push`" in capsys.readouterr().err


def test_train_stops_when_a_required_channel_is_empty(stubbed, use, capsys):
    aws, stubs = stubbed
    use(aws, train)
    stub_image(stubs, "byoc-classifier-training")
    prefix = "byoc-classifier/data/fashion-mnist/"
    stubs("s3").add_response("list_objects_v2", {"KeyCount": 1},
                             {"Bucket": BUCKET, "Prefix": prefix + "train/", "MaxKeys": 1})
    stubs("s3").add_response("list_objects_v2", {"KeyCount": 0},
                             {"Bucket": BUCKET, "Prefix": prefix + "valid/", "MaxKeys": 1})
    assert train.main(["--hp", "lr=0.05"]) == 1
    assert "channel 'valid' is empty in S3" in capsys.readouterr().err


def test_service_error_becomes_one_message(stubbed, use, capsys):
    aws, stubs = stubbed
    use(aws, train)
    stub_image(stubs, "byoc-classifier-training")
    stub_channels(stubs, present=("train", "valid"))
    stubs("sagemaker").add_client_error(
        "create_training_job", "ResourceLimitExceeded",
        "The account-level service limit 'ml.g4dn.xlarge for spot training job usage' is 0")
    assert train.main(["--hp", "lr=0.05"]) == 1
    err = capsys.readouterr().err
    assert "\nerror: CreateTrainingJob failed: ResourceLimitExceeded" in err and "Service Quotas" in err


# --- Debugger / Profiler rules ----------------------------------------------------------------------------

def with_debugger(definition, **changes):
    return dataclasses.replace(definition, debugger=dataclasses.replace(definition.debugger, **changes))


def test_sagemaker_rules_attach_only_when_asked(stubbed, tmp_path):
    aws, stubs = stubbed
    definition = job_definition.load()
    assert definition.debugger.attach_sagemaker_rules is False
    assert debugger.training_job_fields(definition, aws.settings, "job") == {}
    assert debugger.training_job_fields(with_debugger(definition, attach_sagemaker_rules=True, rules=()),
                                        aws.settings, "job") == {}
    asked = with_debugger(definition, attach_sagemaker_rules=True, collections=("losses",), train_interval=100,
                          rules=("VanishingGradient", "Overfit", "LowGPUUtilization", "CPUBottleneck"),
                          rule_parameters={"Overfit": {"patience": 2}})
    asked = dataclasses.replace(asked, profiler=dataclasses.replace(asked.profiler, interval_ms=1000))
    fields = debugger.training_job_fields(asked, aws.settings, "job")
    image = "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest"
    assert fields["DebugHookConfig"] == {
        "S3OutputPath": f"s3://{BUCKET}/byoc-classifier/debugger/job/tensors/", "LocalPath": "/opt/ml/output/tensors",
        "CollectionConfigurations": [
            {"CollectionName": "losses", "CollectionParameters": {"train.save_interval": "100",
                                                                  "eval.save_interval": "10"}},
            {"CollectionName": "gradients", "CollectionParameters": {"train.save_interval": "100",
                                                                     "eval.save_interval": "10"}}]}
    assert fields["DebugRuleConfigurations"] == [
        {"RuleConfigurationName": "VanishingGradient", "RuleEvaluatorImage": image,
         "RuleParameters": {"rule_to_invoke": "VanishingGradient"}},
        {"RuleConfigurationName": "Overfit", "RuleEvaluatorImage": image,
         "RuleParameters": {"rule_to_invoke": "Overfit", "patience": "2"}}]
    assert fields["ProfilerConfig"] == {"S3OutputPath": f"s3://{BUCKET}/byoc-classifier/debugger/job/profiler/",
                                        "ProfilingIntervalInMilliseconds": 1000}
    profiler_rules = [r["RuleConfigurationName"] for r in fields["ProfilerRuleConfigurations"]]
    assert profiler_rules == ["LowGPUUtilization", "CPUBottleneck"]
    request = api_requests.training_job(definition, aws.settings, "job", TRAINING_IMAGE, DATA_URI,
                                        ["train", "valid"], {"lr": "0.1"}, fields)
    stubs("sagemaker").add_response("create_training_job", {"TrainingJobArn": FAKE_ARN}, request)
    aws.call("sagemaker", "create_training_job", **request)


def test_sagemaker_hook_saves_at_the_job_definitions_interval(settings):
    """The hook's save intervals are job.yaml's debugger.train_interval (100) and eval_interval (10), not
    smdebug's default 500 (tests/aws/test_debugger_rules.py: what smdebug makes of them)."""
    definition = job_definition.load()
    fields = debugger.training_job_fields(with_debugger(definition, attach_sagemaker_rules=True), settings, "job")
    collections = fields["DebugHookConfig"]["CollectionConfigurations"]
    intervals = {(c["CollectionParameters"]["train.save_interval"], c["CollectionParameters"]["eval.save_interval"])
                 for c in collections}
    assert intervals == {(str(definition.debugger.train_interval), str(definition.debugger.eval_interval))}
    assert intervals == {("100", "10")} and not any("save_interval" in c["CollectionParameters"] for c in collections)
    assert fields["ProfilerConfig"]["ProfilingIntervalInMilliseconds"] == definition.profiler.interval_ms


def test_rule_evaluator_images_per_region():
    assert debugger.rule_evaluator_image("eu-west-1") == (
        "929884845733.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-debugger-rules:latest")
    assert debugger.rule_evaluator_image("cn-north-1").endswith(".amazonaws.com.cn/sagemaker-debugger-rules:latest")
    with pytest.raises(debugger.DebuggerConfigError, match="no evaluator image in xx-east-9"):
        debugger.rule_evaluator_image("xx-east-9")


def test_train_request_carries_rules_from_the_job_definition(stubbed, use, tmp_path, capsys):
    aws, stubs = stubbed
    use(aws, train)
    raw = yaml.safe_load(job_definition.DEFAULT_PATH.read_text())
    raw["debugger"] = {**(raw.get("debugger") or {}), "attach_sagemaker_rules": True, "rules": ["LossNotDecreasing"]}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(raw))
    definition = job_definition.load(path)
    name = "img-clf-20260102-030405"
    stub_image(stubs, "byoc-classifier-training")
    stub_channels(stubs, present=("train", "valid"))
    expected = api_requests.training_job(definition, aws.settings, name, TRAINING_IMAGE, DATA_URI, ["train", "valid"],
                                         {**definition.static_hyperparameters, "lr": "0.05"},
                                         debugger.training_job_fields(definition, aws.settings, name))
    assert expected["DebugRuleConfigurations"][0]["RuleParameters"] == {"rule_to_invoke": "LossNotDecreasing"}
    stubs("sagemaker").add_response("create_training_job", {"TrainingJobArn": FAKE_ARN}, expected)
    assert train.main(["--job-definition", str(path), "--hp", "lr=0.05", "--name", name, "--no-wait"]) == 0


# --- endpoint ---------------------------------------------------------------------------------------------

def endpoint_settings(tmp_path, **changes):
    return S.load(write_settings(tmp_path / "endpoint.yaml", **changes))


def test_deploy_creates_the_endpoint(tmp_path, use, capsys, monkeypatch):
    settings = endpoint_settings(tmp_path, **{"endpoint.data_capture": True, "endpoint.autoscaling": True,
                                              "endpoint.max_instances": 3})
    aws = make_aws(settings)
    from aws_support import Stubs
    stubs = Stubs(aws)
    use(aws, deploy)
    monkeypatch.setattr(orchestration, "timestamp", lambda now=None: "20260102-030405")
    job, stamp = "img-clf-20260101-000000", "img-clf-20260102-030405"
    sm = stubs("sagemaker")
    sm.add_response("describe_training_job", training_description(job), {"TrainingJobName": job})
    stub_image(stubs, "byoc-classifier-serving")
    sm.add_client_error("describe_endpoint", "ValidationException",
                        "Could not find endpoint \"arn:aws:sagemaker:us-east-1:123456789012:endpoint/img-clf\".",
                        expected_params={"EndpointName": "img-clf"})
    model_data = f"s3://{BUCKET}/byoc-classifier/output/{job}/output/model.tar.gz"
    sm.add_response("create_model", {"ModelArn": FAKE_ARN}, {
        "ModelName": stamp,
        "PrimaryContainer": {"Image": SERVING_IMAGE, "ModelDataUrl": model_data, "Mode": "SingleModel"},
        "ExecutionRoleArn": ROLE, "Tags": [{"Key": "project", "Value": "byoc-classifier"}]})
    sm.add_response("create_endpoint_config", {"EndpointConfigArn": FAKE_ARN}, {
        "EndpointConfigName": stamp,
        "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": stamp, "InstanceType": "ml.m5.2xlarge",
                                "InitialInstanceCount": 1, "InitialVariantWeight": 1.0}],
        "DataCaptureConfig": {"EnableCapture": True, "InitialSamplingPercentage": 20,
                              "DestinationS3Uri": f"s3://{BUCKET}/byoc-classifier/data-capture/img-clf",
                              "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                              "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]}},
        "Tags": record_tags(model_data)})  # what it serves, nothing before it
    sm.add_response("create_endpoint", {"EndpointArn": FAKE_ARN}, {
        "EndpointName": "img-clf", "EndpointConfigName": stamp, "Tags": record_tags(model_data)})
    sm.add_response("describe_endpoint", endpoint_description("img-clf", "Creating", stamp),
                    {"EndpointName": "img-clf"})
    sm.add_response("describe_endpoint", endpoint_description("img-clf", "InService", stamp),
                    {"EndpointName": "img-clf"})
    scaling = stubs("application-autoscaling")
    scaling.add_response("register_scalable_target", {}, {
        "ServiceNamespace": "sagemaker", "ResourceId": "endpoint/img-clf/variant/AllTraffic",
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount", "MinCapacity": 1, "MaxCapacity": 3})
    scaling.add_response("put_scaling_policy", {"PolicyARN": FAKE_ARN, "Alarms": []}, {
        "PolicyName": "img-clf-invocations", "ServiceNamespace": "sagemaker",
        "ResourceId": "endpoint/img-clf/variant/AllTraffic",
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
        "PolicyType": "TargetTrackingScaling", "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": 100.0,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            "ScaleInCooldown": 300, "ScaleOutCooldown": 60}})
    assert deploy.main(["--job", job]) == 0
    stubs.verify()
    out = capsys.readouterr().out
    assert "endpoint img-clf created" in out and "InService" in out and "make invoke IMAGE=" in out


def test_deploy_updates_without_downtime_and_retires_the_old_config(stubbed, use, capsys, monkeypatch):
    aws, stubs = stubbed
    use(aws, deploy)
    monkeypatch.setattr(orchestration, "timestamp", lambda now=None: "20260102-030405")
    tuning, best = "img-clf-20260101-000000", "img-clf-20260101-000000-001-aaaa"
    old, new = "img-clf-20251231-235959", "img-clf-20260102-030405"
    sm = stubs("sagemaker")
    stub_trials(stubs, tuning, [trial_summary(best, 0.2, {})])
    sm.add_response("describe_training_job", training_description(best), {"TrainingJobName": best})
    stub_image(stubs, "byoc-classifier-serving")
    sm.add_response("describe_endpoint", endpoint_description("img-clf", "InService", old),
                    {"EndpointName": "img-clf"})
    stub_live_config(stubs, old)
    best_data = training_description(best)["ModelArtifacts"]["S3ModelArtifacts"]
    sm.add_response("create_model", {"ModelArn": FAKE_ARN}, {"ModelName": new, "PrimaryContainer": ANY,
                                                            "ExecutionRoleArn": ROLE, "Tags": ANY})
    sm.add_response("create_endpoint_config", {"EndpointConfigArn": FAKE_ARN}, {
        "EndpointConfigName": new, "ProductionVariants": ANY,
        "Tags": record_tags(best_data, previous=(OLD_MODEL_DATA, SERVING_IMAGE, ""))})
    stub_rollback_alarms(stubs)
    scaling = stubs("application-autoscaling")
    target = {"ServiceNamespace": "sagemaker", "ResourceId": "endpoint/img-clf/variant/AllTraffic",
              "ScalableDimension": "sagemaker:variant:DesiredInstanceCount"}
    scaling.add_response("describe_scalable_targets", {"ScalableTargets": [{
        **target, "MinCapacity": 1, "MaxCapacity": 2, "RoleARN": FAKE_ARN, "CreationTime": NOW}]},
        {"ServiceNamespace": "sagemaker", "ResourceIds": [target["ResourceId"]],
         "ScalableDimension": target["ScalableDimension"]})
    scaling.add_response("describe_scaling_policies", {"ScalingPolicies": []},
                         {"ServiceNamespace": "sagemaker", "ResourceId": target["ResourceId"],
                          "ScalableDimension": target["ScalableDimension"]})
    # the same instance type: the scaling stays on during the update (a new model under it is allowed)
    sm.add_response("update_endpoint", {"EndpointArn": FAKE_ARN}, {
        "EndpointName": "img-clf", "EndpointConfigName": new, "RetainAllVariantProperties": False,
        "DeploymentConfig": {"BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 300},
            "TerminationWaitInSeconds": 300, "MaximumExecutionTimeoutInSeconds": 3600},
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "img-clf-5xx-errors"},
                                                     {"AlarmName": "img-clf-model-latency"}]}}})
    sm.add_response("describe_endpoint", endpoint_description("img-clf", "Updating", old),
                    {"EndpointName": "img-clf"})
    sm.add_response("describe_endpoint", endpoint_description("img-clf", "InService", new),
                    {"EndpointName": "img-clf"})
    stub_endpoint_tagged(stubs, best_data)
    sm.add_response("describe_endpoint_config", endpoint_config_description(old, [old]),
                    {"EndpointConfigName": old})
    sm.add_response("delete_endpoint_config", {}, {"EndpointConfigName": old})
    sm.add_response("delete_model", {}, {"ModelName": old})
    assert deploy.main(["--tuning", tuning]) == 0
    assert "endpoint img-clf updated" in capsys.readouterr().out


def test_deploy_reports_a_rolled_back_update(stubbed, use, capsys, monkeypatch):
    aws, stubs = stubbed
    use(aws, deploy)
    monkeypatch.setattr(orchestration, "timestamp", lambda now=None: "20260102-030405")
    old, new = "img-clf-20251231-235959", "img-clf-20260102-030405"
    sm = stubs("sagemaker")
    stub_image(stubs, "byoc-classifier-serving")
    sm.add_response("describe_endpoint", endpoint_description("img-clf", "InService", old),
                    {"EndpointName": "img-clf"})
    stub_live_config(stubs, old)
    sm.add_response("create_model", {"ModelArn": FAKE_ARN}, None)
    sm.add_response("create_endpoint_config", {"EndpointConfigArn": FAKE_ARN}, None)
    stub_rollback_alarms(stubs)
    stubs("application-autoscaling").add_response("describe_scalable_targets", {"ScalableTargets": []}, None)
    sm.add_response("update_endpoint", {"EndpointArn": FAKE_ARN}, None)
    rolled_back = endpoint_description("img-clf", "InService", old,
                                       reason="The primary container did not pass the ping health check")
    sm.add_response("describe_endpoint", rolled_back, {"EndpointName": "img-clf"})
    stub_alarm_states(stubs)
    assert deploy.main(["--model-data", f"s3://{BUCKET}/m/model.tar.gz"]) == 1
    err = capsys.readouterr().err
    assert f"the update of img-clf to {new} failed and was rolled back" in err and "ping health check" in err
    assert "make endpoint-logs" in err


@pytest.mark.parametrize("status, words", [("Failed", "`make cleanup` removes it"),
                                           ("Updating", "wait until it is InService")])
def test_deploy_refuses_a_failed_or_busy_endpoint(stubbed, use, capsys, status, words):
    aws, stubs = stubbed
    use(aws, deploy)
    stub_image(stubs, "byoc-classifier-serving")
    stubs("sagemaker").add_response("describe_endpoint", endpoint_description("img-clf", status, "c"),
                                    {"EndpointName": "img-clf"})
    assert deploy.main(["--model-data", f"s3://{BUCKET}/m/model.tar.gz"]) == 1
    assert words in capsys.readouterr().err


def test_deploy_picks_the_newest_completed_job(stubbed, use):
    aws, stubs = stubbed
    sm = stubs("sagemaker")
    sm.add_response("list_training_jobs", {"TrainingJobSummaries": [
        {"TrainingJobName": "img-clf-2-20260102-000000", "TrainingJobArn": FAKE_ARN, "CreationTime": NOW,
         "TrainingJobStatus": "Completed"},
        {"TrainingJobName": "img-clf-20260101-000000", "TrainingJobArn": FAKE_ARN, "CreationTime": NOW,
         "TrainingJobStatus": "Completed"}]},
        {"NameContains": "img-clf", "StatusEquals": "Completed", "SortBy": "CreationTime", "SortOrder": "Descending",
         "MaxResults": 10})
    sm.add_response("describe_training_job", training_description("img-clf-2-20260102-000000"),
                    {"TrainingJobName": "img-clf-2-20260102-000000"})
    uri, source = deploy.model_source(aws, "", "", "", job_definition.load())
    assert source == "training job img-clf-2-20260102-000000"  # same prefix: any img-clf-* job


def test_cleanup_deletes_endpoint_config_model_and_leftovers(stubbed, use, capsys):
    aws, stubs = stubbed
    use(aws, cleanup)
    live, older = "img-clf-20260102-030405", "img-clf-20251231-235959"
    sm = stubs("sagemaker")
    scaling = stubs("application-autoscaling")
    sm.add_response("describe_endpoint", endpoint_description("img-clf", "InService", live),
                    {"EndpointName": "img-clf"})
    scaling.add_response("describe_scalable_targets", {"ScalableTargets": []}, None)
    sm.add_response("describe_endpoint_config", endpoint_config_description(live, [live]),
                    {"EndpointConfigName": live})
    sm.add_response("delete_endpoint", {}, {"EndpointName": "img-clf"})
    sm.add_response("list_endpoint_configs", {"EndpointConfigs": [
        {"EndpointConfigName": n, "EndpointConfigArn": FAKE_ARN, "CreationTime": NOW}
        for n in (live, older, "img-clf-other-20250101-000000", "img-clf-manual")]},
        {"NameContains": "img-clf", "MaxResults": 100})
    sm.add_response("describe_endpoint_config", endpoint_config_description(older, [older]),
                    {"EndpointConfigName": older})
    models = (live, older, "img-clf-20250505-050505", "img-clf-other-20250101-000000")
    sm.add_response("list_models", {"Models": [{"ModelName": n, "ModelArn": FAKE_ARN, "CreationTime": NOW}
                                               for n in models]},
                    {"NameContains": "img-clf", "MaxResults": 100})
    for config in (live, older):
        sm.add_response("delete_endpoint_config", {}, {"EndpointConfigName": config})
    for model in (live, older, "img-clf-20250505-050505"):
        sm.add_response("delete_model", {}, {"ModelName": model})
    assert cleanup.main([]) == 0
    out = capsys.readouterr().out
    assert "deleted endpoint img-clf" in out and f"deleted model {older}" in out and "other" not in out


def test_endpoint_metrics_request_and_summary(stubbed, use, capsys):
    aws, stubs = stubbed
    now = datetime(2026, 1, 2, 3, 30, 20, tzinfo=timezone.utc)
    request = api_requests.endpoint_metric_data("img-clf", datetime(2026, 1, 2, 2, 30, tzinfo=timezone.utc),
                                                datetime(2026, 1, 2, 3, 31, tzinfo=timezone.utc))
    assert [q["MetricStat"]["Metric"]["MetricName"] for q in request["MetricDataQueries"]] == [
        "Invocations", "Invocation4XXErrors", "Invocation5XXErrors", "ModelLatency", "OverheadLatency"]
    assert request["MetricDataQueries"][3]["MetricStat"]["Stat"] == "Average"
    assert request["MetricDataQueries"][0]["MetricStat"]["Metric"]["Dimensions"] == [
        {"Name": "EndpointName", "Value": "img-clf"}, {"Name": "VariantName", "Value": "AllTraffic"}]
    t1, t2 = datetime(2026, 1, 2, 3, 1, tzinfo=timezone.utc), datetime(2026, 1, 2, 3, 12, tzinfo=timezone.utc)
    results = [{**r, "StatusCode": "Complete"} for r in [
        {"Id": "m0", "Label": "Invocations", "Timestamps": [t1, t2], "Values": [10.0, 5.0]},
        {"Id": "m1", "Label": "Invocation4XXErrors", "Timestamps": [t1], "Values": [1.0]},
        {"Id": "m2", "Label": "Invocation5XXErrors", "Timestamps": [], "Values": []},
        {"Id": "m3", "Label": "ModelLatency", "Timestamps": [t1, t2], "Values": [20000.0, 30000.0]},
        {"Id": "m4", "Label": "OverheadLatency", "Timestamps": [t1], "Values": [1500.0]}]]
    stubs("cloudwatch").add_response("get_metric_data", {"MetricDataResults": results}, request)
    series = endpoint_metrics.fetch(aws, "img-clf", 60, now=now)
    text = endpoint_metrics.summary(series)
    assert "invocations" in text and " 15" in text and "25.0" in text and "1.5" in text
    assert "03:00" in text and "03:10" in text


# --- images and data -------------------------------------------------------------------------------------

def test_push_logs_in_creates_repositories_and_pushes_both_tags(stubbed, capsys):
    aws, stubs = stubbed
    ecr = stubs("ecr")
    registry = f"123456789012.dkr.ecr.{REGION}.amazonaws.com"
    token = base64.b64encode(b"AWS:secret-password").decode()
    ecr.add_response("get_authorization_token", {"authorizationData": [
        {"authorizationToken": token, "proxyEndpoint": f"https://{registry}", "expiresAt": NOW}]}, {})
    ecr.add_client_error("describe_repositories", "RepositoryNotFoundException", "none",
                         expected_params={"repositoryNames": ["byoc-classifier-training"]})
    ecr.add_response("create_repository", {"repository": {"repositoryUri": f"{registry}/byoc-classifier-training"}}, {
        "repositoryName": "byoc-classifier-training", "imageTagMutability": "MUTABLE",
        "imageScanningConfiguration": {"scanOnPush": True}, "encryptionConfiguration": {"encryptionType": "AES256"},
        "tags": [{"Key": "project", "Value": "byoc-classifier"}]})
    ecr.add_response("describe_repositories",
                     {"repositories": [{"repositoryUri": f"{registry}/byoc-classifier-serving"}]},
                     {"repositoryNames": ["byoc-classifier-serving"]})
    commands = []
    pushed = push_images.push(aws, "docker", [("byoc-classifier-training", "byoc-classifier-training"),
                                              ("byoc-classifier-serving", "byoc-classifier-serving")],
                              TAG, lambda command, stdin=None: commands.append((command, stdin)))
    assert commands[0] == (["docker", "login", "--username", "AWS", "--password-stdin", registry], "secret-password")
    assert all("secret-password" not in " ".join(c) for c, _ in commands)
    assert ["docker", "push", f"{registry}/byoc-classifier-training:{TAG}"] in [c for c, _ in commands]
    assert pushed == [f"{registry}/byoc-classifier-training:{TAG}", f"{registry}/byoc-classifier-training:latest",
                      f"{registry}/byoc-classifier-serving:{TAG}", f"{registry}/byoc-classifier-serving:latest"]
    assert "secret-password" not in capsys.readouterr().out
    assert push_images.push_commands("podman", "img:t", "r/img:t") == [["podman", "push", "img:t", "docker://r/img:t"]]


def test_upload_sends_changed_files_only(stubbed, tmp_path):
    aws, stubs = stubbed
    same = upload_data.LocalFile(tmp_path / "same.jpg", "train/a/same.jpg", 4)
    same.path.write_bytes(b"same")
    changed = upload_data.LocalFile(tmp_path / "new.png", "train/a/new.png", 3)
    changed.path.write_bytes(b"new")
    kms = upload_data.LocalFile(tmp_path / "kms.jpg", "train/a/kms.jpg", 3)
    kms.path.write_bytes(b"kms")
    prefix = "byoc-classifier/data/set/"
    s3 = stubs("s3")
    s3.add_response("list_objects_v2", {"Contents": [
        {"Key": prefix + "train/a/same.jpg", "Size": 4, "ETag": f'"{same.digest()}"'},
        {"Key": prefix + "train/a/new.png", "Size": 3, "ETag": '"0000"'},
        {"Key": prefix + "train/a/kms.jpg", "Size": 3, "ETag": '"ffff"'},
        {"Key": prefix + "train/b/gone.jpg", "Size": 1, "ETag": '"1"'}]}, {"Bucket": BUCKET, "Prefix": prefix})
    s3.add_response("head_object", {"Metadata": {"md5": "0000"}}, {"Bucket": BUCKET, "Key": prefix + "train/a/new.png"})
    s3.add_response("head_object", {"Metadata": {"md5": kms.digest()}},
                    {"Bucket": BUCKET, "Key": prefix + "train/a/kms.jpg"})
    s3.add_response("put_object", {"ETag": '"x"'}, {"Bucket": BUCKET, "Key": prefix + "train/a/new.png", "Body": ANY,
                                                    "ContentType": "image/png", "Metadata": {"md5": changed.digest()},
                                                    "ChecksumAlgorithm": ANY})
    s3.add_response("delete_objects", {"Deleted": [{"Key": prefix + "train/b/gone.jpg"}]},
                    {"Bucket": BUCKET, "Delete": {"Objects": [{"Key": prefix + "train/b/gone.jpg"}], "Quiet": True}})
    result = upload_data.sync(aws, [same, changed, kms], f"s3://{BUCKET}/{prefix}", delete=True)
    assert result == {"files": 3, "uploaded": 1, "unchanged": 2, "bytes": 3, "extra": 1, "deleted": 1}


def test_multipart_etag_matches_s3s_rule(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(b"a" * 10 + b"b" * 10)
    import hashlib

    local = upload_data.LocalFile(path, "weights/big.bin", 20)
    parts = [hashlib.md5(b"a" * 10 + b"b" * 6).digest(), hashlib.md5(b"b" * 4).digest()]
    assert local.multipart_etag(16) == hashlib.md5(b"".join(parts)).hexdigest() + "-2"


def test_requests_hold_no_credentials(stubbed):
    aws, stubs = stubbed
    request = api_requests.tuning_job(job_definition.load(), aws.settings, "n", TRAINING_IMAGE, DATA_URI, ["train"])
    text = repr(copy.deepcopy(request))
    assert "testing" not in text and "SecretAccessKey" not in text
