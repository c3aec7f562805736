"""make upload-data DATA=dir [WEIGHTS=file] [DELETE=1]: sync a class-per-folder data set to S3.

    python -m scripts.aws.upload_data --data data/fashion-mnist [--weights resnet50.pth] [--delete] [--dry-run]

The layout is checked first with the training job's own checks (classifier.training.data.scan_channel:
classes from train, valid/test must hold the same ones, no empty class folder), so a set that would fail
the job fails here. Only the files training reads are sent (its images; the weights file to the weights
channel) to s3://<bucket>/<data_prefix>/<name of DATA>/<channel>/<class>/<file>.
A file is skipped when S3 holds the same bytes: same size and an ETag equal to its MD5 (or to the multipart
ETag this script's part size gives), else the MD5 this script stores in the object's metadata. Large files
go up in parts (boto3 TransferConfig); a progress line shows bytes and files.
"""
from __future__ import annotations

import hashlib
import itertools
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from boto3.s3.transfer import TransferConfig

from classifier.progress import Progress
from scripts import DEFAULT_DATA

from . import api_requests, lockdown
from .client import Aws, AwsError, error_code
from .common import base_parser, data_uri, open_aws, run, s3_uri_argument
from .settings import Settings

MIB = 1024 * 1024
PART_SIZE = 16 * MIB
TRANSFER = TransferConfig(multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE, max_concurrency=4,
                          use_threads=True)
FILE_WORKERS = 8
CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
MD5_KEY = "md5"  # x-amz-meta-md5


@dataclass
class LocalFile:
    path: Path
    relative: str  # <channel>/<class>/<file>, '/'-separated
    size: int
    md5: str = ""

    def digest(self) -> str:
        if not self.md5:
            h = hashlib.md5()
            with open(self.path, "rb") as handle:
                for block in iter(lambda: handle.read(MIB), b""):
                    h.update(block)
            self.md5 = h.hexdigest()
        return self.md5

    def multipart_etag(self, part_size: int = PART_SIZE) -> str:
        """The ETag S3 gives an object uploaded in parts of `part_size`: md5(md5(part)...)-<parts>."""
        digests = []
        with open(self.path, "rb") as handle:
            for part in iter(lambda: handle.read(part_size), b""):
                digests.append(hashlib.md5(part).digest())
        return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


def check_layout(data: Path, weights: Path | None = None) -> tuple[list[LocalFile], list[str]]:
    """The files to send and the class names, after the training job's own layout checks."""
    from classifier import channels
    from classifier.training.data import DataError, scan_channel

    data = Path(data)
    if not data.is_dir():
        raise AwsError(f"DATA={data} is not a directory (expected train/ valid/ [test/] inside; `make data` makes one)")
    try:  # the image channels of a data set, as the training job checks them (weights: a file, below)
        train = scan_channel(channels.TRAIN, data / channels.TRAIN)
        found = [train, scan_channel(channels.VALID, data / channels.VALID, train.classes)]
        if (data / channels.TEST).exists():
            found.append(scan_channel(channels.TEST, data / channels.TEST, train.classes))
    except DataError as error:
        raise AwsError(f"data set {data} is not usable for training: {error}") from None
    files = []
    for channel in [train, *found[1:]]:
        for path, _ in channel.samples:
            files.append(LocalFile(path, f"{channel.name}/{path.relative_to(channel.root).as_posix()}",
                                   path.stat().st_size))
    if weights:
        weights = Path(weights)
        if not weights.is_file():
            raise AwsError(f"WEIGHTS={weights} is not a file (the weights channel takes one pretrained weights file)")
        files.append(LocalFile(weights, f"{channels.WEIGHTS}/{weights.name}", weights.stat().st_size))
    return files, train.classes


def remote_objects(aws: Aws, bucket: str, prefix: str) -> dict[str, dict]:
    objects = {}
    for page in aws.paginate("s3", "list_objects_v2", dry={"Contents": []}, input_token="ContinuationToken",
                             output_token="NextContinuationToken", Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            objects[item["Key"]] = item
    return objects


def unchanged(aws: Aws, bucket: str, key: str, local: LocalFile, remote: dict | None) -> bool:
    """Whether S3 holds these bytes already (see the module's docstring); with a KMS key, encrypted with that
    key too (an object uploaded before kms.key_id was set goes up again)."""
    if remote is None or remote.get("Size") != local.size:
        return False
    etag = remote.get("ETag", "").strip('"')
    same_bytes = etag == local.digest() or ("-" in etag and etag == local.multipart_etag())
    if same_bytes and not aws.settings.kms_key:
        return True
    try:  # another part size, or an encrypted bucket (ETag is not the MD5): the MD5 we stored
        head = aws.call("s3", "head_object", Bucket=bucket, Key=key)
    except Exception as error:  # any failure here just means "upload it again"
        if error_code(error) in ("404", "NoSuchKey", "403"):
            return False
        raise
    if aws.settings.kms_key and head.get("SSEKMSKeyId") != aws.settings.kms_key:
        return False
    return same_bytes or head.get("Metadata", {}).get(MD5_KEY) == local.digest()


def extra_args(settings: Settings, local: LocalFile) -> dict:
    """Content type, our MD5 and the settings' encryption (lockdown.s3_object) of an uploaded file."""
    content_type = CONTENT_TYPES.get(local.path.suffix.lower(), "application/octet-stream")
    return {"ContentType": content_type, "Metadata": {MD5_KEY: local.digest()}, **lockdown.s3_object(settings)}


def sync(aws: Aws, files: list[LocalFile], uri: str, delete: bool = False, out=None) -> dict:
    """Upload what changed; returns counts. In a dry run, prints the requests for every file."""
    out = out or sys.stdout
    bucket, prefix = api_requests.split_s3_uri(uri)
    remote = remote_objects(aws, bucket, prefix)
    wanted = {prefix + f.relative: f for f in files}
    to_send = [(key, f) for key, f in wanted.items() if not unchanged(aws, bucket, key, f, remote.get(key))]
    extra = sorted(set(remote) - set(wanted))
    if aws.dry_run:
        for key, f in to_send:
            parts = -(-f.size // PART_SIZE)
            how = f"  # {parts} parts of {PART_SIZE // MIB} MiB (multipart upload)" if f.size >= PART_SIZE else ""
            aws.call("s3", "put_object", compact=True, Bucket=bucket, Key=key, Body=f"<{f.size} bytes of {f.path}>",
                     **extra_args(aws.settings, f))
            if how:
                print(how, file=out)
    else:
        send(aws, bucket, to_send)
    deleted = 0
    if extra and delete:
        for start in range(0, len(extra), 1000):
            batch = extra[start:start + 1000]
            result = aws.call("s3", "delete_objects", Bucket=bucket,
                              Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
            if result.get("Errors"):
                first = result["Errors"][0]
                raise AwsError(f"could not delete {len(result['Errors'])} object(s), e.g. {first.get('Key')}: "
                               f"{first.get('Code')} {first.get('Message')}")
            deleted += len(batch)
    return {"files": len(files), "uploaded": len(to_send), "unchanged": len(files) - len(to_send),
            "bytes": sum(f.size for _, f in to_send), "extra": len(extra), "deleted": deleted}


def send(aws: Aws, bucket: str, to_send: list[tuple[str, LocalFile]]) -> None:
    if not to_send:
        return
    client = aws.client("s3")
    progress = Progress("upload", sum(f.size for _, f in to_send), "B", binary=True)
    sent = itertools.count(1)  # files sent (next() is atomic: the threads share it)

    def one(key: str, local: LocalFile) -> None:
        client.upload_file(str(local.path), bucket, key, ExtraArgs=extra_args(aws.settings, local), Config=TRANSFER,
                           Callback=progress.add)
        progress.detail(f"{next(sent)}/{len(to_send)} files")

    failures = []
    with ThreadPoolExecutor(max_workers=FILE_WORKERS) as pool, progress:
        futures = {pool.submit(one, key, f): key for key, f in to_send}
        for future in as_completed(futures):
            error = future.exception()
            if error is not None:
                failures.append((futures[future], error))
    if failures:
        key, error = failures[0]
        raise AwsError(f"{len(failures)} of {len(to_send)} upload(s) failed, e.g. s3://{bucket}/{key}: {error}. "
                       f"Run again: files already sent are skipped")


def main(argv=None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="local data set: train/ valid/ [test/]")
    parser.add_argument("--data-s3", default="", help="target s3://bucket/prefix/ (default: from the settings)")
    parser.add_argument("--weights", default="", help="a pretrained weights file for the weights channel")
    parser.add_argument("--delete", action="store_true", help="delete objects under the target that DATA lacks")
    args = parser.parse_args(argv)

    def go() -> int:
        if args.data_s3:
            s3_uri_argument(args.data_s3, "DATA_S3")
        files, classes = check_layout(Path(args.data), Path(args.weights) if args.weights else None)
        aws = open_aws(args, "bucket")
        uri = data_uri(aws.settings, args.data, args.data_s3)
        total = sum(f.size for f in files)
        print(f"{args.data}: {len(files)} files ({total / MIB:.1f} MiB), {len(classes)} classes -> {uri}")
        result = sync(aws, files, uri, delete=args.delete)
        verb = "would upload" if aws.dry_run else "uploaded"
        print(f"{verb} {result['uploaded']} file(s) ({result['bytes'] / MIB:.1f} MiB); {result['unchanged']} unchanged")
        if result["extra"] and not result["deleted"]:
            print(f"note: {result['extra']} object(s) under {uri} are not in {args.data}; training would read "
                  f"them too. DELETE=1 removes them")
        elif result["deleted"]:
            print(f"deleted {result['deleted']} object(s) that {args.data} lacks")
        return 0

    return run(go)


if __name__ == "__main__":
    sys.exit(main())
