"""`make serve-local`: the serving image's stack (nginx + multi-model-server) on this machine, in the foreground,
for MODEL= as every target names a model (scripts/local/jobs.py: a local job, a model or job directory, a
model.tar.gz).

    python -m scripts.local.serve --model MODEL [--port 8080] [--work-dir DIR] [--workers N]
        [--capture DIR [--capture-percent P]]

`python -m classifier.serving.local` serves the model directory (SAGEMAKER_BASE_DIR = the work dir) as a child
that gets SIGTERM should this process die, even by SIGKILL (orphan_guard.py); SIGTERM, SIGINT and SIGHUP here are
passed on to it, and its exit code is this one's. A model.tar.gz is unpacked for as long as it serves, then removed.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from classifier.serving.settings import DEFAULT_PORT
from scripts import CONTAINER_DIR
from scripts.local import jobs
from scripts.local.orphan_guard import guarded


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="local job (name or directory), model directory or model.tar.gz")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--work-dir", type=Path, required=True, help="SAGEMAKER_BASE_DIR: MMS's logs go to its logs/")
    parser.add_argument("--workers", type=int, help="SAGEMAKER_MODEL_SERVER_WORKERS")
    parser.add_argument("--capture", type=Path, help="write SageMaker's data capture files under this folder")
    parser.add_argument("--capture-percent", type=int, help="share of requests captured, 0-100")
    args = parser.parse_args(argv)
    paths = [str(CONTAINER_DIR), os.environ.get("PYTHONPATH")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}
    try:
        with jobs.opened_model(args.model) as model_dir:
            command = [sys.executable, "-m", "classifier.serving.local", str(model_dir), "--port", str(args.port),
                       "--work-dir", str(args.work_dir)] + (["--workers", str(args.workers)] if args.workers else [])
            if args.capture is not None:
                command += ["--capture", str(args.capture)]
            if args.capture_percent is not None:
                command += ["--capture-percent", str(args.capture_percent)]
            server = subprocess.Popen(guarded(command), env=env)
            for signum in jobs.STOP_SIGNALS:
                signal.signal(signum, lambda received, frame: server.send_signal(received))
            code = server.wait()
            return 128 - code if code < 0 else code  # killed by a signal: as a shell reports it
    except jobs.JobError as error:
        print(f"serve-local: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
