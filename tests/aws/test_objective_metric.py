"""The tuning objective read from a training log (issue 13 item 9): Hyperband and SageMaker's early stopping
use every value the objective's regex finds, and the last one is the trial's final objective. The objective
must appear once per epoch, and its last value must be the saved model's."""
from __future__ import annotations

import re

import pytest

from classifier.training import metrics_log
from scripts import job_definition, orchestration
from scripts.local import tuning_jobs

EPOCHS = [  # (train_loss, valid_loss, valid_accuracy): the best epoch is the 2nd, two worse ones follow
    (0.90, 0.80, 0.50), (0.70, 0.60, 0.70), (0.50, 0.65, 0.72), (0.40, 0.70, 0.71)]


def epoch_metrics(epoch: int) -> dict:
    train, valid, accuracy = EPOCHS[epoch - 1]
    return {"epoch": epoch, "train_loss": train, "valid_loss": valid, "valid_accuracy": accuracy,
            "valid_macro_f1": accuracy - 0.01, "epoch_time": 12.0, "images_per_sec": 200.0}


def training_log() -> str:
    """The metric lines a 4-epoch job prints (metrics_log's format), among ordinary log lines."""
    lines, best = ["Initialisation took 3.2 s"], float("inf")
    for epoch, (_, valid, _) in enumerate(EPOCHS, start=1):
        best = min(best, valid)
        lines += [f"Epoch {epoch}/4", metrics_log.epoch_line(epoch_metrics(epoch), best_valid_loss=best)]
    best_epoch = 2
    lines.append(metrics_log.best_line(best_epoch, epoch_metrics(best_epoch)))
    lines.append(metrics_log.test_line(0.66, 0.69, 0.68))
    return "\n".join(lines) + "\n"


def values_per_line(regex: str, log_text: str) -> list[list[float]]:
    """What SageMaker takes from each log line: every match of the metric's regex."""
    return [[float(v) for v in re.findall(regex, line)] for line in log_text.splitlines()]


def test_hyperband_gets_one_objective_value_per_epoch():
    definition = job_definition.load()
    regex = {m.name: m.regex for m in definition.metrics}[definition.objective.metric]
    found = values_per_line(regex, training_log())
    assert all(len(values) <= 1 for values in found)
    values = [v for line in found for v in line]
    assert len(values) == len(EPOCHS)  # one per epoch: no extra point at the end
    assert values == [0.80, 0.60, 0.60, 0.60]  # the best so far: what the job would keep after that epoch


def test_the_final_objective_is_the_saved_models():
    definition = job_definition.load()
    final = orchestration.final_metrics(definition, training_log())
    assert final[definition.objective.metric] == 0.60  # epoch 2's, the saved model; not the last epoch's 0.70
    # the best_epoch line still ends the valid_* series with the saved model's values
    assert final["valid_loss"] == 0.60 and final["valid_accuracy"] == 0.70 and final["valid_macro_f1"] == 0.69
    per_epoch = definition.parse_metrics(training_log())
    assert per_epoch["valid_loss"][:4] == [v for _, v, _ in EPOCHS]  # valid_loss= is not read from best_valid_loss=
    assert per_epoch["train_loss"] == [t for t, _, _ in EPOCHS] and final["test_accuracy"] == 0.69
    assert final["test_macro_f1"] == 0.68


def test_local_tuning_reports_the_same_values_at_their_epochs():
    """The local tuner's pruner is fed each epoch line's objective value at its epoch (scripts/local/tune.py)."""
    definition = job_definition.load()
    regex = definition.metric_regexes()[definition.objective.metric]
    reported = [(int(tuning_jobs.EPOCH.search(line).group(1)), float(regex.search(line).group(1)))
                for line in training_log().splitlines() if regex.search(line) and tuning_jobs.EPOCH.search(line)]
    assert reported == [(1, 0.80), (2, 0.60), (3, 0.60), (4, 0.60)]


@pytest.mark.parametrize("line", [metrics_log.best_line(2, epoch_metrics(2)), metrics_log.test_line(0.66, 0.69, 0.68)])
def test_the_end_of_job_lines_carry_no_objective(line):
    definition = job_definition.load()
    assert definition.metric_regexes()[definition.objective.metric].search(line) is None
