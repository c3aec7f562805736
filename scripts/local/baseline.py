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
    backbone (the training job's setup, weights included, and its feature pass; from the cache where it has
    them), as numpy."""
    import numpy as np

    from classifier.training import feature_cache, hyperparameters, setup
    from classifier.training.data import DataError

    hp = hyperparameters.parse({"model_name": model_name, "image_size": str(image_size)})
    job = setup.assemble(hp, setup.data_set_channels(data))
    if job.data.test is None:
        raise DataError(f"{data} has no test/ folder: the probe is scored on the test images")
    cached = feature_cache.load(cache_dir, job.backbone.cache_key()) if cache_dir else {}
    workers = hyperparameters.resolve_num_workers("auto")
    feature_pass = feature_cache.FeaturePass(job.model, job.preprocessing, 64, workers, progress=progress)
    found = {}
    for channel in (job.data.train, job.data.valid, job.data.test):
        rows, _ = feature_pass.features_for(channel, cached)
        found[channel.name] = (rows.numpy(), np.array(channel.labels()))
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
