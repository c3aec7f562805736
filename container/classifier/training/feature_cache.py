"""Frozen-backbone feature cache: with a frozen backbone and no random augmentation, an image's
backbone output never changes, so a tuning job computes it once and every trial trains the head on it.

A cache directory holds one folder per model key (architecture, pretrained weights file contents,
preprocessing), and in it `features.pt`: {"hashes": [sha256 of each image file], "features": (N, F)}.
Images are found by the hash of their bytes, so renamed or re-uploaded files still hit and changed
files miss. Training jobs only read the cache (optional channel `feature_cache`); anything missing
from it is computed by the job itself.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from .. import runtime
from ..artifact import atomic_write_bytes
from ..preprocessing import Preprocessing
from ..progress import Progress
from .data import Channel, ImageDataset

log = logging.getLogger(__name__)
FEATURES_FILE = "features.pt"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# Bump when decoding changes what pixels a file gives, so older caches miss (2: EXIF orientation applied;
# 3: the evaluation view resized in one call of its crop's area, which rounds a few pixels differently).
DECODER_VERSION = 3


def model_key(architecture: str, weights_file: Path | None, preprocessing: Preprocessing) -> str:
    identity = {"architecture": architecture, "preprocessing": preprocessing.to_dict(),
                "weights": file_sha256(weights_file) if weights_file else "random-init",
                "decoder": DECODER_VERSION}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]


class PassStopped(Exception):
    """The feature pass was asked to stop (SIGTERM) before it finished."""


@torch.inference_mode()
def compute_features(model, channel: Channel, preprocessing: Preprocessing, batch_size: int, workers: int,
                     device, progress=None, should_stop=lambda: False) -> torch.Tensor:
    """The backbone's output for every image of the channel, in sample order (eval transform).

    On CPU each batch is decoded on every core, then run through the backbone on every core (decoding
    beside the forward would stall it: classifier/runtime.py), and `workers` is not used; on a GPU
    `workers` DataLoader processes decode beside it. `progress(line)` gets a progress line every few seconds
    and at the end (default: the log; lines, never a live bar: the pass is part of a training job's log);
    when `should_stop()` turns true (SIGTERM), the pass raises PassStopped. The model is left in eval mode
    and channels_last, the format the forward is fastest in."""
    runtime.tune_malloc()  # process-wide, idempotent: this pass also runs in the local tuner's process
    model.eval().to(memory_format=runtime.MEMORY_FORMAT)
    dataset = ImageDataset(channel, preprocessing)
    if torch.device(device).type == "cpu":
        batches = runtime.decoded_batches(len(dataset), lambda index: dataset[index][0], batch_size)
    else:
        batches = (images for images, _ in DataLoader(dataset, batch_size=batch_size, num_workers=workers))
    rows = []
    with runtime.threads_while_decoding(device), \
            Progress(f"feature pass '{channel.name}'", len(channel), emit=progress or log.info) as meter:
        for images in batches:
            images = images.to(device).contiguous(memory_format=runtime.MEMORY_FORMAT)
            rows.append(model.features(images).float().cpu())
            meter.add(len(images))
            if should_stop():
                raise PassStopped(f"{meter.what} stopped after {meter.done} of {meter.total} images")
    return torch.cat(rows)


class CacheWriteError(RuntimeError):
    """The cache could not be written (a full disk, say); the message says where and why."""


def load(cache_dir: Path, key: str) -> dict[str, torch.Tensor]:
    """The cache's entries for one model key; an unreadable file (truncated, corrupt) is named in the log and
    read as empty, so the features are computed again and the file is written anew."""
    path = Path(cache_dir) / key / FEATURES_FILE
    if not path.is_file():
        return {}
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
        return dict(zip(stored["hashes"], stored["features"], strict=True))
    except Exception as error:  # noqa: BLE001 - whatever is wrong with the file, the features can be recomputed
        log.warning("feature cache %s is unreadable (%s: %s): its features are computed again and it is rewritten",
                    path, type(error).__name__, error)
        return {}


def save(cache_dir: Path, key: str, entries: dict[str, torch.Tensor]) -> None:
    folder = Path(cache_dir) / key
    hashes = sorted(entries)
    payload = {"hashes": hashes, "features": torch.stack([entries[h] for h in hashes])}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / FEATURES_FILE, lambda f: torch.save(payload, f))
    except (OSError, RuntimeError) as error:  # torch reports a full disk as a RuntimeError ("file write failed")
        free = shutil.disk_usage(folder if folder.exists() else Path(cache_dir).anchor).free
        raise CacheWriteError(f"cannot write the feature cache {folder / FEATURES_FILE} ({type(error).__name__}: "
                              f"{error}; {free // 2**20} MiB free there); the earlier cache file, if any, is kept"
                              ) from error


def features_for(channel: Channel, cached: dict[str, torch.Tensor], model, preprocessing, batch_size, workers,
                 device, progress=None, should_stop=lambda: False,
                 hashes: dict[Path, str] | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Features of every sample, from the cache where present; returns them and the newly computed.
    `hashes`: the files' SHA-256 where the caller has them already."""
    known = hashes or {}
    hashes = [known.get(path) or file_sha256(path) for path, _ in channel.samples]
    missing = [i for i, h in enumerate(hashes) if h not in cached]
    computed = {}
    if missing:
        subset = Channel(channel.name, channel.root, channel.classes, [channel.samples[i] for i in missing])
        features = compute_features(model, subset, preprocessing, batch_size, workers, device, progress,
                                    should_stop)
        for i, row in zip(missing, features, strict=True):
            computed[hashes[i]] = row
    log.info("feature cache: channel '%s': %d of %d images from the cache", channel.name,
             len(hashes) - len(missing), len(hashes))
    rows = [cached[h] if h in cached else computed[h] for h in hashes]
    return torch.stack(rows), computed


def build(cache_dir: Path, key: str, channels: list[Channel], model, preprocessing, batch_size, workers,
          device, progress=None, should_stop=lambda: False) -> int:
    """Fill the cache for these channels (the tuning job does this once, before its trials)."""
    cached = load(cache_dir, key)
    added = {}
    for channel in channels:
        _, computed = features_for(channel, {**cached, **added}, model, preprocessing, batch_size, workers, device,
                                   progress, should_stop)
        added.update(computed)
    if added:
        save(cache_dir, key, {**cached, **added})
    return len(added)
