"""A SIGTERM during the training job's monitor baseline (classifier/training/main.py write_monitor_baseline) ends
the pass at its next batch: nothing of the baseline is written, and the job then completes without it."""
from __future__ import annotations

import shutil

import pytest
import torch

from classifier.backbones import get_architecture
from classifier.model import build_model
from classifier.monitoring import baseline
from classifier.monitoring.observe import PassSettings, PassStopped
from classifier.training.data import scan_channel


def test_a_stop_during_the_baseline_pass_writes_nothing(image_set, tmp_path):
    for folder in sorted((image_set / "valid").iterdir())[:2]:  # two classes of two images: two batches
        (tmp_path / "valid" / folder.name).mkdir(parents=True)
        for image in sorted(folder.iterdir())[:2]:
            shutil.copy(image, tmp_path / "valid" / folder.name)
    valid = scan_channel("valid", tmp_path / "valid")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", len(valid.classes), pretrained=False).eval()
    preprocessing = get_architecture("efficientnet_lite0").preprocessing(32)
    asked = iter([False, True])  # the first batch runs, the stop is seen before the second
    settings = PassSettings(batch_size=2, should_stop=lambda: next(asked, True))
    with pytest.raises(PassStopped, match="stopped after 2 of"):
        baseline.write(model_dir, model, valid, preprocessing, settings=settings)
    assert list(model_dir.iterdir()) == []
    written = baseline.write(model_dir, model, valid, preprocessing, settings=PassSettings(batch_size=2))
    assert (model_dir / baseline.BASELINE_FILE).is_file() and len(written.classes) == len(valid.classes)
