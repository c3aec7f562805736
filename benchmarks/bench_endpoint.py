"""What the endpoint costs on top of the model: POST /invocations on the real nginx + MMS stack against the same
preprocessing + forward pass called in-process, in one run, with a 224x224 JPEG.

Run: .venv/bin/python benchmarks/bench_endpoint.py [--model DIR] [--workers N] [--threads T]
     (or `make bench-endpoint`; target: the endpoint adds at most 10 ms at p50)

1. In-process: `ServingModel.predict([jpeg])` (decode, evaluation transform, forward, softmax) from
   `model_fn`, with the torch threads of one MMS worker, in a fresh process (as a worker is), N times
   after a warm-up: p50/p99.
2. Endpoint: `python -m classifier.serving.local` (nginx + MMS + our handler, as `make serve-local`)
   on a free port; one client on a keep-alive connection, N requests: p50/p99; the difference of the
   p50s is what the HTTP stack adds. The server's own INVOCATION lines give ModelLatency and
   OverheadLatency for the same requests. 1 and 2 run in alternating rounds of 20 requests, so both
   see the same machine. Then the same requests through nginx and straight to MMS's own port (behind
   it, on 127.0.0.1), again in alternating rounds: the difference of the p50s is what nginx adds.
3. Throughput: 4 concurrent clients (threads, a connection each) for --duration seconds: requests/s
   and the latency they saw.
Without --model, the artifact is EfficientNet-Lite0 (ImageNet weights) at 224 px with an untrained
10-class head: the latency does not depend on the head's weights. The photo is scikit-image's cat.
Figures are printed, never asserted: they depend on the machine.
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CONTAINER_DIR = REPO_ROOT / "container"
sys.path.insert(0, str(CONTAINER_DIR))
from classifier.serving.local import free_port  # noqa: E402


def percentile(values, q):
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


def summary(values_ms):
    return {"n": len(values_ms), "p50": percentile(values_ms, 50), "p90": percentile(values_ms, 90),
            "p99": percentile(values_ms, 99), "mean": statistics.fmean(values_ms)}


def test_jpeg(size: int = 224) -> bytes:
    from PIL import Image
    from skimage import data

    photo = Image.fromarray(data.chelsea())
    side = min(photo.size)
    left, top = (photo.width - side) // 2, (photo.height - side) // 2
    photo = photo.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def make_artifact(folder: Path) -> Path:
    from classifier.artifact import save_artifact
    from classifier.model import build_model, get_architecture

    model = build_model("efficientnet_lite0", 10, pretrained=True, freeze_backbone=True).eval()
    save_artifact(folder, model, "efficientnet_lite0", [f"class_{i}" for i in range(10)],
                  get_architecture("efficientnet_lite0").preprocessing(224),
                  hyperparameters={"note": "benchmark: untrained head"}, metrics={})
    return folder


def load_in_process(model_dir: Path, threads: int):
    """The model as one MMS worker has it: model_fn with the worker's torch threads."""
    import torch

    from classifier.serving.inference import model_fn
    from classifier.serving.settings import Settings

    settings = Settings.from_env({"SAGEMAKER_MODEL_SERVER_WORKERS": "1", "CLASSIFIER_THREADS_PER_WORKER": str(threads)})
    model = model_fn(model_dir, settings=settings)
    assert torch.get_num_threads() == threads
    return model


class InProcessWorker:
    """The in-process side in a fresh process of its own, like an MMS worker (a process that has done
    nothing else: the allocator's state of this benchmark's own process would skew it), in a session
    of its own like the server (Linux's autogroup scheduling shares the CPU between sessions). It
    answers lines "N" on stdin with the latencies of N predictions as a JSON list."""

    def __init__(self, model_dir: Path, threads: int):
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--in-process-worker", str(model_dir), "--threads", str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=dict(os.environ, PYTHONPATH=str(CONTAINER_DIR)),
            start_new_session=True)  # as the server: its own session (with autogroup scheduling, its own CPU share)
        assert self.process.stdout.readline().strip() == "ready"

    def run(self, count: int) -> list[float]:
        self.process.stdin.write(f"{count}\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def split(self) -> tuple[float, float]:
        self.process.stdin.write("split\n")
        self.process.stdin.flush()
        return tuple(json.loads(self.process.stdout.readline()))

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)


def serve_in_process_worker(model_dir: Path, threads: int) -> int:
    model = load_in_process(model_dir, threads)
    jpeg = test_jpeg()
    in_process_requests(model, jpeg, 20)
    print("ready", flush=True)
    for line in sys.stdin:
        command = line.strip()
        answer = in_process_split(model, jpeg) if command == "split" else in_process_requests(model, jpeg, int(command))
        print(json.dumps(answer), flush=True)
    return 0


def in_process_requests(model, jpeg: bytes, count: int) -> list[float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        model.predict([jpeg])
        times.append((time.perf_counter() - start) * 1000)
    return times


def in_process_split(model, jpeg: bytes, count: int = 50) -> tuple[float, float]:
    """p50 of decode + transform and of the forward pass, measured apart (not part of the figures)."""
    preprocess, forward = [], []
    for _ in range(count):
        start = time.perf_counter()
        tensor = model.preprocess(jpeg)
        middle = time.perf_counter()
        model.forward(tensor.unsqueeze(0))
        preprocess.append((middle - start) * 1000)
        forward.append((time.perf_counter() - middle) * 1000)
    return statistics.median(preprocess), statistics.median(forward)


class Endpoint:
    def __init__(self, model_dir: Path, work_dir: Path, workers: int, threads: int):
        self.port = free_port()
        self.workers_expected = workers
        self.log_path = work_dir / "server.log"
        env = dict(os.environ, PYTHONPATH=str(CONTAINER_DIR), SAGEMAKER_MODEL_SERVER_WORKERS=str(workers),
                   CLASSIFIER_THREADS_PER_WORKER=str(threads))
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "classifier.serving.local", str(model_dir), "--port", str(self.port),
                 "--work-dir", str(work_dir / "base")],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def wait_healthy(self, timeout=300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("server exited:\n" + self.log_path.read_text(errors="replace")[-3000:])
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/ping")
                if connection.getresponse().status == 200:
                    # every worker, not only the first, has the model before we measure
                    if self.log_path.read_text(errors="replace").count(" Loaded ") >= self.workers_expected:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError("no healthy /ping")

    @property
    def mms_port(self) -> int:
        """MMS's own inference port behind nginx, as `serve` printed it."""
        found = re.search(r"-> MMS on 127\.0\.0\.1:(\d+)", self.log_path.read_text(errors="replace"))
        if not found:
            raise RuntimeError("serve did not print MMS's port")
        return int(found.group(1))

    def records(self) -> list[dict]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            _, tag, payload = line.partition("INVOCATION ")
            if tag and payload.startswith("{"):
                out.append(json.loads(payload))
        return out

    def stop(self):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass


def timed_requests(port: int, jpeg: bytes, count: int, stop_at: float | None = None) -> list[float]:
    """Latencies (ms) on one keep-alive connection, as a real client would send them."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "image/jpeg", "Accept": "application/json"}
    times = []
    try:
        while len(times) < count and (stop_at is None or time.monotonic() < stop_at):
            start = time.perf_counter()
            connection.request("POST", "/invocations", body=jpeg, headers=headers)
            response = connection.getresponse()
            body = response.read()
            times.append((time.perf_counter() - start) * 1000)
            if response.status != 200:
                raise RuntimeError(f"status {response.status}: {body[:300]!r}")
    finally:
        connection.close()
    return times


def main(argv=None) -> int:
    from classifier.serving.settings import usable_cpus

    cpus = usable_cpus()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path,
                        help="model dir or job dir (default: EfficientNet-Lite0 at 224, untrained head)")
    parser.add_argument("--workers", type=int, default=cpus, help=f"MMS workers (default: CPUs = {cpus})")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: CPUs / workers)")
    parser.add_argument("--requests", type=int, default=300, help="sequential requests per measurement")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--duration", type=float, default=20, help="seconds of the concurrent-clients run")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--in-process-worker", type=Path, help=argparse.SUPPRESS)  # internal: see InProcessWorker
    args = parser.parse_args(argv)
    threads = args.threads or max(1, cpus // args.workers)
    if args.in_process_worker:
        return serve_in_process_worker(args.in_process_worker, threads)

    with tempfile.TemporaryDirectory(prefix="bench-endpoint-") as scratch:
        scratch = Path(scratch)
        if args.model:
            from classifier.serving.local import resolve_model_dir

            model_dir = resolve_model_dir(args.model)
        else:
            model_dir = make_artifact(scratch / "model")
        jpeg = test_jpeg()
        print(f"{platform.processor() or platform.machine()}, {cpus} usable CPUs; {args.workers} MMS workers x "
              f"{threads} torch threads; {len(jpeg)}-byte 224x224 JPEG; model {model_dir}", flush=True)

        print("starting the endpoint ...", flush=True)
        endpoint = Endpoint(model_dir, scratch, args.workers, threads)
        try:
            started = time.monotonic()
            endpoint.wait_healthy()
            startup_s = time.monotonic() - started
            worker = InProcessWorker(model_dir, threads)
            worker.run(args.warmup)
            timed_requests(endpoint.port, jpeg, max(200, args.warmup * args.workers))  # and the JVM's JIT
            logged_before = len(endpoint.records())
            # Interleaved rounds, so that both see the same machine (other load comes and goes).
            print(f"in-process and endpoint (one client), {args.requests} requests each, interleaved ...", flush=True)
            local_times, sequential = [], []
            rounds = max(1, args.requests // 20)
            for n in range(rounds):
                size = args.requests // rounds + (1 if n < args.requests % rounds else 0)
                local_times += worker.run(size)
                sequential += timed_requests(endpoint.port, jpeg, size)
            preprocess_p50, forward_p50 = worker.split()
            worker.close()
            local = {"latency_ms": summary(local_times), "preprocess_ms_p50": preprocess_p50,
                     "forward_ms_p50": forward_p50}
            time.sleep(1)  # MMS logs asynchronously
            server_side = endpoint.records()[logged_before:logged_before + args.requests]
            print(f"through nginx and straight to MMS, {args.requests} requests each, interleaved ...", flush=True)
            via_nginx, direct = [], []
            for n in range(rounds):
                size = args.requests // rounds + (1 if n < args.requests % rounds else 0)
                via_nginx += timed_requests(endpoint.port, jpeg, size)
                direct += timed_requests(endpoint.mms_port, jpeg, size)
            print(f"endpoint, {args.clients} clients for {args.duration:g} s ...", flush=True)
            results: list[list[float]] = [[] for _ in range(args.clients)]
            stop_at = time.monotonic() + args.duration
            workers = [threading.Thread(target=lambda i=i: results[i].extend(
                timed_requests(endpoint.port, jpeg, 10**9, stop_at))) for i in range(args.clients)]
            begin = time.monotonic()
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            elapsed = time.monotonic() - begin
        finally:
            endpoint.stop()

    endpoint_ms = summary(sequential)
    concurrent_all = [t for r in results for t in r]
    figures = {
        "cpus": cpus, "workers": args.workers, "threads_per_worker": threads, "jpeg_bytes": len(jpeg),
        "in_process_ms": local["latency_ms"], "in_process_preprocess_ms_p50": local["preprocess_ms_p50"],
        "in_process_forward_ms_p50": local["forward_ms_p50"],
        "endpoint_ms": endpoint_ms,
        "added_ms_p50": endpoint_ms["p50"] - local["latency_ms"]["p50"],
        "added_ms_p99": endpoint_ms["p99"] - local["latency_ms"]["p99"],
        "server_ModelLatency_ms_p50": statistics.median(r["ModelLatency"] for r in server_side) / 1000,
        "server_OverheadLatency_ms_p50": statistics.median(r["OverheadLatency"] for r in server_side) / 1000,
        # Per request (one at a time, so the log's records are in the same order): what the client saw
        # minus what the handler measured = MMS's Java front end, its socket to the worker, HTTP.
        "stack_ms": summary([client - (r["ModelLatency"] + r["OverheadLatency"]) / 1000
                             for client, r in zip(sequential, server_side, strict=False)]),
        "via_nginx_ms": summary(via_nginx), "mms_direct_ms": summary(direct),
        "nginx_added_ms_p50": percentile(via_nginx, 50) - percentile(direct, 50),
        "concurrent_clients": args.clients,
        "throughput_rps": len(concurrent_all) / elapsed,
        "concurrent_ms": summary(concurrent_all),
        "in_process_single_stream_rps": 1000 / local["latency_ms"]["p50"],
        "startup_s": startup_s,
    }
    ip, ep, cc = figures["in_process_ms"], figures["endpoint_ms"], figures["concurrent_ms"]
    print()
    print(f"{'':34}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}")
    print(f"{'in-process predict (1 image)':34}{ip['p50']:9.2f}{ip['p99']:9.2f}{ip['mean']:9.2f}"
          f"   (decode+transform {figures['in_process_preprocess_ms_p50']:.2f}, "
          f"forward {figures['in_process_forward_ms_p50']:.2f})")
    print(f"{'POST /invocations, 1 client':34}{ep['p50']:9.2f}{ep['p99']:9.2f}{ep['mean']:9.2f}"
          f"   (server log: ModelLatency {figures['server_ModelLatency_ms_p50']:.2f}, "
          f"OverheadLatency {figures['server_OverheadLatency_ms_p50']:.2f})")
    print(f"{'endpoint adds':34}{figures['added_ms_p50']:9.2f}{figures['added_ms_p99']:9.2f}"
          f"   target at p50: <= 10 ms -> {'met' if figures['added_ms_p50'] <= 10 else 'NOT met'}")
    st = figures["stack_ms"]
    print(f"{'  of it MMS + HTTP (per request)':34}{st['p50']:9.2f}{st['p99']:9.2f}{st['mean']:9.2f}"
          f"   (client latency - handler's ModelLatency + OverheadLatency)")
    vn, md = figures["via_nginx_ms"], figures["mms_direct_ms"]
    print(f"{'  of it nginx (p50 vs MMS direct)':34}{figures['nginx_added_ms_p50']:9.2f}"
          f"{'':18}   (through nginx {vn['p50']:.2f}, straight to MMS {md['p50']:.2f})")
    label = f"{args.clients} clients, {cc['n']} requests"
    print(f"{label:34}{cc['p50']:9.2f}{cc['p99']:9.2f}{cc['mean']:9.2f}"
          f"   throughput {figures['throughput_rps']:.1f} requests/s "
          f"(one in-process stream: {figures['in_process_single_stream_rps']:.1f}/s)")
    print(f"endpoint healthy {startup_s:.1f} s after start")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
