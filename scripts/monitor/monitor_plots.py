"""The monitor report's plots (matplotlib), each the captured window against the baseline: the timeline, the
predicted-class mix, the confidence, the embeddings, the image statistics and the most unusual images."""
from __future__ import annotations

from datetime import timedelta

import numpy as np

from classifier.pages.figures import pyplot, thumbnails
from scripts.reports.endpoint_plots import bucket_text
from scripts.reports.evaluation_plots import short

from .analysis import UNUSUAL, Analysis

BASELINE, CAPTURED, ALERT = "#8c8c8c", "#1f77b4", "#d62728"
MOST_CLASSES = 30  # classes drawn in the class mix (those that changed most)


def timeline(a: Analysis):
    """Captured images and errors per time bucket; mean confidence, low-confidence and unusual shares per bucket."""
    import matplotlib.dates as mdates

    plt = pyplot()
    line = a.timeline
    fig, axes = plt.subplots(2, 1, figsize=(10, 5.2), sharex=True)
    width = line.bucket_seconds / 86400 * 0.9
    axes[0].bar(line.times, line.images, width=width, align="edge", color=CAPTURED, label="images")
    if any(line.errors):
        axes[0].bar(line.times, line.errors, bottom=line.images, width=width, align="edge", color=ALERT,
                    label="error answers")
    axes[0].set_ylabel("per bucket")
    axes[0].set_title(f"Captured images per {bucket_text(line.bucket_seconds)}")
    axes[0].legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    centres = [t + timedelta(seconds=line.bucket_seconds / 2) for t in line.times]
    shown = (("mean top-1 probability", line.mean_top1, float(a.baseline.top1.mean()), CAPTURED),
             (f"low-confidence share (top-1 < {a.threshold:g})", line.low_share,
              float((a.baseline.top1 < a.threshold).mean()), "#ff7f0e"),
             (f"unusual share (p < {UNUSUAL:g})", line.unusual_share, UNUSUAL, "#9467bd"))
    for label, values, reference, color in shown:
        axes[1].plot(centres, values, "-o", ms=3, color=color, label=label)
        axes[1].axhline(reference, color=color, ls=":", lw=1)
    axes[1].set_ylim(0, 1.02)
    axes[1].set_title("Per bucket (dotted: the baseline's value; unusual: 5 % expected)")
    axes[1].legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    axes[1].set_xlim(line.times[0], line.times[-1] + timedelta(seconds=line.bucket_seconds))
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    axes[1].xaxis.set_major_locator(locator)
    axes[1].xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    axes[1].set_xlabel("time (UTC)")
    return fig


def class_mix(a: Analysis):
    """Each class's share of the predictions, baseline beside the window (the classes that changed most)."""
    plt = pyplot()
    details = next(c for c in a.checks if c.name == "class_mix").details
    base, seen = np.array(details["baseline_share"]), np.array(details["share"])
    order = np.argsort(-np.abs(seen - base), kind="stable")[:MOST_CLASSES]
    order = order[np.argsort(-base[order], kind="stable")]
    fig, ax = plt.subplots(figsize=(10, 0.9 + 0.32 * len(order)))
    y = np.arange(len(order))
    ax.barh(y - 0.2, base[order], height=0.4, color=BASELINE, label=f"baseline ({a.baseline.images} images)")
    ax.barh(y + 0.2, seen[order], height=0.4, color=CAPTURED, label=f"captured ({len(a.images)} images)")
    ax.set_yticks(y, [short(a.classes[i], 28) for i in order], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("share of the predictions")
    more = f" (the {len(order)} that changed most)" if len(order) < len(a.classes) else ""
    ax.set_title(f"Predicted-class mix{more}: PSI {details['psi']:.3f} ({details['psi_reading']})")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def confidence(a: Analysis):
    """The top-1 probability's distribution in the baseline and in the window."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 3))
    bins = np.linspace(0, 1, 41)
    ax.hist(a.baseline.top1, bins=bins, density=True, alpha=0.55, color=BASELINE, label="baseline")
    if len(a.top1):
        ax.hist(a.top1, bins=bins, density=True, alpha=0.55, color=CAPTURED, label="captured")
    ax.axvline(a.threshold, color=ALERT, ls=":", lw=1, label=f"low confidence under {a.threshold:g}")
    ax.set_xlabel("top-1 probability")
    ax.set_ylabel("density")
    ax.set_title("Confidence of the model's answers")
    ax.legend(fontsize=8, loc="upper left")
    return fig


def embeddings(a: Analysis):
    """Each projected dimension's KS statistic (against the line one test fires at), and the images on the baseline's
    first two principal components."""
    plt = pyplot()
    check = next(c for c in a.checks if c.name == "embeddings")
    details = check.details
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [1.3, 1]})
    statistics = np.array(details["ks_statistics"])
    colors = [ALERT if p * len(statistics) < check.alpha else CAPTURED for p in details["p_values"]]
    axes[0].bar(np.arange(len(statistics)), statistics, color=colors)
    if details.get("critical_ks"):
        axes[0].axhline(details["critical_ks"], color=ALERT, ls=":", lw=1, label="fires above")
        axes[0].legend(fontsize=8)
    axes[0].set_xlabel("projected dimension")
    axes[0].set_ylabel("KS statistic")
    axes[0].set_title("Per-dimension Kolmogorov-Smirnov")
    base = a.baseline.embeddings.astype(np.float64)
    centre = base.mean(axis=0)
    _, _, components = np.linalg.svd(base - centre, full_matrices=False)
    plane = components[:2].T
    axes[1].scatter(*((base - centre) @ plane).T, s=6, color=BASELINE, alpha=0.5, label="baseline")
    if len(a.embeddings):
        seen = (a.embeddings - centre) @ plane
        odd = a.unusual < UNUSUAL
        axes[1].scatter(*seen[~odd].T, s=8, color=CAPTURED, alpha=0.7, label="captured")
        axes[1].scatter(*seen[odd].T, s=12, color=ALERT, alpha=0.8, label=f"unusual (p < {UNUSUAL:g})")
    axes[1].set_title("The baseline's first two principal components")
    axes[1].legend(fontsize=7.5)
    return fig


STATISTIC_PLOTS = (("brightness", "brightness (mean luma)"), ("contrast", "contrast (luma std)"),
                   ("aspect", "aspect ratio (width / height)"), ("width", "width (pixels)"))


def image_statistics(a: Analysis):
    plt = pyplot()
    fig, axes = plt.subplots(1, len(STATISTIC_PLOTS), figsize=(10, 2.8))
    for ax, (name, label) in zip(axes, STATISTIC_PLOTS, strict=True):
        base, seen = a.baseline.stats[name], a.stats[name]
        values = np.concatenate([base, seen])
        low, high = float(values.min()), float(values.max())
        bins = np.linspace(low, high, 26) if high > low else np.array([low - 0.5, low + 0.5])
        ax.hist(base, bins=bins, density=True, alpha=0.55, color=BASELINE, label="baseline")
        if len(seen):
            ax.hist(seen, bins=bins, density=True, alpha=0.55, color=CAPTURED, label="captured")
        ax.set_title(label, fontsize=8.5)
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
    axes[0].legend(fontsize=7)
    return fig


def unusual_images(a: Analysis, limit: int = 18, columns: int = 6):
    """The captured images least like the baseline's, with the model's answer and their p-value."""
    order = np.argsort(a.unusual, kind="stable")[:limit]
    titles = [f"p {a.unusual[i]:.3f}\n{short(a.classes[int(a.predicted[i])], 16)} {a.top1[i]:.2f}" for i in order]
    colors = [ALERT if a.unusual[i] < UNUSUAL else "#222222" for i in order]
    return thumbnails([a.images[i].data for i in order], titles, colors,
                      f"The {len(order)} most unusual of {len(a.images)} captured images (p: rank of the distance to "
                      f"the baseline's images; model's class and top-1 probability)", columns)
