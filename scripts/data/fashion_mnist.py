"""Write a small real image set in the dogImages layout from Debian's dataset-fashion-mnist.

    data/fashion-mnist/{train,valid,test}/001.T-shirt_top/00042.jpg ...

Images are the real 28x28 greyscale photos of clothes, upscaled to `--size` pixels (default 96) and
saved as JPEG, every fifth as PNG, so both decoders are exercised. Train and valid come from the
official training split, test from the official test split: no image appears twice.
"""
from __future__ import annotations

import argparse
import gzip
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from scripts import DEFAULT_DATA

DATASET_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle_boot"]


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def write_split(out: Path, images: np.ndarray, labels: np.ndarray, per_class: int, classes: list[int],
                size: int, offset: int = 0) -> int:
    written = 0
    for label in classes:
        folder = out / f"{label + 1:03d}.{CLASSES[label]}"
        folder.mkdir(parents=True, exist_ok=True)
        indices = np.flatnonzero(labels == label)[offset: offset + per_class]
        for n, index in enumerate(indices):
            image = Image.fromarray(images[index], mode="L").resize((size, size), Image.Resampling.BICUBIC)
            suffix = ".png" if n % 5 == 4 else ".jpg"
            image.save(folder / f"{index:05d}{suffix}", quality=92)
            written += 1
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(DEFAULT_DATA))
    parser.add_argument("--classes", type=int, default=10, help="how many of the 10 classes (default 10)")
    parser.add_argument("--train-per-class", type=int, default=60)
    parser.add_argument("--valid-per-class", type=int, default=20)
    parser.add_argument("--test-per-class", type=int, default=20)
    parser.add_argument("--size", type=int, default=96, help="side of the written images in pixels")
    args = parser.parse_args(argv)
    if not (DATASET_DIR / "train-images-idx3-ubyte.gz").is_file():
        print(f"Fashion-MNIST not found in {DATASET_DIR}. Install it with:\n"
              f"  sudo apt-get install dataset-fashion-mnist", file=sys.stderr)
        return 2
    if not 1 <= args.classes <= 10:
        parser.error("--classes must be between 1 and 10")
    train_images = read_idx(DATASET_DIR / "train-images-idx3-ubyte.gz")
    train_labels = read_idx(DATASET_DIR / "train-labels-idx1-ubyte.gz")
    test_images = read_idx(DATASET_DIR / "t10k-images-idx3-ubyte.gz")
    test_labels = read_idx(DATASET_DIR / "t10k-labels-idx1-ubyte.gz")
    if args.out.exists():
        shutil.rmtree(args.out)
    classes = list(range(args.classes))
    counts = {
        "train": write_split(args.out / "train", train_images, train_labels, args.train_per_class, classes, args.size),
        "valid": write_split(args.out / "valid", train_images, train_labels, args.valid_per_class, classes, args.size,
                             offset=args.train_per_class),
        "test": write_split(args.out / "test", test_images, test_labels, args.test_per_class, classes, args.size),
    }
    summary = ", ".join(f"{k} {v} images" for k, v in counts.items())
    print(f"Wrote {args.out}: {summary} in {args.classes} classes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
