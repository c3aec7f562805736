"""Class-per-folder channels: scanning, consistency checks, image verification, datasets and loaders.

Layout (dogImages): `<channel>/<class folder>/<image>.jpg`. Class names and label order come from
`train`; `valid` and `test` must hold exactly the same classes.
"""
from __future__ import annotations

import logging
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, SequentialSampler
from torch.utils.data.distributed import DistributedSampler

from ..preprocessing import (
    DEFAULT_CROP_SCALE,
    ImageDecodeError,
    ImageTooLargeError,
    Preprocessing,
    is_image_file,
    open_rgb,
)

log = logging.getLogger(__name__)


class DataError(ValueError):
    """A channel's layout or content is not usable."""


@dataclass
class Channel:
    name: str
    root: Path
    classes: list[str]
    samples: list[tuple[Path, int]]  # (file, label index)

    def __len__(self):
        return len(self.samples)

    def labels(self) -> list[int]:
        return [label for _, label in self.samples]


def scan_channel(name: str, root: Path, classes: list[str] | None = None) -> Channel:
    """List a channel's images; with `classes` (from train) check that it holds the same ones."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"channel '{name}' not found: {root} is not a directory")
    folders = _class_folders(name, root, classes)
    classes = classes if classes is not None else [folder.name for folder in folders]
    index = {c: i for i, c in enumerate(classes)}
    broken = [p for p in root.iterdir() if _broken_link(p)]  # a class folder whose link leads nowhere
    samples, empty, nested, ignored = [], [], [], 0
    for folder in folders:
        entries = sorted(folder.iterdir())
        # A sub-folder (old/, augmented/, another class by mistake) would silently join its parent's
        # class: refuse it and let the user decide. Hidden ones (.ipynb_checkpoints) are skipped.
        nested += [p for p in entries if p.is_dir() and not p.name.startswith(".")]
        broken += [p for p in entries if _broken_link(p)]
        files = [p for p in entries if p.is_file()]
        images = [p for p in files if is_image_file(p)]
        ignored += len(files) - len(images)
        if not images:
            empty.append(folder.name)
        samples.extend((p, index[folder.name]) for p in images)
    if nested:
        raise DataError(f"channel '{name}' has {len(nested)} folder(s) inside class folders: {_listing(nested, root)}. "
                        f"Each class folder must hold its images directly: move the images up into their class "
                        f"folder, make the folder a class of its own next to the others, or remove it")
    if empty:
        raise DataError(f"channel '{name}' has {len(empty)} class folder(s) with no .jpg/.jpeg/.png images: "
                        f"{', '.join(empty)}")
    if ignored:
        log.warning("channel '%s': ignored %d file(s) that are not .jpg/.jpeg/.png", name, ignored)
    if broken:
        log.warning("channel '%s': ignored %d link(s) that lead to no file or folder (missing target or a loop): "
                    "%s", name, len(broken), _listing(sorted(broken), root))
    log.info("channel '%s': %d images in %d classes", name, len(samples), len(classes))
    return Channel(name, root, list(classes), samples)


def _class_folders(name: str, root: Path, classes: list[str] | None) -> list[Path]:
    """The channel's class folders, sorted; with `classes` (train's), exactly those, else the error names the
    missing and the extra ones."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        loose = [p.name for p in root.iterdir() if p.is_file() and is_image_file(p)]
        hint = " (images lie directly in it: put each class in its own folder)" if loose else ""
        raise DataError(f"channel '{name}' at {root} has no class folders{hint}")
    found = [folder.name for folder in folders]
    if classes is None:
        return folders
    missing, extra = sorted(set(classes) - set(found)), sorted(set(found) - set(classes))
    parts = ([f"missing {len(missing)} class(es) that train has: {', '.join(missing)}"] if missing else []) + \
        ([f"{len(extra)} class(es) that train lacks: {', '.join(extra)}"] if extra else [])
    if parts:
        raise DataError(f"channel '{name}' does not hold the same classes as 'train': {'; '.join(parts)}")
    return folders


def _listing(paths: list[Path], root: Path, shown: int = 10) -> str:
    listing = ", ".join(str(p.relative_to(root)) for p in paths[:shown])
    return listing + (f" and {len(paths) - shown} more" if len(paths) > shown else "")


def _broken_link(path: Path) -> bool:
    """A symbolic link to nothing usable: its target is missing, or it loops."""
    return path.is_symlink() and not path.is_file() and not path.is_dir()


def _check_image(path: Path) -> str | None:
    try:
        # A small draft decode still reads the whole JPEG stream, so truncation is caught cheaply.
        open_rgb(path, draft_size=32, max_pixels=None)
        return None
    except (ImageDecodeError, ImageTooLargeError, OSError) as error:
        return str(error)


def verify_images(channel: Channel, workers: int, skip_bad: bool, known_good: set[Path] = frozenset()) -> Channel:
    """Decode every image once before training: a bad file fails the job now, not hours in.
    `known_good`: files already decoded without error (their features are in the cache)."""
    paths = [p for p, _ in channel.samples if p not in known_good]
    if workers > 1 and len(paths) > 256:
        with ProcessPoolExecutor(workers) as pool:
            problems = list(pool.map(_check_image, paths, chunksize=64))
    else:
        problems = [_check_image(p) for p in paths]
    bad = [(p, why) for p, why in zip(paths, problems, strict=True) if why]
    if not bad:
        return channel
    listing = "; ".join(f"{p.relative_to(channel.root)} ({why})" for p, why in bad[:20])
    more = f"; and {len(bad) - 20} more" if len(bad) > 20 else ""
    if not skip_bad:
        raise DataError(f"channel '{channel.name}' has {len(bad)} unreadable image(s): {listing}{more}. "
                        f"Fix or remove them, or set skip_bad_images=true to skip them")
    log.warning("channel '%s': skipping %d unreadable image(s): %s%s", channel.name, len(bad), listing, more)
    bad_paths = {p for p, _ in bad}
    kept = [(p, label) for p, label in channel.samples if p not in bad_paths]
    left = {label for _, label in kept}
    emptied = [c for i, c in enumerate(channel.classes) if i not in left]
    if emptied:
        raise DataError(f"channel '{channel.name}': after skipping unreadable images, class(es) "
                        f"{', '.join(emptied)} have no images left")
    return Channel(channel.name, channel.root, channel.classes, kept)


class ImageDataset(Dataset):
    """Decoded, transformed images as uint8 CHW tensors with their labels.

    Augmentation draws from a `random.Random` seeded by (seed, epoch, index), so a run, and a resumed
    run, sees the same crops whatever the number of loader workers.
    """

    def __init__(self, channel: Channel, preprocessing: Preprocessing, augment: bool = False, seed: int = 0,
                 crop_scale: float = DEFAULT_CROP_SCALE):
        self.samples = channel.samples
        self.preprocessing = preprocessing
        self.augment = augment
        self.crop_scale = crop_scale
        self.seed = seed
        self.epoch = 0
        self.draft_size = preprocessing.augment_draft_size(crop_scale) if augment else preprocessing.resize_size

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        try:
            image = open_rgb(path, draft_size=self.draft_size, max_pixels=None)
        except (ImageDecodeError, ImageTooLargeError) as error:  # changed since it was checked: name it
            raise type(error)(f"{path}: {error}") from error
        if self.augment:
            rng = random.Random(hash((self.seed, self.epoch, index)))
            tensor = self.preprocessing.train_transform(image, augment=True, rng=rng, crop_scale=self.crop_scale)
        else:
            tensor = self.preprocessing.eval_transform(image)
        return tensor, label


class FeatureDataset(Dataset):
    """Cached backbone features with their labels: the head trains on these directly."""

    def __init__(self, features: torch.Tensor, labels: list[int]):
        self.features, self.labels = features, torch.tensor(labels)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.features[index], self.labels[index]


class EpochIndexSampler:
    """Yields (epoch, index) so that dataset workers, even persistent ones, know the epoch.

    The shuffle order of epoch e depends on (seed, e) alone: a resumed job sees the same order.
    """

    def __init__(self, sampler, seed: int):
        self.sampler, self.seed, self.epoch = sampler, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        elif getattr(self.sampler, "generator", None) is not None:
            self.sampler.generator.manual_seed(self.seed + epoch)

    def __iter__(self):
        return ((self.epoch, index) for index in self.sampler)

    def __len__(self):
        return len(self.sampler)


class _EpochDataset(Dataset):
    """Reads the (epoch, index) keys of EpochIndexSampler: the epoch reaches the dataset (its augmentation)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, index = key
        self.dataset.epoch = epoch
        return self.dataset[index]


def make_loader(dataset, batch_size: int, seed: int, world, shuffle: bool, workers: int) -> DataLoader:
    """Batches of `dataset`; shuffled per epoch from (seed, epoch) (`loader.sampler.set_epoch`), split
    between the processes of a distributed job."""
    if shuffle and world.distributed:
        base = DistributedSampler(dataset, num_replicas=world.size, rank=world.rank, shuffle=True, seed=seed)
    elif shuffle:
        base = RandomSampler(dataset, generator=torch.Generator())
    else:
        base = SequentialSampler(dataset)
    return DataLoader(
        _EpochDataset(dataset), batch_size=batch_size, sampler=EpochIndexSampler(base, seed), num_workers=workers,
        pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )
