"""Every target's dry run, recorded: what each `make <target> DRY_RUN=1` would send, request by request.

The IAM policies (iam_policy.py) are derived from these records, and the tests walk them (every request that
takes a KMS key carries it, every operation is in the policy). A target with several paths has one run per
path (deploy: create, update, each endpoint type, with auto scaling; tune: with and without shared features,
a warm start, attach). Each run is the script's own main() with --dry-run, in this process, its output kept
apart; the settings are the caller's (a settings file, environment overrides per run).
"""
from __future__ import annotations

import contextlib
import importlib
import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from PIL import Image

from . import client
from .client import AwsError
from .common import DRY_PLACEHOLDERS

JOB = "{prefix}-20260101-000000"          # a training job of this project (name_prefix)
TUNING = "{prefix}-20260101-000000"       # a tuning job of this project


@dataclass(frozen=True)
class DryRun:
    target: str                   # the make target (with the variables that pick this path)
    module: str                   # the script it runs
    argv: tuple[str, ...] = ()    # its arguments besides --settings and --dry-run; {data} {image} {bucket} {prefix}
    env: dict = field(default_factory=dict)  # settings from the environment, as make passes VAR=value
    admin: bool = False           # run by an account administrator once (bootstrap, teardown ALL=1), not day to day
    applies: Callable = lambda settings: True  # whether the settings allow this path at all


DAY_TO_DAY = [
    DryRun("push", "scripts.aws.push_images", ("--tag", "abc1234", "--engine", "none")),
    DryRun("upload-data WEIGHTS= DELETE=1", "scripts.aws.upload_data",
           ("--data", "{data}", "--weights", "{data}/weights/weights.pth", "--delete")),
    DryRun("tune", "scripts.aws.tune", ("--data", "{data}")),
    DryRun("tune NO_CACHE=1 PARENT_TUNING=", "scripts.aws.tune",
           ("--data", "{data}", "--no-cache", "--parent", TUNING)),
    DryRun("tune TUNING=", "scripts.aws.tune", ("--attach", TUNING)),
    DryRun("train TUNING=", "scripts.aws.train", ("--data", "{data}", "--tuning", TUNING)),
    DryRun("train INIT_MODEL=", "scripts.aws.train", ("--data", "{data}", "--init-model", JOB)),
    DryRun("register JOB=", "scripts.aws.registry", ("register", "--job", JOB)),
    DryRun("packages", "scripts.aws.registry", ("packages",)),
    DryRun("approve", "scripts.aws.registry", ("approve", "--version", "latest-approved")),
    DryRun("deploy JOB= MONITOR_ALARM=true", "scripts.aws.deploy", ("--job", JOB),
           {"AUTOSCALING": "true", "DATA_CAPTURE": "true", "MONITOR_ALARM": "true",
            "MONITOR_LOW_CONFIDENCE_ALARM": "0.3"}),
    DryRun("deploy TUNING= DRY_RUN_UPDATE=1", "scripts.aws.deploy", ("--tuning", TUNING, "--assume-exists"),
           {"AUTOSCALING": "true"}),
    DryRun("deploy PACKAGE= ENDPOINT_TYPE=async", "scripts.aws.deploy", ("--package", "latest-approved"),
           {"ENDPOINT_TYPE": "async"}),
    DryRun("deploy MODEL_DATA= ENDPOINT_TYPE=serverless", "scripts.aws.deploy",
           ("--model-data", "s3://{bucket}/{output_prefix}/" + JOB + "/output/model.tar.gz"),
           {"ENDPOINT_TYPE": "serverless"},  # not in a VPC, not isolated (api_requests.check_endpoint_type)
           applies=lambda settings: not (settings.subnets or settings.network_isolation)),
    DryRun("deploy-finish", "scripts.aws.deploy", ("--finish",), {"AUTOSCALING": "true"}),
    DryRun("rollback", "scripts.aws.rollback"),
    DryRun("batch-transform", "scripts.aws.batch_transform", ("--data-s3", "s3://{bucket}/{data_prefix}/data/test/")),
    DryRun("batch-transform MODEL=", "scripts.aws.batch_transform",
           ("--data-s3", "s3://{bucket}/{data_prefix}/data/test/", "--model", "{endpoint}-20260101-000000")),
    DryRun("invoke", "scripts.aws.invoke_endpoint", ("{image}",)),
    DryRun("invoke ENDPOINT_TYPE=async", "scripts.aws.invoke_endpoint", ("{image}",), {"ENDPOINT_TYPE": "async"}),
    DryRun("endpoint-metrics", "scripts.aws.endpoint_metrics"),
    DryRun("endpoint-logs", "scripts.aws.logs", ("endpoint",)),
    DryRun("training-logs", "scripts.aws.logs", ("training", JOB)),
    DryRun("cleanup", "scripts.aws.cleanup"),
    DryRun("teardown", "scripts.aws.teardown"),
    DryRun("tune-report", "scripts.reports.tuning_cli", (TUNING, "--sagemaker")),
    DryRun("evaluate ENDPOINT=", "scripts.reports.evaluation_cli", ("--endpoint", "{endpoint}", "--data", "{data}")),
    DryRun("endpoint-report ENDPOINT=", "scripts.reports.endpoint_cli", ("--endpoint", "{endpoint}")),
    DryRun("monitor-report ENDPOINT= PUBLISH=1", "scripts.monitor.monitor_cli",
           ("--endpoint", "{endpoint}", "--publish")),
]
ADMIN = [
    DryRun("bootstrap", "scripts.aws.bootstrap", admin=True),
    DryRun("teardown ALL=1", "scripts.aws.teardown", ("--all",), admin=True),
]
EVERY = DAY_TO_DAY + ADMIN


class DryRunFailed(AwsError):
    pass


def sample_data(root: Path) -> Path:
    """The smallest data set a dry run reads locally: two classes in train, valid and test, a weights file."""
    for split in ("train", "valid", "test"):
        for name in ("a", "b"):
            (root / split / name).mkdir(parents=True)
            Image.new("RGB", (8, 8), (0, 0, 0) if name == "a" else (255, 255, 255)).save(root / split / name / "0.png")
    (root / "weights").mkdir()
    (root / "weights" / "weights.pth").write_bytes(b"weights")
    return root


@contextlib.contextmanager
def _environment(changes: dict) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _values(settings, prefix: str, data: Path) -> dict:
    return {"data": str(data), "image": str(data / "test" / "a" / "0.png"),
            "bucket": settings.bucket or DRY_PLACEHOLDERS["bucket"],
            "prefix": prefix, "endpoint": settings.endpoint_name, "output_prefix": settings.output_prefix,
            "data_prefix": settings.data_prefix}


def record(settings_path: str | Path, runs: list[DryRun] = EVERY, prefix: str | None = None,
           environ: dict | None = None) -> list[tuple[DryRun, list[tuple[str, str, dict]]]]:
    """Each run with its requests, in order. A run that fails (its settings refused, say) stops with its
    message."""
    from scripts import job_definition

    from . import settings as settings_module

    prefix = prefix or job_definition.load().name_prefix
    records = []
    with tempfile.TemporaryDirectory(prefix="dry-runs-") as scratch, _environment(environ or {}):
        data = sample_data(Path(scratch) / "data")
        for run in runs:
            with _environment(run.env):
                settings = settings_module.load(settings_path)
                if not run.applies(settings):
                    continue
                values = _values(settings, prefix, data)
                argv = [part.format(**values) for part in run.argv] + ["--settings", str(settings_path), "--dry-run"]
                module = importlib.import_module(run.module)
                out, err = io.StringIO(), io.StringIO()
                with client.recording(alone=True) as calls, contextlib.redirect_stdout(out), \
                        contextlib.redirect_stderr(err):
                    status = module.main(argv)
            if status != 0:
                raise DryRunFailed(f"make {run.target} DRY_RUN=1 failed: {err.getvalue().strip() or out.getvalue()}")
            records.append((run, calls))
    return records
