"""The endpoint report's plots (matplotlib): requests per minute and errors by status over time,
ModelLatency and OverheadLatency p50/p90/p99 over time, and the latency distribution of the requests."""
from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
from matplotlib.ticker import MaxNLocator

from classifier.pages.figures import pyplot

from .endpoint_data import LATENCIES, PERCENTILES, Traffic

ERROR_COLORS = ("#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#bcbd22")
PERCENTILE_STYLE = {50: ("#1f77b4", "-"), 90: ("#ff7f0e", "--"), 99: ("#d62728", ":")}


def _time_axis(ax, traffic: Traffic) -> None:
    import matplotlib.dates as mdates

    ax.set_xlim(traffic.times[0], traffic.times[-1] + timedelta(seconds=traffic.bucket_seconds))
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("time (UTC)")


def _width_days(traffic: Traffic) -> float:
    return traffic.bucket_seconds / 86400 * 0.9


def requests_and_errors(traffic: Traffic):
    plt = pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(10, 5.2), sharex=True)
    per_minute = 60 / traffic.bucket_seconds
    axes[0].bar(traffic.times, [v * per_minute for v in traffic.requests], width=_width_days(traffic),
                align="edge", color="#1f77b4")
    axes[0].set_ylabel("requests per minute")
    axes[0].set_title(f"Requests per minute ({bucket_text(traffic.bucket_seconds)} buckets)")
    bottom = np.zeros(len(traffic.times))
    for color, (status, values) in zip(ERROR_COLORS * 3, sorted(traffic.errors.items()), strict=False):
        counts = np.asarray(values)
        if counts.any():
            axes[1].bar(traffic.times, counts, bottom=bottom, width=_width_days(traffic), align="edge", color=color,
                        label=f"{status}: {counts.sum():.0f}")
            bottom += counts
    axes[1].set_ylabel("errors per bucket")
    axes[1].yaxis.set_major_locator(MaxNLocator(integer=True))
    if bottom.any():
        axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title="status")
        axes[1].set_title("Errors by status")
    else:
        axes[1].set_ylim(0, 1)
        axes[1].set_title("Errors by status: none")
    _time_axis(axes[1], traffic)
    return fig


def latency_over_time(traffic: Traffic):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharex=True)
    x = [t + timedelta(seconds=traffic.bucket_seconds / 2) for t in traffic.times]  # bucket centres
    for ax, metric in zip(axes, LATENCIES, strict=True):
        for q in PERCENTILES:
            color, style = PERCENTILE_STYLE[q]
            ax.plot(x, traffic.latency_ms[metric][q], style, marker="o", ms=2.5, color=color, label=f"p{q}")
        ax.set_ylabel("ms")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{metric} ({'the container' if metric == 'ModelLatency' else 'around it'})")
        ax.legend(fontsize=8)
        _time_axis(ax, traffic)
    return fig


def latency_histogram(records: list[dict]):
    plt = pyplot()
    ok = [r for r in records if int(r["status"]) == 200]
    fig, ax = plt.subplots(figsize=(10, 2.8))
    for metric, color in zip(LATENCIES, ("#1f77b4", "#ff7f0e"), strict=True):
        values = np.array([r.get(metric, 0) / 1000 for r in ok])
        if values.size:
            ax.hist(values, bins=min(60, max(10, values.size // 4)), alpha=0.6, color=color, label=metric)
    total = [(r.get("ModelLatency", 0) + r.get("OverheadLatency", 0)) / 1000 for r in ok]
    if total:
        ax.axvline(float(np.percentile(total, 99)), color="#d62728", ls=":", lw=1, label="p99 of the sum")
    ax.set_xlabel("ms")
    ax.set_ylabel("requests")
    ax.set_title(f"Latency of the {len(ok)} successful requests")
    ax.legend(fontsize=8)
    return fig


def bucket_text(seconds: int) -> str:
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min" if seconds < 3600 else f"{seconds // 3600} h"


def any_latency(traffic: Traffic) -> bool:
    return any(not math.isnan(v) for series in traffic.latency_ms.values() for v in series[50])
