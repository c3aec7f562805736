"""The local endpoint as a child process: the serving image's stack (`python -m classifier.serving.local`,
as `make serve-local` runs it) started in its own process group, waited for until /ping answers, stopped.
Used by the demo and by `make batch-local`. It cannot outlive the process that started it: `serve` gets
SIGTERM when that process dies, even by SIGKILL (orphan_guard.py), and stops its servers (a guard of
theirs sees to it even when `serve` itself is killed)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from scripts import CONTAINER_DIR
from scripts.local.orphan_guard import guarded

STARTUP_SECONDS = 240  # SageMaker's limit for a container's first healthy /ping


class EndpointError(RuntimeError):
    """The endpoint exited or gave no healthy /ping in time; the message holds its log's tail."""


def start(model: Path, port: int, work_dir: Path, log: Path, capture: Path | None = None,
          capture_percent: int | None = None) -> subprocess.Popen:
    """The endpoint for `model` on 127.0.0.1:`port`, its output to `log`, in a process group of its own; with
    `capture`, writing SageMaker's data capture files there (`capture_percent` of the requests)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(CONTAINER_DIR), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "classifier.serving.local", str(model), "--port", str(port), "--work-dir",
               str(work_dir)]
    if capture is not None:
        command += ["--capture", str(capture)] + ([] if capture_percent is None else
                                                  ["--capture-percent", str(capture_percent)])
    with open(log, "wb") as handle:
        return subprocess.Popen(guarded(command), stdout=handle, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


def answers_ping(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/ping", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_until_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    """Return once /ping answers 200; a line every 10 s while waiting. An endpoint that exits (a model that
    cannot be loaded, say) is an EndpointError at once, with the reason `serve` gave."""
    started, shown = time.monotonic(), 0
    while not answers_ping(url):
        waited = time.monotonic() - started
        if process.poll() is not None or waited > STARTUP_SECONDS:
            why = f"exited with {process.returncode}" if process.poll() is not None else "gave no healthy /ping"
            raise EndpointError(f"the local endpoint {why} after {waited:.0f} s: {reason(log)} (its log: {log})")
        if waited - shown >= 10:
            print(f"waiting for the endpoint on {url}: {waited:.0f} s", file=sys.stderr, flush=True)
            shown = waited
        time.sleep(0.5)


def reason(log: Path) -> str:
    """Why the endpoint stopped: the last error `serve` (or serve-local) wrote to its log, else the log's last line."""
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    errors = [line for line in lines if line.startswith(("serve: error: ", "serve-local: error: "))]
    return (errors or lines or ["an empty log"])[-1]


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the endpoint's process group (nginx, MMS's Java front end, its Python workers), then SIGKILL."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
