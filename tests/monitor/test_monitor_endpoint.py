"""End to end on this machine, as on SageMaker: a real local training job writes the monitor's baseline beside its
model; the real local endpoint (nginx + MMS + our handler, started as `make serve-local CAPTURE=<dir>` starts it)
captures what it is sent in SageMaker's format, its event ids those of its request log; the monitor finds no drift
in the held-out test images and drift in the same images darkened."""
from __future__ import annotations

import base64
import io
import json
import time
from datetime import datetime, timezone

import pytest
from PIL import Image, ImageEnhance

import browser
from classifier.monitoring.baseline import BASELINE_FILE, Baseline
from scripts.invoke import invoke_url
from scripts.monitor import analysis, capture_data, monitor_cli, monitor_report


def darkened(data: bytes) -> bytes:
    image = ImageEnhance.Brightness(Image.open(io.BytesIO(data)).convert("RGB")).enhance(0.5)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def next_second() -> datetime:
    """Wait for the next whole second and return it: inferenceTime has a second's resolution."""
    moment = datetime.fromtimestamp(int(time.time()) + 1, timezone.utc)
    time.sleep(max(0.0, moment.timestamp() - time.time()) + 0.05)
    return moment


@pytest.fixture(scope="module")
def session(trained_job, image_set, tmp_path_factory):
    """The endpoint with data capture on (every request): the test images one request each, then a JSON request of
    two, a request that is not an image, then the test images darkened. Returns the windows and the paths."""
    from serving.mms_server import mms_missing, start_server

    if mms_missing():
        pytest.skip(f"not installed: {mms_missing()}")
    capture = tmp_path_factory.mktemp("capture")
    server = start_server(trained_job / "model", tmp_path_factory.mktemp("capturing-endpoint"), env={
        "SAGEMAKER_MODEL_SERVER_WORKERS": "1", "CLASSIFIER_THREADS_PER_WORKER": "1",
        "CLASSIFIER_CAPTURE_DIR": str(capture), "CLASSIFIER_CAPTURE_PERCENT": "100",
        "CLASSIFIER_CAPTURE_ENDPOINT": "test-endpoint"})
    images = [path.read_bytes() for path in sorted((image_set / "test").rglob("*")) if path.is_file()]
    try:
        start = next_second()
        for data in images:
            assert invoke_url(server.url, data, "image/jpeg", None).status == 200
        body = json.dumps({"instances": [{"b64": base64.b64encode(d).decode()} for d in images[:2]]}).encode()
        assert invoke_url(server.url, body, "application/json", None).status == 200
        assert invoke_url(server.url, b"plain text", "text/plain", None).status == 415
        middle = next_second()
        for data in images:
            assert invoke_url(server.url, darkened(data), "image/jpeg", None).status == 200
        end = next_second()
        time.sleep(1.0)  # the writer thread's last flush
        log = server.work_dir / "base" / "logs" / "mms_log.log"
        yield {"capture": capture, "start": start, "middle": middle, "end": end, "images": len(images),
               "log": log, "model": trained_job / "model", "records": server.request_log()}
    finally:
        server.stop()


def test_the_training_job_wrote_the_baseline(trained_job, image_set):
    baseline = Baseline.load(trained_job / "model")
    valid = [path for path in (image_set / "valid").rglob("*") if path.is_file()]
    assert baseline.source == f"valid channel: {len(valid)} of {len(valid)} images"
    assert baseline.embeddings.shape == (len(valid), 32) and len(baseline.top1) == len(valid)
    assert baseline.stats["width"].min() == 40 and baseline.stats["greyscale"].all()  # the image set's 40 px greys
    log = (trained_job / "job.log").read_text()
    assert "Monitor baseline: valid channel" in log and "features from the feature pass" in log
    assert (trained_job / "model" / BASELINE_FILE).stat().st_size < 1024 * 1024


def test_the_endpoint_captures_in_sagemakers_format_with_its_request_ids(session):
    found = capture_data.read(session["capture"])
    assert (found.endpoint, found.variant, found.problems) == ("test-endpoint", "AllTraffic", [])
    assert len(found.requests) == 2 * session["images"] + 2
    logged = {record["request_id"]: record for record in session["records"]}
    for request in found.requests:
        assert request.event_id in logged  # the capture joins the request log (latency, status)
    statuses = [logged[r.event_id]["status"] for r in found.requests]
    assert statuses.count(415) == 1 and statuses.count(200) == len(statuses) - 1
    answer = json.loads(found.requests[0].response)
    assert answer["predictions"][0]["classes"][0]["name"]


def test_no_drift_in_the_test_images_and_drift_in_them_darkened(session, tmp_path):
    plain = analysis.analyse(capture_data.read(session["capture"], session["start"], session["middle"]),
                             session["model"])
    assert len(plain.images) == session["images"] + 2 and len(plain.health.not_images) == 1
    assert plain.health.agreement == 1.0  # the endpoint's answers are the monitor's own
    assert plain.decided and not plain.drift, [(c.name, c.p_value) for c in plain.checks]
    shifted = analysis.analyse(capture_data.read(session["capture"], session["middle"], session["end"]),
                               session["model"])
    assert shifted.drift and next(c for c in shifted.checks if c.name == "image_statistics").drift
    for result, name in ((plain, "plain"), (shifted, "darkened")):
        page, summary = monitor_report.write(result, tmp_path / name / "monitor-report.html", name)
        assert json.loads(summary.read_text())["drift"] is (name == "darkened")
        browser.check_page(page, tmp_path / name, plots=6)


def test_make_monitor_report_with_the_endpoint_log(session, tmp_path, capsys):
    out = tmp_path / "all" / "monitor-report.html"
    assert monitor_cli.main(["--capture", str(session["capture"]), "--model", str(session["model"]),
                             "--log", str(session["log"]), "--out", str(out)]) == 0
    summary = json.loads(out.with_name("monitor.json").read_text())
    assert summary["drift"] is True and summary["capture"]["endpoint"] == "test-endpoint"
    latency = summary["health"]["latency_ms"]["ModelLatency"]
    assert 0 < latency["p50"] <= latency["p99"]
    assert "Drift:" in capsys.readouterr().out
