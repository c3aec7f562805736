"""A local endpoint: the serving image's own stack (`classifier.serving.serve`: nginx + multi-model-server
with the sagemaker-inference handler) on this machine, for a model directory or a local training job
directory (an /opt/ml tree).

    python -m classifier.serving.local MODEL_OR_JOB_DIR [--port 8080] [--work-dir DIR] [--workers N]
                                       [--capture DIR [--capture-percent N] [--capture-endpoint NAME]]

The work dir becomes `SAGEMAKER_BASE_DIR`: `model` there links to the model, MMS's logs go to its `logs/`
(the servers' configs, pid files and sockets to a private temporary directory). With --capture, the handler
writes SageMaker's data capture files under DIR (capture.py). Then this process becomes
`python -m classifier.serving.serve`.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from ..artifact import CONFIG_FILE
from .launcher import free_port  # noqa: F401 - the tests, the demo and the benchmark pick ports with it
from .serve import CODE_ROOT
from .settings import DEFAULT_PORT


def resolve_model_dir(path: Path) -> Path:
    """A model dir (has model_config.json) or a job dir whose model/ has one."""
    path = Path(path).resolve()
    for candidate in (path, path / "model"):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    raise SystemExit(f"serve-local: error: neither {path} nor {path / 'model'} holds {CONFIG_FILE}: "
                     "give a model directory or a training job directory")


def prepare_base_dir(model_dir: Path, work_dir: Path) -> Path:
    work_dir = Path(work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    link = work_dir / "model"
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.exists():
        raise SystemExit(f"serve-local: error: {link} exists and is not a link; choose another --work-dir")
    link.symlink_to(model_dir, target_is_directory=True)
    (work_dir / "logs").mkdir(exist_ok=True)
    return work_dir


def capture_environment(capture: Path | None, percent: int | None = None, endpoint: str | None = None) -> dict:
    """The handler's data capture (settings.py: CLASSIFIER_CAPTURE_*): nothing without a capture folder."""
    if capture is None:
        return {}
    env = {"CLASSIFIER_CAPTURE_DIR": str(Path(capture).resolve())}
    if percent is not None:
        env["CLASSIFIER_CAPTURE_PERCENT"] = str(percent)
    if endpoint:
        env["CLASSIFIER_CAPTURE_ENDPOINT"] = endpoint
    return env


def server_environment(base_dir: Path, port: int, workers: int | None = None, host: str = "127.0.0.1",
                       env=None) -> dict:
    env = dict(os.environ if env is None else env)
    env["SAGEMAKER_BASE_DIR"] = str(base_dir)
    env["SAGEMAKER_BIND_TO_PORT"] = str(port)
    # The image listens on 0.0.0.0 (right in a container); on a workstation only this machine should reach it.
    env["CLASSIFIER_BIND_HOST"] = host
    env["LOG_LOCATION"] = env["METRICS_LOCATION"] = str(base_dir / "logs")
    env["PYTHONUNBUFFERED"] = "1"
    if workers:
        env["SAGEMAKER_MODEL_SERVER_WORKERS"] = str(workers)
    paths = [str(CODE_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    # multi-model-server, java and nginx are found on PATH; put this interpreter's scripts first.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="model directory, or a job directory with model/")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", DEFAULT_PORT)))
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="SAGEMAKER_BASE_DIR for the server (default: a new temporary directory)")
    parser.add_argument("--workers", type=int, default=None, help="SAGEMAKER_MODEL_SERVER_WORKERS")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: reachable from other machines)")
    parser.add_argument("--capture", type=Path, default=None,
                        help="write SageMaker's data capture files (JSON Lines) under this folder")
    parser.add_argument("--capture-percent", type=int, default=None, help="share of requests captured, 0-100")
    parser.add_argument("--capture-endpoint", default=None, help="the endpoint's folder in the capture (local)")
    args = parser.parse_args(argv)
    if not 1 <= args.port <= 65535:
        parser.error(f"--port {args.port} is not a TCP port (1 to 65535)")
    if args.capture_percent is not None and not 0 <= args.capture_percent <= 100:
        parser.error(f"--capture-percent {args.capture_percent} is not a percentage (0 to 100)")
    model_dir = resolve_model_dir(args.model)
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="serve-local-"))
    base_dir = prepare_base_dir(model_dir, work_dir)
    env = server_environment(base_dir, args.port, args.workers, args.host) | capture_environment(
        args.capture, args.capture_percent, args.capture_endpoint)
    print(f"serve-local: {model_dir} on http://{args.host}:{args.port} (SAGEMAKER_BASE_DIR={base_dir}, "
          f"MMS logs in {base_dir / 'logs'})", flush=True)
    os.execve(sys.executable, [sys.executable, "-m", "classifier.serving.serve"], env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
