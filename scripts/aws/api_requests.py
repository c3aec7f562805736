"""The requests the AWS scripts send, built by pure functions from the job definition and the settings.

Nothing here talks to AWS: the tests check every request against the real service models (botocore
Stubber) and DRY_RUN=1 prints them. Field names are the APIs' own.
"""
from __future__ import annotations

import json
from datetime import datetime

from classifier import channels as container_channels
from classifier.serving.capture import JSON_CONTENT_TYPES, VARIANT
from classifier.serving.settings import DEFAULT_MAX_PAYLOAD_MB
from scripts import batch_output, invoke, orchestration
from scripts.job_definition import JobDefinition

from . import lockdown
from .settings import Settings, SettingsError

CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
# The image channels are application/x-image.
CHANNEL_CONTENT_TYPES = {container_channels.WEIGHTS: "application/octet-stream",
                         container_channels.FEATURE_CACHE: "application/x-tar",
                         container_channels.INIT_MODEL: "application/x-tar"}
FEATURE_JOB_ENVIRONMENT = {"CLASSIFIER_JOB": "features"}  # the training entry's feature-job mode (feature_job.py)
ENDPOINT_METRICS = (  # (name, statistic): counts are summed, latencies (microseconds) averaged
    ("Invocations", "Sum"), ("Invocation4XXErrors", "Sum"), ("Invocation5XXErrors", "Sum"),
    ("ModelLatency", "Average"), ("OverheadLatency", "Average"),
)


def ecr_registry(account: str, region: str) -> str:
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{account}.dkr.ecr.{region}.{suffix}"


def sagemaker_arn(settings: Settings, kind: str, name: str) -> str:
    """A SageMaker resource's ARN (names in lower case, as SageMaker writes them); the account is the execution
    role's (a dry run without one: <account-id>)."""
    return f"arn:{settings.partition}:sagemaker:{settings.region}:{settings.account_id or '<account-id>'}:" \
           f"{kind}/{name.lower()}"


def image_uri(account: str, region: str, repository: str, tag: str) -> str:
    return f"{ecr_registry(account, region)}/{repository}:{tag}"


def split_s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[5:].partition("/") if uri.startswith("s3://") else ("", "", "")
    if not bucket:
        raise ValueError(f"{uri!r} is not an s3://bucket/key URI")
    return bucket, key


# --- training and tuning ------------------------------------------------------------------------------

def channels(data_uri: str, names: list[str], input_mode: str) -> list[dict]:
    """InputDataConfig: one S3 prefix per channel, <data_uri><channel>/ (trailing slash: `train/` must
    not also match `train-old/`)."""
    data_uri = data_uri if data_uri.endswith("/") else data_uri + "/"
    return [{
        "ChannelName": name,
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{data_uri}{name}/",
                                        "S3DataDistributionType": "FullyReplicated"}},
        "ContentType": CHANNEL_CONTENT_TYPES.get(name, "application/x-image"),
        "CompressionType": "None",
        "InputMode": input_mode,
    } for name in names]


def artifact_channel(name: str, artifact_uri: str, input_mode: str) -> dict:
    """A channel that is another job's model.tar.gz, which the training container unpacks: `feature_cache`
    (a feature job's, for trials that train on shared features) or `init_model` (the model a job starts from)."""
    return {"ChannelName": name,
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": artifact_uri,
                                            "S3DataDistributionType": "FullyReplicated"}},
            "ContentType": CHANNEL_CONTENT_TYPES[name], "CompressionType": "None", "InputMode": input_mode}


def _stopping_condition(definition: JobDefinition, settings: Settings) -> dict:
    runtime = definition.limits.training_max_runtime_seconds
    condition = {"MaxRuntimeInSeconds": runtime}
    if settings.spot:
        if settings.max_wait_seconds < runtime:
            raise SettingsError(
                f"setting training.max_wait_seconds ({settings.max_wait_seconds}) must be at least the training "
                f"job's max runtime ({runtime} s, training_max_runtime_seconds in "
                f"{definition.path.name}) for spot training. Raise it in config/settings.yaml or with "
                f"MAX_WAIT_SECONDS=..., or turn spot off (SPOT_TRAINING=false)")
        condition["MaxWaitTimeInSeconds"] = settings.max_wait_seconds
    return condition


def output_config(settings: Settings, uri: str) -> dict:
    """A job's OutputDataConfig: where its model.tar.gz goes, encrypted with the settings' key."""
    return {"S3OutputPath": uri, **lockdown.key(settings)}


def resource_config(settings: Settings, instance_type: str, count: int) -> dict:
    """A job's ResourceConfig: instances and their volume, encrypted with the settings' key."""
    return {"InstanceType": instance_type, "InstanceCount": count, "VolumeSizeInGB": settings.training_volume_gb,
            **lockdown.volume_key(settings, instance_type)}


def _common_job_fields(definition: JobDefinition, settings: Settings, image: str, data_uri: str,
                       channel_names: list[str], checkpoint_uri: str) -> dict:
    """What every training job (a tuning job's trials, a feature job) has: image, role, channels, output,
    resources, limits, spot, checkpoints, and the network fields of a locked-down account (lockdown.py)."""
    return {
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": settings.input_mode,
                                   "MetricDefinitions": definition.metric_definitions},
        "RoleArn": settings.role_arn,
        "InputDataConfig": channels(data_uri, channel_names, settings.input_mode),
        "OutputDataConfig": output_config(settings, settings.s3_uri("output_prefix")),
        "ResourceConfig": resource_config(settings, settings.training_instance_type,
                                          settings.training_instance_count),
        "StoppingCondition": _stopping_condition(definition, settings),
        "EnableManagedSpotTraining": settings.spot,
        "CheckpointConfig": {"S3Uri": checkpoint_uri, "LocalPath": CHECKPOINT_LOCAL_PATH},
        "Environment": {"PYTHONUNBUFFERED": "1"},
        **lockdown.job_network(settings),
    }


def _number(value: float, integer: bool) -> str:
    return str(int(value)) if integer else repr(float(value))


def parameter_ranges(definition: JobDefinition) -> dict:
    ranges = {"IntegerParameterRanges": [], "ContinuousParameterRanges": [], "CategoricalParameterRanges": []}
    for r in definition.ranges:
        if r.type == "Categorical":
            ranges["CategoricalParameterRanges"].append({"Name": r.name, "Values": list(r.values)})
        else:
            integer = r.type == "Integer"
            ranges[f"{r.type}ParameterRanges"].append({
                "Name": r.name, "MinValue": _number(r.min, integer), "MaxValue": _number(r.max, integer),
                "ScalingType": r.scaling})
    return {kind: items for kind, items in ranges.items() if items}


def _weight_variants(definition: JobDefinition) -> list[dict]:
    """The static hyperparameters with each value a tuned model_name or pretrained can take (what decides where a
    trial's pretrained weights come from)."""
    variants = [dict(definition.static_hyperparameters)]
    for tuned in definition.ranges:
        if tuned.name in ("model_name", "pretrained") and tuned.type == "Categorical":
            variants = [{**values, tuned.name: str(choice)} for values in variants for choice in tuned.values]
    return variants


def tuning_job(definition: JobDefinition, settings: Settings, name: str, image: str, data_uri: str,
               channel_names: list[str], warm_start: dict | None = None, feature_cache: str = "") -> dict:
    """CreateHyperParameterTuningJob from the job definition (the same file local mode reads). Its trials
    get `channel_names` (orchestration.trial_channels: never test). `warm_start`: a WarmStartConfig
    (warm_start.plan, checked against the parents). `feature_cache`: the S3 URI of a feature job's
    model.tar.gz: the trials get it as their feature_cache channel and run on tuning.cached_instance_type
    (they train the head only)."""
    orchestration.check_name(name, orchestration.TUNING_NAME_MAX, "tuning job")
    strategy, limits = definition.strategy, definition.limits
    resource_limits = {"MaxParallelTrainingJobs": limits.max_parallel_jobs,
                       "MaxRuntimeInSeconds": limits.max_runtime_seconds}
    if strategy.name != "Grid":  # Grid runs every combination: SageMaker counts the jobs itself
        resource_limits["MaxNumberOfTrainingJobs"] = limits.max_jobs
    config = {
        "Strategy": strategy.name,
        "HyperParameterTuningJobObjective": {"Type": definition.objective.type,
                                             "MetricName": definition.objective.metric},
        "ResourceLimits": resource_limits,
        "ParameterRanges": parameter_ranges(definition),
        "TrainingJobEarlyStoppingType": "Off" if strategy.name == "Hyperband" else strategy.early_stopping,
    }
    if strategy.name == "Hyperband":
        config["StrategyConfig"] = {"HyperbandStrategyConfig": {
            "MinResource": strategy.hyperband_min_resource, "MaxResource": strategy.hyperband_max_resource}}
    job = {"StaticHyperParameters": dict(definition.static_hyperparameters),
           **_common_job_fields(definition, settings, image, data_uri, channel_names,
                                settings.s3_uri("checkpoint_prefix", name))}
    for values in _weight_variants(definition):
        lockdown.check_weights_offline(settings, values, channel_names, "tuning job's trials")
    if feature_cache:
        job["InputDataConfig"].append(artifact_channel(container_channels.FEATURE_CACHE, feature_cache,
                                                       settings.input_mode))
        job["ResourceConfig"] = resource_config(settings, settings.cached_instance_type, 1)
    request = {"HyperParameterTuningJobName": name, "HyperParameterTuningJobConfig": config,
               "TrainingJobDefinition": job}
    if warm_start:
        request["WarmStartConfig"] = warm_start
    if settings.tag_list:
        request["Tags"] = settings.tag_list
    return request


def training_job(definition: JobDefinition, settings: Settings, name: str, image: str, data_uri: str,
                 channel_names: list[str], hyperparameters: dict[str, str], debugger: dict | None = None,
                 init_model: str = "") -> dict:
    """CreateTrainingJob: one job with fixed hyperparameters, the same channels, checkpoints and limits as
    the tuning job's trials; `debugger` adds the Debugger/Profiler fields (see debugger.py). The
    hyperparameters are orchestration.training_hyperparameters'. `init_model`: the S3 URI of a model.tar.gz
    the job starts from (its `init_model` channel)."""
    orchestration.check_name(name, orchestration.TRAINING_NAME_MAX, "training job")
    request = {"TrainingJobName": name, "HyperParameters": {k: str(v) for k, v in hyperparameters.items()},
               **_common_job_fields(definition, settings, image, data_uri, channel_names,
                                    settings.s3_uri("checkpoint_prefix", name))}
    if init_model:
        request["InputDataConfig"].append(artifact_channel(container_channels.INIT_MODEL, init_model,
                                                           settings.input_mode))
    lockdown.check_weights_offline(settings, request["HyperParameters"],
                                   [c["ChannelName"] for c in request["InputDataConfig"]], "training job")
    request.update(debugger or {})
    if settings.tag_list:
        request["Tags"] = settings.tag_list
    return request


def feature_job(definition: JobDefinition, settings: Settings, name: str, image: str, data_uri: str,
                channel_names: list[str], hyperparameters: dict[str, str], output_uri: str) -> dict:
    """CreateTrainingJob for the feature job of a tuning job: the training image in its feature-job mode
    (FEATURE_JOB_ENVIRONMENT) on the training instance type, one instance, the trials' channels, the
    hyperparameters of orchestration.shared_features; its model.tar.gz (the cache) goes under `output_uri`.
    No checkpoints: an interrupted pass starts again."""
    orchestration.check_name(name, orchestration.TRAINING_NAME_MAX, "training job")
    lockdown.check_weights_offline(settings, hyperparameters, channel_names, "feature job")
    fields = _common_job_fields(definition, settings, image, data_uri, channel_names, "")
    fields.pop("CheckpointConfig")
    request = {"TrainingJobName": name, "HyperParameters": {k: str(v) for k, v in hyperparameters.items()},
               **fields,
               "OutputDataConfig": output_config(settings, output_uri),
               "ResourceConfig": resource_config(settings, settings.training_instance_type, 1),
               "Environment": {**fields["Environment"], **FEATURE_JOB_ENVIRONMENT}}
    if settings.tag_list:
        request["Tags"] = settings.tag_list
    return request


# --- endpoint -----------------------------------------------------------------------------------------

def model(settings: Settings, name: str, image: str, model_data: str) -> dict:
    """CreateModel of the serving image and an artifact; in the VPC, isolated, when the settings say so."""
    request = {"ModelName": name,
               "PrimaryContainer": {"Image": image, "ModelDataUrl": model_data, "Mode": "SingleModel"},
               "ExecutionRoleArn": settings.role_arn, **lockdown.model_network(settings)}
    if settings.tag_list:
        request["Tags"] = settings.tag_list
    return request


def model_from_package(settings: Settings, name: str, package_arn: str) -> dict:
    """CreateModel from a registered model package: its image and artifact, with the lineage kept."""
    request = {"ModelName": name, "PrimaryContainer": {"ModelPackageName": package_arn},
               "ExecutionRoleArn": settings.role_arn, **lockdown.model_network(settings)}
    if settings.tag_list:
        request["Tags"] = settings.tag_list
    return request


def production_variant(settings: Settings, model_name: str) -> dict:
    """The one variant: instances (realtime, async) or memory and concurrency (serverless)."""
    variant = {"VariantName": VARIANT, "ModelName": model_name}
    if settings.endpoint_type == "serverless":
        variant["ServerlessConfig"] = {"MemorySizeInMB": settings.serverless_memory_mb,
                                       "MaxConcurrency": settings.serverless_max_concurrency}
    else:
        variant.update({"InstanceType": settings.endpoint_instance_type,
                        "InitialInstanceCount": settings.endpoint_instance_count, "InitialVariantWeight": 1.0})
    return variant


def async_locations(settings: Settings) -> dict[str, str]:
    """Where an async endpoint's requests, answers and failures live: <async_prefix>/<endpoint>/<kind>/."""
    return {kind: settings.s3_uri("async_prefix", settings.endpoint_name, kind) for kind in ("input", "output",
                                                                                             "failure")}


def async_inference_config(settings: Settings) -> dict:
    locations = async_locations(settings)
    output = {"S3OutputPath": locations["output"].rstrip("/"), "S3FailurePath": locations["failure"].rstrip("/"),
              **lockdown.key(settings)}
    topics = {key: value for key, value in (("SuccessTopic", settings.async_success_topic),
                                           ("ErrorTopic", settings.async_error_topic)) if value}
    if topics:
        output["NotificationConfig"] = topics
    return {"OutputConfig": output,
            "ClientConfig": {"MaxConcurrentInvocationsPerInstance": settings.async_max_concurrent}}


def endpoint_config(settings: Settings, name: str, model_name: str, record: list[dict] | None = None) -> dict:
    """CreateEndpointConfig of the settings' endpoint type; `record`: the tags that say what it serves
    (serving_record.tags), kept with the config so that a rollback can rebuild what it replaces."""
    request = {"EndpointConfigName": name, "ProductionVariants": [production_variant(settings, model_name)],
               **lockdown.endpoint_volume_key(settings)}
    if settings.endpoint_type == "async":
        request["AsyncInferenceConfig"] = async_inference_config(settings)
    if settings.data_capture:
        request["DataCaptureConfig"] = {
            "EnableCapture": True, "InitialSamplingPercentage": settings.capture_percent,
            "DestinationS3Uri": settings.s3_uri("capture_prefix", settings.endpoint_name).rstrip("/"),
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"JsonContentTypes": list(JSON_CONTENT_TYPES)}, **lockdown.key(settings)}
    tags = settings.tag_list + list(record or [])
    if tags:
        request["Tags"] = tags
    return request


def create_endpoint(settings: Settings, config_name: str, record: list[dict] | None = None) -> dict:
    request = {"EndpointName": settings.endpoint_name, "EndpointConfigName": config_name}
    tags = settings.tag_list + list(record or [])
    if tags:
        request["Tags"] = tags
    return request


def update_endpoint(settings: Settings, config_name: str, alarms: list[str] | None = None) -> dict:
    """A new config on a live endpoint: SageMaker brings the new fleet up, shifts traffic to it as the
    settings' deployment says (all at once, canary, linear; each step baked), then retires the old one
    (blue/green), so requests keep being served. A failed update, or one of `alarms` going off while it
    bakes, rolls it back."""
    return {"EndpointName": settings.endpoint_name, "EndpointConfigName": config_name,
            "RetainAllVariantProperties": False, "DeploymentConfig": deployment_config(settings, alarms or [])}


def check_deployment(settings: Settings) -> None:
    """What SageMaker would refuse in the middle of an update, said before anything is made."""
    if settings.deployment == "canary" and settings.endpoint_type != "serverless" \
            and settings.endpoint_instance_count < 2:
        raise SettingsError(f"deployment canary needs 2 or more instances (the canary is at most half the new "
                            f"fleet; endpoint.instance_count is {settings.endpoint_instance_count}): set "
                            f"ENDPOINT_INSTANCE_COUNT=2, or DEPLOYMENT=all_at_once or linear")


GPU_FAMILIES = ("ml.g", "ml.p", "ml.inf", "ml.trn")


def check_endpoint_type(settings: Settings) -> None:
    """What a serverless endpoint cannot do, refused before any request: data capture, GPUs, instance auto
    scaling, a VPC, network isolation."""
    if settings.endpoint_type != "serverless":
        return
    if lockdown.in_vpc(settings) or settings.network_isolation:
        what = "in a VPC (network.subnets)" if lockdown.in_vpc(settings) else "network-isolated (network.isolation)"
        raise SettingsError(f"a serverless endpoint cannot run {what}: use ENDPOINT_TYPE=realtime or async, or clear "
                            f"the network settings")
    if settings.data_capture:
        raise SettingsError("a serverless endpoint cannot capture data: set DATA_CAPTURE=false (endpoint.data_capture) "
                            "or ENDPOINT_TYPE=realtime")
    if settings.endpoint_instance_type.startswith(GPU_FAMILIES):
        raise SettingsError(f"a serverless endpoint runs on CPUs only: ENDPOINT_INSTANCE_TYPE="
                            f"{settings.endpoint_instance_type} asks for a GPU or accelerator; use ENDPOINT_TYPE="
                            f"realtime or async for it, or a CPU instance type")
    if settings.autoscaling:
        raise SettingsError("a serverless endpoint scales by itself up to serverless.max_concurrency: set "
                            "AUTOSCALING=false (endpoint.autoscaling) or ENDPOINT_TYPE=realtime")


def check_serverless_model(settings: Settings, artifact_bytes: int | None) -> None:
    """The weights are read from the file and then held as tensors: twice the artifact must fit the memory."""
    if artifact_bytes is not None and 2 * artifact_bytes > settings.serverless_memory_mb * 2**20:
        raise SettingsError(f"the model ({artifact_bytes / 2**20:.0f} MB compressed) does not fit a serverless "
                            f"endpoint of SERVERLESS_MEMORY_MB={settings.serverless_memory_mb} (loading holds about "
                            f"twice its size): raise it (up to 6144) or use ENDPOINT_TYPE=realtime")


def deployment_config(settings: Settings, alarms: list[str]) -> dict:
    """DeploymentConfig: blue/green with the settings' traffic shifting, baking and auto rollback alarms."""
    routing = {"Type": settings.deployment.upper(), "WaitIntervalInSeconds": settings.deployment_wait_seconds}
    if settings.deployment == "canary":
        routing["CanarySize"] = {"Type": "CAPACITY_PERCENT", "Value": settings.canary_percent}
    elif settings.deployment == "linear":
        routing["LinearStepSize"] = {"Type": "CAPACITY_PERCENT", "Value": settings.linear_percent}
    config = {"BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": routing, "TerminationWaitInSeconds": settings.termination_wait_seconds,
        "MaximumExecutionTimeoutInSeconds": settings.deployment_timeout_seconds}}
    if alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": name} for name in alarms]}
    return config


def _endpoint_dimensions(endpoint_name: str, variant: bool = True) -> list[dict]:
    dimensions = [{"Name": "EndpointName", "Value": endpoint_name}]
    return dimensions + ([{"Name": "VariantName", "Value": VARIANT}] if variant else [])


def rollback_alarms(settings: Settings) -> list[dict]:
    """PutMetricAlarm for each auto rollback trigger of an update: the variant's server errors and model latency
    (the new fleet serves under the same variant name; a minute's figure above the threshold for
    deployment.alarm_minutes minutes in a row trips it; no data, as before any traffic, does not)."""
    endpoint, minutes = settings.endpoint_name, settings.alarm_minutes
    common = {"Namespace": "AWS/SageMaker", "Dimensions": _endpoint_dimensions(endpoint), "Period": 60,
              "EvaluationPeriods": minutes, "DatapointsToAlarm": minutes, "TreatMissingData": "notBreaching"}
    alarms = [
        {"AlarmName": f"{endpoint}-5xx-errors", "MetricName": "Invocation5XXErrors", "Statistic": "Sum",
         "Threshold": float(settings.alarm_5xx), "ComparisonOperator": "GreaterThanOrEqualToThreshold",
         "AlarmDescription": f"{endpoint}: {settings.alarm_5xx}+ server errors a minute for {minutes} minute(s); "
                             f"rolls back an update (make deploy)", **common},
        {"AlarmName": f"{endpoint}-model-latency", "MetricName": "ModelLatency", "Statistic": "Average",
         "Threshold": float(settings.alarm_latency_ms * 1000), "ComparisonOperator": "GreaterThanThreshold",
         "AlarmDescription": f"{endpoint}: model latency above {settings.alarm_latency_ms} ms for {minutes} "
                             f"minute(s); rolls back an update (make deploy)", **common},
    ]
    if settings.tag_list:
        for alarm in alarms:
            alarm["Tags"] = settings.tag_list
    return alarms


# What `make monitor-report PUBLISH=1` puts on the endpoint's dimensions (scripts/monitor/publish.py): name -> unit.
DRIFT_METRIC, LOW_CONFIDENCE_METRIC = "DataDrift", "LowConfidenceShare"
MONITOR_METRICS = {
    DRIFT_METRIC: "Count",  # 1: a check of the window fired, 0: none
    "EmbeddingDriftPValue": "None", "ClassMixPValue": "None", "ClassMixPSI": "None", "ConfidencePValue": "None",
    LOW_CONFIDENCE_METRIC: "None", "ImageStatisticsPValue": "None",  # shares and p-values: 0 to 1
    "CapturedImages": "Count", "ErrorShare": "None",
}


def check_monitor(settings: Settings) -> None:
    """The monitor's alarms watch what the capture feeds: refused without data capture, before any request."""
    if settings.monitor_alarm and not settings.data_capture:
        raise SettingsError("monitor.alarm needs the endpoint's data capture (the monitor reads it): set "
                            "DATA_CAPTURE=true (endpoint.data_capture), or MONITOR_ALARM=false")


def monitor_metric_data(settings: Settings, endpoint_name: str, values: dict[str, float], when: datetime,
                        variant: str = VARIANT) -> dict:
    """PutMetricData: the monitor's figures of one window, stamped with its end, on the endpoint's dimensions."""
    unknown = sorted(set(values) - set(MONITOR_METRICS))
    if unknown:
        raise ValueError(f"not monitor metrics: {', '.join(unknown)}")
    dimensions = [{"Name": "EndpointName", "Value": endpoint_name}, {"Name": "VariantName", "Value": variant}]
    return {"Namespace": settings.monitor_namespace, "MetricData": [
        {"MetricName": name, "Dimensions": dimensions, "Timestamp": when, "Value": float(value),
         "Unit": MONITOR_METRICS[name]} for name, value in values.items()]}


def monitor_alarm_names(endpoint_name: str) -> tuple[str, str]:
    """(the drift alarm, the low-confidence alarm) of an endpoint: make deploy names them so, make teardown finds
    them so (whatever monitor.* says now)."""
    return f"{endpoint_name}-data-drift", f"{endpoint_name}-low-confidence"


def monitor_alarms(settings: Settings) -> list[dict]:
    """PutMetricAlarm for the monitor's metrics (make deploy, monitor.alarm): DataDrift in monitor.alarm_runs runs
    in a row, one run per monitor.hours; with monitor.low_confidence_alarm, the low-confidence share above it. No
    data (no monitor run) does not trip them. Not auto rollback triggers: drift is the world changing, not a bad
    deployment."""
    endpoint, runs = settings.endpoint_name, settings.monitor_alarm_runs
    common = {"Namespace": settings.monitor_namespace, "Dimensions": _endpoint_dimensions(endpoint),
              "Period": settings.monitor_hours * 3600, "EvaluationPeriods": runs, "DatapointsToAlarm": runs,
              "TreatMissingData": "notBreaching"}
    every = f"{runs} monitor run(s) in a row ({settings.monitor_hours} h each)"
    drift, low_confidence = monitor_alarm_names(endpoint)
    alarms = [{"AlarmName": drift, "MetricName": DRIFT_METRIC, "Statistic": "Maximum",
               "Threshold": 1.0, "ComparisonOperator": "GreaterThanOrEqualToThreshold",
               "AlarmDescription": f"{endpoint}: make monitor-report found drift in {every}", **common}]
    if settings.monitor_low_confidence_alarm is not None:
        share = settings.monitor_low_confidence_alarm
        alarms.append({"AlarmName": low_confidence, "MetricName": LOW_CONFIDENCE_METRIC,
                       "Statistic": "Average", "Threshold": float(share), "ComparisonOperator": "GreaterThanThreshold",
                       "AlarmDescription": f"{endpoint}: more than {share:.0%} low-confidence answers in {every}",
                       **common})
    for alarm in alarms:
        if settings.monitor_alarm_topic:
            alarm["AlarmActions"] = [settings.monitor_alarm_topic]
        if settings.tag_list:
            alarm["Tags"] = settings.tag_list
    return alarms


def scalable_target_id(endpoint_name: str) -> str:
    return f"endpoint/{endpoint_name}/variant/{VARIANT}"


def register_scalable_target(settings: Settings, minimum: int | None = None) -> dict:
    """The variant's scalable target: the settings' minimum, or `minimum` (an async endpoint's 0)."""
    return {"ServiceNamespace": "sagemaker", "ResourceId": scalable_target_id(settings.endpoint_name),
            "ScalableDimension": SCALABLE_DIMENSION,
            "MinCapacity": settings.min_instances if minimum is None else minimum,
            "MaxCapacity": settings.max_instances}


def _policy(settings: Settings, name: str, kind: str, configuration: dict) -> dict:
    """PutScalingPolicy on the variant: `kind` TargetTrackingScaling or StepScaling with its configuration."""
    key = {"TargetTrackingScaling": "TargetTrackingScalingPolicyConfiguration",
           "StepScaling": "StepScalingPolicyConfiguration"}[kind]
    return {"PolicyName": f"{settings.endpoint_name}-{name}", "ServiceNamespace": "sagemaker",
            "ResourceId": scalable_target_id(settings.endpoint_name), "ScalableDimension": SCALABLE_DIMENSION,
            "PolicyType": kind, key: configuration}


def scaling_policy(settings: Settings) -> dict:
    return _policy(settings, "invocations", "TargetTrackingScaling", {
        "TargetValue": float(settings.target_invocations),
        "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
        "ScaleInCooldown": 300, "ScaleOutCooldown": 60})


ASYNC_SCALE_IN_COOLDOWN = 600  # seconds an async endpoint's idle instance stays before scale-in


def async_backlog_policy(settings: Settings) -> dict:
    """Target tracking on the queued requests per instance (SageMaker's ApproximateBacklogSizePerInstance)."""
    return _policy(settings, "backlog", "TargetTrackingScaling", {
        "TargetValue": float(settings.async_target_backlog),
        "CustomizedMetricSpecification": {
            "MetricName": "ApproximateBacklogSizePerInstance", "Namespace": "AWS/SageMaker",
            "Dimensions": _endpoint_dimensions(settings.endpoint_name, variant=False), "Statistic": "Average"},
        "ScaleInCooldown": ASYNC_SCALE_IN_COOLDOWN, "ScaleOutCooldown": 300})


def async_wake_policy(settings: Settings) -> dict:
    """Step scaling that adds the first instance: target tracking cannot act on a fleet of zero (its metric is
    per instance), so an alarm on HasBacklogWithoutCapacity starts one."""
    return _policy(settings, "wake-from-zero", "StepScaling", {
        "AdjustmentType": "ChangeInCapacity", "MetricAggregationType": "Average", "Cooldown": 300,
        "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}]})


def async_wake_alarm(settings: Settings, policy_arn: str) -> dict:
    request = {"AlarmName": f"{settings.endpoint_name}-backlog-without-capacity",
               "AlarmDescription": f"{settings.endpoint_name}: requests queued and no instance: start one",
               "MetricName": "HasBacklogWithoutCapacity", "Namespace": "AWS/SageMaker",
               "Dimensions": _endpoint_dimensions(settings.endpoint_name, variant=False), "Statistic": "Average",
               "Period": 60, "EvaluationPeriods": 2, "DatapointsToAlarm": 2, "Threshold": 1.0,
               "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "missing",
               "AlarmActions": [policy_arn]}
    if settings.tag_list:
        request["Tags"] = settings.tag_list
    return request


def restore_scalable_target(target: dict) -> dict:
    """RegisterScalableTarget that puts back a target as DescribeScalableTargets described it (its role is
    the service-linked one SageMaker's scaling uses, so RoleARN is left to Application Auto Scaling)."""
    request = {key: target[key] for key in ("ServiceNamespace", "ResourceId", "ScalableDimension", "MinCapacity",
                                             "MaxCapacity") if key in target}
    if target.get("SuspendedState"):
        request["SuspendedState"] = target["SuspendedState"]
    return request


POLICY_CONFIGURATIONS = ("TargetTrackingScalingPolicyConfiguration", "StepScalingPolicyConfiguration",
                         "PredictiveScalingPolicyConfiguration")


def restore_scaling_policy(policy: dict) -> dict:
    """PutScalingPolicy that puts back a policy as DescribeScalingPolicies described it (without the fields
    only a description has: ARN, alarms, creation time)."""
    keys = ("PolicyName", "ServiceNamespace", "ResourceId", "ScalableDimension", "PolicyType", *POLICY_CONFIGURATIONS)
    return {key: policy[key] for key in keys if key in policy}


def endpoint_metric_data(endpoint_name: str, start: datetime, end: datetime, period: int = 60) -> dict:
    """GetMetricData for the endpoint's invocation metrics (namespace AWS/SageMaker, 1-minute data)."""
    queries = []
    for index, (metric, stat) in enumerate(ENDPOINT_METRICS):
        queries.append({"Id": f"m{index}", "Label": metric, "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": "AWS/SageMaker", "MetricName": metric,
                       "Dimensions": [{"Name": "EndpointName", "Value": endpoint_name},
                                      {"Name": "VariantName", "Value": VARIANT}]},
            "Period": period, "Stat": stat}})
    return {"MetricDataQueries": queries, "StartTime": start, "EndTime": end, "ScanBy": "TimestampAscending"}


def invoke_endpoint_async(endpoint_name: str, input_location: str, content_type: str, wait_seconds: int,
                          top_k: int | None = None) -> dict:
    """InvokeEndpointAsync: the request body is the S3 object at `input_location`."""
    request = {"EndpointName": endpoint_name, "InputLocation": input_location, "ContentType": content_type,
               "Accept": "application/json", "InvocationTimeoutSeconds": min(wait_seconds, 3600)}
    if top_k is not None:
        request["CustomAttributes"] = f"top_k={top_k}"
    return request


# --- logs ---------------------------------------------------------------------------------------------

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"


def endpoint_log_group(endpoint_name: str) -> str:
    return f"/aws/sagemaker/Endpoints/{endpoint_name}"


def filter_log_events(group: str, start_ms: int, stream_prefix: str = "", token: str = "") -> dict:
    """FilterLogEvents over every stream of `group` (or those starting with `stream_prefix`) from `start_ms`."""
    request = {"logGroupName": group, "startTime": start_ms}
    if stream_prefix:
        request["logStreamNamePrefix"] = stream_prefix
    if token:
        request["nextToken"] = token
    return request


# --- model registry -----------------------------------------------------------------------------------

# What the serving image answers: one image as its own bytes, several as JSON (scripts/invoke.py sends both).
PACKAGE_CONTENT_TYPES = sorted(set(invoke.CONTENT_TYPES.values())) + ["application/json"]


def model_package_group(settings: Settings) -> dict:
    request = {"ModelPackageGroupName": settings.model_package_group,
               "ModelPackageGroupDescription": "image classifier models (make register)"}
    if settings.tag_list:
        request["Tags"] = settings.tag_list
    return request


def put_object(settings: Settings, uri: str, body: bytes, content_type: str) -> dict:
    """PutObject of one document the scripts write: a model package's metrics, an async request's body
    (SSE-KMS with the settings' key)."""
    bucket, key = split_s3_uri(uri)
    return {"Bucket": bucket, "Key": key, "Body": body, "ContentType": content_type, **lockdown.s3_object(settings)}


def model_package(settings: Settings, image: str, model_data: str, description: str, metrics_uri: str,
                  metrics_digest: str, properties: dict[str, str], approved: bool) -> dict:
    """CreateModelPackage: a new version in the settings' group; the serving image and the artifact, the model
    quality statistics (`metrics_uri`, with their SHA-256), what sets the version apart in
    CustomerMetadataProperties (class count, hyperparameters, headline metrics, source)."""
    request = {
        "ModelPackageGroupName": settings.model_package_group,
        "ModelPackageDescription": description[:1024],
        "InferenceSpecification": {"Containers": [{"Image": image, "ModelDataUrl": model_data}],
                                   "SupportedContentTypes": PACKAGE_CONTENT_TYPES,
                                   "SupportedResponseMIMETypes": ["application/json"]},
        "ModelApprovalStatus": "Approved" if approved else "PendingManualApproval",
        "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json",
                                                         "ContentDigest": f"sha256:{metrics_digest}",
                                                         "S3Uri": metrics_uri}}},
        "CustomerMetadataProperties": properties,
        **lockdown.package_security(settings),
    }
    if settings.tag_list:
        request["Tags"] = settings.tag_list
    return request


def approve_model_package(package_arn: str, status: str = "Approved", note: str = "") -> dict:
    request = {"ModelPackageArn": package_arn, "ModelApprovalStatus": status}
    if note:
        request["ApprovalDescription"] = note[:1024]
    return request


# --- batch transform ----------------------------------------------------------------------------------

# Every class in each answer (the evaluation report reads them all); the container's own variable.
TRANSFORM_ENVIRONMENT = {"CLASSIFIER_DEFAULT_TOP_K": str(batch_output.EVERY_CLASS)}


def transform_job(settings: Settings, name: str, model_name: str, input_uri: str, output_uri: str,
                  content_type: str) -> dict:
    """CreateTransformJob: every object under `input_uri` is one request (SplitType None, SingleRecord) of
    `content_type`, answered as JSON; SageMaker writes <output_uri>/<key relative to the input>.out. The
    payload limit is the endpoint's (6 MiB)."""
    orchestration.check_name(name, orchestration.TRAINING_NAME_MAX, "transform job")
    request = {
        "TransformJobName": name, "ModelName": model_name,
        "MaxConcurrentTransforms": settings.transform_max_concurrent,
        "MaxPayloadInMB": DEFAULT_MAX_PAYLOAD_MB, "BatchStrategy": "SingleRecord",
        "Environment": dict(TRANSFORM_ENVIRONMENT),
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
                           "ContentType": content_type, "CompressionType": "None", "SplitType": "None"},
        "TransformOutput": {"S3OutputPath": output_uri.rstrip("/"), "Accept": "application/json",
                            "AssembleWith": "None", **lockdown.key(settings)},
        "TransformResources": {"InstanceType": settings.transform_instance_type,
                               "InstanceCount": settings.transform_instance_count,
                               **lockdown.volume_key(settings, settings.transform_instance_type)},
    }
    if settings.tag_list:
        request["Tags"] = settings.tag_list
    return request


# --- images -------------------------------------------------------------------------------------------

def create_repository(settings: Settings, name: str) -> dict:
    """Private, scanned on push; tags mutable (`latest` moves with each push); encrypted with the settings' key."""
    request = {"repositoryName": name, "imageTagMutability": "MUTABLE",
               "imageScanningConfiguration": {"scanOnPush": True},
               "encryptionConfiguration": lockdown.repository_encryption(settings)}
    if settings.tag_list:
        request["tags"] = settings.tag_list
    return request


# --- account set-up (make bootstrap) ---------------------------------------------------------------------

ROLE_POLICY_NAME = "byoc-classifier-execution"  # the execution role's inline policy (make bootstrap writes it)
ABORT_UPLOADS_DAYS = 7  # an upload in parts that never finished (an interrupted make upload-data) goes after a week


def role_name_and_path(role_arn: str) -> tuple[str, str]:
    """arn:aws:iam::<account>:role/<path>/<name> -> (name, "/<path>/")."""
    path_and_name = role_arn.split(":role/", 1)[1]
    path, _, name = path_and_name.rpartition("/")
    return name, f"/{path}/" if path else "/"


def sagemaker_trust_policy(account: str) -> dict:
    """SageMaker may assume the role, for this account's jobs and endpoints only (aws:SourceAccount: SageMaker's
    cross-service confused deputy prevention)."""
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": account}}}]}


def create_role(settings: Settings, trust: dict) -> dict:
    name, path = role_name_and_path(settings.role_arn)
    request = {"RoleName": name, "Path": path, "AssumeRolePolicyDocument": json.dumps(trust),
               "Description": "SageMaker execution role of the image classifier's jobs and endpoints (make bootstrap)"}
    if settings.tag_list:
        request["Tags"] = settings.tag_list
    return request


def put_role_policy(settings: Settings, policy: dict) -> dict:
    return {"RoleName": role_name_and_path(settings.role_arn)[0], "PolicyName": ROLE_POLICY_NAME,
            "PolicyDocument": json.dumps(policy)}


def create_bucket(settings: Settings) -> dict:
    """A bucket in the settings' region (us-east-1 takes no location constraint); the owner owns every object."""
    request = {"Bucket": settings.bucket, "ObjectOwnership": "BucketOwnerEnforced"}
    if settings.region != "us-east-1":
        request["CreateBucketConfiguration"] = {"LocationConstraint": settings.region}
    return request


PUBLIC_ACCESS_BLOCK = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                       "RestrictPublicBuckets": True}


def bucket_lifecycle(settings: Settings) -> dict:
    """Shared features and checkpoints expire after the settings' days (0: kept); parts of an upload that never
    finished go after ABORT_UPLOADS_DAYS."""
    rules = [{"ID": "abort-incomplete-uploads", "Filter": {"Prefix": ""}, "Status": "Enabled",
              "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_UPLOADS_DAYS}}]
    for rule, prefix, days in (("feature-cache-expiry", settings.feature_cache_prefix, settings.feature_cache_days),
                               ("checkpoint-expiry", settings.checkpoint_prefix, settings.checkpoint_days)):
        if days:
            rules.append({"ID": rule, "Filter": {"Prefix": prefix + "/"}, "Status": "Enabled",
                          "Expiration": {"Days": days}})
    return {"Bucket": settings.bucket, "LifecycleConfiguration": {"Rules": rules}}
