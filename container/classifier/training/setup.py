"""What a training job is made of, assembled once: its channels, its data, the pretrained backbone it
starts from (architecture, preprocessing, weights file) and the model.

Every piece of code that needs a job's pieces gets them here, so they cannot drift apart: the training
job (main.py), the feature job (feature_job.py), local mode's feature cache and linear probe
(scripts/local), and the benchmarks. The rules live here once: which channels a job reads, where the
pretrained weights come from (the `weights` channel's file, else the architecture's packaged file or the
torch hub cache), and how the model is built from the hyperparameters.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import paths, runtime
from ..backbones import Architecture, get_architecture
from ..channels import DATA_SET, INIT_MODEL, OPTIONAL, REQUIRED, TEST, TRAIN, VALID, WEIGHTS
from ..model import ImageClassifier, WeightsError, build_model, find_pretrained_weights
from ..preprocessing import Preprocessing
from . import feature_cache
from .data import Channel, DataError, scan_channel, verify_images
from .hyperparameters import Hyperparameters
from .init_model import InitModel

log = logging.getLogger(__name__)
WEIGHTS_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")


# --- channels --------------------------------------------------------------------------------------------------

def find_channels() -> dict[str, Path]:
    """The channels of the job in /opt/ml/input/data (or SM_CHANNEL_*); a required one missing or an
    unknown one (a typo) is an error."""
    data_dir = paths.base_dir() / "input" / "data"
    present = {p.name: p for p in data_dir.iterdir()} if data_dir.is_dir() else {}
    for name in (*REQUIRED, *OPTIONAL):
        env = os.environ.get(f"SM_CHANNEL_{name.upper()}")
        if env and Path(env).exists():
            present[name] = Path(env)
    unknown = sorted(set(present) - {*REQUIRED, *OPTIONAL})
    if unknown:
        raise DataError(f"unknown channel(s) {', '.join(unknown)} in {data_dir}; this job reads "
                        f"{', '.join(REQUIRED)} (required) and {', '.join(OPTIONAL)} (optional)")
    missing = [name for name in REQUIRED if name not in present]
    if missing:
        raise DataError(f"required channel(s) {', '.join(missing)} missing: expected {data_dir}/<channel>/ "
                        f"with one folder per class")
    return present


def data_set_channels(folder: Path) -> dict[str, Path]:
    """The channels a data set folder holds (DATA=dir: train/, valid/, [test/], [weights/]), as a job
    made from it would get them."""
    folder = Path(folder)
    present = {name: folder / name for name in DATA_SET if (folder / name).exists()}
    missing = [name for name in REQUIRED if name not in present]
    if missing:
        raise DataError(f"{folder} lacks {', '.join(f'{name}/' for name in missing)}: a data set folder holds "
                        f"train/ and valid/ (and test/, weights/), each with one folder per class")
    return present


def find_weights_file(channel: Path) -> Path:
    """The one weights file of a `weights` channel (the channel may be the file itself)."""
    channel = Path(channel)
    if channel.is_file():
        return channel
    files = sorted(p for p in channel.rglob("*") if p.is_file() and p.suffix in WEIGHTS_SUFFIXES)
    if len(files) != 1:
        listing = ", ".join(p.name for p in files) or "none"
        raise WeightsError(f"the 'weights' channel must hold exactly one weights file "
                           f"({'/'.join(WEIGHTS_SUFFIXES)}); found {listing}")
    return files[0]


# --- the pieces --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Backbone:
    """The network a job starts from: what its features depend on."""

    architecture: Architecture
    preprocessing: Preprocessing
    weights_file: Path | None  # None: random initialisation (pretrained=false)
    init: InitModel | None = None  # the model of the init_model channel, whose weights these are

    @classmethod
    def for_job(cls, hp: Hyperparameters, channels: dict[str, Path]) -> "Backbone":
        init = InitModel.read(channels[INIT_MODEL]) if INIT_MODEL in channels else None
        return cls.choose(hp.model_name, hp.image_size, hp.pretrained, channels, init)

    @classmethod
    def choose(cls, model_name: str, image_size: int, pretrained: bool, channels: dict[str, Path],
               init: InitModel | None = None) -> "Backbone":
        """The weights: an init model's (init_model.py), else the `weights` channel's file when there is one,
        else the architecture's packaged file, the torch hub cache or a download (model.find_pretrained_weights)."""
        architecture = get_architecture(model_name)
        weights = None
        if init is not None:
            init.check(model_name, pretrained)
            weights = init.weights_file
        elif pretrained:
            weights = find_weights_file(channels[WEIGHTS]) if WEIGHTS in channels \
                else find_pretrained_weights(architecture)
        return cls(architecture, architecture.preprocessing(image_size), weights, init)

    def cache_key(self) -> str:
        """The feature cache's key for this backbone (architecture, weights file contents, preprocessing)."""
        return feature_cache.model_key(self.architecture.name, self.weights_file, self.preprocessing)

    def weights_sha256(self) -> str | None:
        return feature_cache.file_sha256(self.weights_file) if self.weights_file else None

    def build(self, num_classes: int, unfreeze_stages=0, dropout: float = 0.0) -> ImageClassifier:
        return build_model(self.architecture.name, num_classes, self.weights_file is not None,
                           weights_file=self.weights_file, unfreeze_stages=unfreeze_stages, dropout=dropout)


@dataclass(frozen=True)
class JobData:
    """The job's channels of images, scanned; `classes` and their order come from train."""

    train: Channel
    valid: Channel
    test: Channel | None = None

    @property
    def classes(self) -> list[str]:
        return self.train.classes

    @classmethod
    def scan(cls, channels: dict[str, Path], with_test: bool = True) -> "JobData":
        train = scan_channel(TRAIN, channels[TRAIN])
        valid = scan_channel(VALID, channels[VALID], train.classes)
        test = scan_channel(TEST, channels[TEST], train.classes) if with_test and TEST in channels else None
        return cls(train, valid, test)

    def verified(self, workers: int, skip_bad: bool, known_good: frozenset[Path] = frozenset()) -> "JobData":
        """Every image decoded once (data.verify_images); `known_good`: files whose features the cache holds,
        decoded without error by the pass that computed them."""
        return JobData(verify_images(self.train, workers, skip_bad, known_good),
                       verify_images(self.valid, workers, skip_bad, known_good),
                       verify_images(self.test, workers, skip_bad) if self.test is not None else None)


@dataclass(frozen=True)
class JobSetup:
    """One job's pieces: hyperparameters, channels, data, backbone and the model built from them; with an
    init_model channel, what the model reused of that model."""

    hp: Hyperparameters
    channels: dict[str, Path]
    data: JobData
    backbone: Backbone
    model: ImageClassifier
    init_model: dict | None = None

    @property
    def classes(self) -> list[str]:
        return self.data.classes

    @property
    def preprocessing(self) -> Preprocessing:
        return self.backbone.preprocessing

    def with_data(self, data: JobData) -> "JobSetup":
        if data.classes != self.classes:
            raise DataError(f"the classes changed while the job was set up: {self.classes} -> {data.classes}")
        return dataclasses.replace(self, data=data)


def assemble(hp: Hyperparameters, channels: dict[str, Path], device: torch.device | str = "cpu",
             with_test: bool = True) -> JobSetup:
    """Scan the channels, choose the backbone's weights, build the model (on `device`, in the memory format
    the forward is fastest in: classifier/runtime.py). Images are not decoded here: `JobData.verified`."""
    data = JobData.scan(channels, with_test)
    backbone = Backbone.for_job(hp, channels)
    model = backbone.build(len(data.classes), hp.unfreeze_stages, hp.dropout)
    reused = backbone.init.apply_head(model, data.classes) if backbone.init else None
    model = model.to(device).to(memory_format=runtime.MEMORY_FORMAT)
    log.info("Job setup: %s at %d px, %d classes, weights %s", backbone.architecture.name, hp.image_size,
             len(data.classes), backbone.weights_file or "random")
    return JobSetup(hp, channels, data, backbone, model, reused)
