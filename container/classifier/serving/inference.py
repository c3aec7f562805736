"""The inference functions of the SageMaker contract: `model_fn`, `input_fn`, `predict_fn`, `output_fn`.

- `model_fn` loads `/opt/ml/model` in the format `classifier.export.formats.choose` picks: `torch` with
  `classifier.artifact.load_artifact` (weights with `weights_only=True`, the architecture named in
  `model_config.json`, eval mode, channels_last), or an OpenVINO export (fp32, int8) that the accuracy
  gate accepted; it sets the threads and glibc's malloc thresholds and runs one request through the
  whole path as a warm-up. Every format takes the same uint8 batch and returns log-probabilities.
- `input_fn` turns a request body into encoded images: one image for `image/jpeg`, `image/png`,
  `application/x-image` and `application/octet-stream`; several for `application/json`
  `{"instances": [{"b64": "..."}, ...]}`. Nothing is ever fetched from a URL.
- `predict_fn` decodes and transforms each image with the artifact's `Preprocessing` (the evaluation
  path of training: one implementation, no train/serve skew) and runs them through the model as one batch.
- `output_fn` writes the top-k classes per image as JSON.

Problems with a request raise `RequestError` (a sagemaker-inference `GenericInferenceToolkitError`),
which carries the HTTP status and a message for the client.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import torch
from sagemaker_inference.errors import GenericInferenceToolkitError

from ..artifact import load_artifact, read_config
from ..export import formats
from ..export.openvino_model import OpenVINONetwork
from ..preprocessing import DEFAULT_MAX_PIXELS, ImageDecodeError, ImageTooLargeError, Preprocessing
from ..runtime import tune_malloc
from .settings import Settings

log = logging.getLogger(__name__)

JSON = "application/json"
IMAGE_CONTENT_TYPES = ("image/jpeg", "image/png", "application/x-image", "application/octet-stream")
SUPPORTED_CONTENT_TYPES = IMAGE_CONTENT_TYPES + (JSON,)
_B64_ALPHABET = re.compile(rb"^[A-Za-z0-9+/]*={0,2}$")
_PIL_OBJECT = re.compile(r"\s*<_io\.\w+ object at 0x[0-9a-fA-F]+>")  # "cannot identify image file <...>"


class RequestError(GenericInferenceToolkitError):
    """A request the endpoint cannot serve: the status code and a message that says what was wrong."""

    def __init__(self, status: int, message: str):
        phrase = HTTPStatus(status).phrase
        super().__init__(status, message, phrase)
        self.error_type = phrase.replace(" ", "").replace("-", "")  # e.g. UnsupportedMediaType


# --- the loaded model -----------------------------------------------------------------------------
class TorchNetwork:
    """The PyTorch model as served: eval mode, channels_last, on its device; uint8 batch -> log-probabilities."""

    def __init__(self, model: torch.nn.Module, device: torch.device):
        self.model = model.to(device=device, memory_format=torch.channels_last).eval()
        self.device = device

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(batch.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last))


@dataclass
class ServingModel:
    """What `model_fn` returns: the network in the format served plus everything a request needs."""

    network: Callable[[torch.Tensor], torch.Tensor]  # uint8 (N, 3, H, W) -> log-probabilities (N, C)
    classes: list[str]
    preprocessing: Preprocessing
    architecture: str
    max_pixels: int
    format: str = formats.TORCH

    def preprocess(self, image: bytes) -> torch.Tensor:
        """Encoded image -> uint8 CHW tensor, through the artifact's evaluation preprocessing."""
        return self.preprocessing.load_for_eval(image, max_pixels=self.max_pixels)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) -> class probabilities (N, C), float64 on the CPU."""
        with torch.inference_mode():
            return self.network(batch).double().exp().cpu()

    def predict(self, images: list[bytes]) -> torch.Tensor:
        """Encoded images -> probabilities: what an endpoint request costs minus the HTTP stack."""
        return self.forward(torch.stack([self.preprocess(image) for image in images]))


def load_model(model_dir: Path, fmt: str, threads: int, device: torch.device | None = None,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> ServingModel:
    """The artifact in format `fmt` (`formats.choose` picks it): what the endpoint, `make evaluate` and the
    benchmark run. `threads`: the CPU threads of an OpenVINO format (torch's are set per process)."""
    model_dir = Path(model_dir)
    device = device or torch.device("cpu")
    if fmt == formats.TORCH:
        model, config, preprocessing = load_artifact(model_dir, device=device)
        network = TorchNetwork(model, device)
    else:
        config = read_config(model_dir)
        preprocessing = Preprocessing.from_dict(config["preprocessing"])
        network = OpenVINONetwork.load(model_dir / formats.model_file(fmt), threads)
    return ServingModel(network=network, classes=list(config["classes"]), preprocessing=preprocessing,
                        architecture=config["architecture"], max_pixels=max_pixels, format=fmt)


def model_fn(model_dir, settings: Settings | None = None, gpu_id=None) -> ServingModel:
    """Load the format `formats.choose` picks (SERVING_RUNTIME, else torch on a GPU, else the fastest format the
    accuracy gate accepted), with this worker's threads, and warm it up."""
    start = time.monotonic()
    settings = settings or Settings.from_env()
    malloc_tuned = tune_malloc()
    torch.set_num_threads(settings.threads_per_worker)
    try:
        torch.set_num_interop_threads(1)  # one request at a time per worker: no inter-op parallelism
    except RuntimeError:
        pass  # already set (parallel work has run in this process)
    if torch.cuda.is_available() and gpu_id is not None:
        device = torch.device(f"cuda:{int(gpu_id)}")
    else:
        device = torch.device("cpu")
    choice = formats.choose(read_config(Path(model_dir)), Path(model_dir), os.environ.get(formats.RUNTIME_ENV),
                            gpu=device.type == "cuda")
    serving = load_model(Path(model_dir), choice.format, settings.threads_per_worker, device, settings.max_pixels)
    warm_up(serving)
    log.info("Loaded %s with %d classes from %s in %.1f s: format %s (%s); image size %d, %d threads, %s%s",
             serving.architecture, len(serving.classes), model_dir, time.monotonic() - start, choice.format,
             choice.why, serving.preprocessing.image_size, settings.threads_per_worker, device,
             ", malloc tuned" if malloc_tuned else "")
    return serving


def warm_up(serving: ServingModel) -> None:
    """One request's path, decoding included, so the first client does not pay for lazy initialisation."""
    from PIL import Image

    buffer = io.BytesIO()
    size = serving.preprocessing.resize_size
    Image.new("RGB", (size + 7, size), (128, 96, 64)).save(buffer, format="JPEG")
    probabilities = serving.predict([buffer.getvalue()])
    if probabilities.shape != (1, len(serving.classes)):
        raise RuntimeError(f"model output has shape {tuple(probabilities.shape)}, expected (1, {len(serving.classes)})")


# --- requests -------------------------------------------------------------------------------------
@dataclass
class ImageBatch:
    """The encoded images of one request and where each came from (for error messages)."""

    images: list[bytes]
    sources: list[str]


@dataclass
class Prediction:
    probabilities: torch.Tensor  # (N, C), rows sum to 1
    classes: list[str]


def media_type(content_type: str | None) -> str:
    """`Image/JPEG; charset=...` -> `image/jpeg`."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def input_fn(body: bytes, content_type: str, max_instances: int = 32) -> ImageBatch:
    kind = media_type(content_type)
    if kind not in SUPPORTED_CONTENT_TYPES:
        shown = f"Content-Type {content_type!r}" if content_type else "no Content-Type"
        raise RequestError(415, f"{shown} is not supported; send one image as {', '.join(IMAGE_CONTENT_TYPES)} "
                                f"or several as {JSON} {{\"instances\": [{{\"b64\": \"...\"}}, ...]}}")
    if not body:
        raise RequestError(400, "the request body is empty")
    if kind != JSON:
        return ImageBatch([bytes(body)], ["the image"])
    return _json_instances(body, max_instances)


def _json_instances(body: bytes | str, max_instances: int) -> ImageBatch:
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RequestError(400, f"the body is not valid JSON: {error}") from None
    except RecursionError:  # `[[[[...` a few thousand deep: the parser's recursion limit
        raise RequestError(400, "the JSON body is nested too deeply") from None
    instances = document.get("instances") if isinstance(document, dict) else None
    if not isinstance(instances, list) or not instances:
        raise RequestError(400, 'JSON bodies must look like {"instances": [{"b64": "<base64 image>"}, ...]} '
                                'with at least one instance')
    if len(instances) > max_instances:
        raise RequestError(400, f"{len(instances)} instances in one request; at most {max_instances} are allowed")
    images, sources = [], []
    for index, instance in enumerate(instances):
        source = f"instances[{index}]"
        if not isinstance(instance, dict) or not isinstance(instance.get("b64"), str):
            raise RequestError(400, f'{source} must be an object {{"b64": "<base64 image>"}} '
                                    "(images are sent inline; URLs are not fetched)")
        images.append(_b64decode(instance["b64"], source))
        sources.append(source)
    return ImageBatch(images, sources)


def _b64decode(text: str, source: str) -> bytes:
    data = "".join(text.split()).encode("ascii", errors="replace")  # line breaks from `base64` are fine
    if not data or len(data) % 4 or not _B64_ALPHABET.match(data):
        raise RequestError(400, f"{source}.b64 is not valid base64 (standard alphabet, padded)")
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(400, f"{source}.b64 is not valid base64 (standard alphabet, padded)") from None
    if not decoded:
        raise RequestError(400, f"{source}.b64 is empty")
    return decoded


def predict_fn(data: ImageBatch, model: ServingModel) -> Prediction:
    tensors = []
    for image, source in zip(data.images, data.sources, strict=True):
        try:
            tensors.append(model.preprocess(image))
        except ImageTooLargeError as error:
            raise RequestError(400, f"{source} is too large: {error}") from None
        except ImageDecodeError as error:
            reason = _PIL_OBJECT.sub("", str(error)).strip()
            raise RequestError(400, f"{source} could not be decoded ({reason}); send a JPEG or PNG image") from None
    return Prediction(model.forward(torch.stack(tensors)), model.classes)


def accepts_json(accept: str | None) -> bool:
    """True when the Accept header (absent, `*/*`, `application/*`, `application/json`, with q-values) allows JSON."""
    if not accept or not accept.strip():
        return True
    for item in accept.split(","):
        kind, *params = item.split(";")
        kind = kind.strip().lower()
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0 and kind in (JSON, "application/*", "*/*", "*"):
            return True
    return False


def parse_top_k(custom_attributes: str | None, default: int, num_classes: int) -> int:
    """`top_k=5` among the custom attributes (`key=value` pairs separated by `,` or `;`), capped at the class count."""
    top_k = default
    for item in re.split(r"[,;]", custom_attributes or ""):
        key, _, value = item.partition("=")
        if key.strip().lower() != "top_k":
            continue
        try:
            top_k = int(value.strip())
        except ValueError:
            raise RequestError(400, f"custom attribute top_k={value.strip()!r} is not an integer") from None
        if top_k < 1:
            raise RequestError(400, f"custom attribute top_k={top_k} must be at least 1")
    return min(top_k, num_classes)


def negotiate(accept: str | None) -> str:
    """Content negotiation, the one place it happens: the response type for this Accept header (responses are
    JSON), or a 406 before any work is done."""
    if not accepts_json(accept):
        raise RequestError(406, f"Accept {accept!r} cannot be served: responses are {JSON}")
    return JSON


def output_fn(prediction: Prediction, content_type: str = JSON, top_k: int = 3) -> tuple[str, str]:
    """The top-k classes per image, written in the negotiated `content_type` (`negotiate`)."""
    if content_type != JSON:
        raise ValueError(f"output_fn writes {JSON}, not {content_type!r}: negotiate() chooses the type")
    top_k = min(top_k, len(prediction.classes))
    values, indices = torch.topk(prediction.probabilities, top_k, dim=1)
    predictions = [
        {"classes": [{"name": prediction.classes[i], "index": i, "probability": p}
                     for p, i in zip(row_values.tolist(), row_indices.tolist(), strict=True)]}
        for row_values, row_indices in zip(values, indices, strict=True)
    ]
    return json.dumps({"predictions": predictions}), JSON
