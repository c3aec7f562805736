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
from .hook import import_smdebug

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
        """Never waits: smdebug's trial would wait without a bound for files that may never come."""
        if not (self.path / "index").is_dir():
            self.data.error = f"no tensors in {self.path} (debugger=false, or no step saved yet)"
            return self.data
        try:
            missing = self._missing_collections()
            if missing:
                log.warning("smdebug tensors in %s not read: %s", self.path, missing)
                self.data.error = f"cannot read the smdebug tensors in {self.path}: {missing}"
                return self.data
            self._read_new_steps()
            self.data.error = None
        except Exception as error:  # a damaged file must not take the job (or the offline run) down
            log.warning("reading smdebug tensors from %s failed: %s", self.path, error)
            self.data.error = f"cannot read the smdebug tensors in {self.path}: {type(error).__name__}: {error}"
        return self.data

    def _missing_collections(self) -> str | None:
        """Why smdebug's trial would wait for collections files (it polls every 2 s, for ever), or None.

        The trial waits for one collections file, then for one per worker the file names, until the
        training-end marker appears; a job killed before its hook saved a step leaves index files and no
        collections file. Checked with smdebug's own functions, so the condition is the one it waits on.
        """
        import_smdebug()
        from smdebug.core.access_layer.utils import has_training_ended
        from smdebug.core.collection_manager import CollectionManager
        from smdebug.core.utils import get_path_to_collections, list_collection_files_in_directory

        files = list_collection_files_in_directory(get_path_to_collections(str(self.path)))
        if not files:
            return "no collections file: the hook has not finished saving a step (or wrote nothing)"
        workers = CollectionManager.load(files[0]).get_num_workers()
        if len(files) < workers and not has_training_ended(str(self.path)):
            return f"collections files of {len(files)} of the {workers} workers only"
        return None

    def _read_new_steps(self) -> None:
        _, modes = import_smdebug()
        from smdebug.trials import create_trial

        trial = create_trial(str(self.path))
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

