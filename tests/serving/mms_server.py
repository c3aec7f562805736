"""The real endpoint for tests: started as `make serve-local` starts it (through scripts/local/serve.py)
(`python -m classifier.serving.local`, which becomes `python -m classifier.serving.serve`:
nginx + multi-model-server (Java) + the sagemaker-inference handler), on a free port of 127.0.0.1, with
its own SAGEMAKER_BASE_DIR; stopped with SIGTERM to `serve`, then SIGKILL to whatever is left of it
and of the servers' process group."""
from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from classifier.serving.local import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTAINER_DIR = REPO_ROOT / "container"
STARTUP_TIMEOUT = 180


def mms_missing() -> list[str]:
    """What the real server needs and this machine lacks (MMS is a Java program, nginx is in front of it)."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return [tool for tool in ("java", "multi-model-server", "nginx") if not shutil.which(tool, path=search)]


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (MMS's management API), like `curl --unix-socket`."""

    def __init__(self, path: str, timeout: float = 30):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def _exchange(connection: http.client.HTTPConnection, method: str, path: str, body, headers) -> "Response":
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return Response(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


@dataclass
class Response:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class Server:
    """A running endpoint: its URL, log file and what /ping said while it was starting."""

    process: subprocess.Popen
    port: int
    work_dir: Path
    log_path: Path
    ping_history: list = field(default_factory=list)  # (seconds since start, status or exception name)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 60) -> Response:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        return _exchange(connection, method, path, body, headers)

    @property
    def management_socket(self) -> str:
        """Where `serve` said MMS's management API listens (a unix socket in a private directory)."""
        found = re.search(r"MMS management API on the unix socket (\S+)", self.log_text())
        assert found, self.log_text()[-3000:]
        return found.group(1)

    def management(self, method: str, path: str) -> Response:
        return _exchange(UnixHTTPConnection(self.management_socket), method, path, None, None)

    def invoke(self, body: bytes, content_type: str | None = "image/jpeg", **headers) -> Response:
        all_headers = {"Content-Type": content_type} if content_type else {}
        all_headers.update({k.replace("_", "-"): v for k, v in headers.items()})
        return self.request("POST", "/invocations", body, all_headers)

    def ping(self, timeout: float = 2) -> Response:
        return self.request("GET", "/ping", timeout=timeout)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def request_log(self) -> list[dict]:
        """The structured INVOCATION records the handler wrote so far."""
        records = []
        for line in self.log_text().splitlines():
            _, tag, payload = line.partition("INVOCATION ")
            if tag and payload.startswith("{"):
                records.append(json.loads(payload))
        return records

    def workers(self) -> list[dict]:
        """The model's workers, from MMS's management API."""
        return self.management("GET", "/models/model").json()["workers"]

    def server_processes(self) -> list[psutil.Process]:
        """Everything `serve` started: nginx, the MMS launcher, Java and the Python workers (one group)."""
        try:
            children = psutil.Process(self.process.pid).children()
        except psutil.Error:
            return []
        groups = set()
        for child in children:
            try:
                groups.add(os.getpgid(child.pid))
            except OSError:
                pass
        members = []
        for process in psutil.process_iter():
            try:
                if os.getpgid(process.pid) in groups and process.status() != psutil.STATUS_ZOMBIE:
                    members.append(process)
            except (OSError, psutil.Error):
                pass
        return members

    def stop(self) -> None:
        left = self.server_processes()
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)  # serve, java and the workers: one group
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever of the group is left
        except (ProcessLookupError, PermissionError):
            pass
        for process in left:  # and of the servers, had `serve` died without stopping them
            try:
                process.kill()
            except psutil.Error:
                pass


def start_server(model_dir: Path, work_dir: Path, env: dict | None = None, wait: bool = True) -> Server:
    port = free_port()
    work_dir.mkdir(parents=True, exist_ok=True)
    log_path = work_dir / "server.log"
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join([str(CONTAINER_DIR), full_env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    full_env.update(env or {})
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "classifier.serving.local", str(model_dir), "--port", str(port),
             "--work-dir", str(work_dir / "base")],
            stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=str(work_dir), start_new_session=True,
        )
    server = Server(process, port, work_dir, log_path)
    if wait:
        try:
            wait_until_healthy(server)
        except BaseException:
            server.stop()
            raise
    return server


def wait_until_healthy(server: Server, timeout: float = STARTUP_TIMEOUT) -> None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if server.process.poll() is not None:
            raise RuntimeError(f"the server exited with {server.process.returncode}:\n{server.log_text()[-4000:]}")
        try:
            status = server.ping(timeout=2).status
        except OSError as error:
            status = type(error).__name__
        server.ping_history.append((time.monotonic() - start, status, " Loaded " in server.log_text()))
        if status == 200:
            return
        time.sleep(0.05)
    raise TimeoutError(f"no healthy /ping within {timeout} s:\n{server.log_text()[-4000:]}")


class PingProbe:
    """Pings in the background and records the status and time of each answer."""

    def __init__(self, server: Server, interval: float = 0.1):
        self.server, self.interval = server, interval
        self.results: list[tuple[object, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                status = self.server.ping(timeout=2).status
            except OSError as error:
                status = type(error).__name__
            self.results.append((status, time.monotonic() - start))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)
