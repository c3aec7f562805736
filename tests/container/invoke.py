"""Container test client (standard library only, runs on the host): wait for GET /ping, send the held-out
images to POST /invocations and check the answers.

    python3 invoke.py wait   URL TIMEOUT_S
    python3 invoke.py check  URL REQUESTS_DIR MIN_ACCURACY
    python3 invoke.py closed URL REQUESTS_DIR      only GET /ping and POST /invocations are served

REQUESTS_DIR holds <class>/*.jpg; the folder name is the expected class. Response format (the serving
code's output_fn): {"predictions": [{"classes": [{"name", "index", "probability"}, ...]}, ...]}.
"""
from __future__ import annotations

import base64
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def request(url: str, body: bytes | None = None, headers: dict | None = None, timeout: float = 60,
            method: str | None = None):
    method = method or ("POST" if body is not None else "GET")
    req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait(url: str, timeout_s: float) -> int:
    start = time.monotonic()
    last = ""
    while time.monotonic() - start < timeout_s:
        try:
            status, body = request(url + "/ping", timeout=2)  # SageMaker's per-call ping timeout
            if status == 200:
                print(f"ping: 200 after {time.monotonic() - start:.1f} s: {body[:200].decode(errors='replace')}")
                return 0
            last = f"HTTP {status}"
        except OSError as error:
            last = str(error)
        time.sleep(1)
    print(f"ping: no 200 within {timeout_s:.0f} s (last: {last})", file=sys.stderr)
    return 1


def top1(answer: dict) -> tuple[str, float]:
    best = answer["classes"][0]
    return best["name"], best["probability"]


def check_answer(answer: dict, classes: set[str], where: str) -> list[str]:
    problems = []
    entries = answer.get("classes") if isinstance(answer, dict) else None
    if not entries:
        return [f"{where}: no classes in {answer!r}"]
    probabilities = [entry.get("probability") for entry in entries]
    if any(not isinstance(p, float) or not 0.0 <= p <= 1.0 for p in probabilities):
        problems.append(f"{where}: probabilities out of [0, 1]: {probabilities}")
    if probabilities != sorted(probabilities, reverse=True):
        problems.append(f"{where}: classes not sorted by probability: {probabilities}")
    if sum(probabilities) > 1.0 + 1e-6:
        problems.append(f"{where}: probabilities add up to more than 1: {probabilities}")
    names = [entry.get("name") for entry in entries]
    if not set(names) <= classes:
        problems.append(f"{where}: unknown class names {names} (expected some of {sorted(classes)})")
    return problems


def check(url: str, requests_dir: Path, min_accuracy: float) -> int:
    classes = {p.name for p in requests_dir.iterdir() if p.is_dir()}
    images = sorted(requests_dir.glob("*/*.jpg"))
    if not classes or not images:
        print(f"no request images under {requests_dir}", file=sys.stderr)
        return 1
    problems: list[str] = []
    correct = 0
    singles: dict[Path, str] = {}
    start = time.monotonic()
    for path in images:
        status, body = request(url + "/invocations", path.read_bytes(),
                               {"Content-Type": "image/jpeg", "Accept": "application/json"})
        if status != 200:
            problems.append(f"{path.name}: HTTP {status}: {body[:300]!r}")
            continue
        answer = json.loads(body)
        predictions = answer.get("predictions")
        if not isinstance(predictions, list) or len(predictions) != 1:
            problems.append(f"{path.name}: expected one prediction, got {answer!r}")
            continue
        problems += check_answer(predictions[0], classes, path.name)
        name, probability = top1(predictions[0])
        singles[path] = name
        correct += name == path.parent.name
        print(f"  {path.parent.name:>10}/{path.name}: {name} ({probability:.3f})")
    elapsed = time.monotonic() - start
    accuracy = correct / len(images)
    print(f"invocations: {len(images)} images, {correct} correct, accuracy {accuracy:.2f} "
          f"(minimum {min_accuracy:.2f}), {1000 * elapsed / len(images):.0f} ms per request")
    if accuracy < min_accuracy:
        problems.append(f"accuracy {accuracy:.2f} is below {min_accuracy:.2f}")

    # Several images in one JSON request must give the same answers as one at a time.
    batch = images[:4]
    body = json.dumps({"instances": [{"b64": base64.b64encode(p.read_bytes()).decode()} for p in batch]})
    status, raw = request(url + "/invocations", body.encode(), {"Content-Type": "application/json"})
    if status != 200:
        problems.append(f"JSON batch: HTTP {status}: {raw[:300]!r}")
    else:
        predictions = json.loads(raw).get("predictions", [])
        got = [top1(p)[0] for p in predictions]
        want = [singles.get(p) for p in batch]
        print(f"JSON batch of {len(batch)}: {got}")
        if got != want:
            problems.append(f"JSON batch answers {got} differ from single-image answers {want}")

    # A body that is not an image is refused with a client error, and the server stays up.
    status, raw = request(url + "/invocations", b"hello", {"Content-Type": "text/plain"})
    print(f"text/plain body: HTTP {status}")
    if not 400 <= status < 500:
        problems.append(f"text/plain body: expected a 4xx, got HTTP {status}: {raw[:200]!r}")
    status, _ = request(url + "/ping", timeout=2)
    if status != 200:
        problems.append(f"/ping after the bad request: HTTP {status}")

    for problem in problems:
        print("FAIL:", problem, file=sys.stderr)
    return 1 if problems else 0


def closed(url: str, requests_dir: Path) -> int:
    """MMS's management API and other methods are not served on the endpoint's port, and trying them
    leaves the model loaded (DELETE /models/model used to unload it)."""
    image = sorted(requests_dir.glob("*/*.jpg"))[0].read_bytes()
    jpeg = {"Content-Type": "image/jpeg"}
    problems = []
    for method, path, body, expected in [
        ("DELETE", "/models/model", None, 404), ("PUT", "/models/model?min_worker=0", b"", 404),
        ("GET", "/models", None, 404), ("POST", "/models?url=/tmp&model_name=x", b"", 404),
        ("GET", "/api-description", None, 404), ("PUT", "/invocations", image, 405),
        ("GET", "/invocations", None, 405), ("DELETE", "/invocations", None, 405), ("POST", "/ping", b"", 405),
    ]:
        status, raw = request(url + path, body, jpeg if body else {}, method=method)
        print(f"{method} {path}: HTTP {status} {raw[:120].decode(errors='replace')}")
        if status != expected:
            problems.append(f"{method} {path}: HTTP {status}, expected {expected}: {raw[:200]!r}")
    status, _ = request(url + "/ping", timeout=2)
    if status != 200:
        problems.append(f"/ping afterwards: HTTP {status}")
    status, raw = request(url + "/invocations", image, jpeg)
    if status != 200:
        problems.append(f"POST /invocations afterwards: HTTP {status}: {raw[:200]!r}")
    for problem in problems:
        print("FAIL:", problem, file=sys.stderr)
    return 1 if problems else 0


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "wait":
        return wait(argv[1].rstrip("/"), float(argv[2]))
    if len(argv) == 4 and argv[0] == "check":
        return check(argv[1].rstrip("/"), Path(argv[2]), float(argv[3]))
    if len(argv) == 3 and argv[0] == "closed":
        return closed(argv[1].rstrip("/"), Path(argv[2]))
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
