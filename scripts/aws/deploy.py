"""make deploy: serve a training job's model behind a SageMaker endpoint, created or updated without
downtime; optional data capture and auto scaling; waits until InService.

    python -m scripts.aws.deploy [--job <training job> | --tuning <tuning job> | --model-data s3://.../model.tar.gz]

Without a source, the newest completed training job named <name_prefix>-* is used. Each deploy makes a
new model and endpoint config, both named <endpoint>-<yyyymmdd-hhmmss>. An existing endpoint is updated
to the new config (SageMaker's blue/green update: the old fleet serves until the new one passes its
health checks; a failed update rolls back); the config and model it replaced are then deleted.
"""
from __future__ import annotations

import re
import sys

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


def scalable_target_registered(aws: Aws, endpoint: str) -> bool:
    found = aws.call("application-autoscaling", "describe_scalable_targets", ServiceNamespace="sagemaker",
                     ResourceIds=[api_requests.scalable_target_id(endpoint)],
                     ScalableDimension=api_requests.SCALABLE_DIMENSION, dry={"ScalableTargets": []})
    return bool(found.get("ScalableTargets"))


def deregister_scalable_target(aws: Aws, endpoint: str) -> None:
    aws.call("application-autoscaling", "deregister_scalable_target", ServiceNamespace="sagemaker",
             ResourceId=api_requests.scalable_target_id(endpoint), ScalableDimension=api_requests.SCALABLE_DIMENSION)


def endpoint_models(aws: Aws, config_name: str) -> list[str]:
    try:
        config = aws.call("sagemaker", "describe_endpoint_config", EndpointConfigName=config_name,
                          dry={"ProductionVariants": [{"ModelName": f"<model of {config_name}>"}]})
    except botocore.exceptions.ClientError as error:
        if error_code(error) == "ValidationException":
            return []
        raise
    return [v["ModelName"] for v in config.get("ProductionVariants", [])]


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
    if existing:
        # Application Auto Scaling refuses updates that change a scaled variant: deregister, update, register.
        if scalable_target_registered(aws, endpoint):
            deregister_scalable_target(aws, endpoint)
        aws.call("sagemaker", "update_endpoint", dry={}, **api_requests.update_endpoint(settings, stamp))
    else:
        if aws.dry_run:
            print(f"# UpdateEndpoint instead of CreateEndpoint when {endpoint} exists", file=aws.out)
        aws.call("sagemaker", "create_endpoint", dry={}, **api_requests.create_endpoint(settings, stamp))
    result = {"endpoint": endpoint, "model": stamp, "config": stamp, "updated": bool(existing)}
    if aws.dry_run or not wait:
        if settings.autoscaling:
            scale(aws)
        return result
    state = wait_in_service(aws, endpoint)
    if state.get("EndpointStatus") != "InService":
        raise AwsError(f"endpoint {endpoint} is {state.get('EndpointStatus')}: {state.get('FailureReason', '')}; "
                       f"its container log: CloudWatch /aws/sagemaker/Endpoints/{endpoint}")
    if state.get("EndpointConfigName") != stamp:
        raise AwsError(f"the update of {endpoint} to {stamp} failed and was rolled back "
                       f"({state.get('FailureReason', '')}); it still serves {state.get('EndpointConfigName')}. "
                       f"Container log: CloudWatch /aws/sagemaker/Endpoints/{endpoint}")
    if settings.autoscaling:
        scale(aws)
    if old_config and old_config != stamp:
        retire(aws, old_config, endpoint)
    return result


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


def main(argv=None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--job", default="", help="training job whose model to serve")
    parser.add_argument("--tuning", default="", help="serve the best training job of this tuning job")
    parser.add_argument("--model-data", default="", help="a model.tar.gz in S3")
    parser.add_argument("--job-definition", help="job definition (its name_prefix finds the newest job)")
    parser.add_argument("--no-wait", action="store_true")
    args = parser.parse_args(argv)

    def go() -> int:
        definition = job_definition.load(args.job_definition)
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
