"""make tune's shared backbone features on SageMaker: one feature job before the tuning job, or a cache reused.

Whether a tuning job's trials share features, with which hyperparameters, and the key of the cache are
scripts/orchestration.py's (`shared_features`, `feature_cache_key`), as for `make tune-local`. Here the key
covers the training image (the code that computes the features and its built-in weights), the weights channel's
and the train and valid images' contents (their S3 ETags), the architecture and the image size. A cache lives
at s3://<bucket>/<s3.feature_cache_prefix>/<key>/<feature job>/output/model.tar.gz: the model.tar.gz of the
feature job that made it (classifier/training/feature_job.py). An existing one for the key is reused; else a
feature job runs (the training image in its feature-job mode, on training.instance_type) and make tune waits
for it, then gives its model.tar.gz to the trials as their feature_cache channel.
"""
from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

from scripts import orchestration
from scripts.job_definition import JobDefinition

from . import api_requests
from .client import Aws, AwsError
from .common import console_url
from .training_job import wait

ARTIFACT_SUFFIX = "/output/model.tar.gz"
IMAGE_CHANNELS = ("train", "valid")


@dataclass(frozen=True)
class SharedFeatures:
    key: str
    artifact: str  # the S3 URI of the cache (a feature job's model.tar.gz, stored or to be made)
    job: dict | None = None  # the feature job's CreateTrainingJob request, when no cache is stored for the key


def _local_listing(local: Path, prefix: str) -> dict:
    """What ListObjectsV2 shows of an uploaded copy of a local folder (ETag: the MD5 of small files), for a dry
    run's key and image count."""
    if not local.is_dir():
        return {"Contents": []}
    contents = []
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        digest = hashlib.md5(path.read_bytes()).hexdigest()
        contents.append({"Key": prefix + path.relative_to(local).as_posix(), "ETag": f'"{digest}"',
                         "Size": path.stat().st_size})
    return {"Contents": contents}


def listed(aws: Aws, data_uri: str, channels: list[str], local: str | None = None) -> dict[str, list[str]]:
    """The ETags of the objects under each channel of the data set (ListObjectsV2, every page). A dry run
    lists the local DATA folder as S3 would show it."""
    bucket, prefix = api_requests.split_s3_uri(data_uri)
    found = {}
    for channel in channels:
        dry = _local_listing(Path(local) / channel, f"{prefix}{channel}/") if local else {"Contents": []}
        etags = []
        for page in aws.paginate("s3", "list_objects_v2", dry=dry, input_token="ContinuationToken",
                                 output_token="NextContinuationToken", Bucket=bucket, Prefix=f"{prefix}{channel}/"):
            etags.extend(item["ETag"].strip('"') for item in page.get("Contents", [])
                         if not item["Key"].endswith("/"))
        found[channel] = etags
    return found


def image_count(etags: dict[str, list[str]]) -> int:
    return sum(len(etags.get(channel, [])) for channel in IMAGE_CHANNELS)


def key(values: dict[str, str], image: str, etags: dict[str, list[str]]) -> str:
    images = [e for channel in IMAGE_CHANNELS for e in etags.get(channel, [])]
    return orchestration.feature_cache_key(values, image, etags.get("weights", []), images)


def find_cache(aws: Aws, cache_key: str) -> str | None:
    """The newest feature job artifact stored for this key, or None."""
    bucket, prefix = api_requests.split_s3_uri(aws.settings.s3_uri("feature_cache_prefix", cache_key))
    artifacts = []
    for page in aws.paginate("s3", "list_objects_v2", dry={"Contents": []}, input_token="ContinuationToken",
                             output_token="NextContinuationToken", Bucket=bucket, Prefix=prefix):
        artifacts.extend(item for item in page.get("Contents", []) if item["Key"].endswith(ARTIFACT_SUFFIX))
    if not artifacts:
        return None
    newest = max(artifacts, key=lambda item: (item.get("LastModified") or 0, item["Key"]))
    return f"s3://{bucket}/{newest['Key']}"


def feature_job_name(definition: JobDefinition) -> str:
    """features-<name_prefix>-<yyyymmdd-hhmmss>: not <name_prefix>-*, so `make deploy` never takes it for a model."""
    return orchestration.training_job_name(f"features-{definition.name_prefix}")


def plan(aws: Aws, definition: JobDefinition, values: dict[str, str], image: str, data_uri: str,
         channel_names: list[str], etags: dict[str, list[str]]) -> SharedFeatures:
    """The cache for these trials: the stored one for the key, else the feature job that makes it (its
    artifact's URI is SageMaker's <S3OutputPath>/<job>/output/model.tar.gz). Creates nothing (see `run`)."""
    cache_key = key(values, image, etags)
    found = find_cache(aws, cache_key)
    if found:
        print(f"shared features: reusing {found} (key {cache_key}: the same model, image size, weights, training "
              f"image and {image_count(etags)} train+valid images)", file=sys.stderr)
        return SharedFeatures(cache_key, found)
    name = feature_job_name(definition)
    output = aws.settings.s3_uri("feature_cache_prefix", cache_key)
    request = api_requests.feature_job(definition, aws.settings, name, image, data_uri, channel_names, values,
                                       output)
    return SharedFeatures(cache_key, f"{output}{name}{ARTIFACT_SUFFIX}", request)


def run(aws: Aws, shared: SharedFeatures, images: int) -> None:
    """Create the planned feature job and wait until it has completed (nothing to do for a stored cache)."""
    if shared.job is None:
        return
    name = shared.job["TrainingJobName"]
    aws.call("sagemaker", "create_training_job", dry={}, **shared.job)
    if aws.dry_run:
        print(f"# no cache stored for key {shared.key}: the feature job above runs first (make tune waits for it); "
              f"its {shared.artifact} becomes the trials' feature_cache channel", file=aws.out)
        wait(aws, name, stream_logs=False)
        return
    print(f"created feature job {name} ({images} train+valid images on {shared.job['ResourceConfig']['InstanceType']}"
          f"; key {shared.key}); waiting for it before the tuning job\n"
          f"  {console_url(aws.settings.region, 'jobs', name)}", file=sys.stderr)
    state, _ = wait(aws, name, stream_logs=False)
    if state.get("TrainingJobStatus") != "Completed":
        raise AwsError(f"feature job {name} {state.get('TrainingJobStatus')}: {state.get('FailureReason', '')} "
                       f"(its log: CloudWatch /aws/sagemaker/TrainingJobs). `make tune NO_CACHE=1` tunes without "
                       f"shared features")
    artifact = state.get("ModelArtifacts", {}).get("S3ModelArtifacts")
    if artifact and artifact != shared.artifact:
        raise AwsError(f"feature job {name} wrote {artifact}, not {shared.artifact} as the tuning job's trials "
                       f"would read it")
    print(f"shared features: {shared.artifact}", file=sys.stderr)
