"""`make train-local`: run one training job locally under the SageMaker training contract.

    python -m scripts.local.train --data data/fashion-mnist --hp "epochs=2" [--local-backbone efficientnet_lite0]
    python -m scripts.local.train --data DIR --tuning <tuning name> [--hp "best epochs=10"]   # the best trial
    python -m scripts.local.train --resume <job name or dir>     # continue a stopped or killed job

Hyperparameters (scripts/orchestration.py, as `make train` on AWS): the job definition's static ones
(with --local-backbone as model_name), then the best trial's of --tuning, then --hp. A job whose
backbone features are fixed trains the head from the shared feature cache (features.py), filled first.
Ctrl-C, SIGTERM and SIGHUP stop the job at its next step, keeping its checkpoint; if this process is
killed outright, the job stops itself (orphan_guard.py) and `make jobs` shows it Stopped.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from classifier.training.hyperparameters import HyperparameterError
from scripts import job_definition, orchestration
from scripts.job_definition import JobDefinition
from scripts.local import features, jobs
from scripts.local.tuning_jobs import best_hyperparameters


def prepare_job(definition: JobDefinition, data: Path, best: dict | None = None, given: dict | None = None,
                use_cache: bool = True, echo=print) -> Path:
    """A training job made the core's way: hyperparameters static < best < given, every channel of the
    data set, and the feature cache where the job can use it."""
    values, unset = orchestration.training_hyperparameters(definition, best, given)
    if unset:
        echo(orchestration.unset_note(unset))
    present = jobs.check_data_dir(data, definition)
    channels = {c: present[c] for c in orchestration.training_channels(definition, present)}
    if use_cache:
        cache = features.prepare(values, data, echo)
        if cache is not None:
            channels[definition.channels.feature_cache] = cache
    return jobs.create_job(definition, data, values, channels=channels)


def best_of(tuning: str, echo=print) -> dict[str, str]:
    best = best_hyperparameters(tuning)
    echo(f"Best hyperparameters of {tuning}: {orchestration.describe_values(best)}")
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="folder with train/ valid/ [test/] (class-per-folder)")
    parser.add_argument("--hp", default="", help='hyperparameters over the job definition: "lr=0.01 epochs=2"; '
                                                 '"best epochs=10" with --tuning')
    parser.add_argument("--resume", help="a job name or directory to run again from its last checkpoint")
    parser.add_argument("--tuning", help="the tuning job whose best trial's hyperparameters to take")
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
            if args.resume:
                job = jobs.resolve_job(args.resume)
            else:
                if not args.data:
                    parser.error("--data is required (or --resume)")
                argument = orchestration.parse_hp_argument(args.hp)
                best = best_of(args.tuning) if orchestration.wants_best_trial(argument, args.tuning) else None
                job = prepare_job(definition, Path(args.data), best, argument.given, not args.no_cache)
            print(f"Training job {job.name} in {job}", flush=True)
            record = jobs.run_job(job, echo=None if args.quiet else print, definition=definition, runs=runs)
        except KeyboardInterrupt:
            print("Interrupted before the training job started", file=sys.stderr)
            return 128 + (runs.signal or 2)
        except (jobs.JobError, HyperparameterError, job_definition.JobDefinitionError,
                orchestration.RequestError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    print(f"Training job {record['name']}: {record['status']}"
          + (f": {record['failure_reason']}" if record.get("failure_reason") else ""))
    metrics = record.get("metrics") or {}
    if metrics:
        print("Final metrics: " + ", ".join(f"{k}={v:g}" for k, v in sorted(metrics.items())))
    print(f"Model: {job / 'model'}   Log: {job / jobs.LOG}")
    if record["status"] == "Stopped":
        print(f"Resume it: make train-local JOB={record['name']}")
    if runs.signal:
        return 128 + runs.signal
    return 0 if record["status"] == "Completed" else 1


if __name__ == "__main__":
    sys.exit(main())
