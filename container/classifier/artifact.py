"""The model artifact: what `/opt/ml/model` holds and how serving loads it.

- `model.pth`: the weights as a plain state dict (loads with `torch.load(weights_only=True)`);
- `model_config.json`: format version, architecture, class names in label order, preprocessing
  (image size, resize rule, mean, std, interpolation), hyperparameters and final metrics; when the model
  was exported, `exports` (classifier/export/formats.py: OpenVINO fp32/int8 in `openvino/`, the accuracy
  gate's figures). An artifact without `exports` serves eager PyTorch.
Nothing in it is executed or unpickled beyond tensors. Reading and checking the config needs no torch
(the serving front end stays small); saving and loading the weights import it. `python -m
classifier.artifact MODEL_DIR` runs serve's check of a model directory.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .export.formats import EXPORTS_KEY, exports_problem  # torch-free

if TYPE_CHECKING:
    from .model import ImageClassifier
    from .preprocessing import Preprocessing

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.pth"
CONFIG_FILE = "model_config.json"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")  # SageMaker packs a job's model dir as model.tar.gz
# What an archive may unpack to: far above a model with its exports, far below a full disk.
MAX_UNPACKED_BYTES = 8 * 1024 ** 3
FREE_SPACE_LEFT = 256 * 1024 ** 2  # what unpacking an archive leaves free on its disk, at least


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


def unpack_archive(archive: Path, target: Path, max_bytes: int = MAX_UNPACKED_BYTES) -> Path:
    """Extract a model.tar.gz (a model dir as SageMaker packs it) into `target`. Every member is checked
    before anything is written: regular files and folders only, inside `target` (tarfile's `data` filter),
    at most `max_bytes` in all; a bad archive raises ArtifactError naming the problem."""
    import tarfile

    archive, target = Path(archive), Path(target)
    try:
        with tarfile.open(archive) as tar:
            members, size = [], 0
            for member in tar:  # as each header is read, before the member's data is read past (a gzip bomb)
                size += member.size
                if size > max_bytes:
                    raise ArtifactError(f"{archive} would unpack to {size / 1024 ** 3:.1f} GiB or more, more than "
                                        f"the {max_bytes / 1024 ** 3:.0f} GiB a model archive may hold")
                members.append(member)
            target.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(target).free
            if size + FREE_SPACE_LEFT > free:
                raise ArtifactError(f"{archive} would unpack to {size / 1024 ** 2:,.0f} MiB; {target} has "
                                    f"{free / 1024 ** 2:,.0f} MiB free (and {FREE_SPACE_LEFT // 1024 ** 2} MiB must "
                                    "stay free)")
            for member in members:
                try:
                    tarfile.data_filter(member, str(target))
                except tarfile.FilterError as error:
                    raise ArtifactError(f"{archive} is refused: {error}") from None
            tar.extractall(target, members=members, filter="data")
    except tarfile.ReadError as error:
        # A file no decompressor opens gets one line of Python's message per method tried: say it in one.
        lines = str(error).splitlines()
        why = "not a tar archive (gzip, bzip2, xz or uncompressed)" if len(lines) > 1 else " ".join(lines)
        raise ArtifactError(f"{archive} cannot be unpacked: {why}") from error
    except (tarfile.TarError, OSError, EOFError) as error:
        raise ArtifactError(f"{archive} cannot be unpacked: {type(error).__name__}: {error}") from error
    return target


def model_config(architecture: str, classes: list[str], preprocessing: Preprocessing, hyperparameters: dict,
                 metrics: dict, init_model: dict | None = None) -> dict:
    """model_config.json of a trained model; `init_model`: what it reused of the model it started from
    (training/init_model.py), if any."""
    config = {
        "format_version": FORMAT_VERSION,
        "architecture": architecture,
        "classes": list(classes),
        "preprocessing": preprocessing.to_dict(),
        "hyperparameters": hyperparameters,
        "metrics": metrics,
    }
    if init_model is not None:
        config["init_model"] = init_model
    return config


def save_artifact(model_dir: Path, model: ImageClassifier, config: dict) -> None:
    """model.pth (the weights as a plain state dict) and `config` (model_config) as model_config.json."""
    import torch

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(model_dir / WEIGHTS_FILE, lambda f: torch.save(state, f))
    atomic_write_json(model_dir / CONFIG_FILE, config)


def read_config(model_dir: Path) -> dict:
    """`model_config.json`, checked whole: every field serving needs, with a message that names the field.

    `serve` calls this before multi-model-server starts, so a bad config stops the endpoint at once with
    that message instead of workers that fail to load and restart in a loop. It imports torch (through
    `Preprocessing.from_dict`, whose own checks it uses).
    """
    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        raise ArtifactError(f"{path} is missing: {model_dir} is not a model directory written by training")
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ArtifactError(f"{path} is not readable JSON: {error}") from error
    except RecursionError:
        raise ArtifactError(f"{path} is nested too deeply to be a model config") from None
    problem = config_problem(config)
    if problem:
        raise ArtifactError(f"{path}: {problem}")
    return config


def config_problem(config) -> str | None:
    """What is wrong with a parsed model config (the first problem found), or None."""
    if not isinstance(config, dict):
        return f"must hold a JSON object, not {_json_type(config)}"
    if config.get("format_version") != FORMAT_VERSION:
        return f"format_version is {config.get('format_version')!r}; this code reads {FORMAT_VERSION}"
    for key in ("architecture", "classes", "preprocessing"):
        if key not in config:
            return f"lacks {key!r}"
    return _architecture_problem(config["architecture"]) or _classes_problem(config["classes"]) or \
        _preprocessing_problem(config["preprocessing"]) or _exports_problem(config)


def _exports_problem(config: dict) -> str | None:
    return exports_problem(config[EXPORTS_KEY]) if EXPORTS_KEY in config else None


def _json_type(value) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _architecture_problem(architecture) -> str | None:
    from .backbones import ARCHITECTURES  # torch-free

    if not isinstance(architecture, str) or architecture not in ARCHITECTURES:
        return f"architecture {architecture!r} is unknown; this code builds {sorted(ARCHITECTURES)}"
    return None


def _classes_problem(classes) -> str | None:
    if not isinstance(classes, list):
        return f"classes must be a list of class names, not {_json_type(classes)}"
    if not classes:
        return "classes is empty"
    bad = [index for index, name in enumerate(classes) if not isinstance(name, str) or not name.strip()]
    if bad:
        return f"classes[{bad[0]}] is {classes[bad[0]]!r}; class names must be non-empty strings"
    duplicates = sorted({name for name in classes if classes.count(name) > 1})
    if duplicates:
        return f"classes holds {', '.join(map(repr, duplicates))} more than once"
    return None


def _preprocessing_problem(spec) -> str | None:
    """The checks `Preprocessing.from_dict` leaves out (presence, types, sizes), then its own."""
    from dataclasses import fields

    from .preprocessing import IMAGE_SIZES, Preprocessing

    if not isinstance(spec, dict):
        return f"preprocessing must be an object, not {_json_type(spec)}"
    missing = [field.name for field in fields(Preprocessing) if field.name not in spec]
    if missing:
        return f"preprocessing lacks {', '.join(f'preprocessing.{name}' for name in missing)}"
    for key in ("image_size", "resize_size"):
        value = spec[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            return f"preprocessing.{key} is {value!r}; it must be a positive whole number of pixels"
    low, high = IMAGE_SIZES
    if not low <= spec["image_size"] <= high:
        return (f"preprocessing.image_size is {spec['image_size']}: training makes models of {low} to {high} px "
                f"(hyperparameter image_size), so this config was not written by it")
    if spec["resize_size"] < spec["image_size"]:
        return (f"preprocessing.resize_size ({spec['resize_size']}) is smaller than preprocessing.image_size "
                f"({spec['image_size']}): the centre crop would not fit")
    for key in ("mean", "std"):
        values = spec[key]
        if not isinstance(values, list) or not all(_is_finite_number(v) for v in values):
            return f"preprocessing.{key} is {values!r}; it must be a list of 3 finite numbers (R, G, B)"
    for key in ("interpolation", "resize_rule"):
        if not isinstance(spec[key], str):
            return f"preprocessing.{key} must be a string, not {_json_type(spec[key])}"
    try:
        Preprocessing.from_dict(spec)
    except ValueError as error:
        return f"preprocessing: {error}"
    return None


def _is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_model_dir(model_dir: Path) -> dict:
    """What `serve` checks before it starts the model server: a valid config and a weights file.

    The weights themselves are loaded (and checked against the architecture) by each worker.
    """
    config = read_config(model_dir)
    weights = Path(model_dir) / WEIGHTS_FILE
    if not weights.is_file():
        raise ArtifactError(f"{weights} is missing")
    return config


def summary(config: dict) -> dict:
    return {"architecture": config["architecture"], "classes": len(config["classes"]),
            "image_size": config["preprocessing"]["image_size"]}


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
    except RuntimeError as error:  # torch lists each key on a line of its own: the first few, on one line
        details = [line.strip() for line in str(error).splitlines()[1:] if line.strip()] or [str(error)]
        shown = "; ".join(details[:3]) + (f"; and {len(details) - 3} more" if len(details) > 3 else "")
        raise ArtifactError(f"{weights} does not match architecture {config['architecture']} "
                            f"with {len(config['classes'])} classes: {shown}") from error
    return model.to(device).eval(), config, preprocessing


def main(argv: list[str] | None = None) -> int:
    """`python -m classifier.artifact MODEL_DIR`: check a model directory as `serve` does; print a summary."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m classifier.artifact MODEL_DIR", file=sys.stderr)
        return 64
    try:
        config = check_model_dir(Path(args[0]))
    except ArtifactError as error:
        print(error, file=sys.stderr)
        return 1
    print(json.dumps(summary(config)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
