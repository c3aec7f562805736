"""The MMS handler: `serve` starts MMS with `default_service_handler=classifier.serving.handler_service`.

MMS (its `MmsModelLoader`) imports this module, instantiates the one class defined in it in each worker
process, calls `initialize(context)` once and `handle(data, context)` for every batch of requests: the two
methods sagemaker-inference's `DefaultHandlerService` has. This class is that contract and nothing more;
the inference functions of `inference` do the work, one job each, and the artifact holds no code (nothing
from the model dir is imported or executed).

For each request it
- checks it before any work: body size (413), Accept (406: content negotiation happens here, once, and
  `output_fn` writes the type chosen), Content-Type (415, in `input_fn`), top_k (400);
- answers every error with a JSON body `{"code": ..., "type": ..., "message": ...}` (the shape MMS uses
  for its own errors) and never lets an exception reach MMS, so bad input cannot kill a worker;
- writes one structured log line (`INVOCATION {...}`), with the latencies named as CloudWatch names
  them, in microseconds:
  `ModelLatency`: decoding + preprocessing + forward pass (`predict_fn`);
  `OverheadLatency`: the rest of the handler (request checks, JSON/base64 parsing, top-k, encoding).
  Time spent in MMS's Java front end and on its socket to this worker is in neither.
- with CLASSIFIER_CAPTURE_DIR set (`make serve-local CAPTURE=<dir>`), offers the request and its answer to the
  data capture (`capture.CaptureWriter`: SageMaker's capture files, sampled, written by a thread of its own).
A model that fails to load ends the worker process (see `initialize`).
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from sagemaker_inference.errors import BaseInferenceToolkitError

from ..artifact import ArtifactError, atomic_write_bytes
from ..export.formats import FormatError
from . import capture, inference
from .inference import JSON, RequestError
from .settings import LOAD_FAILURE_ENV, MIB, Settings

log = logging.getLogger(__name__)
request_log = logging.getLogger("classifier.serving.requests")
REQUEST_LOG_TAG = "INVOCATION"
CUSTOM_ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"


def header(headers: dict, name: str) -> str | None:
    """A request header by its lower-case name (MMS passes them as sent, as str or bytes)."""
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else value
    return None


def error_body(error: BaseInferenceToolkitError) -> str:
    error_type = getattr(error, "error_type", None) or str(error.phrase).replace(" ", "")
    return json.dumps({"code": error.status_code, "type": error_type, "message": error.message})


def request_id(context, index: int) -> str | None:
    """MMS's id of the request (also in its access log)."""
    try:
        return context.get_request_id(index)
    except Exception:  # only for the log line
        return None


def log_request(context, index: int, headers: dict, body: bytes, outcome: dict) -> None:
    record = {
        "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "request_id": request_id(context, index),
        "content_type": header(headers, "content-type"),
        "accept": header(headers, "accept"),
        "bytes": len(body),
        "images": outcome["images"],
        "top_k": outcome["top_k"],
        "status": outcome["status"],
        "ModelLatency": outcome["model_ns"] // 1000,
        "OverheadLatency": (outcome["total_ns"] - outcome["model_ns"]) // 1000,
        "pid": os.getpid(),
    }
    if outcome.get("error") is not None:
        record["error"] = outcome["error"]
    request_log.info("%s %s", REQUEST_LOG_TAG, json.dumps(record))


def report_load_failure(reason: str) -> None:
    """Tell `serve` why the model cannot be loaded (the file it watches, when it set one)."""
    path = os.environ.get(LOAD_FAILURE_ENV)
    if path:
        try:
            atomic_write_bytes(path, lambda handle: handle.write(reason.encode()))
        except OSError:
            log.warning("cannot write %s: serve will not stop by itself", path)


class HandlerService:
    """What MMS calls in a worker: `initialize` once, then `handle` per batch of requests."""

    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings.from_env()
        self.model: inference.ServingModel | None = None
        self.capture = (capture.CaptureWriter(Path(self.settings.capture_dir), self.settings.capture_endpoint,
                                              self.settings.capture_percent) if self.settings.capture_dir else None)

    def initialize(self, context) -> None:
        """Load the model (`model_fn`). A failure ends this worker: MMS would log it and still count the
        worker as running, so /ping would say Healthy with no model; exiting makes MMS restart it and
        /ping stays unhealthy. When the artifact itself is at fault (weights that do not fit the config, say),
        every worker would fail the same way: the reason goes to `serve` (LOAD_FAILURE_ENV), which stops."""
        model_dir = context.system_properties.get("model_dir")
        try:
            self.model = inference.model_fn(model_dir, settings=self.settings,
                                            gpu_id=context.system_properties.get("gpu_id"))
        except BaseException as error:  # noqa: B036 - whatever it was, this worker cannot serve
            log.exception("Loading the model from %s failed (%s: %s); this worker exits",
                          model_dir, type(error).__name__, error)
            if isinstance(error, (ArtifactError, FormatError)):
                report_load_failure(str(error))
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)

    def handle(self, data: list, context) -> list[str]:
        return [self.handle_one(index, request, context) for index, request in enumerate(data)]

    def handle_one(self, index: int, request: dict, context) -> str:
        start, received = time.perf_counter_ns(), time.time()
        outcome = {"images": 0, "top_k": None, "model_ns": 0, "status": 200, "error": None}
        headers, body = {}, b""
        try:
            headers = context.request_processor[index].get_request_properties() or {}
            body = (request or {}).get("body") or b""
            if isinstance(body, str):
                body = body.encode("utf-8")
            response, content_type = self.respond(body, headers, outcome)
        except BaseInferenceToolkitError as error:
            outcome.update(status=error.status_code, error=error.message)
            response, content_type = error_body(error), JSON
            context.set_response_status(code=error.status_code, phrase=str(error.phrase), idx=index)
        except Exception as error:  # pylint: disable=broad-except
            log.error("request failed:\n%s", traceback.format_exc())
            failure = RequestError(500, f"internal error while predicting: {type(error).__name__}: {error}")
            outcome.update(status=500, error=failure.message)
            response, content_type = error_body(failure), JSON
            context.set_response_status(code=500, phrase=str(failure.phrase), idx=index)
        context.set_response_content_type(index, content_type)
        if self.capture is not None and len(body) <= self.settings.max_body_bytes:  # SageMaker never sees larger
            self.capture.offer(body, header(headers, "content-type"), response, content_type, received,
                               request_id(context, index))
        outcome["total_ns"] = time.perf_counter_ns() - start
        log_request(context, index, headers, body, outcome)
        return response

    def respond(self, body: bytes, headers: dict, outcome: dict) -> tuple[str, str]:
        """One request through the contract's functions; `outcome` gets what the log line reports."""
        limit = self.settings.max_body_bytes
        if len(body) > limit:
            raise RequestError(413, f"the body is {len(body)} bytes; the limit is {limit} bytes "
                                    f"({limit / MIB:g} MiB, as for InvokeEndpoint)")
        content_type = inference.negotiate(header(headers, "accept"))
        batch = inference.input_fn(body, header(headers, "content-type"), self.settings.max_instances)
        outcome["images"] = len(batch.images)
        if self.model is None:  # only if loading failed at start-up; `initialize` exits then
            raise RequestError(503, "the model is not loaded")
        outcome["top_k"] = inference.parse_top_k(header(headers, CUSTOM_ATTRIBUTES), self.settings.default_top_k,
                                                 len(self.model.classes))
        model_start = time.perf_counter_ns()
        try:
            prediction = inference.predict_fn(batch, self.model)
        finally:  # also when an image turns out to be undecodable: that time was the model's too
            outcome["model_ns"] = time.perf_counter_ns() - model_start
        return inference.output_fn(prediction, content_type, outcome["top_k"])
