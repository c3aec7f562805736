"""How each default of the head recipe was chosen: the default job against the same job with one
hyperparameter changed, and against the linear probe, on the same frozen features, in one run.

    .venv/bin/python -m benchmarks.bench_head_recipe [--data DIR] [--image-size 128] [--seeds 2]

Every row is a real local training job (`make train-local` with HP=<the change>; the head trains on the
shared feature cache). Its model's head is then scored on the test images' frozen features (the same
features the endpoint's backbone computes), so no job pays for a pass over the test images. Printed per
row: the job's best valid loss (what tuning and early stopping select on) and test accuracy, each the mean
over --seeds seeds, and the change against the defaults.

Data: by default the `make data` set (Fashion-MNIST photos, 600 train, 200 valid) with 1,000 test images;
an accuracy difference under about 1.5 points is within the noise of 1,000 test images.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from benchmarks.quality_set import quality_set
from scripts import job_definition
from scripts.local import jobs, train
from scripts.local.baseline import fit_probe, frozen_features

# One change each against the defaults (container/classifier/training/hyperparameters.py).
VARIANTS = ("", "lr=0.0001", "lr=0.001", "weight_decay=0", "weight_decay=0.3", "optimizer=adam",
            "dropout=0", "dropout=0.7", "label_smoothing=0.1", "warmup_epochs=0", "epochs=10",
            "early_stopping_patience=0")


def head_test_accuracy(job: Path, test_features, test_labels) -> float:
    import torch

    from classifier.artifact import load_artifact

    model, _, _ = load_artifact(job / "model")
    with torch.no_grad():
        predicted = model.head_on_features().eval()(torch.as_tensor(test_features)).argmax(1).numpy()
    return float((predicted == test_labels).mean())


def run_variant(definition, train_valid: Path, change: str, seed: int, test) -> tuple[float, float]:
    given = {**job_definition.parse_hp_string(change), "seed": str(seed)}
    job = train.prepare_job(definition, train_valid, given=given, echo=lambda line: None)
    record = jobs.run_job(job, definition=definition)
    if record["status"] != "Completed":
        raise RuntimeError(f"{job.name} ({change or 'defaults'}): {record.get('failure_reason')}")
    return record["metrics"]["valid_loss"], head_test_accuracy(job, *test)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="a class-per-folder set with train/ valid/ test/")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args(argv)
    with quality_set(args.data) as (tmp, data):
        cache = jobs.feature_cache_dir()
        found = frozen_features(args.model, args.image_size, data, cache)
        probe, test = fit_probe(found), found["test"]
        # The jobs see train and valid only: their test score comes from the cached test features.
        train_valid = tmp / "train-valid"
        train_valid.mkdir()
        for name in ("train", "valid"):
            (train_valid / name).symlink_to((data / name).resolve())
        definition = job_definition.load().with_overrides(
            hyperparameters={"model_name": args.model, "image_size": str(args.image_size)})
        rows = []
        for number, change in enumerate(VARIANTS, 1):
            results = [run_variant(definition, train_valid, change, seed, test) for seed in range(args.seeds)]
            losses, accuracies = zip(*results, strict=True)
            rows.append((change or "defaults", statistics.mean(losses), statistics.mean(accuracies),
                         max(accuracies) - min(accuracies)))
            print(f"[{number}/{len(VARIANTS)}] {rows[-1][0]}: valid_loss {rows[-1][1]:.4f}, "
                  f"test accuracy {rows[-1][2]:.4f}", flush=True)
    count = len(test[1])
    print(f"\n{args.model} at {args.image_size} px, frozen backbone; {count} test images; "
          f"mean of {args.seeds} seed(s) per row")
    print(f"{'':32} {'valid_loss':>10} {'test accuracy':>13} {'seed range':>10} {'vs defaults':>11}")
    base = rows[0][2]
    for name, loss, accuracy, spread in rows:
        delta = "" if name == "defaults" else f"{100 * (accuracy - base):+.1f} pt"
        print(f"{name:32} {loss:10.4f} {accuracy:13.4f} {spread:10.4f} {delta:>11}")
    print(f"{'LogisticRegression, C=1':32} {'':10} {probe.test_accuracy:13.4f} {'':10} "
          f"{100 * (probe.test_accuracy - base):+.1f} pt")
    print(f"{'LogisticRegression, ' + probe.tuned:32} {'':10} {probe.tuned_test_accuracy:13.4f} {'':10} "
          f"{100 * (probe.tuned_test_accuracy - base):+.1f} pt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
