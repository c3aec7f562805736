"""Fixtures of the report tests: a tiny real local tuning job (its tuner writes the report at its end),
the small trained job of tests/conftest.py, a real local endpoint serving it, and Chromium."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import browser
from scripts.local import features, jobs

REPO_ROOT = Path(__file__).resolve().parents[2]
TUNE_HP = "image_size=32 num_workers=0 epochs=2"


@pytest.fixture(autouse=True)
def needs_chromium():
    if not browser.available():
        pytest.skip(f"{browser.CHROMIUM} is not installed (`make setup` installs chromium)")


@pytest.fixture(scope="session")
def tuning_run(image_set, tmp_path_factory):
    """`python -m scripts.local.tune`, 2 trials of EfficientNet-Lite0 at 32 px, 2 epochs (lr and batch_size
    tuned), in its own jobs dir: (jobs dir, tuning job directory, the tuner's output)."""
    root = tmp_path_factory.mktemp("tuning-jobs")
    done = subprocess.run([sys.executable, "-m", "scripts.local.tune", "--data", str(image_set), "--max-jobs", "2",
                           "--max-parallel", "1", "--strategy", "Random", "--local-backbone", "efficientnet_lite0",
                           "--hp", TUNE_HP], cwd=REPO_ROOT, env={**os.environ, "JOBS_DIR": str(root)},
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root, next((root / "tuning").iterdir()), done.stdout


@pytest.fixture
def tuning_job(tuning_run, monkeypatch):
    """The tiny tuning job's directory, with this process's jobs dir pointing at its trials."""
    root, directory, _ = tuning_run
    monkeypatch.setattr(jobs, "JOBS_ROOT", root)
    monkeypatch.setattr(features, "_FILLED", set())
    return directory


@pytest.fixture(scope="session")
def endpoint(trained_job, tmp_path_factory):
    """The local endpoint (nginx + MMS, as `make serve-local` starts it) serving the small trained job."""
    from serving.mms_server import mms_missing, start_server

    if mms_missing():
        pytest.skip(f"not installed: {mms_missing()}")
    server = start_server(trained_job / "model", tmp_path_factory.mktemp("endpoint"),
                          env={"SAGEMAKER_MODEL_SERVER_WORKERS": "1", "CLASSIFIER_THREADS_PER_WORKER": "1"})
    try:
        yield server
    finally:
        server.stop()
