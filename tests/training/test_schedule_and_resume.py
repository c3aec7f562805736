"""The learning-rate schedule (torch's schedulers) and resuming checkpoints written before it existed."""
import json
import math
import shutil

import pytest
import torch

from classifier import paths
from classifier.training import checkpoints
from classifier.training.hyperparameters import parse
from classifier.training.main import main
from classifier.training.optim import make_scheduler
from helpers import FAST_HP, args


def lambda_schedule(optimizer, hp, epochs: int, steps_per_epoch: int):
    """The schedule as checkpoints before torch's LinearLR/CosineAnnealingLR were written: a LambdaLR."""
    warmup, total = round(hp.warmup_epochs * steps_per_epoch), epochs * steps_per_epoch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def rates(make, hp, epochs: int, steps: int) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=hp.lr)
    scheduler, seen = make(optimizer, hp, epochs, steps), []
    for _ in range(epochs * steps):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return seen


@pytest.mark.parametrize("warmup", ["0", "0.05", "0.5", "1", "2", "10"])
@pytest.mark.parametrize("epochs, steps", [(1, 1), (1, 3), (3, 7), (4, 10), (30, 19)])
def test_the_schedule_is_the_warm_up_and_cosine_it_always_was(warmup, epochs, steps):
    hp = parse({"warmup_epochs": warmup, "lr": "0.1"})
    assert rates(make_scheduler, hp, epochs, steps) == pytest.approx(rates(lambda_schedule, hp, epochs, steps),
                                                                      rel=1e-12, abs=1e-15)


@pytest.mark.slow
def test_a_checkpoint_with_the_old_schedule_resumes_to_the_same_result(opt_ml, image_set, tmp_path, monkeypatch):
    """A job resumed from a checkpoint whose schedule is a LambdaLR's state ends where an uninterrupted job
    ends, epoch by epoch."""
    hp = {**FAST_HP, "epochs": "3", "lr": "0.003", "batch_size": "8"}
    opt_ml.link("train", image_set / "train")
    opt_ml.link("valid", image_set / "valid")
    after_epoch_1 = tmp_path / "after-epoch-1"
    save = checkpoints.save

    def keep_epoch_1(directory, state, best):
        save(directory, state, best)
        if state["progress"]["epoch"] == 1:
            shutil.copytree(directory, after_epoch_1)

    monkeypatch.setattr(checkpoints, "save", keep_epoch_1)
    assert main(args(hp)) == 0
    monkeypatch.setattr(checkpoints, "save", save)
    reference = json.loads((paths.output_data_dir() / "metrics.json").read_text())["history"]

    # The checkpoint of epoch 1 as the earlier code wrote it: the same, but the schedule a LambdaLR's state.
    last = after_epoch_1 / checkpoints.LAST
    state = torch.load(last, weights_only=True)
    steps = state["scheduler"]["last_epoch"]
    groups = state["optimizer"]["param_groups"]
    optimizer = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": g["initial_lr"]}
                                 for g in groups])
    old = lambda_schedule(optimizer, parse(hp), epochs=3, steps_per_epoch=steps)
    for _ in range(steps):
        optimizer.step()
        old.step()
    state["scheduler"] = old.state_dict()
    assert "lr_lambdas" in state["scheduler"] and "_schedulers" not in state["scheduler"]
    torch.save(state, last)

    shutil.rmtree(paths.checkpoint_dir())
    shutil.copytree(after_epoch_1, paths.checkpoint_dir())
    assert main(args(hp)) == 0
    resumed = json.loads((paths.output_data_dir() / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in resumed] == [1, 2, 3]
    for ours, theirs in zip(resumed, reference, strict=True):
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-6)
        assert ours["valid_loss"] == pytest.approx(theirs["valid_loss"], rel=1e-6)
        assert ours["lr"] == pytest.approx(theirs["lr"], rel=1e-9)
