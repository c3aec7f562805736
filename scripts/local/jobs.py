"""Local training jobs: a job is a directory that is an `/opt/ml` tree, plus a record and the full log.

    jobs/<name>/
      input/config/{hyperparameters,inputdataconfig,resourceconfig}.json
      input/data/<channel> -> the data set's folder (symlink)
      code/ (a copy of container/)  model/  output/  checkpoints/
      job.json   the record: name, status, failure reason, times, hyperparameters, final metrics
      job.log    everything the job printed

The job runs the training image's entry, the sagemaker-training toolkit's `train`, with
`SAGEMAKER_BASE_DIR` pointing at the job dir: the same contract as on SageMaker.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from classifier.artifact import atomic_write_json
from classifier.training import hyperparameters as hp_specs
from scripts import CONTAINER_DIR, REPO_ROOT
from scripts.job_definition import JobDefinition

JOBS_ROOT = Path(os.environ.get("JOBS_DIR", REPO_ROOT / "jobs"))
RECORD = "job.json"
LOG = "job.log"
STATUSES = ("InProgress", "Completed", "Failed", "Stopped")


class JobError(ValueError):
    pass


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_job_name(prefix: str, root: Path) -> tuple[str, Path]:
    """<prefix>-<yyyymmdd-hhmmss>-<n>: unique (created exclusively) and sortable by time."""
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        name = f"{prefix}-{stamp}-{n:03d}"
        try:
            (root / name).mkdir()
            return name, root / name
        except FileExistsError:
            continue
    raise JobError(f"cannot create a unique job name under {root}")


def check_data_dir(data: Path, channels: list[str], optional: list[str]) -> dict[str, Path]:
    data = Path(data).resolve()
    if not data.is_dir():
        raise JobError(f"DATA={data} is not a directory (expected train/ valid/ [test/] inside; `make data` makes one)")
    found = {c: data / c for c in [*channels, *optional] if (data / c).exists()}
    missing = [c for c in channels if c not in found]
    if missing:
        raise JobError(f"DATA={data} lacks the required channel folder(s) {', '.join(missing)}")
    return found


def create_job(definition: JobDefinition, data: Path, hyperparameters: dict[str, str], root: Path | None = None,
               extra: dict | None = None, name: str | None = None, extra_channels: dict | None = None,
               validate: bool = True, channels_wanted: list[str] | None = None) -> Path:
    """Make the /opt/ml tree and the record; hyperparameters are checked now, before anything runs.

    `name`: an exact name (a tuning job's trials); else a new unique one. `extra_channels`: more
    channels to link (a tuning job's feature cache). `validate=False`: leave a bad hyperparameter to
    the training job, which fails with the reason (a tuning trial, as on SageMaker).
    `channels_wanted`: link only these of the data set's channels (tuning trials leave out `test`).
    """
    values = {**definition.static_hyperparameters, **hyperparameters}
    if validate:
        hp_specs.parse(values)  # raises HyperparameterError naming the bad one
    channels = check_data_dir(data, definition.required_channels, definition.optional_channels)
    channels = {c: p for c, p in channels.items() if channels_wanted is None or c in channels_wanted}
    channels.update(extra_channels or {})
    root = Path(root or JOBS_ROOT)
    if name:
        job = root / name
        job.mkdir(parents=True)
    else:
        name, job = new_job_name(definition.name_prefix, root)
    config = job / "input" / "config"
    config.mkdir(parents=True)
    atomic_write_json(config / "hyperparameters.json", {k: str(v) for k, v in sorted(values.items())})
    atomic_write_json(config / "inputdataconfig.json", {
        c: {"ContentType": "application/x-image", "TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None"} for c in channels})
    # The toolkit waits for the current host name to resolve: use one that does.
    atomic_write_json(config / "resourceconfig.json", {"current_host": "localhost", "hosts": ["localhost"],
                                                       "network_interface_name": "lo"})
    (job / "input" / "data").mkdir()
    for channel, path in channels.items():
        (job / "input" / "data" / channel).symlink_to(path.resolve())
    for folder in ("model", "output/data", "code"):
        (job / folder).mkdir(parents=True, exist_ok=True)
    (job / "checkpoints").mkdir()
    write_record(job, {"name": name, "status": "Created", "created": now(), "data": str(Path(data).resolve()),
                       "hyperparameters": {k: str(v) for k, v in sorted(values.items())}, **(extra or {})})
    return job


def read_record(job: Path) -> dict:
    path = Path(job) / RECORD
    if not path.is_file():
        raise JobError(f"{job} is not a local job (no {RECORD})")
    return json.loads(path.read_text())


def write_record(job: Path, record: dict) -> None:
    atomic_write_json(Path(job) / RECORD, record)


def resolve_job(name_or_path: str, root: Path | None = None) -> Path:
    root = root or JOBS_ROOT
    for candidate in (Path(name_or_path), Path(root) / name_or_path):
        if (candidate / RECORD).is_file():
            return candidate
    raise JobError(f"no local job {name_or_path!r} (looked in {root}); `make jobs` lists them")


def training_environment(job: Path, overrides: dict | None = None) -> dict:
    env = {**os.environ, **(overrides or {})}
    env.update({
        "SAGEMAKER_BASE_DIR": str(Path(job).resolve()),
        "SAGEMAKER_PROGRAM": "train.py",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def train_command() -> list[str]:
    """The toolkit's console script, as `docker run IMAGE train` runs it."""
    script = Path(sys.executable).with_name("train")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from sagemaker_training.cli.train import main; main()"]


# Training processes running now, so that an interrupted tuning job can stop all of them.
RUNNING: dict[int, subprocess.Popen] = {}
_STOPPED: set[int] = set()


def stop_all() -> None:
    """SIGTERM to every running job's process group (the training program stops at its next step)."""
    for pid in list(RUNNING):
        _STOPPED.add(pid)
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def run_job(job: Path, echo=None, definition: JobDefinition | None = None, on_line=None,
            env: dict | None = None) -> dict:
    """Run (or resume) the job in its directory; returns the final record.

    `echo(line)` gets every log line (progress on screen); `on_line(line, process)` may inspect it and
    stop the process (the tuner's early stopping). A restarted job resumes from its checkpoints.
    """
    job = Path(job)
    record = read_record(job)
    for marker in ("failure", "success"):  # the toolkit writes failure only if none exists yet
        (job / "output" / marker).unlink(missing_ok=True)
    # The code the job runs: a snapshot of container/, where the training image has it (/opt/ml/code).
    shutil.rmtree(job / "code", ignore_errors=True)
    shutil.copytree(CONTAINER_DIR, job / "code", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    record.update(status="InProgress", started=now(), ended=None, failure_reason=None)
    record["runs"] = record.get("runs", 0) + 1
    write_record(job, record)
    began = time.time()
    stopped_by_us = False
    with open(job / LOG, "a", buffering=1) as log:
        process = subprocess.Popen(train_command(), cwd=job, env=training_environment(job, env), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        RUNNING[process.pid] = process
        try:
            for line in process.stdout:
                log.write(line)
                if echo:
                    echo(line.rstrip("\n"))
                if on_line and on_line(line, process):
                    stopped_by_us = True
            code = process.wait()
        except KeyboardInterrupt:
            os.killpg(process.pid, signal.SIGTERM)
            code = process.wait()
            stopped_by_us = True
        finally:
            RUNNING.pop(process.pid, None)
        stopped_by_us = stopped_by_us or process.pid in _STOPPED
    record = read_record(job)
    failure = job / "output" / "failure"
    record.update(ended=now(), duration_seconds=round(time.time() - began, 1), exit_code=code)
    if code == 0:
        record["status"] = "Completed"
    elif stopped_by_us:
        record["status"] = "Stopped"
    else:
        record["status"] = "Failed"
        record["failure_reason"] = failure.read_text()[:1024].strip() if failure.is_file() else f"exit code {code}"
    if definition is not None:
        record["metrics"] = final_metrics(definition, (job / LOG).read_text(errors="replace"))
    write_record(job, record)
    return record


def final_metrics(definition: JobDefinition, log_text: str) -> dict[str, float]:
    """Each metric's last value in the log, read with the job definition's regexes (as SageMaker does)."""
    return {name: values[-1] for name, values in definition.parse_metrics(log_text).items()}


def list_jobs(root: Path | None = None) -> list[dict]:
    root = root or JOBS_ROOT
    if not Path(root).is_dir():
        return []
    records = []
    for job in sorted(Path(root).iterdir()):
        if (job / RECORD).is_file():
            record = read_record(job)
            record["path"] = str(job)
            records.append(record)
    return records
