"""Make the container test's tiny image set: class-per-folder JPEGs for the training channels plus a
folder of held-out request images. Runs inside the training image (numpy + Pillow), so the host needs
nothing but a container engine.

Source: Debian's dataset-fashion-mnist IDX files when they are mounted at --idx (three easy classes),
otherwise synthetic shapes drawn with Pillow (circle / square / triangle). Either is learnable by a
frozen ImageNet backbone plus a linear head in one short epoch.

Layout written under OUT:
  train/<class>/*.jpg   valid/<class>/*.jpg   requests/<class>/*.jpg   source.txt
"""
from __future__ import annotations

import argparse
import gzip
import random
import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

FASHION_CLASSES = {1: "trouser", 7: "sneaker", 8: "bag"}


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion(idx_dir: Path, split: str, per_class: int, rng: random.Random):
    """The first `per_class` images of each class in a seeded shuffle of the split."""
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(idx_dir / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(idx_dir / f"{prefix}-labels-idx1-ubyte.gz")
    for label, name in FASHION_CLASSES.items():
        indices = [int(i) for i in np.flatnonzero(labels == label)]
        rng.shuffle(indices)
        for i in indices[:per_class]:
            # 28x28 grayscale, as stored: the server has to convert to RGB and resize itself.
            yield name, i, Image.fromarray(images[i], mode="L")


def shapes(per_class: int, rng: random.Random):
    for name in ("circle", "square", "triangle"):
        for i in range(per_class):
            size = 64
            image = Image.new("RGB", (size, size), tuple(rng.randint(0, 80) for _ in range(3)))
            draw = ImageDraw.Draw(image)
            r = rng.randint(14, 26)
            cx, cy = rng.randint(r, size - r), rng.randint(r, size - r)
            colour = tuple(rng.randint(150, 255) for _ in range(3))
            if name == "circle":
                draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
            elif name == "square":
                draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
            else:
                draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
            yield name, i, image


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--idx", type=Path, default=Path("/datasets/fashion-mnist"))
    parser.add_argument("--train", type=int, default=96, help="training images per class")
    parser.add_argument("--valid", type=int, default=16, help="validation images per class")
    parser.add_argument("--requests", type=int, default=8, help="request images per class")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    use_fashion = (args.idx / "train-images-idx3-ubyte.gz").is_file()
    # valid comes from the train split (disjoint from train), requests from the test split.
    plan = [("train", "train", 0, args.train), ("valid", "train", args.train, args.valid),
            ("requests", "test", 0, args.requests)]
    for folder, split, skip, count in plan:
        if use_fashion:
            items = fashion(args.idx, split, skip + count, random.Random(args.seed))
        else:
            items = shapes(skip + count, random.Random(f"{args.seed}-{split}"))
        seen: dict[str, int] = {}
        for name, i, image in items:
            seen[name] = seen.get(name, 0) + 1
            if seen[name] <= skip:
                continue
            target = args.out / folder / name / f"{name}-{split}-{i:05d}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            image.save(target, format="JPEG", quality=95)
    source = f"fashion-mnist IDX files in {args.idx}" if use_fashion else "synthetic shapes"
    (args.out / "source.txt").write_text(source + "\n")
    print(f"test data from {source}: {args.train}/{args.valid}/{args.requests} images per class "
          f"(train/valid/requests) in {args.out}")


if __name__ == "__main__":
    main()
