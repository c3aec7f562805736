"""One training step of the project's loop (`classifier.training.loop.train_one_epoch`) against a plain
PyTorch loop on the same model and batch. Target: ratio plain/ours >= 0.95 (the loop adds nothing).

Run: .venv/bin/python -m benchmarks.bench_train_step [--model efficientnet_lite0 --image-size 128]
Both loops run interleaved several times; the medians are compared.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "container"))
from classifier.model import build_model
from classifier.observers import Observers
from classifier.training.loop import NLLWithLabelSmoothing, Optimisation, Precision, train_one_epoch


def plain_loop(model, batches, optimizer):
    model.train()
    for images, labels in batches:
        optimizer.zero_grad()
        loss = F.nll_loss(model(images), labels)
        loss.backward()
        optimizer.step()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--unfrozen", action="store_true", help="train the whole network, not only the head")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model(args.model, 10, pretrained=args.model == "efficientnet_lite0",
                        freeze_backbone=not args.unfrozen).to(device)
    twin = copy.deepcopy(model)
    images = torch.randint(0, 256, (args.batch_size, 3, args.image_size, args.image_size), dtype=torch.uint8)
    labels = torch.randint(0, 10, (args.batch_size,))
    batches = [(images.to(device), labels.to(device))] * args.steps

    def params(m):
        return [p for p in m.parameters() if p.requires_grad]

    ours_opt, plain_opt = torch.optim.Adam(params(model), 1e-3), torch.optim.Adam(params(twin), 1e-3)
    precision = Precision(device)
    scaler, loss_fn, observer = precision.scaler(), NLLWithLabelSmoothing(0.0), Observers([])
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def ours():
        train_one_epoch(model, batches, Optimisation(loss_fn, ours_opt, precision, scaler), observer, 0)

    def plain():
        plain_loop(twin, batches, plain_opt)

    ours(), plain()  # warm-up
    timings = {"ours": [], "plain": []}
    for _ in range(args.rounds):
        for name, function in (("ours", ours), ("plain", plain)):
            sync()
            start = time.perf_counter()
            function()
            sync()
            timings[name].append((time.perf_counter() - start) / args.steps)
    t_ours, t_plain = statistics.median(timings["ours"]), statistics.median(timings["plain"])
    what = "whole network" if args.unfrozen else "head only, frozen backbone"
    print(f"{args.model}, {what}, batch {args.batch_size} x {args.image_size}px on {device}, "
          f"median of {args.rounds} rounds x {args.steps} steps")
    print(f"plain PyTorch step: {t_plain * 1000:8.2f} ms")
    print(f"project loop step:  {t_ours * 1000:8.2f} ms")
    print(f"ratio plain/ours: {t_plain / t_ours:.3f} (target >= 0.95)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
