"""The whole local loop at the dogImages seed's scale, timed: a local tuning job (4 trials: the head on
the cached frozen-backbone features), the best trial's hyperparameters retrained as a training job with
the test channel (test evaluation at its end), and the breakdown of where the time went.

    make seed-loop                       # data/photo-tree (written first when missing: 133 classes)
    .venv/bin/python -m scripts.local.seed_loop --data DIR [--trials 4] [--backbone efficientnet_lite0]

The tree comes from scripts/data/photo_tree.py (photo-sized JPEGs); any class-per-folder set works.
Every step prints its progress (feature pass: images done, images/s, time left; one line per epoch).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from scripts import job_definition
from scripts.local import LOCAL_BACKBONE, jobs, train, tune, tuning_jobs


def _duration(seconds: float) -> str:
    return f"{int(seconds) // 60}m{int(seconds) % 60:02d}s"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/photo-tree"))
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--parallel", type=int, default=1, help="trials at a time")
    parser.add_argument("--backbone", default=LOCAL_BACKBONE)
    args = parser.parse_args(argv)
    if not (args.data / "train").is_dir():
        print(f"{args.data} has no train/: `make seed-data` (or scripts/data/photo_tree.py) writes one",
              file=sys.stderr)
        return 2
    definition = job_definition.load().with_overrides(
        max_jobs=args.trials, max_parallel_jobs=args.parallel, hyperparameters={"model_name": args.backbone})
    started = time.monotonic()
    directory = tune.create_tuning(definition, args.data)
    lines: list[str] = []

    def echo(line: str) -> None:
        lines.append(line)
        print(f"[{_duration(time.monotonic() - started)}] {line}", flush=True)

    record = tune.Tuner(directory, echo=echo).run()
    tuned = time.monotonic()
    tune.print_summary(record, definition)
    if not record.get("best"):
        print("no trial completed: nothing to retrain", file=sys.stderr)
        return 1
    job = train.prepare_job(definition, args.data, best=tuning_jobs.best_hyperparameters(record["name"]), echo=echo)
    echo(f"retraining the best trial's hyperparameters as {job.name}, test evaluation at its end")
    result = jobs.run_job(job, definition=definition,
                          echo=lambda line: echo(line) if line.startswith(("[metrics]", "Traceback")) or
                          "feature pass" in line or "Initialisation took" in line else None)
    ended = time.monotonic()
    if result["status"] != "Completed":
        print(f"retraining {result['status']}: {result.get('failure_reason')} (log: {job / jobs.LOG})",
              file=sys.stderr)
        return 1
    cache_lines = [line for line in lines if line.startswith("Feature cache ")]
    trials = [t.get("duration_seconds") or 0.0 for t in record.get("trials", [])]
    print(f"Seed loop on {args.data} ({args.backbone}): {_duration(ended - started)} in all")
    if cache_lines:
        print(f"  feature pass (train + valid, once): {cache_lines[-1]}")
    print(f"  tuning job {record['name']}: {_duration(tuned - started)} (feature pass included); "
          f"{len(trials)} trials of " + ", ".join(f"{s:.0f}s" for s in trials))
    print(f"  retrain + test evaluation {job.name}: {_duration(ended - tuned)}; "
          + " ".join(f"{k}={v:.4f}" for k, v in result.get("metrics", {}).items() if k.startswith("test_")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
