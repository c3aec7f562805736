"""make deploy: serve a model behind a SageMaker endpoint (realtime, serverless or asynchronous), created or
updated without downtime, with guarded traffic shifting and auto rollback; optional data capture and auto
scaling; waits until InService. Prints what the endpoint will cost first.

    python -m scripts.aws.deploy [--package latest-approved|<version> [--force] | --job <training job> |
                                  --tuning <tuning job> | --model-data s3://.../model.tar.gz]
    python -m scripts.aws.deploy --finish        # after --no-wait: wait, auto scaling, tags, retire what was replaced

Without a source, the newest completed training job named <name_prefix>-* is used. --package serves a version
of the model registry (make register), refused unless Approved (--force: any status). Each deploy makes a new
model and endpoint config, both named <endpoint>-<yyyymmdd-hhmmss>; the config's tags record what it serves and
what the endpoint served before it (serving_record.py), the endpoint's tags what it serves: `make rollback` goes
back with them, even once the old config is gone.

An existing endpoint is updated to the new config with SageMaker's blue/green deployment: the new fleet comes up
while the old one serves, traffic moves all at once, as a canary, or linearly (settings `deployment`, DEPLOYMENT=),
each step baked; two CloudWatch alarms made here (the variant's 5xx errors and model latency) roll it back
when they trip, and the wait shows the update's phase. The config and model it replaced are then deleted.

Auto scaling is never lost. An update that keeps the variant's instance type leaves the endpoint's scaling
target and policies in place (Application Auto Scaling allows a new model under them). One that changes it must
take them off first (the update is refused otherwise); they are put back as they were if the update fails or
rolls back, and after a successful one when no scaling is asked for. AUTOSCALING=true registers the settings'
target and policy once the endpoint is InService (an async endpoint with async.scale_to_zero: 0 to
endpoint.max_instances on its backlog). With --no-wait nothing is registered on an endpoint that is still
Creating or Updating: the script says what is left (`make deploy-finish`).
"""
from __future__ import annotations

import json
import re
import shlex
import sys
from dataclasses import dataclass, field

import botocore.exceptions

from scripts import endpoint_cost, job_definition, orchestration

from . import api_requests, model_packages, serving_record
from .client import Aws, AwsError, error_code
from .common import (
    base_parser,
    console_url,
    ecr_image,
    open_aws,
    poll,
    poll_interval,
    require,
    run,
    s3_uri_argument,
    status_display,
)
from .serving_record import Served
from .tune import best_trial

BUSY = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting", "UpdateRollbackFailed")
SETTLED = ("InService", "Failed", "OutOfService", "UpdateRollbackFailed")


DRY_STAMP = "<yyyymmdd-hhmmss>"  # a dry run's stand-in for the time stamp of an earlier deploy


def ours(name: str, endpoint: str) -> bool:
    """Models and configs this script made for `endpoint`: <endpoint>-<yyyymmdd-hhmmss>."""
    return re.fullmatch(re.escape(endpoint) + r"-(\d{8}-\d{6}|" + re.escape(DRY_STAMP) + ")", name) is not None


def describe_endpoint(aws: Aws, name: str, dry: dict | None = None) -> dict | None:
    """The endpoint, or None when there is none by that name."""
    try:
        return aws.call("sagemaker", "describe_endpoint", EndpointName=name, dry=dry) or None
    except botocore.exceptions.ClientError as error:
        if error_code(error) == "ValidationException" and "Could not find" in str(error):
            return None
        raise


def check_model_source(job: str, tuning: str, model_data: str) -> None:
    """The names and the URI a model is given by (JOB=, TUNING=, MODEL_DATA=), checked before any request."""
    if job:
        orchestration.check_name(job, orchestration.TRAINING_NAME_MAX, "training job (JOB=)")
    if tuning:
        orchestration.check_name(tuning, orchestration.TUNING_NAME_MAX, "tuning job (TUNING=)")
    if model_data:
        s3_uri_argument(model_data, "MODEL_DATA", object_key=True)


def model_source(aws: Aws, job: str, tuning: str, model_data: str,
                 definition: job_definition.JobDefinition) -> tuple[str, str]:
    """(model.tar.gz S3 URI, where it came from). A tuning job's: its best trial, as `make train` picks it."""
    prefix = definition.name_prefix
    check_model_source(job, tuning, model_data)
    if model_data:
        return model_data, model_data
    if tuning:
        job = best_trial(aws, tuning, definition).name
    if not job:
        found = aws.call("sagemaker", "list_training_jobs", NameContains=prefix, StatusEquals="Completed",
                         SortBy="CreationTime", SortOrder="Descending", MaxResults=10,
                         dry={"TrainingJobSummaries": [{"TrainingJobName": f"{prefix}-<newest-completed>"}]})
        summaries = [s for s in found.get("TrainingJobSummaries", []) if s["TrainingJobName"].startswith(prefix + "-")]
        if not summaries:
            raise AwsError(f"no completed training job named {prefix}-*: run `make train`, or give JOB=<training "
                           f"job>, TUNING=<tuning job> or MODEL_DATA=s3://.../model.tar.gz")
        job = summaries[0]["TrainingJobName"]
    state = aws.call("sagemaker", "describe_training_job", TrainingJobName=job, dry={
        "TrainingJobStatus": "Completed",
        "ModelArtifacts": {"S3ModelArtifacts": aws.settings.s3_uri("output_prefix", job, "output") + "model.tar.gz"}})
    if state.get("TrainingJobStatus") != "Completed":
        raise AwsError(f"training job {job} is {state.get('TrainingJobStatus')}, not Completed: "
                       "it has no model to serve")
    return state["ModelArtifacts"]["S3ModelArtifacts"], f"training job {job}"


@dataclass
class Scaling:
    """An endpoint variant's auto scaling as Application Auto Scaling describes it: the target and its policies."""
    target: dict
    policies: list[dict] = field(default_factory=list)

    def requests(self) -> list[tuple[str, dict]]:
        """The requests that register it again as it was."""
        return ([("register_scalable_target", api_requests.restore_scalable_target(self.target))]
                + [("put_scaling_policy", api_requests.restore_scaling_policy(p)) for p in self.policies])

    def commands(self) -> str:
        """The same as AWS CLI commands, for when this script cannot send them (the endpoint is busy)."""
        return "\n".join(f"  aws application-autoscaling {operation.replace('_', '-')} --cli-input-json "
                         f"{shlex.quote(json.dumps(request))}" for operation, request in self.requests())


def dry_scalable_target(aws: Aws, endpoint: str) -> dict:
    """What a dry run assumes of an existing endpoint: auto scaling registered (its requests are shown)."""
    return {"ScalableTargets": [api_requests.register_scalable_target(aws.settings)
                                | {"ResourceId": api_requests.scalable_target_id(endpoint)}]}


def scaling_of(aws: Aws, endpoint: str) -> Scaling | None:
    """The endpoint's auto scaling (variant AllTraffic), or None when it has none."""
    resource = api_requests.scalable_target_id(endpoint)
    found = aws.call("application-autoscaling", "describe_scalable_targets", ServiceNamespace="sagemaker",
                     ResourceIds=[resource], ScalableDimension=api_requests.SCALABLE_DIMENSION,
                     dry=dry_scalable_target(aws, endpoint))
    targets = found.get("ScalableTargets") or []
    if not targets:
        return None
    policies = []
    for page in aws.paginate("application-autoscaling", "describe_scaling_policies", dry={"ScalingPolicies": []},
                             ServiceNamespace="sagemaker", ResourceId=resource,
                             ScalableDimension=api_requests.SCALABLE_DIMENSION):
        policies += page.get("ScalingPolicies", [])
    return Scaling(targets[0], policies)


def scalable_target_registered(aws: Aws, endpoint: str) -> bool:
    found = aws.call("application-autoscaling", "describe_scalable_targets", ServiceNamespace="sagemaker",
                     ResourceIds=[api_requests.scalable_target_id(endpoint)],
                     ScalableDimension=api_requests.SCALABLE_DIMENSION, dry=dry_scalable_target(aws, endpoint))
    return bool(found.get("ScalableTargets"))


def deregister_scalable_target(aws: Aws, endpoint: str) -> None:
    """Deregistering a target also deletes its scaling policies."""
    aws.call("application-autoscaling", "deregister_scalable_target", ServiceNamespace="sagemaker",
             ResourceId=api_requests.scalable_target_id(endpoint), ScalableDimension=api_requests.SCALABLE_DIMENSION)


def restore(aws: Aws, scaling: Scaling) -> None:
    for operation, request in scaling.requests():
        aws.call("application-autoscaling", operation, **request)


def describe_config(aws: Aws, config_name: str, dry: dict | None = None) -> dict | None:
    try:
        return aws.call("sagemaker", "describe_endpoint_config", EndpointConfigName=config_name, dry=dry)
    except botocore.exceptions.ClientError as error:
        if error_code(error) == "ValidationException":
            return None
        raise


def endpoint_models(aws: Aws, config_name: str) -> list[str]:
    """The models a config serves (a dry run: the model named as the config, as make deploy names them)."""
    config = describe_config(aws, config_name, dry={"ProductionVariants": [{"ModelName": config_name}]})
    return [v["ModelName"] for v in (config or {}).get("ProductionVariants", [])]


def changes_instance_type(aws: Aws, live_config: dict | None) -> bool:
    """Whether the update moves the scaled variant to another instance type (or its old config is unknown):
    Application Auto Scaling then refuses the update while the variant is a scalable target."""
    variants = {v.get("VariantName"): v for v in (live_config or {}).get("ProductionVariants", [])}
    live = variants.get(api_requests.VARIANT)
    return live is None or live.get("InstanceType") != aws.settings.endpoint_instance_type


def config_type(config: dict) -> str:
    """realtime, serverless or async, as an endpoint config describes it."""
    if config.get("AsyncInferenceConfig"):
        return "async"
    variants = config.get("ProductionVariants") or [{}]
    return "serverless" if variants[0].get("ServerlessConfig") else "realtime"


def tags_of(aws: Aws, arn: str | None, dry: list[dict] | None = None) -> list[dict]:
    if not arn:
        return []
    found = []
    for page in aws.paginate("sagemaker", "list_tags", dry={"Tags": dry or []}, ResourceArn=arn):
        found += page.get("Tags", [])
    return found


def served_by(aws: Aws, config: dict | None) -> Served | None:
    """What a live endpoint config serves: its record (tags), else rebuilt from its model (a config made before
    the record existed, or by hand): the model's image and artifact, or the package it was made from."""
    if not config:
        return None
    placeholder = serving_record.placeholder(aws.settings, config.get("EndpointConfigName", ""))
    serving, _ = serving_record.read(tags_of(aws, config.get("EndpointConfigArn"),
                                             dry=serving_record.record(placeholder, None)))
    if serving:
        return serving
    variants = config.get("ProductionVariants") or []
    if len(variants) != 1:
        return None
    model = aws.call("sagemaker", "describe_model", ModelName=variants[0]["ModelName"])
    container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
    if container.get("ModelPackageName"):
        package = aws.call("sagemaker", "describe_model_package", ModelPackageName=container["ModelPackageName"])
        spec = (package.get("InferenceSpecification", {}).get("Containers") or [{}])[0]
        return Served(spec.get("Image", ""), spec.get("ModelDataUrl", ""), package["ModelPackageArn"])
    if container.get("Image") and container.get("ModelDataUrl"):
        return Served(container["Image"], container["ModelDataUrl"])
    return None


def update_text(state: dict) -> str:
    """The endpoint's status and, during an update, the new fleet's phase (Creating, Baking, ActivatingTraffic...),
    its instances and its share of the traffic."""
    text = f"endpoint {state.get('EndpointName')}: {state.get('EndpointStatus')}"
    for variant in (state.get("PendingDeploymentSummary") or {}).get("ProductionVariants", []):
        statuses = variant.get("VariantStatus") or []
        if statuses:
            phase = statuses[-1]
            text += f" - new fleet {phase.get('Status')}"
            if phase.get("StatusMessage"):
                text += f" ({phase['StatusMessage'][:80]})"
        if variant.get("DesiredInstanceCount") is not None:
            text += f", {variant.get('CurrentInstanceCount', 0)}/{variant['DesiredInstanceCount']} instances"
        if variant.get("CurrentWeight") is not None:
            text += f", traffic weight {variant['CurrentWeight']:g}"
    return text


def wait_in_service(aws: Aws, name: str, dry: dict | None = None) -> dict:
    """Poll until the endpoint settles; `dry`: what a dry run's one round assumes it says."""
    if aws.dry_run:
        print(f"# then, every {aws.settings.poll_seconds} s until {name} is InService:", file=aws.out)
    state = poll(lambda: describe_endpoint(aws, name, dry=dry) or {"EndpointName": name, "EndpointStatus": "Deleted"},
                 lambda s: s.get("EndpointStatus") in SETTLED + ("Deleted",), update_text, poll_interval(aws.settings),
                 display=status_display(quiet=aws.dry_run))
    return state


def put_rollback_alarms(aws: Aws) -> list[str]:
    """The update's auto rollback triggers (PutMetricAlarm replaces an alarm of the same name)."""
    names = []
    for alarm in api_requests.rollback_alarms(aws.settings):
        aws.call("cloudwatch", "put_metric_alarm", **alarm)
        names.append(alarm["AlarmName"])
    return names


def put_monitor_alarms(aws: Aws) -> list[str]:
    """The monitor's alarms on the metrics `make monitor-report PUBLISH=1` puts (monitor.alarm)."""
    names = []
    for alarm in api_requests.monitor_alarms(aws.settings):
        aws.call("cloudwatch", "put_metric_alarm", **alarm)
        names.append(alarm["AlarmName"])
    return names


def rollback_reason(aws: Aws, state: dict, alarms: list[str]) -> str:
    """Why SageMaker rolled an update back: its FailureReason, and each of our alarms that went off, by name with
    its reason (DescribeAlarms; one that tripped and has since cleared is named by the FailureReason)."""
    reason = state.get("FailureReason", "")
    fired = []
    if alarms:
        found = aws.call("cloudwatch", "describe_alarms", AlarmNames=alarms, dry={"MetricAlarms": []})
        fired = [a for a in found.get("MetricAlarms", [])
                 if a.get("StateValue") == "ALARM" or a.get("AlarmName", "") in reason]
    text = reason or "no reason given"
    for alarm in fired:
        text += f"; alarm {alarm['AlarmName']}: {alarm.get('StateValue')}: {alarm.get('StateReason', '')}"
    return text


def artifact_bytes(aws: Aws, model_data: str) -> int | None:
    """The size of model.tar.gz (HeadObject), for serverless's memory check."""
    bucket, key = api_requests.split_s3_uri(model_data)
    try:
        return aws.call("s3", "head_object", Bucket=bucket, Key=key, dry={}).get("ContentLength")
    except botocore.exceptions.ClientError as error:
        if error_code(error) in ("404", "NoSuchKey", "403"):
            return None
        raise


def cost_estimate(settings, latency_ms: float) -> list[str]:
    endpoint = endpoint_cost.Endpoint(
        type=settings.endpoint_type, instance_type=settings.endpoint_instance_type,
        instance_count=settings.endpoint_instance_count, autoscaling=settings.autoscaling,
        min_instances=settings.min_instances, max_instances=settings.max_instances,
        scale_to_zero=settings.async_scale_to_zero, scale_in_seconds=api_requests.ASYNC_SCALE_IN_COOLDOWN,
        memory_mb=settings.serverless_memory_mb, prices=settings.endpoint_prices,
        price_per_gb_second=settings.serverless_price)
    return endpoint_cost.describe(endpoint, latency_ms)


@dataclass
class Rollout:
    """One deployment: the endpoint, the name of its new model and config (`stamp`), what it was before (its
    description and config; None when it is new) and what the update changed on the way: the rollback alarms,
    its auto scaling (`live`) and, when the update needs it off, what was taken off (`taken_off`)."""

    endpoint: str
    stamp: str
    existing: dict | None
    live_config: dict | None
    alarms: list[str] = field(default_factory=list)
    live: Scaling | None = None
    taken_off: Scaling | None = None

    @property
    def old_config(self) -> str | None:
        return self.existing.get("EndpointConfigName") if self.existing else None


def deploy(aws: Aws, served: Served, wait: bool = True, latency_ms: float = endpoint_cost.MEASURED_LATENCY_MS,
           assume_exists: bool = False) -> dict:
    """Create or update the endpoint to serve `served`. `assume_exists` (dry runs): show the update path."""
    settings = aws.settings
    endpoint = settings.endpoint_name
    check_deployable(aws, served)
    existing = current_endpoint(aws, endpoint, assume_exists)
    rollout = Rollout(endpoint, f"{endpoint}-{orchestration.timestamp()}", existing,
                      current_config(aws, endpoint, existing))
    previous = served_by(aws, rollout.live_config)
    print("\n".join(f"# cost: {line}" for line in cost_estimate(settings, latency_ms)), file=aws.out, flush=True)
    model_request = (api_requests.model_from_package(settings, rollout.stamp, served.package) if served.package
                     else api_requests.model(settings, rollout.stamp, served.image, served.model_data))
    aws.call("sagemaker", "create_model", dry={}, **model_request)
    aws.call("sagemaker", "create_endpoint_config", dry={}, **api_requests.endpoint_config(
        settings, rollout.stamp, rollout.stamp, serving_record.record(served, previous)))
    if existing:
        update_endpoint(aws, rollout)
    else:
        create_endpoint(aws, rollout, served)
    if settings.monitor_alarm:
        print(f"monitor alarms: {', '.join(put_monitor_alarms(aws))} (fed by make monitor-report ENDPOINT={endpoint} "
              f"PUBLISH=1 every {settings.monitor_hours} h: docs/monitoring.md)", file=sys.stderr)
    result = {"endpoint": endpoint, "model": rollout.stamp, "config": rollout.stamp, "updated": bool(existing),
              "replaced": rollout.old_config, "finished": False, "previous": previous}
    if not wait:
        if not aws.dry_run:
            print(left_to_do(aws, "Updating" if existing else "Creating", rollout.old_config, rollout.taken_off),
                  file=sys.stderr)
        return result
    state = wait_rolled_out(aws, rollout)
    if aws.dry_run and existing:
        print("# if the update rolls back, why (its alarms' states):", file=aws.out)
        rollback_reason(aws, {}, rollout.alarms)
    if existing:
        tag_endpoint(aws, state.get("EndpointArn"), served)
    finish_scaling(aws, rollout.taken_off)
    if rollout.old_config and rollout.old_config != rollout.stamp:
        retire(aws, rollout.old_config, endpoint)
    result["finished"] = True
    return result


def check_deployable(aws: Aws, served: Served) -> None:
    """The settings' deployment, endpoint type and (serverless) the artifact's size, before any change."""
    api_requests.check_deployment(aws.settings)
    api_requests.check_endpoint_type(aws.settings)
    if aws.settings.endpoint_type == "serverless":
        api_requests.check_serverless_model(aws.settings, artifact_bytes(aws, served.model_data))


def current_endpoint(aws: Aws, endpoint: str, assume_exists: bool) -> dict | None:
    """The endpoint as it is (None: there is none), when it can take an update: not busy, not Failed."""
    existing = describe_endpoint(aws, endpoint, dry={
        "EndpointName": endpoint, "EndpointStatus": "InService", "EndpointConfigName": f"{endpoint}-{DRY_STAMP}",
        "EndpointArn": api_requests.sagemaker_arn(aws.settings, "endpoint", endpoint)}
        if assume_exists else {})
    status = existing.get("EndpointStatus") if existing else None
    if status in BUSY:
        raise AwsError(f"endpoint {endpoint} is {status}: wait until it is InService (or Failed), "
                       "then deploy again")
    if status == "Failed":
        raise AwsError(f"endpoint {endpoint} is Failed ({existing.get('FailureReason', 'no reason given')}); "
                       f"`make cleanup` removes it, then `make deploy` creates it again")
    return existing


def current_config(aws: Aws, endpoint: str, existing: dict | None) -> dict | None:
    """The config the endpoint serves now (None: a new endpoint), of the settings' endpoint type."""
    settings = aws.settings
    old_config = existing.get("EndpointConfigName") if existing else None
    if not old_config:
        return None
    dry_live = f"{endpoint}-{DRY_STAMP}"
    dry_config = {**api_requests.endpoint_config(settings, dry_live, f"<model of {endpoint}>"),
                  "EndpointConfigArn": api_requests.sagemaker_arn(settings, "endpoint-config", dry_live)}
    live_config = describe_config(aws, old_config, dry=dry_config)  # a dry run: the same type as the settings'
    if live_config and config_type(live_config) != settings.endpoint_type:
        raise AwsError(f"endpoint {endpoint} is {config_type(live_config)} and ENDPOINT_TYPE is "
                       f"{settings.endpoint_type}: SageMaker cannot change an endpoint's type in an update. "
                       f"`make cleanup` then `make deploy` makes it anew, or ENDPOINT_NAME= deploys another one")
    return live_config


def update_endpoint(aws: Aws, rollout: Rollout) -> None:
    """UpdateEndpoint to the new config, guarded by the rollback alarms. Its auto scaling is taken off first
    when the instance type changes, and registered again if the update cannot start."""
    settings, endpoint = aws.settings, rollout.endpoint
    rollout.alarms = put_rollback_alarms(aws)
    rollout.live = scaling_of(aws, endpoint) if settings.endpoint_type != "serverless" else None
    if rollout.live and changes_instance_type(aws, rollout.live_config):
        deregister_scalable_target(aws, endpoint)
        rollout.taken_off = rollout.live
        print(f"auto scaling of {endpoint} taken off for the update (the instance type changes to "
              f"{settings.endpoint_instance_type}); it goes back when the update is done", file=sys.stderr)
    try:
        aws.call("sagemaker", "update_endpoint", dry={}, **api_requests.update_endpoint(settings, rollout.stamp,
                                                                                        rollout.alarms))
    except Exception:
        if rollout.taken_off:  # still InService on its old config
            restore(aws, rollout.taken_off)
            print(f"auto scaling of {endpoint} registered again as it was", file=sys.stderr)
        raise


def create_endpoint(aws: Aws, rollout: Rollout, served: Served) -> None:
    if aws.dry_run:
        print(f"# UpdateEndpoint instead of CreateEndpoint when {rollout.endpoint} exists (DRY_RUN_UPDATE=1 shows "
              "it)", file=aws.out)
    aws.call("sagemaker", "create_endpoint", dry={}, **api_requests.create_endpoint(
        aws.settings, rollout.stamp, served.tags("serving")))


def wait_rolled_out(aws: Aws, rollout: Rollout) -> dict:
    """Wait until the endpoint serves the new config; an endpoint that failed, or an update rolled back, is an
    error that says why and what became of its auto scaling."""
    endpoint, stamp, taken_off = rollout.endpoint, rollout.stamp, rollout.taken_off
    try:
        state = wait_in_service(aws, endpoint, dry={"EndpointName": endpoint, "EndpointStatus": "InService",
                                                    "EndpointConfigName": stamp,
                                                    **existing_arn(aws, rollout.existing)})
    except KeyboardInterrupt:
        print("\n" + left_to_do(aws, "being updated" if rollout.existing else "being created", rollout.old_config,
                                taken_off), file=sys.stderr)
        raise
    status, serving = state.get("EndpointStatus"), state.get("EndpointConfigName")
    if status != "InService":
        scaling_note = (f" Its auto scaling was taken off for the update; once it serves again, register it as it was:"
                        f"\n{taken_off.commands()}" if taken_off else "")
        raise AwsError(f"endpoint {endpoint} is {status}: {rollback_reason(aws, state, rollout.alarms)}; "
                       f"its container log: make endpoint-logs.{scaling_note}")
    if serving != stamp:
        if taken_off:
            restore(aws, taken_off)
        kept = ("its auto scaling was registered again as it was" if taken_off else
                "its auto scaling was not touched" if rollout.live else "")
        raise AwsError(f"the update of {endpoint} to {stamp} failed and was rolled back "
                       f"({rollback_reason(aws, state, rollout.alarms)}); it still serves {serving}"
                       + (f" and {kept}" if kept else "") + ". Container log: make endpoint-logs")
    return state


def existing_arn(aws: Aws, existing: dict | None) -> dict:
    return {"EndpointArn": existing["EndpointArn"]} if existing and existing.get("EndpointArn") else {}


def tag_endpoint(aws: Aws, endpoint_arn: str | None, served: Served) -> None:
    """The endpoint's own record of what it serves (CreateEndpoint carries it; an update adds it once done)."""
    if endpoint_arn:
        aws.call("sagemaker", "add_tags", ResourceArn=endpoint_arn, Tags=served.tags("serving"))


def wants_scaling(settings) -> bool:
    """Auto scaling to register once InService: AUTOSCALING=true, or an async endpoint that scales to zero."""
    return settings.autoscaling or (settings.endpoint_type == "async" and settings.async_scale_to_zero)


def finish_scaling(aws: Aws, taken_off: Scaling | None) -> None:
    """On an InService endpoint: the settings' auto scaling, else what was taken off."""
    if wants_scaling(aws.settings):
        scale(aws)
    elif taken_off:
        restore(aws, taken_off)
        print(f"auto scaling of {aws.settings.endpoint_name} registered again as it was", file=sys.stderr)


def left_to_do(aws: Aws, status: str, old_config: str | None, taken_off: Scaling | None) -> str:
    """What --no-wait (or Ctrl-C) leaves to do once the endpoint is InService."""
    endpoint = aws.settings.endpoint_name
    steps = []
    if wants_scaling(aws.settings):
        steps.append("register its auto scaling" + (" (AUTOSCALING=true)" if aws.settings.autoscaling
                                                    else " (async.scale_to_zero)"))
    if old_config:
        steps.append("record what it serves in its tags")
        steps.append(f"delete the endpoint config {old_config} it replaces and its model")
    text = f"not waiting: endpoint {endpoint} is {status}; nothing more is done until it is InService."
    if steps:
        text += f" Then `make deploy-finish` waits for it, will {', '.join(steps[:-1])}{' and ' if steps[1:] else ''}" \
                f"{steps[-1]}."
    if taken_off and not wants_scaling(aws.settings):
        text += (" Its auto scaling was taken off for the instance type change; once it is InService register it "
                 f"again as it was:\n{taken_off.commands()}")
    return text


def scale(aws: Aws) -> None:
    settings = aws.settings
    if settings.endpoint_type == "async" and settings.async_scale_to_zero:
        aws.call("application-autoscaling", "register_scalable_target",
                 **api_requests.register_scalable_target(settings, minimum=0))
        aws.call("application-autoscaling", "put_scaling_policy", **api_requests.async_backlog_policy(settings))
        wake = aws.call("application-autoscaling", "put_scaling_policy",
                        dry={"PolicyARN": f"<arn of {settings.endpoint_name}-wake-from-zero>"},
                        **api_requests.async_wake_policy(settings))
        aws.call("cloudwatch", "put_metric_alarm", **api_requests.async_wake_alarm(settings, wake["PolicyARN"]))
        return
    aws.call("application-autoscaling", "register_scalable_target",
             **api_requests.register_scalable_target(settings))
    aws.call("application-autoscaling", "put_scaling_policy", **api_requests.scaling_policy(settings))


def retire(aws: Aws, config_name: str, endpoint: str) -> None:
    """Delete the config an update replaced, and its models, when this script made them; say what it leaves
    (an endpoint made by the SageMaker SDK or by hand: its config is named like the endpoint, its model freely)."""
    models = endpoint_models(aws, config_name)
    kept = [] if ours(config_name, endpoint) else [f"endpoint config {config_name}"]
    if not kept:
        aws.call("sagemaker", "delete_endpoint_config", EndpointConfigName=config_name)
    for model in models:
        if ours(model, endpoint):
            aws.call("sagemaker", "delete_model", ModelName=model)
        else:
            kept.append(f"model {model}")
    if kept:
        print(f"left in place (not made by make deploy; delete them when nothing needs them): {', '.join(kept)}",
              file=sys.stderr)


def leftovers(aws: Aws, endpoint: str, kind: str) -> list[str]:
    """Names of our models ('model') or endpoint configs ('config') for this endpoint."""
    operation, key, name_key = {
        "model": ("list_models", "Models", "ModelName"),
        "config": ("list_endpoint_configs", "EndpointConfigs", "EndpointConfigName")}[kind]
    names = []
    for page in aws.paginate("sagemaker", operation, dry={key: []}, NameContains=endpoint, MaxResults=100):
        names += [item[name_key] for item in page.get(key, []) if ours(item[name_key], endpoint)]
    return names


def finish(aws: Aws) -> list[str]:
    """After `make deploy NO_WAIT=1`: wait until the endpoint is InService, register its auto scaling, record in
    its tags what it serves, delete our configs and models it does not use. Returns what was deleted."""
    endpoint = aws.settings.endpoint_name
    live = f"{endpoint}-{DRY_STAMP}"
    state = wait_in_service(aws, endpoint, dry={
        "EndpointName": endpoint, "EndpointStatus": "InService", "EndpointConfigName": live,
        "EndpointArn": api_requests.sagemaker_arn(aws.settings, "endpoint", endpoint)})
    if not state or state.get("EndpointStatus") != "InService":
        raise AwsError(f"endpoint {endpoint} is {(state or {}).get('EndpointStatus', 'not there')}"
                       f"{': ' + state['FailureReason'] if state and state.get('FailureReason') else ''}; nothing "
                       f"to finish (container log: make endpoint-logs)")
    if wants_scaling(aws.settings):
        scale(aws)
    live = state.get("EndpointConfigName")
    config = describe_config(aws, live, dry={
        "ProductionVariants": [{"ModelName": live}],
        "EndpointConfigArn": api_requests.sagemaker_arn(aws.settings, "endpoint-config", live)})
    placeholder = serving_record.placeholder(aws.settings, live)
    serving, _ = serving_record.read(tags_of(aws, (config or {}).get("EndpointConfigArn"),
                                             dry=serving_record.record(placeholder, None)))
    if serving:
        tag_endpoint(aws, state.get("EndpointArn"), serving)
    in_use = {v["ModelName"] for v in (config or {}).get("ProductionVariants", [])}
    deleted = []
    for name in leftovers(aws, endpoint, "config"):
        if name != live:
            aws.call("sagemaker", "delete_endpoint_config", EndpointConfigName=name)
            deleted.append(f"endpoint config {name}")
    for model in leftovers(aws, endpoint, "model"):
        if model not in in_use:
            aws.call("sagemaker", "delete_model", ModelName=model)
            deleted.append(f"model {model}")
    return deleted


def served_source(aws: Aws, args, definition: job_definition.JobDefinition) -> tuple[Served, str]:
    """What to serve, and where it came from: a registry package (approved, or --force), else a model.tar.gz with
    the serving image of the settings' tag."""
    if args.package:
        package = model_packages.resolve(aws, args.package)
        if package.status != "Approved" and not args.force:
            raise AwsError(f"model package {serving_record.package_version(package.arn)} is {package.status}, not "
                           f"Approved: `make approve VERSION={package.version}` first, or FORCE=1 to deploy it anyway")
        return Served(package.image, package.model_data, package.arn), \
            f"model package {serving_record.package_version(package.arn)} ({package.status})"
    model_data, source = model_source(aws, args.job, args.tuning, args.model_data, definition)
    return Served(ecr_image(aws, aws.settings.serving_repository), model_data), source


def describe_target(settings) -> str:
    if settings.endpoint_type == "serverless":
        return f"serverless, {settings.serverless_memory_mb} MB, up to {settings.serverless_max_concurrency} at once"
    return f"{settings.endpoint_type}, {settings.endpoint_instance_count} x {settings.endpoint_instance_type}"


def add_model_source_arguments(parser) -> None:
    """--job / --tuning / --model-data / --job-definition, as model_source takes them (deploy, registry)."""
    parser.add_argument("--job", default="", help="a training job's model")
    parser.add_argument("--tuning", default="", help="the model of the best training job of this tuning job")
    parser.add_argument("--model-data", default="", help="a model.tar.gz in S3")
    parser.add_argument("--job-definition", help="job definition (its name_prefix finds the newest job)")


def main(argv=None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--package", default="", help="a model registry version: latest-approved or its number")
    parser.add_argument("--force", action="store_true", help="deploy a package that is not Approved")
    add_model_source_arguments(parser)
    parser.add_argument("--latency-ms", type=float, default=endpoint_cost.MEASURED_LATENCY_MS,
                        help="latency of one request, for the serverless/async cost per 1,000 requests")
    parser.add_argument("--assume-exists", action="store_true",
                        help="dry run: show the update of an existing endpoint (DRY_RUN_UPDATE=1)")
    parser.add_argument("--no-wait", action="store_true",
                        help="create/update and return; `--finish` (make deploy-finish) does the rest later")
    parser.add_argument("--finish", action="store_true",
                        help="wait until InService, register auto scaling, delete what was replaced")
    args = parser.parse_args(argv)

    def go() -> int:
        definition = job_definition.load(args.job_definition)
        if args.package and (args.job or args.tuning or args.model_data):
            raise ValueError("give one source: PACKAGE=, JOB=, TUNING= or MODEL_DATA=")
        if args.finish:
            aws = open_aws(args)
            deleted = finish(aws)
            if not aws.dry_run:
                endpoint = aws.settings.endpoint_name
                print(f"endpoint {endpoint} InService" + (", auto scaling registered" if wants_scaling(aws.settings)
                                                           else "")
                      + "".join(f"\ndeleted {item}" for item in deleted))
            return 0
        check_model_source(args.job, args.tuning, args.model_data)  # before any request
        if args.assume_exists and not args.dry_run:
            raise ValueError("DRY_RUN_UPDATE=1 goes with DRY_RUN=1 (it only changes what a dry run shows)")
        aws = open_aws(args, "role_arn")
        if aws.settings.data_capture or aws.settings.endpoint_type == "async":
            require(aws, "bucket")
        api_requests.check_endpoint_type(aws.settings)  # bad settings: before any request
        api_requests.check_deployment(aws.settings)
        api_requests.check_monitor(aws.settings)
        served, source = served_source(aws, args, definition)
        result = deploy(aws, served, wait=not args.no_wait, latency_ms=args.latency_ms,
                        assume_exists=args.assume_exists)
        if aws.dry_run:
            return 0
        endpoint = result["endpoint"]
        verb = "updated" if result["updated"] else "created"
        print(f"endpoint {endpoint} {verb}: serving {source} ({served.model_data}) with {served.image}, "
              f"{describe_target(aws.settings)}" + (" (wait skipped)" if args.no_wait else ", InService")
              + f"\n  {console_url(aws.settings.region, 'endpoints', endpoint)}"
              f"\n  try it: make invoke IMAGE=path/to/image.jpg; logs: make endpoint-logs; metrics: make "
              f"endpoint-metrics; back to what it served before: make rollback; remove it: make cleanup")
        return 0

    return run(go)


if __name__ == "__main__":
    sys.exit(main())
