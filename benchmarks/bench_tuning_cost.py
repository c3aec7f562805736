"""Instance-seconds of a tuning job's two plans, measured here, beside make tune's estimate of them.

Run: .venv/bin/python -m benchmarks.bench_tuning_cost [--data data/fashion-mnist --trials 3 --epochs 4
        --train-per-class 12 --valid-per-class 4 --image-size 96]   (make data writes the sample first)

1. The per-image figures of scripts/tuning_cost.py, on this machine: the frozen ResNet-50 pass at 224 px
   (JPEG decoding included; random weights, the same speed), one head epoch on cached features, the SHA-256
   of an image file.
2. Both plans of a small local tuning job for real (Random, same seed, one trial at a time, so wall time is
   instance time), on the sample data with efficientnet_lite0 (weights offline): every trial runs the
   backbone (no cache), or the features are computed once and every trial reads them (the shared plan).
3. The estimate tuning_cost.plans gives for the same job from the per-image figures measured in the same run,
   so the estimate can be compared with what was spent (which also holds each job's start-up).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from scripts import job_definition, tuning_cost
from scripts.local import features, jobs, tune


def images_of(data: Path, split: str, limit: int | None = None):
    from classifier.training.data import scan_channel

    channel = scan_channel(split, data / split)
    if limit is not None:
        channel.samples = channel.samples[:limit]
    return channel


def backbone_seconds_per_image(model_name: str, image_size: int, data: Path, count: int, pretrained: bool) -> float:
    """One frozen-backbone pass over `count` train images, as a trial without a cache runs it."""

    from classifier.training import feature_cache
    from classifier.training.hyperparameters import resolve_num_workers
    from classifier.training.setup import Backbone, data_set_channels

    channel = images_of(data, "train", count)
    backbone = Backbone.choose(model_name, image_size, pretrained, data_set_channels(data))
    model, preprocessing = backbone.build(len(channel.classes)), backbone.preprocessing
    workers = resolve_num_workers("auto")
    feature_cache.FeaturePass(model, preprocessing, 8).compute(images_of(data, "train", 8))  # warm-up
    started = time.perf_counter()
    feature_cache.FeaturePass(model, preprocessing, 32, workers).compute(channel)
    return (time.perf_counter() - started) / len(channel)


def hash_seconds_per_image(data: Path) -> float:
    from classifier.training.feature_cache import file_sha256

    paths = [p for split in ("train", "valid") for p, _ in images_of(data, split).samples]
    started = time.perf_counter()
    for path in paths:
        file_sha256(path)
    return (time.perf_counter() - started) / len(paths)


def subset(data: Path, out: Path, train_per_class: int, valid_per_class: int) -> Path:
    """The first images of each class of `data`, linked into `out` (a small job: minutes, not tens)."""
    for split, count in (("train", train_per_class), ("valid", valid_per_class)):
        for folder in sorted(p for p in (data / split).iterdir() if p.is_dir()):
            (out / split / folder.name).mkdir(parents=True)
            for image in sorted(folder.iterdir())[:count]:
                (out / split / folder.name / image.name).symlink_to(image.resolve())
    return out


def run_plan(definition, data: Path, use_cache: bool) -> tuple[float, dict]:
    features._FILLED.clear()
    directory = tune.create_tuning(definition, data, seed=7, use_cache=use_cache)
    started = time.time()
    record = tune.Tuner(directory, echo=lambda line: print("   ", line, flush=True)).run()
    return time.time() - started, record


def head_seconds_per_image_epoch(record: dict, images: int) -> float:
    """From the cached trials' epoch lines: the head's epoch time per train+valid image."""
    import re

    times = []
    for trial in record["trials"]:
        log = (jobs.JOBS_ROOT / trial["job"] / jobs.LOG).read_text()
        times += [float(t) for t in re.findall(r"epoch_time=([0-9.]+)", log)]
    # epoch_time covers the train steps; the valid pass on features is of the same order per image
    return sum(times) / len(times) / images if times else 0.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/fashion-mnist", help="train/ valid/ (make data writes the sample)")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=96, help="of the local plans (efficientnet_lite0)")
    parser.add_argument("--train-per-class", type=int, default=12)
    parser.add_argument("--valid-per-class", type=int, default=4)
    parser.add_argument("--backbone-images", type=int, default=32, help="images of the ResNet-50 timing")
    args = parser.parse_args(argv)
    if not (Path(args.data) / "train").is_dir():
        parser.error(f"{args.data}/train not found: run `make data` first")
    scratch = tempfile.TemporaryDirectory()
    data = subset(Path(args.data), Path(scratch.name) / "data", args.train_per_class, args.valid_per_class)
    images = sum(len(images_of(data, split)) for split in ("train", "valid"))

    print(f"1. per-image figures on this machine ({os.cpu_count()} cores)", flush=True)
    resnet = backbone_seconds_per_image("resnet50", 224, data, args.backbone_images, pretrained=False)
    print(f"   ResNet-50 frozen pass at 224 px: {resnet:.4f} s/image", flush=True)
    hashing = hash_seconds_per_image(data)
    print(f"   SHA-256 of an image file: {hashing:.6f} s/image", flush=True)
    lite = backbone_seconds_per_image("efficientnet_lite0", args.image_size, data, args.backbone_images, True)
    print(f"   efficientnet_lite0 frozen pass at {args.image_size} px: {lite:.4f} s/image", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["JOBS_DIR"] = tmp
        jobs.JOBS_ROOT = Path(tmp)
        definition = job_definition.load().with_overrides(
            max_jobs=args.trials, max_parallel_jobs=1, strategy="Random",
            hyperparameters={"model_name": "efficientnet_lite0", "image_size": str(args.image_size),
                             "epochs": str(args.epochs), "early_stopping_patience": "0", "debugger": "false",
                             "profiler": "false"})
        print(f"2. {args.trials} trials x {args.epochs} epochs, {images} train+valid images, "
              f"efficientnet_lite0 at {args.image_size} px", flush=True)
        print("   shared features:", flush=True)
        shared_seconds, shared = run_plan(definition, data, use_cache=True)
        head = head_seconds_per_image_epoch(shared, images)
        print("   every trial runs the backbone:", flush=True)
        every_seconds, every = run_plan(definition, data, use_cache=False)
    rates = tuning_cost.Rates(backbone=lite, head=head, cache_read=hashing)
    estimate_every, estimate_shared = tuning_cost.plans(args.trials, images, args.epochs, "cpu", "cpu", rates)
    best = {name: record["best"]["objective"] for name, record in (("shared", shared), ("every", every))}
    print(f"   head epoch on cached features: {head:.6f} s/image")
    print("3. instance-seconds                    measured   estimate (compute only)")
    print(f"   every trial runs the backbone   {every_seconds:10.1f} {estimate_every.seconds['cpu']:10.1f}")
    print(f"   shared features                 {shared_seconds:10.1f} {estimate_shared.seconds['cpu']:10.1f}")
    print(f"   ratio                           {every_seconds / shared_seconds:10.2f}x "
          f"{estimate_every.seconds['cpu'] / estimate_shared.seconds['cpu']:9.2f}x")
    print(f"   best objective: shared {best['shared']:.4f}, every trial {best['every']:.4f}")
    print(f"figures for scripts/tuning_cost.py: BACKBONE_SECONDS_PER_IMAGE (ResNet-50, 224 px) = {resnet:.3g}, "
          f"HEAD_SECONDS_PER_IMAGE_EPOCH = {head:.2g}, CACHE_READ_SECONDS_PER_IMAGE = {hashing:.2g}")
    scratch.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
