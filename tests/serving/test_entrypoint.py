"""docker/entrypoint.sh, the entry point of both images: each image does its own job and refuses the other's
at once with a message naming the right image (the SageMaker SDK's estimator.deploy() reuses the training
image unless it is given image_uri). tests/container/run_container_test.sh checks the built images."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO_ROOT / "docker" / "entrypoint.sh"


@pytest.fixture
def fake_python(tmp_path) -> Path:
    """A `python` on PATH that only says how it was called: what the entry point would have run."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python"
    fake.write_text('#!/bin/sh\necho "ran: python $*"\n')
    fake.chmod(0o755)
    return bin_dir


def entrypoint(fake_python: Path, image: str | None, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": f"{fake_python}:/usr/bin:/bin"}
    if image:
        env["CLASSIFIER_IMAGE"] = image
    return subprocess.run(["sh", str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=30)


def test_serve_in_the_training_image_stops_at_once_naming_the_serving_image(fake_python):
    result = entrypoint(fake_python, "training", "serve")
    assert result.returncode == 1 and "ran:" not in result.stdout
    assert "this is the training image (byoc-classifier-training)" in result.stderr
    assert "byoc-classifier-serving" in result.stderr and "image_uri=" in result.stderr


def test_train_in_the_serving_image_stops_at_once_naming_the_training_image(fake_python):
    result = entrypoint(fake_python, "serving", "train")
    assert result.returncode == 1 and "ran:" not in result.stdout
    assert "byoc-classifier-training" in result.stderr


@pytest.mark.parametrize("image, command, expected", [
    ("serving", "serve", "ran: python -m classifier.serving.serve"),
    ("training", "train", "ran: python /usr/local/lib/byoc/entrypoint_train.py"),
    (None, "serve", "ran: python -m classifier.serving.serve"),  # an image built some other way: as before
])
def test_each_image_runs_its_own_command(fake_python, image, command, expected):
    result = entrypoint(fake_python, image, command)
    assert result.returncode == 0 and result.stdout.strip() == expected, result


@pytest.mark.parametrize("dockerfile, image", [("training.Dockerfile", "training"), ("serving.Dockerfile", "serving")])
def test_each_dockerfile_says_which_image_it_is(dockerfile, image):
    text = (REPO_ROOT / "docker" / dockerfile).read_text()
    assert re.search(rf"^\s*CLASSIFIER_IMAGE={image}\b", text, re.MULTILINE), dockerfile
