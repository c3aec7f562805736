"""make batch-transform: classify every image under an S3 prefix with a SageMaker transform job.

    python -m scripts.aws.batch_transform --data-s3 s3://bucket/prefix/ [--model NAME | --job J | --tuning T |
                                          --model-data s3://.../model.tar.gz] [--out DIR]

The serving image classifies one image per request (SplitType None, BatchStrategy SingleRecord, the
images' content type) and answers JSON with every class. Model: --model names an existing SageMaker
model; --job, --tuning or --model-data make one from that artifact (as `make deploy` picks it); without
any, the newest model `make deploy` made, else one from the newest completed training job. A model made
here is deleted when the job is over. The script waits (a status line with the outputs written so far),
downloads the .out files to build/batch-transform/<job>/ and writes summary.json there
(scripts/batch_output.py: the layout and summary `make batch-local` shares).
"""
from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import botocore.exceptions

from classifier.progress import Progress
from scripts import REPO_ROOT, batch_output, job_definition, orchestration

from . import api_requests, deploy
from .client import Aws, AwsError, error_code
from .common import (
    base_parser,
    console_url,
    ecr_image,
    open_aws,
    poll,
    poll_interval,
    repo_relative,
    run,
    s3_uri_argument,
    status_display,
)

FINISHED = ("Completed", "Failed", "Stopped")
OUT_DIR = REPO_ROOT / "build" / "batch-transform"


def input_uri(data_s3: str) -> str:
    """DATA_S3 as an S3 prefix ending in / (`test/` must not also match `test-old/`)."""
    if not data_s3:
        raise AwsError("DATA_S3= is missing: give the S3 prefix of the images, s3://bucket/prefix/")
    s3_uri_argument(data_s3, "DATA_S3")
    return data_s3 if data_s3.endswith("/") else data_s3 + "/"


def list_objects(aws: Aws, uri: str, dry: dict | None = None) -> list[dict]:
    bucket, prefix = api_requests.split_s3_uri(uri)
    objects = []
    for page in aws.paginate("s3", "list_objects_v2", dry=dry or {"Contents": []}, input_token="ContinuationToken",
                             output_token="NextContinuationToken", Bucket=bucket, Prefix=prefix):
        objects += page.get("Contents", [])
    return objects


def inputs(aws: Aws, uri: str) -> list[str]:
    """The images under the prefix, relative to it. The job sends every object there, so anything that is
    not an image, or is above the payload limit, stops here instead of failing the job later."""
    prefix = api_requests.split_s3_uri(uri)[1]
    dry = {"Contents": [{"Key": f"{prefix}<image>.jpg", "Size": 1}]}
    objects = [o for o in list_objects(aws, uri, dry) if not o["Key"].endswith("/")]  # folder markers
    relative = [o["Key"][len(prefix):] for o in objects]
    if not relative:
        raise AwsError(f"DATA_S3={uri} holds no objects: upload the images first (make upload-data)")
    others = [name for name in relative if not batch_output.is_image(name)]
    if others:
        raise AwsError(f"DATA_S3={uri} holds {len(others)} object(s) that are not JPEG or PNG images, which the "
                       f"job would send as images: {', '.join(others[:5])}{' ...' if len(others) > 5 else ''}")
    limit = api_requests.DEFAULT_MAX_PAYLOAD_MB * 2**20
    large = [o["Key"] for o in objects if o.get("Size", 0) > limit]
    if large:
        raise AwsError(f"{len(large)} image(s) under DATA_S3={uri} are above the {limit // 2**20} MiB request "
                       f"limit: {', '.join(large[:5])}")
    return relative


def existing_model(aws: Aws, name: str) -> str:
    try:
        aws.call("sagemaker", "describe_model", ModelName=name, dry={"ModelName": name})
    except botocore.exceptions.ClientError as error:
        if error_code(error) == "ValidationException":
            raise AwsError(f"MODEL={name}: no SageMaker model by that name (`make deploy` makes one; or give "
                           "JOB=<training job>, TUNING=<tuning job> or MODEL_DATA=s3://.../model.tar.gz)") from None
        raise
    return name


def newest_deployed_model(aws: Aws) -> str | None:
    """The newest model `make deploy` made (<endpoint>-<yyyymmdd-hhmmss>), or None."""
    endpoint = aws.settings.endpoint_name
    found = aws.call("sagemaker", "list_models", NameContains=endpoint, SortBy="CreationTime",
                     SortOrder="Descending", MaxResults=100, dry={"Models": []})
    models = [m for m in found.get("Models", []) if deploy.ours(m["ModelName"], endpoint)]
    return max(models, key=lambda m: m["CreationTime"])["ModelName"] if models else None


def choose_model(aws: Aws, args, definition, name: str) -> tuple[str, bool, str]:
    """(model name, whether it was made here, where it came from)."""
    if args.model:
        return existing_model(aws, args.model), False, f"model {args.model}"
    if not (args.job or args.tuning or args.model_data):
        deployed = newest_deployed_model(aws)
        if deployed:
            return deployed, False, f"model {deployed} (the newest of make deploy)"
    model_data, source = deploy.model_source(aws, args.job, args.tuning, args.model_data, definition)
    image = ecr_image(aws, aws.settings.serving_repository)
    aws.call("sagemaker", "create_model", dry={}, **api_requests.model(aws.settings, name, image, model_data))
    return name, True, f"{source} ({model_data})"


def dry_outputs(output_uri: str) -> dict:
    """What a dry run assumes a finished job wrote: one answer."""
    return {"Contents": [{"Key": api_requests.split_s3_uri(output_uri)[1] + "<image>.jpg" + batch_output.OUT_SUFFIX}]}


def count_outputs(aws: Aws, output_uri: str) -> int:
    return sum(o["Key"].endswith(batch_output.OUT_SUFFIX) for o in list_objects(aws, output_uri,
                                                                                 dry_outputs(output_uri)))


def wait(aws: Aws, name: str, output_uri: str, total: int) -> dict:
    """Poll until the job ends, counting the answers written so far; a dry run shows one round."""
    def describe():
        state = aws.call("sagemaker", "describe_transform_job", TransformJobName=name,
                         dry={"TransformJobName": name, "TransformJobStatus": "Completed"})
        state["_outputs"] = count_outputs(aws, output_uri)
        return state

    def text(state):
        return f"transform job {name}: {state.get('TransformJobStatus')}, {state['_outputs']}/{total} images done"

    if aws.dry_run:
        print(f"# then, every {aws.settings.poll_seconds} s until {name} ends, and its answers downloaded:",
              file=aws.out)
    return poll(describe, lambda s: s.get("TransformJobStatus") in FINISHED, text, poll_interval(aws.settings),
                display=status_display(quiet=aws.dry_run))


def download(aws: Aws, output_uri: str, out_dir: Path | None) -> int:
    """Every .out file under the job's output path into out_dir, keeping the relative paths (8 at a time); a dry
    run shows the requests."""
    bucket, prefix = api_requests.split_s3_uri(output_uri)
    keys = [o["Key"] for o in list_objects(aws, output_uri, dry_outputs(output_uri))
            if o["Key"].endswith(batch_output.OUT_SUFFIX) and ".." not in o["Key"][len(prefix):].split("/")]
    if aws.dry_run:  # what download_file sends for each
        for key in keys:
            aws.call("s3", "get_object", Bucket=bucket, Key=key)
        return len(keys)
    client = aws.client("s3")

    def fetch(key: str) -> None:
        target = out_dir / key[len(prefix):]
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, key, str(target))

    with ThreadPoolExecutor(max_workers=8) as pool, \
            Progress(f"downloading outputs to {repo_relative(out_dir)}", len(keys), "outputs") as progress:
        for _ in pool.map(fetch, keys):
            progress.add()
    return len(keys)


def failure_reason(state: dict, name: str) -> str:
    log = f"CloudWatch /aws/sagemaker/TransformJobs, streams {name}/..."
    status = state.get("TransformJobStatus")
    return f"no output (job {status}: {state.get('FailureReason', 'no reason given')}; log: {log})"


def transform(aws: Aws, args, definition) -> int:
    uri = input_uri(args.data_s3)
    names = inputs(aws, uri)
    name = orchestration.check_name(f"{definition.name_prefix}-batch-{orchestration.timestamp()}",
                                    orchestration.TRAINING_NAME_MAX, "transform job")
    model, made, source = choose_model(aws, args, definition, name)
    output_uri = aws.settings.s3_uri("transform_prefix", name)
    kind = batch_output.content_type(names)
    try:
        aws.call("sagemaker", "create_transform_job", dry={},
                 **api_requests.transform_job(aws.settings, name, model, uri, output_uri, kind))
    except Exception:
        if made:  # no job will use it
            aws.call("sagemaker", "delete_model", ModelName=model)
        raise
    if not aws.dry_run:
        print(f"transform job {name}: {len(names)} images of {uri} ({kind}) with {source} on "
              f"{aws.settings.transform_instance_count} x {aws.settings.transform_instance_type}\n"
              f"  {console_url(aws.settings.region, 'transform-jobs', name)}", file=sys.stderr)
    try:
        state = wait(aws, name, output_uri, len(names))
    except KeyboardInterrupt:
        print(f"\nnot waiting: transform job {name} keeps running (its model {model} stays); stop it with "
              f"`aws sagemaker stop-transform-job --transform-job-name {name}`", file=sys.stderr)
        raise
    if made:
        aws.call("sagemaker", "delete_model", ModelName=model)
    if aws.dry_run:
        download(aws, output_uri, None)
        return 0
    return report(aws, state, name, output_uri, names, Path(args.out) if args.out else OUT_DIR / name)


def report(aws: Aws, state: dict, name: str, output_uri: str, names: list[str], out_dir: Path) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    download(aws, output_uri, out_dir)
    reason = failure_reason(state, name)
    summary = batch_output.summarize(out_dir, names, f"transform job {name}",
                                     f"{output_uri} (copied to {repo_relative(out_dir)})",
                                     {relative: reason for relative in names})
    path = batch_output.write_summary(summary, out_dir)
    print(summary.text() + f"\nsummary: {repo_relative(path)}")
    if state.get("TransformJobStatus") != "Completed":
        raise AwsError(f"transform job {name} is {state.get('TransformJobStatus')}: "
                       f"{state.get('FailureReason', 'no reason given')}; its container log: CloudWatch "
                       f"/aws/sagemaker/TransformJobs, streams {name}/...")
    return 0 if not summary.failures else 1


def main(argv=None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--data-s3", default="", help="S3 prefix of the images, s3://bucket/prefix/")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", default="", help="an existing SageMaker model")
    source.add_argument("--job", default="", help="make a model from this training job's artifact")
    source.add_argument("--tuning", default="", help="... from this tuning job's best training job")
    source.add_argument("--model-data", default="", help="... from this model.tar.gz in S3")
    parser.add_argument("--job-definition", help="job definition (its name_prefix names the job)")
    parser.add_argument("--out", default="", help="local folder for the outputs (default build/batch-transform/<job>)")
    args = parser.parse_args(argv)

    def go() -> int:
        definition = job_definition.load(args.job_definition)
        input_uri(args.data_s3)  # a bad DATA_S3, name or OUT stops before anything else
        deploy.check_model_source(args.job, args.tuning, args.model_data)
        if args.model:
            orchestration.check_name(args.model, orchestration.TRAINING_NAME_MAX, "SageMaker model (MODEL=)")
        if args.out:
            batch_output.fresh_folder(Path(args.out))
        aws = open_aws(args, "role_arn", "bucket")
        return transform(aws, args, definition)

    return run(go)


if __name__ == "__main__":
    sys.exit(main())
