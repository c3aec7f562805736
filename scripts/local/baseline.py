"""The baseline a trained model is judged against: a linear probe on the frozen backbone's features.

scikit-learn's LogisticRegression on the pooled features of the pretrained backbone (the training job's own
model and feature pass, so the features are exactly those the head trains on), fitted on train and scored
on test, with scikit-learn's default C=1; and the same with C (and standardising) chosen on valid. Train
and valid features come from the shared feature cache where it has them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

C_CHOICES = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)


@dataclass
class ProbeResult:
    test_accuracy: float  # C=1, scikit-learn's default
    valid_accuracy: float
    tuned_test_accuracy: float  # C and standardising chosen on valid
    tuned: str


def frozen_features(model_name: str, image_size: int, data: Path, cache_dir: Path | None = None,
                    progress=print) -> dict[str, tuple]:
    """{channel: (features, labels)} of train, valid and test: the pooled features of the pretrained
    backbone (the training job's model and feature pass; from the cache where it has them), as numpy."""
    import numpy as np
    import torch

    from classifier.model import build_model, find_pretrained_weights, get_architecture
    from classifier.training import feature_cache, hyperparameters
    from classifier.training.data import scan_channel

    arch = get_architecture(model_name)
    preprocessing, weights = arch.preprocessing(image_size), find_pretrained_weights(arch)
    train = scan_channel("train", Path(data) / "train")
    channels = {name: scan_channel(name, Path(data) / name, train.classes) for name in ("train", "valid", "test")}
    model = build_model(model_name, len(train.classes), True, True, weights)
    cached = feature_cache.load(cache_dir, feature_cache.model_key(model_name, weights, preprocessing)) \
        if cache_dir else {}
    workers = hyperparameters.resolve_num_workers("auto")
    found = {}
    for name, channel in channels.items():
        rows, _ = feature_cache.features_for(channel, cached, model, preprocessing, 64, workers,
                                             torch.device("cpu"), progress)
        found[name] = (rows.numpy(), np.array(channel.labels()))
    return found


def linear_probe(model_name: str, image_size: int, data: Path, cache_dir: Path | None = None,
                 progress=print) -> ProbeResult:
    return fit_probe(frozen_features(model_name, image_size, data, cache_dir, progress))


def fit_probe(found: dict[str, tuple]) -> ProbeResult:
    """The probe on `frozen_features`' output."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    features = {name: rows for name, (rows, _) in found.items()}
    labels = {name: values for name, (_, values) in found.items()}

    def fit(c: float, scaled: bool) -> tuple[float, float]:
        x = dict(features)
        if scaled:
            scaler = StandardScaler().fit(x["train"])
            x = {name: scaler.transform(values) for name, values in x.items()}
        probe = LogisticRegression(C=c, max_iter=5000).fit(x["train"], labels["train"])
        return probe.score(x["valid"], labels["valid"]), probe.score(x["test"], labels["test"])

    valid, test = fit(1.0, False)
    choices = [(fit(c, scaled), c, scaled) for c in C_CHOICES for scaled in (False, True)]
    (_, tuned_test), c, scaled = max(choices, key=lambda choice: choice[0][0])
    return ProbeResult(test, valid, tuned_test, f"C={c}" + (", standardised" if scaled else ""))
