"""Entry point of the serving image: `python -m classifier.serving.serve` (what `docker run IMAGE serve` runs).

1. Checks `/opt/ml/model` before anything starts, with `classifier.artifact` (the whole model_config.json,
   and that model.pth is there), and the format the workers will serve (`classifier.export.formats.choose`:
   `SERVING_RUNTIME` forcing a format that is absent or was refused, or whose files are missing): a clear
   message and exit 1, not workers that restart in a loop. The check does not import torch, so this
   process, which only waits for the servers, stays small.
2. Sizes MMS for the machine and the format: `SAGEMAKER_MODEL_SERVER_WORKERS` workers (default: per usable
   CPU, as `settings.WORKERS_PER_CPU` says for the format) with `CLASSIFIER_THREADS_PER_WORKER` threads each
   (default: CPUs / workers).
3. Lets bodies somewhat over the payload limit through, so that the handler, not the HTTP front ends,
   answers an oversized body, with a JSON 413 that says what the limit is.
4. Finds the `ReadyPing` MMS plugin (`mms_plugin`: pre-built in the image): GET /ping answers 503 until a
   worker has loaded the model, 200 after (MMS's own /ping says 200 from the moment its port is bound).
5. Runs nginx on port 8080 in front of multi-model-server with our handler service (`launcher`): only
   GET /ping and POST /invocations are served there; MMS's management API is on a private unix socket.

sagemaker-inference provides the environment (model dir, timeouts, JVM arguments), the error types and
MMS's logging configuration; the servers are started here, not by its `start_model_server`, which binds
the management API to the inference port and has no setting for plugins.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from .. import artifact  # torch-free
from ..export import formats  # torch-free
from . import capture, launcher
from .mms_plugin import PluginBuildError, plugin_dir
from .settings import Settings, SettingsError

HANDLER_SERVICE = "classifier.serving.handler_service"
CODE_ROOT = Path(__file__).resolve().parents[2]  # the directory holding the `classifier` package
# MMS refuses bodies over its max_request_size itself (Netty: an empty 413, or a connection reset while
# the client is still sending); bodies up to this many times our limit reach the handler and get a JSON 413.
MMS_BODY_FACTOR = 4


def configure_environment(env=os.environ, fmt: str = formats.TORCH) -> Settings:
    """Fill in the sizes the workers read from the environment for the format they serve; explicit settings win."""
    settings = Settings.from_env(env, fmt)
    env.setdefault("SAGEMAKER_MODEL_SERVER_WORKERS", str(settings.workers))
    threads = str(settings.threads_per_worker)
    env.setdefault("CLASSIFIER_THREADS_PER_WORKER", threads)
    env.setdefault("OMP_NUM_THREADS", threads)  # read by torch when a worker imports it
    env.setdefault("MKL_NUM_THREADS", threads)
    return settings


class ModelDirError(RuntimeError):
    pass


def check_model_dir(model_dir: Path, env=os.environ) -> dict:
    """`classifier.artifact.check_model_dir` (read_config + weights present) and the format a CPU worker will
    serve, in a summary: architecture, number of classes, image size, format and why."""
    try:
        config = artifact.check_model_dir(model_dir)
        choice = formats.choose(config, model_dir, env.get(formats.RUNTIME_ENV))
    except (artifact.ArtifactError, formats.FormatError) as error:
        raise ModelDirError(str(error)) from None
    return {**artifact.summary(config), "format": choice.format, "why": choice.why}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["serve"]:
        args = args[1:]
    if args:
        print(f"usage: python -m classifier.serving.serve [serve]  (unexpected arguments: {args})", file=sys.stderr)
        return 64
    # sagemaker_inference reads SAGEMAKER_BASE_DIR when imported.
    from sagemaker_inference import environment

    model_dir = Path(environment.model_dir)
    try:
        summary = check_model_dir(model_dir)
    except ModelDirError as error:
        print(f"serve: error: cannot serve {model_dir}: {error}", file=sys.stderr)
        return 1
    try:
        settings = configure_environment(fmt=summary["format"])
    except SettingsError as error:
        print(f"serve: error: {error}", file=sys.stderr)
        return 1
    if settings.capture_dir:
        try:
            capture.check_directory(Path(settings.capture_dir))
        except capture.CaptureError as error:
            print(f"serve: {error}", file=sys.stderr)
            return 1
    try:
        plugins = plugin_dir()
    except PluginBuildError as error:
        print(f"serve: error: cannot use the /ping plugin: {error}", file=sys.stderr)
        return 1
    logs = str(Path(environment.base_dir) / "logs")
    os.environ.setdefault("LOG_LOCATION", logs)  # MMS's log files (the toolkit's log4j2.xml)
    os.environ.setdefault("METRICS_LOCATION", logs)
    try:
        toolkit = environment.Environment()  # SAGEMAKER_MODEL_SERVER_TIMEOUT(_SECONDS), ..._VMARGS
    except ValueError as error:
        print(f"serve: error: a SAGEMAKER_MODEL_SERVER_* setting is not a number: {error}", file=sys.stderr)
        return 1
    config = launcher.ServerConfig(
        model_dir=model_dir,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        max_request_size=settings.max_body_bytes * MMS_BODY_FACTOR,
        # SAGEMAKER_MODEL_SERVER_TIMEOUT is what MMS calls default_response_timeout: minutes.
        response_timeout_s=toolkit.model_server_timeout_seconds or toolkit.model_server_timeout * 60,
        handler_service=HANDLER_SERVICE,
        plugins_path=plugins,
        vmargs=toolkit.vmargs,
    )
    print(f"serve: {summary['architecture']} with {summary['classes']} classes from {model_dir}, format "
          f"{summary['format']} on a CPU ({summary['why']}; torch on a GPU unless {formats.RUNTIME_ENV} says); "
          f"port {settings.port}, {settings.workers} workers x {settings.threads_per_worker} threads, "
          f"body limit {settings.max_body_bytes} bytes; /ping plugin {plugins}"
          + (f"; data capture: {settings.capture_percent}% of requests to {settings.capture_dir}/"
             f"{settings.capture_endpoint}/" if settings.capture_dir else ""), flush=True)
    try:
        return launcher.run(config)
    except launcher.LaunchError as error:
        print(f"serve: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
