"""The debugger session inside a training job: records the job's timeline, epochs and predictions, runs the
rules at every epoch end (StopTraining), and writes the rule results and the HTML report at the end.

Files: debugger/job.json, debugger/epochs.jsonl, debugger/predictions.jsonl (see jobdata.py),
rules/rule_results.json (the latest result of every rule: rule, status, message, step, time, epoch, values,
kind, parameters, recommendation, actions, evaluated_at) and rules/rule_history.jsonl (one line per rule
evaluation that changed a rule's status, with the epoch), and debugger-report.html.
"""
from __future__ import annotations

import logging
import os
import socket
import time

from ..observers import Observer
from . import config, jobdata, rules
from .records import append_jsonl, read_json, read_jsonl, write_json
from .tensors import TensorReader

log = logging.getLogger(__name__)


def build(hp, layout: config.Layout | None = None) -> list[Observer]:
    """The observers for this job's hyperparameters (the caller checked that debugger or profiler is on)."""
    layout = layout or config.Layout.for_running_job()
    observers: list[Observer] = []
    hook = profiler = None
    if hp.debugger:
        from .hook import HookObserver

        hook = HookObserver(hp, layout)
        observers.append(hook)
    if hp.profiler:
        from .profiler import ProfilerObserver

        profiler = ProfilerObserver(hp, layout)
        observers.append(profiler)
    observers.append(DebuggerSession(hp, layout, hook, profiler))
    return observers


class DebuggerSession(Observer):
    def __init__(self, hp, layout: config.Layout, hook=None, profiler=None):
        self.hp, self.layout, self.hook, self.profiler = hp, layout, hook, profiler
        self.rule_names = config.rules_for(hp.debugger_rules, bool(hp.debugger), bool(hp.profiler))
        self.overrides = config.rule_parameters(hp.debugger_rule_parameters)
        self.stop_rules = config.rule_names(hp.debugger_stop_rules)
        self.reader = TensorReader(layout.tensors) if hook is not None else None
        self.job: dict = {}
        self.stopped_by: str | None = None
        self.last_status: dict = {}
        self.torch = None

    # -- start ----------------------------------------------------------------------------------------------
    def on_train_start(self, model, loss_fn, context):
        import torch

        self.torch = torch
        self.device = context.get("device", torch.device("cpu"))
        classes = list(context.get("classes") or [])
        self.n = max(1, len(classes))
        counts = [0] * len(classes)
        for label in context.get("train_labels") or []:
            counts[label] += 1
        earlier = read_jsonl(self.layout.epochs_file)
        self.next_eval_step = earlier[-1]["eval_steps"][1] + 1 if earlier else 0
        previous = read_json(self.layout.job_file, {}) or {}
        hp = context.get("hyperparameters") or self.hp
        if self.hook is not None and not self.hook.described:  # the hook did not start
            self.reader = None
        elif self.hook is not None and self.hook.described.get("out_dir"):  # debughookconfig.json's LocalPath
            from pathlib import Path

            self.reader = TensorReader(Path(self.hook.described["out_dir"]))
        self.job = {
            "started": context.get("started", time.time()), "run": previous.get("run", 0) + 1,
            "first_step_start": None, "loop_end": None, "train_end": None, "ended": None, "status": "InProgress",
            "host": socket.gethostname(), "cpu_count": os.cpu_count() or 1,
            "device": str(self.device), "gpus": torch.cuda.device_count() if torch.cuda.is_available() else 0,
            "num_workers": context.get("num_workers"), "batch_size": getattr(hp, "batch_size", None),
            "world_size": getattr(context.get("world"), "size", 1),
            "hyperparameters": hp.as_strings() if hasattr(hp, "as_strings") else dict(hp),
            "classes": classes, "train_label_counts": counts,
            "hook": dict(self.hook.described) if self.hook is not None and self.hook.described else None,
            "profiler": dict(self.profiler.described) if self.profiler is not None else None,
            "rules": self.rule_names, "stop_rules": self.stop_rules,
        }
        write_json(self.layout.job_file, self.job)
        self._reset("train")
        self._reset("eval")
        self.epoch_train_steps = [None, None]
        self.eval_pass = None
        skipped = [r for r in config.rule_names(self.hp.debugger_rules) if r not in self.rule_names]
        if skipped:
            log.info("Rules skipped for want of data (debugger=%s, profiler=%s): %s", self.hp.debugger,
                     self.hp.profiler, ", ".join(skipped))
        log.info("Debugger rules %s%s", ", ".join(self.rule_names) or "none",
                 f"; StopTraining on {', '.join(self.stop_rules)}" if self.stop_rules else "")

    def _reset(self, mode: str) -> None:
        setattr(self, f"{mode}_confusion", self.torch.zeros(self.n * self.n, dtype=self.torch.long, device=self.device))

    # -- during training ------------------------------------------------------------------------------------
    def on_mode(self, mode):
        if mode == "eval":
            self._reset("eval")
            self.eval_pass = [self.next_eval_step, self.next_eval_step - 1]

    def _count(self, mode, labels, log_probs) -> None:
        predictions = log_probs.detach().argmax(dim=1)
        labels = labels.to(predictions.device)
        confusion = getattr(self, f"{mode}_confusion")
        if confusion.device != predictions.device:
            confusion = confusion.to(predictions.device)
        setattr(self, f"{mode}_confusion", confusion + self.torch.bincount(labels * self.n + predictions,
                                                                            minlength=self.n * self.n))

    def on_train_step(self, step, timings, loss, labels, log_probs):
        if self.job["first_step_start"] is None:
            self.job["first_step_start"] = time.time() - sum(timings.values())
            write_json(self.layout.job_file, self.job)
        if self.epoch_train_steps[0] is None:
            self.epoch_train_steps[0] = step
        self.epoch_train_steps[1] = step
        self._count("train", labels, log_probs)

    def on_eval_batch(self, labels, log_probs):
        self._count("eval", labels, log_probs)
        self.next_eval_step += 1
        if self.eval_pass is not None:
            self.eval_pass[1] = self.next_eval_step - 1

    def _write_predictions(self, epoch, mode: str, source: str) -> None:
        matrix = getattr(self, f"{source}_confusion").view(self.n, self.n).cpu()
        append_jsonl(self.layout.predictions_file, {"epoch": epoch, "mode": mode, "samples": int(matrix.sum()),
                                                    "confusion": matrix.tolist()})

    def on_epoch_end(self, epoch, metrics):
        now = time.time()
        record = {"epoch": epoch, "train_steps": self.epoch_train_steps,
                  "eval_steps": self.eval_pass or [self.next_eval_step, self.next_eval_step - 1], "timestamp": now,
                  **{k: v for k, v in metrics.items() if k != "epoch"}}
        append_jsonl(self.layout.epochs_file, record)
        self._write_predictions(epoch, "train", "train")
        if self.eval_pass is not None:
            self._write_predictions(epoch, "valid", "eval")
        self._reset("train")
        self.epoch_train_steps, self.eval_pass = [None, None], None
        self.job["loop_end"] = now
        write_json(self.layout.job_file, self.job)
        results = self.run_rules(epoch)
        if self.stopped_by is None:
            for result in results:
                if result.status == rules.ISSUES and "StopTraining" in result.actions:
                    self.stopped_by = result.rule
                    return f"StopTraining: rule {result.line()}"
        return None

    def run_rules(self, epoch=None) -> list:
        if not self.rule_names:
            return []
        started = time.time()
        data = jobdata.load(self.layout, self.reader, with_tensors=self.reader is not None)
        results = rules.evaluate(data, self.rule_names, self.overrides, self.stop_rules)
        write_results(self.layout, results, epoch, self.last_status)
        for result in results:
            if result.status == rules.ISSUES and self.last_status.get(result.rule) != "logged":
                log.warning("Rule %s. Recommendation: %s", result.line(), result.recommendation)
                self.last_status[result.rule] = "logged"
        log.info("Rules after epoch %s: %s (%.1f s)", epoch if epoch is not None else "end",
                 ", ".join(f"{r.rule}={r.status}" for r in results), time.time() - started)
        return results

    # -- end ------------------------------------------------------------------------------------------------
    def on_train_end(self, summary):
        if self.eval_pass is not None:  # the evaluation after the last epoch: the test channel
            self._write_predictions(summary.get("final", {}).get("epochs_run"), "test", "eval")
        self.job.update(train_end=time.time(), status="Completed", final=summary.get("final"),
                        stopped_by_rule=self.stopped_by)
        self.job["ended"] = self.job["train_end"]
        write_json(self.layout.job_file, self.job)
        try:
            self.run_rules()
        except Exception as error:  # never fail a finished training job for its debugger
            log.warning("final rules failed: %s", error)
        try:
            from .report import write_report

            path = write_report(self.layout, reader=self.reader)
            log.info("Debugger report: %s", path)
        except Exception as error:
            log.warning("the debugger report could not be written: %s", error, exc_info=True)


def write_results(layout: config.Layout, results: list, epoch=None, last_status: dict | None = None) -> None:
    """rule_results.json (latest of each rule) and, for the rules whose status changed, rule_history.jsonl."""
    last_status = last_status if last_status is not None else {}
    existing = read_json(layout.results_file, {}) or {}
    latest = {r["rule"]: r for r in existing.get("rules", [])}
    for result in results:
        latest[result.rule] = result.as_dict()
        key = f"status:{result.rule}"
        if last_status.get(key) != result.status:
            append_jsonl(layout.history_file, {"epoch": epoch, **result.as_dict()})
            last_status[key] = result.status
    write_json(layout.results_file, {"updated": time.time(), "epoch": epoch, "rules": list(latest.values())})
