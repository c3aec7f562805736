"""Per-epoch checkpoints in the checkpoint dir, written atomically, and resume from the last one.

This is SageMaker managed spot training's contract: the checkpoint dir is synced to S3 and copied back
in when the job restarts, so a job restarted on the same dir continues after its last finished epoch.
Files: `last.pt` (everything to resume) and `best-epoch-NNNN.pt` (state dict of the best epoch so far,
the one `last.pt` names). Both load with `torch.load(weights_only=True)`.
"""
from __future__ import annotations

import errno
import logging
import math
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..artifact import atomic_write_bytes
from .optim import load_scheduler_state

log = logging.getLogger(__name__)
LAST = "last.pt"


def best_file(epoch: int) -> str:
    return f"best-epoch-{epoch:04d}.pt"


class CheckpointError(RuntimeError):
    pass


@dataclass
class Progress:
    """Where training stands after an epoch: saved in every checkpoint (as a plain dict, which
    `torch.load(weights_only=True)` reads), so a resumed job continues from it."""

    epoch: int = 0  # epochs finished
    history: list[dict] = field(default_factory=list)  # each epoch's metrics
    best_epoch: int = 0
    best_valid_loss: float = math.inf
    epochs_without_improvement: int = 0
    stopped: str | None = None  # why training ended before its last epoch

    def record(self, metrics: dict) -> bool:
        """One finished epoch's metrics; True when its valid loss is the best so far."""
        self.epoch = metrics["epoch"]
        self.history.append(metrics)
        improved = metrics["valid_loss"] < self.best_valid_loss
        if improved:
            self.best_epoch, self.best_valid_loss = self.epoch, metrics["valid_loss"]
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
        return improved

    @property
    def best_metrics(self) -> dict:
        return self.history[self.best_epoch - 1] if self.best_epoch else {}

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, saved: dict) -> "Progress":
        return cls(**saved)


def rng_state() -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(directory: Path, state: dict, best_model_state: dict | None) -> None:
    """A new best model under its own name, then `last.pt` naming it, then the old best removed:
    a crash at any point leaves a `last.pt` whose best model is on disk. A write that fails (a full
    disk) leaves the previous checkpoint as it was and raises CheckpointError saying why."""
    directory.mkdir(parents=True, exist_ok=True)
    keep = best_file(state["progress"]["best_epoch"])
    written = []
    try:
        if best_model_state is not None:
            _write(directory / keep, best_model_state)
            written.append(directory / keep)
        _write(directory / LAST, state)
    except CheckpointError:
        for path in written:  # not named by the last.pt on disk: only takes space
            path.unlink(missing_ok=True)
        raise
    for old in directory.glob("best-epoch-*.pt"):
        if old.name != keep:
            old.unlink(missing_ok=True)


def _write(path: Path, payload: dict) -> None:
    try:
        atomic_write_bytes(path, lambda f: torch.save(payload, f))
    except (OSError, RuntimeError) as error:
        # torch reports a full disk as "RuntimeError: [enforce fail at inline_container.cc:...] ...
        # file write failed"; ask the file system instead of parsing that.
        free = shutil.disk_usage(path.parent).free
        if getattr(error, "errno", None) == errno.ENOSPC or free < 64 * 1024 * 1024:
            raise CheckpointError(f"no space left on {path.parent} to write checkpoint {path.name} "
                                  f"({free // 1024} KiB free); the previous checkpoint is kept. Free space "
                                  f"and run the job again to resume") from error
        raise CheckpointError(f"cannot write checkpoint {path} ({type(error).__name__}: {error}); "
                              f"the previous checkpoint is kept") from error


def load(directory: Path, fingerprint: dict) -> tuple[dict, dict | None] | None:
    """The last checkpoint and best model state, or None when the dir holds none.

    `fingerprint` names what must match (architecture, classes, ...): resuming another job's
    checkpoint into this one would silently train the wrong thing.
    """
    path = directory / LAST
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(error).__name__}: {error}); "
                              f"remove it to start over") from error
    saved = state.get("fingerprint", {})
    differing = sorted(k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k))
    if differing:
        details = "; ".join(f"{k}: checkpoint has {saved.get(k)!r}, this job {fingerprint.get(k)!r}" for k in differing)
        raise CheckpointError(f"checkpoint {path} belongs to a different job ({details}); use an empty "
                              f"checkpoint dir or remove {path}")
    best = None
    best_epoch = state["progress"]["best_epoch"]
    if best_epoch:
        path = directory / best_file(best_epoch)
        if not path.is_file():
            raise CheckpointError(f"checkpoint {directory / LAST} names {path.name}, which is missing; "
                                  f"remove the checkpoint dir to start over")
        try:
            best = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise CheckpointError(f"checkpoint {path} cannot be read ({type(error).__name__}: {error}); "
                                  f"remove the checkpoint dir {directory} to start over") from error
    return state, best


class Checkpointer:
    """Saves and resumes one job's training state: the trained parts of the model, the optimizer, the schedule,
    the loss scaler, the random generators and the progress; `fingerprint` names what a checkpoint must match."""

    def __init__(self, directory: Path, fingerprint: dict, model, optimizer, scheduler, scaler):
        self.directory, self.fingerprint = directory, fingerprint
        self.model, self.optimizer, self.scheduler, self.scaler = model, optimizer, scheduler, scaler

    def resume(self) -> tuple[Progress, dict | None]:
        """The progress to continue from and the best epoch's trained state so far (a fresh start: none)."""
        resumed = load(self.directory, self.fingerprint)
        if not resumed:
            return Progress(), None
        saved, best_state = resumed
        self.model.load_trained_state_dict(saved["model"])
        load_scheduler_state(self.scheduler, saved["scheduler"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scaler.load_state_dict(saved["scaler"])
        set_rng_state(saved["rng"])
        progress = Progress.from_dict(saved["progress"])
        log.info("Resumed from %s after epoch %d of %s", self.directory / LAST, progress.epoch,
                 self.fingerprint.get("epochs"))
        return progress, best_state

    def save(self, progress: Progress, best_state: dict | None) -> None:
        """`best_state`: the trained state of this epoch when it is the best so far, else None."""
        save(self.directory, {
            "fingerprint": self.fingerprint, "model": self.model.trained_state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "rng": rng_state(), "progress": progress.as_dict(),
        }, best_state)
