"""The AWS settings: config/settings.yaml, overridden by conventionally named environment variables.

Every value is checked when the settings are loaded; a missing or malformed one stops with a message that
names the setting, its environment variable, what is wrong and how to set it. Settings that only some
targets need (the role, the bucket) are checked for presence by `require()`.
No credentials are read or kept here: boto3 finds them (profile, SSO, environment, instance role).
"""
from __future__ import annotations

import ipaddress
import os
import re
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import yaml

from scripts import REPO_ROOT

DEFAULT_PATH = REPO_ROOT / "config" / "settings.yaml"


class SettingsError(ValueError):
    pass


# --- value checks: each returns the clean value or raises ValueError(what is wrong) ---------------------

def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise ValueError("expected a single value, not a list or mapping")
    return str(value).strip()


@lru_cache(maxsize=None)
def _partitions() -> dict[str, str]:
    """Every region the installed botocore knows -> its partition (aws, aws-cn, aws-us-gov, ...)."""
    import botocore.loaders

    found = {}
    for partition in botocore.loaders.create_loader().load_data("partitions")["partitions"]:
        found.update({region: partition["id"] for region in partition["regions"] if not region.endswith("-global")})
    return found


def partition_of(region: str) -> str:
    """The ARN partition of a region: arn:<partition>:... (aws, aws-cn, aws-us-gov)."""
    return _partitions().get(region, "aws")


def _region(value) -> str:
    text = _text(value)
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d{1,2}", text):
        raise ValueError("not an AWS region name such as us-east-1 or eu-west-1")
    if text not in _partitions():
        import difflib

        import botocore

        near = difflib.get_close_matches(text, sorted(_partitions()), n=3)
        raise ValueError(f"no such region (botocore {botocore.__version__} knows {len(_partitions())}"
                         + (f"; did you mean {' or '.join(near)}?" if near else "")
                         + "; a region newer than botocore: upgrade boto3)")
    return text


def _profile(value) -> str:
    text = _text(value)
    if text and not re.fullmatch(r"[\w+=,.@:/-]+", text):
        raise ValueError("a profile name has no spaces or special characters")
    return text


ROLE_PATTERN = r"arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+"  # SageMaker's RoleArn pattern


def _role_arn(value) -> str:
    text = _text(value)
    if text and not re.fullmatch(ROLE_PATTERN, text):
        hint = " (that is a user, not a role)" if ":user/" in text else ""
        raise ValueError(f"not an IAM role ARN{hint}; expected arn:aws:iam::<12-digit account id>:role/<role name>")
    return text


def _bucket(value) -> str:
    """The S3 bucket naming rules for general purpose buckets."""
    text = _text(value)
    if not text:
        return ""
    if text.startswith("s3://") or "/" in text:
        raise ValueError("give the bucket name only, without s3:// or a path (prefixes are separate settings)")
    problems = []
    if not 3 <= len(text) <= 63:
        problems.append("must be 3 to 63 characters long")
    if not re.fullmatch(r"[a-z0-9.-]+", text):
        problems.append("may hold only lowercase letters, digits, dots and hyphens")
    if not (text[:1].isalnum() and text[-1:].isalnum()):
        problems.append("must begin and end with a letter or digit")
    if ".." in text:
        problems.append("must not hold two adjacent dots")
    try:
        ipaddress.IPv4Address(text)
        problems.append("must not look like an IP address")
    except ValueError:
        pass
    if (text.startswith(("xn--", "sthree-", "amzn-s3-demo-"))
            or text.endswith(("-s3alias", "--ol-s3", ".mrap", "--x-s3"))):
        problems.append("uses a prefix or suffix reserved by S3")
    if problems:
        raise ValueError("not a valid S3 bucket name: it " + "; ".join(problems))
    return text


def check_bucket_name(name: str) -> str:
    """A bucket name by S3's rules (the name, or ValueError saying what is wrong with it)."""
    return _bucket(name)


def _prefix(value) -> str:
    text = _text(value).strip("/")
    if not text:
        raise ValueError("must not be empty (a key prefix such as my-project/data)")
    if "//" in text or not re.fullmatch(r"[A-Za-z0-9!_.*'()/-]+", text):
        raise ValueError("a key prefix holds letters, digits and !_.*'()- separated by single slashes")
    return text


def _ecr_repository(value) -> str:
    text = _text(value)
    pattern = r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*"
    if not (2 <= len(text) <= 256 and re.fullmatch(pattern, text)):
        raise ValueError("not an ECR repository name: lowercase letters, digits, . _ - and / separators, "
                         "2-256 characters")
    return text


def _image_tag(value) -> str:
    text = _text(value)
    if text and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", text):
        raise ValueError("not an image tag: up to 128 letters, digits, _ . - (not starting with . or -)")
    return text


@lru_cache(maxsize=None)
def _instance_types(shape: str) -> tuple[str, ...]:
    """The instance types the installed botocore's SageMaker model lists (read without any AWS config)."""
    import botocore.loaders
    import botocore.model

    model = botocore.model.ServiceModel(botocore.loaders.create_loader().load_service_model("sagemaker", "service-2"))
    return tuple(model.shape_for(shape).enum)


def _instance_type(shape: str) -> Callable[[Any], str]:
    def check(value) -> str:
        text = _text(value)
        known = _instance_types(shape)
        if text not in known:
            family = text.split(".")[1] if text.count(".") >= 2 else None
            near = [t for t in known if t.split(".")[1] == family][:8]
            hint = f"; that family has {', '.join(near)}" if near else ""
            raise ValueError(f"not a SageMaker {shape} (such as ml.g4dn.xlarge or ml.m5.2xlarge){hint}")
        return text
    return check


def _integer(minimum: int, maximum: int | None = None) -> Callable[[Any], int]:
    def check(value) -> int:
        if isinstance(value, bool):
            raise ValueError("expected a whole number, not true/false")
        try:
            number = int(str(value).strip())
        except ValueError:
            raise ValueError("expected a whole number") from None
        if number < minimum or (maximum is not None and number > maximum):
            raise ValueError(f"must be between {minimum} and {maximum}" if maximum is not None
                             else f"must be at least {minimum}")
        return number
    return check


def _boolean(value) -> bool:
    if isinstance(value, bool):
        return value
    text = _text(value).lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _choice(*choices: str) -> Callable[[Any], str]:
    def check(value) -> str:
        text = _text(value)
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return text
    return check


ENDPOINT_NAME_MAX = 63 - len("-20250101-120000")  # model and endpoint config names: <endpoint>-<stamp>, <= 63


def _endpoint_name(value) -> str:
    text = _text(value)
    if not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", text) or len(text) > ENDPOINT_NAME_MAX:
        raise ValueError(f"an endpoint name is 1-{ENDPOINT_NAME_MAX} letters, digits and hyphens, starting with a "
                         f"letter or digit")
    return text


def _prices(shape: str, what: str) -> Callable[[Any], dict[str, float]]:
    """Instance type (of the botocore shape `shape`: `what`) -> USD per hour, for a cost estimate; empty: none."""
    def check(value) -> dict[str, float]:
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise ValueError("expected a mapping of instance types to USD per hour, such as {ml.m5.large: 0.115}")
        known = _instance_types(shape)
        prices = {}
        for key, item in value.items():
            if str(key) not in known:
                raise ValueError(f"{key!r} is not a SageMaker {what}")
            prices[str(key)] = _price(item, f"the price of {key}", "USD per hour")
        return prices
    return check


def _price(item, what: str, unit: str) -> float:
    try:
        price = float(item)
    except (TypeError, ValueError):
        price = -1.0
    if isinstance(item, bool) or not price >= 0:
        raise ValueError(f"{what} must be a number of {unit}, not {item!r}")
    return price


def _optional_price(value) -> float | None:
    if value in (None, ""):
        return None
    return _price(value, "the price", "USD per GB-second")


def _serverless_memory(value) -> int:
    number = _integer(1024, 6144)(value)
    if number % 1024:
        raise ValueError("must be 1024, 2048, 3072, 4096, 5120 or 6144 (MB, steps of 1 GB)")
    return number


def _sns_topic(value) -> str:
    text = _text(value)
    if text and not re.fullmatch(r"arn:aws[a-z\-]*:sns:[a-z0-9\-]+:\d{12}:[A-Za-z0-9_\-]{1,256}(\.fifo)?", text):
        raise ValueError("not an SNS topic ARN: arn:aws:sns:<region>:<account id>:<topic>")
    return text


def _entity_name(value) -> str:
    """SageMaker's EntityName: 1-63 letters, digits and hyphens, starting with a letter or digit."""
    text = _text(value)
    if not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", text):
        raise ValueError("1-63 letters, digits and hyphens, starting with a letter or digit")
    return text


def _namespace(value) -> str:
    """A CloudWatch namespace of our own: 1-255 characters, not starting with AWS/ (AWS's own) or a colon."""
    text = _text(value)
    if not 1 <= len(text) <= 255 or text.startswith((":", "AWS/")) or not text.isprintable():
        raise ValueError("a CloudWatch namespace is 1-255 printable characters, not starting with AWS/ or ':'")
    return text


def _optional_share(value) -> float | None:
    if value in (None, ""):
        return None
    try:
        share = float(value)
    except (TypeError, ValueError):
        share = -1.0
    if isinstance(value, bool) or not 0 < share < 1:
        raise ValueError(f"expected a share between 0 and 1 (such as 0.3), or empty for none, not {value!r}")
    return share


def _tags(value) -> dict[str, str]:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise ValueError("expected a mapping of tag names to values")
    tags = {}
    for key, item in value.items():
        key, item = str(key), _text(item)
        if not (1 <= len(key) <= 128 and len(item) <= 256) or key.lower().startswith("aws:"):
            raise ValueError(f"tag {key!r}: names are 1-128 characters (not starting with aws:), values up to 256")
        tags[key] = item
    return tags


def _ec2_ids(prefix: str, what: str, maximum: int) -> Callable[[Any], tuple[str, ...]]:
    """A list of EC2 ids (a YAML list, or comma- or space-separated text as the environment gives it)."""
    def check(value) -> tuple[str, ...]:
        if value in (None, "", []):
            return ()
        items = value if isinstance(value, list) else re.split(r"[,\s]+", _text(value))
        ids = [str(item).strip() for item in items if str(item).strip()]
        bad = [item for item in ids if not re.fullmatch(rf"{prefix}-([0-9a-f]{{8}}|[0-9a-f]{{17}})", item)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a {what} id: {prefix}- and 8 or 17 hexadecimal digits, as the VPC "
                             f"console shows it")
        if len(ids) > maximum:
            raise ValueError(f"{len(ids)} {what}s: SageMaker's VpcConfig takes at most {maximum}")
        if len(set(ids)) != len(ids):
            raise ValueError(f"a {what} is listed twice")
        return tuple(ids)
    return check


KMS_KEY_ARN = re.compile(r"arn:(aws[a-z-]*):kms:([a-z0-9-]+):(\d{12}):key/"
                         r"((mrk-)?[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


def _kms_key(value) -> str:
    """A customer managed KMS key, by its ARN: the IAM policies are scoped to it and its region is checked."""
    text = _text(value)
    if not text or KMS_KEY_ARN.fullmatch(text):
        return text
    how = "`aws kms describe-key --key-id <id or alias/name> --query KeyMetadata.Arn` prints it"
    if text.startswith("alias/") or ":alias/" in text:
        raise ValueError(f"an alias names no key the IAM policies can be scoped to: give the key's ARN ({how})")
    raise ValueError(f"not a KMS key ARN: expected arn:aws:kms:<region>:<12-digit account id>:key/<key id> ({how})")


def _days(value) -> int:
    return _integer(0, 3650)(value)


@dataclass(frozen=True)
class Spec:
    attr: str
    key: str                # dotted path in the settings file; its default is the repository file's value
    env: tuple[str, ...]    # environment variables, first wins
    check: Callable[[Any], Any]
    what: str               # one line: what it is, for messages and `make aws-settings`


ENDPOINT_TYPES = ("realtime", "serverless", "async")
DEPLOYMENTS = ("all_at_once", "canary", "linear")

SPECS = [
    Spec("region", "aws.region", ("AWS_REGION", "AWS_DEFAULT_REGION"), _region, "AWS region"),
    Spec("profile", "aws.profile", ("AWS_PROFILE",), _profile, "credentials profile (empty: default chain)"),
    Spec("role_arn", "aws.role_arn", ("SAGEMAKER_ROLE_ARN",), _role_arn,
         "SageMaker execution role, arn:aws:iam::<account id>:role/<name>"),
    Spec("bucket", "s3.bucket", ("S3_BUCKET",), _bucket, "S3 bucket name (no s3://)"),
    Spec("data_prefix", "s3.data_prefix", ("S3_DATA_PREFIX",), _prefix, "data sets"),
    Spec("output_prefix", "s3.output_prefix", ("S3_OUTPUT_PREFIX",), _prefix, "model artifacts"),
    Spec("checkpoint_prefix", "s3.checkpoint_prefix", ("S3_CHECKPOINT_PREFIX",), _prefix, "training checkpoints"),
    Spec("capture_prefix", "s3.capture_prefix", ("S3_CAPTURE_PREFIX",), _prefix, "endpoint data capture"),
    Spec("debugger_prefix", "s3.debugger_prefix", ("S3_DEBUGGER_PREFIX",), _prefix, "Debugger/profiler output"),
    Spec("feature_cache_prefix", "s3.feature_cache_prefix", ("S3_FEATURE_CACHE_PREFIX",), _prefix,
         "shared backbone features of tuning jobs, by key"),
    Spec("transform_prefix", "s3.transform_prefix", ("S3_TRANSFORM_PREFIX",), _prefix, "batch transform output"),
    Spec("registry_prefix", "s3.registry_prefix", ("S3_REGISTRY_PREFIX",), _prefix,
         "model metrics of registered model packages"),
    Spec("async_prefix", "s3.async_prefix", ("S3_ASYNC_PREFIX",), _prefix,
         "asynchronous endpoint requests, answers and failures"),
    Spec("training_repository", "ecr.training_repository", ("ECR_TRAINING_REPOSITORY",), _ecr_repository,
         "ECR repository of the training image"),
    Spec("serving_repository", "ecr.serving_repository", ("ECR_SERVING_REPOSITORY",), _ecr_repository,
         "ECR repository of the serving image"),
    Spec("image_tag", "ecr.image_tag", ("IMAGE_TAG",), _image_tag, "image tag (empty: git short commit)"),
    Spec("training_instance_type", "training.instance_type", ("TRAINING_INSTANCE_TYPE",),
         _instance_type("TrainingInstanceType"), "training instance type"),
    Spec("training_instance_count", "training.instance_count", ("TRAINING_INSTANCE_COUNT",), _integer(1, 100),
         "training instances"),
    Spec("training_volume_gb", "training.volume_size_gb", ("TRAINING_VOLUME_GB",), _integer(1, 16384),
         "training volume, GB"),
    Spec("input_mode", "training.input_mode", ("TRAINING_INPUT_MODE",), _choice("File", "FastFile"),
         "channel input mode"),
    Spec("spot", "training.spot", ("SPOT_TRAINING",), _boolean, "managed spot training"),
    Spec("max_wait_seconds", "training.max_wait_seconds", ("MAX_WAIT_SECONDS",), _integer(1, 28 * 86400),
         "spot: longest wait plus run, seconds"),
    Spec("cached_instance_type", "tuning.cached_instance_type", ("TUNING_CACHED_INSTANCE_TYPE",),
         _instance_type("TrainingInstanceType"),
         "instance type of tuning trials that train the head on shared features"),
    Spec("prices", "tuning.prices", (), _prices("TrainingInstanceType", "training instance type"),
         "USD per instance hour, for make tune's cost estimate"),
    Spec("transform_instance_type", "transform.instance_type", ("TRANSFORM_INSTANCE_TYPE",),
         _instance_type("TransformInstanceType"), "batch transform instance type"),
    Spec("transform_instance_count", "transform.instance_count", ("TRANSFORM_INSTANCE_COUNT",), _integer(1, 100),
         "batch transform instances"),
    Spec("transform_max_concurrent", "transform.max_concurrent_transforms", ("TRANSFORM_MAX_CONCURRENT",),
         _integer(1, 100), "requests in flight per batch transform instance"),
    Spec("model_package_group", "registry.model_package_group", ("MODEL_PACKAGE_GROUP",), _entity_name,
         "model package group of make register (made when missing)"),
    Spec("endpoint_name", "endpoint.name", ("ENDPOINT_NAME",), _endpoint_name, "endpoint name"),
    Spec("endpoint_type", "endpoint.type", ("ENDPOINT_TYPE",), _choice(*ENDPOINT_TYPES),
         "endpoint type: realtime | serverless | async"),
    Spec("endpoint_instance_type", "endpoint.instance_type", ("ENDPOINT_INSTANCE_TYPE",),
         _instance_type("ProductionVariantInstanceType"), "endpoint instance type"),
    Spec("endpoint_instance_count", "endpoint.instance_count", ("ENDPOINT_INSTANCE_COUNT",), _integer(1, 100),
         "initial endpoint instances"),
    Spec("data_capture", "endpoint.data_capture", ("DATA_CAPTURE",), _boolean, "endpoint data capture"),
    Spec("capture_percent", "endpoint.capture_percent", ("DATA_CAPTURE_PERCENT",), _integer(1, 100),
         "share of requests captured, %"),
    Spec("autoscaling", "endpoint.autoscaling", ("AUTOSCALING",), _boolean, "endpoint auto scaling"),
    Spec("min_instances", "endpoint.min_instances", ("AUTOSCALING_MIN",), _integer(1, 100), "auto scaling minimum"),
    Spec("max_instances", "endpoint.max_instances", ("AUTOSCALING_MAX",), _integer(1, 100), "auto scaling maximum"),
    Spec("target_invocations", "endpoint.target_invocations_per_instance", ("AUTOSCALING_TARGET",), _integer(1),
         "auto scaling target, invocations per instance per minute"),
    Spec("endpoint_prices", "endpoint.prices", (), _prices("ProductionVariantInstanceType", "endpoint instance type"),
         "USD per instance hour, for make deploy's cost estimate"),
    Spec("serverless_memory_mb", "serverless.memory_mb", ("SERVERLESS_MEMORY_MB",), _serverless_memory,
         "serverless memory, MB (1024-6144 in steps of 1024)"),
    Spec("serverless_max_concurrency", "serverless.max_concurrency", ("SERVERLESS_MAX_CONCURRENCY",),
         _integer(1, 200), "serverless: requests served at once"),
    Spec("serverless_price", "serverless.price_per_gb_second", (), _optional_price,
         "serverless: USD per GB-second of compute, for the cost estimate"),
    Spec("async_max_concurrent", "async.max_concurrent_invocations", ("ASYNC_MAX_CONCURRENT",), _integer(1, 1000),
         "async: requests in flight per instance"),
    Spec("async_success_topic", "async.success_topic", ("ASYNC_SUCCESS_TOPIC",), _sns_topic,
         "async: SNS topic told of each answer (empty: none)"),
    Spec("async_error_topic", "async.error_topic", ("ASYNC_ERROR_TOPIC",), _sns_topic,
         "async: SNS topic told of each failure (empty: none)"),
    Spec("async_scale_to_zero", "async.scale_to_zero", ("ASYNC_SCALE_TO_ZERO",), _boolean,
         "async: auto scaling from 0 to endpoint.max_instances on the request backlog"),
    Spec("async_target_backlog", "async.target_backlog_per_instance", ("ASYNC_TARGET_BACKLOG",), _integer(1),
         "async: queued requests per instance that auto scaling aims at"),
    Spec("async_wait_seconds", "async.wait_seconds", ("ASYNC_WAIT_SECONDS",), _integer(1, 3600),
         "async: how long make invoke waits for the answer"),
    Spec("deployment", "deployment.strategy", ("DEPLOYMENT",), _choice(*DEPLOYMENTS),
         "traffic shifting of endpoint updates: all_at_once | canary | linear"),
    Spec("canary_percent", "deployment.canary_percent", ("DEPLOYMENT_CANARY_PERCENT",), _integer(1, 50),
         "canary: share of the new fleet that takes traffic first, %"),
    Spec("linear_percent", "deployment.linear_step_percent", ("DEPLOYMENT_LINEAR_PERCENT",), _integer(1, 50),
         "linear: share of the new fleet added to traffic at each step, %"),
    Spec("deployment_wait_seconds", "deployment.wait_seconds", ("DEPLOYMENT_WAIT_SECONDS",), _integer(0, 3600),
         "baking time of each traffic step, seconds"),
    Spec("termination_wait_seconds", "deployment.termination_wait_seconds", ("DEPLOYMENT_TERMINATION_WAIT",),
         _integer(0, 3600), "the old fleet kept after all traffic moved (final baking), seconds"),
    Spec("deployment_timeout_seconds", "deployment.timeout_seconds", ("DEPLOYMENT_TIMEOUT",), _integer(600, 28800),
         "longest an update may take before it rolls back, seconds"),
    Spec("alarm_5xx", "deployment.alarm_5xx_errors", ("ALARM_5XX_ERRORS",), _integer(1),
         "auto rollback: Invocation5XXErrors per minute that trip the alarm"),
    Spec("alarm_latency_ms", "deployment.alarm_model_latency_ms", ("ALARM_MODEL_LATENCY_MS",), _integer(1),
         "auto rollback: average ModelLatency (ms) over a minute that trips the alarm"),
    Spec("alarm_minutes", "deployment.alarm_minutes", ("ALARM_MINUTES",), _integer(1, 60),
         "auto rollback: minutes in a row above the threshold"),
    Spec("subnets", "network.subnets", ("NETWORK_SUBNETS",), _ec2_ids("subnet", "subnet", 16),
         "VPC subnets of every job and model (empty: no VPC)"),
    Spec("security_groups", "network.security_groups", ("NETWORK_SECURITY_GROUPS",),
         _ec2_ids("sg", "security group", 5), "VPC security groups of every job and model"),
    Spec("network_isolation", "network.isolation", ("NETWORK_ISOLATION",), _boolean,
         "network isolation of every job and model: no network calls from the containers"),
    Spec("encrypt_inter_container", "network.encrypt_inter_container", ("ENCRYPT_INTER_CONTAINER",), _boolean,
         "encrypt the traffic between the instances of a training job"),
    Spec("kms_key", "kms.key_id", ("KMS_KEY_ID",), _kms_key,
         "customer managed KMS key (ARN) of volumes, outputs, uploads and images (empty: AWS managed keys)"),
    Spec("feature_cache_days", "lifecycle.feature_cache_days", ("FEATURE_CACHE_DAYS",), _days,
         "make bootstrap's lifecycle rule: shared features expire after this many days (0: kept)"),
    Spec("checkpoint_days", "lifecycle.checkpoint_days", ("CHECKPOINT_DAYS",), _days,
         "make bootstrap's lifecycle rule: training checkpoints expire after this many days (0: kept)"),
    Spec("monitor_namespace", "monitor.namespace", ("MONITOR_NAMESPACE",), _namespace,
         "CloudWatch namespace of make monitor-report PUBLISH=1's metrics"),
    Spec("monitor_hours", "monitor.hours", ("MONITOR_HOURS",), _integer(1, 24),
         "hours of capture a scheduled monitor run reads (HOURS=), and the monitor alarms' period"),
    Spec("monitor_alarm", "monitor.alarm", ("MONITOR_ALARM",), _boolean,
         "make deploy creates the monitor's alarms (needs endpoint.data_capture)"),
    Spec("monitor_alarm_runs", "monitor.alarm_runs", ("MONITOR_ALARM_RUNS",), _integer(1, 24),
         "monitor runs in a row that must find drift before the alarm fires"),
    Spec("monitor_low_confidence_alarm", "monitor.low_confidence_alarm", ("MONITOR_LOW_CONFIDENCE_ALARM",),
         _optional_share, "also an alarm when the low-confidence share is above this (empty: none)"),
    Spec("monitor_alarm_topic", "monitor.alarm_topic", ("MONITOR_ALARM_TOPIC",), _sns_topic,
         "SNS topic told when a monitor alarm fires (empty: none)"),
    Spec("tags", "tags", (), _tags, "tags on created resources"),
    Spec("poll_seconds", "poll_seconds", ("AWS_POLL_SECONDS",), _integer(0, 3600), "seconds between status polls"),
]
BY_ATTR = {spec.attr: spec for spec in SPECS}
PREFIXES = tuple(spec.attr for spec in SPECS if spec.check is _prefix)  # the bucket's key prefixes of this project


@dataclass
class Settings:
    path: Path
    values: dict[str, Any]
    sources: dict[str, str]

    def __getattr__(self, name: str):
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(name)

    def require(self, *attrs: str) -> "Settings":
        """Stop unless each named setting has a value; the message says how to set it."""
        for attr in attrs:
            if not self.values.get(attr):
                spec = BY_ATTR[attr]
                example = {"role_arn": "arn:aws:iam::123456789012:role/MySageMakerRole",
                           "bucket": "my-sagemaker-bucket"}.get(attr, "...")
                raise SettingsError(
                    f"setting {spec.key} is not set ({spec.what}). Set it in {_display(self.path)} "
                    f"({spec.key}: {example}) or in the environment: {spec.env[0]}={example}")
        return self

    @property
    def account_id(self) -> str | None:
        """The account of the execution role: where the images and jobs live (no call needed)."""
        match = re.match(r"arn:aws[a-z\-]*:iam::(\d{12}):", self.values.get("role_arn") or "")
        return match.group(1) if match else None

    @property
    def partition(self) -> str:
        """The ARN partition of the region (aws, aws-cn, aws-us-gov)."""
        return partition_of(self.values["region"])

    @property
    def tag_list(self) -> list[dict[str, str]]:
        return [{"Key": k, "Value": v} for k, v in self.values["tags"].items()]

    def s3_uri(self, prefix_attr: str, *parts: str) -> str:
        """s3://<bucket>/<prefix>/<parts...>/ (trailing slash: a prefix must not match its siblings)."""
        self.require("bucket")
        path = "/".join(p.strip("/") for p in (self.values[prefix_attr], *parts) if p and p.strip("/"))
        return f"s3://{self.values['bucket']}/{path}/"

    def effective_image_tag(self) -> str:
        return self.values["image_tag"] or git_short_commit()

    def describe(self) -> str:
        lines = []
        for spec in SPECS:
            value = self.values[spec.attr]
            shown = (", ".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict)
                     else ", ".join(value) if isinstance(value, tuple) else value)
            shown = "" if shown is None else str(shown)
            lines.append(f"{spec.key:<42} {shown or '(not set)':<44} {self.sources[spec.attr]}")
        return "\n".join(lines)


def git_short_commit() -> str:
    """The tag `make build` gives the images (mk/images.mk: TAG = git rev-parse --short HEAD)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        out = None
    if out is None or out.returncode != 0 or not out.stdout.strip():
        raise SettingsError("cannot tell the image tag: not a git checkout. Set ecr.image_tag in "
                            "config/settings.yaml or IMAGE_TAG=<tag you pushed>")
    return out.stdout.strip()


def _display(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _lookup(raw: dict, key: str):
    node = raw
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _unknown_keys(raw: dict) -> list[str]:
    known = {spec.key for spec in SPECS}
    sections = {key.split(".")[0] for key in known if "." in key}
    unknown = []
    for top, value in raw.items():
        if top in sections:
            if not isinstance(value, dict):
                unknown.append(f"{top} (expected a mapping)")
                continue
            unknown.extend(f"{top}.{sub}" for sub in value if f"{top}.{sub}" not in known)
        elif top not in known:
            unknown.append(str(top))
    return unknown


def _read(path: Path) -> dict:
    where = _display(path)
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise SettingsError(f"settings file {where} not found (SETTINGS=path names another one)") from None
    except yaml.YAMLError as error:
        raise SettingsError(f"settings file {where} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise SettingsError(f"settings file {where}: expected a mapping at the top level")
    return raw


def load(path: Path | str | None = None, environ: dict | None = None) -> Settings:
    """The settings of `path` (SETTINGS, else config/settings.yaml) over the environment; a key the file
    lacks takes the repository file's value (the one home of every default)."""
    environ = os.environ if environ is None else environ
    path = Path(path or environ.get("SETTINGS") or DEFAULT_PATH)
    where = _display(path)
    raw = _read(path)
    defaults = raw if Path(path).resolve() == DEFAULT_PATH.resolve() else _read(DEFAULT_PATH)
    unknown = _unknown_keys(raw)
    if unknown:
        raise SettingsError(f"settings file {where}: unknown setting(s) {', '.join(unknown)}; known: "
                            f"{', '.join(spec.key for spec in SPECS)}")
    values, sources = {}, {}
    for spec in SPECS:
        env_name = next((name for name in spec.env if environ.get(name, "").strip()), None)
        if env_name:
            value, source = environ[env_name], f"environment {env_name}"
        else:
            found, value = _lookup(raw, spec.key)
            source = where if found else f"default ({_display(DEFAULT_PATH)})"
            if not found:
                found, value = _lookup(defaults, spec.key)
                if not found:
                    raise SettingsError(f"setting {spec.key} has no value: {_display(DEFAULT_PATH)} lost it; "
                                        f"restore that file from git")
        try:
            values[spec.attr] = spec.check(value)
        except ValueError as error:
            env_hint = f" or with {spec.env[0]}=..." if spec.env else ""
            raise SettingsError(f"setting {spec.key} = {value!r} (from {source}): {error}. "
                                f"Fix it in {where}{env_hint}") from None
        sources[spec.attr] = source
    _check_together(values, where)
    if values["autoscaling"] and values["max_instances"] < values["min_instances"]:
        raise SettingsError(f"setting endpoint.max_instances ({values['max_instances']}) is below "
                            f"endpoint.min_instances ({values['min_instances']}). "
                            f"Fix it in {where} or with AUTOSCALING_MAX=...")
    if values["monitor_hours"] * values["monitor_alarm_runs"] > 168:
        raise SettingsError(f"settings monitor.hours ({values['monitor_hours']}) x monitor.alarm_runs "
                            f"({values['monitor_alarm_runs']}) exceed CloudWatch's 7 days (168 hours) an alarm may "
                            f"look back. Fix it in {where} or with MONITOR_ALARM_RUNS=...")
    return Settings(path=path, values=values, sources=sources)


def _check_together(values: dict, where: str) -> None:
    """What one setting cannot be without another: a VPC needs subnets and security groups, the key must be
    in the jobs' region (SageMaker and S3 refuse a key of another region)."""
    if bool(values["subnets"]) != bool(values["security_groups"]):
        given, missing = (("network.subnets", "network.security_groups") if values["subnets"]
                          else ("network.security_groups", "network.subnets"))
        raise SettingsError(f"setting {given} is set but {missing} is empty: a VPC needs both (SageMaker's "
                            f"VpcConfig). Set {missing} in {where} or with {BY_ATTR[_attr_of(missing)].env[0]}=..., "
                            f"or clear {given}")
    match = KMS_KEY_ARN.fullmatch(values["kms_key"])
    if match and (match.group(2) != values["region"] or match.group(1) != partition_of(values["region"])):
        raise SettingsError(f"setting kms.key_id is a key in {match.group(2)}, but aws.region is {values['region']}: "
                            f"SageMaker and S3 take a key of their own region. Give a key of {values['region']} in "
                            f"{where} or with KMS_KEY_ID=... (a multi-Region key: its replica's ARN there)")
    checkpoint_seconds = values["checkpoint_days"] * 86400
    if values["spot"] and checkpoint_seconds and checkpoint_seconds <= values["max_wait_seconds"]:
        raise SettingsError(f"setting lifecycle.checkpoint_days ({values['checkpoint_days']}) would expire "
                            f"checkpoints before a spot job's longest wait (training.max_wait_seconds "
                            f"{values['max_wait_seconds']}): raise it in {where} or with CHECKPOINT_DAYS=...")


def _attr_of(key: str) -> str:
    return next(spec.attr for spec in SPECS if spec.key == key)


def main(argv=None) -> int:
    """`make aws-settings`: the values in effect and where each came from."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="print the AWS settings in effect")
    parser.add_argument("--settings", help="settings file (default: $SETTINGS or config/settings.yaml)")
    parser.add_argument("--get", metavar="KEY", help="print one setting's value alone (e.g. endpoint.capture_percent)")
    args = parser.parse_args(argv)
    try:
        settings = load(args.settings)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.get:
        spec = next((spec for spec in SPECS if args.get in (spec.key, spec.attr)), None)
        if spec is None:
            print(f"error: no setting {args.get}; known: {', '.join(spec.key for spec in SPECS)}", file=sys.stderr)
            return 1
        print(settings.values[spec.attr])
        return 0
    print(settings.describe())
    missing = [BY_ATTR[a].key for a in ("role_arn", "bucket") if not settings.values[a]]
    if missing:
        print(f"\nnot set yet: {', '.join(missing)} (tune, train and upload-data need them)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
