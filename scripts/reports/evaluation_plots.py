"""The evaluation report's plots: per-class F1, the confusion matrix (scikit-learn's display; at many
classes sorted by recall and drawn without values, with a readable close-up of the most confused
classes), misclassified images, top-k accuracy and the reliability diagram (scikit-learn's)."""
from __future__ import annotations

import numpy as np

from classifier.pages.figures import pyplot, thumbnails

from .evaluation_data import Predictions
from .metrics import Evaluation

FULL_VALUES_UP_TO = 20  # classes: above this the full matrix has no numbers in its cells
FITS_THE_PAGE = 60  # classes: above this the full matrix is drawn at a readable size and scrolls
CLOSE_UP_CLASSES = 16
NAME_CHARS = 22


def short(name: str, chars: int = NAME_CHARS) -> str:
    return name if len(name) <= chars else name[: chars - 1] + "…"


def class_scores(result: Evaluation, worst: int = 30):
    """Precision, recall and F1 of each class (the `worst` by F1 when there are more)."""
    plt = pyplot()
    scores = sorted((s for s in result.classes if s.support), key=lambda s: (s.f1, s.name))[:worst]
    fig, ax = plt.subplots(figsize=(10, 0.9 + 0.26 * len(scores)))
    y = np.arange(len(scores))
    for offset, (label, values, color) in enumerate((("precision", [s.precision for s in scores], "#1f77b4"),
                                                      ("recall", [s.recall for s in scores], "#ff7f0e"),
                                                      ("F1", [s.f1 for s in scores], "#2ca02c"))):
        ax.barh(y + (offset - 1) * 0.27, values, height=0.27, color=color, label=label)
    ax.set_yticks(y, [short(s.name, 30) for s in scores], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.0)
    ax.set_xlabel("score")
    shown = "every class" if len(scores) == sum(1 for s in result.classes if s.support) else f"the {len(scores)} " \
                                                                                            "classes with the lowest F1"
    ax.set_title(f"Precision, recall and F1 of {shown}, lowest F1 first")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return fig


def confusion(result: Evaluation, p: Predictions):
    """Rows: true class, normalised to the share of its images; classes sorted by recall, lowest first."""
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = pyplot()
    order = [s.index for s in sorted(result.classes, key=lambda s: (s.recall if s.support else 2.0, s.name))]
    matrix = _row_shares(result.confusion[np.ix_(order, order)])
    count = len(order)
    side = max(5.0, 0.5 + 0.2 * count) if count <= FITS_THE_PAGE else 0.17 * count
    fig, ax = plt.subplots(figsize=(side + 1.5, side), dpi=96 if count <= FITS_THE_PAGE else 100)
    labels = [short(p.classes[i]) for i in order]
    display = ConfusionMatrixDisplay(matrix, display_labels=labels)
    display.plot(ax=ax, cmap="Blues", include_values=count <= FULL_VALUES_UP_TO, values_format=".2f",
                 xticks_rotation="vertical", colorbar=False, im_kw={"vmin": 0, "vmax": 1})
    fig.colorbar(display.im_, ax=ax, shrink=0.5, label="share of the true class's images")
    ax.tick_params(labelsize=8 if count <= 30 else 6)
    ax.grid(False)
    ax.set_title(f"Confusion matrix: share of each true class's images ({count} classes, lowest recall first)")
    return fig


def confusion_close_up(result: Evaluation, p: Predictions):
    """The classes of the most confused pairs, with the number of images in each cell."""
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = pyplot()
    chosen: list[int] = []
    for pair in result.pairs:
        for index in (pair.true, pair.predicted):
            if index not in chosen and len(chosen) < CLOSE_UP_CLASSES:
                chosen.append(index)
    chosen.sort(key=lambda i: p.classes[i])
    side = 2.5 + 0.45 * len(chosen)
    fig, ax = plt.subplots(figsize=(side + 1.5, side))
    display = ConfusionMatrixDisplay(result.confusion[np.ix_(chosen, chosen)],
                                     display_labels=[short(p.classes[i]) for i in chosen])
    display.plot(ax=ax, cmap="Oranges", values_format="d", xticks_rotation="vertical", colorbar=False)
    ax.grid(False)
    ax.set_title(f"Close-up: the {len(chosen)} classes of the most confused pairs (images per cell)")
    return fig


def misclassified(p: Predictions, limit: int = 24, columns: int = 6):
    """The most confident mistakes: each image with its true class, predicted class and probability."""
    wrong = np.flatnonzero(p.predicted != p.labels)
    wrong = wrong[np.argsort(-p.probabilities[wrong, p.predicted[wrong]], kind="stable")][:limit]
    titles = [f"true: {short(p.classes[p.labels[i]], 18)}\npred: {short(p.classes[p.predicted[i]], 18)} "
              f"{p.probabilities[i, p.predicted[i]]:.2f}" for i in wrong]
    return thumbnails([p.paths[i] for i in wrong], titles, ["#a40e26"] * len(wrong),
                      f"The {len(wrong)} most confident mistakes (of {int((p.predicted != p.labels).sum())})", columns,
                      max_pixels=None)


def top_k(result: Evaluation):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 2.8))
    ks = list(result.top_k)
    bars = ax.bar([str(k) for k in ks], [result.top_k[k] for k in ks], color="#1f77b4")
    ax.bar_label(bars, labels=[f"{result.top_k[k]:.1%}" for k in ks], fontsize=8)
    ax.set_ylim(0, 1.08)
    ax.set_xlabel("k")
    ax.set_ylabel("accuracy")
    ax.set_title("Top-k accuracy: the true class among the k most probable")
    return fig


def reliability(result: Evaluation, p: Predictions):
    """scikit-learn's reliability diagram of the top-1 probability, and how many images each bin holds."""
    from sklearn.calibration import CalibrationDisplay

    plt = pyplot()
    cal = result.calibration
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    correct = (p.predicted == p.labels).astype(int)
    confidence = p.probabilities.max(axis=1)
    CalibrationDisplay.from_predictions(correct, confidence, n_bins=len(cal.counts), ax=axes[0], name="model")
    axes[0].set_xlabel("top-1 probability (bin mean)")
    axes[0].set_ylabel("accuracy in the bin")
    axes[0].set_title(f"Reliability diagram (ECE {cal.ece:.3f})")
    axes[1].bar(cal.edges[:-1], cal.counts, width=np.diff(cal.edges), align="edge", color="#1f77b4",
                edgecolor="white")
    axes[1].set_xlim(0, 1)
    axes[1].set_xlabel("top-1 probability")
    axes[1].set_ylabel("images")
    axes[1].set_title("Images per probability bin")
    return fig


def _row_shares(matrix: np.ndarray) -> np.ndarray:
    rows = matrix.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rows > 0, matrix / np.maximum(rows, 1), 0.0)
