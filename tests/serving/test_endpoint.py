"""The real endpoint: nginx in front of multi-model-server (Java) with the sagemaker-inference handler, started
by `python -m classifier.serving.serve`, on a free port of 127.0.0.1, serving a small trained artifact."""
from __future__ import annotations

import base64
import concurrent.futures
import functools
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import serving_data
from mms_server import CONTAINER_DIR, PingProbe, mms_missing

MIB = 1024 * 1024
pytestmark = pytest.mark.skipif(bool(mms_missing()), reason=f"not installed: {mms_missing()}")


def top1(response) -> str:
    assert response.status == 200, response.body[:500]
    return response.json()["predictions"][0]["classes"][0]["name"]


# --- /ping ----------------------------------------------------------------------------------------
def test_ping_says_503_while_loading_and_200_once_loaded(server):
    statuses = [status for _, status, _ in server.ping_history]
    assert statuses[-1] == 200
    # The port was bound and answered 503 while the workers were still loading the model
    # (MMS's own /ping would have said 200 there).
    assert 503 in statuses, server.ping_history
    assert 200 not in statuses[:-1]
    loading = server.request("GET", "/ping")
    assert loading.status == 200 and loading.json()["status"] == "Healthy"


def test_serve_refuses_to_start_without_a_model(tmp_path):
    (tmp_path / "model").mkdir()
    env = dict(os.environ, SAGEMAKER_BASE_DIR=str(tmp_path), PYTHONPATH=str(CONTAINER_DIR))
    result = subprocess.run([sys.executable, "-m", "classifier.serving.serve", "serve"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "model_config.json is missing" in result.stderr


def test_serve_refuses_a_bad_model_config_before_starting_mms(artifact_dir, tmp_path):
    """The whole config is checked first: exit 1 naming the field, instead of workers failing in a loop."""
    model = tmp_path / "model"
    model.mkdir()
    config = json.loads((artifact_dir / "model_config.json").read_text())
    config["preprocessing"]["image_size"] = 0
    (model / "model_config.json").write_text(json.dumps(config))
    (model / "model.pth").write_bytes((artifact_dir / "model.pth").read_bytes())
    env = dict(os.environ, SAGEMAKER_BASE_DIR=str(tmp_path), PYTHONPATH=str(CONTAINER_DIR))
    process = subprocess.Popen([sys.executable, "-m", "classifier.serving.serve"], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:  # it started a server instead
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 1, stdout + stderr
    assert "preprocessing.image_size is 0; it must be a positive whole number" in stderr
    assert "nginx on" not in stdout  # nothing was started


# --- predictions ----------------------------------------------------------------------------------
def test_predictions_for_held_out_images(server, test_images):
    images, labels = test_images
    correct = sum(top1(server.invoke(serving_data.encode(pixels))) == serving_data.CLASSES[label]
                  for pixels, label in zip(images, labels, strict=True))
    assert correct / len(images) >= 0.9, f"{correct} of {len(images)}"


def test_endpoint_matches_the_in_process_model(server, artifact_dir, test_images):
    """Same preprocessing and forward pass as in-process: the same probabilities."""
    from classifier.serving.inference import model_fn
    from classifier.serving.settings import Settings

    model = model_fn(artifact_dir, settings=Settings.from_env())
    image = serving_data.encode(test_images[0][3])
    expected = model.predict([image])[0]
    response = server.invoke(image, **{"X-Amzn-SageMaker-Custom-Attributes": "top_k=4"}).json()
    for entry in response["predictions"][0]["classes"]:
        assert entry["probability"] == pytest.approx(expected[entry["index"]].item(), abs=1e-5)


@pytest.mark.parametrize("mode, fmt", [("L", "JPEG"), ("RGB", "JPEG"), ("CMYK", "JPEG"), ("RGB", "PNG"),
                                       ("RGBA", "PNG"), ("LA", "PNG"), ("P", "PNG"), ("I;16", "PNG"), ("1", "PNG")])
def test_image_modes(server, test_images, mode, fmt):
    images, labels = test_images
    index = labels.index(serving_data.CLASSES.index("Bag"))
    body = serving_data.encode_mode(images[index], mode, fmt)
    assert top1(server.invoke(body, f"image/{fmt.lower()}")) == "Bag"


@pytest.mark.parametrize("content_type", ["application/x-image", "application/octet-stream", "image/png",
                                          "Image/JPEG; charset=binary"])
def test_image_content_types(server, test_images, content_type):
    body = serving_data.encode(test_images[0][0])
    assert top1(server.invoke(body, content_type)) == serving_data.CLASSES[test_images[1][0]]


def test_json_batch_is_in_order_and_matches_single_requests(server, test_images):
    images, labels = test_images
    chosen = list(range(0, len(images), 3))
    encoded = [serving_data.encode(images[i]) for i in chosen]
    body = json.dumps({"instances": [{"b64": base64.b64encode(e).decode()} for e in encoded]}).encode()
    response = server.invoke(body, "application/json")
    assert response.status == 200
    predictions = response.json()["predictions"]
    assert len(predictions) == len(chosen)
    for image, prediction in zip(encoded, predictions, strict=True):
        single = server.invoke(image).json()["predictions"][0]
        assert [c["index"] for c in prediction["classes"]] == [c["index"] for c in single["classes"]]
        for a, b in zip(prediction["classes"], single["classes"], strict=True):
            assert a["probability"] == pytest.approx(b["probability"], abs=1e-4)


def test_top_k(server, test_images):
    image = serving_data.encode(test_images[0][0])
    default = server.invoke(image).json()["predictions"][0]["classes"]
    assert len(default) == 3
    assert [c["probability"] for c in default] == sorted((c["probability"] for c in default), reverse=True)
    assert set(default[0]) == {"name", "index", "probability"}
    two = server.invoke(image, **{"X-Amzn-SageMaker-Custom-Attributes": "top_k=2"}).json()["predictions"][0]["classes"]
    assert two == default[:2]
    everything = server.invoke(image, **{"X-Amzn-SageMaker-Custom-Attributes": "top_k=1000"})
    classes = everything.json()["predictions"][0]["classes"]
    assert sorted(c["name"] for c in classes) == sorted(serving_data.CLASSES)  # capped at the class count
    assert sum(c["probability"] for c in classes) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("accept", ["application/json", "*/*", "application/*", "text/html, application/json;q=0.8"])
def test_accept_json(server, test_images, accept):
    response = server.invoke(serving_data.encode(test_images[0][0]), Accept=accept)
    assert response.status == 200 and response.headers["content-type"].startswith("application/json")


# --- bad input ------------------------------------------------------------------------------------
def json_body(instances) -> bytes:
    return json.dumps({"instances": instances}).encode()


@functools.lru_cache(maxsize=2)
def bad_requests(image: bytes):
    """(name, body, headers, expected status, words the message must contain)."""
    jpeg = {"Content-Type": "image/jpeg"}
    return [
        ("text/plain", b"hello", {"Content-Type": "text/plain"}, 415, "text/plain' is not supported"),
        ("no content type", image, {}, 415, "no Content-Type is not supported"),
        ("gif", b"GIF89a....", {"Content-Type": "image/gif"}, 415, "not supported"),
        ("empty body", b"", jpeg, 400, "the request body is empty"),
        ("not an image", b"this is not an image", jpeg, 400, "could not be decoded"),
        ("truncated jpeg", image[: len(image) // 2], jpeg, 400, "could not be decoded"),
        ("truncated png", serving_data.encode(serving_data.load_split("test", 1)[0][0], "PNG")[:200],
         {"Content-Type": "image/png"}, 400, "could not be decoded"),
        ("decompression bomb", serving_data.png_bomb(), {"Content-Type": "image/png"}, 400, "too large"),
        ("malformed json", b'{"instances": [', {"Content-Type": "application/json"}, 400, "not valid JSON"),
        ("json without instances", b'{"images": []}', {"Content-Type": "application/json"}, 400, "instances"),
        ("bad base64", json_body([{"b64": "%%%"}]), {"Content-Type": "application/json"}, 400, "not valid base64"),
        ("bad image in batch", json_body([{"b64": base64.b64encode(image).decode()}, {"b64": "AAAA"}]),
         {"Content-Type": "application/json"}, 400, "instances[1] could not be decoded"),
        ("url instead of image", json_body([{"url": "http://169.254.169.254/latest/meta-data/"}]),
         {"Content-Type": "application/json"}, 400, "URLs are not fetched"),
        ("too many instances", json_body([{"b64": "AAAA"}] * 33), {"Content-Type": "application/json"}, 400,
         "at most 32"),
        ("top_k=0", image, {**jpeg, "X-Amzn-SageMaker-Custom-Attributes": "top_k=0"}, 400,
         "top_k=0 must be at least 1"),
        ("top_k=abc", image, {**jpeg, "X-Amzn-SageMaker-Custom-Attributes": "top_k=abc"}, 400, "not an integer"),
        ("accept csv", image, {**jpeg, "Accept": "text/csv"}, 406, "responses are application/json"),
        ("6 MiB + 1", b"\xff" * (6 * MIB + 1), jpeg, 413, "the limit is 6291456 bytes"),
    ]


BAD_NAMES = [case[0] for case in bad_requests(b"x")]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_input_gets_its_status_and_a_json_message(server, test_images, name):
    image = serving_data.encode(test_images[0][0])
    [(_, body, headers, status, words)] = [case for case in bad_requests(image) if case[0] == name]
    response = server.request("POST", "/invocations", body, headers)
    assert response.status == status, response.body[:500]
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()
    assert error["code"] == status and words in error["message"], error
    assert "Traceback" not in error["message"]


def test_six_mib_exactly_is_not_too_large(server):
    response = server.invoke(b"\xff" * (6 * MIB))
    assert response.status == 400 and "could not be decoded" in response.json()["message"]


def test_bad_input_never_kills_a_worker(server, test_images):
    image = serving_data.encode(test_images[0][0])
    label = serving_data.CLASSES[test_images[1][0]]
    before = {(w["id"], w["startTime"]) for w in server.workers()}
    for _ in range(2):  # twice: every worker sees every bad request whatever MMS's scheduling
        for name, body, headers, status, _ in bad_requests(image):
            assert server.request("POST", "/invocations", body, headers).status == status, name
    try:  # over MMS's own limit (4x ours): Netty refuses it (empty 413, or a reset while we still send)
        huge = server.invoke(b"\x00" * (30 * MIB))
        assert huge.status == 413
    except (ConnectionError, OSError):
        pass
    assert server.ping().status == 200
    assert top1(server.invoke(image)) == label
    after = {(w["id"], w["startTime"]) for w in server.workers()}
    assert after == before, "a worker was restarted"
    assert "Backend worker process died" not in server.log_text()


# --- load ---------------------------------------------------------------------------------------------
def test_concurrent_clients(server, test_images):
    """20 clients x 50 requests, all answered correctly, while /ping keeps answering 200."""
    images, labels = test_images
    encoded = [(serving_data.encode(pixels), serving_data.CLASSES[label])
               for pixels, label in zip(images, labels, strict=True)]

    def client(number: int) -> list[str]:
        problems = []
        for i in range(50):
            body, label = encoded[(number * 50 + i) % len(encoded)]
            try:
                response = server.invoke(body)
                if response.status != 200 or response.json()["predictions"][0]["classes"][0]["name"] != label:
                    problems.append(f"{response.status} {response.body[:200]!r}")
            except Exception as error:  # a failed request is what this test looks for
                problems.append(repr(error))
        return problems

    with PingProbe(server, interval=0.2) as probe:
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            problems = [p for result in pool.map(client, range(20)) for p in result]
    assert problems == [], problems[:5]
    assert probe.results and all(status == 200 for status, _ in probe.results), probe.results


# --- the per-request log ----------------------------------------------------------------------------
def test_one_structured_log_line_per_request(server, test_images):
    image = serving_data.encode(test_images[0][0])
    marker = f"top_k=1,request={time.time()}"
    assert server.invoke(image, **{"X-Amzn-SageMaker-Custom-Attributes": marker}).status == 200
    assert server.invoke(b"", "image/png").status == 400
    deadline = time.monotonic() + 10
    while True:  # MMS logs asynchronously
        records = server.request_log()
        if len(records) >= 2 and records[-1]["status"] == 400 and records[-1]["bytes"] == 0:
            break
        assert time.monotonic() < deadline, records[-3:]
        time.sleep(0.1)
    ok, failed = records[-2], records[-1]
    for record in (ok, failed):
        assert {"time", "request_id", "content_type", "bytes", "images", "status", "ModelLatency",
                "OverheadLatency"} <= set(record)
        assert isinstance(record["ModelLatency"], int) and isinstance(record["OverheadLatency"], int)
    assert ok["status"] == 200 and ok["images"] == 1 and ok["bytes"] == len(image) and ok["top_k"] == 1
    assert ok["content_type"] == "image/jpeg" and ok["ModelLatency"] > 0
    assert failed["content_type"] == "image/png" and failed["error"] == "the request body is empty"
    assert ok["request_id"] and ok["request_id"] != failed["request_id"]


# --- only what SageMaker calls, on the endpoint's port -------------------------------------------------
def test_the_management_api_is_not_on_the_inference_port(server, test_images):
    """`DELETE /models/model` there used to answer 200 and unload the model (issue 12, item 3)."""
    image = serving_data.encode(test_images[0][0])
    label = serving_data.CLASSES[test_images[1][0]]
    for method, path in [("DELETE", "/models/model"), ("PUT", "/models/model?min_worker=0&synchronous=true"),
                         ("GET", "/models"), ("GET", "/models/model"), ("POST", "/models?url=/tmp&model_name=x"),
                         ("GET", "/api-description"), ("OPTIONS", "/"), ("POST", "/predictions/model")]:
        response = server.request(method, path, b"" if method in ("POST", "PUT") else None)
        assert response.status == 404, (method, path, response.status, response.body[:300])
        assert response.json()["message"] == "only GET /ping and POST /invocations are served here"
    assert server.ping().status == 200
    assert top1(server.invoke(image)) == label
    # The management API is there for this machine's own processes: a unix socket in a private directory.
    workers = server.workers()
    assert workers and all(worker["status"] == "READY" for worker in workers), workers
    socket_dir = Path(server.management_socket).parent
    assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700 and socket_dir.stat().st_uid == os.geteuid()


@pytest.mark.parametrize("method", ["PUT", "GET", "DELETE", "PATCH"])
def test_invocations_answers_only_post(server, test_images, method):
    image = serving_data.encode(test_images[0][0])
    response = server.request(method, "/invocations", image, {"Content-Type": "image/jpeg"})
    assert response.status == 405, response.body[:300]
    assert response.headers["allow"] == "POST"
    assert response.json() == {"code": 405, "type": "MethodNotAllowed",
                               "message": f"{method} is not allowed on /invocations: it only answers POST"}
    assert server.invoke(image).status == 200


def test_ping_answers_only_get(server):
    response = server.request("POST", "/ping", b"")
    assert response.status == 405 and response.headers["allow"] == "GET"
    assert server.ping().status == 200


def test_deeply_nested_json_is_a_400(server):
    """json.loads raises RecursionError on `[[[[...`: that was an internal error (500)."""
    response = server.invoke(b"[" * 100_000 + b"]" * 100_000, "application/json")
    assert response.status == 400, response.body[:300]
    assert response.json()["message"] == "the JSON body is nested too deeply"
