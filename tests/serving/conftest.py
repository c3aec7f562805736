"""Fixtures for the serving tests: a small trained artifact and the real MMS endpoint on a free port."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
for path in (REPO_ROOT / "container", REPO_ROOT, Path(__file__).resolve().parent):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import serving_data  # noqa: E402  (tests/serving/serving_data.py)
from mms_server import mms_missing, start_server  # noqa: E402


@pytest.fixture(scope="session")
def artifact_dir(tmp_path_factory) -> Path:
    """EfficientNet-Lite0 (ImageNet weights) with a head fitted on 4 Fashion-MNIST classes, 64x64."""
    if not serving_data.available():
        pytest.skip(f"Fashion-MNIST not found in {serving_data.FASHION_DIR} (Debian package dataset-fashion-mnist)")
    return serving_data.train_artifact(tmp_path_factory.mktemp("artifact") / "model")


@pytest.fixture(scope="session")
def server(artifact_dir, tmp_path_factory):
    if mms_missing():
        pytest.skip(f"not installed: {mms_missing()}")
    running = start_server(artifact_dir, tmp_path_factory.mktemp("server"),
                           env={"SAGEMAKER_MODEL_SERVER_WORKERS": "2", "CLASSIFIER_THREADS_PER_WORKER": "1"})
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def test_images():
    """Held-out Fashion-MNIST images (the test split) of the artifact's classes, with their labels."""
    images, labels = serving_data.load_split("test", per_class=6)
    return images, labels
