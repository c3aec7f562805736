"""What one request can cost a serving worker, with and without the pixel budget (CLASSIFIER_MAX_REQUEST_PIXELS).

    python benchmarks/bench_request_budget.py [--rounds 3]

The cases, each through the endpoint's own path for an image (`Preprocessing.open` for the header,
`decode_rgb` + `eval_transform` at 224 px), in this process, on one thread as a worker has it:
- the probe's request: 32 PNGs of 6000x6000 (36 M pixels each, under the per-image limit; 1.1 MB on the wire),
  all decoded: what a worker did before the budget;
- the same request refused: every header read, the sum over the budget, nothing decoded (the 413);
- the most a request may now cost: PNGs of 36 M pixels up to the budget (2 of them, 72 M pixels);
- 32 photos of 3000x2000 as JPEG: decoded at 1/4 by libjpeg (the shorter side stays above 256), 375 K pixels
  each, far below the budget.
Prints the median of `--rounds` per case, in seconds, and the pixels each decodes.
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import torch
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT / "container"), str(REPO_ROOT), str(REPO_ROOT / "tests" / "serving")]
from classifier.preprocessing import Preprocessing, decode_rgb  # noqa: E402
from classifier.serving.settings import DEFAULT_MAX_REQUEST_PIXELS  # noqa: E402
from serving_data import png_bomb  # noqa: E402  (tests/serving/serving_data.py: a valid, highly compressible PNG)


def jpeg(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.radial_gradient("L").resize((width, height)).convert("RGB").save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def serve(images: list[bytes], preprocessing: Preprocessing, budget: int | None) -> int:
    """The request's pixels; with a budget, refused (nothing decoded) when they are over it."""
    opened = [preprocessing.open(image) for image in images]
    pixels = sum(image.width * image.height for image in opened)
    if budget is not None and pixels > budget:
        return pixels
    torch.stack([preprocessing.eval_transform(decode_rgb(image)) for image in opened])
    return pixels


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    preprocessing = Preprocessing()
    bomb, photo = png_bomb(6000, 6000), jpeg(3000, 2000)
    at_budget = DEFAULT_MAX_REQUEST_PIXELS // (6000 * 6000)
    cases = [
        ("probe's request, all decoded (no budget)", [bomb] * 32, None),
        ("probe's request, refused by the budget", [bomb] * 32, DEFAULT_MAX_REQUEST_PIXELS),
        (f"{at_budget} PNGs of 36 M pixels (the most allowed)", [bomb] * at_budget, DEFAULT_MAX_REQUEST_PIXELS),
        ("32 JPEG photos of 3000x2000", [photo] * 32, DEFAULT_MAX_REQUEST_PIXELS),
    ]
    print(f"budget {DEFAULT_MAX_REQUEST_PIXELS:,} pixels per request; {len(bomb):,}-byte PNG, "
          f"{len(photo):,}-byte JPEG; one thread; median of {args.rounds}")
    for name, images, budget in cases:
        times = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            pixels = serve(images, preprocessing, budget)
            times.append(time.perf_counter() - started)
        print(f"{name:<48} {statistics.median(times):8.3f} s   {pixels:>13,} pixels in the headers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
