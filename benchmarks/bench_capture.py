"""What the local data capture costs the endpoint's handler, against no capture, in one run (issue 27 item 1).

Run: .venv/bin/python benchmarks/bench_capture.py [--rounds 5] [--requests 40] [--json FILE]

The real handler (`HandlerService.handle_one`, the code MMS calls per request: checks, decoding, preprocessing,
the forward pass, the answer, the log line) with a stand-in for MMS's context, on EfficientNet-Lite0 (its ImageNet
weights, an untrained 10-class head) at 224 px, for two bodies: a small JPEG (a 96 px Fashion-MNIST-sized photo)
and a large one (a 2048 px photo, ~1 MB). Three layouts in interleaved rounds, each request the same:

- none: no capture;
- thread: the capture as built (classifier/serving/capture.py): the handler draws the sample and queues the bodies,
  a thread of the worker encodes and writes them;
- inline: the same records encoded and written (and flushed) in the handler, before it answers: the layout not
  chosen.

For each: the handler's time per request (p50, p99) and the capture call's own time (p50, p99, in microseconds).
Every request is captured (100 %): the most the capture can cost. Figures are printed, never asserted.
"""
from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "container"))
import torch  # noqa: E402

from classifier.backbones import get_architecture  # noqa: E402
from classifier.model import build_model  # noqa: E402
from classifier.serving import capture  # noqa: E402
from classifier.serving.handler_service import HandlerService  # noqa: E402
from classifier.serving.inference import ServingModel, TorchNetwork  # noqa: E402
from classifier.serving.settings import Settings  # noqa: E402

LAYOUTS = ("none", "thread", "inline")


class Context:
    """What the handler uses of MMS's context."""

    def __init__(self, headers: dict):
        self.headers = headers

    @property
    def request_processor(self):
        return [self]

    def get_request_properties(self):
        return self.headers

    def get_request_id(self, index: int) -> str:
        return "00000000-0000-4000-8000-000000000000"

    def set_response_status(self, code=200, phrase="", idx=0):
        pass

    def set_response_content_type(self, idx, value):
        pass


class InlineWriter(capture.CaptureWriter):
    """The layout not chosen: each record encoded, written and flushed before the handler answers."""

    def offer(self, request, request_type, response, response_type, moment, request_id=None) -> bool:
        if isinstance(response, str):
            response = response.encode()
        self._write(capture._Pending(moment, capture.event_id(request_id), request, request_type, response,
                                     response_type, 0))
        self._flush()
        return True


def bodies() -> dict[str, bytes]:
    from PIL import Image
    from skimage import data

    photo = Image.fromarray(data.astronaut()).convert("RGB")
    found = {}
    for name, side in (("small (96 px)", 96), ("large (2048 px)", 2048)):
        buffer = io.BytesIO()
        photo.resize((side, side), Image.Resampling.BICUBIC).save(buffer, format="JPEG", quality=92)
        found[name] = buffer.getvalue()
    return found


def percentile(values, q):
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


def serving_model() -> ServingModel:
    """EfficientNet-Lite0 (ImageNet weights, an untrained 10-class head) at 224 px, served by torch."""
    architecture = get_architecture("efficientnet_lite0")
    network = build_model("efficientnet_lite0", 10, pretrained=True)
    return ServingModel(TorchNetwork(network, torch.device("cpu")), [f"class {i}" for i in range(10)],
                        architecture.preprocessing(224), "efficientnet_lite0", 40_000_000)


def layout_handlers(model: ServingModel, folder: Path) -> dict[str, HandlerService]:
    """One handler a layout, the thread and inline ones capturing under `folder`/<layout>."""
    handlers = {}
    for layout in LAYOUTS:
        handler = HandlerService(Settings.from_env({}))
        handler.model = model
        if layout != "none":
            handler.capture = (capture.CaptureWriter if layout == "thread" else InlineWriter)(folder / layout)
        handlers[layout] = handler
    return handlers


def time_capture_calls(handler: HandlerService) -> list[float]:
    """Times each capture call of `handler` (microseconds), into the list returned."""
    timed = []
    if handler.capture is not None:
        offer = type(handler.capture).offer

        def measured(*a, _offer=offer, _writer=handler.capture, **k):
            started = time.perf_counter_ns()
            try:
                return _offer(_writer, *a, **k)
            finally:
                timed.append((time.perf_counter_ns() - started) / 1000)

        handler.capture.offer = measured
    return timed


def measure(handlers: dict[str, HandlerService], payloads: dict[str, bytes], rounds: int, requests: int) -> dict:
    """Each layout and body `requests` times a round, the layouts' order turning every round."""
    timings = {(layout, body): {"handler_ms": [], "capture_us": []} for layout in LAYOUTS for body in payloads}
    calls = {layout: time_capture_calls(handler) for layout, handler in handlers.items()}
    for round_index in range(rounds):
        order = LAYOUTS[round_index % 3:] + LAYOUTS[:round_index % 3]
        for layout in order:
            handler, timed = handlers[layout], calls[layout]
            for name, body in payloads.items():
                context = Context({"content-type": "image/jpeg"})
                for _ in range(requests):
                    started = time.perf_counter()
                    handler.handle_one(0, {"body": body}, context)
                    timings[(layout, name)]["handler_ms"].append((time.perf_counter() - started) * 1000)
                timings[(layout, name)]["capture_us"] += timed
                timed.clear()
                if handler.capture is not None:
                    handler.capture.drain(60)
        print(f"round {round_index + 1}/{rounds} done", flush=True)
    return timings


def summarise(timings: dict, payloads: dict[str, bytes]) -> list[dict]:
    results = []
    for (layout, name), values in timings.items():
        handler_ms, capture_us = values["handler_ms"], values["capture_us"]
        results.append({"layout": layout, "body": name, "bytes": len(payloads[name]), "requests": len(handler_ms),
                        "handler_p50_ms": statistics.median(handler_ms), "handler_p99_ms": percentile(handler_ms, 99),
                        "capture_p50_us": statistics.median(capture_us) if capture_us else None,
                        "capture_p99_us": percentile(capture_us, 99) if capture_us else None})
    return results


def print_table(results: list[dict]) -> None:
    print(f"\n{'body':<18}{'layout':<8}{'handler p50 ms':>16}{'p99 ms':>10}{'capture p50 us':>17}{'p99 us':>10}")
    for row in results:
        capture_cost = ("" if row["capture_p50_us"] is None
                        else f"{row['capture_p50_us']:17.1f}{row['capture_p99_us']:10.1f}")
        print(f"{row['body']:<18}{row['layout']:<8}{row['handler_p50_ms']:16.2f}{row['handler_p99_ms']:10.2f}"
              + capture_cost)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=40, help="requests per layout, body and round")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_flush_denormal(True)
    torch.set_num_threads(1)  # one worker's thread, as the endpoint's default layout
    folder = Path(tempfile.mkdtemp(prefix="bench-capture-"))
    payloads = bodies()
    timings = measure(layout_handlers(serving_model(), folder), payloads, args.rounds, args.requests)
    results = summarise(timings, payloads)
    print_table(results)
    written = {layout: sum(1 for path in (folder / layout).rglob("*.jsonl") for _ in path.open())
               for layout in LAYOUTS[1:]}
    print(f"records written: {written} (of {args.rounds * args.requests * len(payloads)} each)")
    if args.json:
        args.json.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "results": results,
                                         "written": written}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
