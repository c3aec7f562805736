"""nginx in front of multi-model-server (MMS), started, watched and stopped for `serve`: the pattern of the
SageMaker BYOC examples' `serve` (write the servers' configs, start them, wait, pass SIGTERM on).

- nginx holds the public port (8080) and passes on only what SageMaker sends, GET /ping and
  POST /invocations; other methods there get 405, other paths 404, with JSON bodies like the handler's.
- MMS listens on a free port of 127.0.0.1 for inference, and has its management API (register, scale and
  unregister models) on a unix socket in a private directory: on the public port, any client could unload
  the model.
- `mms.properties` is written here whole (MMS's MMS_* environment variables are not read): workers,
  response timeout, body limit, the handler service and the /ping plugin.
- nginx, MMS's Java front end and the Python workers it starts share one process group of their own, led
  by a guard (guard.py) that stops the whole group when `serve` closes its lifeline or dies, SIGKILL
  included. SIGTERM, SIGINT or SIGHUP to `serve` stops the servers that way; so does either server
  exiting (MMS's front end leaves its Python workers behind), and a worker that finds the model cannot be
  loaded (the reason in `LOAD_FAILURE_ENV`'s file): then `serve` says why and returns 1.
- What the servers write besides MMS's logs (configs, pid files, sockets) goes to a fresh private
  directory, removed at the end, so several servers can run side by side on one machine.
"""
from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .settings import LOAD_FAILURE_ENV, MAX_MMS_PORT

MODEL_NAME = "model"  # the one model MMS serves; /invocations goes to it
# What stops `serve` (and so the servers): SIGTERM (docker stop, SageMaker), SIGINT (Ctrl-C), SIGHUP (the
# terminal of `make serve-local` closed).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
SBIN = ("/usr/sbin", "/sbin")  # nginx lives there, often outside a user's PATH


@dataclass(frozen=True)
class ServerConfig:
    model_dir: Path
    host: str  # where nginx listens: 0.0.0.0 in a container, 127.0.0.1 for a local endpoint
    port: int  # SAGEMAKER_BIND_TO_PORT
    workers: int
    max_request_size: int  # bytes nginx and MMS accept
    response_timeout_s: int  # MMS restarts a worker whose request takes longer; nginx waits a little longer
    handler_service: str
    plugins_path: Path
    vmargs: str = ""


class LaunchError(RuntimeError):
    pass


def free_port() -> int:
    """A free 127.0.0.1 port that MMS accepts: it refuses 32767 and above, where the kernel's ephemeral
    ports are (so port 0 cannot be used)."""
    for port in random.Random().sample(range(20000, min(32000, MAX_MMS_PORT)), 200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 32000")


def mms_properties(config: ServerConfig, mms_port: int, management_socket: Path) -> str:
    lines = {
        "inference_address": f"http://127.0.0.1:{mms_port}",
        "management_address": f"unix:{management_socket}",
        "use_native_io": "true",  # unix sockets need it
        "enable_envvars_config": "false",
        "decode_input_request": "false",
        "default_service_handler": config.handler_service,
        "default_workers_per_model": config.workers,
        "default_response_timeout": math.ceil(config.response_timeout_s / 60),  # minutes
        "default_response_timeout_seconds": config.response_timeout_s,
        "max_request_size": config.max_request_size,
        "plugins_path": config.plugins_path,
        "vmargs": config.vmargs,
    }
    text = "".join(f"{key}={value}\n" for key, value in lines.items() if value != "")
    return "# multi-model-server configuration, written by classifier.serving.launcher\n" + text


def _error_json(code: int, kind: str, message: str) -> str:
    """A JSON error body for nginx's `return` (the handler's shape: code, type, message), single-quoted."""
    body = json.dumps({"code": code, "type": kind, "message": message})
    if "'" in body or "\\" in body:
        raise ValueError(f"cannot quote {body} for nginx")
    return f"'{body}'"


# nginx's own errors (a malformed request, a header too large, no answer from MMS): the JSON shape of the
# handler's, with nginx's status. 502 (MMS not running: starting, or gone) is said as 503, as /ping says it.
NGINX_ERRORS = {
    400: ("BadRequest", "the request is malformed"),
    404: ("NotFound", "only GET /ping and POST /invocations are served here"),
    408: ("RequestTimeout", "the request was not received in time"),
    411: ("LengthRequired", "the request needs a Content-Length"),
    414: ("URITooLong", "the request line is too long"),
    494: ("RequestHeaderTooLarge", "a request header is too large"),
    500: ("InternalServerError", "the front end failed"),
    501: ("NotImplemented", "the transfer encoding of the request is not supported"),
    502: ("ServiceUnavailable", "the model server is not running"),
    504: ("GatewayTimeout", "the model server did not answer in time"),
    505: ("HTTPVersionNotSupported", "the HTTP version is not supported"),
}
# What nginx answers with (494 is nginx's own code for a client error: the client gets 400).
NGINX_SENT_AS = {494: 400, 502: 503}
ERROR_PREFIX = "/.nginx-error/"  # the internal locations of those answers


def nginx_conf(config: ServerConfig, mms_port: int, run_dir: Path) -> str:
    """nginx in front of MMS. Only the exact request targets `/ping` and `/invocations` reach MMS: nginx picks
    a location on the decoded, normalised path (`/predictions/model/..%2F..%2Fping` is `/ping` to it) but
    passes the target on as the client wrote it, which MMS would route by its own rules; so each location
    also checks the raw target ($request_uri), and anything else (encodings, dot segments, path parameters,
    a query string) is a 404."""
    size = config.max_request_size
    not_allowed = "{method} is not allowed on {path}: it only answers {allowed}"
    not_found = _error_json(404, "NotFound", "only GET /ping and POST /invocations are served here")
    # Error pages by URI, not named locations: nginx cannot redirect to a named one before it has a request
    # line (a malformed one, say) and would answer its own HTML 500.
    error_pages = "\n".join(
        f"        error_page {code} ={NGINX_SENT_AS.get(code, code)} {ERROR_PREFIX}{code};" for code in NGINX_ERRORS)
    error_locations = "\n".join(
        f"        location = {ERROR_PREFIX}{code} {{ internal; return {NGINX_SENT_AS.get(code, code)} "
        f"{_error_json(NGINX_SENT_AS.get(code, code), kind, message)}; }}"
        for code, (kind, message) in NGINX_ERRORS.items())
    return f"""# nginx in front of multi-model-server, written by classifier.serving.launcher
daemon off;
worker_processes 1;
pid {run_dir}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;  # MMS logs every request, the handler writes one INVOCATION line each
    server_tokens off;
    keepalive_requests 100000;  # a client's keep-alive connection lasts (nginx's default closes it after 1000)
    default_type application/json;
    # Bodies stream to MMS from memory: nothing is written to these temporary folders.
    client_max_body_size {size};
    client_body_buffer_size {size};
    proxy_request_buffering off;
    proxy_buffering off;
    client_body_temp_path {run_dir}/nginx-body;
    proxy_temp_path {run_dir}/nginx-proxy;
    fastcgi_temp_path {run_dir}/nginx-fastcgi;
    uwsgi_temp_path {run_dir}/nginx-uwsgi;
    scgi_temp_path {run_dir}/nginx-scgi;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_read_timeout {config.response_timeout_s + 10}s;
    proxy_send_timeout {config.response_timeout_s + 10}s;
    upstream mms {{
        server 127.0.0.1:{mms_port};
        keepalive 64;
    }}
    server {{
        listen {config.host}:{config.port} default_server;
{error_pages}
        location = /ping {{
            if ($request_uri != "/ping") {{
                return 404 {not_found};
            }}
            if ($request_method != GET) {{
                add_header Allow GET always;
                return 405 {_error_json(405, "MethodNotAllowed", not_allowed.format(
                    method="$request_method", path="/ping", allowed="GET"))};
            }}
            proxy_pass http://mms;
        }}
        location = /invocations {{
            if ($request_uri != "/invocations") {{
                return 404 {not_found};
            }}
            if ($request_method != POST) {{
                add_header Allow POST always;
                return 405 {_error_json(405, "MethodNotAllowed", not_allowed.format(
                    method="$request_method", path="/invocations", allowed="POST"))};
            }}
            proxy_pass http://mms;
        }}
        location / {{
            return 404 {not_found};
        }}
        error_page 413 @too_large;
        location @too_large {{
            return 413 {_error_json(413, "PayloadTooLarge", f"the body is over {size} bytes")};
        }}
{error_locations}
    }}
}}
"""


def find_program(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))
    if not found:
        hint = "the Debian package nginx" if name == "nginx" else "multi-model-server (pip) and a Java runtime"
        raise LaunchError(f"{name} not found on PATH or in {', '.join(SBIN)}: install {hint} (`make setup` does)")
    return found


def private_run_dir() -> Path:
    """A new mode-0700 directory with a short path (unix socket paths are limited to 107 bytes)."""
    parent = tempfile.gettempdir()
    if len(parent) > 60:
        parent = "/tmp"
    return Path(tempfile.mkdtemp(prefix="classifier-serve-", dir=parent))


def run(config: ServerConfig, env=None) -> int:
    """Start nginx and MMS, wait until either exits, a worker finds the model unloadable or `serve` is asked
    to stop (SIGTERM, SIGINT, SIGHUP); stop the rest; the exit code."""
    env = dict(os.environ if env is None else env)
    nginx, mms_cli = find_program("nginx"), find_program("multi-model-server")
    run_dir = private_run_dir()
    stop_signals: list[int] = []
    lifeline: list = []  # the guard's standard input, once started: closing it stops the servers

    def on_signal(signum, frame):
        stop_signals.append(signum)
        for pipe in lifeline:
            pipe.close()

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    load_failure = run_dir / "model-load-failure"
    failure = None
    try:
        mms_port = free_port()
        management = run_dir / "management.sock"
        (run_dir / "mms.properties").write_text(mms_properties(config, mms_port, management))
        (run_dir / "nginx.conf").write_text(nginx_conf(config, mms_port, run_dir))
        env["TEMP"] = env["TMPDIR"] = str(run_dir)  # java.io.tmpdir (worker sockets); the MMS CLI's pid file
        env[LOAD_FAILURE_ENV] = str(load_failure)  # MMS passes its environment on to the workers
        # First the guard, leading the process group the servers join: from then on they cannot outlive
        # this process, whatever ends it (guard.py).
        guard = subprocess.Popen([sys.executable, "-m", "classifier.serving.guard", str(run_dir)], env=env,
                                 stdin=subprocess.PIPE, process_group=0)
        lifeline.append(guard.stdin)
        log_config = resources.files("sagemaker_inference") / "etc" / "log4j2.xml"  # the toolkit's logging
        mms = subprocess.Popen(
            [mms_cli, "--start", "--foreground", "--mms-config", str(run_dir / "mms.properties"),
             "--log-config", str(log_config), "--model-store", "/", "--models", f"{MODEL_NAME}={config.model_dir}"],
            env=env, process_group=guard.pid)
        front = subprocess.Popen([nginx, "-e", "stderr", "-p", str(run_dir), "-c", str(run_dir / "nginx.conf")],
                                 env=env, process_group=guard.pid)
        print(f"serve: nginx on {config.host}:{config.port} (GET /ping, POST /invocations) -> MMS on "
              f"127.0.0.1:{mms_port}; MMS management API on the unix socket {management}", flush=True)
        servers = {"multi-model-server": mms, "nginx": front}
        while not stop_signals and all(process.poll() is None for process in servers.values()):
            if load_failure.is_file():
                failure = " ".join(load_failure.read_text(errors="replace").split())  # one line
                print(f"serve: error: the model cannot be loaded: {failure}; stopping the servers", file=sys.stderr,
                      flush=True)
                break
            time.sleep(0.2)
        if not stop_signals and failure is None:
            for name, process in servers.items():
                if process.returncode is not None:
                    print(f"serve: error: {name} exited with {process.returncode}; stopping the rest", file=sys.stderr,
                          flush=True)
        guard.stdin.close()  # the guard stops the group (SIGTERM, then SIGKILL) and removes run_dir
        guard.wait()
        for process in servers.values():
            process.wait()
    finally:
        for pipe in lifeline:
            pipe.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(run_dir, ignore_errors=True)
    if stop_signals and failure is None:
        return {signal.SIGINT: 130, signal.SIGHUP: 129}.get(stop_signals[0], 0)
    return 1
