"""Training step time with the smdebug hook on (default intervals: train every 100 steps, eval every 10)
against hooks off, on the project's loop (`train_one_epoch`) and observers. Budget: at most 5 % slower.

Run: .venv/bin/python -m benchmarks.bench_debugger_hooks [--model efficientnet_lite0 --image-size 128]
     [--unfrozen] [--profiler] [--steps 400 --block 50]
Two twins of the model (same weights) train on the same batch; one has the hook registered. Blocks of
`--block` steps alternate between them, so both see the same machine load; each arm's time is the sum of
its blocks (the save steps every 100 steps included). `--profiler` adds a third arm: hook plus profiler
(system sampler thread, phase timings, rules at the end of each block as at an epoch end).
"""
from __future__ import annotations

import argparse
import copy
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "container"))
from classifier.debugger import config  # noqa: E402
from classifier.debugger.hook import HookObserver  # noqa: E402
from classifier.model import build_model  # noqa: E402
from classifier.training import hyperparameters  # noqa: E402
from classifier.training.loop import NLLWithLabelSmoothing, Precision, train_one_epoch  # noqa: E402
from classifier.training.observers import Observers  # noqa: E402


class Arm:
    def __init__(self, name, model, observers, device):
        self.name, self.model, self.observer = name, model, Observers(observers)
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, 1e-3)
        self.loss_fn = NLLWithLabelSmoothing(0.0)
        self.precision = Precision(device)
        self.scaler = self.precision.scaler()
        self.seconds, self.steps = 0.0, 0

    def start(self, classes):
        self.observer.on_train_start(self.model, self.loss_fn, {
            "hyperparameters": None, "classes": classes, "train_labels": [], "device": self.precision.device,
            "started": time.time(), "num_workers": 0})

    def block(self, batches, sync, epoch):
        sync()
        start = time.perf_counter()
        train_one_epoch(self.model, batches, self.optimizer, self.loss_fn, self.precision, self.scaler,
                        self.observer, self.steps)
        self.observer.on_epoch_end(epoch, {"train_loss": 0.0, "valid_loss": 0.0})
        sync()
        self.seconds += time.perf_counter() - start
        self.steps += len(batches)

    @property
    def step_ms(self):
        return 1000 * self.seconds / max(1, self.steps)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=400, help="training steps per arm")
    parser.add_argument("--block", type=int, default=50, help="steps per block; blocks alternate between arms")
    parser.add_argument("--unfrozen", action="store_true", help="train (and watch) the whole network")
    parser.add_argument("--profiler", action="store_true", help="also time hook + profiler + rules")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model(args.model, 10, pretrained=args.model == "efficientnet_lite0",
                        freeze_backbone=not args.unfrozen).to(device)
    images = torch.randint(0, 256, (args.batch_size, 3, args.image_size, args.image_size), dtype=torch.uint8)
    labels = torch.randint(0, 10, (args.batch_size,))
    batches = [(images.to(device), labels.to(device))] * args.block
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    scratch = Path(tempfile.mkdtemp(prefix="bench-hooks-"))
    hp = hyperparameters.parse({"debugger": "true"})  # default intervals and collections
    arms = [Arm("hooks off", copy.deepcopy(model), [], device)]
    layout = config.Layout(scratch / "a" / "data", scratch / "a" / "tensors")
    arms.append(Arm("hooks on", copy.deepcopy(model), [HookObserver(hp, layout)], device))
    if args.profiler:
        from classifier.debugger.session import build

        hp_all = hyperparameters.parse({"debugger": "true", "profiler": "true"})
        layout = config.Layout(scratch / "b" / "data", scratch / "b" / "tensors")
        arms.append(Arm("hooks + profiler + rules", copy.deepcopy(model), build(hp_all, layout), device))
    classes = [str(i) for i in range(10)]
    for arm in arms:
        train_one_epoch(arm.model, batches[:3], arm.optimizer, arm.loss_fn, arm.precision, arm.scaler,
                        Observers([]), 0)  # warm-up, before the hook is registered
        arm.start(classes)
    for epoch in range(1, max(1, args.steps // args.block) + 1):
        for arm in arms if epoch % 2 else reversed(arms):
            arm.block(batches, sync, epoch)
    for arm in arms:
        arm.observer.on_train_end({"final": {}, "history": [], "seconds": 0})
    saved = sorted(int(p.name) for p in (scratch / "a" / "tensors" / "events").iterdir())
    what = "whole network" if args.unfrozen else "head only, frozen backbone"
    print(f"{args.model}, {what}, batch {args.batch_size} x {args.image_size}px on {device}; {arms[0].steps} "
          f"steps per arm in alternating blocks of {args.block}; the hook saved steps {', '.join(map(str, saved))}")
    base = arms[0].step_ms
    for arm in arms:
        print(f"{arm.name:26s} {arm.step_ms:8.2f} ms/step   ratio to hooks off {arm.step_ms / base:.3f}")
    print(f"hooks on / hooks off: {arms[1].step_ms / base:.3f} (budget <= 1.05)")
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
