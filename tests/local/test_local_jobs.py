"""Local training jobs: the `make train-local` wrapper killed in every way leaves no trainer behind and
`make jobs` tells the truth; a retrain from the shared feature cache equals one without it; a job cannot
run twice at once."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from helpers import FAST_HP
from scripts import job_definition
from scripts.local import features, jobs, jobs_cli, train

# augment: the trainer runs the backbone on images at every step (long enough to be stopped mid-epoch)
HP = " ".join(f"{k}={v}" for k, v in {**FAST_HP, "epochs": "3", "batch_size": "8", "debugger": "false",
                                      "profiler": "false", "augment": "true"}.items())


@pytest.fixture
def jobs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("JOBS_DIR", str(tmp_path))
    monkeypatch.setattr(jobs, "JOBS_ROOT", tmp_path)
    monkeypatch.setattr(features, "_FILLED", set())
    return tmp_path


def wait_until(condition, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def the_job(jobs_dir):
    found = [p for p in jobs_dir.iterdir() if (p / jobs.RECORD).is_file()]
    return found[0] if found else None


@pytest.mark.slow
@pytest.mark.parametrize("kill", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL])
def test_killing_the_wrapper_stops_the_trainer_and_make_jobs_tells(image_set, jobs_dir, kill, capsys):
    """Issue 12 item 5: the trainer runs in its own session; SIGTERM/SIGHUP are passed on, and when the
    wrapper dies outright (SIGKILL) the trainer gets SIGTERM from the kernel and stops at its next step."""
    wrapper = subprocess.Popen([sys.executable, "-m", "scripts.local.train", "--quiet", "--data", str(image_set),
                                "--hp", HP, "--no-cache"], cwd=jobs.REPO_ROOT, env={**os.environ,
                                                                                   "JOBS_DIR": str(jobs_dir)},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    job = wait_until(lambda: the_job(jobs_dir), 120, "the job")
    text = "[metrics] epoch=1" if kill == signal.SIGKILL else "Initialisation took"  # SIGKILL: resume it after
    wait_until(lambda: (job / jobs.LOG).is_file() and text in (job / jobs.LOG).read_text(errors="replace"), 300,
               text)
    trainer = jobs.read_record(job)["pid"]
    os.kill(wrapper.pid, kill)
    output, _ = wrapper.communicate(timeout=150)
    wait_until(lambda: jobs.process_start(trainer) is None, 120, "the trainer to stop")
    if kill != signal.SIGKILL:
        assert wrapper.returncode == 128 + kill, output
        assert f"Resume it: make train-local JOB={job.name}" in output
    assert jobs_cli.main(["list"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(job.name))
    assert row.split()[1] == "Stopped", row
    record = jobs.read_record(job)
    assert record["status"] == "Stopped" and record["pid"] is None
    if kill == signal.SIGKILL:  # it resumes from its checkpoint and finishes
        resumed = train.main(["--resume", job.name, "--quiet"])
        assert resumed == 0 and "Resumed from" in (job / jobs.LOG).read_text()


def test_a_job_does_not_run_twice_at_once(image_set, jobs_dir):
    definition = job_definition.load()
    job = jobs.create_job(definition, image_set, {**FAST_HP, "epochs": "1"})
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        record = jobs.read_record(job)
        record.update(status="InProgress", pid=sleeper.pid, pid_start=jobs.process_start(sleeper.pid),
                      owner_pid=os.getppid(), owner_start=jobs.process_start(os.getppid()))
        jobs.write_record(job, record)
        with pytest.raises(jobs.JobError, match="is running"):
            jobs.run_job(job, definition=definition)
        assert jobs.refresh(job)["status"] == "InProgress"  # its processes live: nothing to correct
    finally:
        sleeper.kill()
        sleeper.wait()
    record = jobs.read_record(job)
    record.update(owner_pid=999999999, owner_start=1)
    jobs.write_record(job, record)
    assert jobs.refresh(job, definition)["status"] == "Stopped"  # both gone, nothing left: stopped


@pytest.mark.slow
def test_a_retrain_from_the_cache_equals_one_without_it_and_fills_it_once(image_set, jobs_dir):
    """Issue 10 item 3: every local job whose features are fixed trains from the shared cache; its final
    model metrics equal those of the same job without the cache. Not bit for bit: the cached features come
    from the cache's own batches (64) and the job's from batches of batch_size, and the CPU kernels round
    differently by batch shape, so losses agree to ~1e-6 relative; we allow 1e-4."""
    definition = job_definition.load().with_overrides(hyperparameters={"model_name": "efficientnet_lite0"})
    given = {**FAST_HP, "epochs": "2", "lr": "0.003", "debugger": "false", "profiler": "false"}
    lines = []
    cached = train.prepare_job(definition, image_set, given=given, echo=lines.append)
    assert any("160 new of 160 images" in line for line in lines), lines
    features_file = next(jobs.feature_cache_dir().rglob("features.pt"))
    filled = features_file.stat().st_mtime_ns
    features._FILLED.clear()  # a new process: it finds the cache on disk
    lines.clear()
    again = train.prepare_job(definition, image_set, given=given, echo=lines.append)
    assert any("0 new of 160 images" in line for line in lines), lines
    assert features_file.stat().st_mtime_ns == filled  # not recomputed, not rewritten
    plain = train.prepare_job(definition, image_set, given=given, use_cache=False)
    assert "feature_cache" in jobs.read_record(cached)["channels"] and "feature_cache" not in \
        jobs.read_record(plain)["channels"]
    records = [jobs.run_job(j, definition=definition) for j in (cached, again, plain)]
    assert [r["status"] for r in records] == ["Completed"] * 3
    for job in (cached, again):
        assert "train': 120 of 120 images from the cache" in (job / jobs.LOG).read_text()
    assert "from the cache" not in (plain / jobs.LOG).read_text()
    metrics = [json.loads((j / "model" / "model_config.json").read_text())["metrics"] for j in (cached, again, plain)]
    assert metrics[0] == metrics[1]  # the same cache, the same job: identical
    for name in ("valid_loss", "test_loss", "valid_accuracy", "test_accuracy"):
        assert metrics[0][name] == pytest.approx(metrics[2][name], rel=1e-4), name


def test_train_local_best_of_a_tuning_job_puts_the_given_values_on_top(image_set, jobs_dir, monkeypatch, capsys):
    """HP="best epochs=1" with TUNING=: the final job gets the best trial's values, the recipe's fine-tuning,
    then epochs=1 on top (locally the best trial's values used to win over the given ones, issue 11), and the
    best trial's model as its init_model; HP="best unfreeze_stages=0" retrains the head alone, from scratch."""
    from scripts import orchestration
    from scripts.local import tuning_jobs

    definition = job_definition.load()
    trial = jobs.create_job(definition, image_set, {**FAST_HP, "lr": "0.02", "epochs": "4"}, root=jobs_dir / "t")
    (trial / "model" / "model_config.json").write_text("{}")
    monkeypatch.setattr(tuning_jobs, "best_trial", lambda name: (
        orchestration.Trial(trial.name, "Completed", 0.5, {"lr": "0.02"}), trial))
    monkeypatch.setattr(jobs, "run_job", lambda job, **kw: {**jobs.read_record(job), "status": "Completed"})
    assert train.main(["--data", str(image_set), "--tuning", "t", "--hp", "best epochs=1", "--no-cache"]) == 0
    final = the_job(jobs_dir)
    values = json.loads((final / "input" / "config" / "hyperparameters.json").read_text())
    assert values["epochs"] == "1" and values["model_name"] == "efficientnet_lite0"
    assert {k: values[k] for k in orchestration.FINE_TUNING} == orchestration.FINE_TUNING
    assert (final / "input" / "data" / "init_model").resolve() == (trial / "model").resolve()
    recorded = jobs.read_record(final)
    assert recorded["final_model"]["job"] == trial.name and not recorded["final_model"]["fine_tuned"]  # no metrics
    assert f"Final model: {trial / 'model'} (the best trial" in capsys.readouterr().out
    shutil.rmtree(final)
    assert train.main(["--data", str(image_set), "--tuning", "t", "--hp", "best unfreeze_stages=0",
                       "--no-cache"]) == 0
    head_only = the_job(jobs_dir)
    assert "init_model" not in jobs.read_record(head_only)["channels"]
    values = json.loads((head_only / "input" / "config" / "hyperparameters.json").read_text())
    assert values["unfreeze_stages"] == "0" and values["lr"] == "0.02"  # the head alone: the trial's tuned rate
    assert train.main(["--data", str(image_set), "--hp", "best epochs=1"]) == 2
    assert "HP=best needs TUNING=" in capsys.readouterr().err
    assert train.main(["--data", str(image_set), "--init-model", "nowhere"]) == 2
    assert "INIT_MODEL=nowhere: 'nowhere' is neither a local job" in capsys.readouterr().err
