"""Write a dogImages-sized tree of photo-sized JPEGs from scikit-image's sample photographs.

    data/photo-tree/{train,valid,test}/001.astronaut_a/00042.jpg ...

The default is the dogImages seed's scale: 133 classes, 6,680 train + 835 valid + 836 test images,
500x375 to 2000x1500 (landscape and portrait), about 100 KB each. Class k is a fixed crop of one of
the colour sample photos with a tint of its own; each image is a random crop, flip, size and JPEG
quality of it. The classes are separable, which is all the loop needs: this set measures speed, not
accuracy. Same arguments, same files (seeded).

    .venv/bin/python -m scripts.data.photo_tree --out data/photo-tree            # the seed's scale
    .venv/bin/python -m scripts.data.photo_tree --out data/photo-tree-0.2 --scale 0.2   # a fifth of it
    .venv/bin/python -m scripts.data.photo_tree --out /tmp/t --classes 8 --train-per-class 30
"""
from __future__ import annotations

import argparse
import random
import sys
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageOps

from classifier.progress import Progress

# Dog-photo sizes of the dogImages set (width x height of the landscape form; portrait is the transpose).
SIZES = ((500, 375), (640, 480), (800, 600), (1024, 768), (1280, 960), (1600, 1200), (2000, 1500))
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "cat", "hubble_deep_field", "immunohistochemistry",
          "retina", "colorwheel", "camera")
SPLITS = ("train", "valid", "test")


@lru_cache(maxsize=None)
def _photo(name: str) -> Image.Image:
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB")


def class_names(count: int) -> list[str]:
    return [f"{k + 1:03d}.{PHOTOS[k % len(PHOTOS)]}_{k // len(PHOTOS)}" for k in range(count)]


def _write_image(job: tuple[int, int, str, int]) -> int:
    """One JPEG: (class index, number of classes, path, seed) -> bytes written."""
    label, _, path, seed = job
    rng = random.Random(seed)
    photo = _photo(PHOTOS[label % len(PHOTOS)])
    width, height = photo.size
    class_rng = random.Random(label)  # the class's own view of its photo and tint
    side = int(min(width, height) * class_rng.uniform(0.6, 0.9))
    left, top = class_rng.randint(0, width - side), class_rng.randint(0, height - side)
    tint = tuple(class_rng.uniform(0.7, 1.3) for _ in range(3))
    size = rng.choice(SIZES)
    if rng.random() < 0.25:
        size = size[::-1]
    crop, ratio = int(side * rng.uniform(0.75, 1.0)), size[1] / size[0]
    crop_w, crop_h = (crop, int(crop * ratio)) if ratio <= 1 else (int(crop / ratio), crop)
    x, y = left + rng.randint(0, side - crop_w), top + rng.randint(0, side - crop_h)
    image = photo.crop((x, y, x + crop_w, y + crop_h))
    image = image.resize(size, Image.Resampling.BICUBIC)
    image = Image.merge("RGB", [band.point(lambda v, f=f: min(255, int(v * f))) for band, f in
                                zip(image.split(), tint, strict=True)])
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    image.save(path, format="JPEG", quality=rng.randint(80, 92))
    return Path(path).stat().st_size


def make_tree(out: Path, classes: int = 133, per_class: tuple[int, int, int] = (50, 6, 6),
              totals: tuple[int, int, int] | None = None, workers: int = 1, echo=None) -> dict[str, int]:
    """Write the tree; `totals` (train, valid, test images) spreads that many over the classes instead
    of `per_class` each (dogImages: 6,680 / 835 / 836). Returns the image count per split. Progress: on
    stderr, or as lines to `echo(line)`."""
    out = Path(out)
    names = class_names(classes)
    jobs, counts = [], {}
    for split_index, split in enumerate(SPLITS):
        total = totals[split_index] if totals else per_class[split_index] * classes
        counts[split] = total
        for n in range(total):
            label = n % classes
            folder = out / split / names[label]
            folder.mkdir(parents=True, exist_ok=True)
            jobs.append((label, classes, str(folder / f"{split[0]}{n:05d}.jpg"), split_index * 1_000_000 + n))
    written = 0
    pool = ProcessPoolExecutor(workers) if workers > 1 else None
    try:
        with Progress("photo tree", len(jobs), "JPEGs", emit=echo) as progress:
            results = pool.map(_write_image, jobs, chunksize=16) if pool else map(_write_image, jobs)
            for size in results:
                written += size
                progress.add()
                progress.detail(f"{written / progress.done / 1024:.0f} KB each on average")
    finally:
        if pool:
            pool.shutdown()
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/photo-tree"))
    parser.add_argument("--classes", type=int, default=133)
    parser.add_argument("--train-per-class", type=int)
    parser.add_argument("--valid-per-class", type=int)
    parser.add_argument("--test-per-class", type=int)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="dogImages' split sizes times this (0.2: 1,336 / 167 / 167 images)")
    parser.add_argument("--workers", type=int, default=2, help="processes encoding JPEGs")
    args = parser.parse_args(argv)
    given = (args.train_per_class, args.valid_per_class, args.test_per_class)
    if args.classes < 1 or any(v is not None and v < 1 for v in given) or not 0 < args.scale <= 1:
        print("--classes and the per-class counts must be at least 1, --scale in (0, 1]", file=sys.stderr)
        return 2
    if (args.out / "train").exists():
        print(f"{args.out}/train exists: remove it or choose another --out", file=sys.stderr)
        return 2
    if any(v is not None for v in given):
        counts = make_tree(args.out, args.classes, tuple(v or 1 for v in given), workers=args.workers)
    else:  # dogImages' own split sizes
        totals = tuple(max(args.classes, round(n * args.scale)) for n in (6680, 835, 836))
        counts = make_tree(args.out, args.classes, totals=totals, workers=args.workers)
    print(f"wrote {args.out}: " + ", ".join(f"{split} {n}" for split, n in counts.items()) +
          f" images in {args.classes} classes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
