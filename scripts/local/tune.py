"""`make tune-local`: a hyperparameter tuning job on this machine, with SageMaker's semantics.

    python -m scripts.local.tune --data data/fashion-mnist [--max-jobs 4 --max-parallel 2 --strategy Random
                                  --hp "image_size=64"] [--resume <tuning name>]

Each trial is a local training job (scripts/local/jobs.py) named `<tuning name>-NNN`, made the way
scripts/orchestration.py says (static hyperparameters + the tuner's values + `_tuning_objective_metric`;
the data set's channels but test). Its objective is read from its log with the job definition's metric
regex, never passed any other way. Strategies: Bayesian (Optuna TPE, or GP with --sampler gp), Random,
Grid (categorical ranges only) and Hyperband (Optuna's Hyperband pruner fed with the per-epoch objective);
early stopping Auto is the median rule. A failed trial is recorded with its reason and the tuning goes on.

The Optuna study lives in SQLite in the tuning job's directory. Ctrl-C or SIGTERM stops the running trials
(SIGTERM: each stops at its next step, keeping its checkpoint) and starts no new one; a second one kills
them. `--resume` continues: finished trials are kept, an interrupted trial's training job resumes from its
checkpoint under its own name and number, and the sampler does not replay the values already tried.
Trials whose backbone features are fixed train the head from the shared feature cache (features.py); when
orchestration.shared_features says every trial shares them (as `make tune` decides for its feature job), the
cache is filled once before the first trial.
"""
from __future__ import annotations

import argparse
import fcntl
import os
import re
import sys
import threading
import time
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState
from sqlalchemy.exc import SQLAlchemyError

from classifier.artifact import atomic_write_json
from classifier.training import hyperparameters as hp_specs
from classifier.training.data import DataError
from scripts import job_definition, orchestration
from scripts.job_definition import JobDefinition
from scripts.local import features, jobs, tuning_jobs
from scripts.reports import tuning_local


class TrialFailed(Exception):
    """A trial's training job failed; its reason is recorded and the tuning goes on."""


class TrialInterrupted(Exception):
    """The tuning job is being stopped: this trial continues when it is resumed."""


def suggest(trial: optuna.Trial, definition: JobDefinition) -> dict[str, str]:
    """One value per range, as the strings SageMaker would send."""
    values = {}
    for r in definition.ranges:
        if r.type == "Categorical":
            values[r.name] = str(trial.suggest_categorical(r.name, list(r.values)))
        elif r.type == "Integer":
            values[r.name] = str(trial.suggest_int(r.name, int(r.min), int(r.max), log=r.scaling == "Logarithmic"))
        else:
            values[r.name] = repr(trial.suggest_float(r.name, r.min, r.max, log=r.scaling == "Logarithmic"))
    return values


def sampler_seed(seed: int, trials_so_far: int) -> int:
    """The given seed for a new tuning job; on a resume one derived from it and the trials already made,
    so that the rebuilt sampler does not replay the values it drew before."""
    if trials_so_far == 0:
        return seed
    return int(np.random.SeedSequence([seed, trials_so_far]).generate_state(1)[0])


def make_sampler(definition: JobDefinition, sampler: str, seed: int):
    strategy, startup = definition.strategy.name, max(2, definition.limits.max_jobs // 3)
    if strategy == "Grid":
        return optuna.samplers.GridSampler({r.name: list(r.values) for r in definition.ranges}, seed=seed)
    if strategy == "Random":
        return optuna.samplers.RandomSampler(seed=seed)
    if sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


def make_pruner(definition: JobDefinition):
    if definition.strategy.name == "Hyperband":
        return optuna.pruners.HyperbandPruner(definition.strategy.hyperband_min_resource,
                                              definition.strategy.hyperband_max_resource)
    if definition.strategy.early_stopping == "Auto":  # SageMaker's median stopping rule
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    return optuna.pruners.NopPruner()


class PruningWatch:
    """A trial job's log lines, read as they come: each epoch's objective metric goes to the trial, and the
    job is stopped when the pruner says so (`pruned`: early stopping, as SageMaker's tuner does it)."""

    def __init__(self, trial: optuna.Trial, metric: re.Pattern):
        self.trial, self.metric, self.pruned = trial, metric, False

    def __call__(self, line: str, process) -> bool:
        match, epoch = self.metric.search(line), tuning_jobs.EPOCH.search(line)
        if not (match and epoch):  # per-epoch values only, at their epoch (also after a resume)
            return False
        try:
            value = float(match.group(1))
        except ValueError:
            return False
        self.trial.report(value, int(epoch.group(1)))
        if self.trial.should_prune():
            self.pruned = True
            jobs.stop_process(process)
            return True
        return False


class Tuner:
    def __init__(self, directory: Path, echo=print, runs: jobs.Runs | None = None):
        self.dir = Path(directory)
        self.echo = echo
        self.record, self.definition = tuning_jobs.read(self.dir)
        self.data = Path(self.record["data"])
        self.runs = runs or jobs.Runs()
        self.in_trials = False  # a signal then stops the trials rather than interrupting this process
        self._lock = threading.Lock()
        self._last_ordinal = 0

    @property
    def name(self) -> str:
        return self.record["name"]

    # --- one trial ------------------------------------------------------------------------------
    def objective(self, trial: optuna.Trial) -> float:
        definition = self.definition
        shown = suggest(trial, definition)  # a requeued (interrupted) trial gets its former values back
        if self.runs.stopping.is_set():
            trial.set_user_attr("interrupted", True)
            raise TrialInterrupted()
        ordinal = self.trial_ordinal(trial)
        job = self.trial_job(ordinal, shown)
        trial.set_user_attr("job", str(job))
        watch = PruningWatch(trial, definition.metric_regexes()[definition.objective.metric])
        started = time.time()
        try:
            record = jobs.run_job(job, definition=definition, on_line=watch, env=self.thread_env(), runs=self.runs)
        except jobs.JobError:
            if self.runs.stopping.is_set():
                trial.set_user_attr("interrupted", True)
                raise TrialInterrupted() from None
            raise
        metric = definition.objective.metric
        value = (record.get("metrics") or {}).get(metric)
        interrupted = record["status"] == "Stopped" and not watch.pruned and self.runs.stopping.is_set()
        outcome = ("Stopped (early stopping)" if watch.pruned else
                   "Stopped (the tuning job was interrupted; it resumes with it)" if interrupted else record["status"])
        self.echo(f"[trial {ordinal}/{definition.limits.max_jobs}] {job.name} "
                  + " ".join(f"{k}={v}" for k, v in shown.items())
                  + f" -> {outcome}" + (f" {metric}={value:.4f}" if value is not None and not interrupted else "")
                  + (f": {record.get('failure_reason')}" if record["status"] == "Failed" else "")
                  + f" ({time.time() - started:.0f}s)")
        if watch.pruned:
            trial.set_user_attr("failure_reason", "stopped early by the tuner")
            raise optuna.TrialPruned()
        if interrupted:
            trial.set_user_attr("interrupted", True)
            raise TrialInterrupted()
        if record["status"] != "Completed":
            trial.set_user_attr("failure_reason", record.get("failure_reason") or record["status"])
            raise TrialFailed(record.get("failure_reason") or record["status"])
        if value is None:
            reason = f"the objective metric {metric} was not found in the log"
            trial.set_user_attr("failure_reason", reason)
            raise TrialFailed(reason)
        return value

    def trial_ordinal(self, trial: optuna.Trial) -> int:
        """The trial's n: a new one, or the one it had before (a requeued, interrupted trial)."""
        ordinal = trial.user_attrs.get("ordinal")
        if ordinal is None:
            ordinal = self.take_ordinal()
            trial.set_user_attr("ordinal", ordinal)
        return ordinal

    def trial_job(self, ordinal: int, tuned: dict[str, str]) -> Path:
        """Trial n's training job: made once, then resumed under the same name (after an interruption)."""
        trial = jobs.Trial(self.name, ordinal)
        job = jobs.JOBS_ROOT / trial.name
        if (job / jobs.RECORD).is_file():
            return job
        values = orchestration.trial_hyperparameters(self.definition, tuned)
        present = jobs.check_data_dir(self.data, self.definition)
        channels = {c: present[c] for c in orchestration.trial_channels(self.definition, present)}
        if self.record.get("feature_cache", True):
            cache = features.prepare(values, self.data, self.echo)
            if cache is not None:
                channels[self.definition.channels.feature_cache] = cache
        return jobs.create_job(self.definition, self.data, values, channels=channels, trial=trial)

    def take_ordinal(self) -> int:
        with self._lock:
            self._last_ordinal += 1
            return self._last_ordinal

    def thread_env(self) -> dict:
        # Parallel trials share the cores instead of each taking all of them.
        threads = max(1, (os.cpu_count() or 1) // self.definition.limits.max_parallel_jobs)
        return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}

    # --- the study: trials, their numbers, interruptions ------------------------------------------
    def study(self) -> optuna.Study:
        """The Optuna study in optuna.db: made on the first run, read on a resume. A study file that is gone or
        unreadable after trials have run is an error that says so: a new, empty study would number the trials
        from 1 again and print values their existing jobs never ran with."""
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # each trial prints its own line
        storage = self.dir / tuning_jobs.STUDY_FILE
        advice = ("restore it from a copy to resume, or start a new tuning job (make tune-local DATA=...); the "
                  f"trials' jobs and models stay in {jobs.JOBS_ROOT}")
        ran = self.trial_jobs()
        if not storage.is_file() and (ran or self.record.get("status", "Created") != "Created"):
            raise jobs.JobError(f"{storage} is missing, but tuning job {self.name} has run before "
                                f"({len(ran)} trial job(s)): the values its trials were given and their results were "
                                f"recorded there; {advice}")
        try:
            study = optuna.create_study(
                study_name=self.name, storage=f"sqlite:///{storage}", load_if_exists=True,
                direction="minimize" if self.definition.minimize() else "maximize",
                sampler=make_sampler(self.definition, self.record["sampler"], self.record["seed"]),
                pruner=make_pruner(self.definition))
        except SQLAlchemyError as error:
            raise jobs.JobError(f"{storage} cannot be read ({tuning_jobs.study_error(error)}); {advice}") from None
        made = len(study.get_trials(deepcopy=False))
        if made:
            seed = sampler_seed(self.record["seed"], made)
            study.sampler = make_sampler(self.definition, self.record["sampler"], seed)
        return study

    def trial_jobs(self) -> list[Path]:
        """The training jobs this tuning job's trials have made so far."""
        return sorted(job.parent for job in jobs.JOBS_ROOT.glob(f"{self.name}-[0-9]*/{jobs.RECORD}"))

    @staticmethod
    def is_done(t: optuna.trial.FrozenTrial) -> bool:
        return t.state.is_finished() and not t.user_attrs.get("interrupted")

    def recover_interrupted(self, study: optuna.Study) -> int:
        """Queue again each trial an earlier run left unfinished: RUNNING (that process was killed) or
        stopped with the tuning job. The new trial carries the same values and number, so its training job
        resumes from its checkpoint. Finished trials are never written to."""
        trials = study.get_trials(deepcopy=False)
        requeued = {t.user_attrs.get("requeue_of") for t in trials}
        count = 0
        for t in trials:
            if t.state == TrialState.RUNNING:
                study.tell(t.number, state=TrialState.FAIL)
            elif not (t.state == TrialState.FAIL and t.user_attrs.get("interrupted")):
                continue
            if t.number in requeued:
                continue
            attrs = {"requeue_of": t.number}
            if "ordinal" in t.user_attrs:
                attrs["ordinal"] = t.user_attrs["ordinal"]
                count += 1
            study.enqueue_trial(t.params, user_attrs=attrs)
        return count

    def done(self, study: optuna.Study) -> int:
        return sum(1 for t in tuning_jobs.latest_trials(study).values() if self.is_done(t))

    def run(self) -> dict:
        with open(self.dir / ".lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise jobs.JobError(f"tuning job {self.name} is running in another process") from None
            study = self.study()
            try:
                return self._run(study)
            except Exception as error:  # noqa: BLE001 - the job ends Failed with the reason, never stuck InProgress
                reason = tuning_jobs.study_error(error) if isinstance(error, SQLAlchemyError) else str(error)
                self.update(status="Failed", failure_reason=reason, ended=jobs.now())
                if isinstance(error, (DataError, SQLAlchemyError)):
                    raise jobs.JobError(f"tuning job {self.name} failed: {reason}") from None
                raise

    def _run(self, study: optuna.Study) -> dict:
        interrupted = self.recover_interrupted(study)
        if interrupted:
            self.echo(f"Resuming {self.name}: {interrupted} interrupted trial(s) "
                      "will continue from their checkpoints")
        self.update(status="InProgress")
        shared = orchestration.shared_features(self.definition)  # the rule make tune follows on SageMaker
        if self.record.get("feature_cache", True) and shared is not None:
            features.prepare(shared, self.data, self.echo)  # once, before the trials
        self._last_ordinal = max([t.user_attrs.get("ordinal", 0) for t in study.get_trials(deepcopy=False)],
                                 default=0)
        remaining = self.definition.limits.max_jobs - self.done(study)
        if remaining > 0 and not self.runs.stopping.is_set():
            self.in_trials = True
            try:
                study.optimize(self.objective, n_trials=remaining, n_jobs=self.definition.limits.max_parallel_jobs,
                               catch=(TrialFailed, TrialInterrupted), callbacks=[self._stop_when_asked])
            finally:
                self.in_trials = False
        return self.summarise(study)

    def _stop_when_asked(self, study: optuna.Study, trial) -> None:
        if self.runs.stopping.is_set():
            study.stop()  # no new trial; the running ones are being stopped

    def summarise(self, study) -> dict:
        trials = []
        for ordinal, t in sorted(tuning_jobs.latest_trials(study).items()):
            job = jobs.JOBS_ROOT / orchestration.trial_job_name(self.name, ordinal)
            record = jobs.read_record(job) if (job / jobs.RECORD).is_file() else {}
            if t.state == TrialState.COMPLETE:
                status = "Completed"
            elif t.state == TrialState.PRUNED or not self.is_done(t):
                status = "Stopped"
            else:
                status = "Failed"
            reason = t.user_attrs.get("failure_reason") or ("interrupted: resumes with the tuning job"
                                                            if not self.is_done(t) else None)
            trials.append({"trial": ordinal, "job": job.name, "status": status,
                           "objective": t.value if t.state == TrialState.COMPLETE else None,
                           "failure_reason": reason, "duration_seconds": record.get("duration_seconds"),
                           "hyperparameters": {n: record.get("hyperparameters", {}).get(n)
                                               for n in self.definition.tuned_names}})
        best = orchestration.best_trial([tuning_jobs.as_trial(t) for t in trials], self.definition.minimize())
        done = self.done(study)
        completed = any(t["status"] == "Completed" for t in trials)
        status = "Stopped" if done < self.definition.limits.max_jobs else "Completed" if completed else "Failed"
        best_record = next(({k: t[k] for k in ("trial", "job", "objective", "hyperparameters")}
                            for t in trials if best and t["job"] == best.name), None)
        self.update(status=status, trials=trials, best=best_record, ended=jobs.now())
        return self.record

    def update(self, **fields) -> None:
        self.record.update(fields)
        atomic_write_json(self.dir / tuning_jobs.RECORD, self.record)


def create_tuning(definition: JobDefinition, data: Path, sampler: str = "tpe", seed: int = 0,
                  use_cache: bool = True) -> Path:
    jobs.check_data_dir(data, definition)
    root = tuning_jobs.tuning_root()
    root.mkdir(parents=True, exist_ok=True)
    while True:
        name = orchestration.tuning_job_name(definition.name_prefix)
        try:
            (root / name).mkdir()
            break
        except FileExistsError:  # one per second, as the name says
            time.sleep(1)
    directory = root / name
    atomic_write_json(directory / tuning_jobs.RECORD, {
        "name": name, "status": "Created", "created": jobs.now(), "data": str(Path(data).resolve()),
        "definition": definition.to_dict(), "definition_path": str(definition.path), "sampler": sampler,
        "seed": seed, "strategy": definition.strategy.name,
        "objective": {"metric": definition.objective.metric, "type": definition.objective.type},
        "feature_cache": bool(use_cache),
    })
    return directory


def print_summary(record: dict, definition: JobDefinition) -> None:
    trials = [tuning_jobs.as_trial(t) for t in record.get("trials", [])]
    if trials:
        print(orchestration.trials_table(trials, definition))
    best = record.get("best")
    print(f"Tuning job {record['name']}: {record['status']}")
    if best:
        print(f"Best training job: {best['job']} {definition.objective.metric}={best['objective']:.4f} "
              + orchestration.describe_values(best["hyperparameters"]))
        print(f"The final model: make train-local TUNING={record['name']}  (its hyperparameters, the backbone's last "
              f"stage fine-tuned from its head; HP=\"best unfreeze_stages=0\": the head alone)")


def write_report(directory: Path) -> None:
    """The tuning job report (scripts/reports); a report that fails does not fail the tuning job."""
    try:
        print(f"Tuning job report: {tuning_local.write_report(directory)}")
    except Exception as error:  # noqa: BLE001 - the trials are recorded; only the page is missing
        print(f"note: the tuning job report was not written: {type(error).__name__}: {error}", file=sys.stderr)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="folder with train/ valid/ [test/]")
    parser.add_argument("--resume", help="a tuning job name to continue")
    parser.add_argument("--max-jobs", type=int)
    parser.add_argument("--max-parallel", type=int)
    parser.add_argument("--strategy", choices=job_definition.STRATEGIES)
    parser.add_argument("--early-stopping", choices=job_definition.EARLY_STOPPING)
    parser.add_argument("--hp", default="", help='fixed hyperparameters for this run: "image_size=64 lr=0.01"')
    parser.add_argument("--local-backbone", default="",
                        help="local mode's model_name in place of the job definition's (below --hp)")
    parser.add_argument("--sampler", choices=("tpe", "gp"), default="tpe", help="for the Bayesian strategy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-cache", action="store_true", help="do not use the frozen-backbone feature cache")
    parser.add_argument("--job-definition")
    args = parser.parse_args(argv)
    runs, directory = jobs.Runs(), None
    try:
        if args.resume:
            directory = tuning_jobs.resolve_tuning(args.resume)
        else:
            if not args.data:
                parser.error("--data is required (or --resume)")
            fixed = orchestration.parse_hp_argument(args.hp, allow_best=False).given
            definition = job_definition.load(args.job_definition)
            if args.local_backbone:
                definition = definition.with_overrides(hyperparameters={"model_name": args.local_backbone})
            definition = definition.with_overrides(
                max_jobs=args.max_jobs, max_parallel_jobs=args.max_parallel, strategy=args.strategy,
                early_stopping=args.early_stopping, hyperparameters=fixed)
            directory = create_tuning(definition, Path(args.data), args.sampler, args.seed, not args.no_cache)
        tuner = Tuner(directory, runs=runs)
        definition = tuner.definition
        print(f"Tuning job {tuner.name} in {directory}: {definition.strategy.name}, {definition.limits.max_jobs} "
              f"trials, {definition.limits.max_parallel_jobs} in parallel, objective {definition.objective.type} "
              f"{definition.objective.metric}, feature cache {'allowed' if tuner.record['feature_cache'] else 'off'}",
              flush=True)
        with jobs.stop_on_signals(runs, interrupt=lambda: not tuner.in_trials):
            record = tuner.run()
    except KeyboardInterrupt:
        if directory is not None:
            print(f"Interrupted. Resume with: make tune-local TUNING={directory.name}", file=sys.stderr)
        return 128 + (runs.signal or 2)
    except (jobs.JobError, hp_specs.HyperparameterError, job_definition.JobDefinitionError,
            orchestration.RequestError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print_summary(record, definition)
    write_report(directory)
    if runs.signal:
        print(f"Interrupted: the running trials were stopped and keep their checkpoints. "
              f"Resume with: make tune-local TUNING={tuner.name}", file=sys.stderr)
        return 128 + runs.signal
    return 0 if record["status"] != "Failed" else 1


if __name__ == "__main__":
    sys.exit(main())
