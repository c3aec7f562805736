"""`make train-local`: run one training job locally under the SageMaker training contract.

    python -m scripts.local.train --data data/fashion-mnist --hp "epochs=2" [--local-backbone efficientnet_lite0]
    python -m scripts.local.train --data DIR --tuning <tuning name> [--hp "best epochs=10"]   # the final model
    python -m scripts.local.train --data DIR --init-model <job | model dir | model.tar.gz>  # continue a model
    python -m scripts.local.train --resume <job name or dir>     # continue a stopped or killed job

Hyperparameters (scripts/orchestration.py, as `make train` on AWS): the job definition's static ones
(with --local-backbone as model_name), then the best trial's of --tuning, then --hp. With --tuning the job
is the tuning job's final job (orchestration.final_job): the best trial's hyperparameters with the
backbone's last stage fine-tuned, started from the best trial's model; it ends by saying which model is the
final one, its own or the best trial's (the better valid loss). A job whose backbone features are fixed
trains the head from the shared feature cache (features.py), filled first.
Ctrl-C, SIGTERM and SIGHUP stop the job at its next step, keeping its checkpoint; if this process is
killed outright, the job stops itself (orphan_guard.py) and `make jobs` shows it Stopped.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from classifier.training.data import DataError
from classifier.training.hyperparameters import HyperparameterError
from scripts import job_definition, orchestration
from scripts.job_definition import JobDefinition
from scripts.local import features, jobs, tuning_jobs

FINAL_OF = "final_job_of"  # in a final job's record: its tuning job

def prepare_job(definition: JobDefinition, data: Path, best: dict | None = None, given: dict | None = None,
                use_cache: bool = True, echo=print, init_model: Path | None = None) -> Path:
    """A training job made the core's way: hyperparameters static < best < given, every channel of the
    data set, `init_model` (a model dir or model.tar.gz) as its init_model channel, and the feature cache
    where the job can use it."""
    values, unset = orchestration.training_hyperparameters(definition, best, given)
    if unset:
        echo(orchestration.unset_note(unset))
    present = jobs.check_data_dir(data, definition)
    channels = {c: present[c] for c in orchestration.training_channels(definition, present)}
    if init_model is not None:
        channels[definition.channels.init_model] = Path(init_model)
    if use_cache:
        cache = features.prepare(values, data, echo, init_model)
        if cache is not None:
            channels[definition.channels.feature_cache] = cache
    return jobs.create_job(definition, data, values, channels=channels)


def prepare_final_job(definition: JobDefinition, data: Path, tuning: str, given: dict | None = None,
                      use_cache: bool = True, echo=print) -> tuple[Path, tuple[orchestration.Trial, Path]]:
    """The final job of a tuning job (orchestration.final_job), and the tuning job's best trial with its job dir."""
    best, trial_job = tuning_jobs.best_trial(tuning)
    values = orchestration.recorded_hyperparameters(jobs.read_record(trial_job)["hyperparameters"])
    plan = orchestration.final_job(definition, values, given)
    echo(f"Best trial of {tuning}: {best.name} ({definition.objective.metric} {best.objective:.4f}); the final job "
         + ("fine-tunes from its model" if plan.from_best_trial else "retrains its hyperparameters from a new head")
         + ": " + orchestration.describe_values({k: v for k, v in plan.hyperparameters.items()
                                                 if k in {*values, *orchestration.FINE_TUNING, *(given or {})}}))
    init = trial_job / "model" if plan.from_best_trial else None
    job = prepare_job(definition, data, given=plan.hyperparameters, use_cache=use_cache, echo=echo, init_model=init)
    jobs.write_record(job, {**jobs.read_record(job), FINAL_OF: tuning})  # a resumed run still chooses
    return job, (best, trial_job)


def record_final_model(definition: JobDefinition, job: Path,
                       best: tuple[orchestration.Trial, Path]) -> orchestration.FinalModel:
    """Which model, the final job's or the best trial's, is the loop's final model (orchestration.final_model);
    written into the final job's record."""
    trial, trial_job = best
    record = jobs.read_record(job)
    choice = orchestration.final_model(definition, job.name, record.get("metrics") or {}, trial)
    model = (job if choice.fine_tuned else trial_job) / "model"
    jobs.write_record(job, {**record, "final_model": {"job": choice.job, "model": str(model),
                                                      "fine_tuned": choice.fine_tuned, "reason": choice.reason}})
    return choice


def job_of(args, definition: JobDefinition, parser) -> tuple[Path, tuple[orchestration.Trial, Path] | None]:
    """The job the arguments ask for (a resumed one, a tuning job's final job, or a new one) and, for a final job,
    its tuning job's best trial."""
    if args.resume:
        job = jobs.resolve_job(args.resume)
        tuning = jobs.read_record(job).get(FINAL_OF)
        return job, (tuning_jobs.best_trial(tuning) if tuning else None)
    if not args.data:
        parser.error("--data is required (or --resume)")
    argument = orchestration.parse_hp_argument(args.hp)
    if orchestration.wants_best_trial(argument, args.tuning):
        if args.init_model:
            parser.error("--init-model and --tuning both give the job its starting model: the final job of a tuning "
                         "job starts from its best trial's; give one of them")
        return prepare_final_job(definition, Path(args.data), args.tuning, argument.given, not args.no_cache)
    init = jobs.resolve_model(args.init_model, variable="INIT_MODEL") if args.init_model else None
    return prepare_job(definition, Path(args.data), given=argument.given, use_cache=not args.no_cache,
                       init_model=init), None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="folder with train/ valid/ [test/] (class-per-folder)")
    parser.add_argument("--hp", default="", help='hyperparameters over the job definition: "lr=0.01 epochs=2"; '
                                                 '"best epochs=10" with --tuning')
    parser.add_argument("--resume", help="a job name or directory to run again from its last checkpoint")
    parser.add_argument("--tuning", help="the tuning job whose final job this is (its best trial's hyperparameters)")
    parser.add_argument("--init-model", default="",
                        help="start from this model (a local job, a model dir or a model.tar.gz): its backbone, and "
                             "its head where the classes allow (incremental training)")
    parser.add_argument("--local-backbone", default="",
                        help="local mode's model_name in place of the job definition's (below the best trial's)")
    parser.add_argument("--no-cache", action="store_true", help="do not use the frozen-backbone feature cache")
    parser.add_argument("--job-definition", default=None, help="default: config/job.yaml")
    parser.add_argument("--quiet", action="store_true", help="write the log to the job only")
    args = parser.parse_args(argv)
    runs = jobs.Runs()
    with jobs.stop_on_signals(runs, interrupt=lambda: not runs.processes):
        try:
            definition = job_definition.load(args.job_definition)
            if args.local_backbone:
                definition = definition.with_overrides(hyperparameters={"model_name": args.local_backbone})
            job, best = job_of(args, definition, parser)
            print(f"Training job {job.name} in {job}", flush=True)
            record = jobs.run_job(job, echo=None if args.quiet else print, definition=definition, runs=runs)
        except KeyboardInterrupt:
            print("Interrupted before the training job started", file=sys.stderr)
            return 128 + (runs.signal or 2)
        except (jobs.JobError, HyperparameterError, DataError, job_definition.JobDefinitionError,
                orchestration.RequestError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    print(f"Training job {record['name']}: {record['status']}"
          + (f": {record['failure_reason']}" if record.get("failure_reason") else ""))
    metrics = record.get("metrics") or {}
    if metrics:
        print("Final metrics: " + ", ".join(f"{k}={v:g}" for k, v in sorted(metrics.items())))
    print(f"Model: {job / 'model'}   Log: {job / jobs.LOG}")
    if best is not None and record["status"] == "Completed":
        choice = record_final_model(definition, job, best)
        print(f"Final model: {jobs.read_record(job)['final_model']['model']} ("
              + ("this job" if choice.fine_tuned else "the best trial") + f": {choice.reason})")
    if record["status"] == "Stopped":
        print(f"Resume it: make train-local JOB={record['name']}")
    if runs.signal:
        return 128 + runs.signal
    return 0 if record["status"] == "Completed" else 1


if __name__ == "__main__":
    sys.exit(main())
