"""The model the loop ships, against the frozen-feature baseline and against the loop before it, over seeds.

    .venv/bin/python -m benchmarks.bench_quality [--data DIR] [--seeds 42,7,123] [--trials 4]
        [--final "" --final "lr=0.0003" --final "fresh lr=0.0003" ...] [--imbalance]

Once: (a) the baseline, scikit-learn's LogisticRegression on the frozen backbone's features (the project's own
feature pass; C=1, and C chosen on valid). Then for each seed (the jobs' `seed` hyperparameter and the tuning
job's sampler seed):
  the tuning job: --trials trials of the head on the frozen backbone over the job definition's ranges;
  (b) the loop before the final job: its best trial's hyperparameters retrained, the head alone
      (`make train-local TUNING=<t> HP="best unfreeze_stages=0"`);
  (c) the loop's final model as `make train-local TUNING=<t>` gives it (orchestration.final_job: the last
      backbone stage fine-tuned, started from the best trial's model), or the best trial's model when that one
      has the better valid loss (orchestration.final_model).
--final (repeatable) runs variants of the final job on each seed's tuning job: hyperparameters on top of the
recipe's (e.g. how many stages it fine-tunes, its learning rate), and the word `fresh` to start it from a new
head instead of the best trial's: what chose the recipe (default: the recipe alone). --imbalance: the same
loop (tuning and final job) on a variant of the set where one class keeps a tenth of its training images,
with class_weighting=none and =balanced; macro-F1 and accuracy.

Every job runs as the make targets run it (the training toolkit, local jobs, the shared feature cache) in a
temporary jobs directory; every model is scored on the test images through its model directory as
`make evaluate` scores it. Targets: (c) >= (a) + 4 points and >= (b) + 2 points on average, and never below
either on any seed; with imbalance, balanced >= none + 3 points of macro-F1.

Data: by default the `make data` set (real Fashion-MNIST photos, 10 classes, 60 train and 20 valid images
per class) with 100 test images per class: with 1,000 test images the standard error of an accuracy near
85 % is about 1.1 points. --data DIR takes any class-per-folder set.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

from benchmarks.quality_set import quality_set
from scripts import job_definition, orchestration
from scripts.local import jobs, train, tune, tuning_jobs
from scripts.local.baseline import linear_probe
from scripts.reports import evaluation_data, metrics, predict


def scores(model_dir: Path, data: Path) -> dict:
    """Test accuracy and macro-F1 of a model directory, as `make evaluate MODEL=... DATA=...` computes them."""
    found = evaluation_data.images(str(data / "test"))
    result = metrics.evaluate(predict.from_model_dir(model_dir, found))
    return {"accuracy": result.accuracy, "macro_f1": result.macro_f1}


def run(job: Path, definition) -> dict:
    record = jobs.run_job(job, definition=definition)
    if record["status"] != "Completed":
        raise RuntimeError(f"{job.name}: {record['status']}: {record.get('failure_reason')} ({job / jobs.LOG})")
    return record


def final_model(definition, data: Path, tuning: str, seeded: dict, variant: str) -> dict:
    """One variant of the tuning job's final job (`fresh`: from a new head) and the loop's final model."""
    quiet = {"echo": lambda line: None}
    words = variant.split()
    given = {**seeded, **job_definition.parse_hp_string(" ".join(w for w in words if w != "fresh"))}
    if "fresh" in words:  # the same final job without its init_model channel: from a new head
        best = tuning_jobs.best_trial(tuning)
        values = orchestration.recorded_hyperparameters(jobs.read_record(best[1])["hyperparameters"])
        final = train.prepare_job(definition, data, given=orchestration.final_job(definition, values,
                                                                                   given).hyperparameters, **quiet)
    else:
        final, best = train.prepare_final_job(definition, data, tuning, given=given, **quiet)
    run(final, definition)
    choice = train.record_final_model(definition, final, best)
    return {"c": scores((final if choice.fine_tuned else best[1]) / "model", data),
            "fine_tuned": scores(final / "model", data), "chose": "final job" if choice.fine_tuned else "best trial"}


def loop(definition, data: Path, seed: int, args, extra: dict | None = None) -> dict:
    """One seed: the tuning job, (b) its best trial retrained head-only, (c) the final model of each variant."""
    seeded = {"seed": str(seed), "export": "false", **(extra or {})}  # the torch model is what is scored
    tuning_definition = definition.with_overrides(max_jobs=args.trials, max_parallel_jobs=1, hyperparameters=seeded)
    directory = tune.create_tuning(tuning_definition, data, seed=seed)
    record = tune.Tuner(directory, echo=lambda line: None).run()
    if not record.get("best"):
        raise RuntimeError(f"tuning job {record['name']}: no trial completed")
    head_only, _ = train.prepare_final_job(definition, data, record["name"], given={**seeded, "unfreeze_stages": "0"},
                                           echo=lambda line: None)
    run(head_only, definition)
    return {"b": scores(head_only / "model", data),
            "variants": {v: final_model(definition, data, record["name"], seeded, v) for v in args.final}}


def imbalanced(data: Path, target: Path) -> tuple[Path, str]:
    """A copy of the set where the first class keeps a tenth of its training images (valid and test as they are)."""
    shutil.copytree(data, target)
    folder = sorted(p for p in (target / "train").iterdir() if p.is_dir())[0]
    images = sorted(folder.iterdir())
    for path in images[max(1, len(images) // 10):]:
        path.unlink()
    return target, folder.name


def spread(values: list[float]) -> str:
    mean = statistics.mean(values)
    deviation = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * mean:6.1f} ± {100 * deviation:.1f}  ({', '.join(f'{100 * v:.1f}' for v in values)})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="a class-per-folder set with train/ valid/ test/")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--seeds", default="42,7,123")
    parser.add_argument("--final", action="append", help="a variant of the final job: hyperparameters on top of "
                        "the recipe's, `fresh` for a new head (repeatable; default: the recipe)")
    parser.add_argument("--imbalance", action="store_true", help="class_weighting none vs balanced, one rare class")
    args = parser.parse_args(argv)
    args.final = args.final or [""]
    seeds = [int(s) for s in args.seeds.split(",")]
    started = time.time()
    with quality_set(args.data) as (tmp, data):
        definition = job_definition.load().with_overrides(
            hyperparameters={"model_name": args.model, "image_size": str(args.image_size)})
        if args.imbalance:
            return compare_weighting(definition, *imbalanced(data, Path(tmp) / "imbalanced"), seeds, args, started)
        probe = linear_probe(args.model, args.image_size, data, jobs.feature_cache_dir(), progress=lambda line: None)
        print(f"(a) LogisticRegression on the frozen features: {100 * probe.test_accuracy:.1f} "
              f"({100 * probe.tuned_test_accuracy:.1f} with {probe.tuned} chosen on valid)", flush=True)
        results = []
        for seed in seeds:
            result = loop(definition, data, seed, args)
            results.append(result)
            print(f"seed {seed}: (b) {100 * result['b']['accuracy']:.1f}; " + "; ".join(
                f"(c) {variant or 'the recipe'}: {100 * r['c']['accuracy']:.1f} (the {r['chose']}'s; the final job's "
                f"own {100 * r['fine_tuned']['accuracy']:.1f})" for variant, r in result["variants"].items())
                + f" [{time.time() - started:.0f} s]", flush=True)
    base = probe.test_accuracy
    print(f"\n{args.model} at {args.image_size} px, {args.trials} trials per tuning job; final job: the recipe "
          f"{orchestration.describe_values(orchestration.FINE_TUNING)} from the best trial's model, with each "
          f"variant on top; test accuracy, % (mean ± sd over seeds {args.seeds}):")
    print(f"  (a) probe                          {100 * base:6.1f}")
    print(f"  (b) tuned head (the loop before)   {spread([r['b']['accuracy'] for r in results])}")
    for variant in args.final:
        final = [r["variants"][variant]["c"]["accuracy"] for r in results]
        print(f"  (c) final model, {variant or 'the recipe':17} {spread(final)}")
        print(f"      its final job itself           "
              f"{spread([r['variants'][variant]['fine_tuned']['accuracy'] for r in results])}")
        over_probe = 100 * (statistics.mean(final) - base)
        over_loop = 100 * statistics.mean(f - r["b"]["accuracy"] for f, r in zip(final, results, strict=True))
        below = [s for s, f, r in zip(seeds, final, results, strict=True) if f < max(base, r["b"]["accuracy"])]
        print(f"      target >= (a) + 4 points: {'met' if over_probe >= 4 else 'NOT met'} ({over_probe:+.1f}); "
              f">= (b) + 2 points: {'met' if over_loop >= 2 else 'NOT met'} ({over_loop:+.1f}); never below (a) or "
              f"(b) on a seed: {'met' if not below else 'NOT met (seeds ' + str(below) + ')'}")
    print(f"wall time {time.time() - started:.0f} s")
    return 0


def compare_weighting(definition, data: Path, rare: str, seeds: list[int], args, started: float) -> int:
    rows = {}
    for weighting in ("none", "balanced"):
        rows[weighting] = []
        for seed in seeds:
            outcome = loop(definition, data, seed, args, extra={"class_weighting": weighting})
            result = outcome["variants"][args.final[0]]["c"]
            rows[weighting].append(result)
            print(f"class_weighting={weighting}, seed {seed}: macro-F1 {100 * result['macro_f1']:.1f}, accuracy "
                  f"{100 * result['accuracy']:.1f} [{time.time() - started:.0f} s]", flush=True)
    print(f"\none rare class ({rare}: a tenth of its training images); the loop's final model, % (mean ± sd over "
          f"seeds {args.seeds}):")
    for weighting, results in rows.items():
        print(f"  class_weighting={weighting:9} macro-F1 {spread([r['macro_f1'] for r in results])}")
        print(f"  {'':25} accuracy {spread([r['accuracy'] for r in results])}")
    gain = 100 * statistics.mean(b["macro_f1"] - n["macro_f1"] for b, n in zip(rows["balanced"], rows["none"],
                                                                               strict=True))
    print(f"target balanced >= none + 3 points of macro-F1: {'met' if gain >= 3 else 'NOT met'} ({gain:+.1f})")
    print(f"wall time {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
