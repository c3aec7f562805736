"""Local training jobs, the local backend: a job is a directory that is an `/opt/ml` tree, plus a record
and the full log.

    jobs/<name>/
      input/config/{hyperparameters,inputdataconfig,resourceconfig}.json
      input/data/<channel> -> the data set's folder (symlink)
      code/ (a copy of container/)  model/  output/  checkpoints/
      job.json   the record: name, status, failure reason, times, hyperparameters, channels, final metrics,
                 and while it runs the training process's pid
      job.log    everything the job printed (written by the job itself, so it survives this process)

The job runs the training image's entry (docker/entrypoint_train.py: the sagemaker-training toolkit's
`train`, passing SIGTERM on to the training program) with `SAGEMAKER_BASE_DIR` pointing at the job dir:
the same contract as on SageMaker. What a job gets (hyperparameters, channels, its name) is decided by
scripts/orchestration.py; this module only makes the tree, runs it, stops it and reads its result.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from classifier.artifact import ARCHIVE_SUFFIXES, CONFIG_FILE, ArtifactError, atomic_write_json, unpack_archive
from scripts import CONTAINER_DIR, REPO_ROOT, orchestration
from scripts.job_definition import JobDefinition
from scripts.local.orphan_guard import guarded

JOBS_ROOT = Path(os.environ.get("JOBS_DIR", REPO_ROOT / "jobs"))
RECORD = "job.json"
LOG = "job.log"
ENTRY = REPO_ROOT / "docker" / "entrypoint_train.py"
STOP_GRACE_SECONDS = 120  # SageMaker's too: SIGTERM, then SIGKILL 120 s later


class JobError(ValueError):
    pass


def now() -> str:
    return orchestration.utc_now().isoformat(timespec="seconds")


def feature_cache_dir() -> Path:
    """The one local feature cache, shared by every job and tuning job (its keys make that safe)."""
    return JOBS_ROOT / "feature-cache"


def new_job_name(prefix: str, root: Path) -> tuple[str, Path]:
    """The core's name (<prefix>-<yyyymmdd-hhmmss>, -2, -3... when taken), its directory created exclusively."""
    root.mkdir(parents=True, exist_ok=True)
    moment = orchestration.utc_now()
    for attempt in range(1000):
        name = orchestration.training_job_name(prefix, moment, attempt)
        try:
            (root / name).mkdir()
            return name, root / name
        except FileExistsError:
            continue
    raise JobError(f"cannot create a unique job name under {root}")


def check_data_dir(data: Path, definition: JobDefinition) -> dict[str, Path]:
    """The data set's channel folders found in DATA (train, valid, [test], [weights])."""
    data = Path(data).resolve()
    if not data.is_dir():
        raise JobError(f"DATA={data} is not a directory (expected train/ valid/ [test/] inside; `make data` makes one)")
    found = {c: data / c for c in definition.channels.data_set if (data / c).exists()}
    missing = [c for c in definition.channels.required if c not in found]
    if missing:
        raise JobError(f"DATA={data} lacks the required channel folder(s) {', '.join(missing)}")
    return found


@dataclass(frozen=True)
class Trial:
    """Trial n of a local tuning job: its training job has the core's trial name (<tuning>-NNN) and its record
    names the tuning job and n."""

    tuning_job: str
    ordinal: int

    @property
    def name(self) -> str:
        return orchestration.trial_job_name(self.tuning_job, self.ordinal)


def create_job(definition: JobDefinition, data: Path, hyperparameters: dict[str, str], root: Path | None = None,
               channels: dict[str, Path] | None = None, trial: Trial | None = None) -> Path:
    """Make the /opt/ml tree and the record; hyperparameters are checked now, before anything runs.

    `hyperparameters` go over the job definition's static ones (orchestration.training_hyperparameters).
    `channels`: what to link (default: every channel folder of `data`). `trial`: a tuning job's trial, named
    by its ordinal; a bad hyperparameter is then left to the training job, which fails with the reason (as on
    SageMaker). Else the job gets a new unique name.
    """
    values, _ = orchestration.training_hyperparameters(definition, given=hyperparameters, check=trial is None)
    channels = check_data_dir(data, definition) if channels is None else dict(channels)
    root = Path(root or JOBS_ROOT)
    if trial is not None:
        name, job = trial.name, root / trial.name
        job.mkdir(parents=True)
    else:
        name, job = new_job_name(definition.name_prefix, root)
    config = job / "input" / "config"
    config.mkdir(parents=True)
    atomic_write_json(config / "hyperparameters.json", values)
    atomic_write_json(config / "inputdataconfig.json", {
        c: {"ContentType": "application/x-image", "TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None"} for c in channels})
    # The toolkit waits for the current host name to resolve: use one that does.
    atomic_write_json(config / "resourceconfig.json", {"current_host": "localhost", "hosts": ["localhost"],
                                                       "network_interface_name": "lo"})
    (job / "input" / "data").mkdir()
    for channel, path in channels.items():
        (job / "input" / "data" / channel).symlink_to(Path(path).resolve())
    for folder in ("model", "output/data", "code"):
        (job / folder).mkdir(parents=True, exist_ok=True)
    (job / "checkpoints").mkdir()
    write_record(job, {"name": name, "status": "Created", "created": now(), "data": str(Path(data).resolve()),
                       "hyperparameters": values, "channels": sorted(channels),
                       **({"tuning_job": trial.tuning_job, "trial": trial.ordinal} if trial else {})})
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
    raise JobError(f"no local job {name_or_path!r} (looked in {root}); `make jobs` lists them (a SageMaker "
                   f"training job's log: make training-logs JOB={name_or_path})")


def resolve_model(name_or_path: str, root: Path | None = None, variable: str = "MODEL") -> Path:
    """A model as MODEL= and INIT_MODEL= name it: a local job (name or directory: its model/), a model
    directory (model_config.json inside, or in its model/: a job's /opt/ml tree) or a model.tar.gz (a
    SageMaker job's artifact, downloaded; `opened_model` unpacks it). An error starts with `variable`=value."""
    path = Path(name_or_path)
    if path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES):
        return path
    for candidate in (path, path / "model"):
        if (candidate / CONFIG_FILE).is_file() and not (candidate / RECORD).is_file():
            return candidate
    try:
        job = resolve_job(name_or_path, root)
    except JobError:
        raise JobError(f"{variable}={name_or_path}: {name_or_path!r} is neither a local job (name or directory; "
                       f"`make jobs` lists them), a model directory (with {CONFIG_FILE}) nor a model.tar.gz") from None
    if not (job / "model" / CONFIG_FILE).is_file():
        raise JobError(f"{variable}={name_or_path}: job {job.name} has no model (status "
                       f"{read_record(job).get('status')}): only a completed job's model can be used")
    return job / "model"


@contextmanager
def opened_model(name_or_path: str, root: Path | None = None, variable: str = "MODEL"):
    """The model directory MODEL= names (`resolve_model`). A model.tar.gz is unpacked (classifier.artifact's
    unpack_archive: members checked, size capped, free space checked) into a temporary folder that is removed
    when the block ends, whatever happened in it; a bad archive is a JobError that says why (after `variable`=)."""
    found = resolve_model(name_or_path, root, variable)
    if found.is_dir():
        yield found
        return
    work = Path(tempfile.mkdtemp(prefix="unpacked-model-"))
    try:
        try:
            unpack_archive(found, work)
        except ArtifactError as error:
            raise JobError(f"{variable}={name_or_path}: {error}") from None
        inside = next((c for c in (work, work / "model") if (c / CONFIG_FILE).is_file()), None)
        if inside is None:
            raise JobError(f"{variable}={name_or_path}: {found} holds no {CONFIG_FILE} (at its top level, as SageMaker "
                           "packs /opt/ml/model): not a model archive of this project")
        yield inside
    finally:
        shutil.rmtree(work, ignore_errors=True)


def training_environment(job: Path, overrides: dict | None = None) -> dict:
    env = {**os.environ, **(overrides or {})}
    env.update({
        "SAGEMAKER_BASE_DIR": str(Path(job).resolve()),
        "SAGEMAKER_PROGRAM": "train.py",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def train_command() -> list[str]:
    """The training image's `train` (the toolkit's console script, passing SIGTERM on to the program)."""
    if ENTRY.is_file():
        return [sys.executable, str(ENTRY)]
    script = Path(sys.executable).with_name("train")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from sagemaker_training.cli.train import main; main()"]


# --- processes: which are ours, are they alive, stopping them ------------------------------------------------

def process_start(pid: int | None) -> float | None:
    """The start time of a live process (to tell it from a later one with the same pid); None if gone."""
    if not pid:
        return None
    try:
        process = psutil.Process(pid)
        return None if process.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD) else process.create_time()
    except psutil.NoSuchProcess:
        return None


def alive(pid: int | None, start: float | None) -> bool:
    found = process_start(pid)
    return found is not None and (start is None or found == start)


def stop_process(process: subprocess.Popen, force: bool = False) -> None:
    """SIGTERM to the job's entry, which passes it to the training program (it stops at its next step and
    keeps its last checkpoint); `force`: SIGKILL to the job's whole process group."""
    try:
        if force:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            os.kill(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


class Runs:
    """The training processes one process started, so that a signal can stop them all, and none starts
    after that."""

    def __init__(self):
        self.processes: dict[int, subprocess.Popen] = {}
        self.stopped: set[int] = set()
        self.stopping = threading.Event()
        self.signal: int | None = None  # the signal that stopped them (the exit status is 128 + it)

    def add(self, process: subprocess.Popen) -> None:
        self.processes[process.pid] = process
        if self.stopping.is_set():  # stopped while this one was starting
            self.stopped.add(process.pid)
            stop_process(process)

    def remove(self, process: subprocess.Popen) -> None:
        self.processes.pop(process.pid, None)

    def stop(self, force: bool = False) -> None:
        self.stopping.set()
        for process in list(self.processes.values()):
            self.stopped.add(process.pid)
            stop_process(process, force)


RUNS = Runs()
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # what stops local work (serve.py passes them on)


@contextmanager
def stop_on_signals(runs: Runs, interrupt=lambda: False):
    """Ctrl-C, SIGTERM and SIGHUP stop the jobs of `runs` (SIGTERM: each stops at its next step) and let
    no new one start; a second signal kills them. When `interrupt()` says so (nothing is running that
    would end by itself), the signal also raises KeyboardInterrupt here. Main thread only."""
    def handler(signum, frame):
        again = runs.signal is not None
        runs.signal = runs.signal or signum
        runs.stop(force=again)
        if interrupt():
            raise KeyboardInterrupt

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield runs
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def _wait_for_previous_run(job: Path, record: dict, echo) -> None:
    """A job whose last run is still alive: refuse while the process that ran it lives; if that process
    died (killed), its training process got SIGTERM (orphan_guard): wait until it has stopped."""
    if record.get("status") != "InProgress" or not alive(record.get("pid"), record.get("pid_start")):
        return
    owner, owner_start = record.get("owner_pid"), record.get("owner_start")
    if owner != os.getpid() and alive(owner, owner_start):
        raise JobError(f"job {record['name']} is running (process {owner}); stop it first")
    (echo or print)(f"waiting for the previous run of {record['name']} (pid {record['pid']}) to stop")
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while alive(record["pid"], record.get("pid_start")):
        if time.monotonic() > deadline:
            try:
                os.killpg(record["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
            break
        time.sleep(0.2)


def run_job(job: Path, echo=None, definition: JobDefinition | None = None, on_line=None,
            env: dict | None = None, runs: Runs | None = None) -> dict:
    """Run (or resume) the job in its directory; returns the final record.

    `echo(line)` gets every log line (progress on screen); `on_line(line, process)` may inspect it and
    stop the process, returning True when it did (the tuner's early stopping). A restarted job resumes
    from its checkpoints. The training process dies with this one (orphan_guard.py).
    """
    job, runs = Path(job), runs or RUNS
    record = read_record(job)
    _wait_for_previous_run(job, record, echo)
    if runs.stopping.is_set():
        raise JobError(f"not starting {record['name']}: stopping")
    for marker in ("failure", "success"):  # the toolkit writes failure only if none exists yet
        (job / "output" / marker).unlink(missing_ok=True)
    # The code the job runs: a snapshot of container/, where the training image has it (/opt/ml/code).
    shutil.rmtree(job / "code", ignore_errors=True)
    shutil.copytree(CONTAINER_DIR, job / "code", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    began = time.time()
    stopped_by_caller = False
    with open(job / LOG, "ab") as log:
        offset = log.tell()
        process = subprocess.Popen(guarded(train_command()), cwd=job, env=training_environment(job, env),
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    record.update(status="InProgress", started=now(), ended=None, failure_reason=None, exit_code=None,
                  pid=process.pid, pid_start=process_start(process.pid), owner_pid=os.getpid(),
                  owner_start=process_start(os.getpid()), runs=record.get("runs", 0) + 1)
    write_record(job, record)
    runs.add(process)
    try:
        for line in _follow(job / LOG, offset, process):
            if echo:
                echo(line)
            if on_line and on_line(line + "\n", process):
                stopped_by_caller = True
        code = process.wait()
    except KeyboardInterrupt:  # an embedding program's Ctrl-C: stop the job, record it, then pass it on
        stop_process(process)
        _wait(process)
        _finish(job, definition, began, process.returncode, stopped=True)
        raise
    finally:
        runs.remove(process)
    return _finish(job, definition, began, code, stopped=stopped_by_caller or process.pid in runs.stopped)


def _follow(path: Path, offset: int, process: subprocess.Popen):
    """The lines the job appends to its log from `offset` on, as they come, until it exits."""
    pending = b""
    with open(path, "rb") as reader:
        reader.seek(offset)
        while True:
            chunk = reader.read()
            if chunk:
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    yield line.decode(errors="replace")
            elif process.poll() is not None:
                break
            else:
                time.sleep(0.1)
    if pending:
        yield pending.decode(errors="replace")


def _wait(process: subprocess.Popen) -> None:
    try:
        process.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        stop_process(process, force=True)
        process.wait()


def _finish(job: Path, definition: JobDefinition | None, began: float | None, code: int | None,
            stopped: bool) -> dict:
    """The final record: status from the exit code (or, for a job whose process was lost, its markers)."""
    record = read_record(job)
    failure, success = job / "output" / "failure", job / "output" / "success"
    reason = failure.read_text(errors="replace")[:1024].strip() if failure.is_file() else ""
    if code is None:  # the process that ran it was killed: judge by what the job left
        code = 0 if success.is_file() and not reason else None
        # Its training process got SIGTERM when that process died (orphan_guard) and stopped.
        stopped = not reason or "stopped by SIGTERM" in reason
        reason = reason or "the process that ran it was killed; `make train-local JOB=<name>` resumes it"
    if code == 0:
        status, reason = "Completed", ""
    elif stopped:
        status = "Stopped"
    else:
        status = "Failed"
        reason = reason or f"exit code {code}"
    record.update(status=status, failure_reason=reason or None, ended=now(), exit_code=code, pid=None,
                  pid_start=None)
    if began is not None:
        record["duration_seconds"] = round(time.time() - began, 1)
    if definition is not None and (job / LOG).is_file():
        record["metrics"] = final_metrics(definition, (job / LOG).read_text(errors="replace"))
    write_record(job, record)
    return record


def refresh(job: Path, definition: JobDefinition | None = None) -> dict:
    """A job's record, corrected when it says InProgress but no process runs it any more (its process and
    the one that started it were killed): then Stopped or Failed, from what the job left."""
    record = read_record(job)
    if record.get("status") != "InProgress":
        return record
    if alive(record.get("pid"), record.get("pid_start")) or alive(record.get("owner_pid"), record.get("owner_start")):
        return record
    return _finish(Path(job), definition, None, None, stopped=False)


def final_metrics(definition: JobDefinition, log_text: str) -> dict[str, float]:
    return orchestration.final_metrics(definition, log_text)


def list_jobs(root: Path | None = None, definition: JobDefinition | None = None) -> list[dict]:
    root = root or JOBS_ROOT
    if not Path(root).is_dir():
        return []
    records = []
    for job in sorted(Path(root).iterdir()):
        if (job / RECORD).is_file():
            record = refresh(job, definition)
            record["path"] = str(job)
            records.append(record)
    return records
