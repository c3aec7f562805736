"""Shared fixtures: real images (Fashion-MNIST from Debian's package, else scikit-learn digits) in the
dogImages layout, an /opt/ml tree, one small trained job run through the real toolkit, and a quick model with the
monitor's baseline."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import FAST_HP, write_image_set

# Test tiers. `make test-fast` runs `pytest -m "not slow"`: the unit tests, for editing; `make test` runs
# every test. A test is slow when it uses one of these fixtures (each starts real work: training jobs
# through the toolkit, a tuning job, the MMS endpoint, a moto server, the SageMaker SDK, a model's monitor
# baseline) or carries `pytest.mark.slow` itself (a test that starts such work on its own: make, a training
# job, Chromium).
SLOW_FIXTURES = {"trained_job", "artifact_dir", "server", "endpoint", "tuning_run", "tuning_job", "moto_server",
                 "sdk", "monitored_model"}
# An unmarked test slower than this is named at the end of the run, so the fast tier stays fast (high enough
# that a unit test slowed down by a busy machine is not named; a real job takes longer than this even idle).
FAST_TEST_SECONDS = 10.0


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)


_unmarked_seconds: dict[str, float] = {}


def pytest_runtest_logreport(report):
    if "slow" not in report.keywords:
        _unmarked_seconds[report.nodeid] = _unmarked_seconds.get(report.nodeid, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    slow = sorted(((seconds, test) for test, seconds in _unmarked_seconds.items() if seconds > FAST_TEST_SECONDS),
                  reverse=True)
    if slow:
        terminalreporter.section("slow tests without the slow mark")
        terminalreporter.write_line(f"over {FAST_TEST_SECONDS:.0f} s without the slow mark (mark them "
                                    f"@pytest.mark.slow or use a fixture of tests/conftest.py's SLOW_FIXTURES):")
        for seconds, test in slow:
            terminalreporter.write_line(f"  {seconds:6.1f} s  {test}")


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


@pytest.fixture(scope="session")
def monitored_model(image_set, tmp_path_factory) -> Path:
    """EfficientNet-Lite0 (its ImageNet weights) with a seeded, untrained head at 32 px, saved as an artifact with
    the monitor's baseline of the image set's valid images, as the training job writes it (a reference that takes
    seconds to make; the training job's own baseline is tested end to end in tests/monitor/test_monitor_endpoint.py)."""
    import torch

    from classifier.artifact import model_config, save_artifact
    from classifier.backbones import get_architecture
    from classifier.model import build_model
    from classifier.monitoring import baseline
    from classifier.training.data import scan_channel

    valid = scan_channel("valid", image_set / "valid")
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", len(valid.classes), pretrained=True)
    preprocessing = get_architecture("efficientnet_lite0").preprocessing(32)
    model_dir = tmp_path_factory.mktemp("monitored") / "model"
    save_artifact(model_dir, model, model_config("efficientnet_lite0", valid.classes, preprocessing, {}, {}))
    baseline.write(model_dir, model, valid, preprocessing)
    return model_dir
