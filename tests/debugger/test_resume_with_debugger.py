"""A training job with the debugger and profiler on (the job definition's default), SIGKILLed at random moments
and resumed each time on the same /opt/ml tree, on the image path and on the feature-cache path: no run may
hang, and the job must complete with the hook's tensors of its last run, a result for every rule and the report.

The killed runs are forked from a server that imported torch and smdebug once (multiprocessing's forkserver):
each run costs its own work only, not 5-10 s of interpreter start, so ten kills per path fit the suite. The
final resume is `make train-local JOB=<name>`'s (scripts.local.jobs.run_job, through the training toolkit).
"""
import json
import multiprocessing
import os
import random
import sys
import time
from pathlib import Path

import pytest

from classifier.debugger import config
from classifier.debugger.tensors import TensorReader
from helpers import FAST_HP, args, write_image_set
from scripts import job_definition
from scripts.local import jobs

pytestmark = pytest.mark.slow  # jobs killed and resumed through the toolkit

KILLS = 10  # per path
RUN_LIMIT_S = 240  # a run still going after this long hangs (a whole run takes 5-20 s on 2 busy cores)
HP = {**FAST_HP, "epochs": "2", "debugger": "true", "profiler": "true", "debugger_train_interval": "2",
      "debugger_eval_interval": "1", "profiler_interval_ms": "50"}
# When to kill: once this run's hook has claimed smdebug's output folder (claim.smd, before it has written
# its collections: the reported hang), or once a log line shows a phase, each plus a random delay. Every
# run that has work left passes all of them.
MOMENTS = ["claim", "claim", "Initialisation took", "[metrics] ", "Rules after epoch",
           "Copied the smdebug tensors"]
PRELOAD = ["torch", "torchvision", "smdebug.pytorch", "smdebug.trials", "matplotlib.pyplot",
           "classifier.training.main", "classifier.debugger.session", "classifier.debugger.report"]


def run_training(job: str, argv: list[str]) -> None:
    """One run of the training program on the job's /opt/ml tree (in a forked process), output to its log."""
    log = os.open(Path(job) / jobs.LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.stdout.reconfigure(line_buffering=True)
    os.environ["SAGEMAKER_BASE_DIR"] = job
    from classifier.training.main import main

    sys.exit(main(argv))


def run_until(context, job: Path, hp: dict, moment: str, delay: float) -> str:
    """Run (or resume) the job; SIGKILL it at `delay` s after `moment`. 'killed', 'completed', or 'failed'."""
    log = job / jobs.LOG
    log.touch()
    offset = log.stat().st_size
    started = time.time()
    process = context.Process(target=run_training, args=(str(job), args(hp)))
    process.start()
    reached = None
    try:
        while process.exitcode is None:
            now = time.time()
            if reached is None and moment == "claim":
                claim = job / "output" / "tensors" / "claim.smd"
                if claim.exists() and claim.stat().st_mtime >= started - 0.01:  # made by this run
                    reached = now
            elif reached is None:
                with open(log, errors="replace") as handle:
                    handle.seek(offset)
                    if moment in handle.read():
                        reached = now
            if reached is not None and now >= reached + delay:
                process.kill()
                process.join()
                return "killed"
            assert now - started < RUN_LIMIT_S, f"the run hangs:\n{log_tail(job)}"
            time.sleep(0.01)
    finally:
        if process.exitcode is None:
            process.kill()
            process.join()
    return "completed" if process.exitcode == 0 else "failed"


@pytest.fixture(scope="module")
def forked():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    return write_image_set(tmp_path_factory.mktemp("resume") / "set", classes=4, train=12, valid=6, test=4, size=40)


def fill_feature_cache(cache: Path, data: Path, hp: dict) -> None:
    """The backbone features of the train and valid images, as a tuning job caches them before its trials,
    with the training job's own functions; `feature_cache` is then a channel of the job."""
    import torch

    from classifier.model import build_model, find_pretrained_weights, get_architecture
    from classifier.training import feature_cache
    from classifier.training.data import scan_channel

    name = hp["model_name"]
    arch = get_architecture(name)
    preprocessing = arch.preprocessing(int(hp["image_size"]))
    train = scan_channel("train", data / "train")
    channels = [train, scan_channel("valid", data / "valid", train.classes)]
    weights = find_pretrained_weights(arch)
    key = feature_cache.model_key(name, weights, preprocessing)  # as the training job computes it
    assert feature_cache.build(cache, key, channels, build_model(name, len(train.classes)), preprocessing, 64,
                               0, torch.device("cpu")) == sum(len(c.samples) for c in channels)


def log_tail(job: Path, chars: int = 3000) -> str:
    return (job / jobs.LOG).read_text(errors="replace")[-chars:]


def check_completed(job: Path) -> None:
    output = job / "output" / "data"
    assert (job / "output" / "success").exists() or (job / "model" / "model.pth").exists(), log_tail(job)
    history = json.loads((output / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    results = {r["rule"]: r for r in json.loads((output / "rules" / "rule_results.json").read_text())["rules"]}
    assert set(results) == set(config.RULES), sorted(results)
    failed = {name: r["message"] for name, r in results.items() if r["status"] not in ("NoIssuesFound", "IssuesFound")}
    assert not failed, (failed, log_tail(job))
    assert results["MaxInitializationTime"]["values"].get("initialization_s", 0) >= 0, results["MaxInitializationTime"]
    status = json.loads((output / "debugger" / "job.json").read_text())
    assert status["status"] == "Completed" and status["hook"] is not None
    # The last run's hook wrote (its test evaluation is there) and released smdebug's claim.
    tensors = job / "output" / "tensors"
    data = TensorReader(tensors).read()
    assert data.error is None, data.error
    epochs = [json.loads(line) for line in (output / "debugger" / "epochs.jsonl").read_text().splitlines()]
    assert max(data.steps("eval")) > max(e["eval_steps"][1] for e in epochs), (data.steps("eval"), epochs)
    assert set(data.steps("train")) >= set(range(0, epochs[-1]["train_steps"][1] + 1, 2))
    assert not (tensors / "claim.smd").exists() and not list(tensors.rglob("*.tmp"))
    assert (output / "debugger-report.html").stat().st_size > 10_000


@pytest.mark.parametrize("path", ["images", "feature_cache"])
def test_killed_at_random_moments_and_resumed_the_job_completes_with_its_rules(path, forked, small_set, tmp_path):
    definition = job_definition.load()
    hp = dict(HP)
    if path == "feature_cache":
        hp["batch_size"] = "4"  # more steps: the head alone trains in milliseconds
        fill_feature_cache(tmp_path / "cache", small_set, hp)
    rng = random.Random(f"{path}-1")
    plan = [(rng.choice(MOMENTS), rng.uniform(0, 0.3) if i % 3 == 0 else rng.uniform(0, 1.5)) for i in range(KILLS)]

    def new_job() -> Path:
        job = jobs.create_job(definition, small_set, hp, root=tmp_path)
        if path == "feature_cache":
            (job / "input" / "data" / "feature_cache").symlink_to(tmp_path / "cache")
        return job

    job, kills, completed = new_job(), [], []
    while len(kills) < KILLS:
        moment, delay = plan[len(kills)]
        outcome = run_until(forked, job, json.loads((job / "input/config/hyperparameters.json").read_text()),
                            moment, delay)
        if outcome == "killed":
            kills.append((moment, round(delay, 2)))
            continue
        assert outcome == "completed", log_tail(job)  # the run ended before its moment came
        check_completed(job)
        completed.append(job)
        job = new_job()
    # The last run was killed: resume as `make train-local JOB=<name>` does.
    record = jobs.run_job(job, definition=definition)
    assert record["status"] == "Completed", log_tail(job)
    check_completed(job)
    logs = [(j / jobs.LOG).read_text(errors="replace") for j in [*completed, job]]
    assert any("Resumed from" in text for text in logs), kills  # some kills came after a checkpoint
    if path == "feature_cache":
        assert all("48 of 48 images from the cache" in text for text in logs)
