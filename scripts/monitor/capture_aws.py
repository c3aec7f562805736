"""A SageMaker endpoint's capture and model, for the monitor (`make monitor-report ENDPOINT=<name> HOURS=...`).

- Where the capture is: the endpoint's own DataCaptureConfig (DescribeEndpoint: its DestinationS3Uri, as
  `make deploy` set it from s3.capture_prefix), its variant from its production variants.
- The window: one ListObjectsV2 per hour folder <destination>/<endpoint>/<variant>/<yyyy>/<mm>/<dd>/<hh>/;
  every file there is downloaded into build/monitor/capture/ in the same layout (a file already there with the
  same size is kept: capture files are not changed once written), then read as a local capture
  (capture_data.py), which keeps the records of the window.
- The model: what the endpoint serves, from the serving record `make deploy` writes in its config's tags (or its
  model, deploy.served_by), its model.tar.gz downloaded and unpacked once per URI (the baseline is in it).
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from pathlib import Path

from classifier.artifact import ArtifactError, atomic_write_bytes, unpack_archive
from classifier.progress import Progress
from scripts import REPO_ROOT
from scripts.aws import api_requests, deploy
from scripts.aws.batch_transform import list_objects
from scripts.aws.client import Aws, AwsError

from . import capture_data

WORK_DIR = REPO_ROOT / "build" / "monitor"


def endpoint_capture(aws: Aws, endpoint: str) -> tuple[str, str, dict]:
    """(capture destination s3://.../, variant, the endpoint's description) of a live endpoint."""
    dry_destination = aws.settings.s3_uri("capture_prefix", endpoint) if aws.dry_run else ""  # make deploy's
    state = deploy.describe_endpoint(aws, endpoint, dry={
        "EndpointName": endpoint, "EndpointConfigName": f"<config of {endpoint}>",
        "ProductionVariants": [{"VariantName": api_requests.VARIANT}],
        "DataCaptureConfig": {"EnableCapture": True, "DestinationS3Uri": dry_destination.rstrip("/")}})
    if not state:
        raise AwsError(f"endpoint {endpoint} not found in {aws.settings.region}: `make deploy` makes it; or read a "
                       f"downloaded capture with CAPTURE=<dir>")
    config = state.get("DataCaptureConfig") or {}
    if not config.get("DestinationS3Uri"):
        raise AwsError(f"endpoint {endpoint} has no data capture: deploy it with DATA_CAPTURE=true "
                       f"(endpoint.data_capture) so that it stores what it is sent")
    variants = state.get("ProductionVariants") or [{}]
    return config["DestinationS3Uri"].rstrip("/") + "/", variants[0].get("VariantName", api_requests.VARIANT), state


def hours(since: datetime, until: datetime) -> list[datetime]:
    """The hour folders that hold [since, until)."""
    hour = since.replace(minute=0, second=0, microsecond=0)
    found = []
    while hour < until:
        found.append(hour)
        hour += timedelta(hours=1)
    return found


def download_capture(aws: Aws, endpoint: str, since: datetime, until: datetime,
                     into: Path | None = None) -> tuple[Path, str, dict]:
    """The window's capture files under `into` (default build/monitor/capture)/<endpoint>/<variant>/...; returns
    (that folder, the S3 prefix read, the endpoint's description)."""
    into = Path(into or WORK_DIR / "capture")
    destination, variant, state = endpoint_capture(aws, endpoint)
    bucket, root = api_requests.split_s3_uri(destination)
    objects = []
    for hour in hours(since, until):
        listed = f"{root}{endpoint}/{variant}/{hour:%Y/%m/%d/%H}/"
        objects += list_objects(aws, f"s3://{bucket}/{listed}", dry={"Contents": [{"Key": f"{listed}<file>.jsonl"}]})
    folder = into / endpoint / variant
    wanted = [o for o in objects if o["Key"].endswith(".jsonl") and ".." not in o["Key"].split("/")]
    with Progress(f"capture files of {endpoint} ({len(hours(since, until))} hour folders)", len(wanted),
                  "files") as progress:
        for item in wanted:
            target = into / item["Key"][len(root):]
            if aws.dry_run:  # the request a file needs (make iam-policy reads it), nothing written
                aws.call("s3", "get_object", Bucket=bucket, Key=item["Key"])
            elif not (target.is_file() and target.stat().st_size == item.get("Size")):
                body = aws.call("s3", "get_object", Bucket=bucket, Key=item["Key"])["Body"].read()
                target.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(target, lambda handle, data=body: handle.write(data))
            progress.add()
    return folder, f"{destination}{endpoint}/{variant}/", state


def read_window(aws: Aws, endpoint: str, since: datetime, until: datetime,
                into: Path | None = None) -> capture_data.Capture:
    folder, source, _ = download_capture(aws, endpoint, since, until, into)
    if not folder.is_dir():  # nothing captured in the window
        return capture_data.Capture(source, endpoint=endpoint, since=since, until=until)
    found = capture_data.read(folder, since, until, source=source)
    found.endpoint = found.endpoint or endpoint
    return found


def served_model(aws: Aws, endpoint: str, into: Path | None = None) -> Path:
    """The model directory of what the endpoint serves (its model.tar.gz, downloaded and unpacked once, under
    `into`, default build/monitor/models)."""
    state = deploy.describe_endpoint(aws, endpoint)
    if not state:
        raise AwsError(f"endpoint {endpoint} not found in {aws.settings.region}")
    config = deploy.describe_config(aws, state["EndpointConfigName"])
    served = deploy.served_by(aws, config)
    if served is None:
        raise AwsError(f"cannot tell which model endpoint {endpoint} serves (its config has no serving record and "
                       f"not one model): give MODEL=<model dir, job or model.tar.gz>")
    target = Path(into or WORK_DIR / "models") / hashlib.sha256(served.model_data.encode()).hexdigest()[:16]
    model_dir = target / "model"
    if not (model_dir / "model_config.json").is_file():
        bucket, key = api_requests.split_s3_uri(served.model_data)
        print(f"downloading the model endpoint {endpoint} serves: {served.model_data}")
        archive = target / "model.tar.gz"
        target.mkdir(parents=True, exist_ok=True)
        body = aws.call("s3", "get_object", Bucket=bucket, Key=key)["Body"]
        atomic_write_bytes(archive, lambda handle: _copy(body, handle))
        try:
            unpack_archive(archive, model_dir)
        except ArtifactError as error:
            raise AwsError(str(error)) from None
        archive.unlink()
    return model_dir


def _copy(stream, handle, block: int = 1 << 20) -> None:
    for chunk in iter(lambda: stream.read(block), b""):
        handle.write(chunk)
