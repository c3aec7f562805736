"""make iam-policy [OUT=dir]: the IAM policies this project needs, derived from what its targets send.

Every target's dry run is recorded (dry_runs.py: each request, with its parameters), and each request becomes
the IAM actions it needs on the resources it names (`grants`). The documents grant exactly those actions,
scoped to the settings: the bucket's prefixes, the two ECR repositories, the job definition's name prefix, the
endpoint, the model package group, the KMS key and the execution role itself.

    caller-policy.json            who runs make day to day (a person, CI): every target but the two below
    admin-policy.json             make bootstrap and make teardown ALL=1, run once by an administrator (they create
                                  and delete roles and buckets: kept out of the caller's policy)
    execution-role-policy.json    the SageMaker execution role: what the jobs and endpoints the requests create
                                  read and write (their S3 locations, images, logs, key, VPC network interfaces)
    execution-role-trust.json     its trust policy: SageMaker, for this account only

Some actions go with a request without being the request (`IMPLIED`): creating a tagged resource also needs
AddTags, a request that names the role needs iam:PassRole on it, one that names the key needs KMS grants,
registering auto scaling needs the service-linked role. GetCallerIdentity needs no permission.
"""
from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from scripts import REPO_ROOT, job_definition

from . import api_requests, dry_runs, push_images
from .common import base_parser, fill_placeholders, repo_relative, run
from .settings import PREFIXES, Settings, SettingsError, load

OUT_DIR = REPO_ROOT / "build" / "iam"
FILES = {"caller": "caller-policy.json", "admin": "admin-policy.json",
         "execution-role": "execution-role-policy.json", "execution-role-trust": "execution-role-trust.json"}
ROLE_POLICY_LIMIT = 10_240  # characters of a role's inline policies (IAM quota)
MANAGED_POLICY_LIMIT = 6_144  # characters of a customer managed policy, whitespace not counted (IAM quota)

# IAM action names of S3 requests that are not s3:<API name>.
S3_ACTIONS = {
    "ListObjectsV2": "s3:ListBucket", "HeadObject": "s3:GetObject", "DeleteObjects": "s3:DeleteObject",
    "GetBucketLocation": "s3:GetBucketLocation", "GetBucketEncryption": "s3:GetEncryptionConfiguration",
    "PutBucketEncryption": "s3:PutEncryptionConfiguration", "GetPublicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "PutBucketLifecycleConfiguration": "s3:PutLifecycleConfiguration",
    "GetBucketLifecycleConfiguration": "s3:GetLifecycleConfiguration",
}
IAM_PREFIX = {"sagemaker-runtime": "sagemaker"}
NO_PERMISSION = {("sts", "GetCallerIdentity")}  # answered for any caller
AAS_ROLE = "sagemaker.application-autoscaling.amazonaws.com"
AAS_ROLE_NAME = "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"


@dataclass(frozen=True)
class Grant:
    action: str
    resource: str
    condition: str = ""  # JSON of a Condition block, "" for none


# --- the scope: every resource this project touches, from the settings -------------------------------------------

@dataclass(frozen=True)
class Scope:
    settings: Settings
    name_prefix: str

    @property
    def account(self) -> str:
        return self.settings.account_id or "<account-id>"

    def arn(self, service: str, resource: str, region: bool = True, account: bool = True) -> str:
        return (f"arn:{self.settings.partition}:{service}:{self.settings.region if region else ''}:"
                f"{self.account if account else ''}:{resource}")

    def sagemaker(self, kind: str, name: str) -> str:
        return api_requests.sagemaker_arn(self.settings, kind, name)

    def s3(self, key: str | None = None) -> str:
        bucket = f"arn:{self.settings.partition}:s3:::{self.settings.bucket}"
        return bucket if key is None else f"{bucket}/{key}"

    @property
    def role(self) -> str:
        return self.settings.role_arn

    def log_group(self, name: str) -> str:
        return self.arn("logs", f"log-group:{name}:*")

    def patterns(self) -> list[str]:
        """Every resource the policies may name: a grant on anything else is a bug (it raises)."""
        s, p, endpoint = self.settings, self.name_prefix, self.settings.endpoint_name
        group = s.model_package_group
        sagemaker = [self.sagemaker("training-job", f"{p}-*"), self.sagemaker("training-job", f"features-{p}-*"),
                     self.sagemaker("hyper-parameter-tuning-job", f"{p}-*"), self.sagemaker("model", f"{endpoint}-*"),
                     self.sagemaker("model", f"{p}-batch-*"), self.sagemaker("endpoint-config", f"{endpoint}-*"),
                     self.sagemaker("endpoint", endpoint), self.sagemaker("transform-job", f"{p}-batch-*"),
                     self.sagemaker("model-package-group", group), self.sagemaker("model-package", f"{group}/*")]
        s3 = [self.s3(), *(self.s3(f"{s.values[attr]}/*") for attr in PREFIXES)]
        ecr = [self.arn("ecr", f"repository/{name}") for name in (s.training_repository, s.serving_repository)]
        logs = [self.log_group(api_requests.TRAINING_LOG_GROUP), self.log_group(TRANSFORM_LOG_GROUP),
                self.log_group(api_requests.endpoint_log_group(endpoint))]
        alarms = [self.arn("cloudwatch", f"alarm:{endpoint}-*"),
                  self.arn("cloudwatch", f"alarm:TargetTracking-{api_requests.scalable_target_id(endpoint)}-*")]
        iam = [self.role, aas_role(self)]
        kms = [s.kms_key] if s.kms_key else []
        topics = [t for t in (s.async_success_topic, s.async_error_topic) if t]
        found = sagemaker + s3 + ecr + logs + alarms + iam + kms + topics
        return [p for p in found if not any(q != p and q.endswith("*") and p.startswith(q[:-1]) for q in found)]


TRANSFORM_LOG_GROUP = "/aws/sagemaker/TransformJobs"


def aas_role(scope: Scope) -> str:
    return f"arn:{scope.settings.partition}:iam::{scope.account}:role/aws-service-role/{AAS_ROLE}/{AAS_ROLE_NAME}"


# --- one request -> the actions it needs, on which resources ----------------------------------------------------

SAGEMAKER_NAMES = {"TrainingJobName": "training-job", "HyperParameterTuningJobName": "hyper-parameter-tuning-job",
                   "ModelName": "model", "EndpointConfigName": "endpoint-config", "EndpointName": "endpoint",
                   "TransformJobName": "transform-job", "ModelPackageGroupName": "model-package-group"}


def _sagemaker_resources(scope: Scope, api: str, params: dict) -> list[str]:
    if api.startswith("List") and api not in ("ListTags", "ListTrainingJobsForHyperParameterTuningJob"):
        return ["*"]  # listings name no resource
    found = [scope.sagemaker(kind, params[key]) for key, kind in SAGEMAKER_NAMES.items()
             if isinstance(params.get(key), str) and not (key == "ModelName" and "TransformJobName" in params)]
    for key in ("ResourceArn", "ModelPackageArn", "ModelPackageName"):
        if isinstance(params.get(key), str):  # an ARN (a dry run's may hold placeholders)
            found.append(params[key])
    return found


def _s3_resources(scope: Scope, api: str, params: dict) -> list[str]:
    bucket = f"arn:{scope.settings.partition}:s3:::{params['Bucket']}"
    if api == "ListObjectsV2" or "Key" not in params and "Delete" not in params:
        return [bucket]
    keys = [item["Key"] for item in params["Delete"]["Objects"]] if "Delete" in params else [params["Key"]]
    return [f"{bucket}/{key}" for key in keys]


def _resources(scope: Scope, service: str, api: str, params: dict) -> list[str]:
    if service in ("sagemaker", "sagemaker-runtime"):
        return _sagemaker_resources(scope, api, params) or ["*"]
    if service == "s3":
        return _s3_resources(scope, api, params)
    if service == "ecr":
        return [scope.arn("ecr", f"repository/{params['repositoryName']}")] if "repositoryName" in params else \
            [scope.arn("ecr", f"repository/{name}") for name in params.get("repositoryNames", [])] or ["*"]
    if service == "logs":
        return [scope.log_group(params["logGroupName"])] if "logGroupName" in params else ["*"]
    if service == "cloudwatch":
        names = [params["AlarmName"]] if "AlarmName" in params else params.get("AlarmNames", [])
        return [scope.arn("cloudwatch", f"alarm:{name}") for name in names] or ["*"]
    if service == "iam":
        return [scope.role]
    return ["*"]  # Application Auto Scaling, GetMetricData, GetAuthorizationToken: no resource-level permissions


def _action(service: str, api: str) -> list[str]:
    if service == "s3":
        return [S3_ACTIONS.get(api, f"s3:{api}")]
    if (service, api) == ("ecr", push_images.ENGINE_PUSH):
        return [f"ecr:{action}" for action in push_images.ENGINE_PUSH_ACTIONS]
    return [f"{IAM_PREFIX.get(service, service)}:{api}"]


def _strings(value) -> list[str]:
    """Every string anywhere in a request's parameters."""
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return [value] if isinstance(value, str) else []


def _condition(**block) -> str:
    return json.dumps(block, sort_keys=True)


def _implied(scope: Scope, service: str, api: str, params: dict, resources: list[str]) -> list[Grant]:
    """What goes with a request besides its own action (see the module's docstring)."""
    settings, found = scope.settings, []
    strings = _strings(params)
    if (service, api) in (("sagemaker", "CreateTrainingJob"), ("sagemaker", "CreateHyperParameterTuningJob"),
                          ("sagemaker", "CreateModel"), ("sagemaker", "CreateTransformJob")) \
            and settings.role_arn in strings:
        found.append(Grant("iam:PassRole", scope.role,
                           _condition(StringEquals={"iam:PassedToService": "sagemaker.amazonaws.com"})))
    if api.startswith("Create") and ("Tags" in params or "tags" in params):  # tags given at creation: AddTags too
        tag_action = {"sagemaker": "sagemaker:AddTags", "ecr": "ecr:TagResource", "iam": "iam:TagRole"}.get(service)
        found += [Grant(tag_action, resource) for resource in resources if tag_action]
    if service == "cloudwatch" and api == "PutMetricAlarm" and "Tags" in params:
        found += [Grant("cloudwatch:TagResource", resource) for resource in resources]
    if settings.kms_key and settings.kms_key in strings and service in ("sagemaker", "ecr"):
        # SageMaker and ECR use the key through grants made with the caller's permission
        found += [Grant("kms:CreateGrant", settings.kms_key, _condition(Bool={"kms:GrantIsForAWSResource": "true"})),
                  Grant("kms:DescribeKey", settings.kms_key)]
    if settings.kms_key and service == "s3" and api == "PutObject" and params.get("SSEKMSKeyId"):
        found += [Grant("kms:GenerateDataKey", settings.kms_key), Grant("kms:Decrypt", settings.kms_key)]
    if settings.kms_key and service == "s3" and api in ("GetObject", "HeadObject"):
        found.append(Grant("kms:Decrypt", settings.kms_key))  # objects SageMaker wrote with the key
    if (service, api) == ("s3", "CreateBucket") and "ObjectOwnership" in params:
        found.append(Grant("s3:PutBucketOwnershipControls", scope.s3()))
    if service == "application-autoscaling" and api == "RegisterScalableTarget":
        found.append(Grant("iam:CreateServiceLinkedRole", aas_role(scope),
                           _condition(StringLike={"iam:AWSServiceName": AAS_ROLE})))
        endpoint = scope.sagemaker("endpoint", scope.settings.endpoint_name)
        found += [Grant(f"sagemaker:{action}", endpoint) for action in ("DescribeEndpoint",
                                                                       "UpdateEndpointWeightsAndCapacities")]
        found.append(Grant("sagemaker:DescribeEndpointConfig", scope.sagemaker("endpoint-config",
                                                                               f"{settings.endpoint_name}-*")))
    target = api_requests.scalable_target_id(settings.endpoint_name)
    tracking = scope.arn("cloudwatch", f"alarm:TargetTracking-{target}-*")
    if service == "application-autoscaling" and api == "PutScalingPolicy" \
            and params.get("PolicyType") == "TargetTrackingScaling":  # its alarms are made with the caller's rights
        found += [Grant(f"cloudwatch:{action}", tracking) for action in ("PutMetricAlarm", "DescribeAlarms",
                                                                          "DeleteAlarms")]
    if service == "application-autoscaling" and api == "DeregisterScalableTarget":
        found.append(Grant("cloudwatch:DeleteAlarms", tracking))
    return found


def _list_condition(scope: Scope, params: dict) -> str:
    """ListBucket is scoped by the listed prefix (the settings' prefix it falls under)."""
    prefix = params.get("Prefix", "")
    if not prefix:
        return ""
    return _condition(StringLike={"s3:prefix": [f"{_owning_prefix(scope, prefix)}/*"]})


def _owning_prefix(scope: Scope, key: str) -> str:
    for attr in PREFIXES:
        value = scope.settings.values[attr]
        if key == value or key.startswith(value + "/"):
            return value
    return key.rstrip("/")


def _request_condition(scope: Scope, service: str, api: str, params: dict) -> str:
    """The condition keys that narrow a request's grant: ListBucket's prefix; PutMetricData, which names no
    resource, to the request's namespace (the monitor's)."""
    if (service, api) == ("s3", "ListObjectsV2"):
        return _list_condition(scope, params)
    if (service, api) == ("cloudwatch", "PutMetricData"):
        return _condition(StringEquals={"cloudwatch:namespace": params["Namespace"]})
    return ""


def grants(scope: Scope, service: str, api: str, params: dict) -> list[Grant]:
    """The actions one request needs and the resources it needs them on."""
    if (service, api) in NO_PERMISSION:
        return []
    resources = _resources(scope, service, api, params)
    condition = _request_condition(scope, service, api, params)
    found = [Grant(action, resource, condition) for action in _action(service, api) for resource in resources]
    return found + _implied(scope, service, api, params, resources)


# --- matching resources with wildcards ------------------------------------------------------------------------------

PLACEHOLDER = "\x00"  # a dry run's <...>: any value of one ARN part (no / or :), where IAM's * is anything
SEPARATORS = "/:"


def _glob(text: str) -> str:
    return re.sub(r"<[^<>]*>", PLACEHOLDER, text)


def _accepts(wildcard: str, char: str) -> bool:
    return wildcard == "*" or char not in SEPARATORS


def globs_meet(a: str, b: str) -> bool:
    """Whether some string matches both patterns: IAM's * (any characters) and a dry run's placeholders (any
    characters of one ARN part) on either side."""
    a, b = _glob(a), _glob(b)
    wild = ("*", PLACEHOLDER)
    seen: dict[tuple[int, int], bool] = {}

    def meet(i: int, j: int) -> bool:
        if (i, j) not in seen:
            seen[(i, j)] = False  # a cycle adds nothing
            seen[(i, j)] = _meet(i, j)
        return seen[(i, j)]

    def _meet(i: int, j: int) -> bool:
        if i == len(a) and j == len(b):
            return True
        if i < len(a) and a[i] in wild and (meet(i + 1, j) or (j < len(b) and b[j] not in wild
                                                                and _accepts(a[i], b[j]) and meet(i, j + 1))):
            return True
        if j < len(b) and b[j] in wild and (meet(i, j + 1) or (i < len(a) and a[i] not in wild
                                                                and _accepts(b[j], a[i]) and meet(i + 1, j))):
            return True
        return i < len(a) and j < len(b) and a[i] not in wild and a[i] == b[j] and meet(i + 1, j + 1)

    return meet(0, 0)


def matches(pattern: str, resource: str) -> bool:
    """IAM's match of a resource (which may hold a dry run's placeholders) against a policy's pattern."""
    return pattern == "*" or globs_meet(pattern, resource)


def scoped(scope: Scope, grant: Grant, patterns: list[str]) -> list[str]:
    """The scope's patterns a grant's resource falls in (the narrowest ones: '*' only for '*')."""
    if grant.resource == "*":
        return ["*"]
    found = [p for p in patterns if p != "*" and matches(p, grant.resource)]
    if not found:
        raise SettingsError(f"{grant.action} on {grant.resource}: outside the settings' scope (bucket prefixes, "
                            f"repositories, name prefixes, key, role)")
    return found


# --- documents ------------------------------------------------------------------------------------------------------

def statements(scope: Scope, found: list[Grant]) -> list[dict]:
    """Allow statements: each resource pattern with every action granted on it, the patterns with the same
    actions (and condition) in one statement, in a stable order."""
    patterns = scope.patterns()
    by_resource: dict[tuple[str, str], set[str]] = {}
    for grant in _merged_listings(found):
        for resource in scoped(scope, grant, patterns):
            by_resource.setdefault((resource, grant.condition), set()).add(grant.action)
    grouped: dict[tuple[tuple[str, ...], str], list[str]] = {}
    for (resource, condition), actions in by_resource.items():
        grouped.setdefault((tuple(sorted(actions)), condition), []).append(resource)
    result = []
    for (actions, condition), resources in sorted(grouped.items()):
        resources = sorted(resources)
        statement = {"Sid": _sid(actions, len(result)), "Effect": "Allow", "Action": list(actions),
                     "Resource": resources if len(resources) > 1 else resources[0]}
        if condition:
            statement["Condition"] = json.loads(condition)
        result.append(statement)
    return result


def _merged_listings(found: list[Grant]) -> list[Grant]:
    """A bucket's listings by prefix as one grant with every prefix (ListBucket without a prefix stays apart)."""
    prefixes: dict[str, set[str]] = {}
    others = []
    for grant in found:
        if grant.action == "s3:ListBucket" and grant.condition:
            prefixes.setdefault(grant.resource, set()).update(json.loads(grant.condition)["StringLike"]["s3:prefix"])
        else:
            others.append(grant)
    return others + [Grant("s3:ListBucket", bucket, _condition(StringLike={"s3:prefix": sorted(listed)}))
                     for bucket, listed in prefixes.items()]


def _sid(actions, index: int) -> str:
    services = sorted({a.split(":")[0] for a in actions})
    return "".join(part.capitalize() for s in services for part in s.split("-")) + str(index + 1)


def document(scope: Scope, found: list[Grant]) -> dict:
    return {"Version": "2012-10-17", "Statement": statements(scope, found)}


def size(doc: dict) -> int:
    """A policy's length as IAM counts it against its quotas (no whitespace)."""
    return len(json.dumps(doc, separators=(",", ":")))


def managed_parts(doc: dict) -> list[dict]:
    """A policy as customer managed policies IAM accepts (MANAGED_POLICY_LIMIT each): its statements in order, a
    new document where the next statement would pass the limit. Long bucket, endpoint or key names can push the
    caller's policy over it; the parts together grant exactly what the policy does."""
    parts: list[list[dict]] = [[]]
    for statement in doc["Statement"]:
        if parts[-1] and size({"Version": doc["Version"], "Statement": parts[-1] + [statement]}) > MANAGED_POLICY_LIMIT:
            parts.append([])
        parts[-1].append(statement)
    return [{"Version": doc["Version"], "Statement": statements} for statements in parts]


def part_file(kind: str, index: int) -> str:
    """caller-policy.json, then caller-policy-2.json, ... for the parts of a policy over the limit."""
    return FILES[kind] if index == 0 else FILES[kind].replace(".json", f"-{index + 1}.json")


def written_files(found: dict[str, dict]) -> dict[str, dict]:
    """File name -> document: the caller's and administrator's policies (attached as managed policies) in parts."""
    files = {}
    for kind, doc in found.items():
        parts = managed_parts(doc) if kind in ("caller", "admin") else [doc]
        files.update({part_file(kind, index): part for index, part in enumerate(parts)})
    return files


def request_grants(scope: Scope, records: list[tuple]) -> list[Grant]:
    return [g for _, calls in records for service, api, params in calls for g in grants(scope, service, api, params)]


# --- the execution role: what SageMaker does with it, read from the requests -------------------------------------

# Where a request tells SageMaker to read (with the role) and to write.
READS = ("InputDataConfig[].DataSource.S3DataSource.S3Uri", "PrimaryContainer.ModelDataUrl",
         "TrainingJobDefinition.InputDataConfig[].DataSource.S3DataSource.S3Uri",
         "TransformInput.DataSource.S3DataSource.S3Uri", "InferenceSpecification.Containers[].ModelDataUrl",
         "CheckpointConfig.S3Uri", "TrainingJobDefinition.CheckpointConfig.S3Uri", "InputLocation")
WRITES = ("OutputDataConfig.S3OutputPath", "TrainingJobDefinition.OutputDataConfig.S3OutputPath",
          "CheckpointConfig.S3Uri", "TrainingJobDefinition.CheckpointConfig.S3Uri", "DebugHookConfig.S3OutputPath",
          "ProfilerConfig.S3OutputPath", "DataCaptureConfig.DestinationS3Uri",
          "AsyncInferenceConfig.OutputConfig.S3OutputPath", "AsyncInferenceConfig.OutputConfig.S3FailurePath",
          "TransformOutput.S3OutputPath")
IMAGES = ("AlgorithmSpecification.TrainingImage", "TrainingJobDefinition.AlgorithmSpecification.TrainingImage",
          "PrimaryContainer.Image", "InferenceSpecification.Containers[].Image")
LOG_GROUPS = {"CreateTrainingJob": api_requests.TRAINING_LOG_GROUP,
              "CreateHyperParameterTuningJob": api_requests.TRAINING_LOG_GROUP,
              "CreateTransformJob": TRANSFORM_LOG_GROUP}
PULL = ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")
ENI = ("ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission", "ec2:DeleteNetworkInterface",
       "ec2:DeleteNetworkInterfacePermission", "ec2:DescribeDhcpOptions", "ec2:DescribeNetworkInterfaces",
       "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs")


def values_at(params: dict, path: str) -> list:
    """The values at a dotted path ('[]': each item of a list)."""
    nodes = [params]
    for part in path.split("."):
        key, each = part.removesuffix("[]"), part.endswith("[]")
        nodes = [node[key] for node in nodes if isinstance(node, dict) and key in node]
        if each:
            nodes = [item for node in nodes for item in node]
    return nodes


def _s3_pattern(scope: Scope, uri: str) -> str:
    bucket, key = api_requests.split_s3_uri(uri)
    owning = _owning_prefix(scope, key)
    return f"arn:{scope.settings.partition}:s3:::{bucket}/{owning}/*"


def role_grants(scope: Scope, records: list[tuple]) -> list[Grant]:
    """What the jobs and endpoints the recorded requests create do with the role."""
    settings, found = scope.settings, []
    for _, calls in records:
        for service, api, params in calls:
            if service not in ("sagemaker", "sagemaker-runtime") or not (api.startswith("Create") or
                                                                        api == "InvokeEndpointAsync"):
                continue
            for uri in (u for path in READS for u in values_at(params, path)):
                bucket, key = api_requests.split_s3_uri(uri)
                found += [Grant("s3:GetObject", _s3_pattern(scope, uri)),
                          Grant("s3:ListBucket", f"arn:{settings.partition}:s3:::{bucket}",
                                _condition(StringLike={"s3:prefix": [f"{_owning_prefix(scope, key)}/*"]}))]
            for uri in (u for path in WRITES for u in values_at(params, path)):
                found.append(Grant("s3:PutObject", _s3_pattern(scope, uri)))
            for image in (i for path in IMAGES for i in values_at(params, path)):
                repository = image.split("/", 1)[1].rsplit(":", 1)[0] if "/" in image else image
                found += [Grant(action, scope.arn("ecr", f"repository/{repository}")) for action in PULL]
                found.append(Grant("ecr:GetAuthorizationToken", "*"))
            group = LOG_GROUPS.get(api) or (api_requests.endpoint_log_group(params["EndpointName"])
                                            if api == "CreateEndpoint" else None)
            if group:
                found += [Grant(f"logs:{action}", scope.log_group(group))
                          for action in ("CreateLogGroup", "CreateLogStream", "DescribeLogStreams", "PutLogEvents")]
                found.append(Grant("cloudwatch:PutMetricData", "*",
                                   _condition(StringLike={"cloudwatch:namespace": "/aws/sagemaker/*"})))
            if settings.kms_key and settings.kms_key in _strings(params):
                found += [Grant(f"kms:{action}", settings.kms_key)
                          for action in ("CreateGrant", "Decrypt", "DescribeKey", "Encrypt", "GenerateDataKey")]
            if values_at(params, "VpcConfig") or values_at(params, "TrainingJobDefinition.VpcConfig"):
                found += [Grant(action, "*") for action in ENI]
            for topic in values_at(params, "AsyncInferenceConfig.OutputConfig.NotificationConfig"):
                found += [Grant("sns:Publish", arn) for arn in topic.values()]
    return found


# --- make iam-policy ------------------------------------------------------------------------------------------------

def documents(settings_path: str | Path, settings: Settings) -> dict[str, dict]:
    """The four documents (FILES) for these settings."""
    scope = Scope(settings, job_definition.load().name_prefix)
    records = dry_runs.record(settings_path)
    day_to_day = [(run, calls) for run, calls in records if not run.admin]
    admin = [(run, calls) for run, calls in records if run.admin]
    role = document(scope, role_grants(scope, day_to_day))
    if size(role) > ROLE_POLICY_LIMIT:
        raise SettingsError(f"the execution role's policy is {size(role)} characters, above IAM's {ROLE_POLICY_LIMIT} "
                            f"for a role's inline policies")
    return {"caller": document(scope, request_grants(scope, day_to_day)),
            "admin": document(scope, request_grants(scope, admin)), "execution-role": role,
            "execution-role-trust": api_requests.sagemaker_trust_policy(scope.account)}


def execution_role(settings_path: str | Path, settings: Settings) -> tuple[dict, dict]:
    """(the execution role's policy, its trust policy), as make bootstrap puts them on the role."""
    scope = Scope(settings, job_definition.load().name_prefix)
    records = dry_runs.record(settings_path, dry_runs.DAY_TO_DAY)
    return document(scope, role_grants(scope, records)), api_requests.sagemaker_trust_policy(scope.account)


def write(out: Path, files: dict[str, dict]) -> None:
    """The documents into `out`, and away with the parts of an earlier run these policies no longer have."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in (p for kind in ("caller", "admin") for p in out.glob(FILES[kind].replace(".json", "-*.json"))):
        if stale.name not in files:
            stale.unlink()
    for name, doc in files.items():
        (out / name).write_text(json.dumps(doc, indent=2) + "\n")


def settings_path(args) -> Path:
    import os

    from .settings import DEFAULT_PATH

    return Path(args.settings or os.environ.get("SETTINGS") or DEFAULT_PATH)


def main(argv=None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", default="", help=f"folder for the documents (default {repo_relative(OUT_DIR)})")
    args = parser.parse_args(argv)

    def go() -> int:
        path = settings_path(args)
        settings = load(path)
        if args.dry_run:  # the documents with placeholders where the role and the bucket go
            fill_placeholders(settings, "role_arn", "bucket")
        settings.require("role_arn", "bucket")  # the policies are scoped to them
        files = written_files(documents(path, settings))
        if args.dry_run:
            for name, doc in files.items():
                print(f"# {name}\n{json.dumps(doc, indent=2)}")
            return 0
        out = Path(args.out) if args.out else OUT_DIR
        write(out, files)
        parts = " (each part a managed policy of its own)" if len(files) > len(FILES) else ""
        print(f"wrote {', '.join(files)} to {repo_relative(out)}\n  the caller's: attach to whoever runs make "
              f"(user, group, CI role){parts}; the administrator's: make bootstrap / teardown ALL=1; the execution "
              f"role's and its trust: make bootstrap puts them on {settings.role_arn}", file=sys.stderr)
        return 0

    return run(go)


if __name__ == "__main__":
    sys.exit(main())
