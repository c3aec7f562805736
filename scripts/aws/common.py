"""What the AWS scripts share: command-line options, the account and image URIs, the data location,
waiting with a live status line, tables, and turning errors into one clear message and an exit code."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable

import botocore.exceptions

from classifier.progress import Progress
from scripts import DEFAULT_DATA, REPO_ROOT, orchestration
from scripts.job_definition import JobDefinition, JobDefinitionError

from . import api_requests
from .client import Aws, AwsError, describe_client_error, error_code
from .settings import Settings, SettingsError, check_bucket_name, load


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--settings", help="settings file (default: $SETTINGS or config/settings.yaml)")
    parser.add_argument("--dry-run", action="store_true", help="print the requests, send nothing")
    return parser


def open_aws(args, *required: str) -> Aws:
    """Settings and clients for a script; `required` settings must be set (a dry run fills placeholders)."""
    aws = Aws(load(args.settings), dry_run=args.dry_run)
    require(aws, *(DRY_PLACEHOLDERS if aws.dry_run else ()), *required)  # a dry run's placeholders stand in
    # for the bucket and the role wherever a printed request or a dry answer names them
    if aws.dry_run:
        print("# dry run: the requests below are checked against the service models and printed; nothing is sent")
    return aws


DRY_PLACEHOLDERS = {"bucket": "<S3_BUCKET>", "role_arn": "arn:aws:iam::<account-id>:role/<SAGEMAKER_ROLE_ARN>"}


def require(aws: Aws, *required: str) -> None:
    if not aws.dry_run:
        aws.settings.require(*required)
        return
    fill_placeholders(aws.settings, *required)


def fill_placeholders(settings: Settings, *names: str) -> None:
    """A dry run shows what it would send, with placeholders for what is not set yet."""
    for name in names:
        if not settings.values.get(name):
            settings.values[name] = DRY_PLACEHOLDERS.get(name, f"<{name}>")


def run(main: Callable[[], int]) -> int:
    """Run a script's main: known failures become one `error: ...` line and exit status 1."""
    try:
        return main()
    except (SettingsError, JobDefinitionError, AwsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except botocore.exceptions.ClientError as error:
        print(f"error: {describe_client_error(error)}", file=sys.stderr)
        return 1
    except botocore.exceptions.BotoCoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped to `head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


# --- account, images, data -----------------------------------------------------------------------------

def account_id(aws: Aws) -> str:
    """The execution role's account (no call needed), else the caller's (STS)."""
    if aws.settings.account_id:
        return aws.settings.account_id
    if aws.dry_run:
        return "<account-id>"
    return aws.call("sts", "get_caller_identity")["Account"]


def ecr_image(aws: Aws, repository: str, tag: str | None = None, check: bool = True) -> str:
    """<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>; with `check`, stop early when ECR lacks
    it (a job would fail minutes later on the missing image)."""
    tag = tag or aws.settings.effective_image_tag()
    uri = api_requests.image_uri(account_id(aws), aws.settings.region, repository, tag)
    if check:
        try:
            aws.call("ecr", "describe_images", repositoryName=repository, imageIds=[{"imageTag": tag}])
        except botocore.exceptions.ClientError as error:
            if error_code(error) in ("ImageNotFoundException", "RepositoryNotFoundException"):
                raise AwsError(f"image {uri} is not in ECR: run `make build push` (or set IMAGE_TAG= to a tag "
                               f"you pushed)") from None
            raise
    return uri


def s3_uri_argument(uri: str, variable: str, object_key: bool = False) -> str:
    """An s3:// URI given on the command line (DATA_S3=, MODEL_DATA=, INIT_MODEL=), checked before any request:
    its form, its bucket's name by S3's rules and, for one that names an object, a key."""
    try:
        bucket, key = api_requests.split_s3_uri(uri)
    except ValueError:
        raise ValueError(f"{variable}={uri} is not an s3://bucket/{'key' if object_key else 'prefix'} URI") from None
    try:
        if bucket != DRY_PLACEHOLDERS["bucket"]:  # a dry run's, where the settings name no bucket yet
            check_bucket_name(bucket)
    except ValueError as error:
        raise ValueError(f"{variable}={uri}: {bucket!r} is {error}") from None
    if object_key and (not key or key.endswith("/")):
        raise ValueError(f"{variable}={uri} names no object: give the s3:// URI of a model.tar.gz "
                         f"(s3://{bucket}/<prefix>/<job>/output/model.tar.gz)")
    return uri


def data_uri(settings: Settings, data: str | None, data_s3: str | None) -> str:
    """Where a data set lives in S3: DATA_S3=s3://... as given, else <data_prefix>/<basename of DATA>/."""
    if data_s3:
        s3_uri_argument(data_s3, "DATA_S3")
        return data_s3 if data_s3.endswith("/") else data_s3 + "/"
    name = Path(data or DEFAULT_DATA).resolve().name
    return settings.s3_uri("data_prefix", name)


def present_channels(aws: Aws, uri: str, candidates: list[str], required: tuple[str, ...] | list[str],
                     local: str | None = None) -> list[str]:
    """Which of `candidates` hold data under `uri` (one ListObjectsV2 with MaxKeys=1 each); a required one
    missing stops with a hint. A dry run assumes S3 holds what the local DATA folder holds."""
    bucket, prefix = api_requests.split_s3_uri(uri)
    found = []
    for channel in candidates:
        assumed = 1 if channel in required or (local and (Path(local) / channel).exists()) else 0
        page = aws.call("s3", "list_objects_v2", dry={"KeyCount": assumed}, Bucket=bucket,
                        Prefix=f"{prefix}{channel}/", MaxKeys=1)
        if page.get("KeyCount", 0) > 0:
            found.append(channel)
        elif channel in required:
            raise AwsError(f"channel {channel!r} is empty in S3 ({uri}{channel}/): run `make upload-data DATA=...` "
                           f"first, or point DATA_S3= at the data set")
    return found


def data_set_channels(aws: Aws, definition: JobDefinition, data: str | None, data_s3: str | None,
                      trial: bool) -> tuple[str, list[str]]:
    """The data set's S3 URI (DATA_S3=, or DATA='s name under the data prefix) and which of the channels a trial
    (`trial`) or a training job reads are there."""
    uri = data_uri(aws.settings, data, data_s3)
    return uri, present_channels(aws, uri, orchestration.channels_to_look_for(definition, trial=trial),
                                 definition.channels.required, data)


# --- waiting -------------------------------------------------------------------------------------------

STATUS_EVERY = 60.0  # seconds between repeated status lines off a terminal (a change is shown at once)


def status_display(quiet: bool = False) -> Progress:
    """The status of a SageMaker job being waited for: a live line on a terminal, else a line per change.
    `quiet`: shown nowhere (a dry run's one round of polling says nothing about a real status)."""
    return Progress("", every=STATUS_EVERY, emit=(lambda line: None) if quiet else None)


def poll(describe: Callable[[], dict], finished: Callable[[dict], bool], render: Callable[[dict], str],
         interval: float, on_poll: Callable[[dict], None] | None = None, display: Progress | None = None) -> dict:
    """Describe until `finished`, showing render(state) and the time waited; returns the last description.
    `display`: the status display to use (one that log lines are printed above)."""
    with display or status_display() as shown:
        while True:
            state = describe()
            if on_poll:
                on_poll(state)
            shown.status(render(state))
            if finished(state):
                return state
            time.sleep(interval)


def poll_interval(settings: Settings) -> float:
    return float(settings.poll_seconds)


# --- output --------------------------------------------------------------------------------------------

def console_url(region: str, kind: str, name: str) -> str:
    return f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/{kind}/{name}"


def repo_relative(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


