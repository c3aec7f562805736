"""What the training loop tells those who watch it (the debugger and profiler); the loop knows nothing else of them.

An observer sees the model, each step's phase timings, losses and predictions, and each epoch's
metrics; `on_epoch_end` may return a reason to stop training (SageMaker's StopTraining action).
A module of its own, importing nothing: classifier.training calls observers, classifier.debugger implements
them, and neither package needs the other for it.
"""
from __future__ import annotations


class Observer:
    wants_step_timings = False  # True: the loop synchronises the GPU to time each phase exactly

    def on_train_start(self, model, loss_fn, context: dict) -> None: ...

    def on_mode(self, mode: str) -> None:
        """'train' before a training epoch, 'eval' before validation or test."""

    def on_train_step(self, step: int, timings: dict, loss, labels, log_probs) -> None:
        """timings: seconds of 'data', 'forward', 'backward', 'optimizer' for this step."""

    def on_eval_batch(self, labels, log_probs) -> None: ...

    def on_epoch_end(self, epoch: int, metrics: dict) -> str | None:
        return None

    def on_train_end(self, summary: dict) -> None: ...


class Observers(Observer):
    """Several observers as one."""

    def __init__(self, observers: list[Observer]):
        self.observers = observers
        self.wants_step_timings = any(o.wants_step_timings for o in observers)

    def on_train_start(self, model, loss_fn, context):
        for o in self.observers:
            o.on_train_start(model, loss_fn, context)

    def on_mode(self, mode):
        for o in self.observers:
            o.on_mode(mode)

    def on_train_step(self, step, timings, loss, labels, log_probs):
        for o in self.observers:
            o.on_train_step(step, timings, loss, labels, log_probs)

    def on_eval_batch(self, labels, log_probs):
        for o in self.observers:
            o.on_eval_batch(labels, log_probs)

    def on_epoch_end(self, epoch, metrics):
        reasons = [r for r in (o.on_epoch_end(epoch, metrics) for o in self.observers) if r]
        return "; ".join(reasons) or None

    def on_train_end(self, summary):
        for o in self.observers:
            o.on_train_end(summary)
