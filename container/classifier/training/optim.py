"""The optimizer and the learning-rate schedule of a training job.

- Parameter groups: the head at `lr`, the trained backbone stages at `lr * backbone_lr_scale`; weight
  decay on weight matrices and kernels only, not on biases and normalisation parameters (decaying those
  only shifts the features).
- Schedule, per step: a linear warm-up over `warmup_epochs` (the first step at lr / warm-up steps), then a
  cosine decay to zero at the last step: torch's LinearLR and CosineAnnealingLR in a SequentialLR.
"""
from __future__ import annotations

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR

from .hyperparameters import Hyperparameters


def make_optimizer(model, hp: Hyperparameters) -> torch.optim.Optimizer:
    backbone = [p for m in model.trained_backbone_modules() for p in m.parameters()]
    groups = []
    for params, lr in ((list(model.head.parameters()), hp.lr), (backbone, hp.lr * hp.backbone_lr_scale)):
        groups.append({"params": [p for p in params if p.ndim > 1], "lr": lr, "weight_decay": hp.weight_decay})
        groups.append({"params": [p for p in params if p.ndim <= 1], "lr": lr, "weight_decay": 0.0})
    groups = [group for group in groups if group["params"]]
    if hp.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=hp.lr, momentum=hp.momentum, nesterov=hp.momentum > 0)
    if hp.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=hp.lr)
    return torch.optim.Adam(groups, lr=hp.lr)


def make_scheduler(optimizer, hp: Hyperparameters, epochs: int, steps_per_epoch: int) -> LRScheduler:
    """Step s of W warm-up steps runs at lr * (s + 1) / W; from step W, lr * (1 + cos(pi * t)) / 2 with t
    going from 0 to 1 at the last step."""
    warmup, total = round(hp.warmup_epochs * steps_per_epoch), epochs * steps_per_epoch
    cosine = CosineAnnealingLR(optimizer, T_max=max(1, total - warmup), eta_min=0.0)
    if warmup == 0:
        return cosine
    ramp = LinearLR(optimizer, start_factor=1.0 / warmup, end_factor=1.0, total_iters=warmup - 1)
    return SequentialLR(optimizer, [ramp, cosine], milestones=[warmup])


def load_scheduler_state(scheduler: LRScheduler, state: dict) -> None:
    """Resume the schedule from a checkpoint. Checkpoints written before the schedule was built from torch's
    schedulers hold a LambdaLR's state: its `last_epoch` is the step reached, and the schedule is a function
    of the step alone, so the new scheduler is stepped there (before the optimizer's state is loaded, which
    then sets the learning rates as saved)."""
    if "lr_lambdas" not in state:
        scheduler.load_state_dict(state)
        return
    for _ in range(int(state["last_epoch"])):
        scheduler.optimizer.step()  # no gradients yet: changes no parameter, keeps torch's order check quiet
        scheduler.step()
