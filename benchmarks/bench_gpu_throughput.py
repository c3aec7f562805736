"""Training images/s of the real pipeline (JPEG files -> DataLoader workers -> GPU, AMP, channels_last)
for ResNet-50, frozen and unfrozen. Meant for a GPU machine; on CPU it runs, slowly, as a smoke check.

Run: .venv/bin/python -m benchmarks.bench_gpu_throughput [--images 2048 --batch-size 256 --workers 14]
The JPEGs are dog-photo-sized (500x375 to 2000x1500) made from scikit-image's sample photographs.
No pretrained weights are needed (speed does not depend on them).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "container"))
from benchmarks.bench_image_pipeline import make_photos
from classifier.observers import Observers
from classifier.training.data import ImageDataset, make_loader, scan_channel
from classifier.training.distributed import World
from classifier.training.hyperparameters import Hyperparameters, parse
from classifier.training.loop import NLLWithLabelSmoothing, Optimisation, Precision, train_one_epoch
from classifier.training.optim import make_optimizer
from classifier.training.setup import Backbone


def make_dataset(root: Path, images: int) -> Path:
    per_class = max(1, images // 4)
    seed_dir = root / "seed"
    seed_dir.mkdir()
    photos = make_photos(seed_dir, per_size=2)
    for c in range(4):
        folder = root / "train" / f"{c:03d}.class"
        folder.mkdir(parents=True)
        for n in range(per_class):
            os.link(photos[(c * per_class + n) % len(photos)], folder / f"{n}.jpg")
    return root / "train"


def measure(train_dir: Path, model_name: str, frozen: bool, args) -> float:
    hp: Hyperparameters = parse({"model_name": model_name, "batch_size": str(args.batch_size), "lr": "0.01",
                                 "freeze_backbone": str(frozen), "num_workers": str(args.workers)})
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    channel = scan_channel("train", train_dir)
    backbone = Backbone.choose(model_name, args.image_size, pretrained=False, channels={})
    model = backbone.build(len(channel.classes), unfreeze_stages=0 if frozen else "all").to(device)
    channels_last = device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    loader = make_loader(ImageDataset(channel, backbone.preprocessing), hp.batch_size, hp.seed, World(), True,
                         args.workers)
    optimizer, precision = make_optimizer(model, hp), Precision.choose(device, amp=True)
    loss_fn, scaler, observer = NLLWithLabelSmoothing(0.0), precision.scaler(), Observers([])
    optimisation = Optimisation(loss_fn, optimizer, precision, scaler)
    train_one_epoch(model, loader, optimisation, observer, 0, channels_last)  # warm-up
    best = 0.0
    for _ in range(args.epochs):
        result = train_one_epoch(model, loader, optimisation, observer, 0, channels_last)
        best = max(best, result.images / result.seconds)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU (no GPU: smoke run only)"
    with tempfile.TemporaryDirectory() as tmp:
        train_dir = make_dataset(Path(tmp), args.images)
        for frozen in (True, False):
            rate = measure(train_dir, args.model, frozen, args)
            print(f"{device}: {args.model} {'frozen backbone' if frozen else 'unfrozen'}, batch {args.batch_size}, "
                  f"{args.workers} loader workers: {rate:,.0f} training images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
