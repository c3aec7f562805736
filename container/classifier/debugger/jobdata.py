"""Everything the rules and the report read about one job, from its files (running or finished).

    debugger/job.json          the job: times (started, first step, loop end, end), environment, hook and
                               profiler settings, classes and training label counts
    debugger/epochs.jsonl      one line per epoch: epoch, train_steps [first, last], eval_steps [first, last]
                               (smdebug mode steps), train_loss, valid_loss, valid_accuracy, epoch_time,
                               images_per_sec, lr, timestamp
    debugger/predictions.jsonl one line per epoch and mode (train, valid; test at the end): epoch, mode,
                               samples, confusion (rows: true class, columns: predicted class)
    metrics.json               the training job's own history (used when epochs.jsonl is missing)
    profiler/*.csv, tensors    see profiler.py and tensors.py
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from . import config
from .records import read_csv_columns, read_json, read_jsonl
from .tensors import TensorData, TensorReader


@dataclass
class JobData:
    layout: config.Layout
    job: dict = field(default_factory=dict)
    epochs: list = field(default_factory=list)
    predictions: list = field(default_factory=list)
    tensors: TensorData | None = None
    system: dict = field(default_factory=dict)  # column -> numpy array
    steps: dict = field(default_factory=dict)  # column -> numpy array
    now: float = field(default_factory=time.time)

    @property
    def started(self) -> float | None:
        return self.job.get("started")

    def loop_window(self) -> tuple[float | None, float | None]:
        """Unix times of the training loop: first step's start to the end of the last epoch (or now)."""
        start = self.job.get("first_step_start")
        end = self.job.get("loop_end")
        if "timestamp" in self.steps and len(self.steps["timestamp"]):
            end = max(end or 0, float(np.nanmax(self.steps["timestamp"])))
            if start is None:
                start = float(np.nanmin(self.steps["timestamp"] - self.steps["step_s"]))
        return start, end

    def system_in_loop(self) -> dict:
        """The system samples taken during the training loop (all of them when the loop is unknown)."""
        if not self.system or "timestamp" not in self.system:
            return {}
        start, end = self.loop_window()
        stamps = self.system["timestamp"]
        mask = np.ones(len(stamps), dtype=bool)
        if start is not None:
            mask &= stamps >= start
        if end is not None:
            mask &= stamps <= end
        return {k: v[mask] for k, v in self.system.items()}

    def gpu_indices(self) -> list[int]:
        return sorted({int(k[3:].split("_")[0]) for k in self.system
                       if k.startswith("gpu") and k.endswith("_util_percent")})

    def cpu_cores(self) -> int:
        return int(self.job.get("cpu_count")
                   or len([k for k in self.system if k.startswith("cpu") and k[3:4].isdigit()]) or 1)


def load(layout: config.Layout, reader: TensorReader | None = None, with_tensors: bool = True) -> JobData:
    data = JobData(layout)
    data.job = read_json(layout.job_file, {}) or {}
    data.epochs = read_jsonl(layout.epochs_file)
    if not data.epochs:  # a job run without the debugger session still has its history
        history = (read_json(layout.data / "metrics.json", {}) or {}).get("history", [])
        data.epochs = [dict(h) for h in history]
    data.predictions = read_jsonl(layout.predictions_file)
    data.system = read_csv_columns(layout.system_file)
    data.steps = read_csv_columns(layout.steps_file)
    if with_tensors:
        reader = reader or TensorReader(layout.tensors)
        data.tensors = reader.read()
    return data


def finite(values) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    return array[np.isfinite(array)]


def percentile(values, q: float) -> float:
    array = finite(values)
    return float(np.percentile(array, q)) if array.size else math.nan
