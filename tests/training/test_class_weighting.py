"""Class imbalance: `class_weighting=balanced` weights the training loss; macro-F1 is measured beside accuracy."""
import json
import logging

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score
from sklearn.utils.class_weight import compute_class_weight

from classifier import paths
from classifier.training.loop import NLLWithLabelSmoothing, balanced_class_weights, macro_f1
from classifier.training.main import main
from helpers import FAST_HP, args


@pytest.mark.parametrize("seed", range(5))
def test_macro_f1_is_scikit_learns(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 6, 50)
    predictions = np.where(rng.random(50) < 0.6, labels, rng.integers(0, 7, 50))  # class 6 only predicted
    labels[labels == 3] = 2  # class 3 never a label, maybe predicted
    expected = f1_score(labels, predictions, average="macro", zero_division=0)
    assert macro_f1(torch.tensor(labels), torch.tensor(predictions), 7) == pytest.approx(expected, abs=1e-12)


def test_balanced_weights_are_scikit_learns_and_weight_the_loss():
    labels = [0] * 30 + [1] * 3 + [2] * 9
    weights = balanced_class_weights(labels, 3)
    assert weights.tolist() == pytest.approx(compute_class_weight("balanced", classes=np.arange(3), y=np.array(labels)))
    log_probs = torch.log_softmax(torch.randn(6, 3), dim=1)
    targets = torch.tensor([0, 1, 2, 0, 1, 2])
    ours = NLLWithLabelSmoothing(0.0, weights)(log_probs, targets)
    by_hand = -(weights[targets] * log_probs[torch.arange(6), targets]).sum() / weights[targets].sum()
    assert float(ours) == pytest.approx(float(by_hand))


@pytest.mark.slow
def test_a_balanced_job_logs_its_weights_and_reports_macro_f1(opt_ml, image_set, capsys, caplog):
    caplog.set_level(logging.INFO)
    opt_ml.link("train", image_set / "train")
    opt_ml.link("valid", image_set / "valid")
    opt_ml.link("test", image_set / "test")
    assert main(args({**FAST_HP, "epochs": "1", "class_weighting": "balanced"})) == 0
    out = capsys.readouterr().out
    assert "valid_macro_f1=" in out and "test_macro_f1=" in out
    assert "Class weights (balanced): " in caplog.text
    report = json.loads((paths.output_data_dir() / "test_report.json").read_text())
    assert 0 <= report["macro_f1"] <= 1
    config = json.loads((paths.model_dir() / "model_config.json").read_text())
    assert config["metrics"]["test_macro_f1"] == pytest.approx(report["macro_f1"])
