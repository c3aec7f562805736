"""Image pipeline on dog-photo-sized JPEGs: ours (libjpeg reduced-size decode via Image.draft, then
resize and centre crop) against a plain `Image.open(...).convert("RGB")` + resize + centre crop.

Run: .venv/bin/python -m benchmarks.bench_image_pipeline   (target: >= 2.5x)
The photos are scikit-image's sample photographs scaled to 500x375 ... 2000x1500 and saved as JPEG.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image
from torchvision.transforms import functional as TF

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "container"))
from classifier.model import get_architecture

SIZES = [(500, 375), (800, 600), (1024, 768), (1600, 1200), (2000, 1500)]


def make_photos(folder: Path, per_size: int) -> list[Path]:
    from skimage import data

    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.cat()]
    paths = []
    for n in range(per_size):
        for width, height in SIZES:
            source = Image.fromarray(photos[n % len(photos)]).convert("RGB")
            path = folder / f"{width}x{height}_{n}.jpg"
            source.resize((width, height), Image.Resampling.BICUBIC).save(path, quality=90)
            paths.append(path)
    return paths


def plain(path: Path, resize: int, crop: int):
    image = Image.open(path).convert("RGB")
    image = TF.resize(image, resize)
    return TF.pil_to_tensor(TF.center_crop(image, [crop, crop]))


def timed(function, paths, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for path in paths:
            function(path)
        runs.append((time.perf_counter() - start) / len(paths))
    return statistics.median(runs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-size", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    spec = get_architecture("resnet50").preprocessing(224)
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_photos(Path(tmp), args.per_size)

        def ours(p):
            return spec.load_for_eval(p)

        def base(p):
            return plain(p, spec.resize_size, spec.image_size)

        assert ours(paths[0]).shape == base(paths[0]).shape
        t_plain, t_ours = timed(base, paths, args.repeats), timed(ours, paths, args.repeats)
        print(f"{len(paths)} JPEGs from 500x375 to 2000x1500, median of {args.repeats} passes, one core")
        print(f"plain open+convert+resize+crop: {t_plain * 1000:7.2f} ms/image")
        print(f"ours (draft decode):            {t_ours * 1000:7.2f} ms/image")
        print(f"speed-up: {t_plain / t_ours:.2f}x (target >= 2.5x)")
        for width, height in SIZES:
            subset = [p for p in paths if p.name.startswith(f"{width}x{height}_")]
            ratio = timed(base, subset, args.repeats) / timed(ours, subset, args.repeats)
            print(f"  {width}x{height}: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
