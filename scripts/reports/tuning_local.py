"""A local tuning job (jobs/tuning/<name>/) as the tuning report reads it: its record (tuning.json, written
by the tuner), each trial's training job (job.json for times, job.log for the per-epoch values, read with
the job definition's regex as the tuner reads them) and the Optuna study (which trials were pruned). Its
report goes next to its record (the tuner writes it when it ends, `make tune-report` on demand)."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import optuna
from optuna.trial import TrialState

from scripts.local import jobs, tuning_jobs

from . import tuning_report
from .tuning_data import CURVE_METRIC, TrialRun, TuningRun, per_epoch


def write_report(directory: Path, out: Path | None = None) -> Path:
    """The report of a local tuning job, by default next to its record."""
    return tuning_report.write(load(directory), out or report_path(directory))


def load(directory: Path) -> TuningRun:
    record, definition = tuning_jobs.read(directory)
    regex = definition.metric_regexes().get(CURVE_METRIC)
    pruned = pruned_ordinals(Path(directory), record["name"])
    notes = []
    if not record.get("trials"):
        notes.append(f"The tuning job (status {record.get('status')}) has not recorded its trials yet: the tuner "
                     f"records them when it ends or is stopped; `make tune-local TUNING={record['name']}` resumes "
                     "a killed one.")
    trials = []
    for entry in record.get("trials", []):
        job = jobs.JOBS_ROOT / entry["job"]
        job_record = jobs.read_record(job) if (job / jobs.RECORD).is_file() else {}
        log = job / jobs.LOG
        curve = per_epoch(log.read_text(errors="replace"), regex) if log.is_file() else {}
        report = job / "output" / "data" / "debugger-report.html"
        trials.append(TrialRun(entry["trial"], tuning_jobs.as_trial(entry), curve, entry["trial"] in pruned,
                               _time(job_record.get("started")), _time(job_record.get("ended")),
                               str(report) if report.is_file() else ""))
    name = record["name"]
    return TuningRun(
        name=name, backend="local", location=str(Path(directory).resolve()), status=record.get("status", "unknown"),
        strategy=definition.strategy.name, early_stopping=definition.strategy.early_stopping,
        objective=definition.objective, ranges=definition.ranges, trials=tuple(sorted(trials, key=lambda t: t.number)),
        max_jobs=definition.limits.max_jobs, max_parallel=definition.limits.max_parallel_jobs,
        created=_time(record.get("created")), ended=_time(record.get("ended")),
        retrain=(f"make train-local TUNING={name}", f'make train-local TUNING={name} HP="best epochs=10"'),
        notes=tuple(notes))


def pruned_ordinals(directory: Path, name: str) -> set[int]:
    """The trials the tuner pruned (early stopping, Hyperband): their newest Optuna trial is PRUNED."""
    storage = directory / "optuna.db"
    if not storage.is_file():
        return set()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{storage}")
    return {ordinal for ordinal, t in tuning_jobs.latest_trials(study).items() if t.state == TrialState.PRUNED}


def report_path(directory: Path) -> Path:
    return Path(directory) / "tuning-report.html"


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
