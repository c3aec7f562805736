"""The monitor's baseline: what the model saw on its validation images, written by the training job beside the
model (`monitor_baseline.npz` in the model directory), so it travels with the model wherever it goes (its
model.tar.gz, the registry's packages, an endpoint) and `make monitor-report` finds it with the model it
judges. At most MAX_IMAGES images (a seeded sample of the valid channel), each with:

- its pooled backbone features through the fixed random projection (observe.py), and the projection matrix;
- the predicted class and its probability (the top-1 probability);
- its image statistics (images.py).

A few hundred KB; numpy's .npz (arrays only, read with allow_pickle=False: nothing in it is executed).
For a model without one: `make monitor-baseline MODEL=... DATA=...` (scripts/monitor/baseline_cli.py).
"""
from __future__ import annotations

import json
import logging
import time
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..artifact import atomic_write_bytes
from .images import CONTINUOUS, FLAGS, columns
from .observe import PROJECTION_DIMS, PROJECTION_SEED, Observations, PassSettings, observe, projection

if TYPE_CHECKING:  # a channel's files and classes; the monitor needs nothing else of training
    from ..training.data import Channel

log = logging.getLogger(__name__)
BASELINE_FILE = "monitor_baseline.npz"
FORMAT_VERSION = 1
MAX_IMAGES = 2000  # enough for the tests' power; a sample keeps big valid sets quick and the file small
SAMPLE_SEED = 0


class BaselineError(RuntimeError):
    """No usable baseline in a model directory; the message says how to make one."""


@dataclass
class Baseline:
    classes: list[str]
    projection: np.ndarray  # (F, K) float32
    embeddings: np.ndarray  # (N, K) float32: projected pooled features
    predicted: np.ndarray  # (N,) int
    top1: np.ndarray  # (N,) float
    stats: dict[str, np.ndarray]  # images.CONTINUOUS (float) and images.FLAGS (bool), (N,) each
    source: str  # which images, e.g. "valid channel: 200 of 200 images"
    created: str  # UTC, ISO 8601
    seconds: float  # what computing it took

    @property
    def images(self) -> int:
        return len(self.predicted)

    @classmethod
    def from_observations(cls, seen: Observations, matrix: np.ndarray, classes: list[str], source: str,
                          seconds: float) -> "Baseline":
        return cls(classes=list(classes), projection=matrix, embeddings=(seen.features @ matrix).astype(np.float32),
                   predicted=seen.predicted.astype(np.int32), top1=seen.top1.astype(np.float32),
                   stats=columns(seen.stats), source=source,
                   created=datetime.now(timezone.utc).isoformat(timespec="seconds"), seconds=seconds)

    def save(self, model_dir: Path) -> Path:
        path = Path(model_dir) / BASELINE_FILE
        meta = {"format_version": FORMAT_VERSION, "classes": self.classes, "source": self.source,
                "created": self.created, "seconds": round(self.seconds, 3), "projection_seed": PROJECTION_SEED}
        arrays = {"projection": self.projection, "embeddings": self.embeddings, "predicted": self.predicted,
                  "top1": self.top1, "meta": np.array(json.dumps(meta))}
        arrays.update({f"stat_{name}": values for name, values in self.stats.items()})
        atomic_write_bytes(path, lambda handle: np.savez_compressed(handle, **arrays))
        return path

    @classmethod
    def load(cls, model_dir: Path) -> "Baseline":
        path = Path(model_dir) / BASELINE_FILE
        if not path.is_file():
            raise BaselineError(f"{Path(model_dir)} has no {BASELINE_FILE} (a model trained before the monitor "
                                f"existed, or a job stopped before its end): make one with `make monitor-baseline "
                                f"MODEL={model_dir} DATA=<its data set>`")
        try:
            with np.load(path, allow_pickle=False) as stored:
                meta = json.loads(str(stored["meta"]))
                if meta.get("format_version") != FORMAT_VERSION:
                    raise BaselineError(f"{path} has format_version {meta.get('format_version')!r}; this code "
                                        f"reads {FORMAT_VERSION}: make it again with `make monitor-baseline`")
                baseline = cls(classes=list(meta["classes"]), projection=stored["projection"],
                               embeddings=stored["embeddings"], predicted=stored["predicted"], top1=stored["top1"],
                               stats={name: stored[f"stat_{name}"] for name in CONTINUOUS + FLAGS},
                               source=str(meta["source"]), created=str(meta["created"]),
                               seconds=float(meta["seconds"]))
        except BaselineError:
            raise
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as error:
            raise BaselineError(f"{path} cannot be read ({type(error).__name__}: {error}): make it again with "
                                f"`make monitor-baseline`") from None
        if baseline.embeddings.shape != (baseline.images, baseline.projection.shape[1]) or not baseline.images:
            raise BaselineError(f"{path} is inconsistent: {baseline.embeddings.shape} embeddings for "
                                f"{baseline.images} images: make it again with `make monitor-baseline`")
        return baseline


def sample(count: int, limit: int = MAX_IMAGES, seed: int = SAMPLE_SEED) -> list[int]:
    """Which of `count` images the baseline uses: all, or a seeded random `limit` of them (in order)."""
    if count <= limit:
        return list(range(count))
    return sorted(np.random.default_rng(seed).choice(count, size=limit, replace=False).tolist())


def compute(model, channel: Channel, preprocessing, features=None, what: str = "valid channel",
            settings: PassSettings | None = None) -> Baseline:
    """The baseline of `model` on a channel's images (a sample of MAX_IMAGES when there are more). `features`:
    the images' pooled backbone features when a frozen backbone's feature pass computed them (one row an
    image). `what`: the images' origin, as the baseline's source names it."""
    started = time.monotonic()
    files = [path for path, _ in channel.samples]
    chosen = sample(len(files))
    rows = None if features is None else np.asarray(features, dtype=np.float32)[chosen]
    seen = observe(model, [files[i] for i in chosen], preprocessing, features=rows, what="monitor baseline",
                   settings=settings)
    if not seen.kept:
        raise BaselineError(f"none of the {len(chosen)} images of the {what} could be decoded: "
                            f"{seen.failures[0][1] if seen.failures else 'no images'}")
    matrix = projection(seen.features.shape[1], PROJECTION_DIMS)
    source = f"{what}: {len(seen.kept)} of {len(files)} images" + (
        f" ({len(seen.failures)} not decoded)" if seen.failures else "")
    return Baseline.from_observations(seen, matrix, channel.classes, source, time.monotonic() - started)


def write(model_dir: Path, model, channel: Channel, preprocessing, features=None, what: str = "valid channel",
          settings: PassSettings | None = None) -> Baseline:
    """Compute the baseline and save it in the model directory; one log line says what it cost."""
    baseline = compute(model, channel, preprocessing, features, what, settings)
    path = baseline.save(model_dir)
    log.info("Monitor baseline: %s, %s, %.1f s, %d KB in %s", baseline.source,
             "features from the feature pass" if features is not None else "backbone pass", baseline.seconds,
             path.stat().st_size // 1024, path)
    return baseline
