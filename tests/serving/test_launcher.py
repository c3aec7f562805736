"""The configs `serve` writes for nginx and multi-model-server (the servers themselves: test_endpoint.py)."""
from __future__ import annotations

import http.server
import json
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from classifier.serving import launcher
from mms_server import mms_missing


def config(**changes) -> launcher.ServerConfig:
    values = dict(model_dir=Path("/opt/ml/model"), host="0.0.0.0", port=8080, workers=3,
                  max_request_size=4 * 6 * 1024 * 1024, response_timeout_s=3600,
                  handler_service="classifier.serving.handler_service", plugins_path=Path("/opt/plugins/abc"),
                  vmargs="-XX:-UseContainerSupport")
    values.update(changes)
    return launcher.ServerConfig(**values)


def properties(text: str) -> dict:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_mms_gets_a_private_management_socket_and_a_loopback_inference_port(tmp_path):
    props = properties(launcher.mms_properties(config(), 21000, tmp_path / "management.sock"))
    assert props["management_address"] == f"unix:{tmp_path / 'management.sock'}"
    assert props["inference_address"] == "http://127.0.0.1:21000"
    assert props["enable_envvars_config"] == "false"  # no MMS_MANAGEMENT_ADDRESS from the environment
    assert props["default_workers_per_model"] == "3"
    assert props["default_response_timeout_seconds"] == "3600" and props["default_response_timeout"] == "60"
    assert props["max_request_size"] == str(24 * 1024 * 1024)
    assert props["plugins_path"] == "/opt/plugins/abc"
    assert props["default_service_handler"] == "classifier.serving.handler_service"


@pytest.mark.skipif("nginx" in mms_missing(), reason="nginx is not installed")
@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
def test_nginx_accepts_the_config(tmp_path, host):
    nginx = launcher.find_program("nginx")
    conf = tmp_path / "nginx.conf"
    conf.write_text(launcher.nginx_conf(config(host=host, port=28080), 21000, tmp_path))
    result = subprocess.run([nginx, "-t", "-e", "stderr", "-p", str(tmp_path), "-c", str(conf)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


def test_nginx_serves_only_ping_and_invocations():
    text = launcher.nginx_conf(config(), 21000, Path("/run/x"))
    locations = [line.split("location", 1)[1].split("{")[0].strip()
                 for line in text.splitlines() if "location " in line]
    assert locations[:4] == ["= /ping", "= /invocations", "/", "@too_large"]
    assert locations[4:] == [f"= {launcher.ERROR_PREFIX}{code}" for code in launcher.NGINX_ERRORS]
    assert text.count("proxy_pass http://mms;") == 2
    assert "listen 0.0.0.0:8080 default_server;" in text


# --- the real nginx in front of a stand-in for MMS that records what reaches it -------------------------------
class Recorder(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list = []

    def answer(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.seen.append((self.command, self.path))
        body = b'{"status": "Healthy"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = answer

    def log_message(self, *args):
        pass


@pytest.fixture
def front(tmp_path):
    """nginx with serve's config in front of a recording stand-in for MMS; `front.down()`: no upstream at all."""
    if "nginx" in mms_missing():
        pytest.skip("nginx is not installed")
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", launcher.free_port()), Recorder)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    Recorder.seen = []
    started = []

    def start(mms_port: int):
        port = launcher.free_port()
        run_dir = tmp_path / f"run-{len(started)}"
        run_dir.mkdir()
        (run_dir / "nginx.conf").write_text(launcher.nginx_conf(config(host="127.0.0.1", port=port,
                                                                       max_request_size=1000), mms_port, run_dir))
        process = subprocess.Popen([launcher.find_program("nginx"), "-e", "stderr", "-p", str(run_dir), "-c",
                                    str(run_dir / "nginx.conf")], stderr=subprocess.DEVNULL)
        started.append(process)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return port
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, "nginx did not start"
                time.sleep(0.05)

    class Front:
        port = None

        def send(self, raw: bytes, port: int | None = None) -> tuple[int, dict]:
            """A raw request; (status, JSON body)."""
            with socket.create_connection(("127.0.0.1", port or self.port), timeout=10) as sock:
                sock.sendall(raw)
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            assert b"content-type: application/json" in head.lower(), data[:500]
            return int(head.split()[1]), json.loads(body)

        def down(self) -> int:
            return start(launcher.free_port())  # nothing listens there: MMS not started yet, or gone

    Front.port = start(upstream.server_address[1])
    try:
        yield Front()
    finally:
        for process in started:
            process.terminate()
            process.wait(timeout=30)
        upstream.shutdown()
        upstream.server_close()


# Targets nginx maps to /ping or /invocations once decoded and normalised, which MMS would route by their raw form
# (`..%2F..%2Fping` from /predictions/model/ reached MMS's own inference route).
DISGUISED = ["/predictions/model/..%2F..%2Fping", "/predictions/model/..%2F..%2Finvocations",
             "/predictions/model/%2E%2E/%2E%2E/ping", "/predictions/model/..%252F..%252Fping", "/x/../ping",
             "/%70ing", "/invocation%73", "/./invocations", "//ping", "/ping;jsessionid=1", "/invocations;x=..%2F",
             "/ping?model=x", "/invocations?x=/../predictions/model", "/ping/", "/INVOCATIONS", "/ping%00"]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_only_the_exact_ping_and_invocations_reach_mms(front, method):
    for target in DISGUISED:
        status, body = front.send(f"{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                                  f"Content-Length: 4\r\nConnection: close\r\n\r\nabcd".encode())
        assert status in (400, 404) and body["code"] == status, (target, body)  # %00: nginx's own 400
    assert Recorder.seen == []
    assert front.send(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0] == 200
    assert front.send(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\n"
                      b"x")[0] == 200
    assert Recorder.seen == [("GET", "/ping"), ("POST", "/invocations")]


@pytest.mark.parametrize("raw, status, kind", [
    (b"GARBAGE\r\n\r\n", 400, "BadRequest"),
    (b"GET /ping HTTP/1.1\r\nConnection: close\r\n\r\n", 400, "BadRequest"),  # no Host
    (b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX: " + b"a" * 20_000 + b"\r\n\r\n", 400,
     "RequestHeaderTooLarge"),
    (b"POST /invocations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip2\r\nConnection: close\r\n\r\n", 501,
     "NotImplemented"),
    (b"GET /ping HTTP/3.0\r\nHost: x\r\nConnection: close\r\n\r\n", 505, "HTTPVersionNotSupported"),
    (b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n", 413,
     "PayloadTooLarge"),
    (f"GET {launcher.ERROR_PREFIX}400 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(), 404, "NotFound"),
])
def test_nginx_own_errors_have_the_json_shape(front, raw, status, kind):
    got, body = front.send(raw)
    assert (got, body["code"], body["type"]) == (status, status, kind), body
    assert body["message"]
    assert Recorder.seen == []


def test_ping_says_503_while_mms_is_not_listening(front):
    """Before MMS has bound its port (or after it died) nginx has no upstream: 503 in the status and the body."""
    port = front.down()
    for request in (b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"):
        status, body = front.send(request, port)
        assert (status, body["code"], body["type"]) == (503, 503, "ServiceUnavailable"), body
