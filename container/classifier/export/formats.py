"""The formats a model directory may serve the network in, how `model_config.json` records them, and the one
rule that picks the format an endpoint serves (`choose`). Torch-free and OpenVINO-free: `serve` checks the
choice before it starts the model server.

- `torch`: `model.pth`, eager PyTorch (every artifact has it; the only format on a GPU unless forced).
- `fp32`: the network converted to OpenVINO's IR, full precision (`openvino/fp32/model.xml` + `.bin`).
- `int8`: that IR quantised after training by NNCF, calibrated on training images (`openvino/int8/`).

`model_config.json` lists them under `exports` (`classifier.export.main` writes it): the runtime and its
version, and per exported format whether the accuracy gate accepted it, its figures and, when refused,
why. An artifact without `exports` (written before exports existed, or by a tuning trial) serves `torch`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

TORCH, FP32, INT8 = "torch", "fp32", "int8"
FORMATS = (TORCH, FP32, INT8)
EXPORTED = (FP32, INT8)
# Fastest first on a CPU, as benchmarks/bench_endpoint.py measures them (docs/measurements.md).
CPU_PREFERENCE = (INT8, FP32, TORCH)
RUNTIME_ENV = "SERVING_RUNTIME"  # torch | fp32 | int8: serve this one (absent: an error at start-up)
EXPORTS_KEY = "exports"
EXPORT_DIR = "openvino"


class FormatError(RuntimeError):
    """The format asked for cannot be served from this model directory; the message says why."""


def model_file(fmt: str) -> str:
    """The IR file of an exported format, relative to the model dir (its weights are the `.bin` beside it)."""
    return f"{EXPORT_DIR}/{fmt}/model.xml"


def exports_problem(exports) -> str | None:
    """What is wrong with a config's `exports` section (the first problem found), or None."""
    if not isinstance(exports, dict) or not isinstance(exports.get("formats"), dict):
        return "exports must be an object with a formats object"
    for name, entry in exports["formats"].items():
        where = f"exports.formats.{name}"
        if name not in EXPORTED:
            return f"{where}: unknown format; exported formats are {', '.join(EXPORTED)}"
        if not isinstance(entry, dict) or not isinstance(entry.get("accepted"), bool):
            return f"{where} must be an object with accepted: true or false"
        if entry["accepted"] and entry.get("file") != model_file(name):
            return f"{where}.file must be {model_file(name)!r}"
        if not entry["accepted"] and not (isinstance(entry.get("reason"), str) and entry["reason"]):
            return f"{where} was refused without a reason"
        for key, value in (entry.get("figures") or {}).items():
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)):
                return f"{where}.figures.{key} is {value!r}; figures are finite numbers"
    return None


def formats_in(config: dict) -> dict:
    """{format: entry} for every exported format the config records (accepted or refused)."""
    return dict((config.get(EXPORTS_KEY) or {}).get("formats") or {})


def accepted(config: dict) -> list[str]:
    """The formats this artifact can serve: torch, and each exported one the gate accepted."""
    return [TORCH] + [fmt for fmt, entry in formats_in(config).items() if entry.get("accepted")]


@dataclass(frozen=True)
class Choice:
    format: str
    why: str  # one line for the log


def choose(config: dict, model_dir: Path, requested: str | None = None, gpu: bool = False) -> Choice:
    """The format to serve: `requested` (SERVING_RUNTIME) when given, else torch on a GPU, else the fastest
    accepted format on a CPU. A requested format that is unknown, absent, refused or missing its files is a
    `FormatError` naming what to do, never a silent fallback."""
    requested = (requested or "").strip().lower() or None
    if requested is not None and requested not in FORMATS:
        raise FormatError(f"{RUNTIME_ENV}={requested!r} is not a format: choose one of {', '.join(FORMATS)}")
    exported = formats_in(config)
    if requested == TORCH:
        return Choice(TORCH, f"{RUNTIME_ENV}=torch")
    if requested is not None:
        entry = exported.get(requested)
        if entry is None:
            raise FormatError(f"{RUNTIME_ENV}={requested} but {model_dir} holds no {requested} export (its "
                              f"model_config.json records {', '.join(exported) or 'no exports'}): export it with "
                              f"`make export MODEL=...`, or serve one of {', '.join(accepted(config))}")
        if not entry["accepted"]:
            raise FormatError(f"{RUNTIME_ENV}={requested} but the accuracy gate refused {requested} for this model: "
                              f"{entry['reason']}; serve one of {', '.join(accepted(config))}")
        _check_files(model_dir, requested)
        return Choice(requested, f"{RUNTIME_ENV}={requested}")
    if gpu:
        return Choice(TORCH, "a GPU: PyTorch on it")
    for fmt in CPU_PREFERENCE:
        if fmt in accepted(config):
            if fmt != TORCH:
                _check_files(model_dir, fmt)
            refused = [f"{name} ({entry['reason']})" for name, entry in exported.items() if not entry["accepted"]]
            why = "the fastest accepted format on a CPU" if exported else "no exported formats in the artifact"
            return Choice(fmt, why + (f"; refused: {'; '.join(refused)}" if refused else ""))
    raise AssertionError("torch is always accepted")


def _check_files(model_dir: Path, fmt: str) -> None:
    xml = Path(model_dir) / model_file(fmt)
    for path in (xml, xml.with_suffix(".bin")):
        if not path.is_file():
            raise FormatError(f"{path} is missing: model_config.json records an accepted {fmt} export; export it "
                              f"again with `make export MODEL=...`, or serve with {RUNTIME_ENV}=torch")
