"""The real local endpoint under faults (issue 24): a request that would stall a worker, a `serve` that is killed or
hung up, `make batch-local` killed, a model whose weights do not fit its config. Each ends one documented way and
leaves no server, no bound port and no run directory behind."""
from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from PIL import Image

import serving_data
from mms_server import REPO_ROOT, mms_missing, start_server

pytestmark = pytest.mark.skipif(bool(mms_missing()), reason=f"not installed: {mms_missing()}")
ONE_WORKER = {"SAGEMAKER_MODEL_SERVER_WORKERS": "1", "CLASSIFIER_THREADS_PER_WORKER": "1"}


def json_request(images: list[bytes]) -> bytes:
    return json.dumps({"instances": [{"b64": base64.b64encode(image).decode()} for image in images]}).encode()


def jpeg(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 150)).save(buffer, format="JPEG", quality=50)
    return buffer.getvalue()


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def gone(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running (a zombie is gone: nothing runs, nothing is bound)."""
    left = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                left.append(process)
        except psutil.NoSuchProcess:
            pass
    return left


def wait_until_gone(processes: list[psutil.Process], port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (gone(processes) or not port_is_free(port)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert gone(processes) == [], [p.cmdline()[:3] for p in gone(processes)]
    assert port_is_free(port)


def run_dirs(processes: list[psutil.Process]) -> set[Path]:
    """The servers' private run directories (nginx's -p)."""
    found = set()
    for process in processes:
        try:
            found.update(Path(arg) for arg in process.cmdline() if re.fullmatch(r"/\S*/classifier-serve-[^/]+", arg))
        except psutil.Error:
            pass
    return found


# --- 1. a request's decoded pixels --------------------------------------------------------------------------------
def test_a_request_that_would_decode_too_many_pixels_is_refused_before_decoding(server, test_images):
    """The probe's request: 32 small-on-the-wire PNGs of 36 M pixels each, each under the per-image limit, held a
    worker for seconds. The budget is checked from the headers: a 413 that names it, nothing decoded."""
    bomb = serving_data.png_bomb(6000, 6000)
    body = json_request([bomb] * 32)
    assert len(body) < 2 * 1024 * 1024
    response = server.invoke(body, "application/json")
    assert response.status == 413, response.body[:300]
    error = response.json()
    assert error["code"] == 413
    assert "32 image(s) (6000x6000, 6000x6000, 6000x6000, 6000x6000, ...)" in error["message"]
    assert "1,152,000,000 pixels" in error["message"]
    assert "100,000,000 (CLASSIFIER_MAX_REQUEST_PIXELS)" in error["message"]
    # A JPEG counts at the scale it is decoded at: 32 photos of 6 M pixels are decoded at 1/8, far below the budget.
    photos = server.invoke(json_request([jpeg(3000, 2000)] * 32), "application/json")
    assert photos.status == 200 and len(photos.json()["predictions"]) == 32
    # Within the budget, the same PNGs are served.
    assert server.invoke(json_request([bomb] * 2), "application/json").status == 200
    assert server.invoke(serving_data.encode(test_images[0][0])).status == 200


# --- 2. nothing outlives serve ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("signum, code", [(signal.SIGKILL, -signal.SIGKILL), (signal.SIGHUP, 129), (signal.SIGTERM, 0)])
def test_a_killed_or_hung_up_serve_leaves_no_server(artifact_dir, tmp_path, signum, code):
    """`make serve-local`'s serve process killed outright, or its terminal closed, or stopped (docker stop): nginx,
    MMS's Java front end and its Python workers stop, the port is free and the run directory is removed."""
    server = start_server(artifact_dir, tmp_path / "server", env=ONE_WORKER)
    try:
        servers = server.server_processes()
        assert {p.name() for p in servers} >= {"nginx", "java"}, servers
        assert any("model_service_worker" in " ".join(p.cmdline()) for p in servers)
        private = run_dirs(servers)
        assert len(private) == 1 and next(iter(private)).is_dir()
        os.kill(server.process.pid, signum)
        assert server.process.wait(timeout=60) == code
        wait_until_gone(servers, server.port)
        assert not next(iter(private)).exists()
    finally:
        server.stop()


def test_killed_batch_local_leaves_no_endpoint(artifact_dir, test_images, tmp_path):
    """SIGKILL to `make batch-local` while its endpoint serves: the endpoint (serve, nginx, MMS, workers) stops."""
    data = tmp_path / "images"
    data.mkdir()
    pictures, _ = test_images
    for number in range(400):  # enough that it is still sending when it is killed
        (data / f"{number:03d}.jpg").write_bytes(serving_data.encode(pictures[number % len(pictures)]))
    env = {**os.environ, **ONE_WORKER}
    batch = subprocess.Popen([sys.executable, "-m", "scripts.local.batch", "--data", str(data), "--model",
                              str(artifact_dir), "--out", str(tmp_path / "out"), "--concurrency", "1"],
                             cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        port = None
        while not (tmp_path / "out").is_dir():  # made once the endpoint answers
            assert batch.poll() is None and time.monotonic() < deadline, batch.stdout.read()
            time.sleep(0.2)
        endpoint = psutil.Process(batch.pid).children(recursive=True)
        for process in endpoint:
            for connection in process.net_connections(kind="tcp"):
                if connection.status == psutil.CONN_LISTEN and process.name() == "nginx":
                    port = connection.laddr.port
        assert port and {p.name() for p in endpoint} >= {"nginx", "java"}, endpoint
        batch.kill()
        batch.wait(timeout=30)
        wait_until_gone(endpoint, port)
    finally:
        if batch.poll() is None:
            batch.kill()
        batch.stdout.close()


# --- 6. a model whose weights do not fit its config -----------------------------------------------------------------
@pytest.fixture
def misfit_model(artifact_dir, tmp_path) -> Path:
    """The artifact's weights under a config with one class more: the head does not fit."""
    model = tmp_path / "misfit"
    model.mkdir()
    config = json.loads((artifact_dir / "model_config.json").read_text())
    config["classes"].append("Extra")
    (model / "model_config.json").write_text(json.dumps(config))
    (model / "model.pth").write_bytes((artifact_dir / "model.pth").read_bytes())
    return model


def test_serve_stops_with_the_cause_when_the_model_cannot_load(misfit_model, tmp_path):
    """The workers find the weights do not fit: serve says why and exits 1 instead of MMS restarting workers
    forever while /ping says 503 and /invocations never answers; nothing is left running; /ping was never 200."""
    server = start_server(misfit_model, tmp_path / "server", env=ONE_WORKER, wait=False)
    try:
        statuses, servers = set(), []
        deadline = time.monotonic() + 180
        while server.process.poll() is None:
            assert time.monotonic() < deadline, server.log_text()[-3000:]
            servers = servers or server.server_processes()
            try:
                statuses.add(server.ping().status)
            except OSError:
                pass
            time.sleep(0.2)
        assert server.process.returncode == 1
        assert 200 not in statuses, statuses
        [line] = [line for line in server.log_text().splitlines() if line.startswith("serve: error: ")]
        assert "the model cannot be loaded" in line and "does not match architecture efficientnet_lite0 with 5 " \
               "classes: size mismatch for" in line, line
        wait_until_gone(servers, server.port)
    finally:
        server.stop()


def test_batch_local_fails_fast_with_the_cause(misfit_model, tmp_path, capsys):
    from scripts.local import batch

    data = tmp_path / "images"
    data.mkdir()
    (data / "a.jpg").write_bytes(jpeg(80, 90))
    assert batch.main(["--data", str(data), "--model", str(misfit_model), "--out", str(tmp_path / "out")]) == 1
    [error] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert re.match(r"error: the local endpoint exited with 1 after \d+ s: serve: error: the model cannot be loaded: "
                    r".* does not match architecture", error), error
    assert not (tmp_path / "out").exists()
