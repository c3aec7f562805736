"""Local tuning jobs end to end: trials, a planted failure, Ctrl-C/SIGTERM and SIGKILL then resume, the
shared feature cache."""
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from helpers import FAST_HP
from scripts import job_definition, orchestration
from scripts.local import features, jobs, tune, tuning_jobs

TINY = " ".join(f"{k}={v}" for k, v in {**FAST_HP, "epochs": "2"}.items())


@pytest.fixture
def jobs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("JOBS_DIR", str(tmp_path))
    monkeypatch.setattr(jobs, "JOBS_ROOT", tmp_path)
    monkeypatch.setattr(features, "_FILLED", set())
    return tmp_path


def start_tuner(image_set, jobs_dir, *args) -> subprocess.Popen:
    env = {**os.environ, "JOBS_DIR": str(jobs_dir)}
    return subprocess.Popen([sys.executable, "-m", "scripts.local.tune", *args], cwd=jobs.REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def run_tuner(image_set, jobs_dir, *args, timeout=900) -> subprocess.CompletedProcess:
    env = {**os.environ, "JOBS_DIR": str(jobs_dir)}
    return subprocess.run([sys.executable, "-m", "scripts.local.tune", *args], capture_output=True, text=True,
                          cwd=jobs.REPO_ROOT, env=env, timeout=timeout)


def wait_for_training(job_glob, jobs_dir, deadline, text="Initialisation took", after: int = 0):
    """The trial job matching `job_glob` once its log shows `text` (past byte `after`)."""
    while time.time() < deadline:
        found = sorted(jobs_dir.glob(job_glob))
        log = found[0] / jobs.LOG if found else None
        if log is not None and log.exists() and text in log.read_text(errors="replace")[after:]:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no {job_glob} reached {text!r} in time")


def trial_lines(output: str) -> list[tuple[int, int, str]]:
    return [(int(a), int(b), name) for a, b, name in re.findall(r"^\[trial (\d+)/(\d+)\] (\S+)", output, re.M)]


@pytest.mark.slow
def test_tuning_job_runs_trials_records_a_failure_and_finds_the_best(image_set, jobs_dir):
    # A planted failing trial: 0 is not a valid batch size; Grid tries every value.
    raw = job_definition.load().with_overrides(
        hyperparameters=job_definition.parse_hp_string(TINY + " lr=0.003")).to_dict()
    raw["strategy"] = "Grid"
    raw["hyperparameter_ranges"] = {"batch_size": {"type": "Categorical", "values": [16, 0, 32]}}
    del raw["static_hyperparameters"]["batch_size"]
    definition = job_definition.from_dict(raw, job_definition.DEFAULT_PATH)
    assert definition.limits.max_jobs == 3
    directory = tune.create_tuning(definition, image_set)
    lines = []
    record = tune.Tuner(directory, echo=lines.append).run()
    trials = {t["hyperparameters"]["batch_size"]: t for t in record["trials"]}
    assert trials["0"]["status"] == "Failed" and "batch_size='0'" in trials["0"]["failure_reason"]
    assert trials["16"]["status"] == trials["32"]["status"] == "Completed"
    best = record["best"]
    assert best["objective"] == min(trials[b]["objective"] for b in ("16", "32"))
    # The objective is what the job definition's regex reads in the trial's log (last value).
    log_text = (jobs_dir / best["job"] / jobs.LOG).read_text()
    assert definition.parse_metrics(log_text)["valid_loss"][-1] == pytest.approx(best["objective"])
    # The shared feature cache, filled once before the trials, and used by each of them
    assert record["feature_cache"] is True and any(jobs.feature_cache_dir().rglob("features.pt"))
    assert sum("Feature cache" in line for line in lines) == 1
    for batch in ("16", "32"):
        assert "train': 120 of 120 images from the cache" in (jobs_dir / trials[batch]["job"] / jobs.LOG).read_text()
    failed_job = jobs.read_record(jobs_dir / trials["0"]["job"])
    assert failed_job["status"] == "Failed" and "batch_size" in failed_job["failure_reason"]
    assert tuning_jobs.best_hyperparameters(record["name"])["batch_size"] == best["hyperparameters"]["batch_size"]
    # trials: train and valid (and the cache), never test; names <tuning>-001...
    assert sorted(t["job"] for t in record["trials"]) == [f"{record['name']}-00{n}" for n in (1, 2, 3)]
    assert jobs.read_record(jobs_dir / best["job"])["channels"] == ["feature_cache", "train", "valid"]


@pytest.mark.slow
def test_killed_tuning_job_resumes_without_repeating_trials_or_values(image_set, jobs_dir):
    """SIGKILL of the tuner in trial 1 (its trial process stops by itself); the resume continues trial 1's job
    from its checkpoint under its number, numbers the next one 2 of 2 (not "3/2"), and does not replay
    trial 1's values with a sampler rebuilt from the same seed (issue 12 item 4)."""
    args = ["--data", str(image_set), "--max-jobs", "2", "--max-parallel", "1", "--strategy", "Random",
            "--hp", TINY + " epochs=3"]
    process = start_tuner(image_set, jobs_dir, *args)
    first = wait_for_training("*-001", jobs_dir, time.time() + 600, text="[metrics] epoch=1")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    name = next((jobs_dir / "tuning").iterdir()).name

    resumed = run_tuner(image_set, jobs_dir, "--resume", name)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "1 interrupted trial(s) will continue" in resumed.stdout
    record = json.loads((jobs_dir / "tuning" / name / tuning_jobs.RECORD).read_text())
    assert [t["job"] for t in record["trials"]] == [f"{name}-001", f"{name}-002"]
    assert all(t["status"] == "Completed" for t in record["trials"]) and record["status"] == "Completed"
    assert jobs.read_record(first)["runs"] == 2  # the interrupted trial's job resumed, not a new one
    assert "Resumed from" in (first / jobs.LOG).read_text()
    assert [(n, total) for n, total, _ in trial_lines(resumed.stdout)] == [(1, 2), (2, 2)]
    lr = [t["hyperparameters"]["lr"] for t in record["trials"]]
    assert lr[0] != lr[1], f"the resumed sampler replayed trial 1's values: {lr}"


@pytest.mark.slow
def test_ctrl_c_and_sigterm_stop_the_tuner_and_its_trial_and_it_resumes(image_set, jobs_dir):
    """Issue 12 item 1: Ctrl-C in trial 1 stops it at its next step and starts no trial 2; the resume, stopped
    by SIGTERM, stops too; the next resume runs every trial once, without UpdateFinishedTrialError."""
    # augment: the trials train on images, long enough to be stopped (the head on features takes no time)
    args = ["--data", str(image_set), "--max-jobs", "2", "--max-parallel", "1", "--strategy", "Random",
            "--hp", TINY + " batch_size=8 augment=true"]
    process = start_tuner(image_set, jobs_dir, *args)
    deadline = time.time() + 600
    first = wait_for_training("*-001", jobs_dir, deadline)
    process.send_signal(signal.SIGINT)  # what Ctrl-C sends the tuner (its trials run in their own sessions)
    asked = time.time()
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    assert time.time() - asked < 60, "the tuner did not stop promptly"
    assert not list(jobs_dir.glob("*-002")), "a new trial started after Ctrl-C:\n" + output
    assert "Resume with: make tune-local TUNING=" in output
    record = jobs.read_record(first)
    assert record["status"] == "Stopped" and "stopped by SIGTERM" in (record["failure_reason"] or ""), record
    assert not jobs.alive(record.get("pid"), record.get("pid_start"))
    name = next((jobs_dir / "tuning").iterdir()).name

    process = start_tuner(image_set, jobs_dir, "--resume", name)
    wait_for_training("*-001", jobs_dir, deadline, after=(first / jobs.LOG).stat().st_size)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 143, output
    assert "UpdateFinishedTrialError" not in output and not list(jobs_dir.glob("*-002")), output

    resumed = run_tuner(image_set, jobs_dir, "--resume", name)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "UpdateFinishedTrialError" not in resumed.stdout + resumed.stderr
    record = json.loads((jobs_dir / "tuning" / name / tuning_jobs.RECORD).read_text())
    assert [t["job"] for t in record["trials"]] == [f"{name}-001", f"{name}-002"]
    assert all(t["status"] == "Completed" for t in record["trials"]) and record["status"] == "Completed"
    assert [n for n, _, _ in trial_lines(resumed.stdout)] == [1, 2]
    assert jobs.read_record(first)["runs"] == 3


def test_resume_bookkeeping_never_writes_to_finished_trials(tmp_path):
    """The old resume wrote a user attribute to a finished (stopped) trial: UpdateFinishedTrialError."""
    import optuna

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'optuna.db'}", study_name="s")
    for ordinal in (1, 2):
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        trial.set_user_attr("ordinal", ordinal)
        if ordinal == 2:
            trial.set_user_attr("interrupted", True)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, 0.5)
    killed = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})  # left RUNNING by a SIGKILL
    killed.set_user_attr("ordinal", 3)
    tuner = tune.Tuner.__new__(tune.Tuner)
    assert tuner.recover_interrupted(study) == 2
    assert tuner.recover_interrupted(study) == 0  # queued already: not twice
    waiting = study.get_trials(states=[optuna.trial.TrialState.WAITING])
    assert sorted(t.user_attrs["ordinal"] for t in waiting) == [2, 3]
    assert tuner.done(study) == 1


def test_sampler_seed_changes_only_on_resume():
    assert tune.sampler_seed(7, 0) == 7
    assert len({tune.sampler_seed(7, n) for n in range(1, 20)}) == 19


@pytest.mark.slow
def test_feature_cache_gives_the_same_head_training_as_recomputing(image_set, jobs_dir):
    definition = job_definition.load()
    hp = {**FAST_HP, "epochs": "2", "lr": "0.003", "debugger": "false", "profiler": "false"}
    values, _ = orchestration.training_hyperparameters(definition, given=hp)
    cache = features.prepare(values, image_set, echo=lambda line: None)
    assert cache == jobs.feature_cache_dir()
    present = jobs.check_data_dir(image_set, definition)
    with_cache = jobs.create_job(definition, image_set, hp, channels={**present, "feature_cache": cache})
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
    # augmentation makes features change every epoch: no cache is prepared for it, and a job given one anyway
    # does not use it
    augmented = {**hp, "augment": "true", "epochs": "1"}
    assert features.prepare(orchestration.training_hyperparameters(definition, given=augmented)[0], image_set) is None
    job = jobs.create_job(definition, image_set, augmented, channels={**present, "feature_cache": cache})
    assert jobs.run_job(job, definition=definition)["status"] == "Completed"
    assert "feature cache not used" in (job / jobs.LOG).read_text()


def test_tuning_definition_survives_the_record(image_set, jobs_dir):
    definition = job_definition.load().with_overrides(max_jobs=5, strategy="Random",
                                                      hyperparameters={"image_size": "64"})
    tuner = tune.Tuner(tune.create_tuning(definition, image_set))
    assert tuner.definition == definition
    assert dataclasses.asdict(tuner.definition.debugger) == dataclasses.asdict(definition.debugger)
