"""The MMS handler: `serve` starts MMS with `default_service_handler=classifier.serving.handler_service`.

MMS instantiates the one class defined in this module in each worker process, calls `initialize`
once (the model is loaded there) and `handle` for every request.
"""
from __future__ import annotations

import logging
import os
import sys

from sagemaker_inference.default_handler_service import DefaultHandlerService

from .transformer import ClassifierTransformer

log = logging.getLogger(__name__)


class HandlerService(DefaultHandlerService):
    """sagemaker-inference's handler service with our transformer (the pattern of the PyTorch toolkit)."""

    def __init__(self):
        super().__init__(transformer=ClassifierTransformer())

    def initialize(self, context):
        try:
            super().initialize(context)
        except BaseException as error:  # noqa: B036 - whatever it was, this worker cannot serve
            # MMS would log this and still count the worker as running, so /ping would say Healthy
            # with no model. Exit instead: MMS restarts the worker and /ping stays unhealthy.
            log.exception("Loading the model from %s failed (%s: %s); this worker exits",
                          context.system_properties.get("model_dir"), type(error).__name__, error)
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)
