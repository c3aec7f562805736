"""Per-epoch checkpoints in the checkpoint dir, written atomically, and resume from the last one.

This is SageMaker managed spot training's contract: the checkpoint dir is synced to S3 and copied back
in when the job restarts, so a job restarted on the same dir continues after its last finished epoch.
Files: `last.pt` (everything to resume) and `best-epoch-NNNN.pt` (state dict of the best epoch so far,
the one `last.pt` names). Both load with `torch.load(weights_only=True)`.
"""
from __future__ import annotations

import errno
import logging
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from ..artifact import atomic_write_bytes

log = logging.getLogger(__name__)
LAST = "last.pt"


def best_file(epoch: int) -> str:
    return f"best-epoch-{epoch:04d}.pt"


class CheckpointError(RuntimeError):
    pass


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
