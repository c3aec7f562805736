"""The model's view of a set of images, computed the same way for the training job's baseline and for the
captured requests the monitor reads: each image decoded once (its statistics, images.py, and the model's
input through the artifact's evaluation preprocessing), the backbone's pooled features, the class
probabilities of the head on them, in batches.

The features are compared through a fixed random projection to PROJECTION_DIMS dimensions (Johnson-
Lindenstrauss: distances between images are kept up to a small factor), so that the baseline stays small
enough to ship with the model and the per-dimension tests stay few; the baseline stores the matrix.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import runtime
from ..preprocessing import DEFAULT_MAX_PIXELS, ImageDecodeError, ImageTooLargeError, Preprocessing
from ..progress import Progress
from .images import ImageStats, inspect

PROJECTION_DIMS = 32
PROJECTION_SEED = 20260527  # any fixed value; the matrix itself travels in the baseline


def projection(num_features: int, dims: int = PROJECTION_DIMS, seed: int = PROJECTION_SEED) -> np.ndarray:
    """A Gaussian random projection (num_features, dims), scaled by 1/sqrt(dims)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((num_features, dims)) / np.sqrt(dims)).astype(np.float32)


@dataclass
class Observations:
    """What the model saw in the images it could decode (`kept`: their indices among the inputs, in order)."""

    features: np.ndarray  # (n, F) float32: pooled backbone features
    probabilities: np.ndarray  # (n, C) float64
    stats: list[ImageStats]
    kept: list[int]
    failures: list[tuple[int, str]] = field(default_factory=list)  # (input index, why it could not be decoded)
    seconds: float = 0.0

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def top1(self) -> np.ndarray:
        return self.probabilities.max(axis=1)


def _read(source: bytes | Path) -> bytes:
    return source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()


class PassStopped(Exception):
    """The pass was asked to stop (the training job's SIGTERM) before it finished."""


@dataclass(frozen=True)
class PassSettings:
    """How a pass over images runs: images a batch, the device, each image's pixel budget, where its progress
    lines go (a function: a training job's log; None: the terminal), and whether to stop before the next batch."""

    batch_size: int = 32
    device: torch.device | str = "cpu"
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    emit: Callable[[str], None] | None = None
    should_stop: Callable[[], bool] = lambda: False


@torch.inference_mode()
def observe(model, sources: Sequence[bytes | Path], preprocessing: Preprocessing,
            features: np.ndarray | torch.Tensor | None = None, what: str = "monitor pass",
            settings: PassSettings | None = None) -> Observations:
    """Every image of `sources` (encoded bytes or files) through `model` (an ImageClassifier in eval mode).
    `features`: the pooled backbone features of the sources, already computed (a frozen backbone's feature
    pass): only the head runs then; the images are still decoded, for their statistics. An image that cannot
    be decoded is left out and named in `failures`. `what`: the progress line's label."""
    started = time.monotonic()
    settings = settings or PassSettings()
    model.eval()
    device = torch.device(settings.device)
    batch_size = settings.batch_size

    def decode(index: int):
        try:
            return inspect(_read(sources[index]), preprocessing, settings.max_pixels)
        except (ImageDecodeError, ImageTooLargeError, OSError) as error:
            return str(error)

    rows, probabilities, stats, kept, failures = [], [], [], [], []
    with ThreadPoolExecutor(max_workers=runtime.cpu_count(), thread_name_prefix="monitor-decode") as pool, \
            runtime.threads_while_decoding(device), Progress(what, len(sources), emit=settings.emit) as progress:
        for start in range(0, len(sources), batch_size):
            if settings.should_stop():
                raise PassStopped(f"{what}: stopped after {start} of {len(sources)} images")
            indices = range(start, min(len(sources), start + batch_size))
            tensors, batch = [], []
            for index, result in zip(indices, pool.map(decode, indices), strict=True):
                if isinstance(result, str):
                    failures.append((index, result))
                    continue
                stats.append(result[0])
                tensors.append(result[1])
                batch.append(index)
            if batch:
                if features is not None:
                    pooled = torch.as_tensor(np.asarray(features)[batch]).to(device, torch.float32)
                else:
                    images = torch.stack(tensors).to(device).contiguous(memory_format=runtime.MEMORY_FORMAT)
                    pooled = model.features(images).float()
                rows.append(pooled.cpu().numpy())
                probabilities.append(model.classify(pooled).double().exp().cpu().numpy())
                kept += batch
            progress.add(len(indices))
    width = model.head[0].in_features
    return Observations(
        features=np.concatenate(rows) if rows else np.zeros((0, width), np.float32),
        probabilities=np.concatenate(probabilities) if probabilities else np.zeros((0, model.head[-2].out_features)),
        stats=stats, kept=kept, failures=failures, seconds=time.monotonic() - started)
