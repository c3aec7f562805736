"""make teardown [ALL=1] [YES=1]: remove what this project made in the account, after listing it.

    python -m scripts.aws.teardown [--all] [--yes] [--dry-run]

Without --all: the serving side, what costs while idle: the settings' endpoint with its auto scaling, its endpoint
configs and models (<endpoint>-<yyyymmdd-hhmmss>, as `make cleanup` finds them), the alarms `make deploy` made
(<endpoint>-...: rollback, async wake-up, the monitor's), its log group. With --all, everything else the project
made: the model package group and its versions, every S3 prefix of the settings, the two ECR repositories, the log
streams of this project's training and transform jobs (<name_prefix>-..., features-<name_prefix>-...; the log
groups are SageMaker's, shared by every job of the account), the execution role (its inline policy of make
bootstrap; the role when nothing else is attached and it carries the settings' tags) and the bucket (when it
carries the settings' tags and nothing else is left in it).

Everything is listed first (read-only requests); then, unless --yes (YES=1), it asks before deleting anything.
Finished jobs cannot be deleted (SageMaker keeps their records); running ones are not stopped.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Callable

import botocore.exceptions

from scripts import job_definition

from . import api_requests
from .client import Aws, AwsError, error_code
from .common import base_parser, open_aws, run
from .deploy import describe_endpoint, endpoint_models, leftovers, scalable_target_registered
from .settings import PREFIXES
from .trial_checkpoints import delete_folder


@dataclass
class Item:
    kind: str
    name: str
    delete: Callable[[], None] = field(repr=False)

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


# --- what there is (read-only) ----------------------------------------------------------------------------------

def serving_items(aws: Aws) -> list[Item]:
    """The endpoint, its scaling, configs, models, alarms and log group (the order they go in)."""
    settings, items = aws.settings, []
    endpoint = settings.endpoint_name
    state = describe_endpoint(aws, endpoint, dry={"EndpointConfigName": f"{endpoint}-<yyyymmdd-hhmmss>"})
    configs = [state["EndpointConfigName"]] if state else []
    if state and scalable_target_registered(aws, endpoint):
        items.append(Item("scalable target", api_requests.scalable_target_id(endpoint), lambda: aws.call(
            "application-autoscaling", "deregister_scalable_target", ServiceNamespace="sagemaker",
            ResourceId=api_requests.scalable_target_id(endpoint), ScalableDimension=api_requests.SCALABLE_DIMENSION)))
    if state:
        items.append(Item("endpoint", endpoint,
                          lambda: aws.call("sagemaker", "delete_endpoint", EndpointName=endpoint)))
    configs += [name for name in leftovers(aws, endpoint, "config") if name not in configs]
    models = [m for config in configs for m in endpoint_models(aws, config)]
    models += [m for m in leftovers(aws, endpoint, "model") if m not in models]
    items += [Item("endpoint config", c, lambda c=c: aws.call("sagemaker", "delete_endpoint_config",
                                                               EndpointConfigName=c)) for c in configs]
    items += [Item("model", m, lambda m=m: aws.call("sagemaker", "delete_model", ModelName=m))
              for m in dict.fromkeys(models)]
    names = [a["AlarmName"] for a in api_requests.rollback_alarms(settings)]
    names.append(api_requests.async_wake_alarm(settings, "")["AlarmName"])
    names += api_requests.monitor_alarm_names(endpoint)
    found = aws.call("cloudwatch", "describe_alarms", AlarmNames=names,
                     dry={"MetricAlarms": [{"AlarmName": name} for name in names]})
    alarms = [a["AlarmName"] for a in found.get("MetricAlarms", [])]
    if alarms:
        items.append(Item("alarms", ", ".join(alarms), lambda: aws.call("cloudwatch", "delete_alarms",
                                                                         AlarmNames=alarms)))
    group = api_requests.endpoint_log_group(endpoint)
    groups = aws.call("logs", "describe_log_groups", logGroupNamePrefix=group,
                      dry={"logGroups": [{"logGroupName": group}]}).get("logGroups", [])
    if any(g["logGroupName"] == group for g in groups):
        items.append(Item("log group", group, lambda: aws.call("logs", "delete_log_group", logGroupName=group)))
    return items


def registry_items(aws: Aws) -> list[Item]:
    group = aws.settings.model_package_group
    try:
        aws.call("sagemaker", "describe_model_package_group", ModelPackageGroupName=group, dry={})
    except botocore.exceptions.ClientError as error:
        if error_code(error) in ("ValidationException", "ResourceNotFound"):
            return []
        raise
    items = []
    arn = api_requests.sagemaker_arn(aws.settings, "model-package", f"{group}/1")
    dry = {"ModelPackageSummaryList": [{"ModelPackageArn": arn}]}
    for page in aws.paginate("sagemaker", "list_model_packages", dry=dry, ModelPackageGroupName=group):
        items += [Item("model package", p["ModelPackageArn"], lambda arn=p["ModelPackageArn"]: aws.call(
            "sagemaker", "delete_model_package", ModelPackageName=arn))
            for p in page.get("ModelPackageSummaryList", [])]
    items.append(Item("model package group", group, lambda: aws.call(
        "sagemaker", "delete_model_package_group", ModelPackageGroupName=group)))
    return items


def s3_items(aws: Aws) -> list[Item]:
    """Every prefix of the settings that holds objects."""
    settings, items = aws.settings, []
    for attr in PREFIXES:
        prefix = settings.values[attr] + "/"
        try:
            page = aws.call("s3", "list_objects_v2", Bucket=settings.bucket, Prefix=prefix, MaxKeys=1,
                            dry={"KeyCount": 1})
        except botocore.exceptions.ClientError as error:
            if error_code(error) == "NoSuchBucket":
                return []
            raise
        if page.get("KeyCount", 0):
            items.append(Item("S3 prefix", f"s3://{settings.bucket}/{prefix}",
                              lambda prefix=prefix: delete_folder(aws, settings.bucket, prefix)))
    return items


def repository_items(aws: Aws) -> list[Item]:
    names = [aws.settings.training_repository, aws.settings.serving_repository]
    items = []
    for name in names:
        try:
            aws.call("ecr", "describe_repositories", repositoryNames=[name], dry={"repositories": [{}]})
        except botocore.exceptions.ClientError as error:
            if error_code(error) == "RepositoryNotFoundException":
                continue
            raise
        items.append(Item("ECR repository (with its images)", name, lambda name=name: aws.call(
            "ecr", "delete_repository", repositoryName=name, force=True)))
    return items


def log_stream_items(aws: Aws, name_prefix: str) -> list[Item]:
    """This project's jobs' streams in SageMaker's shared log groups."""
    items = []
    for group, prefixes in ((api_requests.TRAINING_LOG_GROUP, (f"{name_prefix}-", f"features-{name_prefix}-")),
                            ("/aws/sagemaker/TransformJobs", (f"{name_prefix}-batch-",))):
        for prefix in prefixes:
            streams = []
            try:
                for page in aws.paginate("logs", "describe_log_streams", input_token="nextToken", logGroupName=group,
                                         logStreamNamePrefix=prefix,
                                         dry={"logStreams": [{"logStreamName": f"{prefix}<job>/algo-1-<time>"}]}):
                    streams += [s["logStreamName"] for s in page.get("logStreams", [])]
            except botocore.exceptions.ClientError as error:
                if error_code(error) == "ResourceNotFoundException":
                    continue
                raise
            if streams:
                items.append(Item(f"log streams in {group}", f"{prefix}* ({len(streams)})",
                                  lambda group=group, streams=streams: [aws.call(
                                      "logs", "delete_log_stream", logGroupName=group, logStreamName=stream)
                                      for stream in streams]))
    return items


def _tagged_ours(aws: Aws, tags: list[dict]) -> bool:
    wanted = aws.settings.tag_list
    return bool(wanted) and all(tag in tags for tag in wanted)


def role_items(aws: Aws) -> list[Item]:
    settings = aws.settings
    name = api_requests.role_name_and_path(settings.role_arn)[0]
    try:
        role = aws.call("iam", "get_role", RoleName=name, dry={"Role": {"Tags": settings.tag_list}})
    except botocore.exceptions.ClientError as error:
        if error_code(error) == "NoSuchEntity":
            return []
        raise
    policies = aws.call("iam", "list_role_policies", RoleName=name,
                        dry={"PolicyNames": [api_requests.ROLE_POLICY_NAME]}).get("PolicyNames", [])
    attached = aws.call("iam", "list_attached_role_policies", RoleName=name,
                        dry={"AttachedPolicies": []}).get("AttachedPolicies", [])
    items = []
    if api_requests.ROLE_POLICY_NAME in policies:
        items.append(Item(f"inline policy of role {name}", api_requests.ROLE_POLICY_NAME, lambda: aws.call(
            "iam", "delete_role_policy", RoleName=name, PolicyName=api_requests.ROLE_POLICY_NAME)))
    others = [p for p in policies if p != api_requests.ROLE_POLICY_NAME] + [p["PolicyName"] for p in attached]
    if not others and _tagged_ours(aws, role.get("Role", {}).get("Tags", [])):
        items.append(Item("execution role", name, lambda: aws.call("iam", "delete_role", RoleName=name)))
    elif others:
        print(f"note: role {name} is kept: it has other policies too ({', '.join(others)})", file=sys.stderr)
    return items


def bucket_items(aws: Aws, emptied: list[str]) -> list[Item]:
    """The bucket, when it is ours (the settings' tags) and nothing but the prefixes about to go is in it."""
    bucket = aws.settings.bucket
    try:
        tags = aws.call("s3", "get_bucket_tagging", Bucket=bucket, dry={"TagSet": aws.settings.tag_list})
    except botocore.exceptions.ClientError as error:
        if error_code(error) in ("NoSuchTagSet", "NoSuchBucket"):
            return []
        raise
    if not _tagged_ours(aws, tags.get("TagSet", [])):
        return []
    listed = aws.call("s3", "list_objects_v2", Bucket=bucket, MaxKeys=1000, dry={"Contents": []})
    if any(not any(o["Key"].startswith(p) for p in emptied) for o in listed.get("Contents", [])):
        return []  # something of someone else's is in it
    return [Item("bucket (once the prefixes above are gone)", bucket,
                 lambda: aws.call("s3", "delete_bucket", Bucket=bucket))]


def inventory(aws: Aws, everything: bool) -> list[Item]:
    items = serving_items(aws)
    if everything:
        name_prefix = job_definition.load().name_prefix
        prefixes = s3_items(aws)
        items += registry_items(aws) + prefixes + repository_items(aws) + log_stream_items(aws, name_prefix)
        items += role_items(aws)
        items += bucket_items(aws, [i.name.split("/", 3)[3] for i in prefixes])
    return items


# --- deleting, after asking --------------------------------------------------------------------------------------

def confirmed(items: list[Item], yes: bool, ask: Callable[[str], str] = input) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        raise AwsError("not asking without a terminal: YES=1 confirms the deletion of everything listed above")
    return ask(f"delete these {len(items)}? type yes: ").strip().lower() == "yes"


def remove(items: list[Item]) -> list[str]:
    deleted = []
    for item in items:
        try:
            item.delete()
        except botocore.exceptions.ClientError as error:
            if error_code(error) in ("ResourceNotFoundException", "NoSuchEntity", "NoSuchBucket",
                                     "RepositoryNotFoundException"):
                continue  # gone meanwhile
            raise AwsError(f"deleting {item} failed: {error}; deleted before it: {', '.join(deleted) or 'nothing'}. "
                           f"Run make teardown again for the rest") from None
        deleted.append(str(item))
    return deleted


def main(argv=None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="everything the project made, not only the serving side")
    parser.add_argument("--yes", action="store_true", help="do not ask (YES=1)")
    args = parser.parse_args(argv)

    def go() -> int:
        aws = open_aws(args, *(("role_arn", "bucket") if args.all else ()))
        items = inventory(aws, args.all)
        if not items:
            print("nothing of this project's to delete"
                  + ("" if args.all else " on the serving side (ALL=1: the rest)"))
            return 0
        listing = "\n".join(f"  {item}" for item in items)
        if aws.dry_run:
            print(f"# then, once confirmed, the deletion of (a dry run lists placeholders):\n{listing}", file=aws.out)
            remove(items)
            return 0
        print(f"make teardown{' ALL=1' if args.all else ''} deletes:\n{listing}")
        if not confirmed(items, args.yes):
            print("nothing deleted")
            return 1
        for line in remove(items):
            print(f"deleted {line}")
        return 0

    return run(go)


if __name__ == "__main__":
    sys.exit(main())
