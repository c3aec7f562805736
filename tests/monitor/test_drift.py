"""The drift tests on samples whose truth is known: windows drawn from the baseline's distribution raise at most
alpha false alarms over repeated draws, shifted ones are found, each check gets its share of alpha, and a window
with too few images gets no verdict. (The same on real images and real shift: benchmarks/bench_monitor.py.)"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from classifier.monitoring.images import CONTINUOUS, FLAGS
from scripts.monitor import drift

CLASSES = [f"class {i}" for i in range(6)]
MIX = np.array([0.3, 0.2, 0.15, 0.15, 0.1, 0.1])  # every expected count >= 5: the chi-squared test


def population(rng, n, shift=0.0, mix=MIX, darker=0.0):
    """Images as the monitor sees them: 32-d embeddings, predictions, top-1 probabilities, image statistics."""
    embeddings = rng.normal(size=(n, 32)) + shift * np.eye(32)[0]
    predicted = rng.choice(len(mix), size=n, p=mix)
    top1 = rng.beta(8, 2, size=n)
    stats = {"width": np.full(n, 96.0), "height": np.full(n, 96.0), "aspect": np.ones(n),
             "brightness": np.clip(rng.normal(0.45 - darker, 0.1, n), 0, 1), "contrast": rng.uniform(0.2, 0.3, n),
             "greyscale": np.ones(n, bool), "exif_rotated": rng.random(n) < 0.02}
    return SimpleNamespace(embeddings=embeddings, predicted=predicted, top1=top1, stats=stats, classes=CLASSES)


def checks_of(baseline, window, **kwargs):
    return drift.run_checks(baseline, window.embeddings, window.predicted, window.top1, window.stats, **kwargs)


def test_false_alarms_stay_under_alpha_over_repeated_windows():
    rng = np.random.default_rng(1)
    baseline = population(rng, 500)
    alarms = sum(drift.any_drift(checks_of(baseline, population(rng, 100))) for _ in range(200))
    assert alarms / 200 <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 200)  # within two standard errors of alpha


@pytest.mark.parametrize("window, fired", [
    (dict(shift=0.8), "embeddings"),
    (dict(mix=np.array([0.05, 0.05, 0.2, 0.1, 0.1, 0.5])), "class_mix"),
    (dict(darker=0.12), "image_statistics"),
])
def test_shifted_windows_are_found_by_their_check(window, fired):
    rng = np.random.default_rng(2)
    baseline = population(rng, 500)
    found = [checks_of(baseline, population(rng, 200, **window)) for _ in range(20)]
    assert all(drift.any_drift(checks) for checks in found)
    assert all(next(c for c in checks if c.name == fired).drift for checks in found)


def test_confidence_and_low_confidence():
    rng = np.random.default_rng(3)
    baseline = population(rng, 500)
    window = population(rng, 200)
    window.top1 = rng.beta(2, 2, size=200)  # far less sure
    checks = {c.name: c for c in checks_of(baseline, window)}
    assert checks["confidence"].drift and checks["low_confidence"].drift
    assert checks["low_confidence"].details["share"] > checks["low_confidence"].details["baseline_share"] + 0.3


def test_each_check_gets_its_share_of_alpha_and_too_few_images_decide_nothing():
    rng = np.random.default_rng(4)
    baseline = population(rng, 300)
    checks = checks_of(baseline, population(rng, 100, shift=3.0), alpha=0.1)
    assert [c.name for c in checks] == list(drift.CHECKS)
    assert {c.alpha for c in checks} == {0.1 / len(drift.CHECKS)}
    few = checks_of(baseline, population(rng, drift.MIN_IMAGES - 1, shift=3.0))
    assert {c.verdict for c in few} == {"too few images"} and not drift.any_drift(few)
    assert few[0].p_value < 1e-3  # the figures are still there


def test_class_mix_with_small_counts_uses_a_permutation_p_value():
    baseline = np.repeat(np.arange(6), [40, 30, 20, 5, 3, 2])
    same = np.repeat(np.arange(6), [8, 6, 4, 1, 1, 0])
    check = drift.class_mix(baseline, same, CLASSES)
    assert "permutation" in check.details["p_value_method"] and check.p_value > 0.5 and not check.drift
    other = np.repeat(np.arange(6), [0, 0, 2, 6, 6, 6])
    assert drift.class_mix(baseline, other, CLASSES).drift
    value, terms = drift.psi(np.array([50.0, 50.0]), np.array([50.0, 50.0]))
    assert value == pytest.approx(0) and drift.psi_reading(0.3) == "large"


def test_image_statistics_names_what_changed():
    rng = np.random.default_rng(5)
    baseline = population(rng, 300)
    window = population(rng, 100)
    window.stats["greyscale"] = rng.random(100) < 0.5  # half the images in colour
    check = drift.image_statistics(baseline.stats, window.stats)
    assert check.drift and check.details["most_changed"] == "greyscale"
    assert set(check.details["statistics"]) == set(CONTINUOUS + FLAGS)
