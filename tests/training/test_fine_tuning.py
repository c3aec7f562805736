"""Partial fine-tuning (unfreeze_stages): only the last stages and the head change; frozen BatchNorm
statistics stay the pretrained ones; a job killed mid-epoch resumes to the uninterrupted result."""
import json
import os
import signal
import threading
import time

import pytest
import torch

from classifier.backbones import ARCHITECTURES
from classifier.model import build_model
from classifier.training.main import main
from classifier.training.optim import make_scheduler
from helpers import FAST_HP, args
from scripts import job_definition
from scripts.local import jobs

TRAINED = ("blocks.5.", "blocks.6.", "conv_head.", "bn2.")  # efficientnet_lite0's last stage (1/32) and what follows


@pytest.mark.slow
def test_only_the_last_stage_and_the_head_change(opt_ml, image_set):
    opt_ml.link("train", image_set / "train")
    opt_ml.link("valid", image_set / "valid")
    hp = {**FAST_HP, "unfreeze_stages": "1", "epochs": "2", "lr": "0.01", "backbone_lr_scale": "1"}
    assert main(args(hp)) == 0, opt_ml.failure()
    saved = torch.load(opt_ml.root / "model" / "model.pth", weights_only=True)
    pretrained = build_model("efficientnet_lite0", 4, pretrained=True).backbone.state_dict()
    changed, unchanged = [], []
    for name, before in pretrained.items():
        after = saved[f"backbone.{name}"]
        (unchanged if torch.equal(before, after) else changed).append(name)
    frozen_changed = [n for n in changed if not n.startswith(TRAINED)]
    assert not frozen_changed, f"frozen tensors changed: {frozen_changed[:5]}"  # bit-identical, BN stats too
    assert any(n.startswith("blocks.6.") and n.endswith("running_mean") for n in changed)  # BN trains there
    assert any(n.startswith("blocks.6.") and n.endswith("weight") for n in changed)
    assert any(n.startswith("blocks.5.") and n.endswith("weight") for n in changed)
    assert any(n.startswith("conv_head.") for n in changed)
    hyperparameters = json.loads((opt_ml.root / "model" / "model_config.json").read_text())["hyperparameters"]
    assert hyperparameters["unfreeze_stages"] == "1" and hyperparameters["freeze_backbone"] == "false"


def test_frozen_parts_stay_in_eval_mode_while_training():
    model = build_model("resnet18", 3, pretrained=False, unfreeze_stages=1).train()
    modes = {name: m.training for name, m in model.backbone.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert all(mode for name, mode in modes.items() if name.startswith("layer4."))
    assert not any(mode for name, mode in modes.items() if not name.startswith("layer4."))
    trainable = {n.split(".")[0] for n, p in model.backbone.named_parameters() if p.requires_grad}
    assert trainable == {"layer4"}
    everything = build_model("resnet18", 3, pretrained=False, unfreeze_stages="all").train()
    assert all(p.requires_grad for p in everything.parameters()) and everything.backbone.bn1.training


def test_warm_up_then_cosine_to_zero():
    from classifier.training.hyperparameters import parse

    hp = parse({"warmup_epochs": "1", "lr": "0.1"})
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=hp.lr)
    scheduler = make_scheduler(optimizer, hp, epochs=4, steps_per_epoch=10)
    rates = []
    for _ in range(40):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(0.01) and rates[9] == pytest.approx(0.1)  # linear warm-up in epoch 1
    assert all(a >= b for a, b in zip(rates[9:], rates[10:], strict=False))  # then only down
    assert rates[-1] < 0.001


@pytest.mark.slow
def test_sigkill_mid_epoch_resumes_partial_fine_tuning_exactly(image_set, tmp_path):
    definition = job_definition.load()
    hp = {**FAST_HP, "unfreeze_stages": "1", "epochs": "3", "batch_size": "8", "debugger": "false",
          "profiler": "false"}
    reference = jobs.create_job(definition, image_set, hp, root=tmp_path)
    assert jobs.run_job(reference, definition=definition)["status"] == "Completed"
    job = jobs.create_job(definition, image_set, hp, root=tmp_path)
    killed = {}

    def kill_once_epoch_1_is_saved(process):
        last = job / "checkpoints" / "last.pt"
        deadline = time.time() + 120
        while time.time() < deadline and not last.is_file():
            time.sleep(0.05)
        time.sleep(0.3)  # into epoch 2
        os.killpg(process.pid, signal.SIGKILL)
        killed["at"] = time.time()

    def watch(line, process):
        if line.startswith("[metrics] epoch=1") and not killed:
            killed["thread"] = threading.Thread(target=kill_once_epoch_1_is_saved, args=(process,))
            killed["thread"].start()
        return False

    assert jobs.run_job(job, definition=definition, on_line=watch)["status"] == "Failed"
    assert "at" in killed and torch.load(job / "checkpoints" / "last.pt", weights_only=True)["progress"]["epoch"] == 1
    assert jobs.run_job(job, definition=definition)["status"] == "Completed", (job / jobs.LOG).read_text()[-2000:]
    assert "after epoch 1 of 3" in (job / jobs.LOG).read_text()
    ours = json.loads((job / "output" / "data" / "metrics.json").read_text())["history"]
    theirs = json.loads((reference / "output" / "data" / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in ours] == [1, 2, 3]
    for a, b in zip(ours, theirs, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["valid_loss"] == pytest.approx(b["valid_loss"], rel=1e-5)


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_lite0"])
def test_stages_are_the_feature_resolutions_and_the_last_is_one_32nd(name):
    """A stage is all the blocks at one resolution (as ResNet's layer1-4): each ends at a coarser one
    than the one before it, and unfreeze_stages=1 trains the stage at 1/32 (ResNet's layer4)."""
    arch = ARCHITECTURES[name]
    backbone = arch.build().eval()
    modules = dict(backbone.named_modules())
    sizes = {}
    for stage in arch.stages:
        for part in stage:
            modules[part].register_forward_hook(lambda m, i, out, part=part: sizes.__setitem__(part, out.shape[-1]))
    with torch.no_grad():
        backbone(torch.zeros(1, 3, 64, 64))
    reductions = [[64 // sizes[part] for part in stage] for stage in arch.stages]
    assert all(len(set(r)) == 1 for r in reductions), reductions  # one resolution per stage
    ends = [r[-1] for r in reductions]
    assert ends == sorted(set(ends)) and ends[-1] == 32, ends
