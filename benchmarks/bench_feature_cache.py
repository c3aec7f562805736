"""A 6-trial local tuning job on the same data with and without the frozen-backbone feature cache:
same best objective within noise, wall time at least 5x shorter with it.

Run: .venv/bin/python -m benchmarks.bench_feature_cache [--data data/fashion-mnist --image-size 128]
Both tuning jobs use the Random strategy with the same seed, so they try the same hyperparameters.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from scripts import job_definition
from scripts.local import jobs, tune


def run(definition, data: Path, use_cache: bool) -> tuple[float, dict]:
    directory = tune.create_tuning(definition, data, seed=7, use_cache=use_cache)
    started = time.time()
    record = tune.Tuner(directory, echo=lambda line: print("   ", line, flush=True)).run()
    return time.time() - started, record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="data/fashion-mnist")
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--model", default="efficientnet_lite0")
    args = parser.parse_args(argv)
    if not Path(args.data, "train").is_dir():
        print(f"no data in {args.data}: run `make data` first", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["JOBS_DIR"] = tmp
        jobs.JOBS_ROOT = Path(tmp)
        definition = job_definition.load().with_overrides(
            max_jobs=args.trials, max_parallel_jobs=1, strategy="Random",
            hyperparameters={"model_name": args.model, "image_size": str(args.image_size), "num_workers": "auto"})
        results = {}
        for use_cache in (True, False):
            print(f"{'with' if use_cache else 'without'} the feature cache:", flush=True)
            results[use_cache] = run(definition, Path(args.data), use_cache)
    (t_cache, with_cache), (t_plain, without) = results[True], results[False]
    print(f"{args.trials} trials, {args.model} at {args.image_size}px on {args.data}")
    print(f"without cache: {t_plain:7.1f} s  best {definition.objective_metric} {without['best']['objective']:.4f}")
    print(f"with cache:    {t_cache:7.1f} s  best {definition.objective_metric} {with_cache['best']['objective']:.4f} "
          f"(includes computing the cache)")
    print(f"speed-up: {t_plain / t_cache:.1f}x (target >= 5x); best objective difference "
          f"{abs(with_cache['best']['objective'] - without['best']['objective']):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
