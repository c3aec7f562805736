"""One request end to end, inside an MMS worker: a sagemaker-inference `Transformer` that

- runs our inference functions only (the artifact holds no code, so nothing from the model dir is executed);
- checks the request before any work: body size (413), Content-Type (415), Accept (406), top_k (400);
- answers every error with a JSON body `{"code": ..., "type": ..., "message": ...}` (the shape MMS
  uses for its own errors) and never lets an exception reach MMS, so bad input cannot kill a worker;
- writes one structured log line per request (`INVOCATION {...}`), with the latencies named as
  CloudWatch names them, in microseconds:
  `ModelLatency`: decoding + preprocessing + forward pass (`predict_fn`);
  `OverheadLatency`: the rest of the handler (request checks, JSON/base64 parsing, top-k, encoding).
  Time spent in MMS's Java front end and on its socket to this worker is in neither.
"""
from __future__ import annotations

import json
import logging
import os
import time
import traceback
from datetime import datetime, timezone

from sagemaker_inference import environment
from sagemaker_inference.errors import BaseInferenceToolkitError
from sagemaker_inference.transformer import Transformer

from . import inference
from .inference import JSON, RequestError
from .settings import MIB, Settings

log = logging.getLogger(__name__)
request_log = logging.getLogger("classifier.serving.requests")
REQUEST_LOG_TAG = "INVOCATION"
CUSTOM_ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"


def _header(headers: dict, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else value
    return None


def _request_id(context, index: int) -> str | None:
    """MMS's id of the request (also in its access log)."""
    try:
        return context.get_request_id(index)
    except Exception:  # only for the log line
        return None


def error_body(error: BaseInferenceToolkitError) -> str:
    error_type = getattr(error, "error_type", None) or str(error.phrase).replace(" ", "")
    return json.dumps({"code": error.status_code, "type": error_type, "message": error.message})


class ClassifierTransformer(Transformer):
    def __init__(self, settings: Settings | None = None):
        super().__init__()
        self.settings = settings or Settings.from_env()

    # --- model loading (MMS calls this once per worker, from HandlerService.initialize) ----------------
    def validate_and_initialize(self, model_dir=environment.model_dir, context=None):
        if self._initialized:
            return
        self._context = context
        self._environment = environment.Environment()
        gpu_id = context.system_properties.get("gpu_id") if context is not None else None
        self._model = inference.model_fn(model_dir, settings=self.settings, gpu_id=gpu_id)
        self._initialized = True

    # --- requests ---------------------------------------------------------------------------------
    def transform(self, data, context):
        return [self._transform_one(index, request, context) for index, request in enumerate(data)]

    def _transform_one(self, index: int, request: dict, context) -> str:
        start = time.perf_counter_ns()
        model_ns = 0
        headers = {}
        body = b""
        images = 0
        top_k = None
        try:
            headers = context.request_processor[index].get_request_properties() or {}
            body = (request or {}).get("body") or b""
            if isinstance(body, str):
                body = body.encode("utf-8")
            if len(body) > self.settings.max_body_bytes:
                raise RequestError(413, f"the body is {len(body)} bytes; the limit is {self.settings.max_body_bytes} "
                                        f"bytes ({self.settings.max_body_bytes / MIB:g} MiB, as for InvokeEndpoint)")
            accept = _header(headers, "accept")
            if not inference.accepts_json(accept):
                raise RequestError(406, f"Accept {accept!r} cannot be served: responses are {JSON}")
            batch = inference.input_fn(body, _header(headers, "content-type"), self.settings.max_instances)
            images = len(batch.images)
            if not self._initialized:  # only if loading failed at start-up; HandlerService exits then
                raise RequestError(503, "the model is not loaded")
            top_k = inference.parse_top_k(_header(headers, CUSTOM_ATTRIBUTES), self.settings.default_top_k,
                                          len(self._model.classes))
            model_start = time.perf_counter_ns()
            try:
                prediction = inference.predict_fn(batch, self._model)
            finally:  # also when an image turns out to be undecodable: that time was the model's too
                model_ns = time.perf_counter_ns() - model_start
            response, content_type = inference.output_fn(prediction, accept, top_k)
            status = 200
        except BaseInferenceToolkitError as error:
            status, response, content_type = error.status_code, error_body(error), JSON
            context.set_response_status(code=status, phrase=str(error.phrase), idx=index)
            message = error.message
        except Exception as error:  # pylint: disable=broad-except
            log.error("request failed:\n%s", traceback.format_exc())
            failure = RequestError(500, f"internal error while predicting: {type(error).__name__}: {error}")
            status, response, content_type = 500, error_body(failure), JSON
            context.set_response_status(code=status, phrase=str(failure.phrase), idx=index)
            message = failure.message
        else:
            message = None
        context.set_response_content_type(index, content_type)
        total_ns = time.perf_counter_ns() - start
        self._log_request(_request_id(context, index), headers, body, images, top_k, status, model_ns, total_ns,
                          message)
        return response

    def _log_request(self, request_id, headers, body, images, top_k, status, model_ns, total_ns, message):
        record = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "request_id": request_id,
            "content_type": _header(headers, "content-type"),
            "accept": _header(headers, "accept"),
            "bytes": len(body),
            "images": images,
            "top_k": top_k,
            "status": status,
            "ModelLatency": model_ns // 1000,
            "OverheadLatency": (total_ns - model_ns) // 1000,
            "pid": os.getpid(),
        }
        if message is not None:
            record["error"] = message
        request_log.info("%s %s", REQUEST_LOG_TAG, json.dumps(record))
