"""The drift tests: is what the endpoint saw in a window drawn from the distribution of the baseline's images?

Five checks, each a two-sample test of the captured images against the baseline's, with a p-value:

- embeddings: the images' pooled backbone features, through the baseline's fixed random projection to 32
  dimensions: a Kolmogorov-Smirnov test per dimension, Bonferroni-combined (p = min(1, 32 x smallest p)).
  Chosen over MMD with a permutation threshold: in Rabanser et al., "Failing Loudly: An Empirical Study of
  Methods for Detecting Dataset Shift" (NeurIPS 2019), univariate KS tests on reduced representations with a
  Bonferroni correction detected shift as well as multivariate MMD, and they need no calibration: the false-alarm
  rate is at most alpha for any sample sizes (KS is exact or conservative, Bonferroni is conservative), with no
  permutations to run (a window is tested in milliseconds) and a per-dimension statistic to show;
- class_mix: the predicted classes, a chi-squared test of homogeneity on the 2 x classes table (a permutation
  p-value where an expected count is under 5, where the chi-squared distribution is a poor guide); the
  population stability index (PSI) beside it as the size of the change;
- confidence: the top-1 probabilities, Kolmogorov-Smirnov;
- low_confidence: the share of images whose top-1 probability is under LOW_CONFIDENCE, Fisher's exact test;
- image_statistics: width, height, aspect ratio, brightness and contrast (KS each), the greyscale and the
  EXIF-rotated shares (Fisher each), Bonferroni-combined.

Every check gets alpha / 5 (Bonferroni over the checks), so the overall `drift` verdict, any check firing,
raises a false alarm at most `alpha` of the time on windows drawn from the baseline's distribution (measured
on real data by benchmarks/bench_monitor.py). With fewer than MIN_IMAGES captured images no check decides.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats as scipy_stats

from classifier.monitoring.images import CONTINUOUS, FLAGS

ALPHA = 0.05
LOW_CONFIDENCE = 0.5  # a top-1 probability under this is a low-confidence answer
MIN_IMAGES = 20
CHECKS = ("embeddings", "class_mix", "confidence", "low_confidence", "image_statistics")
PERMUTATIONS = 1999  # resamples of the class-mix test where the chi-squared approximation is poor
PSI_SMOOTHING = 0.5  # counts added to every class before the PSI's logarithm (a class seen on one side only)


@dataclass
class Check:
    """One check's outcome: its test, statistic and p-value against its share of alpha, and the figures behind it."""

    name: str
    title: str
    test: str
    statistic: float | None = None
    p_value: float | None = None
    alpha: float = ALPHA / len(CHECKS)
    drift: bool | None = None  # None: too few images to decide
    details: dict = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return "too few images" if self.drift is None else "drift" if self.drift else "no drift"

    def as_json(self) -> dict:
        return {"name": self.name, "title": self.title, "test": self.test, "statistic": self.statistic,
                "p_value": self.p_value, "alpha": self.alpha, "drift": self.drift, "verdict": self.verdict,
                "details": self.details}


def _decide(check: Check, p_value: float, statistic: float, enough: bool) -> Check:
    check.p_value, check.statistic = float(p_value), float(statistic)
    check.drift = bool(p_value < check.alpha) if enough else None
    return check


def bonferroni(p_values) -> float:
    p_values = np.asarray(p_values, dtype=float)
    return float(min(1.0, p_values.min() * len(p_values))) if p_values.size else 1.0


def ks(baseline: np.ndarray, seen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-sample Kolmogorov-Smirnov per column: (statistics, p-values)."""
    if not len(seen) or not len(baseline):
        width = 1 if np.ndim(baseline) == 1 else np.shape(baseline)[1]
        return np.zeros(width), np.ones(width)
    result = scipy_stats.ks_2samp(baseline, seen, axis=0)
    return np.atleast_1d(result.statistic).astype(float), np.atleast_1d(result.pvalue).astype(float)


def fisher(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float:
    """Two-sided Fisher's exact test of two shares."""
    if not n_a or not n_b:
        return 1.0
    return float(scipy_stats.fisher_exact([[hits_a, n_a - hits_a], [hits_b, n_b - hits_b]]).pvalue)


def embeddings(baseline: np.ndarray, seen: np.ndarray, alpha: float = ALPHA, enough: bool = True) -> Check:
    statistics, p_values = ks(baseline, seen)
    check = Check("embeddings", "Image embeddings",
                  f"Kolmogorov-Smirnov on each of the {baseline.shape[1]} dimensions of the projected backbone "
                  f"features, Bonferroni-combined", alpha=alpha / len(CHECKS))
    check.details = {"ks_statistics": statistics.tolist(), "p_values": p_values.tolist(),
                     "dimension": int(p_values.argmin()), "mean_ks": float(statistics.mean()),
                     "critical_ks": critical_ks(len(baseline), len(seen), check.alpha / baseline.shape[1])}
    return _decide(check, bonferroni(p_values), statistics.max(), enough)


def critical_ks(n: int, m: int, alpha: float) -> float | None:
    """The KS statistic above which one dimension's test fires at `alpha` (asymptotic), for the plot's line."""
    if not n or not m:
        return None
    return float(np.sqrt(-np.log(alpha / 2) / 2) * np.sqrt((n + m) / (n * m)))


def psi(baseline_counts: np.ndarray, seen_counts: np.ndarray) -> tuple[float, np.ndarray]:
    """Population stability index of two count vectors, and each class's term."""
    expected = (baseline_counts + PSI_SMOOTHING) / (baseline_counts + PSI_SMOOTHING).sum()
    actual = (seen_counts + PSI_SMOOTHING) / (seen_counts + PSI_SMOOTHING).sum()
    terms = (actual - expected) * np.log(actual / expected)
    return float(terms.sum()), terms


def psi_reading(value: float) -> str:
    """The usual reading of a PSI."""
    return "small" if value < 0.1 else "moderate" if value < 0.25 else "large"


def class_mix(baseline: np.ndarray, seen: np.ndarray, classes: list[str], alpha: float = ALPHA,
              enough: bool = True) -> Check:
    count = len(classes)
    base_counts = np.bincount(baseline, minlength=count).astype(float)
    seen_counts = np.bincount(seen, minlength=count).astype(float)
    used = (base_counts + seen_counts) > 0
    table = np.vstack([base_counts[used], seen_counts[used]]).astype(np.int64)
    check = Check("class_mix", "Predicted-class mix", "chi-squared test of homogeneity of the predicted classes",
                  alpha=alpha / len(CHECKS))
    statistic, p_value, method = 0.0, 1.0, "asymptotic"
    if table.shape[1] >= 2 and seen_counts.sum() and base_counts.sum():
        expected = scipy_stats.contingency.expected_freq(table)
        if (expected < 5).any():
            method = f"permutation, {PERMUTATIONS} resamples (expected counts under 5)"
            result = scipy_stats.chi2_contingency(table, correction=False, method=scipy_stats.PermutationMethod(
                n_resamples=PERMUTATIONS, rng=0))
        else:
            result = scipy_stats.chi2_contingency(table, correction=False)
        statistic, p_value = result.statistic, result.pvalue
    value, terms = psi(base_counts, seen_counts)
    check.details = {"baseline_counts": base_counts.astype(int).tolist(), "counts": seen_counts.astype(int).tolist(),
                     "baseline_share": (base_counts / max(base_counts.sum(), 1)).tolist(),
                     "share": (seen_counts / max(seen_counts.sum(), 1)).tolist(), "psi": value,
                     "psi_terms": terms.tolist(), "psi_reading": psi_reading(value), "p_value_method": method}
    return _decide(check, p_value, statistic, enough)


def confidence(baseline: np.ndarray, seen: np.ndarray, alpha: float = ALPHA, enough: bool = True) -> Check:
    statistics, p_values = ks(np.asarray(baseline, float), np.asarray(seen, float))
    check = Check("confidence", "Confidence (top-1 probability)", "Kolmogorov-Smirnov on the top-1 probabilities",
                  alpha=alpha / len(CHECKS))
    check.details = {"baseline_median": _median(baseline), "median": _median(seen),
                     "baseline_mean": _mean(baseline), "mean": _mean(seen)}
    return _decide(check, p_values[0], statistics[0], enough)


def low_confidence(baseline: np.ndarray, seen: np.ndarray, threshold: float = LOW_CONFIDENCE, alpha: float = ALPHA,
                   enough: bool = True) -> Check:
    low_base, low_seen = int((np.asarray(baseline) < threshold).sum()), int((np.asarray(seen) < threshold).sum())
    check = Check("low_confidence", f"Low-confidence share (top-1 under {threshold:g})",
                  "Fisher's exact test of the two shares", alpha=alpha / len(CHECKS))
    share_base, share = low_base / max(len(baseline), 1), low_seen / max(len(seen), 1)
    check.details = {"threshold": threshold, "baseline_share": share_base, "share": share,
                     "baseline_count": low_base, "count": low_seen}
    return _decide(check, fisher(low_base, len(baseline), low_seen, len(seen)), share - share_base, enough)


def image_statistics(baseline: dict[str, np.ndarray], seen: dict[str, np.ndarray], alpha: float = ALPHA,
                     enough: bool = True) -> Check:
    rows = {}
    for name in CONTINUOUS:
        statistic, p_value = ks(baseline[name], seen[name])
        rows[name] = {"test": "Kolmogorov-Smirnov", "statistic": float(statistic[0]), "p_value": float(p_value[0]),
                      "baseline_median": _median(baseline[name]), "median": _median(seen[name])}
    for name in FLAGS:
        base, now = np.asarray(baseline[name], bool), np.asarray(seen[name], bool)
        share_base, share = float(base.mean()) if base.size else 0.0, float(now.mean()) if now.size else 0.0
        rows[name] = {"test": "Fisher's exact", "statistic": share - share_base,
                      "p_value": fisher(int(base.sum()), base.size, int(now.sum()), now.size),
                      "baseline_share": share_base, "share": share}
    check = Check("image_statistics", "Image statistics",
                  f"{len(CONTINUOUS)} Kolmogorov-Smirnov and {len(FLAGS)} Fisher's exact tests, Bonferroni-combined",
                  alpha=alpha / len(CHECKS))
    p_values = [row["p_value"] for row in rows.values()]
    worst = min(rows, key=lambda name: rows[name]["p_value"])
    check.details = {"statistics": rows, "most_changed": worst}
    return _decide(check, bonferroni(p_values), abs(rows[worst]["statistic"]), enough)


def run_checks(baseline, seen_embeddings: np.ndarray, seen_predicted: np.ndarray, seen_top1: np.ndarray,
               seen_stats: dict[str, np.ndarray], alpha: float = ALPHA,
               threshold: float = LOW_CONFIDENCE) -> list[Check]:
    """All five checks of a window against a classifier.monitoring.baseline.Baseline."""
    enough = len(seen_predicted) >= MIN_IMAGES
    return [embeddings(baseline.embeddings, seen_embeddings, alpha, enough),
            class_mix(baseline.predicted, seen_predicted, baseline.classes, alpha, enough),
            confidence(baseline.top1, seen_top1, alpha, enough),
            low_confidence(baseline.top1, seen_top1, threshold, alpha, enough),
            image_statistics(baseline.stats, seen_stats, alpha, enough)]


def any_drift(checks: list[Check]) -> bool:
    return any(check.drift for check in checks)


def _median(values) -> float | None:
    values = np.asarray(values, float)
    return float(np.median(values)) if values.size else None


def _mean(values) -> float | None:
    values = np.asarray(values, float)
    return float(values.mean()) if values.size else None
