"""make deploy: serve a training job's model behind a SageMaker endpoint, created or updated without
downtime; optional data capture and auto scaling; waits until InService.

    python -m scripts.aws.deploy [--job <training job> | --tuning <tuning job> | --model-data s3://.../model.tar.gz]
    python -m scripts.aws.deploy --finish        # after --no-wait: wait, auto scaling, retire what was replaced

Without a source, the newest completed training job named <name_prefix>-* is used. Each deploy makes a
new model and endpoint config, both named <endpoint>-<yyyymmdd-hhmmss>. An existing endpoint is updated
to the new config (SageMaker's blue/green update: the old fleet serves until the new one passes its
health checks; a failed update rolls back); the config and model it replaced are then deleted.

Auto scaling is never lost. An update that keeps the variant's instance type leaves the endpoint's scaling
target and policies in place (Application Auto Scaling allows a new model under them). One that changes it must
take them off first (the update is refused otherwise); they are put back as they were if the update fails or
rolls back, and after a successful one when AUTOSCALING is false. AUTOSCALING=true registers the settings'
target and policy once the endpoint is InService. With --no-wait nothing is registered on an endpoint that is
still Creating or Updating: the script says what is left (`make deploy-finish`).
"""
from __future__ import annotations

import json
import re
import shlex
import sys
from dataclasses import dataclass, field

import botocore.exceptions

from scripts import job_definition, orchestration

from . import api_requests
from .client import Aws, AwsError, error_code
from .common import base_parser, console_url, ecr_image, open_aws, poll, poll_interval, require, run
from .tune import best_trial

BUSY = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting", "UpdateRollbackFailed")
SETTLED = ("InService", "Failed", "OutOfService", "UpdateRollbackFailed")


def ours(name: str, endpoint: str) -> bool:
    """Models and configs this script made for `endpoint`: <endpoint>-<yyyymmdd-hhmmss>."""
    return re.fullmatch(re.escape(endpoint) + r"-\d{8}-\d{6}", name) is not None


def describe_endpoint(aws: Aws, name: str, dry: dict | None = None) -> dict | None:
    """The endpoint, or None when there is none by that name."""
    try:
        return aws.call("sagemaker", "describe_endpoint", EndpointName=name, dry=dry) or None
    except botocore.exceptions.ClientError as error:
        if error_code(error) == "ValidationException" and "Could not find" in str(error):
            return None
        raise


def model_source(aws: Aws, job: str, tuning: str, model_data: str,
                 definition: job_definition.JobDefinition) -> tuple[str, str]:
    """(model.tar.gz S3 URI, where it came from). A tuning job's: its best trial, as `make train` picks it."""
    prefix = definition.name_prefix
    if model_data:
        api_requests.split_s3_uri(model_data)
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
        "TrainingJobStatus": "Completed", "ModelArtifacts": {"S3ModelArtifacts": f"<S3ModelArtifacts of {job}>"}})
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


def scaling_of(aws: Aws, endpoint: str) -> Scaling | None:
    """The endpoint's auto scaling (variant AllTraffic), or None when it has none."""
    resource = api_requests.scalable_target_id(endpoint)
    found = aws.call("application-autoscaling", "describe_scalable_targets", ServiceNamespace="sagemaker",
                     ResourceIds=[resource], ScalableDimension=api_requests.SCALABLE_DIMENSION,
                     dry={"ScalableTargets": []})
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
                     ScalableDimension=api_requests.SCALABLE_DIMENSION, dry={"ScalableTargets": []})
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
    config = describe_config(aws, config_name, dry={"ProductionVariants": [{"ModelName": f"<model of {config_name}>"}]})
    return [v["ModelName"] for v in (config or {}).get("ProductionVariants", [])]


def changes_instance_type(aws: Aws, old_config: str | None) -> bool:
    """Whether the update moves the scaled variant to another instance type (or its old config is unknown):
    Application Auto Scaling then refuses the update while the variant is a scalable target."""
    config = describe_config(aws, old_config, dry={"ProductionVariants": [
        {"VariantName": api_requests.VARIANT, "InstanceType": aws.settings.endpoint_instance_type}]}) \
        if old_config else None
    variants = {v.get("VariantName"): v for v in (config or {}).get("ProductionVariants", [])}
    live = variants.get(api_requests.VARIANT)
    return live is None or live.get("InstanceType") != aws.settings.endpoint_instance_type


def wait_in_service(aws: Aws, name: str) -> dict:
    def text(state):
        return f"endpoint {name}: {state.get('EndpointStatus')}"

    state = poll(lambda: describe_endpoint(aws, name) or {"EndpointStatus": "Deleted"},
                 lambda s: s.get("EndpointStatus") in SETTLED + ("Deleted",), text, poll_interval(aws.settings))
    return state


def deploy(aws: Aws, model_data: str, image: str, wait: bool = True) -> dict:
    settings = aws.settings
    endpoint = settings.endpoint_name
    stamp = f"{endpoint}-{orchestration.timestamp()}"
    existing = describe_endpoint(aws, endpoint, dry={})
    if existing:
        status = existing.get("EndpointStatus")
        if status in BUSY:
            raise AwsError(f"endpoint {endpoint} is {status}: wait until it is InService (or Failed), "
                           "then deploy again")
        if status == "Failed":
            raise AwsError(f"endpoint {endpoint} is Failed ({existing.get('FailureReason', 'no reason given')}); "
                           f"`make cleanup` removes it, then `make deploy` creates it again")
    aws.call("sagemaker", "create_model", dry={}, **api_requests.model(settings, stamp, image, model_data))
    aws.call("sagemaker", "create_endpoint_config", dry={}, **api_requests.endpoint_config(settings, stamp, stamp))
    old_config = existing.get("EndpointConfigName") if existing else None
    live = taken_off = None  # the endpoint's auto scaling; taken_off: when the update needs it off
    if existing:
        live = scaling_of(aws, endpoint)
        if live and changes_instance_type(aws, old_config):
            deregister_scalable_target(aws, endpoint)
            taken_off = live
            print(f"auto scaling of {endpoint} taken off for the update (the instance type changes to "
                  f"{settings.endpoint_instance_type}); it goes back when the update is done", file=sys.stderr)
        try:
            aws.call("sagemaker", "update_endpoint", dry={}, **api_requests.update_endpoint(settings, stamp))
        except Exception:
            if taken_off:  # still InService on its old config
                restore(aws, taken_off)
                print(f"auto scaling of {endpoint} registered again as it was", file=sys.stderr)
            raise
    else:
        if aws.dry_run:
            print(f"# UpdateEndpoint instead of CreateEndpoint when {endpoint} exists", file=aws.out)
        aws.call("sagemaker", "create_endpoint", dry={}, **api_requests.create_endpoint(settings, stamp))
    result = {"endpoint": endpoint, "model": stamp, "config": stamp, "updated": bool(existing),
              "replaced": old_config, "finished": False}
    if aws.dry_run:
        if settings.autoscaling:
            print(f"# once {endpoint} is InService:", file=aws.out)
            scale(aws)
        return result
    if not wait:
        print(left_to_do(aws, "Updating" if existing else "Creating", old_config, taken_off), file=sys.stderr)
        return result
    try:
        state = wait_in_service(aws, endpoint)
    except KeyboardInterrupt:
        print("\n" + left_to_do(aws, "being updated" if existing else "being created", old_config, taken_off),
              file=sys.stderr)
        raise
    status, serving = state.get("EndpointStatus"), state.get("EndpointConfigName")
    if status != "InService":
        scaling_note = (f" Its auto scaling was taken off for the update; once it serves again, register it as it was:"
                        f"\n{taken_off.commands()}" if taken_off else "")
        raise AwsError(f"endpoint {endpoint} is {status}: {state.get('FailureReason', '')}; "
                       f"its container log: CloudWatch /aws/sagemaker/Endpoints/{endpoint}.{scaling_note}")
    if serving != stamp:
        if taken_off:
            restore(aws, taken_off)
        kept = ("its auto scaling was registered again as it was" if taken_off else
                "its auto scaling was not touched" if live else "")
        raise AwsError(f"the update of {endpoint} to {stamp} failed and was rolled back "
                       f"({state.get('FailureReason', '')}); it still serves {serving}"
                       + (f" and {kept}" if kept else "") + f". Container log: CloudWatch /aws/sagemaker/Endpoints/"
                       f"{endpoint}")
    finish_scaling(aws, taken_off)
    if old_config and old_config != stamp:
        retire(aws, old_config, endpoint)
    result["finished"] = True
    return result


def finish_scaling(aws: Aws, taken_off: Scaling | None) -> None:
    """On an InService endpoint: the settings' auto scaling (AUTOSCALING=true), else what was taken off."""
    if aws.settings.autoscaling:
        scale(aws)
    elif taken_off:
        restore(aws, taken_off)
        print(f"auto scaling of {aws.settings.endpoint_name} registered again as it was", file=sys.stderr)


def left_to_do(aws: Aws, status: str, old_config: str | None, taken_off: Scaling | None) -> str:
    """What --no-wait (or Ctrl-C) leaves to do once the endpoint is InService."""
    endpoint = aws.settings.endpoint_name
    steps = []
    if aws.settings.autoscaling:
        steps.append("register its auto scaling (AUTOSCALING=true)")
    if old_config:
        steps.append(f"delete the endpoint config {old_config} it replaces and its model")
    text = f"not waiting: endpoint {endpoint} is {status}; nothing more is done until it is InService."
    if steps:
        text += f" Then `make deploy-finish` waits for it, will {' and '.join(steps)}."
    if taken_off and not aws.settings.autoscaling:
        text += (" Its auto scaling was taken off for the instance type change; once it is InService register it "
                 f"again as it was:\n{taken_off.commands()}")
    return text


def scale(aws: Aws) -> None:
    aws.call("application-autoscaling", "register_scalable_target",
             **api_requests.register_scalable_target(aws.settings))
    aws.call("application-autoscaling", "put_scaling_policy", **api_requests.scaling_policy(aws.settings))


def retire(aws: Aws, config_name: str, endpoint: str) -> None:
    """Delete the config an update replaced, and its models, when this script made them."""
    models = endpoint_models(aws, config_name)
    if ours(config_name, endpoint):
        aws.call("sagemaker", "delete_endpoint_config", EndpointConfigName=config_name)
    for model in models:
        if ours(model, endpoint):
            aws.call("sagemaker", "delete_model", ModelName=model)


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
    """After `make deploy NO_WAIT=1`: wait until the endpoint is InService, register the settings' auto scaling
    (AUTOSCALING=true), delete our configs and models it does not use. Returns what was deleted."""
    endpoint = aws.settings.endpoint_name
    state = (describe_endpoint(aws, endpoint, dry={"EndpointStatus": "InService",
                                                   "EndpointConfigName": f"<config of {endpoint}>"})
             if aws.dry_run else wait_in_service(aws, endpoint))
    if not state or state.get("EndpointStatus") != "InService":
        raise AwsError(f"endpoint {endpoint} is {(state or {}).get('EndpointStatus', 'not there')}"
                       f"{': ' + state['FailureReason'] if state and state.get('FailureReason') else ''}; nothing "
                       f"to finish (container log: CloudWatch /aws/sagemaker/Endpoints/{endpoint})")
    if aws.settings.autoscaling:
        scale(aws)
    live = state.get("EndpointConfigName")
    in_use = set(endpoint_models(aws, live))
    deleted = []
    for config in leftovers(aws, endpoint, "config"):
        if config != live:
            aws.call("sagemaker", "delete_endpoint_config", EndpointConfigName=config)
            deleted.append(f"endpoint config {config}")
    for model in leftovers(aws, endpoint, "model"):
        if model not in in_use:
            aws.call("sagemaker", "delete_model", ModelName=model)
            deleted.append(f"model {model}")
    return deleted


def main(argv=None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--job", default="", help="training job whose model to serve")
    parser.add_argument("--tuning", default="", help="serve the best training job of this tuning job")
    parser.add_argument("--model-data", default="", help="a model.tar.gz in S3")
    parser.add_argument("--job-definition", help="job definition (its name_prefix finds the newest job)")
    parser.add_argument("--no-wait", action="store_true",
                        help="create/update and return; `--finish` (make deploy-finish) does the rest later")
    parser.add_argument("--finish", action="store_true",
                        help="wait until InService, register auto scaling (AUTOSCALING=true), delete what was replaced")
    args = parser.parse_args(argv)

    def go() -> int:
        definition = job_definition.load(args.job_definition)
        if args.finish:
            aws = open_aws(args)
            deleted = finish(aws)
            if not aws.dry_run:
                endpoint = aws.settings.endpoint_name
                print(f"endpoint {endpoint} InService" + (", auto scaling registered" if aws.settings.autoscaling
                                                           else "")
                      + "".join(f"\ndeleted {item}" for item in deleted))
            return 0
        aws = open_aws(args, "role_arn")
        if aws.settings.data_capture:
            require(aws, "bucket")
        model_data, source = model_source(aws, args.job, args.tuning, args.model_data, definition)
        image = ecr_image(aws, aws.settings.serving_repository)
        result = deploy(aws, model_data, image, wait=not args.no_wait)
        if aws.dry_run:
            return 0
        endpoint = result["endpoint"]
        verb = "updated" if result["updated"] else "created"
        print(f"endpoint {endpoint} {verb}: serving {source} ({model_data}) with {image} on "
              f"{aws.settings.endpoint_instance_count} x {aws.settings.endpoint_instance_type}"
              + (" (wait skipped)" if args.no_wait else ", InService")
              + f"\n  {console_url(aws.settings.region, 'endpoints', endpoint)}"
              f"\n  try it: make invoke IMAGE=path/to/image.jpg; metrics: make endpoint-metrics; "
              f"remove it: make cleanup")
        return 0

    return run(go)


if __name__ == "__main__":
    sys.exit(main())
