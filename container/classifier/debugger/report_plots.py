"""The debugger report's figures (matplotlib), from the job's records as report.py has read them: where the
job's time went, losses, system utilisation, GPU, step durations, data wait, tensors and classes."""
from __future__ import annotations

import math

import numpy as np

from ..pages.figures import pyplot
from ..pages.formats import seconds
from . import jobdata
from .records import number

PHASE_COLORS = {"data": "#d62728", "forward": "#1f77b4", "backward": "#2ca02c", "optimizer": "#9467bd"}
PHASES = tuple(PHASE_COLORS)


def timeline(init: float, loop: float, final: float | None):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 1.6))
    left = 0
    for label, value, color in (("initialisation", init, "#ff7f0e"), ("training loop", loop, "#1f77b4"),
                                ("finalisation", final or 0, "#7f7f7f")):
        ax.barh([0], [value], left=left, color=color, label=f"{label} {seconds(value)}")
        left += value
    ax.set_yticks([])
    ax.set_xlim(0, left)
    ax.set_xlabel("seconds since the job started")
    ax.set_title("Where the job's time went", fontsize=9)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(False)
    return fig


def losses_per_epoch(epochs: list[dict]):
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    x = [r["epoch"] for r in epochs]
    axes[0].plot(x, [number(r.get("train_loss")) for r in epochs], "o-", label="train (epoch mean)")
    axes[0].plot(x, [number(r.get("valid_loss")) for r in epochs], "s-", label="validation")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("loss")
    axes[0].set_title("Loss per epoch")
    axes[0].legend()
    axes[1].plot(x, [number(r.get("valid_accuracy")) for r in epochs], "s-", color="#2ca02c")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("validation accuracy")
    axes[1].set_title("Validation accuracy")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def losses_per_step(step_losses: tuple | None, saved: list, epochs: list[dict]):
    """`step_losses`: (steps, losses, label) of every step (the profiler's), `saved`: the hook's losses."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.2))
    if step_losses is not None:
        steps, losses, label = step_losses
        ax.plot(steps, losses, color="#1f77b4", alpha=0.35, lw=0.8, label=f"train loss, {label}")
        if len(losses) >= 20:
            width = max(5, len(losses) // 50)
            smooth = np.convolve(losses, np.ones(width) / width, mode="valid")
            ax.plot(steps[width - 1:], smooth, color="#1f77b4", lw=1.6, label=f"moving mean of {width}")
    if saved:
        saved = sorted(saved, key=lambda s: s.step)
        ax.plot([s.step for s in saved], [s.mean for s in saved], "o", color="#ff7f0e", ms=3,
                label="train loss saved by the hook")
    for record in epochs:
        first = (record.get("train_steps") or [None])[0]
        if first is not None:
            ax.axvline(first, color="#999", lw=0.6, ls=":")
    finite_values = [v for v in (list(step_losses[1]) if step_losses else []) + [s.mean for s in saved]
                     if math.isfinite(v)]
    if finite_values and max(finite_values) / max(min(finite_values), 1e-12) > 1e3:
        ax.set_yscale("log")
    ax.set_xlabel("training step (dotted: epoch starts)")
    ax.set_ylabel("loss")
    ax.set_title("Training loss per step")
    ax.legend(loc="upper right")
    return fig


def system(data: jobdata.JobData):
    plt = pyplot()
    system = data.system
    started = data.started or float(system["timestamp"][0])
    t = system["timestamp"] - started
    cores = sorted((k for k in system if k.startswith("cpu") and k[3:4].isdigit()),
                   key=lambda k: int(k[3:].split("_")[0]))
    first, last = data.loop_window()
    fig, axes = plt.subplots(3, 1, figsize=(10, 7.5), sharex=True)
    ax = axes[0]
    if cores:
        matrix = np.stack([system[k] for k in cores])
        ax.imshow(matrix, aspect="auto", cmap="viridis", vmin=0, vmax=100, interpolation="nearest",
                  extent=(t[0], t[-1] if len(t) > 1 else t[0] + 1, len(cores) - 0.5, -0.5))
        ax.set_ylabel("CPU core")
        ax.grid(False)
    ax.set_title("CPU utilisation per core (0-100 %)")
    ax = axes[1]
    ax.plot(t, system["cpu_percent"], label="CPU (all cores) %")
    ax.plot(t, system.get("memory_percent", np.full(len(t), np.nan)), label="host memory %")
    if "iowait_percent" in system:
        ax.plot(t, system["iowait_percent"], label="I/O wait %")
    for index in data.gpu_indices():
        ax.plot(t, system[f"gpu{index}_util_percent"], label=f"GPU {index} %")
    ax.set_ylim(0, 105)
    ax.set_ylabel("%")
    ax.set_title("Utilisation")
    ax.legend(loc="upper right", ncol=4, fontsize=7)
    ax = axes[2]
    for key, label in (("disk_read_mb_s", "disk read"), ("disk_write_mb_s", "disk write"),
                       ("net_recv_mb_s", "network in"), ("net_sent_mb_s", "network out")):
        if key in system:
            ax.plot(t, system[key], label=label, lw=0.9)
    ax.set_ylabel("MB/s")
    ax.set_xlabel("seconds since the job started")
    ax.set_title("Disk and network I/O")
    ax.legend(loc="upper right", ncol=4, fontsize=7)
    for ax in axes[1:]:
        if first is not None:
            ax.axvline(first - started, color="k", lw=0.7, ls="--")
        if last is not None:
            ax.axvline(last - started, color="k", lw=0.7, ls="--")
    return fig


def gpu(data: jobdata.JobData, gpus: list[int]):
    plt = pyplot()
    started = data.started or float(data.system["timestamp"][0])
    t = data.system["timestamp"] - started
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    for index in gpus:
        axes[0].plot(t, data.system.get(f"gpu{index}_util_percent", np.full(len(t), np.nan)), label=f"GPU {index}")
        axes[1].plot(t, data.system[f"gpu{index}_memory_used_mb"] / 1024, label=f"GPU {index}")
    axes[0].set_title("GPU utilisation (%)")
    axes[0].set_ylim(0, 105)
    axes[1].set_title("GPU memory used (GiB)")
    for ax in axes:
        ax.set_xlabel("seconds since the job started")
        ax.legend()
    return fig


def step_durations(steps: dict, outliers: np.ndarray, mean: float, limit: float, stddev: float):
    plt = pyplot()
    durations = steps["step_s"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    ax = axes[0]
    bins = min(60, max(10, len(durations) // 5))
    ax.hist(durations[~outliers], bins=bins, color="#1f77b4", label="steps")
    if outliers.any():
        ax.hist(durations[outliers], bins=bins, color="#d62728", label=f"outliers ({int(outliers.sum())})")
    ax.axvline(limit, color="#d62728", ls="--", lw=1, label=f"mean + {stddev:g} sd = {limit:.3f} s")
    ax.axvline(mean, color="k", ls=":", lw=1, label=f"mean {mean:.3f} s")
    ax.set_xlabel("step duration (s)")
    ax.set_ylabel("steps")
    ax.set_title("Step duration histogram")
    ax.legend(fontsize=7)
    ax = axes[1]
    ax.plot(steps["step"], durations, ".", ms=2, color="#1f77b4")
    ax.plot(steps["step"][outliers], durations[outliers], "x", color="#d62728", label="outlier")
    ax.axhline(limit, color="#d62728", ls="--", lw=1)
    ax.set_xlabel("training step")
    ax.set_ylabel("duration (s)")
    ax.set_title("Step duration over the job")
    return fig


def data_wait(steps: dict, totals: dict[str, float]):
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    whole = sum(totals.values()) or 1.0
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), gridspec_kw={"width_ratios": [1, 2]})
    ax = axes[0]
    left = 0.0
    for p in PHASES:
        share = 100 * totals[p] / whole
        ax.barh([0], [share], left=left, color=PHASE_COLORS[p], label=f"{p} {share:.0f} %")
        left += share
    ax.set_xlim(0, 100)
    ax.set_yticks([])
    ax.set_xlabel("% of the training step time")
    ax.set_title("Share of step time")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=2, frameon=False)
    ax.grid(False)
    ax = axes[1]
    epochs = steps.get("epoch")
    if epochs is not None and len(np.unique(epochs)) > 0:
        labels = sorted(int(e) for e in np.unique(epochs[np.isfinite(epochs)]))
        bottom = np.zeros(len(labels))
        for p in PHASES:
            values = np.array([np.nansum(steps[f"{p}_s"][epochs == e]) for e in labels])
            ax.bar(labels, values, bottom=bottom, color=PHASE_COLORS[p], label=p)
            bottom += values
        ax.set_xlabel("epoch")
        ax.set_ylabel("seconds")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title("Step time per epoch by phase")
        ax.legend(fontsize=7)
    return fig


def tensors(panels: list[tuple[str, list]]):
    """One panel per kind of tensor statistics saved: ("gradients" | "weights" | "relu", their stats)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(10, 3.4), squeeze=False)
    for ax, (kind, stats) in zip(axes[0], panels, strict=True):
        names = sorted({s.name for s in stats})
        for name in names[:12]:
            series = sorted((s for s in stats if s.name == name), key=lambda s: s.step)
            if kind == "relu":
                y = [100 * float((s.unit_active < 0.01).mean()) for s in series]
            else:
                y = [s.abs_mean for s in series]
            ax.plot([s.step for s in series], y, "o-", ms=2, lw=1, label=name[-28:])
        if kind == "relu":
            ax.set_title("Dead ReLU units (%)")
            ax.set_ylim(-2, 102)
        else:
            ax.set_yscale("log")
            ax.set_title(f"mean |{kind[:-1]}| per tensor")
        ax.set_xlabel("training step")
        ax.legend(fontsize=6)
    return fig


def classes(labels: list[str], counts: list[int], wrong: np.ndarray | None, epoch):
    """Training images per class and, when the job validated, each class's share of mispredictions."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    short = [label[:14] for label in labels]
    if counts:
        axes[0].bar(range(len(counts)), counts, color="#1f77b4")
        axes[0].set_xticks(range(len(counts)), short, rotation=60, ha="right", fontsize=7)
        axes[0].set_title("Training images per class")
    if wrong is not None:
        axes[1].bar(range(len(wrong)), wrong, color="#d62728")
        axes[1].set_xticks(range(len(wrong)), short[: len(wrong)], rotation=60, ha="right", fontsize=7)
        axes[1].set_ylim(0, 100)
        axes[1].set_title(f"Validation mispredictions per class (%), epoch {epoch}")
    return fig
