"""Shared fixtures: real images (Fashion-MNIST from Debian's package, else scikit-learn digits) in the
dogImages layout, an /opt/ml tree, and one small trained job run through the real toolkit."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import FAST_HP, write_image_set


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


@pytest.fixture(scope="session")
def trained_job(image_set, tmp_path_factory):
    """A real local training job (sagemaker-training toolkit, job dir = /opt/ml tree) with a test channel, and
    the export at its end, as every job but a tuning trial has it (export=auto)."""
    from scripts import job_definition
    from scripts.local import jobs

    definition = job_definition.load()
    hyperparameters = {**FAST_HP, "image_size": "64", "epochs": "3", "lr": "0.003", "export": "auto"}
    job = jobs.create_job(definition, image_set, hyperparameters,
                          root=tmp_path_factory.mktemp("jobs"))
    record = jobs.run_job(job, definition=definition)
    assert record["status"] == "Completed", (job / jobs.LOG).read_text()[-3000:]
    return job
