"""Entry point of the serving image: `python -m classifier.serving.serve` (what `docker run IMAGE serve` runs).

1. Checks `/opt/ml/model` before anything starts (a clear message and exit 1, not a worker crash loop).
2. Sizes MMS for the machine: `SAGEMAKER_MODEL_SERVER_WORKERS` workers (default: one per usable CPU)
   with `CLASSIFIER_THREADS_PER_WORKER` torch threads each (default: CPUs / workers).
3. Lets MMS accept bodies somewhat over the payload limit, so that the handler, not Netty, answers an
   oversized body, with a JSON 413 that says what the limit is.
4. Builds the `ReadyPing` MMS plugin (see `mms_plugin`): GET /ping answers 503 until a worker has
   loaded the model, 200 after (MMS's own /ping says 200 from the moment the port is bound).
5. Starts multi-model-server through sagemaker-inference's `start_model_server` with our handler service.

With `SAGEMAKER_BASE_DIR` set (a local endpoint, or the tests), everything MMS writes goes under that
directory instead of `/etc` and `/tmp` (its config, pid file, worker sockets and logs), so several
local servers can run side by side; the toolkit's search for "the" MMS process is narrowed to ours.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..artifact import CONFIG_FILE, WEIGHTS_FILE  # torch-free: the front end never loads torch
from .mms_plugin import PluginBuildError, plugin_dir
from .settings import Settings, SettingsError

HANDLER_SERVICE = "classifier.serving.handler_service"
DEFAULT_BASE_DIR = "/opt/ml"
# MMS refuses bodies over its max_request_size itself (Netty: an empty 413, or a connection reset while
# the client is still sending); bodies up to this many times our limit reach the handler and get a JSON 413.
MMS_BODY_FACTOR = 4


def configure_environment(env=os.environ) -> Settings:
    """Fill in the sizes MMS and the workers read from the environment; explicit settings win."""
    settings = Settings.from_env(env)
    env.setdefault("SAGEMAKER_MODEL_SERVER_WORKERS", str(settings.workers))
    threads = str(settings.threads_per_worker)
    env.setdefault("CLASSIFIER_THREADS_PER_WORKER", threads)
    env.setdefault("OMP_NUM_THREADS", threads)  # read by torch when a worker imports it
    env.setdefault("MKL_NUM_THREADS", threads)
    env["MMS_MAX_REQUEST_SIZE"] = str(settings.max_body_bytes * MMS_BODY_FACTOR)  # enable_envvars_config=true
    return settings


class ModelDirError(RuntimeError):
    pass


def check_model_dir(model_dir: Path) -> dict:
    """What can be checked without torch: both files there, the config readable and complete.

    The workers load the model with `classifier.artifact.load_artifact`, which checks the rest.
    """
    config_path, weights_path = model_dir / CONFIG_FILE, model_dir / WEIGHTS_FILE
    if not config_path.is_file():
        raise ModelDirError(f"{config_path} is missing: {model_dir} is not a model directory written by training")
    if not weights_path.is_file():
        raise ModelDirError(f"{weights_path} is missing")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as error:
        raise ModelDirError(f"{config_path} is not readable JSON: {error}") from error
    if not isinstance(config, dict):
        raise ModelDirError(f"{config_path} does not hold a JSON object")
    missing = [key for key in ("architecture", "classes", "preprocessing") if key not in config]
    if missing:
        raise ModelDirError(f"{config_path} lacks {missing}")
    return config


def isolate_local_server(model_server, base_dir: Path, env=os.environ) -> None:
    """Keep this MMS's files under `base_dir` and make the toolkit find this MMS, not another one."""
    mms_dir = base_dir / "mms"
    mms_dir.mkdir(parents=True, exist_ok=True)
    tmp_dir = mms_dir / "tmp"
    if len(str(tmp_dir)) > 80:  # unix socket paths (tmp/.mms.sock.9000) are limited to 107 bytes
        import tempfile

        tmp_dir = Path(tempfile.mkdtemp(prefix="mms-"))
    tmp_dir.mkdir(parents=True, exist_ok=True)
    env["TEMP"] = str(tmp_dir)  # java.io.tmpdir: the workers' unix sockets
    env["TMPDIR"] = str(tmp_dir)  # the `multi-model-server` launcher's pid file
    env.setdefault("LOG_LOCATION", str(base_dir / "logs"))
    env.setdefault("METRICS_LOCATION", str(base_dir / "logs"))
    model_server.MMS_CONFIG_FILE = str(mms_dir / "sagemaker-mms.properties")


def stop_leftover_workers(tmp_dir: str) -> None:
    """MMS's Java front end exits on SIGTERM without its Python worker server (model_service_worker.py);
    in the image tini (-g) signals the whole group, locally stop the ones with their sockets in our tmp."""
    import psutil

    leftovers = []
    for process in psutil.process_iter():
        try:
            cmdline = process.cmdline()
        except psutil.Error:
            continue
        if any(part.endswith("mms/model_service_worker.py") for part in cmdline) and \
                any(part.startswith(tmp_dir + os.sep) for part in cmdline):
            leftovers.append(process)
    for process in leftovers:
        try:
            process.terminate()
        except psutil.Error:
            pass
    psutil.wait_procs(leftovers, timeout=10)


def add_plugins_path(model_server, plugins: Path) -> None:
    """Append `plugins_path` to the MMS config the toolkit writes (it has no setting for it)."""
    generate = model_server._generate_mms_config_properties

    def generate_with_plugins(env, handler_service=None):
        return generate(env, handler_service) + f"plugins_path={plugins}\n"

    model_server._generate_mms_config_properties = generate_with_plugins


def narrow_process_search(model_server) -> None:
    """The toolkit waits on the one process running MMS's main class and fails if there are two.

    Ours is the one started with our config file (`-f <MMS_CONFIG_FILE>`), whatever else runs here.
    """
    import psutil

    def find_our_mms_process():
        config_file = model_server.MMS_CONFIG_FILE
        found = []
        for process in psutil.process_iter():
            try:
                if process.status() == psutil.STATUS_ZOMBIE:
                    continue
                cmdline = process.cmdline()
            except psutil.Error:
                continue
            if model_server.MMS_NAMESPACE in cmdline and config_file in cmdline:
                found.append(process)
        if len(found) != 1:
            raise RuntimeError(f"expected one MMS process with config {config_file}, found {len(found)}")
        return found[0]

    if not hasattr(model_server, "_retrieve_mms_server_process"):
        raise RuntimeError("this sagemaker-inference version has no _retrieve_mms_server_process; check serve.py")
    model_server._retrieve_mms_server_process = find_our_mms_process


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["serve"]:
        args = args[1:]
    if args:
        print(f"usage: python -m classifier.serving.serve [serve]  (unexpected arguments: {args})", file=sys.stderr)
        return 64
    try:
        settings = configure_environment()
    except SettingsError as error:
        print(f"serve: {error}", file=sys.stderr)
        return 1
    # sagemaker_inference reads SAGEMAKER_BASE_DIR when imported.
    from sagemaker_inference import environment, model_server

    model_dir = Path(environment.model_dir)
    try:
        config = check_model_dir(model_dir)
    except ModelDirError as error:
        print(f"serve: cannot serve {model_dir}: {error}", file=sys.stderr)
        return 1
    try:
        plugins = plugin_dir()
    except PluginBuildError as error:
        print(f"serve: cannot build the /ping plugin: {error}", file=sys.stderr)
        return 1
    base_dir = Path(environment.base_dir)
    if base_dir != Path(DEFAULT_BASE_DIR):
        isolate_local_server(model_server, base_dir)
    add_plugins_path(model_server, plugins)
    narrow_process_search(model_server)
    print(f"serve: {config['architecture']} with {len(config['classes'])} classes from {model_dir}; "
          f"port {os.environ.get('SAGEMAKER_BIND_TO_PORT', '8080')}, {settings.workers} workers x "
          f"{settings.threads_per_worker} threads, body limit {settings.max_body_bytes} bytes", flush=True)
    try:
        model_server.start_model_server(handler_service=HANDLER_SERVICE)
    except KeyboardInterrupt:  # Ctrl-C on `make serve-local`: MMS, in the same process group, stops too
        return 130
    finally:
        if base_dir != Path(DEFAULT_BASE_DIR):
            stop_leftover_workers(os.environ["TEMP"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
