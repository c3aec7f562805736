"""Every bad input stops the job with a failure reason that names the problem."""
import shutil

import pytest
import torch

from classifier.training.main import main
from helpers import FAST_HP, args

ONE_EPOCH = {**FAST_HP, "epochs": "1"}


def run_job(opt_ml, hp=ONE_EPOCH) -> tuple[int, str]:
    return main(args(hp)), opt_ml.failure()


def test_bad_hyperparameter_writes_failure(opt_ml, image_set):
    opt_ml.link("train", image_set / "train")
    opt_ml.link("valid", image_set / "valid")
    code, failure = run_job(opt_ml, {**ONE_EPOCH, "lr": "-1"})
    assert code != 0 and "lr='-1'" in failure and "\n" not in failure.strip()


def test_missing_channel_is_named(opt_ml, image_set):
    opt_ml.link("train", image_set / "train")
    code, failure = run_job(opt_ml)
    assert code != 0 and "valid" in failure and "missing" in failure


def test_unknown_channel_is_named(opt_ml, image_set):
    opt_ml.link("train", image_set / "train")
    opt_ml.link("validation", image_set / "valid")
    code, failure = run_job(opt_ml)
    assert code != 0 and "validation" in failure


def test_class_mismatch_names_missing_and_extra(opt_ml, image_set, tmp_path):
    valid = shutil.copytree(image_set / "valid", tmp_path / "valid")
    classes = sorted(p.name for p in valid.iterdir())
    shutil.rmtree(valid / classes[0])
    shutil.copytree(valid / classes[1], valid / "999.Unicorn")
    opt_ml.link("train", image_set / "train")
    opt_ml.link("valid", valid)
    code, failure = run_job(opt_ml)
    assert code != 0 and classes[0] in failure and "999.Unicorn" in failure


def test_empty_class_folder(opt_ml, image_set, tmp_path):
    train = shutil.copytree(image_set / "train", tmp_path / "train")
    first = sorted(train.iterdir())[0]
    for image in first.iterdir():
        image.unlink()
    (first / "notes.txt").write_text("not an image")
    opt_ml.link("train", train)
    opt_ml.link("valid", image_set / "valid")
    code, failure = run_job(opt_ml)
    assert code != 0 and first.name in failure and "no .jpg" in failure


def test_channel_without_class_folders(opt_ml, image_set, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for image in list((image_set / "valid").rglob("*.jpg"))[:3]:
        shutil.copy(image, flat / image.name)
    opt_ml.link("train", image_set / "train")
    opt_ml.link("valid", flat)
    code, failure = run_job(opt_ml)
    assert code != 0 and "no class folders" in failure


def plant_bad_images(train):
    folder = sorted(train.iterdir())[0]
    good = sorted(folder.glob("*.jpg"))[0].read_bytes()
    (folder / "truncated.JPG").write_bytes(good[: len(good) // 2])  # upper-case extension counts too
    (folder / "garbage.png").write_bytes(b"\x89PNG not really")
    return folder


def test_corrupt_images_are_listed(opt_ml, image_set, tmp_path):
    train = shutil.copytree(image_set / "train", tmp_path / "train")
    plant_bad_images(train)
    opt_ml.link("train", train)
    opt_ml.link("valid", image_set / "valid")
    code, failure = run_job(opt_ml)
    assert code != 0 and "truncated.JPG" in failure and "garbage.png" in failure and "skip_bad_images" in failure


@pytest.mark.slow
def test_skip_bad_images_trains_without_them(opt_ml, image_set, tmp_path, caplog):
    train = shutil.copytree(image_set / "train", tmp_path / "train")
    plant_bad_images(train)
    opt_ml.link("train", train)
    opt_ml.link("valid", image_set / "valid")
    code, failure = run_job(opt_ml, {**ONE_EPOCH, "skip_bad_images": "true"})
    assert code == 0, failure
    assert "skipping 2 unreadable image(s)" in caplog.text
    assert (opt_ml.root / "model" / "model.pth").is_file()


@pytest.mark.slow
def test_checkpoint_of_another_job_is_refused_and_kept(opt_ml, image_set):
    opt_ml.link("train", image_set / "train")
    opt_ml.link("valid", image_set / "valid")
    assert main(args(ONE_EPOCH)) == 0
    checkpoint = opt_ml.root / "checkpoints" / "last.pt"
    before = checkpoint.read_bytes()
    code, failure = run_job(opt_ml, {**ONE_EPOCH, "optimizer": "sgd", "epochs": "2"})
    assert code != 0 and "different job" in failure and "optimizer" in failure
    assert checkpoint.read_bytes() == before  # nothing already saved is lost


@pytest.mark.slow
def test_weights_channel_is_used_and_bad_weights_are_named(opt_ml, image_set, tmp_path):
    import torchvision

    weights = tmp_path / "weights"
    weights.mkdir()
    reference = torchvision.models.resnet18(weights=None)
    torch.save(reference.state_dict(), weights / "resnet18-f37072fd.pth")
    opt_ml.link("train", image_set / "train")
    opt_ml.link("valid", image_set / "valid")
    opt_ml.link("weights", weights)
    hp = {**ONE_EPOCH, "model_name": "resnet18", "pretrained": "true"}
    assert main(args(hp)) == 0, opt_ml.failure()
    # the backbone in the artifact started from the supplied weights (frozen, so still equal)
    saved = torch.load(opt_ml.root / "model" / "model.pth", weights_only=True)
    assert torch.equal(saved["backbone.conv1.weight"], reference.state_dict()["conv1.weight"])

    (weights / "resnet18-f37072fd.pth").write_bytes(b"not a weights file")
    shutil.rmtree(opt_ml.root / "checkpoints")
    code, failure = run_job(opt_ml, hp)
    assert code != 0 and "cannot read weights file" in failure


def test_missing_pretrained_weights_say_how_to_supply_them(monkeypatch, tmp_path):
    from classifier import model

    monkeypatch.setattr(model.torch.hub, "get_dir", lambda: str(tmp_path))

    def offline(*_args, **_kw):
        raise OSError("network is unreachable")

    monkeypatch.setattr(model.torch.hub, "download_url_to_file", offline)
    with pytest.raises(model.WeightsError) as error:
        model.build_model("resnet50", 3, pretrained=True)
    message = str(error.value)
    assert "weights" in message and "resnet50-0676ba61.pth" in message and "pretrained=false" in message


def test_sub_folders_inside_a_class_are_refused_by_name(opt_ml, image_set, tmp_path):
    train = shutil.copytree(image_set / "train", tmp_path / "train")
    folder = sorted(train.iterdir())[2]
    old = folder / "old"
    old.mkdir()
    shutil.copy(next(folder.glob("*.jpg")), old / "a.jpg")
    (folder / ".ipynb_checkpoints").mkdir()  # hidden folders are not classes' content: ignored
    opt_ml.link("train", train)
    opt_ml.link("valid", image_set / "valid")
    code, failure = run_job(opt_ml)
    assert code != 0 and f"{folder.name}/old" in failure and "inside class folders" in failure
    assert ".ipynb_checkpoints" not in failure


def test_other_image_formats_are_named_not_decoded(opt_ml, image_set, tmp_path):
    from PIL import Image

    train = shutil.copytree(image_set / "train", tmp_path / "train")
    folder = sorted(train.iterdir())[0]
    Image.new("RGB", (40, 40), (9, 9, 9)).save(folder / "really-a-gif.jpg", "GIF")  # the name says JPEG
    opt_ml.link("train", train)
    opt_ml.link("valid", image_set / "valid")
    code, failure = run_job(opt_ml)
    assert code != 0 and "really-a-gif.jpg (GIF images are not accepted: only JPEG and PNG are)" in failure


def test_inconsistent_freeze_backbone_and_unfreeze_stages(opt_ml, image_set):
    opt_ml.link("train", image_set / "train")
    opt_ml.link("valid", image_set / "valid")
    code, failure = run_job(opt_ml, {**ONE_EPOCH, "freeze_backbone": "false", "unfreeze_stages": "1"})
    assert code != 0 and "freeze_backbone=false and unfreeze_stages=1 disagree" in failure
    (opt_ml.root / "output" / "failure").unlink()
    code, failure = run_job(opt_ml, {**ONE_EPOCH, "unfreeze_stages": "6"})
    assert "unfreeze_stages=6 is more than the 5 stages of efficientnet_lite0" in failure


@pytest.mark.slow
def test_a_corrupt_best_checkpoint_is_named(opt_ml, image_set):
    opt_ml.link("train", image_set / "train")
    opt_ml.link("valid", image_set / "valid")
    assert main(args({**ONE_EPOCH, "epochs": "2"})) == 0, opt_ml.failure()
    [best] = (opt_ml.root / "checkpoints").glob("best-epoch-*.pt")
    best.write_bytes(best.read_bytes()[:500])
    (opt_ml.root / "output" / "failure").unlink(missing_ok=True)
    code, failure = run_job(opt_ml, {**ONE_EPOCH, "epochs": "2"})  # a restart of the same job
    assert code != 0 and best.name in failure and "cannot be read" in failure and "Unexpected" not in failure


@pytest.mark.slow
def test_an_image_broken_after_its_check_is_named_by_the_feature_pass(image_set, tmp_path):
    """The pass decodes on threads: the error still says which file it was."""
    from classifier.model import build_model, get_architecture
    from classifier.preprocessing import ImageDecodeError
    from classifier.training import feature_cache
    from classifier.training.data import scan_channel

    tree = tmp_path / "valid"
    shutil.copytree(image_set / "valid", tree)
    broken = sorted(tree.rglob("*.jpg"))[3]
    channel = scan_channel("valid", tree)
    broken.write_bytes(broken.read_bytes()[:200])  # cut after the scan, as a file changed mid-job
    model = build_model("efficientnet_lite0", len(channel.classes))
    spec = get_architecture("efficientnet_lite0").preprocessing(64)
    with pytest.raises(ImageDecodeError, match=str(broken)):
        feature_cache.compute_features(model, channel, spec, 4, 0, torch.device("cpu"), progress=lambda line: None)


@pytest.mark.slow
def test_broken_links_are_named_not_lost_silently(opt_ml, image_set, tmp_path, caplog):
    """A dangling image link and a class folder that is a link loop are reported like other ignored files."""
    import logging

    caplog.set_level(logging.WARNING)
    train = shutil.copytree(image_set / "train", tmp_path / "train", symlinks=True)
    first = sorted(train.iterdir())[0]
    (first / "gone.jpg").symlink_to(tmp_path / "missing.jpg")
    (train / "loop").symlink_to(train / "loop")
    opt_ml.link("train", train)
    opt_ml.link("valid", image_set / "valid")
    code, failure = run_job(opt_ml)
    assert code == 0, failure
    assert "ignored 2 link(s) that lead to no file or folder" in caplog.text
    assert f"{first.name}/gone.jpg" in caplog.text and "loop" in caplog.text
