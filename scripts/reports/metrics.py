"""The evaluation's numbers, with scikit-learn's metrics: accuracy, top-k accuracy, log loss, per-class
precision/recall/F1, the confusion matrix and its most confused pairs, and calibration (the reliability
diagram's bins and the expected calibration error of the top-1 probability)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm

from .evaluation_data import Predictions

TOP_K = (1, 2, 3, 5, 10)
CALIBRATION_BINS = 10


@dataclass(frozen=True)
class ClassScore:
    index: int
    name: str
    precision: float
    recall: float
    f1: float
    support: int  # images of this class
    predicted: int  # images predicted as this class


@dataclass(frozen=True)
class Pair:
    true: int
    predicted: int
    count: int
    share: float  # of the true class's images
    mean_probability: float  # of the wrong class, over those images


@dataclass(frozen=True)
class Calibration:
    edges: np.ndarray  # CALIBRATION_BINS + 1 bin edges over the top-1 probability
    counts: np.ndarray  # images per bin
    accuracy: np.ndarray  # per bin (nan where empty)
    confidence: np.ndarray  # mean top-1 probability per bin (nan where empty)
    ece: float  # sum over bins of (images in bin / images) * |accuracy - confidence|


@dataclass(frozen=True)
class Evaluation:
    images: int
    accuracy: float
    top_k: dict[int, float]
    log_loss: float
    macro_f1: float
    weighted_f1: float
    classes: list[ClassScore]  # every class the images hold or the model predicted
    confusion: np.ndarray  # (classes, classes) counts, rows the true class, in the model's label order
    pairs: list[Pair]  # the most confused (true, predicted) pairs, most images first
    calibration: Calibration


def evaluate(p: Predictions) -> Evaluation:
    if not len(p.labels):
        raise ValueError("no image was classified: nothing to evaluate")
    labels = list(range(len(p.classes)))
    y, predicted = p.labels, p.predicted
    precision, recall, f1, support = skm.precision_recall_fscore_support(y, predicted, labels=labels, zero_division=0)
    confusion = skm.confusion_matrix(y, predicted, labels=labels)
    shown = [i for i in labels if support[i] or confusion[:, i].sum()]
    scores = [ClassScore(i, p.classes[i], float(precision[i]), float(recall[i]), float(f1[i]), int(support[i]),
                         int(confusion[:, i].sum())) for i in shown]
    present = [s for s in scores if s.support]
    return Evaluation(
        images=len(y), accuracy=float(skm.accuracy_score(y, predicted)), top_k=top_k_accuracy(p),
        # float32 softmax rows sum to 1 within ~1e-7; log_loss wants them closer
        log_loss=float(skm.log_loss(y, p.probabilities / p.probabilities.sum(axis=1, keepdims=True), labels=labels)),
        macro_f1=float(np.mean([s.f1 for s in present])),
        weighted_f1=float(np.average([s.f1 for s in present], weights=[s.support for s in present])),
        classes=scores, confusion=confusion, pairs=confused_pairs(p, confusion), calibration=calibration(p))


def top_k_accuracy(p: Predictions) -> dict[int, float]:
    """Share of images whose class is among the k most probable, for the k below the class count."""
    labels = list(range(len(p.classes)))
    found = {}
    for k in TOP_K:
        if k >= len(labels):
            break
        scores = p.probabilities[:, 1] if len(labels) == 2 else p.probabilities
        found[k] = float(skm.top_k_accuracy_score(p.labels, scores, k=k, labels=labels))
    return found


def confused_pairs(p: Predictions, confusion: np.ndarray, limit: int = 20) -> list[Pair]:
    wrong = confusion.copy()
    np.fill_diagonal(wrong, 0)
    pairs = []
    for flat in np.argsort(wrong, axis=None, kind="stable")[::-1][:limit]:
        true, predicted = np.unravel_index(flat, wrong.shape)
        count = int(wrong[true, predicted])
        if not count:
            break
        chosen = (p.labels == true) & (p.predicted == predicted)
        pairs.append(Pair(int(true), int(predicted), count, count / int(confusion[true].sum()),
                          float(p.probabilities[chosen, predicted].mean())))
    return pairs


def calibration(p: Predictions, bins: int = CALIBRATION_BINS) -> Calibration:
    """Top-1 probability against being right, in equal-width bins. The images fall in bins as
    sklearn.calibration.calibration_curve puts them (the reliability diagram draws those), so the ECE
    and the diagram agree."""
    confidence = p.probabilities.max(axis=1)
    correct = (p.predicted == p.labels).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.searchsorted(edges[1:-1], confidence)  # calibration_curve's binning
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore"):
        accuracy = np.bincount(which, weights=correct, minlength=bins) / counts
        mean_confidence = np.bincount(which, weights=confidence, minlength=bins) / counts
    gaps = np.where(counts > 0, np.abs(accuracy - mean_confidence), 0.0)
    return Calibration(edges, counts, accuracy, mean_confidence, float(np.sum(counts / counts.sum() * gaps)))
