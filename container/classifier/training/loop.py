"""One training epoch and one evaluation pass. Plain PyTorch: no work beyond what a hand-written loop does."""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..observers import Observer


class NLLWithLabelSmoothing(nn.Module):
    """NLL loss on log-probabilities (the head ends in LogSoftmax), with optional label smoothing and class
    weights (`weight`: one per class; the loss is then the weighted mean, as torch's nll_loss computes it)."""

    def __init__(self, smoothing: float = 0.0, weight: torch.Tensor | None = None):
        super().__init__()
        self.smoothing = smoothing
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, log_probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        nll = F.nll_loss(log_probs, labels, weight=self.weight)
        if self.smoothing == 0:
            return nll
        return (1 - self.smoothing) * nll - self.smoothing * log_probs.mean(dim=1).mean()


def balanced_class_weights(labels: list[int], num_classes: int) -> torch.Tensor:
    """scikit-learn's `balanced` weights: images / (classes x images of the class)."""
    counts = torch.bincount(torch.tensor(labels), minlength=num_classes).double()
    return (len(labels) / (num_classes * counts)).float()


def macro_f1(labels: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> float:
    """The mean of the per-class F1 over the classes that occur as a label or a prediction (scikit-learn's
    f1_score(average="macro"); a class never predicted has F1 0)."""
    matrix = torch.bincount(labels * num_classes + predictions, minlength=num_classes ** 2).view(num_classes,
                                                                                                 num_classes).double()
    true_positives = matrix.diag()
    support, predicted = matrix.sum(1), matrix.sum(0)
    seen = (support + predicted) > 0
    f1 = 2 * true_positives / (support + predicted).clamp(min=1)  # 2PR/(P+R) = 2TP/(2TP+FP+FN)
    return float(f1[seen].mean()) if seen.any() else 0.0


@dataclass
class Precision:
    """Autocast settings: bf16 on GPUs that have it, fp16 with loss scaling on older ones, off on CPU."""

    device: torch.device
    dtype: torch.dtype | None = None

    @classmethod
    def choose(cls, device: torch.device, amp: bool) -> "Precision":
        if not amp or device.type != "cuda":
            return cls(device)
        return cls(device, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def scaler(self):
        return torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16)


@dataclass
class EpochResult:
    loss: float
    images: int
    seconds: float


@dataclass
class EvalResult:
    loss: float
    accuracy: float
    predictions: torch.Tensor
    labels: torch.Tensor
    macro_f1: float


def to_device(images, labels, device, channels_last):
    images = images.to(device, non_blocking=True)
    if channels_last and images.dim() == 4:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, labels.to(device, non_blocking=True)


@dataclass
class Optimisation:
    """What a training step does with a batch's loss: the loss function, the optimizer with its per-step schedule
    (warm-up, then cosine), and the precision with its loss scaler."""

    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    precision: Precision
    scaler: torch.amp.GradScaler
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None


def train_one_epoch(model, loader, optimisation: Optimisation, observer: Observer, first_step: int,
                    channels_last: bool = False, should_stop=lambda: False) -> EpochResult:
    loss_fn, optimizer, precision = optimisation.loss_fn, optimisation.optimizer, optimisation.precision
    scaler, scheduler = optimisation.scaler, optimisation.scheduler
    model.train()
    observer.on_mode("train")
    device = precision.device
    sync = torch.cuda.synchronize if (observer.wants_step_timings and device.type == "cuda") else (lambda: None)
    total_loss = torch.zeros((), device=device)
    images_seen, step = 0, first_step
    start = ready = time.perf_counter()
    for images, labels in loader:
        loaded = time.perf_counter()
        images, labels = to_device(images, labels, device, channels_last)
        with precision.autocast():
            log_probs = model(images)
            loss = loss_fn(log_probs.float(), labels)
        sync()
        forward_done = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        sync()
        backward_done = time.perf_counter()
        scaler.step(optimizer)
        scaler.update()
        if scheduler is not None:
            scheduler.step()  # the learning rate schedule is per step (warm-up, then cosine)
        sync()
        optimizer_done = time.perf_counter()
        total_loss += loss.detach() * labels.shape[0]  # no GPU sync per step
        images_seen += labels.shape[0]
        observer.on_train_step(step, {"data": loaded - ready, "forward": forward_done - loaded,
                                      "backward": backward_done - forward_done,
                                      "optimizer": optimizer_done - backward_done}, loss, labels, log_probs)
        step += 1
        if should_stop():
            break
        ready = time.perf_counter()
    if images_seen == 0:
        raise RuntimeError("the training loader produced no batch")
    return EpochResult(float(total_loss) / images_seen, images_seen, time.perf_counter() - start)


@torch.inference_mode()
def evaluate(model, loader, precision: Precision, observer: Observer, channels_last: bool = False) -> EvalResult:
    """Mean NLL (without label smoothing) and accuracy over the whole set, plus every prediction."""
    model.eval()
    observer.on_mode("eval")
    device = precision.device
    total_loss = torch.zeros((), device=device, dtype=torch.float64)
    predictions, all_labels = [], []
    for images, labels in loader:
        images, labels = to_device(images, labels, device, channels_last)
        with precision.autocast():
            log_probs = model(images).float()
        total_loss += F.nll_loss(log_probs, labels, reduction="sum").double()
        predictions.append(log_probs.argmax(dim=1).cpu())
        all_labels.append(labels.cpu())
        observer.on_eval_batch(labels, log_probs)
    predictions, all_labels = torch.cat(predictions), torch.cat(all_labels)
    count = len(all_labels)
    return EvalResult(float(total_loss) / count, float((predictions == all_labels).sum()) / count,
                      predictions, all_labels, macro_f1(all_labels, predictions, log_probs.shape[1]))
