"""The shared feature cache under faults: a truncated file is named and rebuilt, a full disk leaves the jobs to
compute their own features, and a data layout error is a one-line error, never a traceback."""
import errno
import shutil

import pytest

from classifier.training import feature_cache
from helpers import FAST_HP
from scripts import job_definition
from scripts.local import features, jobs, train

VALUES = {**FAST_HP, "debugger": "false", "profiler": "false"}


@pytest.fixture
def jobs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("JOBS_DIR", str(tmp_path))
    monkeypatch.setattr(jobs, "JOBS_ROOT", tmp_path)
    monkeypatch.setattr(features, "_FILLED", set())
    return tmp_path


@pytest.mark.slow
def test_a_truncated_cache_file_is_named_and_rebuilt(image_set, jobs_dir):
    lines = []
    assert features.prepare(VALUES, image_set, lines.append) is not None
    [stored] = list(jobs.feature_cache_dir().rglob(feature_cache.FEATURES_FILE))
    complete = stored.read_bytes()
    stored.write_bytes(complete[: len(complete) // 3])
    features._FILLED.clear()
    lines.clear()
    assert features.prepare(VALUES, image_set, lines.append) is not None
    assert any(f"feature cache {stored} is unreadable" in line for line in lines), lines
    assert any("160 new of 160 images" in line for line in lines), lines
    assert len(feature_cache.load(stored.parent.parent, stored.parent.name)) == 160


@pytest.mark.slow
def test_a_full_disk_leaves_the_jobs_to_compute_their_own_features(image_set, jobs_dir, monkeypatch):
    def full(path, write):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(feature_cache, "atomic_write_bytes", full)
    lines = []
    assert features.prepare(VALUES, image_set, lines.append) is None
    assert any(line.startswith("Feature cache not used: cannot write the feature cache") and "No space left" in line
               for line in lines), lines
    job = train.prepare_job(job_definition.load(), image_set, given=VALUES, echo=lines.append)
    assert "feature_cache" not in jobs.read_record(job)["channels"]  # the job computes its features itself


def test_a_layout_error_is_one_line(image_set, jobs_dir, tmp_path, capsys):
    data = shutil.copytree(image_set, tmp_path / "data")
    shutil.rmtree(next((data / "valid").iterdir()))  # valid lacks a class of train
    hp = " ".join(f"{k}={v}" for k, v in VALUES.items())
    assert train.main(["--data", str(data), "--hp", hp, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: channel 'valid' does not hold the same classes") and "Traceback" not in err
