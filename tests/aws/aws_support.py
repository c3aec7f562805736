"""Helpers for the AWS scripts' tests (the fixtures are in conftest.py)."""
from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import boto3
import yaml
from botocore.stub import ANY, Stubber

from scripts import REPO_ROOT
from scripts.aws import settings as settings_module
from scripts.aws.client import Aws

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
BUCKET = "test-bucket"
REGION = "us-east-1"
ACCOUNT = "123456789012"
TAG = "abc1234"
CLOSED_PORT_URL = "http://127.0.0.1:9"  # discard port: nothing listens; a request that slipped through fails


def write_settings(path: Path, **changes) -> Path:
    """A settings file: the repository's, with role and bucket set, no waiting, and `changes` (dotted keys)."""
    raw = yaml.safe_load(settings_module.DEFAULT_PATH.read_text())
    raw["aws"]["role_arn"] = ROLE
    raw["s3"]["bucket"] = BUCKET
    raw["poll_seconds"] = 0
    for key, value in changes.items():
        node = raw
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    path.write_text(yaml.safe_dump(raw))
    return path


_SESSION = None


def make(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`make ARGS` in the repository, with a fixed image tag and engine (no IMAGE_TAG from outside)."""
    env = {k: v for k, v in (env or os.environ).items() if k != "IMAGE_TAG"}
    return subprocess.run(["make", "--no-print-directory", *args, "CONTAINER_ENGINE=docker", "TAG=abc1234"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=env)


def credential_free_env(tmp_path: Path) -> dict:
    """The environment without AWS credentials and with settings that name no role and no bucket
    (the isolation of conftest.py stays: no config files, endpoints on 127.0.0.1)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")}
    env["SETTINGS"] = str(write_settings(tmp_path / "s.yaml", **{"aws.role_arn": "", "s3.bucket": ""}))
    return env


def make_aws(settings, dry_run: bool = False) -> Aws:
    """An Aws with fake credentials. One session for all tests: the service models load once."""
    global _SESSION
    if _SESSION is None:
        _SESSION = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                 aws_session_token="testing", region_name=REGION)
    return Aws(settings, dry_run=dry_run, session=_SESSION)


class Stubs:
    """Stubbers on an Aws's clients, activated on first use; all must be used up at the end."""

    def __init__(self, aws: Aws):
        self.aws = aws
        self.stubbers: dict[str, Stubber] = {}

    def __call__(self, service: str) -> Stubber:
        if service not in self.stubbers:
            stubber = Stubber(self.aws.client(service))
            stubber.activate()
            self.stubbers[service] = stubber
        return self.stubbers[service]

    def verify(self):
        for stubber in self.stubbers.values():
            stubber.assert_no_pending_responses()
            stubber.deactivate()


def put_images(aws, *repositories):
    ecr = aws.client("ecr")
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                           "config": {"digest": "sha256:" + "0" * 64, "size": 1,
                                      "mediaType": "application/vnd.docker.container.image.v1+json"},
                           "layers": []})
    for repository in repositories:
        ecr.create_repository(repositoryName=repository)
        ecr.put_image(repositoryName=repository, imageManifest=manifest, imageTag=TAG)


def moto_backend(service: str):
    """moto's in-process state for `service` (the server runs in this process), for what moto fakes
    poorly (a tuning job's best training job)."""
    from moto.backends import get_backend

    return get_backend(service)[ACCOUNT][REGION]


# --- stubbed requests ----------------------------------------------------------------------------------

TRAINING_IMAGE = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/byoc-classifier-training:{TAG}"
DATA_URI = f"s3://{BUCKET}/byoc-classifier/data/fashion-mnist/"
FAKE_ARN = f"arn:aws:sagemaker:{REGION}:123456789012:resource/fake"


def stub_image(stubs, repository: str):
    stubs("ecr").add_response("describe_images", {"imageDetails": [{"imageTags": [TAG]}]},
                              {"repositoryName": repository, "imageIds": [{"imageTag": TAG}]})


def stub_trials(stubs, tuning: str, summaries: list[dict]):
    """The tuning job's trials, listed (the core picks the best of them)."""
    stubs("sagemaker").add_response(
        "list_training_jobs_for_hyper_parameter_tuning_job", {"TrainingJobSummaries": summaries},
        {"HyperParameterTuningJobName": tuning, "SortBy": "CreationTime", "SortOrder": "Ascending", "MaxResults": 100})


def stub_channels(stubs, present=("train", "valid", "test"), prefix="byoc-classifier/data/fashion-mnist/",
                  checked=("train", "valid", "test", "weights")):
    for channel in checked:
        stubs("s3").add_response("list_objects_v2", {"KeyCount": 1 if channel in present else 0},
                                 {"Bucket": BUCKET, "Prefix": f"{prefix}{channel}/", "MaxKeys": 1})


# --- complete responses (Stubber checks them against the output shapes too) ------------------------------

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def arn(kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name}"


def tuning_description(name: str, status: str = "Completed", best: dict | None = None, counters: dict | None = None,
                       static: dict | None = None) -> dict:
    response = {
        "HyperParameterTuningJobName": name, "HyperParameterTuningJobArn": arn("hyper-parameter-tuning-job", name),
        "HyperParameterTuningJobConfig": {"Strategy": "Bayesian", "ResourceLimits": {
            "MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 2}},
        "HyperParameterTuningJobStatus": status, "CreationTime": NOW,
        "TrainingJobStatusCounters": counters or {"Completed": 2, "InProgress": 0, "RetryableError": 0,
                                                  "NonRetryableError": 0, "Stopped": 0},
        "ObjectiveStatusCounters": {"Succeeded": 2, "Pending": 0, "Failed": 0},
    }
    if best:
        response["BestTrainingJob"] = best
    if static is not None:
        response["TrainingJobDefinition"] = {
            "StaticHyperParameters": static, "AlgorithmSpecification": {"TrainingInputMode": "File"},
            "RoleArn": ROLE, "OutputDataConfig": {"S3OutputPath": "s3://b/o"},
            "StoppingCondition": {"MaxRuntimeInSeconds": 60}}
    return response


def trial_summary(name: str, value: float | None, tuned: dict, status: str = "Completed") -> dict:
    summary = {"TrainingJobName": name, "TrainingJobArn": arn("training-job", name), "CreationTime": NOW,
               "TrainingJobStatus": status, "TunedHyperParameters": tuned,
               "TrainingStartTime": NOW, "TrainingEndTime": NOW.replace(minute=10)}
    if value is not None:
        summary["FinalHyperParameterTuningJobObjectiveMetric"] = {"Type": "Minimize",
                                                                  "MetricName": "best_valid_loss", "Value": value}
    return summary


def training_description(name: str, status: str = "Completed", hyperparameters: dict | None = None,
                         metrics: dict | None = None, secondary: str | None = None) -> dict:
    response = {
        "TrainingJobName": name, "TrainingJobArn": arn("training-job", name),
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://{BUCKET}/byoc-classifier/output/{name}/output/model.tar.gz"},
        "TrainingJobStatus": status, "SecondaryStatus": secondary or status,
        "StoppingCondition": {"MaxRuntimeInSeconds": 7200}, "CreationTime": NOW,
    }
    if hyperparameters is not None:
        response["HyperParameters"] = hyperparameters
    if metrics:
        response["FinalMetricDataList"] = [{"MetricName": k, "Value": v, "Timestamp": NOW} for k, v in metrics.items()]
    if status == "Failed":
        response["FailureReason"] = "AlgorithmError: channel 'train' has no class folders"
    return response


def endpoint_description(name: str, status: str, config: str, reason: str | None = None) -> dict:
    response = {"EndpointName": name, "EndpointArn": arn("endpoint", name), "EndpointConfigName": config,
                "EndpointStatus": status, "CreationTime": NOW, "LastModifiedTime": NOW}
    if reason:
        response["FailureReason"] = reason
    return response


def endpoint_config_description(name: str, models: list[str]) -> dict:
    return {"EndpointConfigName": name, "EndpointConfigArn": arn("endpoint-config", name), "CreationTime": NOW,
            "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": m, "InitialInstanceCount": 1,
                                    "InstanceType": "ml.m5.2xlarge"} for m in models]}


# --- what make deploy reads and writes around an update (issue 25) ---------------------------------------------

SERVING_IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/byoc-classifier-serving:{TAG}"
OLD_MODEL_DATA = f"s3://{BUCKET}/byoc-classifier/output/img-clf-20251231-000000/output/model.tar.gz"


def record_tags(model_data: str = OLD_MODEL_DATA, image: str = SERVING_IMAGE, package: str = "",
                previous: tuple[str, str, str] | None = None) -> list[dict]:
    """The serving record of a config (scripts/aws/serving_record.py); `previous`: (model data, image, package)."""
    tags = [{"Key": "project", "Value": "byoc-classifier"}]
    for role, served in (("serving", (model_data, image, package)), ("previous", previous)):
        if served is None:
            continue
        data, img, pkg = served
        tags += [{"Key": f"{role}:{key}", "Value": value}
                 for key, value in (("package", pkg), ("model-data", data), ("image", img))]
    return tags


def stub_live_config(stubs, config: str, tags: list[dict] | None = None, instance_type: str = "ml.m5.2xlarge"):
    """An update reads the live config (its type, instance type) and its serving record."""
    described = endpoint_config_description(config, [config])
    described["ProductionVariants"][0]["InstanceType"] = instance_type
    stubs("sagemaker").add_response("describe_endpoint_config", described, {"EndpointConfigName": config})
    stubs("sagemaker").add_response("list_tags", {"Tags": record_tags() if tags is None else tags},
                                    {"ResourceArn": arn("endpoint-config", config)})


ROLLBACK_ALARMS = ("img-clf-5xx-errors", "img-clf-model-latency")


def stub_rollback_alarms(stubs):
    for name in ROLLBACK_ALARMS:
        stubs("cloudwatch").add_response("put_metric_alarm", {}, {
            "AlarmName": name, "AlarmDescription": ANY, "MetricName": ANY, "Namespace": "AWS/SageMaker",
            "Statistic": ANY, "Dimensions": [{"Name": "EndpointName", "Value": "img-clf"},
                                             {"Name": "VariantName", "Value": "AllTraffic"}],
            "Period": 60, "EvaluationPeriods": ANY, "DatapointsToAlarm": ANY, "Threshold": ANY,
            "ComparisonOperator": ANY, "TreatMissingData": "notBreaching", "Tags": ANY})


def stub_alarm_states(stubs, fired: dict[str, str] | None = None):
    """DescribeAlarms of the rollback alarms: `fired` maps an alarm's name to its StateReason (state ALARM)."""
    alarms = [{"AlarmName": name, "AlarmArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}",
               "StateValue": "ALARM" if name in (fired or {}) else "OK",
               "StateReason": (fired or {}).get(name, "Threshold Crossed: no datapoints were above the threshold")}
              for name in ROLLBACK_ALARMS]
    stubs("cloudwatch").add_response("describe_alarms", {"MetricAlarms": alarms},
                                     {"AlarmNames": list(ROLLBACK_ALARMS)})


def stub_endpoint_tagged(stubs, model_data: str, image: str = SERVING_IMAGE, package: str = ""):
    tags = [t for t in record_tags(model_data, image, package) if t["Key"].startswith("serving:")]
    stubs("sagemaker").add_response("add_tags", {"Tags": tags}, {"ResourceArn": arn("endpoint", "img-clf"),
                                                                 "Tags": tags})
