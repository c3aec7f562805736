"""Local tuning jobs end to end: trials, a planted failure, kill-and-resume, the feature cache."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import FAST_HP
from scripts import job_definition
from scripts.local import jobs, tune

TINY = " ".join(f"{k}={v}" for k, v in {**FAST_HP, "epochs": "2"}.items())


@pytest.fixture
def jobs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("JOBS_DIR", str(tmp_path))
    monkeypatch.setattr(jobs, "JOBS_ROOT", tmp_path)
    return tmp_path


def run_tuner(image_set, *extra, env=None, timeout=900):
    return subprocess.run([sys.executable, "-m", "scripts.local.tune", "--data", str(image_set), *extra],
                          capture_output=True, text=True, cwd=jobs.REPO_ROOT, env=env, timeout=timeout)


def test_tuning_job_runs_trials_records_a_failure_and_finds_the_best(image_set, jobs_dir):
    # A planted failing trial: 0 is not a valid batch size; Grid tries every value.
    definition = job_definition.load().with_overrides(
        strategy="Grid", hyperparameters=job_definition.parse_hp_string(TINY + " lr=0.003"))
    definition.raw["hyperparameter_ranges"] = {"batch_size": {"type": "Categorical", "values": [16, 0, 32]}}
    del definition.raw["static_hyperparameters"]["batch_size"]
    definition = job_definition.from_dict(definition.raw, definition.path)
    assert definition.max_jobs == 3
    directory = tune.create_tuning(definition, image_set)
    record = tune.Tuner(directory, echo=lambda line: None).run()
    trials = {t["hyperparameters"]["batch_size"]: t for t in record["trials"]}
    assert trials["0"]["status"] == "Failed" and "batch_size='0'" in trials["0"]["failure_reason"]
    assert trials["16"]["status"] == trials["32"]["status"] == "Completed"
    best = record["best"]
    assert best["objective"] == min(trials[b]["objective"] for b in ("16", "32"))
    # The objective is what the job definition's regex reads in the trial's log (last value).
    log_text = (jobs_dir / best["job"] / jobs.LOG).read_text()
    assert definition.parse_metrics(log_text)["valid_loss"][-1] == pytest.approx(best["objective"])
    assert record["feature_cache"] is True and any((directory / "feature-cache").rglob("features.pt"))
    failed_job = jobs.read_record(jobs_dir / trials["0"]["job"])
    assert failed_job["status"] == "Failed" and "batch_size" in failed_job["failure_reason"]
    assert tune.best_hyperparameters(record["name"])["batch_size"] == best["hyperparameters"]["batch_size"]


def test_killed_tuning_job_resumes_without_duplicated_trials(image_set, jobs_dir):
    env = {**os.environ, "JOBS_DIR": str(jobs_dir)}
    args = ["--max-jobs", "3", "--max-parallel", "1", "--strategy", "Random", "--hp", TINY + " epochs=3"]
    process = subprocess.Popen([sys.executable, "-m", "scripts.local.tune", "--data", str(image_set), *args],
                               cwd=jobs.REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    deadline = time.time() + 600
    for line in process.stdout:  # wait until trial 1 is done and trial 2 has started training
        if line.startswith("[trial 1/3]"):
            break
        assert time.time() < deadline
    second = None
    while time.time() < deadline and second is None:
        found = sorted(jobs_dir.glob("*-002"))
        log = found[0] / jobs.LOG if found else None
        if log is not None and log.exists() and "[metrics] epoch=1" in log.read_text(errors="replace"):
            second = found[0]
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert second is not None
    name = next((jobs_dir / "tuning").iterdir()).name

    resumed = run_tuner(image_set, "--resume", name, env=env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "interrupted trial(s) will continue" in resumed.stdout
    record = json.loads((jobs_dir / "tuning" / name / tune.RECORD).read_text())
    names = [t["job"] for t in record["trials"]]
    assert len(record["trials"]) == 3 and len(set(names)) == 3 and record["status"] == "Completed"
    assert all(t["status"] == "Completed" for t in record["trials"])
    assert jobs.read_record(second)["runs"] == 2  # the interrupted trial's job resumed, not a new one
    assert "Resumed from" in (second / jobs.LOG).read_text()
    assert (jobs.read_record(jobs_dir / names[0]))["runs"] == 1  # finished trials are not run again


def test_feature_cache_gives_the_same_head_training_as_recomputing(image_set, jobs_dir):
    definition = job_definition.load()
    hp = {**FAST_HP, "epochs": "2", "lr": "0.003"}
    directory = tune.create_tuning(definition.with_overrides(hyperparameters=hp), image_set)
    cache = directory / "feature-cache"
    tune.build_feature_cache(tune.Tuner(directory).definition, image_set, cache, echo=lambda line: None)
    with_cache = jobs.create_job(definition, image_set, hp, extra_channels={"feature_cache": cache})
    without = jobs.create_job(definition, image_set, hp)
    for job in (with_cache, without):
        assert jobs.run_job(job, definition=definition)["status"] == "Completed"
    assert "of 120 images from the cache" not in (without / jobs.LOG).read_text()
    assert "train': 120 of 120 images from the cache" in (with_cache / jobs.LOG).read_text()
    histories = [json.loads((j / "output" / "data" / "metrics.json").read_text())["history"]
                 for j in (with_cache, without)]
    for cached, computed in zip(*histories, strict=True):
        assert cached["valid_loss"] == pytest.approx(computed["valid_loss"], rel=1e-4)
        assert cached["train_loss"] == pytest.approx(computed["train_loss"], rel=1e-4)
    # augmentation makes features change every epoch: the cache is not used then
    augmented = jobs.create_job(definition, image_set, {**hp, "augment": "true", "epochs": "1"},
                                extra_channels={"feature_cache": cache})
    assert jobs.run_job(augmented, definition=definition)["status"] == "Completed"
    assert "feature cache not used" in (augmented / jobs.LOG).read_text()
