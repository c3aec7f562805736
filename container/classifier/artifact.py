"""The model artifact: what `/opt/ml/model` holds and how serving loads it.

- `model.pth`: the weights as a plain state dict (loads with `torch.load(weights_only=True)`);
- `model_config.json`: format version, architecture, class names in label order, preprocessing
  (image size, resize rule, mean, std, interpolation), hyperparameters and final metrics.
Nothing in it is executed or unpickled beyond tensors. Importing this module does not import torch
(the serving front end checks a model dir without loading torch); the functions that need it do.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .model import ImageClassifier
    from .preprocessing import Preprocessing

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.pth"
CONFIG_FILE = "model_config.json"


class ArtifactError(RuntimeError):
    """The model directory is incomplete or inconsistent."""


def atomic_write_bytes(path: Path, write) -> None:
    """Write through a temporary file and rename, so a crash never leaves a half-written file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk, say: leave no half-written file behind
        raise


def atomic_write_json(path: Path, data) -> None:
    atomic_write_bytes(path, lambda f: f.write((json.dumps(data, indent=2, sort_keys=True) + "\n").encode()))


def save_artifact(model_dir: Path, model: ImageClassifier, architecture: str, classes: list[str],
                  preprocessing: Preprocessing, hyperparameters: dict, metrics: dict) -> None:
    import torch

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(model_dir / WEIGHTS_FILE, lambda f: torch.save(state, f))
    atomic_write_json(model_dir / CONFIG_FILE, {
        "format_version": FORMAT_VERSION,
        "architecture": architecture,
        "classes": list(classes),
        "preprocessing": preprocessing.to_dict(),
        "hyperparameters": hyperparameters,
        "metrics": metrics,
    })


def read_config(model_dir: Path) -> dict:
    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        raise ArtifactError(f"{path} is missing: {model_dir} is not a model directory written by training")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ArtifactError(f"{path} is not valid JSON: {error}") from error
    if config.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{path} has format_version {config.get('format_version')!r}; "
                            f"this code reads {FORMAT_VERSION}")
    for key in ("architecture", "classes", "preprocessing"):
        if key not in config:
            raise ArtifactError(f"{path} lacks {key!r}")
    return config


def load_artifact(model_dir: Path, device="cpu") -> tuple[ImageClassifier, dict, Preprocessing]:
    """Rebuild the architecture named in the config and load the weights (tensors only)."""
    import torch

    from .model import build_model
    from .preprocessing import Preprocessing

    config = read_config(model_dir)
    preprocessing = Preprocessing.from_dict(config["preprocessing"])
    model = build_model(config["architecture"], len(config["classes"]), pretrained=False, freeze_backbone=False)
    model.mean.copy_(torch.tensor(preprocessing.mean).view(1, 3, 1, 1) * 255)
    model.std.copy_(torch.tensor(preprocessing.std).view(1, 3, 1, 1) * 255)
    weights = Path(model_dir) / WEIGHTS_FILE
    if not weights.is_file():
        raise ArtifactError(f"{weights} is missing")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated, corrupt, or not a tensors-only file
        raise ArtifactError(f"{weights} cannot be read as a state dict of tensors "
                            f"({type(error).__name__}: {error})") from error
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ArtifactError(f"{weights} does not match architecture {config['architecture']} "
                            f"with {len(config['classes'])} classes: {error}") from error
    return model.to(device).eval(), config, preprocessing
