"""Training step time with the smdebug hook on (default intervals: train every 100 steps, eval every 10)
against hooks off, on the project's loop (`train_one_epoch`) and observers. Budget: at most 5 % slower.

Run: .venv/bin/python -m benchmarks.bench_debugger_hooks [--model efficientnet_lite0 --image-size 128]
     [--unfrozen] [--profiler] [--steps 400 --block 10 --epoch-steps 100]
Twins of the model (same weights) train on the same batch, one per arm; one has the hook registered.
Blocks of `--block` steps alternate between the arms, and every step is timed, so both arms see the same
machine load (a shared machine's load changes within minutes). Per arm: the median step time, the extra
time of the steps that save tensors (every 100th), and the epoch-end work (flushing; with --profiler the
rules run there too) every `--epoch-steps` steps. The figure that counts is the amortised step time:
median + save extra x saves/steps + epoch-end time x epochs/steps, against hooks off.
`--profiler` adds a third arm: hook plus profiler (sampler thread, phase timings) plus the rules.
"""
from __future__ import annotations

import argparse
import copy
import shutil
import statistics
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "container"))
from classifier.debugger import config
from classifier.debugger.hook import HookObserver
from classifier.model import build_model
from classifier.observers import Observers
from classifier.training import hyperparameters
from classifier.training.loop import NLLWithLabelSmoothing, Optimisation, Precision, train_one_epoch


class Timed:
    """The batches of one block; records when each is handed out (so each step's duration is known)."""

    def __init__(self, batches, sync):
        self.batches, self.sync, self.stamps = batches, sync, []

    def __iter__(self):
        for batch in self.batches:
            self.sync()
            self.stamps.append(time.perf_counter())
            yield batch
        self.sync()
        self.stamps.append(time.perf_counter())

    def __len__(self):
        return len(self.batches)


class Arm:
    def __init__(self, name, model, observers, device):
        self.name, self.model, self.observer = name, model, Observers(observers)
        self.optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], 1e-3)
        self.loss_fn = NLLWithLabelSmoothing(0.0)
        self.precision = Precision(device)
        self.scaler = self.precision.scaler()
        self.step_times: dict[int, float] = {}
        self.epoch_end_times: list[float] = []
        self.steps = 0

    def optimisation(self) -> Optimisation:
        return Optimisation(self.loss_fn, self.optimizer, self.precision, self.scaler)

    def start(self, classes, train_labels):
        self.observer.on_train_start(self.model, self.loss_fn, {
            "hyperparameters": None, "classes": classes, "train_labels": train_labels,
            "device": self.precision.device, "started": time.time(), "num_workers": 0})

    def block(self, batches, sync, epoch_steps):
        timed = Timed(batches, sync)
        train_one_epoch(self.model, timed, self.optimisation(), self.observer, self.steps)
        for i, (a, b) in enumerate(pairwise(timed.stamps)):
            self.step_times[self.steps + i] = b - a
        self.steps += len(batches)
        if self.steps % epoch_steps == 0:
            start = time.perf_counter()
            self.observer.on_epoch_end(self.steps // epoch_steps, {"train_loss": 1.0, "valid_loss": 1.0})
            sync()
            self.epoch_end_times.append(time.perf_counter() - start)

    def summary(self, interval):
        median = statistics.median(self.step_times.values())
        saves = [t for s, t in self.step_times.items() if s % interval == 0]
        save_extra = max(0.0, statistics.mean(saves) - median) if saves else 0.0
        epoch_end = statistics.mean(self.epoch_end_times) if self.epoch_end_times else 0.0
        return median, save_extra, epoch_end


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=400, help="training steps per arm")
    parser.add_argument("--block", type=int, default=10, help="steps per block; blocks alternate between arms")
    parser.add_argument("--epoch-steps", type=int, default=100, help="steps per epoch (epoch-end work)")
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
    classes, train_labels = [str(i) for i in range(10)], list(range(10)) * 10
    for arm in arms:
        train_one_epoch(arm.model, batches[:3], arm.optimisation(), Observers([]), 0)  # warm-up, before the hook
        arm.start(classes, train_labels)
    for round_ in range(max(1, args.steps // args.block)):
        for arm in (arms if round_ % 2 == 0 else list(reversed(arms))):
            arm.block(batches, sync, args.epoch_steps)
    for arm in arms:
        arm.observer.on_train_end({"final": {}, "history": [], "seconds": 0})
    saved = sorted(int(p.name) for p in (scratch / "a" / "tensors" / "events").iterdir())
    what = "whole network" if args.unfrozen else "head only, frozen backbone"
    print(f"{args.model}, {what}, batch {args.batch_size} x {args.image_size}px on {device}; {arms[0].steps} "
          f"steps per arm in alternating blocks of {args.block}, an epoch every {args.epoch_steps} steps; the hook "
          f"saved steps {', '.join(map(str, saved))}")
    interval = hp.debugger_train_interval
    base = None
    for arm in arms:
        median, save_extra, epoch_end = arm.summary(interval)
        amortised = median + save_extra / interval + epoch_end / args.epoch_steps
        base = base or amortised
        mean = statistics.mean(arm.step_times.values())
        print(f"{arm.name:26s} median step {median * 1000:8.2f} ms, save step +{save_extra * 1000:7.2f} ms, "
              f"epoch end {epoch_end * 1000:7.1f} ms -> amortised {amortised * 1000:8.2f} ms/step "
              f"(ratio {amortised / base:.3f}; raw mean {mean * 1000:.1f} ms)")
    on = arms[1].summary(interval)
    ratio = (on[0] + on[1] / interval + on[2] / args.epoch_steps) / base
    print(f"hooks on / hooks off: {ratio:.3f} (budget <= 1.05)")
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
