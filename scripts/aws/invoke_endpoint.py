"""make invoke IMAGE=...: call the deployed endpoint with the project's one invoke client, scripts/invoke.py.

    python -m scripts.aws.invoke_endpoint IMAGE [IMAGE ...] [--top-k K] [--json] [--dry-run]

A realtime or serverless endpoint: this only wires the settings (endpoint name, region, profile) to
scripts/invoke.py, which builds the request (one image as image/jpeg or image/png, several as
application/json) and prints the answer the same way as for a local endpoint. An asynchronous endpoint (its
config has an AsyncInferenceConfig; in a dry run, ENDPOINT_TYPE=async): the same request body is put in
S3 under <async_prefix>/<endpoint>/input/, InvokeEndpointAsync queues it, and the answer is waited for where
SageMaker writes it (its output or failure object, async.wait_seconds at most), then printed the same way.
A dry run prints the requests instead.
"""
from __future__ import annotations

import io
import os
import sys
import time
import uuid
from pathlib import Path

import botocore.exceptions

from scripts import invoke

from . import api_requests
from .client import Aws, AwsError, error_code
from .common import base_parser, open_aws, require, run, status_display
from .deploy import config_type, describe_config, describe_endpoint

SUFFIXES = {"image/jpeg": ".jpg", "image/png": ".png", "application/json": ".json"}


def is_async(aws: Aws) -> bool:
    """Whether the endpoint is asynchronous, as its live config says (a dry run: as the settings say)."""
    if aws.dry_run:
        return aws.settings.endpoint_type == "async"
    state = describe_endpoint(aws, aws.settings.endpoint_name)
    if not state:
        raise AwsError(f"endpoint {aws.settings.endpoint_name} does not exist: make deploy creates it")
    return config_type(describe_config(aws, state["EndpointConfigName"]) or {}) == "async"


def s3_object(aws: Aws, uri: str) -> bytes | None:
    """The object's bytes, or None while it is not there (a dry run: there, empty)."""
    bucket, key = api_requests.split_s3_uri(uri)
    try:
        return aws.call("s3", "get_object", Bucket=bucket, Key=key, dry={"Body": io.BytesIO()})["Body"].read()
    except botocore.exceptions.ClientError as error:
        if error_code(error) in ("NoSuchKey", "404"):
            return None
        raise


def invoke_async(aws: Aws, images: list[Path], top_k: int | None) -> invoke.Answer | None:
    """Put the request in S3, queue it, wait for SageMaker's output (or failure) object; None in a dry run."""
    settings = aws.settings
    require(aws, "bucket")
    body, content_type = invoke.build_request(images)
    input_uri = api_requests.async_locations(settings)["input"] + uuid.uuid4().hex + SUFFIXES.get(content_type, "")
    aws.call("s3", "put_object", **api_requests.put_object(settings, input_uri, body, content_type))
    dry = {"OutputLocation": api_requests.async_locations(settings)["output"] + "<inference id>.out",
           "InferenceId": "<inference id>"}
    queued = aws.call("sagemaker-runtime", "invoke_endpoint_async", dry=dry, **api_requests.invoke_endpoint_async(
        settings.endpoint_name, input_uri, content_type, settings.async_wait_seconds, top_k))
    if aws.dry_run:
        print(f"# then, until its answer is written (async.wait_seconds {settings.async_wait_seconds} at most):",
              file=aws.out)
    started = time.monotonic()
    with status_display(quiet=aws.dry_run) as shown:
        while True:
            for location, status in ((queued.get("OutputLocation"), 200), (queued.get("FailureLocation"), 500)):
                found = s3_object(aws, location) if location else None
                if found is not None:
                    bucket, key = api_requests.split_s3_uri(input_uri)
                    aws.call("s3", "delete_object", Bucket=bucket, Key=key)  # the request: answered, no longer needed
                    return None if aws.dry_run else invoke.Answer(status, found)
            if time.monotonic() - started > settings.async_wait_seconds:
                raise AwsError(f"no answer from {settings.endpoint_name} after {settings.async_wait_seconds} s "
                               f"(async.wait_seconds); it will be written to {queued.get('OutputLocation')} (an "
                               f"endpoint scaled to zero starts an instance first: minutes)")
            shown.status(f"request {queued.get('InferenceId', '')} queued on {settings.endpoint_name}, waiting for "
                         "its answer")
            time.sleep(max(1, min(settings.poll_seconds, 5)))


def main(argv=None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", type=Path, help="JPEG or PNG files")
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not args.images:
        parser.error("give one or more images: make invoke IMAGE=path/to/image.jpg")

    def go() -> int:
        missing = [str(p) for p in args.images if not p.is_file()]
        if missing:
            raise ValueError(f"no such file: {', '.join(missing)}")
        aws = open_aws(args)
        settings = aws.settings
        if is_async(aws):
            answer = invoke_async(aws, args.images, args.top_k)
            if answer is None:
                return 0
            text, ok = invoke.format_answer(answer, [str(p) for p in args.images])
            print(answer.body.decode("utf-8", "replace") if args.json else text, file=sys.stdout if ok else sys.stderr)
            return 0 if ok else 1
        if aws.dry_run:
            body, content_type = invoke.build_request(args.images)
            request = {"EndpointName": settings.endpoint_name, "Body": body, "ContentType": content_type,
                       "Accept": "application/json"}
            if args.top_k is not None:
                request["CustomAttributes"] = f"top_k={args.top_k}"
            aws.call("sagemaker-runtime", "invoke_endpoint", **request)
            return 0
        if settings.profile:  # scripts/invoke.py makes a plain boto3 client: hand it the profile
            os.environ["AWS_PROFILE"] = settings.profile
        forwarded = [str(p) for p in args.images] + ["--endpoint", settings.endpoint_name, "--region", settings.region]
        if args.top_k is not None:
            forwarded += ["--top-k", str(args.top_k)]
        if args.json:
            forwarded.append("--json")
        return invoke.main(forwarded)

    return run(go)


if __name__ == "__main__":
    sys.exit(main())
