"""The shared feature cache under faults: a truncated file is named and rebuilt, a full disk leaves the jobs to
compute their own features, and a data layout error is a one-line error, never a traceback; a local tuning job
whose cached path meets a layout error ends Failed, and its study file gone or corrupt is a one-line error."""
import errno
import re
import shutil
from pathlib import Path

import pytest

from classifier.training import feature_cache
from helpers import FAST_HP
from scripts import job_definition
from scripts.local import features, jobs, train, tune, tuning_jobs

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


# --- a local tuning job (issue 24 item 6) ---------------------------------------------------------------------------
def test_a_layout_error_on_the_cached_path_ends_the_tuning_job_failed(image_set, jobs_dir, tmp_path, capsys):
    """The cache is filled before the trials (every trial shares it): a data set whose valid/ lacks a class of train/
    fails there. The tuning job ends Failed with the reason, one line, never stuck InProgress."""
    data = shutil.copytree(image_set, tmp_path / "data")
    shutil.rmtree(next((data / "valid").iterdir()))
    hp = " ".join(f"{k}={v}" for k, v in {**VALUES, "epochs": "1"}.items())
    assert tune.main(["--data", str(data), "--max-jobs", "2", "--max-parallel", "1", "--hp", hp]) == 2
    err = capsys.readouterr().err
    assert re.match(r"error: tuning job \S+ failed: channel 'valid' does not hold the same classes", err), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    [directory] = tuning_jobs.tuning_root().iterdir()
    record, _ = tuning_jobs.read(directory)
    assert record["status"] == "Failed" and record["failure_reason"].startswith("channel 'valid' does not hold")
    assert record["ended"]


def ran_tuning_job(image_set) -> tuple[Path, Path]:
    """A tuning job whose first trial ran: its record, its study and a trial job."""
    directory = tune.create_tuning(job_definition.load(), image_set)
    tuner = tune.Tuner(directory)
    study = tuner.study()
    study.enqueue_trial({"lr": 0.01}, skip_if_exists=False)
    jobs.create_job(job_definition.load(), image_set, {}, trial=jobs.Trial(tuner.name, 1))
    tuner.update(status="Stopped")
    return directory, directory / tuning_jobs.STUDY_FILE


def test_a_deleted_study_is_an_error_not_a_new_tuning(image_set, jobs_dir, capsys):
    """A new, empty study would number the trials from 1 again and print values the existing jobs never ran with."""
    directory, storage = ran_tuning_job(image_set)
    storage.unlink()
    assert tune.main(["--resume", directory.name]) == 2
    err = capsys.readouterr().err
    assert re.match(rf"error: {storage} is missing, but tuning job {directory.name} has run before "
                    r"\(1 trial job\(s\)\): .*restore it from a copy to resume, or start a new tuning job", err), err
    assert not storage.exists()  # nothing made in its place
    assert tuning_jobs.read(directory)[0]["status"] == "Stopped"


def test_a_corrupt_study_is_one_line_and_left_as_it_is(image_set, jobs_dir, capsys):
    directory, storage = ran_tuning_job(image_set)
    storage.write_bytes(storage.read_bytes()[:4096])  # cut short
    before = storage.read_bytes()
    assert tune.main(["--resume", directory.name]) == 2
    err = capsys.readouterr().err
    assert re.match(rf"error: {storage} cannot be read \((database disk image is malformed|file is not a database)\); "
                    "restore it", err), err
    assert "Traceback" not in err and "sqlalche" not in err
    assert storage.read_bytes() == before
    # The tuning report still renders, and says why pruned trials cannot be told apart.
    tune.Tuner(directory).update(trials=[])
    from scripts.reports import tuning_local

    assert "is missing or unreadable" in " ".join(tuning_local.load(directory).notes)
