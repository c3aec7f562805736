"""An exported format run by OpenVINO's CPU plugin: what serving, evaluation and the accuracy gate call.

The IR takes what the PyTorch model takes, uint8 images (N, 3, H, W) of any batch size, and returns
log-probabilities (N, C): the normalisation and the log-softmax are inside it. It is compiled with

- `INFERENCE_PRECISION_HINT=f32`: OpenVINO's default on CPUs with bf16 units is bf16 (log-probabilities
  ~0.5 off); f32 is what the accuracy gate measured, and what a CPU without bf16 (ml.m5) runs anyway;
- `PERFORMANCE_HINT=LATENCY` with one stream and the worker's threads: an MMS worker answers one request at
  a time, as a torch worker does, so the same workers x threads layout applies (serving/settings.py).

OpenVINO's telemetry is kept out of the process: `import_openvino` hides the `openvino_telemetry` package
before OpenVINO (or NNCF, which uses it too) is imported, so both fall back to their no-op stand-ins and
nothing is sent from a training job, `make export` or an endpoint (network isolation or not).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch


def import_openvino():
    """`openvino`, with its telemetry (and NNCF's) disabled for this process."""
    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)  # `import openvino_telemetry` now raises ImportError
    import openvino

    return openvino


def compile_config(threads: int) -> dict:
    return {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
            "INFERENCE_NUM_THREADS": max(1, int(threads))}


class OpenVINONetwork:
    """A compiled IR as a function of a uint8 image batch, like the torch model: log-probabilities (N, C)."""

    def __init__(self, model, threads: int):
        openvino = import_openvino()
        core = openvino.Core()
        self.compiled = core.compile_model(model, "CPU", compile_config(threads))
        self.request = self.compiled.create_infer_request()  # one request at a time per worker: reuse it

    @classmethod
    def load(cls, xml: Path, threads: int) -> "OpenVINONetwork":
        return cls(str(xml), threads)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(images.cpu().numpy(), dtype=np.uint8)
        output = self.request.infer({0: array})[0]
        return torch.from_numpy(np.array(output, copy=True))
