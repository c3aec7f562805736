"""Read what smdebug's hook wrote (through an smdebug trial) into per-tensor, per-step statistics.

Each (tensor, mode, step) is read once and reduced to a few numbers, cached, so rules run at every epoch end
only read the steps saved since the last run.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import config

log = logging.getLogger(__name__)
SAMPLE = 200_000  # at most about this many values per tensor for the gradient percentiles


@dataclass
class TensorStat:
    name: str
    collection: str
    mode: str  # "train" or "eval"
    step: int  # smdebug's step of that mode
    size: int
    nan: int
    inf: int
    mean: float
    abs_mean: float
    var: float
    min: float
    max: float
    spread: float | None = None  # gradients: 95th - 5th percentile of the values
    unit_active: np.ndarray | None = None  # relu_output: share of non-zero outputs of each unit (dim 1)


@dataclass
class TensorData:
    path: Path
    stats: list[TensorStat] = field(default_factory=list)
    error: str | None = None

    def select(self, collection: str, mode: str | None = "train") -> list[TensorStat]:
        return [s for s in self.stats if s.collection == collection and (mode is None or s.mode == mode)]

    def steps(self, mode: str = "train") -> list[int]:
        return sorted({s.step for s in self.stats if s.mode == mode})

    def collections(self) -> set[str]:
        return {s.collection for s in self.stats}


def _reduce(name: str, collection: str, mode: str, step: int, value) -> TensorStat:
    array = np.asarray(value)
    flat = array.astype(np.float64, copy=False).ravel()
    finite = np.isfinite(flat)
    nan, inf = int(np.isnan(flat).sum()), int((~finite).sum() - np.isnan(flat).sum())
    good = flat[finite] if nan or inf else flat
    if good.size:
        mean, abs_mean, var = float(good.mean()), float(np.abs(good).mean()), float(good.var())
        low, high = float(good.min()), float(good.max())
    else:
        mean = abs_mean = var = low = high = math.nan
    active = spread = None
    if collection == "gradients" and good.size:
        stride = max(1, good.size // SAMPLE)
        low_p, high_p = np.percentile(good[::stride], [5, 95])
        spread = float(high_p - low_p)
    if collection == "relu_output" and array.ndim >= 2:
        units = np.moveaxis(array, 1, 0).reshape(array.shape[1], -1)
        active = (units != 0).mean(axis=1)
    return TensorStat(name, collection, mode, step, int(flat.size), nan, inf, mean, abs_mean, var, low, high, spread,
                      active)


class TensorReader:
    """Keeps the statistics of the steps already read; `read()` adds the new ones."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.data = TensorData(self.path)
        self.done: set = set()  # (mode, step) already read

    def read(self) -> TensorData:
        if not (self.path / "index").is_dir():
            self.data.error = f"no tensors in {self.path} (debugger=false, or no step saved yet)"
            return self.data
        try:
            self._read_new_steps()
            self.data.error = None
        except Exception as error:  # a damaged file must not take the job (or the offline run) down
            log.warning("reading smdebug tensors from %s failed: %s", self.path, error)
            self.data.error = f"cannot read the smdebug tensors in {self.path}: {type(error).__name__}: {error}"
        return self.data

    def _read_new_steps(self) -> None:
        from .hook import import_smdebug

        _, modes = import_smdebug()
        from smdebug.trials import create_trial

        trial = create_trial(str(self.path))
        trial._training_end_delay_refresh = 0  # the files are complete when we read them: no need to wait
        names_by_collection = {}
        for collection in config.COLLECTIONS:
            try:
                names_by_collection[collection] = set(trial.tensor_names(collection=collection))
            except Exception:
                names_by_collection[collection] = set()
        owner = {}
        for collection in config.COLLECTIONS:  # a name belongs to the first collection listing it
            for name in names_by_collection[collection]:
                owner.setdefault(name, collection)
        for mode_name, mode in (("train", modes.TRAIN), ("eval", modes.EVAL)):
            for step in trial.steps(mode=mode):
                if (mode_name, step) in self.done:
                    continue
                for name in sorted(owner):
                    tensor = trial.tensor(name)
                    if step not in tensor.steps(mode=mode):
                        continue
                    value = tensor.value(step, mode=mode)
                    self.data.stats.append(_reduce(name, owner[name], mode_name, step, value))
                self.done.add((mode_name, step))

