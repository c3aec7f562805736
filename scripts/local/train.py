"""`make train-local`: run one training job locally under the SageMaker training contract.

    python -m scripts.local.train --data data/fashion-mnist --hp "model_name=efficientnet_lite0 epochs=2"
    python -m scripts.local.train --resume <job name or dir>     # continue a stopped or killed job
    python -m scripts.local.train --data DIR --hp best --tuning <tuning name>   # retrain the best trial
"""
from __future__ import annotations

import argparse
import sys

from classifier.training.hyperparameters import HyperparameterError
from scripts import job_definition
from scripts.local import jobs


def hyperparameters(args) -> dict[str, str]:
    """--hp values; the word `best` stands for the best trial's hyperparameters of --tuning."""
    tokens = args.hp.split()
    if "best" not in tokens:
        return job_definition.parse_hp_string(args.hp)
    if not args.tuning:
        raise jobs.JobError("HP=best needs TUNING=<tuning job name> (make tune-local prints it)")
    from scripts.local.tune import best_hyperparameters

    given = job_definition.parse_hp_string(" ".join(t for t in tokens if t != "best"))
    best = best_hyperparameters(args.tuning)
    print("Best hyperparameters of " + args.tuning + ": " + " ".join(f"{k}={v}" for k, v in sorted(best.items())))
    return {**given, **best}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="folder with train/ valid/ [test/] (class-per-folder)")
    parser.add_argument("--hp", default="", help='hyperparameters over the job definition: "lr=0.01 epochs=2"')
    parser.add_argument("--resume", help="a job name or directory to run again from its last checkpoint")
    parser.add_argument("--tuning", help="with --hp best: the tuning job whose best trial to retrain")
    parser.add_argument("--job-definition", default=None, help="default: config/job.yaml")
    parser.add_argument("--quiet", action="store_true", help="write the log to the job only")
    args = parser.parse_args(argv)
    try:
        definition = job_definition.load(args.job_definition)
        if args.resume:
            job = jobs.resolve_job(args.resume)
        else:
            if not args.data:
                parser.error("--data is required (or --resume)")
            job = jobs.create_job(definition, args.data, hyperparameters(args))
    except (jobs.JobError, HyperparameterError, job_definition.JobDefinitionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Training job {job.name} in {job}", flush=True)
    record = jobs.run_job(job, echo=None if args.quiet else print, definition=definition)
    print(f"Training job {record['name']}: {record['status']}"
          + (f": {record['failure_reason']}" if record.get("failure_reason") else ""))
    metrics = record.get("metrics") or {}
    if metrics:
        print("Final metrics: " + ", ".join(f"{k}={v:g}" for k, v in sorted(metrics.items())))
    print(f"Model: {job / 'model'}   Log: {job / jobs.LOG}")
    return 0 if record["status"] == "Completed" else 1


if __name__ == "__main__":
    sys.exit(main())
