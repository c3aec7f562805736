"""Starting a job from an earlier model: the optional `init_model` channel.

The final job of a tuning job starts from its best trial's tuned head (linear probing, then fine-tuning:
Kumar et al., ICLR 2022); incremental training continues a model on new data. The channel holds a model
artifact: a model dir (local mode) or the model.tar.gz SageMaker made of one. What is reused:
- the backbone, always: the artifact's backbone weights take the place of the pretrained ones (the
  artifact's model.pth is then the job's weights file, which keys feature caches and checkpoints);
- the head, when the job has the same classes (matched by name; another order is re-ordered);
- with other classes, the head's hidden layers and the output rows of the classes both models have; the
  added classes get new rows ("extended"); with no class in common, a new head (the backbone only).
A model of another architecture, or `pretrained=false` beside it, is refused.
"""
from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import artifact
from ..artifact import ARCHIVE_SUFFIXES, CONFIG_FILE, WEIGHTS_FILE, ArtifactError

log = logging.getLogger(__name__)


class InitModelError(ValueError):
    """The init_model channel holds no usable model for this job."""


@dataclass(frozen=True)
class InitModel:
    """A model artifact a job starts from."""

    channel: Path
    model_dir: Path
    config: dict

    @property
    def weights_file(self) -> Path:
        return self.model_dir / WEIGHTS_FILE

    @property
    def architecture(self) -> str:
        return self.config["architecture"]

    @property
    def classes(self) -> list[str]:
        return list(self.config["classes"])

    @classmethod
    def read(cls, channel: Path) -> "InitModel":
        """The channel's model dir (model_config.json + model.pth, at its top or one folder down), or its one
        model.tar.gz, unpacked into a temporary folder removed when the process ends."""
        channel = Path(channel)
        model_dir = _model_dir(channel)
        try:
            config = artifact.check_model_dir(model_dir)
        except ArtifactError as error:
            raise InitModelError(f"the init_model channel holds no usable model: {error}") from None
        return cls(channel, model_dir, config)

    def check(self, model_name: str, pretrained: bool) -> None:
        if self.architecture != model_name:
            raise InitModelError(f"the init_model channel holds a model of architecture {self.architecture}; this "
                                 f"job's model_name is {model_name}: give model_name={self.architecture} or another "
                                 "init model")
        if not pretrained:
            raise InitModelError("pretrained=false asks for a randomly initialised backbone, but the init_model "
                                 "channel gives it its weights: drop pretrained=false or the init_model channel")

    def apply_head(self, model, classes: list[str]) -> dict:
        """Load what the job reuses of the artifact's head into `model`'s head; returns what was reused (for the
        log and model_config.json)."""
        state = torch.load(self.weights_file, map_location="cpu", weights_only=True)
        saved = {k.removeprefix("head."): v for k, v in state.items() if k.startswith("head.")}
        head = model.head.state_dict()
        output = _output_layer(model.head)
        kept = [c for c in classes if c in self.classes]
        reused = {"source": str(self.channel), "architecture": self.architecture,
                  "classes_kept": len(kept), "classes_added": [c for c in classes if c not in self.classes],
                  "classes_dropped": [c for c in self.classes if c not in classes]}
        if not kept:
            reused["reused"] = "backbone (no class in common: a new head)"
        else:
            rows = torch.tensor([self.classes.index(c) for c in kept])
            at = torch.tensor([classes.index(c) for c in kept])
            for name, value in saved.items():
                if name.startswith(f"{output}."):  # output layer: the rows of the classes both have
                    head[name][at] = value[rows].to(head[name].dtype)
                elif name in head and head[name].shape == value.shape:
                    head[name] = value
                else:
                    raise InitModelError(f"the init_model's head tensor {name} has shape {tuple(value.shape)}, "
                                         f"this job's {tuple(head[name].shape) if name in head else 'none'}")
            model.head.load_state_dict(head)
            if set(classes) == set(self.classes):
                reused["reused"] = "backbone and head" + ("" if classes == self.classes else " (classes re-ordered)")
            else:
                reused["reused"] = (f"backbone and head, extended: {len(kept)} classes kept, "
                                    f"{len(reused['classes_added'])} added, {len(reused['classes_dropped'])} dropped")
        log.info("init_model %s: %s reused (%s, %d classes; this job %d classes)", self.channel, reused["reused"],
                 self.architecture, len(self.classes), len(classes))
        return reused


def _output_layer(head: torch.nn.Sequential) -> str:
    """The name of the head's last Linear layer (the one with a row per class)."""
    return [name for name, module in head.named_children() if isinstance(module, torch.nn.Linear)][-1]


def _model_dir(channel: Path) -> Path:
    if not channel.exists():
        raise InitModelError(f"the init_model channel {channel} does not exist")
    if (channel / CONFIG_FILE).is_file():
        return channel
    archives = [channel] if channel.is_file() else sorted(p for p in channel.iterdir() if p.is_file())
    archives = [p for p in archives if p.name.endswith(ARCHIVE_SUFFIXES)]
    folders = [p for p in channel.iterdir() if (p / CONFIG_FILE).is_file()] if channel.is_dir() else []
    if len(archives) + len(folders) != 1:
        raise InitModelError(f"the init_model channel {channel} must hold one model: a model dir "
                             f"({CONFIG_FILE} and {WEIGHTS_FILE}) or one model.tar.gz; found "
                             f"{len(folders)} model dir(s) and {len(archives)} archive(s)")
    if folders:
        return folders[0]
    target = Path(tempfile.mkdtemp(prefix="init-model-"))
    atexit.register(shutil.rmtree, target, ignore_errors=True)
    try:
        artifact.unpack_archive(archives[0], target)
    except ArtifactError as error:
        raise InitModelError(f"the init_model channel: {error}") from None
    log.info("init_model: unpacked %s into %s", archives[0].name, target)
    return _model_dir(target)
