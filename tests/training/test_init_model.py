"""A job started from an earlier model (the init_model channel): the final job of a tuning job starts from its best
trial's tuned head; incremental training reuses what the classes allow; what cannot be reused is refused."""
import json
import shutil
import tarfile

import pytest
import torch

from classifier.training import setup
from classifier.training.hyperparameters import parse
from classifier.training.init_model import InitModelError
from classifier.training.main import main
from helpers import FAST_HP, args


def trained_state(job) -> dict:
    return torch.load(job / "model" / "model.pth", weights_only=True)


def channels(image_set, init) -> dict:
    return {"train": image_set / "train", "valid": image_set / "valid", "init_model": init}


def hp(**values):
    return parse({**FAST_HP, "image_size": "64", **values})


def test_the_head_handed_over_equals_the_trained_one_bit_for_bit(trained_job, image_set):
    """A fine-tuning job from a head-only job's model: the same head and the same backbone (the pretrained one the
    head trained on), tensor for tensor."""
    job = setup.assemble(hp(unfreeze_stages="1"), channels(image_set, trained_job / "model"))
    saved, ours = trained_state(trained_job), job.model.state_dict()
    assert set(saved) == set(ours)
    assert all(torch.equal(saved[k], ours[k]) for k in saved)
    assert job.init_model["reused"] == "backbone and head" and job.init_model["classes_kept"] == 4
    assert job.backbone.weights_file == trained_job / "model" / "model.pth"  # it keys caches and checkpoints


def test_a_model_tar_gz_as_sagemaker_hands_it_over(trained_job, image_set, tmp_path):
    channel = tmp_path / "init_model"
    channel.mkdir()
    with tarfile.open(channel / "model.tar.gz", "w:gz") as archive:
        for path in (trained_job / "model").iterdir():
            archive.add(path, arcname=path.name)
    job = setup.assemble(hp(), channels(image_set, channel))
    saved = trained_state(trained_job)
    assert all(torch.equal(saved[k], v) for k, v in job.model.state_dict().items())


def test_other_classes_keep_the_backbone_and_the_rows_of_the_classes_both_have(trained_job, image_set, tmp_path):
    """Incremental training on a set with one class dropped and one added, in another order."""
    classes = sorted(p.name for p in (image_set / "train").iterdir())
    data = tmp_path / "data"
    for split in ("train", "valid"):
        shutil.copytree(image_set / split, data / split)
        shutil.rmtree(data / split / classes[0])
        shutil.copytree(image_set / split / classes[1], data / split / "999.new")
    job = setup.assemble(hp(), {"train": data / "train", "valid": data / "valid",
                                "init_model": trained_job / "model"})
    saved, head = trained_state(trained_job), job.model.state_dict()
    assert job.classes == [*classes[1:], "999.new"]
    assert all(torch.equal(saved[k], head[k]) for k in saved if not k.startswith("head.4."))  # hidden layers too
    for row, name in enumerate(job.classes[:-1]):
        assert torch.equal(head["head.4.weight"][row], saved["head.4.weight"][classes.index(name)])
    assert not torch.equal(head["head.4.weight"][-1], saved["head.4.weight"][0])  # the new class: a new row
    assert job.init_model["classes_added"] == ["999.new"] and job.init_model["classes_dropped"] == [classes[0]]
    assert job.init_model["reused"].startswith("backbone and head, extended: 3 classes kept, 1 added, 1 dropped")


def test_no_class_in_common_keeps_the_backbone_only(trained_job, image_set, tmp_path):
    data = tmp_path / "data"
    for split in ("train", "valid"):
        for folder in (image_set / split).iterdir():
            shutil.copytree(folder, data / split / f"other-{folder.name}")
    job = setup.assemble(hp(), {"train": data / "train", "valid": data / "valid",
                                "init_model": trained_job / "model"})
    saved, state = trained_state(trained_job), job.model.state_dict()
    assert all(torch.equal(saved[k], state[k]) for k in saved if k.startswith("backbone."))
    assert not torch.equal(saved["head.0.weight"], state["head.0.weight"])
    assert job.init_model["reused"] == "backbone (no class in common: a new head)"


@pytest.mark.parametrize("values, message", [
    ({"model_name": "resnet18"}, "architecture efficientnet_lite0; this job's model_name is resnet18"),
    ({"pretrained": "false"}, "pretrained=false asks for a randomly initialised backbone"),
])
def test_what_cannot_be_reused_is_refused_with_the_reason(trained_job, image_set, values, message):
    with pytest.raises(InitModelError, match=message):
        setup.assemble(hp(**values), channels(image_set, trained_job / "model"))


def test_a_channel_without_one_model_is_refused(image_set, tmp_path):
    with pytest.raises(InitModelError, match="must hold one model"):
        setup.assemble(hp(), channels(image_set, tmp_path))
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a tar file")
    with pytest.raises(InitModelError, match="cannot be unpacked"):
        setup.assemble(hp(), channels(image_set, bad))


def test_the_job_records_what_it_reused_and_fails_clearly(trained_job, image_set, opt_ml):
    opt_ml.link("train", image_set / "train")
    opt_ml.link("valid", image_set / "valid")
    opt_ml.link("init_model", trained_job / "model")
    assert main(args({**FAST_HP, "image_size": "64", "epochs": "1"})) == 0
    config = json.loads((opt_ml.root / "model" / "model_config.json").read_text())
    assert config["init_model"]["reused"] == "backbone and head"
    assert config["init_model"]["source"].endswith("init_model")


def test_a_wrong_init_model_fails_the_job_with_a_one_line_reason(trained_job, image_set, opt_ml):
    opt_ml.link("train", image_set / "train")
    opt_ml.link("valid", image_set / "valid")
    opt_ml.link("init_model", trained_job / "model")
    assert main(args({**FAST_HP, "model_name": "resnet18", "pretrained": "true", "epochs": "1"})) == 1
    failure = opt_ml.failure()
    assert "architecture efficientnet_lite0" in failure and "\n" not in failure.strip()
