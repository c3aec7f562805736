"""Serving: the SageMaker inference contract for the trained classifier, on multi-model-server (MMS).

- `serve`: the image's entry (`python -m classifier.serving.serve`): sizes workers and threads for the
  machine, then starts MMS through the sagemaker-inference toolkit (GET /ping, POST /invocations).
- `handler_service`: the MMS handler (`initialize`, `handle`: what sagemaker-inference's `DefaultHandlerService`
  offers MMS): one request end to end: limits, content negotiation, JSON errors, one log line.
- `inference`: `model_fn`, `input_fn`, `predict_fn`, `output_fn` (decode with the artifact's own
  evaluation preprocessing, batched forward pass, top-k).
- `settings`: limits and sizes read from the environment.
- `local`: `make serve-local`: the same stack on this machine, on a model dir or a local job dir.
"""
