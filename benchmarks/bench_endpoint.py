"""The endpoint in each format side by side: PyTorch eager, OpenVINO fp32 and OpenVINO int8, for ResNet-50 and
EfficientNet-Lite0 at 224 px, through the real local endpoint (nginx + MMS + our handler, as `make serve-local`)
and against the same request path in-process (the limit), in one run with interleaved rounds.

Run: .venv/bin/python benchmarks/bench_endpoint.py [--models resnet50,efficientnet_lite0 | --model DIR]
     [--rounds 3] [--requests 30] [--duration 8] [--price 0.461] [--json FILE]   (or `make bench-endpoint`)

For each model:
1. The artifact: ResNet-50 with random weights (torchvision's ImageNet weights are not available offline; the
   speed does not depend on the weights' values once denormals are out of the way, see 5), EfficientNet-Lite0
   with its ImageNet weights; an untrained 10-class head each. Its exports are made by the project's own
   `classifier.export.main.build_formats` (fp32 IR; int8 calibrated on 64 crops of scikit-image's photos) and
   installed unjudged: the speed is measured here, the accuracy gate on trained models (`make export`,
   `make evaluate`; docs/measurements.md). With --model, a trained artifact's own exports are used.
2. Three endpoints, `SERVING_RUNTIME=torch|fp32|int8`, each with the workers x threads `serve` chooses for the
   format; beside each, the same number of in-process worker processes (`model_fn` with the same settings, each
   a fresh process, all in one session of their own, as the endpoint's workers are) that run
   `ServingModel.predict`: decode, preprocess, forward, the request path without HTTP.
3. Rounds, the formats' order rotating each round, so that all see the same machine (it is shared and its speed
   swings: the ratios within one run are the figures): one client on a keep-alive connection, --requests
   requests (p50/p99); --clients clients for --duration seconds (images/s); the in-process workers, one
   stream per worker, for --duration seconds (images/s: the limit for that layout); one in-process stream
   (p50: what the HTTP stack adds is the difference to the endpoint's p50).
4. The other layout: one worker with every core (or one worker per core, if that is what `serve` chose),
   in-process, in the same rounds: which `serving/settings.py` should choose.
5. Denormals: the PyTorch forward with and without flushing denormal floats (torch.set_flush_denormal).
Then per model: ratios to torch eager, endpoint / in-process, images per instance-hour (the 4-client rate x
3600, on this machine) and, with --price (USD per instance-hour), what a million predictions cost.
Figures are printed (and written with --json), never asserted: they depend on the machine.
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import random
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
from classifier.export.formats import FORMATS, RUNTIME_ENV, TORCH, model_file  # noqa: E402
from classifier.serving.local import free_port  # noqa: E402
from classifier.serving.serve import configure_environment  # noqa: E402
from classifier.serving.settings import Settings, usable_cpus  # noqa: E402

MODELS = ("resnet50", "efficientnet_lite0")
IMAGE_SIZE = 224
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")
# Targets of the issue (images/s through the endpoint, 4 clients, as multiples of torch eager's).
TARGETS = {("resnet50", "int8"): 3.5, ("resnet50", "fp32"): 1.4, ("efficientnet_lite0", "best"): 2.0}
TARGET_OF_LIMIT = 0.8  # the endpoint at >= 80 % of the same format in-process


def percentile(values, q):
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


def summary(values_ms):
    return {"n": len(values_ms), "p50": percentile(values_ms, 50), "p99": percentile(values_ms, 99),
            "mean": statistics.fmean(values_ms)}


def photo(name: str):
    from PIL import Image
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB")


def jpeg_of(image, size: int = IMAGE_SIZE) -> bytes:
    from PIL import Image

    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    square = image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    square.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def test_jpeg() -> bytes:
    """The request: scikit-image's cat, a 224x224 JPEG."""
    return jpeg_of(photo("chelsea"))


def calibration_images(preprocessing, count: int = 64, seed: int = 0) -> list:
    """Random crops of scikit-image's photos through the evaluation view: uint8 arrays (1, 3, H, W)."""
    rng = random.Random(seed)
    photos = [photo(name) for name in PHOTOS]
    out = []
    for index in range(count):
        image = photos[index % len(photos)]
        side = rng.randint(min(image.size) // 2, min(image.size))
        left, top = rng.randint(0, image.width - side), rng.randint(0, image.height - side)
        crop = image.crop((left, top, left + side, top + side))
        out.append(preprocessing.load_for_eval(jpeg_of(crop, preprocessing.resize_size)).unsqueeze(0).numpy())
    return out


def make_artifact(folder: Path, architecture: str) -> Path:
    """An untrained-head artifact of `architecture` at 224 px with unjudged fp32 and int8 exports."""
    import torch

    from classifier.artifact import save_artifact
    from classifier.export.main import STAGING, build_formats, install
    from classifier.model import build_model, get_architecture

    torch.manual_seed(0)
    pretrained = architecture == "efficientnet_lite0"  # the only ImageNet weights available offline
    model = build_model(architecture, 10, pretrained=pretrained, freeze_backbone=True).eval()
    preprocessing = get_architecture(architecture).preprocessing(IMAGE_SIZE)
    weights = "ImageNet weights" if pretrained else "random weights"
    save_artifact(folder, model, architecture, [f"class_{i}" for i in range(10)], preprocessing,
                  hyperparameters={"note": f"benchmark: {weights}, untrained head"}, metrics={})
    calibration = calibration_images(preprocessing)
    build_formats(model, IMAGE_SIZE, calibration, folder / STAGING)
    note = "benchmark: speed only, not judged by the accuracy gate"
    install(folder, folder / STAGING, {fmt: {"accepted": True, "file": model_file(fmt), "figures": {}, "note": note}
                                       for fmt in FORMATS if fmt != TORCH},
            {"calibration_images": len(calibration), "note": note})
    return folder


# --- the in-process side -------------------------------------------------------------------------------------------
class InProcessPool:
    """`workers` fresh processes, each `model_fn` with `threads` threads in the format asked for (SERVING_RUNTIME),
    all in one session of their own as the server's workers are (Linux's autogroup scheduling shares the CPU
    between sessions: on a shared machine, a session per worker would get them more of it than the endpoint
    gets). A pool process in that session starts them (multiprocessing, spawn) and relays the commands from
    stdin, one JSON answer per line: `latency N` (one stream), `for SECONDS` (every worker at once: images/s),
    `denormals N`."""

    def __init__(self, model_dir: Path, fmt: str, workers: int, threads: int):
        env = dict(os.environ, PYTHONPATH=str(CONTAINER_DIR), SAGEMAKER_MODEL_SERVER_WORKERS=str(workers),
                   CLASSIFIER_THREADS_PER_WORKER=str(threads), **{RUNTIME_ENV: fmt})
        configure_environment(env, fmt)  # what `serve` sets for its workers (OMP_NUM_THREADS, ...)
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--in-process-pool", str(model_dir), "--workers", str(workers),
             "--threads", str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, start_new_session=True)
        line = self.process.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"in-process workers ({fmt}) did not start: {line!r}")

    def _ask(self, command: str):
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def latencies(self, count: int) -> list[float]:
        return self._ask(f"latency {count}")

    def throughput(self, seconds: float) -> float:
        return self._ask(f"for {seconds}")

    def denormals(self, count: int) -> dict:
        return self._ask(f"denormals {count}")

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=120)


def run_pool(model_dir: Path, workers: int, threads: int) -> int:
    """The pool process of `InProcessPool`."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # fresh interpreters, as MMS starts its workers
    pipes, processes = [], []
    for _ in range(workers):
        parent, child = context.Pipe()
        process = context.Process(target=pool_worker, args=(str(model_dir), threads, child))
        process.start()
        pipes.append(parent)
        processes.append(process)
    for pipe in pipes:
        assert pipe.recv() == "ready"
    print("ready", flush=True)
    for line in sys.stdin:
        command, _, value = line.strip().partition(" ")
        if command == "for":
            for pipe in pipes:
                pipe.send(line)
            answer = sum(pipe.recv() for pipe in pipes) / float(value)
        else:
            pipes[0].send(line)
            answer = pipes[0].recv()
        print(json.dumps(answer), flush=True)
    for pipe in pipes:
        pipe.send("stop")
    for process in processes:
        process.join(timeout=60)
    return 0


def pool_worker(model_dir: str, threads: int, pipe) -> None:
    """One in-process worker: `model_fn` as an MMS worker runs it, then `ServingModel.predict` on request."""
    import torch

    from classifier.serving.inference import model_fn

    model = model_fn(Path(model_dir), settings=Settings.from_env({"SAGEMAKER_MODEL_SERVER_WORKERS": "1",
                                                                  "CLASSIFIER_THREADS_PER_WORKER": str(threads)}))
    jpeg = test_jpeg()
    for _ in range(10):
        model.predict([jpeg])
    pipe.send("ready")
    while (line := pipe.recv()) != "stop":
        command, _, value = line.strip().partition(" ")
        if command == "latency":
            answer = []
            for _ in range(int(value)):
                start = time.perf_counter()
                model.predict([jpeg])
                answer.append((time.perf_counter() - start) * 1000)
        elif command == "for":
            answer, stop_at = 0, time.perf_counter() + float(value)
            while time.perf_counter() < stop_at:
                model.predict([jpeg])
                answer += 1
        else:  # denormals: the forward's p50 with and without flushing them, interleaved
            batch = model.preprocess(jpeg).unsqueeze(0)
            times = {"kept": [], "flushed": []}
            for _ in range(int(value)):
                for name, flush in (("kept", False), ("flushed", True)):
                    torch.set_flush_denormal(flush)
                    start = time.perf_counter()
                    model.forward(batch)
                    times[name].append((time.perf_counter() - start) * 1000)
            torch.set_flush_denormal(False)
            answer = {name: statistics.median(values) for name, values in times.items()}
        pipe.send(answer)


# --- the endpoint ----------------------------------------------------------------------------------------------
class Endpoint:
    def __init__(self, model_dir: Path, work_dir: Path, fmt: str, workers: int, threads: int):
        self.port = free_port()
        self.workers_expected = workers
        work_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = work_dir / "server.log"
        env = dict(os.environ, PYTHONPATH=str(CONTAINER_DIR), SAGEMAKER_MODEL_SERVER_WORKERS=str(workers),
                   CLASSIFIER_THREADS_PER_WORKER=str(threads), **{RUNTIME_ENV: fmt})
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "classifier.serving.local", str(model_dir), "--port", str(self.port),
                 "--work-dir", str(work_dir / "base")],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def wait_healthy(self, timeout=600):
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
            time.sleep(0.5)
        raise TimeoutError("no healthy /ping")

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
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
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


def concurrent_rate(port: int, jpeg: bytes, clients: int, seconds: float) -> float:
    """Images per second with `clients` clients, each on its own connection, for `seconds`."""
    results: list[list[float]] = [[] for _ in range(clients)]
    stop_at = time.monotonic() + seconds
    threads = [threading.Thread(target=lambda i=i: results[i].extend(timed_requests(port, jpeg, 10**9, stop_at)))
               for i in range(clients)]
    begin = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(len(r) for r in results) / (time.monotonic() - begin)


# --- one model -----------------------------------------------------------------------------------------------------
def layout(fmt: str) -> tuple[int, int]:
    """(workers, threads) as `serve` sizes them for this format on this machine."""
    settings = Settings.from_env({}, fmt)
    return settings.workers, settings.threads_per_worker


def bench_model(name: str, model_dir: Path, scratch: Path, args, jpeg: bytes) -> dict:
    """Every format the artifact can serve (torch, and the exports it holds accepted)."""
    from classifier.artifact import read_config
    from classifier.export.formats import accepted

    cpus = usable_cpus()
    fmts = tuple(fmt for fmt in FORMATS if fmt in accepted(read_config(model_dir)))
    layouts = {fmt: layout(fmt) for fmt in fmts}
    other = {fmt: (1, cpus) if layouts[fmt][0] > 1 else (cpus, 1) for fmt in fmts}
    sizes = ", ".join(f"{fmt} {workers}x{threads}" for fmt, (workers, threads) in layouts.items())
    print(f"{name}: starting {len(fmts)} endpoints and the in-process workers ({sizes}) ...", flush=True)
    endpoints, pools, others = {}, {}, {}
    try:
        for fmt in fmts:
            endpoints[fmt] = Endpoint(model_dir, scratch / name / fmt, fmt, *layouts[fmt])
        started = time.monotonic()
        for endpoint in endpoints.values():
            endpoint.wait_healthy()
        startup_s = time.monotonic() - started
        for fmt in fmts:
            pools[fmt] = InProcessPool(model_dir, fmt, *layouts[fmt])
            if cpus > 1:
                others[fmt] = InProcessPool(model_dir, fmt, *other[fmt])
        for fmt in fmts:  # warm-up: the JVM's JIT, nginx, the workers' caches
            timed_requests(endpoints[fmt].port, jpeg, 10 * layouts[fmt][0])
        raw = measure_rounds(name, fmts, endpoints, pools, others, args, jpeg)
        denormals = pools[TORCH].denormals(args.requests)
    finally:
        for endpoint in endpoints.values():
            endpoint.stop()
        for pool in (*pools.values(), *others.values()):
            pool.close()
    return {"startup_s": startup_s, "denormals_forward_ms_p50": denormals,
            "formats": summarise(raw, layouts, other, args.price)}


def measure_rounds(name: str, fmts: tuple, endpoints: dict, pools: dict, others: dict, args, jpeg: bytes) -> dict:
    """The raw figures of every round, the formats' order rotating from one round to the next."""
    raw = {fmt: {"endpoint_ms": [], "endpoint_rps": [], "in_process_ms": [], "in_process_rps": [],
                 "other_layout_rps": []} for fmt in fmts}
    for round_index in range(args.rounds):
        order = fmts[round_index % len(fmts):] + fmts[:round_index % len(fmts)]
        print(f"{name}: round {round_index + 1} of {args.rounds} ({', '.join(order)}) ...", flush=True)
        for fmt in order:
            figures = raw[fmt]
            figures["endpoint_ms"] += timed_requests(endpoints[fmt].port, jpeg, args.requests)
            figures["in_process_ms"] += pools[fmt].latencies(args.requests)
            figures["endpoint_rps"].append(concurrent_rate(endpoints[fmt].port, jpeg, args.clients, args.duration))
            figures["in_process_rps"].append(pools[fmt].throughput(args.duration))
            if fmt in others:
                figures["other_layout_rps"].append(others[fmt].throughput(args.duration))
    return raw


def summarise(raw: dict, layouts: dict, other: dict, price: float | None) -> dict:
    """Per format: medians over the rounds, ratios to torch eager and to in-process, images per hour, cost."""
    results = {}
    for fmt, figures in raw.items():
        endpoint_ms, in_process_ms = summary(figures["endpoint_ms"]), summary(figures["in_process_ms"])
        results[fmt] = {
            "workers": layouts[fmt][0], "threads": layouts[fmt][1],
            "endpoint_ms": endpoint_ms, "in_process_ms": in_process_ms,
            "added_ms_p50": endpoint_ms["p50"] - in_process_ms["p50"],
            "endpoint_rps": statistics.median(figures["endpoint_rps"]),
            "in_process_rps": statistics.median(figures["in_process_rps"]),
            "rounds_endpoint_rps": figures["endpoint_rps"], "rounds_in_process_rps": figures["in_process_rps"],
        }
        if figures["other_layout_rps"]:
            results[fmt]["other_layout"] = {"workers": other[fmt][0], "threads": other[fmt][1],
                                            "in_process_rps": statistics.median(figures["other_layout_rps"])}
    for figures in results.values():
        figures["speedup_vs_torch"] = figures["endpoint_rps"] / results[TORCH]["endpoint_rps"]
        figures["share_of_in_process"] = figures["endpoint_rps"] / figures["in_process_rps"]
        figures["images_per_hour"] = figures["endpoint_rps"] * 3600
        if price:
            figures["usd_per_million"] = price / figures["images_per_hour"] * 1e6
    return results


def print_model(name: str, results: dict, args) -> None:
    print(f"\n{name} at {IMAGE_SIZE} px ({args.rounds} interleaved rounds; endpoint healthy after "
          f"{results['startup_s']:.0f} s)")
    header = (f"{'format':8}{'layout':>8}{'1 client p50':>14}{'p99':>9}{'adds p50':>10}{f'{args.clients} clients':>12}"
              f"{'in-process':>12}{'endpoint /':>12}{'vs torch':>10}{'images/hour':>13}")
    if args.price:
        header += f"{'$ / 1M':>9}"
    print(header)
    print(f"{'':8}{'WxT':>8}{'ms':>14}{'ms':>9}{'ms':>10}{'images/s':>12}{'images/s':>12}{'in-process':>12}")
    for fmt, f in results["formats"].items():
        workers_x_threads = f"{f['workers']}x{f['threads']}"
        line = (f"{fmt:8}{workers_x_threads:>8}{f['endpoint_ms']['p50']:14.1f}{f['endpoint_ms']['p99']:9.1f}"
                f"{f['added_ms_p50']:10.1f}{f['endpoint_rps']:12.1f}{f['in_process_rps']:12.1f}"
                f"{100 * f['share_of_in_process']:11.0f}%{f['speedup_vs_torch']:9.2f}x{f['images_per_hour']:13,.0f}")
        if args.price:
            line += f"{f['usd_per_million']:9.2f}"
        print(line)
    for fmt, f in results["formats"].items():
        if "other_layout" in f:
            o = f["other_layout"]
            print(f"  {fmt}: in-process {f['workers']}x{f['threads']} {f['in_process_rps']:.1f} images/s, "
                  f"{o['workers']}x{o['threads']} {o['in_process_rps']:.1f} images/s")
    d = results["denormals_forward_ms_p50"]
    print(f"  torch forward p50 with denormals kept {d['kept']:.1f} ms, flushed {d['flushed']:.1f} ms")


def check_targets(all_results: dict) -> list[str]:
    lines = []
    for (name, fmt), target in TARGETS.items():
        if name not in all_results:
            continue
        formats = all_results[name]["formats"]
        chosen = max((f for f in formats if f != TORCH), key=lambda f: formats[f]["speedup_vs_torch"]) \
            if fmt == "best" else fmt
        got = formats[chosen]["speedup_vs_torch"]
        lines.append(f"{name} {chosen} endpoint images/s {got:.2f}x torch eager: target >= {target}x -> "
                     f"{'met' if got >= target else 'NOT met'}")
    for name, results in all_results.items():
        for fmt, f in results["formats"].items():
            share = f["share_of_in_process"]
            lines.append(f"{name} {fmt} endpoint at {100 * share:.0f} % of in-process: target >= "
                         f"{100 * TARGET_OF_LIMIT:.0f} % -> {'met' if share >= TARGET_OF_LIMIT else 'NOT met'}")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated of {', '.join(MODELS)}")
    parser.add_argument("--model", type=Path, help="a trained model or job dir with exports, instead of --models")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=30, help="one-client requests per round and format")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--duration", type=float, default=8, help="seconds of each throughput measurement")
    parser.add_argument("--price", type=float, help="USD per instance-hour, for the cost of a million predictions")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--in-process-pool", type=Path, help=argparse.SUPPRESS)  # internal: see InProcessPool
    parser.add_argument("--workers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.in_process_pool:
        return run_pool(args.in_process_pool, args.workers, args.threads)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown and not args.model:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    jpeg = test_jpeg()
    load = os.getloadavg()
    print(f"{platform.processor() or platform.machine()}, {usable_cpus()} usable CPUs, load average "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} (uptime); {len(jpeg)}-byte 224x224 JPEG", flush=True)
    all_results = {}
    with tempfile.TemporaryDirectory(prefix="bench-endpoint-") as scratch:
        scratch = Path(scratch)
        if args.model:
            from classifier.serving.local import resolve_model_dir

            targets = {args.model.name: resolve_model_dir(args.model)}
        else:
            targets = {}
            for name in names:
                print(f"{name}: artifact and its fp32 + int8 exports ...", flush=True)
                targets[name] = make_artifact(scratch / f"{name}-model", name)
        for name, model_dir in targets.items():
            all_results[name] = bench_model(name, model_dir, scratch, args, jpeg)
            print_model(name, all_results[name], args)
    print()
    for line in check_targets(all_results):
        print(line)
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"cpus": usable_cpus(), "price_usd_per_hour": args.price,
                                         "models": all_results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
