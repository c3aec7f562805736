"""A 6-trial local tuning job on the same data with and without the frozen-backbone feature cache:
same best objective within noise, wall time at least 5x shorter with it.

Run: .venv/bin/python -m benchmarks.bench_feature_cache [--image-size 224 --train-per-class 50]
Data: real Fashion-MNIST photos (10 classes) written for the run. Both tuning jobs use the Random
strategy with the same seed, so they try the same hyperparameters; trials run one at a time.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from scripts import job_definition
from scripts.data import fashion_mnist
from scripts.local import jobs, tune


def run(definition, data: Path, use_cache: bool) -> tuple[float, dict]:
    directory = tune.create_tuning(definition, data, seed=7, use_cache=use_cache)
    started = time.time()
    record = tune.Tuner(directory, echo=lambda line: print("   ", line, flush=True)).run()
    return time.time() - started, record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--train-per-class", type=int, default=50)
    parser.add_argument("--valid-per-class", type=int, default=15)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--model", default="efficientnet_lite0")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        if fashion_mnist.main(["--out", str(data), "--train-per-class", str(args.train_per_class),
                               "--valid-per-class", str(args.valid_per_class), "--test-per-class", "1"]) != 0:
            return 2
        os.environ["JOBS_DIR"] = tmp
        jobs.JOBS_ROOT = Path(tmp)
        definition = job_definition.load().with_overrides(
            max_jobs=args.trials, max_parallel_jobs=1, strategy="Random",
            hyperparameters={"model_name": args.model, "image_size": str(args.image_size), "num_workers": "auto"})
        results = {}
        for use_cache in (True, False):
            print(f"{'with' if use_cache else 'without'} the feature cache:", flush=True)
            results[use_cache] = run(definition, data, use_cache)
    (t_cache, with_cache), (t_plain, without) = results[True], results[False]
    print(f"{args.trials} trials, {args.model} at {args.image_size}px, "
          f"{10 * (args.train_per_class + args.valid_per_class)} train+valid images")
    print(f"without cache: {t_plain:7.1f} s  best {definition.objective.metric} {without['best']['objective']:.4f}")
    print(f"with cache:    {t_cache:7.1f} s  best {definition.objective.metric} {with_cache['best']['objective']:.4f} "
          f"(includes computing the cache)")
    print(f"speed-up: {t_plain / t_cache:.1f}x (target >= 5x); best objective difference "
          f"{abs(with_cache['best']['objective'] - without['best']['objective']):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
