"""A serverless or scale-from-zero endpoint's cold start, on this machine: the serving image's stack (nginx + MMS +
our handler, `python -m classifier.serving.local` as `make serve-local` runs it) from its start to the first
healthy /ping, then the first request, then warm requests.

Run: .venv/bin/python -m benchmarks.bench_cold_start [--model DIR] [--rounds 3] [--requests 20]

Each round starts the stack afresh (scripts/local/endpoint_process: a process group of its own, stopped at the
end of the round) and times, with one client:
- start -> /ping answers 200 (SageMaker's limit: 4 minutes for instances, 3 for serverless), and of that the
  longest worker's model load (MMS's "Backend response time" of the load: imports, model_fn);
- the first POST /invocations after it (a worker's lazy work: the first forward pass);
- --requests warm requests, one after the other: p50 (the latency scripts/endpoint_cost.py prices).
Without --model the artifact is EfficientNet-Lite0 at 224 px with an untrained 10-class head (benchmarks/
bench_endpoint.py's): start-up and latency do not depend on the head's weights. The photo is scikit-image's cat.
Not counted: pulling the image and downloading model.tar.gz, which SageMaker does before the container starts.
Figures are printed, never asserted: they depend on the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.bench_endpoint import make_artifact, test_jpeg
from classifier.serving.local import free_port
from scripts.local import endpoint_process


def post(url: str, body: bytes) -> float:
    request = urllib.request.Request(url + "/invocations", data=body, method="POST",
                                     headers={"Content-Type": "image/jpeg", "Accept": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        response.read()
        if response.status != 200:
            raise RuntimeError(f"/invocations answered {response.status}")
    return (time.perf_counter() - started) * 1000


def worker_load_seconds(log: Path) -> float | None:
    """The longest model load among MMS's workers, as MMS logs it (its first backend response per worker)."""
    times = [int(t) for t in re.findall(r"Backend response time: (\d+)", log.read_text(errors="replace"))]
    workers = len(set(re.findall(r"\[PID\] (\d+)", log.read_text(errors="replace")))) or 1
    return round(max(times[:workers]) / 1000, 2) if times else None


def one_round(model: Path, work: Path, jpeg: bytes, requests: int) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = work / f"endpoint-{port}.log"
    started = time.perf_counter()
    process = endpoint_process.start(model, port, work / str(port), log)
    try:
        endpoint_process.wait_until_healthy(url, process, log)
        to_ping = time.perf_counter() - started
        first = post(url, jpeg)
        warm = [post(url, jpeg) for _ in range(requests)]
    finally:
        endpoint_process.stop(process)
    return {"start_to_ping_s": round(to_ping, 2), "worker_load_s": worker_load_seconds(log),
            "first_request_ms": round(first, 1),
            "warm_p50_ms": round(statistics.median(warm), 1), "warm_max_ms": round(max(warm), 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model directory (default: EfficientNet-Lite0, untrained head)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args(argv)
    jpeg = test_jpeg()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        model = args.model or make_artifact(work / "model")
        rounds = []
        for index in range(args.rounds):
            rounds.append(one_round(model, work, jpeg, args.requests))
            print(f"round {index + 1}: {rounds[-1]}", file=sys.stderr, flush=True)
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "rounds": rounds,
              "median": {key: statistics.median(r[key] for r in rounds) for key in rounds[0]
                         if all(r[key] is not None for r in rounds)}}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
