"""What a tuning job report shows, read from either backend (tuning_local.py, tuning_aws.py): the tuning
job, its trials in the order they were made (the orchestration core's Trial, with each epoch's valid_loss
and times) and the commands that retrain the best one. The best trial is the core's choice."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from scripts import orchestration
from scripts.job_definition import Objective, ParameterRange
from scripts.local.tuning_jobs import EPOCH

CURVE_METRIC = "valid_loss"  # the per-epoch curve every trial gets (the job definition's objective)


@dataclass(frozen=True)
class TrialRun:
    number: int  # 1, 2, ... in the order the trials were made (a local trial <tuning>-001 is 1)
    trial: orchestration.Trial
    curve: dict[int, float]  # epoch -> valid_loss, from the trial's per-epoch metric lines
    early_stopped: bool = False  # stopped by the tuner (early stopping, Hyperband), not by a person
    started: datetime | None = None
    ended: datetime | None = None
    page: str = ""  # the trial's own page: its debugger report (a local file) or its console page (a URL)

    @property
    def shown_status(self) -> str:
        return "Stopped early" if self.early_stopped else self.trial.status


@dataclass(frozen=True)
class TuningRun:
    name: str
    backend: str  # local | SageMaker
    location: str  # the tuning job's directory, or its console page
    status: str
    strategy: str
    early_stopping: str
    objective: Objective
    ranges: tuple[ParameterRange, ...]
    trials: tuple[TrialRun, ...]
    max_jobs: int | None = None
    max_parallel: int | None = None
    created: datetime | None = None
    ended: datetime | None = None
    failure_reason: str = ""
    retrain: tuple[str, ...] = ()  # the commands that train (and serve) the best trial's hyperparameters
    notes: tuple[str, ...] = ()  # what could not be read, said on the page

    def best(self) -> TrialRun | None:
        chosen = orchestration.best_trial([t.trial for t in self.trials], self.objective.minimize)
        return next((t for t in self.trials if chosen is not None and t.trial.name == chosen.name), None)

    def tuned_names(self) -> list[str]:
        return [r.name for r in self.ranges] or sorted({k for t in self.trials for k in t.trial.hyperparameters})


def per_epoch(log_text: str, regex: re.Pattern | None) -> dict[int, float]:
    """Each epoch's value of one metric: the lines that carry both `epoch=N` and the metric (the lines the
    local tuner's pruners read; the closing `best_epoch=` line is not one). A resumed job's repeated
    epoch keeps its last value."""
    values: dict[int, float] = {}
    if regex is None:
        return values
    for line in log_text.splitlines():
        epoch, match = EPOCH.search(line), regex.search(line)
        if epoch and match:
            try:
                values[int(epoch.group(1))] = float(match.group(1))
            except ValueError:
                continue
    return dict(sorted(values.items()))
