"""`make tune-local`: a hyperparameter tuning job on this machine, with SageMaker's semantics.

    python -m scripts.local.tune --data data/fashion-mnist [--max-jobs 4 --max-parallel 2 --strategy Random
                                  --hp "image_size=64"] [--resume <tuning name>]

Each trial is a local training job (scripts/local/jobs.py) named `<tuning name>-NNN`. Its objective is
read from its log with the job definition's metric regex, never passed any other way. Strategies:
Bayesian (Optuna TPE, or GP with --sampler gp), Random, Grid (categorical ranges only) and Hyperband
(Optuna's Hyperband pruner fed with the per-epoch objective); early stopping Auto is the median rule.
A failed trial is recorded with its reason and the tuning goes on. The Optuna study lives in SQLite in
the tuning job's directory, so an interrupted tuning job resumes where it stopped: finished trials are
kept and an interrupted trial's training job resumes from its checkpoint.

With `freeze_backbone=true` and `augment=false` the backbone's features are computed once per image
into the tuning job's `feature-cache/` and every trial trains the head from them.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import optuna

from classifier.artifact import atomic_write_json
from classifier.training import hyperparameters as hp_specs
from scripts import job_definition
from scripts.job_definition import JobDefinition
from scripts.local import jobs
from scripts.local.jobs_cli import table

RECORD = "tuning.json"
EPOCH = re.compile(r"\bepoch=(\d+)")


class TrialFailed(Exception):
    """A trial's training job failed; its reason is recorded and the tuning goes on."""


def tuning_root() -> Path:
    return jobs.JOBS_ROOT / "tuning"


def new_tuning_name(prefix: str) -> str:
    # SageMaker: at most 32 characters. The trials add -NNN.
    return f"{prefix}-{datetime.now().strftime('%y%m%d-%H%M%S')}"[:32]


def suggest(trial: optuna.Trial, definition: JobDefinition) -> dict[str, str]:
    """One value per range, as the strings SageMaker would send."""
    values = {}
    for r in definition.ranges:
        if r.type == "Categorical":
            values[r.name] = str(trial.suggest_categorical(r.name, r.values))
        elif r.type == "Integer":
            values[r.name] = str(trial.suggest_int(r.name, int(r.min), int(r.max), log=r.scaling == "Logarithmic"))
        else:
            values[r.name] = repr(trial.suggest_float(r.name, r.min, r.max, log=r.scaling == "Logarithmic"))
    return values


def make_sampler(definition: JobDefinition, sampler: str, seed: int):
    if definition.strategy == "Grid":
        return optuna.samplers.GridSampler({r.name: r.values for r in definition.ranges}, seed=seed)
    if definition.strategy == "Random":
        return optuna.samplers.RandomSampler(seed=seed)
    if sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=max(2, definition.max_jobs // 3))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, definition.max_jobs // 3))


def make_pruner(definition: JobDefinition):
    if definition.strategy == "Hyperband":
        return optuna.pruners.HyperbandPruner(definition.hyperband_min_resource, definition.hyperband_max_resource)
    if definition.early_stopping == "Auto":  # SageMaker's median stopping rule
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    return optuna.pruners.NopPruner()


def uses_feature_cache(definition: JobDefinition) -> bool:
    tuned = {r.name for r in definition.ranges}
    if tuned & {"freeze_backbone", "augment", "model_name", "image_size", "pretrained", "seed"}:
        return False
    hp = hp_specs.parse(definition.static_hyperparameters)
    # A random-init backbone is not a stable cache key (and frozen, it is of no use).
    return hp.freeze_backbone and not hp.augment and hp.pretrained


def build_feature_cache(definition: JobDefinition, data: Path, cache_dir: Path, echo) -> None:
    """Backbone features of every train/valid image, computed once with the training job's own code."""
    import torch

    from classifier.model import build_model, find_pretrained_weights, get_architecture
    from classifier.training import feature_cache
    from classifier.training.data import scan_channel, verify_images
    from classifier.training.main import find_weights_file

    hp = hp_specs.parse(definition.static_hyperparameters)
    arch = get_architecture(hp.model_name)
    preprocessing = arch.preprocessing(hp.image_size)
    weights = None
    if hp.pretrained:
        weights = find_weights_file(data / "weights") if (data / "weights").exists() else find_pretrained_weights(arch)
    train = verify_images(scan_channel("train", data / "train"), 1, skip_bad=True)
    channels = [train, verify_images(scan_channel("valid", data / "valid", train.classes), 1, skip_bad=True)]
    model = build_model(hp.model_name, len(train.classes), hp.pretrained, True, weights)
    key = feature_cache.model_key(hp.model_name, weights, preprocessing)
    started = time.time()
    added = feature_cache.build(cache_dir, key, channels, model, preprocessing, 64, jobs_workers(), torch.device("cpu"))
    echo(f"Feature cache {cache_dir.name}/{key}: {added} new images in {time.time() - started:.1f}s")


def jobs_workers() -> int:
    return hp_specs.resolve_num_workers("auto")


class Tuner:
    def __init__(self, directory: Path, echo=print):
        self.dir = Path(directory)
        self.echo = echo
        self.record = json.loads((self.dir / RECORD).read_text())
        self.definition = job_definition.from_dict(self.record["definition"], Path(self.record["definition_path"]))
        self.data = Path(self.record["data"])
        self.lock = threading.Lock()

    # --- one trial ------------------------------------------------------------------------------
    def objective(self, trial: optuna.Trial) -> float:
        definition = self.definition
        shown = suggest(trial, definition)  # an enqueued (interrupted) trial gets its former values back
        resume = trial.user_attrs.get("resume_job")
        if resume:
            job = Path(resume)
        else:
            extra_channels = {"feature_cache": self.dir / "feature-cache"} if self.record["feature_cache"] else None
            job = jobs.create_job(definition, self.data,
                                  {**shown, "_tuning_objective_metric": definition.objective_metric},
                                  root=jobs.JOBS_ROOT, name=f"{self.record['name']}-{trial.number + 1:03d}",
                                  extra={"tuning_job": self.record["name"], "trial": trial.number + 1},
                                  extra_channels=extra_channels, validate=False,
                                  # The test set is never used for selection: trials do not see it.
                                  channels_wanted=["train", "valid", "weights"])
        trial.set_user_attr("job", str(job))
        regex = definition.metric_regexes()[definition.objective_metric]
        reported = {"pruned": False}

        def watch(line: str, process) -> bool:
            match, epoch = regex.search(line), EPOCH.search(line)
            if not (match and epoch):  # per-epoch values only, at their epoch (also after a resume)
                return False
            try:
                value = float(match.group(1))
            except ValueError:
                return False
            trial.report(value, int(epoch.group(1)))
            if trial.should_prune():
                reported["pruned"] = True
                os.killpg(process.pid, signal.SIGTERM)
                return True
            return False

        started = time.time()
        record = jobs.run_job(job, definition=definition, on_line=watch, env=self.thread_env())
        value = (record.get("metrics") or {}).get(definition.objective_metric)
        outcome = record["status"] if not reported["pruned"] else "Stopped (early stopping)"
        self.echo(f"[trial {trial.number + 1}/{definition.max_jobs}] {job.name} "
                  + " ".join(f"{k}={v}" for k, v in shown.items())
                  + f" -> {outcome}" + (f" {definition.objective_metric}={value:.4f}" if value is not None else "")
                  + (f": {record.get('failure_reason')}" if record["status"] == "Failed" else "")
                  + f" ({time.time() - started:.0f}s)")
        if reported["pruned"]:
            raise optuna.TrialPruned()
        if record["status"] == "Stopped":  # the tuning job itself was interrupted: resume this trial later
            trial.set_user_attr("interrupted", True)
        if record["status"] != "Completed":
            trial.set_user_attr("failure_reason", record.get("failure_reason") or record["status"])
            raise TrialFailed(record.get("failure_reason") or record["status"])
        if value is None:
            reason = f"the objective metric {definition.objective_metric} was not found in the log"
            trial.set_user_attr("failure_reason", reason)
            raise TrialFailed(reason)
        return value

    def thread_env(self) -> dict:
        # Parallel trials share the cores instead of each taking all of them.
        threads = max(1, (os.cpu_count() or 1) // self.definition.max_parallel_jobs)
        return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}

    # --- the whole tuning job -------------------------------------------------------------------
    def study(self) -> optuna.Study:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return optuna.create_study(
            study_name=self.record["name"], storage=f"sqlite:///{self.dir / 'optuna.db'}", load_if_exists=True,
            direction="minimize" if self.definition.minimize() else "maximize",
            sampler=make_sampler(self.definition, self.record["sampler"], self.record["seed"]),
            pruner=make_pruner(self.definition))

    def recover_interrupted(self, study: optuna.Study) -> int:
        """Trials an interrupted run left RUNNING (killed) or stopped: enqueue them again to resume their job."""
        count = 0
        for trial in study.get_trials(deepcopy=False):
            killed = trial.state == optuna.trial.TrialState.RUNNING
            stopped = trial.user_attrs.get("interrupted") and not trial.user_attrs.get("requeued")
            if not (killed or stopped):
                continue
            study._storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
            study._storage.set_trial_user_attr(trial._trial_id, "requeued", True)
            if killed:
                study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
            job = trial.user_attrs.get("job")
            if job and Path(job, jobs.RECORD).is_file():
                study.enqueue_trial(trial.params, user_attrs={"resume_job": job})
            count += 1
        return count

    def finished(self, study) -> int:
        done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
        return sum(1 for t in study.get_trials(deepcopy=False, states=done) if not t.user_attrs.get("interrupted"))

    def run(self) -> dict:
        with open(self.dir / ".lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise jobs.JobError(f"tuning job {self.record['name']} is running in another process") from None
            study = self.study()
            interrupted = self.recover_interrupted(study)
            if interrupted:
                self.echo(f"Resuming {self.record['name']}: {interrupted} interrupted trial(s) "
                          "will continue from their checkpoints")
            if self.record["feature_cache"]:
                build_feature_cache(self.definition, self.data, self.dir / "feature-cache", self.echo)
            self.update(status="InProgress")
            remaining = self.definition.max_jobs - self.finished(study)
            if remaining > 0:
                study.optimize(self.objective, n_trials=remaining, n_jobs=self.definition.max_parallel_jobs,
                               catch=(TrialFailed,))
            return self.summarise(study)

    def summarise(self, study) -> dict:
        trials = []
        for t in study.get_trials(deepcopy=False):
            if t.user_attrs.get("interrupted"):
                continue
            job = Path(t.user_attrs["job"]) if "job" in t.user_attrs else None
            record = jobs.read_record(job) if job and (job / jobs.RECORD).is_file() else {}
            status = {"COMPLETE": "Completed", "PRUNED": "Stopped", "FAIL": "Failed"}.get(t.state.name, t.state.name)
            trials.append({"trial": t.number + 1, "job": job.name if job else None, "status": status,
                           "objective": t.value, "failure_reason": t.user_attrs.get("failure_reason"),
                           "duration_seconds": record.get("duration_seconds"),
                           "hyperparameters": {r.name: record.get("hyperparameters", {}).get(r.name)
                                               for r in self.definition.ranges}})
        completed = [t for t in trials if t["status"] == "Completed" and t["objective"] is not None]
        pick = min if self.definition.minimize() else max
        best = pick(completed, key=lambda t: t["objective"]) if completed else None
        status = "Completed" if self.finished(study) >= self.definition.max_jobs else "Stopped"
        if not completed:
            status = "Failed"
        self.update(status=status, trials=trials, best=best, ended=jobs.now())
        return self.record

    def update(self, **fields) -> None:
        self.record.update(fields)
        atomic_write_json(self.dir / RECORD, self.record)


def create_tuning(definition: JobDefinition, data: Path, sampler: str = "tpe", seed: int = 0,
                  use_cache: bool = True) -> Path:
    jobs.check_data_dir(data, definition.required_channels, definition.optional_channels)
    root = tuning_root()
    root.mkdir(parents=True, exist_ok=True)
    name = new_tuning_name(definition.name_prefix)
    while (root / name).exists():
        time.sleep(1)
        name = new_tuning_name(definition.name_prefix)
    directory = root / name
    (directory / "feature-cache").mkdir(parents=True)
    atomic_write_json(directory / RECORD, {
        "name": name, "status": "Created", "created": jobs.now(), "data": str(Path(data).resolve()),
        "definition": definition.raw, "definition_path": str(definition.path), "sampler": sampler, "seed": seed,
        "strategy": definition.strategy, "objective": {"metric": definition.objective_metric,
                                                        "type": definition.objective_type},
        "feature_cache": bool(use_cache and uses_feature_cache(definition)),
    })
    return directory


def resolve_tuning(name: str) -> Path:
    for candidate in (Path(name), tuning_root() / name):
        if (candidate / RECORD).is_file():
            return candidate
    raise jobs.JobError(f"no local tuning job {name!r} in {tuning_root()}")


def best_hyperparameters(name: str) -> dict[str, str]:
    """The best trial's full hyperparameters (for `make train-local HP=best TUNING=...`)."""
    record = json.loads((resolve_tuning(name) / RECORD).read_text())
    if not record.get("best"):
        raise jobs.JobError(f"tuning job {name} has no completed trial")
    values = jobs.read_record(jobs.resolve_job(record["best"]["job"]))["hyperparameters"]
    return {k: v for k, v in values.items() if not hp_specs.is_ignored(k)}


def print_summary(record: dict, definition: JobDefinition) -> None:
    rows = [[t["trial"], t["job"] or "", t["status"], "" if t["objective"] is None else f"{t['objective']:.4f}",
             "" if t["duration_seconds"] is None else f"{t['duration_seconds']:.0f}s",
             " ".join(f"{k}={v}" for k, v in t["hyperparameters"].items()),
             (t["failure_reason"] or "")[:80]] for t in record.get("trials", [])]
    print(table(rows, ["trial", "training job", "status", definition.objective_metric, "duration",
                       "hyperparameters", "failure reason"]))
    best = record.get("best")
    print(f"Tuning job {record['name']}: {record['status']}")
    if best:
        print(f"Best training job: {best['job']} {definition.objective_metric}={best['objective']:.4f} "
              + " ".join(f"{k}={v}" for k, v in best["hyperparameters"].items()))
        print(f"Retrain it: make train-local HP=best TUNING={record['name']}")


def interrupt(signum, frame):
    """Ctrl-C: stop every trial's training job (they run in their own sessions), then stop the tuner."""
    jobs.stop_all()
    raise KeyboardInterrupt


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="folder with train/ valid/ [test/]")
    parser.add_argument("--resume", help="a tuning job name to continue")
    parser.add_argument("--max-jobs", type=int)
    parser.add_argument("--max-parallel", type=int)
    parser.add_argument("--strategy", choices=job_definition.STRATEGIES)
    parser.add_argument("--early-stopping", choices=("Off", "Auto"))
    parser.add_argument("--hp", default="", help='fixed hyperparameters for this run: "image_size=64 model_name=..."')
    parser.add_argument("--sampler", choices=("tpe", "gp"), default="tpe", help="for the Bayesian strategy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-cache", action="store_true", help="do not use the frozen-backbone feature cache")
    parser.add_argument("--job-definition")
    args = parser.parse_args(argv)
    try:
        if args.resume:
            directory = resolve_tuning(args.resume)
        else:
            if not args.data:
                parser.error("--data is required (or --resume)")
            definition = job_definition.load(args.job_definition).with_overrides(
                max_jobs=args.max_jobs, max_parallel_jobs=args.max_parallel, strategy=args.strategy,
                early_stopping=args.early_stopping, hyperparameters=job_definition.parse_hp_string(args.hp))
            directory = create_tuning(definition, Path(args.data), args.sampler, args.seed, not args.no_cache)
        tuner = Tuner(directory)
        definition = tuner.definition
        print(f"Tuning job {tuner.record['name']} in {directory}: {definition.strategy}, {definition.max_jobs} trials, "
              f"{definition.max_parallel_jobs} in parallel, objective {definition.objective_type} "
              f"{definition.objective_metric}, feature cache {'on' if tuner.record['feature_cache'] else 'off'}",
              flush=True)
        previous = signal.signal(signal.SIGINT, interrupt)
        try:
            record = tuner.run()
        finally:
            signal.signal(signal.SIGINT, previous)
    except KeyboardInterrupt:
        print(f"Interrupted: running trials were stopped. Resume with: make tune-local TUNING={directory.name}",
              file=sys.stderr)
        return 130
    except (jobs.JobError, hp_specs.HyperparameterError, job_definition.JobDefinitionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print_summary(record, definition)
    return 0 if record["status"] != "Failed" else 1


if __name__ == "__main__":
    sys.exit(main())
