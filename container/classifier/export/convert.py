"""PyTorch -> OpenVINO IR (fp32) and post-training int8 quantisation (NNCF), for the training image.

`openvino.convert_model` traces the torch module itself, so the `onnx` package (which needs a newer
protobuf than smdebug's 3.20) is not needed. The converted network is the served path of
`ImageClassifier`: uint8 images -> normalisation with the artifact's mean/std -> backbone -> head
(log-probabilities), with a dynamic batch size. NNCF quantises that IR with its default (mixed) preset and
full bias correction, from statistics of the calibration images' activations.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from ..model import ImageClassifier
from .openvino_model import import_openvino


class ServedNetwork(nn.Module):
    """What an endpoint computes with an `ImageClassifier` in eval mode, as one traceable module (no dropout,
    no chunking of the batch)."""

    def __init__(self, model: ImageClassifier):
        super().__init__()
        self.model = model.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        model = self.model
        return model.head(model.backbone(model.normalize(images)))


def to_openvino(model: ImageClassifier, image_size: int):
    """The fp32 IR (an `openvino.Model`) of the model's served path, for any batch of uint8 images."""
    openvino = import_openvino()
    network = ServedNetwork(model).cpu().float().eval()
    example = torch.zeros(1, 3, image_size, image_size, dtype=torch.uint8)
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        # convert_model traces with torch.jit.trace, which torch now marks deprecated: nothing to act on here.
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
        converted = openvino.convert_model(network, example_input=example,
                                           input=[openvino.PartialShape([-1, 3, image_size, image_size])])
    return converted


def quantize_int8(fp32_model, calibration: Iterable[np.ndarray], count: int):
    """int8 post-training quantisation of an fp32 IR with NNCF, from `count` calibration batches (uint8
    arrays (N, 3, H, W), the evaluation view of training images)."""
    import_openvino()  # first: keeps NNCF's telemetry out too
    import nncf

    # fast_bias_correction=False: NNCF's full bias correction, about twice the time of the fast one; on this
    # project's models it is what keeps int8's answers those of fp32 (docs/measurements.md).
    return nncf.quantize(fp32_model, nncf.Dataset(list(calibration)), subset_size=count, fast_bias_correction=False)


def save(model, xml_path) -> None:
    """The IR as model.xml + model.bin, weights kept in fp32 (the default would store them as fp16)."""
    openvino = import_openvino()
    openvino.save_model(model, str(xml_path), compress_to_fp16=False)
