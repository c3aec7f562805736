"""scripts/invoke.py (local URL and SageMaker, same output) and scripts/endpoint_stats.py."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import time

import pytest

import serving_data
from mms_server import REPO_ROOT, mms_missing
from scripts import endpoint_stats, invoke  # these also run as files: python scripts/invoke.py

needs_server = pytest.mark.skipif(bool(mms_missing()), reason=f"not installed: {mms_missing()}")


@pytest.fixture(scope="module")
def image_files(tmp_path_factory, test_images):
    folder = tmp_path_factory.mktemp("images")
    images, labels = test_images
    paths = []
    for n, index in enumerate((0, len(images) // 2)):
        path = folder / (f"image{n}.jpg" if n == 0 else f"image{n}.png")
        path.write_bytes(serving_data.encode(images[index], "JPEG" if n == 0 else "PNG", size=100))
        paths.append((path, serving_data.CLASSES[labels[index]]))
    return paths


def run_invoke(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "invoke.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


@needs_server
def test_invoke_local_endpoint(server, image_files):
    (first, label), (second, second_label) = image_files
    result = run_invoke("--url", server.url, first)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == str(first) and len(lines) == 4 and lines[1].split()[1] == label
    several = run_invoke("--url", server.url, "--top-k", "2", first, second)
    assert several.returncode == 0, several.stderr
    assert [line.split()[1] for line in several.stdout.splitlines() if line.startswith("  1.")] == [label, second_label]
    raw = run_invoke("--url", server.url, "--json", first)
    assert json.loads(raw.stdout)["predictions"][0]["classes"][0]["name"] == label


@needs_server
def test_invoke_reports_endpoint_errors(server, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    result = run_invoke("--url", server.url, bad)
    assert result.returncode == 1
    assert result.stderr.startswith("error 400: the image could not be decoded")


def test_invoke_unreachable_endpoint(image_files):
    result = run_invoke("--url", "http://127.0.0.1:9", image_files[0][0])
    assert result.returncode == 1 and "cannot reach" in result.stderr


class FakeStreamingBody(io.BytesIO):
    pass


def sagemaker_client(response_body: bytes, expected: dict):
    """A real boto3 sagemaker-runtime client with its HTTP replaced by botocore's Stubber."""
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("sagemaker-runtime", region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    stubber = Stubber(client)
    stubber.add_response("invoke_endpoint",
                         {"Body": FakeStreamingBody(response_body), "ContentType": "application/json"}, expected)
    stubber.activate()
    return client


@needs_server
def test_sagemaker_and_local_give_the_same_output(server, image_files):
    (first, _), _ = image_files
    body, content_type = invoke.build_request([first])
    local_answer = invoke.invoke_url(server.url, body, content_type, "top_k=2")
    client = sagemaker_client(local_answer.body, {"EndpointName": "classifier", "Body": body,
                                                  "ContentType": content_type, "Accept": "application/json",
                                                  "CustomAttributes": "top_k=2"})
    remote_answer = invoke.invoke_sagemaker("classifier", body, content_type, "top_k=2", client=client)
    assert invoke.format_answer(remote_answer, [str(first)]) == invoke.format_answer(local_answer, [str(first)])
    assert invoke.format_answer(local_answer, [str(first)])[1]


def test_sagemaker_model_error_is_shown_like_a_local_one():
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("sagemaker-runtime", region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    container_body = json.dumps({"code": 415, "type": "UnsupportedMediaType",
                                 "message": "Content-Type 'text/plain' is not supported"})
    with Stubber(client) as stubber:
        stubber.add_client_error("invoke_endpoint", service_error_code="ModelError",
                                 service_message="Received client error (415)",
                                 http_status_code=424, response_meta={},
                                 modeled_fields={"OriginalStatusCode": 415, "OriginalMessage": container_body})
        answer = invoke.invoke_sagemaker("classifier", b"hi", "text/plain", None, client=client)
    local = invoke.Answer(415, container_body.encode())
    assert invoke.format_answer(answer, ["x"]) == invoke.format_answer(local, ["x"])
    assert invoke.format_answer(answer, ["x"]) == ("error 415: Content-Type 'text/plain' is not supported", False)


def test_endpoint_stats_summary(tmp_path):
    lines = ["2026-01-01 [INFO ] W-9000-model-stdout WorkerLifeCycle - some other line"]
    for n in range(100):
        when = f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}+00:00"
        lines.append("2026-01-01T00:00:00,000 [INFO ] W-9000-model-stdout com.amazonaws.ml.mms.wlm.WorkerLifeCycle - "
                     "INVOCATION " + json.dumps({"time": when, "status": 200, "images": 1,
                                                 "ModelLatency": (n + 1) * 1000, "OverheadLatency": 500}))
    for status in (400, 400, 415, 413):
        lines.append("INVOCATION " + json.dumps({"time": "2026-01-01T00:02:00+00:00", "status": status, "images": 0,
                                                 "ModelLatency": 0, "OverheadLatency": 100}))
    lines.append("INVOCATION {broken json")
    twice = "INVOCATION " + json.dumps({"request_id": "r-1", "status": 200, "images": 1, "ModelLatency": 50_000,
                                        "OverheadLatency": 500})
    lines += [twice, twice]  # mms_log.log has every line twice; the request counts once
    log = tmp_path / "mms_log.log"
    log.write_text("\n".join(lines) + "\n")
    summary = endpoint_stats.summarise(endpoint_stats.parse_records(log.read_text().splitlines()))
    assert summary["requests"] == 105 and summary["ok"] == 101 and summary["errors"] == 4
    assert summary["errors_by_status"] == {"400": 2, "413": 1, "415": 1}
    assert summary["latency_us"]["ModelLatency"] == {"p50": 50_000, "p90": 90_000, "p99": 99_000}
    assert summary["latency_us"]["TotalLatency"]["p50"] == 50_500
    result = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "endpoint_stats.py"), str(log)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "requests 105  ok 101  errors 4" in result.stdout and "400: 2, 413: 1, 415: 1" in result.stdout
    assert "ModelLatency" in result.stdout and "50.0" in result.stdout


def test_endpoint_stats_tag_matches_the_handler():
    from classifier.serving.handler_service import REQUEST_LOG_TAG

    assert endpoint_stats.TAG == REQUEST_LOG_TAG + " "


@needs_server
def test_endpoint_stats_on_the_server_log(server, image_files):
    body = image_files[0][0].read_bytes()
    for _ in range(3):
        assert server.invoke(body).status == 200
    deadline = time.monotonic() + 10
    while len(server.request_log()) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    log = server.work_dir / "base" / "logs" / "mms_log.log"
    deadline = time.monotonic() + 10
    while True:  # mms_log.log has each line twice, the server's stdout once: the same count of requests
        result = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "endpoint_stats.py"), "--json", str(log)],
                                capture_output=True, text=True, timeout=60)
        summary = json.loads(result.stdout)
        if summary["requests"] == len(server.request_log()) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert summary["requests"] == len(server.request_log())
    assert summary["ok"] >= 3
    assert summary["latency_us"]["ModelLatency"]["p50"] > 0
