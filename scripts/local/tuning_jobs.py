"""A local tuning job's files (jobs/tuning/<name>/) as the tuner and its readers see them: where they are, the
record (tuning.json: the job definition it ran with, its trials, the best one), the trials as the core's
Trials, the newest Optuna trial of each trial number, and the best trial with its hyperparameters.

The tuner (tune.py) writes these files; `make train-local TUNING=...` and the tuning job report
(scripts/reports) read them from here, so neither reader depends on the tuner.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from scripts import job_definition, orchestration
from scripts.job_definition import JobDefinition
from scripts.local import jobs

if TYPE_CHECKING:  # only the annotations: reading a record needs no Optuna
    import optuna

RECORD = "tuning.json"
EPOCH = re.compile(r"\bepoch=(\d+)")  # the epoch of a per-epoch metric line (the pruners' and the report's)


def tuning_root() -> Path:
    return jobs.JOBS_ROOT / "tuning"


def resolve_tuning(name: str) -> Path:
    for candidate in (Path(name), tuning_root() / name):
        if (candidate / RECORD).is_file():
            return candidate
    raise jobs.JobError(f"no local tuning job {name!r} in {tuning_root()}")


def read(directory: Path) -> tuple[dict, JobDefinition]:
    """The record and the job definition the tuning job ran with."""
    record = json.loads((Path(directory) / RECORD).read_text())
    raw = dict(record["definition"])
    raw.pop("channels", None)  # tuning jobs made before the channel list moved to the container
    return record, job_definition.from_dict(raw, Path(record["definition_path"]))


def as_trial(entry: dict) -> orchestration.Trial:
    """A tuning.json trial as the core's Trial (the table and the best-trial choice)."""
    return orchestration.Trial(entry["job"], entry["status"], entry["objective"],
                               {k: v for k, v in entry["hyperparameters"].items() if v is not None},
                               entry.get("duration_seconds"), entry.get("failure_reason") or "")


def latest_trials(study: optuna.Study) -> dict[int, optuna.trial.FrozenTrial]:
    """The newest Optuna trial of each of our trials, by trial number (a resumed one has several)."""
    found: dict[int, optuna.trial.FrozenTrial] = {}
    for t in study.get_trials(deepcopy=False):
        ordinal = t.user_attrs.get("ordinal")
        if ordinal is not None and (ordinal not in found or t.number > found[ordinal].number):
            found[ordinal] = t
    return found


def best_trial(name: str) -> tuple[orchestration.Trial, Path]:
    """The tuning job's best trial (the core's choice, recorded when the tuning job ended) and its job dir."""
    record = json.loads((resolve_tuning(name) / RECORD).read_text())
    best = record.get("best")
    if not best:
        raise jobs.JobError(f"tuning job {name} has no completed trial")
    entry = next(t for t in record["trials"] if t["job"] == best["job"])
    return as_trial(entry), jobs.resolve_job(best["job"])


def best_hyperparameters(name: str) -> dict[str, str]:
    """The best trial's hyperparameters as it ran with them (for `make train-local TUNING=...`)."""
    _, job = best_trial(name)
    return orchestration.recorded_hyperparameters(jobs.read_record(job)["hyperparameters"])
