"""One self-contained HTML report per training job: job summary, rules with recommendations, loss curves,
system utilisation, step times, data wait against compute, GPU, tensors, predictions, operators.

Plots are matplotlib PNGs embedded as base64; no script, no stylesheet or font from the network: the file
opens anywhere, offline. Built at the end of the training job (output data dir: debugger-report.html) and
offline by `make report JOB=...` from any job's output.
"""
from __future__ import annotations

import base64
import html
import io
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import config, jobdata
from .hook import describe_intervals
from .records import number, read_csv_rows, read_json

STATUS_ORDER = {"IssuesFound": 0, "Error": 1, "NoIssuesFound": 2, "InProgress": 3}
COLORS = {"data": "#d62728", "forward": "#1f77b4", "backward": "#2ca02c", "optimizer": "#9467bd"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 96, "font.size": 9, "axes.grid": True, "grid.alpha": 0.3})
    return plt


def _png(fig) -> str:
    plt = _plt()
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img class="plot" alt="plot" src="data:image/png;base64,{data}">'


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def fmt_time(stamp) -> str:
    if stamp is None:
        return "–"
    return datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_seconds(seconds) -> str:
    if seconds is None or (isinstance(seconds, float) and not math.isfinite(seconds)):
        return "–"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def fmt_number(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        shown = ", ".join(fmt_number(v) for v in value[:10])
        return shown + (", …" if len(value) > 10 else "")
    return str(value)


def table(headers, rows, classes=None) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers) if headers else ""
    body = []
    for index, row in enumerate(rows):
        css = f' class="{classes[index]}"' if classes and classes[index] else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>")
    thead = f"<thead><tr>{head}</tr></thead>" if head else ""
    return f"<table>{thead}<tbody>{''.join(body)}</tbody></table>"


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{body}</section>'


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


# --- sections -----------------------------------------------------------------------------------------------

def job_summary(data: jobdata.JobData, name: str) -> str:
    job = data.job
    started, first = job.get("started"), job.get("first_step_start")
    loop_end, end = data.loop_window()[1], job.get("train_end") or job.get("ended")
    init = first - started if first and started else None
    loop = loop_end - first if loop_end and first else None
    final = end - loop_end if end and loop_end else None
    total = end - started if end and started else None
    finals = job.get("final") or (read_json(data.layout.data / "metrics.json", {}) or {}).get("final") or {}
    rows = [
        ("Job", esc(name)), ("Status", esc(job.get("status", "unknown"))),
        ("Started", fmt_time(started)), ("Ended", fmt_time(end)),
        ("Initialisation (start to first step)", fmt_seconds(init)),
        ("Training loop (first step to last epoch end)", fmt_seconds(loop)),
        ("Finalisation (last epoch end to end)", fmt_seconds(final)), ("Total", fmt_seconds(total)),
        ("Epochs run / best epoch", f"{esc(finals.get('epochs_run', len(data.epochs)))} / "
                                    f"{esc(finals.get('best_epoch', '–'))}"),
        ("Best valid loss / accuracy", f"{fmt_number(number(finals.get('valid_loss')))} / "
                                       f"{fmt_number(number(finals.get('valid_accuracy')))}"),
        ("Stopped", esc(finals.get("stopped") or "no (ran all epochs)")),
        ("Host / device", f"{esc(job.get('host', '–'))} / {esc(job.get('device', '–'))}"),
        ("CPU cores / GPUs", f"{esc(job.get('cpu_count', '–'))} / {esc(job.get('gpus', '–'))}"),
        ("Batch size / loader workers", f"{esc(job.get('batch_size', '–'))} / {esc(job.get('num_workers', '–'))}"),
    ]
    hook = job.get("hook")
    if hook:
        intervals = hook.get("intervals") or {  # job.json of an earlier version: one setting for all
            name: {"train": hook.get("train_interval"), "eval": hook.get("eval_interval")}
            for name in hook.get("collections", [])}
        rows.append(("smdebug hook", esc(f"from the {hook.get('source')}; watches the {hook.get('watched')}; saves "
                                         f"{describe_intervals(intervals)}; to {hook.get('out_dir')}")))
    else:
        rows.append(("smdebug hook", "off (debugger=false)"))
    prof = job.get("profiler")
    rows.append(("Profiler", esc(f"every {prof.get('interval_ms')} ms, {prof.get('gpus')} GPU(s)"
                                 f"{'' if prof.get('nvml') or not prof.get('gpus') else ' (no NVML)'}")
                 if prof else "off (profiler=false)"))
    hps = job.get("hyperparameters") or {}
    body = table(None, [(esc(k), v) for k, v in rows])
    if init is not None and loop is not None:
        plt = _plt()
        fig, ax = plt.subplots(figsize=(9, 1.6))
        left = 0
        for label, value, color in (("initialisation", init, "#ff7f0e"), ("training loop", loop, "#1f77b4"),
                                    ("finalisation", final or 0, "#7f7f7f")):
            ax.barh([0], [value], left=left, color=color, label=f"{label} {fmt_seconds(value)}")
            left += value
        ax.set_yticks([])
        ax.set_xlim(0, left)
        ax.set_xlabel("seconds since the job started")
        ax.set_title("Where the job's time went", fontsize=9)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        ax.grid(False)
        body += _png(fig)
    if hps:
        body += "<details><summary>Hyperparameters</summary>" + table(
            ["name", "value"], [(esc(k), esc(v)) for k, v in sorted(hps.items())]) + "</details>"
    return section("summary", "Job summary", body)


def rules_summary(results: list[dict]) -> str:
    if not results:
        return section("rules", "Rules", note("No rules ran for this job (debugger_rules=none, or neither the "
                                              "debugger nor the profiler was on)."))
    results = sorted(results, key=lambda r: (STATUS_ORDER.get(r["status"], 9), r.get("kind", ""), r["rule"]))
    fired = [r for r in results if r["status"] == "IssuesFound"]
    errors = [r for r in results if r["status"] == "Error"]
    rows, classes = [], []
    for r in results:
        where = []
        if r.get("epoch") is not None:
            where.append(f"epoch {r['epoch']}")
        if r.get("step") is not None:
            where.append(f"step {r['step']}")
        if r.get("time") is not None:
            where.append(f"{number(r['time']):.1f} s")
        values = "; ".join(f"{esc(k)}={esc(fmt_number(v))}" for k, v in (r.get("values") or {}).items()
                           if v is not None)
        params = ", ".join(f"{esc(k)}={esc(fmt_number(v))}" for k, v in (r.get("parameters") or {}).items())
        action = ", ".join(r.get("actions") or []) or "–"
        rows.append((f"<b>{esc(r['rule'])}</b><br><span class=\"small\">{esc(r.get('kind', ''))}</span>",
                     f'<span class="badge {esc(r["status"])}">{esc(r["status"])}</span>',
                     esc(r.get("message", "")) + (f"<br><span class=\"small\">{values}</span>" if values else ""),
                     esc(", ".join(where)) or "–", f'<span class="small">{params}</span>', esc(action)))
        classes.append("fired" if r["status"] == "IssuesFound" else "")
    text = (f"<p>{len(results)} rules ran: <b>{len(fired)} found issues</b>, {len(errors)} could not be evaluated "
            f"(Error), {len(results) - len(fired) - len(errors)} found none.</p>")
    recommendations = ""
    if fired:
        items = "".join(f"<li><b>{esc(r['rule'])}</b>: {esc(r.get('recommendation') or '')}</li>" for r in fired)
        recommendations = f"<h3>Recommendations</h3><ul class=\"recs\">{items}</ul>"
    return section("rules", "Rules summary", text + recommendations + table(
        ["rule", "status", "finding", "where", "parameters", "action"], rows, classes))


def loss_curves(data: jobdata.JobData) -> str:
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    epochs = [r for r in data.epochs if "epoch" in r]
    parts = []
    if epochs:
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
        parts.append(_png(fig))
    step_losses = None
    if data.steps and "loss" in data.steps and len(data.steps["loss"]):
        step_losses = (data.steps["step"], data.steps["loss"], "every step (profiler)")
    saved = data.tensors.select("losses", "train") if data.tensors is not None else []
    if step_losses is not None or saved:
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
        parts.append(_png(fig))
    if not parts:
        parts.append(note("No losses recorded."))
    return section("losses", "Loss curves: training and validation", "".join(parts))


def _stats_row(name, values, unit):
    values = jobdata.finite(values)
    if not values.size:
        return None
    q = np.percentile(values, [100, 99, 95, 50, 0])
    return [esc(name), esc(unit)] + [f"{v:.1f}" for v in q]


def system_section(data: jobdata.JobData) -> str:
    system = data.system
    if not system or not len(system.get("timestamp", [])):
        return section("system", "System utilisation", note("No system metrics (profiler=false)."))
    plt = _plt()
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
    body = _png(fig) + note("Dashed lines: start and end of the training loop. Statistics below are over the "
                            "training loop.")
    window = data.system_in_loop() or system
    rows = [r for r in [
        _stats_row("CPU (all cores)", window.get("cpu_percent", []), "%"),
        _stats_row("I/O wait", window.get("iowait_percent", []), "%"),
        _stats_row("host memory", window.get("memory_percent", []), "%"),
        _stats_row("process + loader memory", window.get("process_rss_mb", []), "MB"),
        _stats_row("disk read", window.get("disk_read_mb_s", []), "MB/s"),
        _stats_row("disk write", window.get("disk_write_mb_s", []), "MB/s"),
        _stats_row("network in", window.get("net_recv_mb_s", []), "MB/s"),
        _stats_row("network out", window.get("net_sent_mb_s", []), "MB/s"),
        *[_stats_row(f"GPU {i} utilisation", window.get(f"gpu{i}_util_percent", []), "%") for i in data.gpu_indices()],
        *[_stats_row(f"GPU {i} memory", window.get(f"gpu{i}_memory_percent", []), "%") for i in data.gpu_indices()],
    ] if r]
    body += "<h3>System usage statistics</h3>" + table(["metric", "unit", "max", "p99", "p95", "p50", "min"], rows)
    return section("system", "System utilisation over time", body)


def gpu_section(data: jobdata.JobData) -> str:
    gpus = sorted({int(k[3:].split("_")[0]) for k in data.system if k.startswith("gpu") and "_memory" in k})
    if not gpus:
        return section("gpu", "GPU memory and utilisation",
                       note("No GPU in this job (or profiler=false): nothing to show."))
    plt = _plt()
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
    return section("gpu", "GPU memory and utilisation", _png(fig))


def steps_section(data: jobdata.JobData, results: list[dict]) -> str:
    steps = data.steps
    if not steps or not len(steps.get("step_s", [])):
        return section("steps", "Step durations", note("No step timings (profiler=false)."))
    plt = _plt()
    durations = steps["step_s"]
    params = next((r.get("parameters") for r in results if r["rule"] == "StepOutlier"), None) or \
        config.parameters_for("StepOutlier")
    mean, sd = float(np.mean(durations)), float(np.std(durations))
    limit = mean + params["stddev"] * sd
    outliers = durations > limit
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    ax = axes[0]
    bins = min(60, max(10, len(durations) // 5))
    ax.hist(durations[~outliers], bins=bins, color="#1f77b4", label="steps")
    if outliers.any():
        ax.hist(durations[outliers], bins=bins, color="#d62728", label=f"outliers ({int(outliers.sum())})")
    ax.axvline(limit, color="#d62728", ls="--", lw=1, label=f"mean + {params['stddev']:g} sd = {limit:.3f} s")
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
    body = _png(fig)
    stats = [_stats_row(name, steps[key], "s") for name, key in (("step", "step_s"), ("waiting for data", "data_s"),
                                                                 ("forward", "forward_s"), ("backward", "backward_s"),
                                                                 ("optimizer", "optimizer_s"))]
    body += table(["phase", "unit", "max", "p99", "p95", "p50", "min"], [r for r in stats if r])
    if outliers.any():
        listed = ", ".join(f"{int(s)} ({d:.3f} s)"
                           for s, d in zip(steps["step"][outliers][:20], durations[outliers][:20], strict=True))
        body += note(f"Outlier steps: {listed}")
    return section("steps", "Step durations", body)


def data_wait_section(data: jobdata.JobData) -> str:
    steps = data.steps
    if not steps or not len(steps.get("step_s", [])):
        return section("dataloading", "Waiting for data against compute", note("No step timings (profiler=false)."))
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    phases = ("data", "forward", "backward", "optimizer")
    totals = {p: float(np.nansum(steps[f"{p}_s"])) for p in phases}
    whole = sum(totals.values()) or 1.0
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), gridspec_kw={"width_ratios": [1, 2]})
    ax = axes[0]
    left = 0.0
    for p in phases:
        share = 100 * totals[p] / whole
        ax.barh([0], [share], left=left, color=COLORS[p], label=f"{p} {share:.0f} %")
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
        for p in phases:
            values = np.array([np.nansum(steps[f"{p}_s"][epochs == e]) for e in labels])
            ax.bar(labels, values, bottom=bottom, color=COLORS[p], label=p)
            bottom += values
        ax.set_xlabel("epoch")
        ax.set_ylabel("seconds")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title("Step time per epoch by phase")
        ax.legend(fontsize=7)
    wait = 100 * totals["data"] / whole
    verdict = ("Training waits for data a large part of the time: see the Dataloader rule's recommendation."
               if wait > 10 else "Data loading keeps up with the compute.")
    return section("dataloading", "Waiting for data against compute", _png(fig) + note(
        f"Waiting for the next batch: {wait:.1f} % of the training step time; compute (forward, backward, "
        f"optimizer): {100 - wait:.1f} %. {verdict}"))


def tensors_section(data: jobdata.JobData) -> str:
    tensors = data.tensors
    if tensors is None:
        return section("tensors", "Tensors saved by the hook", note("No tensors (debugger=false)."))
    if not tensors.stats:
        return section("tensors", "Tensors saved by the hook", note(tensors.error or "No tensors saved."))
    plt = _plt()
    parts = []
    grads = tensors.select("gradients", "train")
    weights = tensors.select("weights", "train")
    relus = [s for s in tensors.select("relu_output", "train") if s.unit_active is not None]
    panels = [p for p in (("gradients", grads), ("weights", weights), ("relu", relus)) if p[1]]
    if panels:
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
        parts.append(_png(fig))
    collections = {}
    for s in tensors.stats:
        entry = collections.setdefault(s.collection, [set(), set(), 0, 0])
        entry[0].add(s.name)
        entry[1].add((s.mode, s.step))
        entry[2] += s.nan
        entry[3] += s.inf
    rows = [(esc(c), len(v[0]), len({st for m, st in v[1] if m == 'train'}), len({st for m, st in v[1] if m == 'eval'}),
             v[2], v[3]) for c, v in sorted(collections.items())]
    parts.append(table(["collection", "tensors", "train steps saved", "eval steps saved", "NaN values",
                        "infinite values"], rows))
    parts.append(note(f"smdebug output: {tensors.path}. Read it with smdebug.trials.create_trial(path)."))
    return section("tensors", "Tensors saved by the hook", "".join(parts))


def predictions_section(data: jobdata.JobData) -> str:
    classes = data.job.get("classes") or []
    counts = data.job.get("train_label_counts") or []
    latest = [p for p in data.predictions if p.get("mode") == "valid"]
    if not counts and not latest:
        return ""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    labels = [c[:14] for c in classes] or [str(i) for i in range(len(counts))]
    if counts:
        axes[0].bar(range(len(counts)), counts, color="#1f77b4")
        axes[0].set_xticks(range(len(counts)), labels, rotation=60, ha="right", fontsize=7)
        axes[0].set_title("Training images per class")
    if latest:
        record = latest[-1]
        matrix = np.asarray(record["confusion"], dtype=float)
        rows = matrix.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            wrong = np.where(rows > 0, 1 - np.diag(matrix) / rows, 0) * 100
        axes[1].bar(range(len(wrong)), wrong, color="#d62728")
        axes[1].set_xticks(range(len(wrong)), labels[: len(wrong)], rotation=60, ha="right", fontsize=7)
        axes[1].set_ylim(0, 100)
        axes[1].set_title(f"Validation mispredictions per class (%), epoch {record['epoch']}")
    return section("classes", "Classes: balance and mispredictions", _png(fig))


def operators_section(layout: config.Layout) -> str:
    rows = read_csv_rows(layout.trace_dir / "operators.csv")
    if not rows:
        return section("operators", "torch.profiler operators",
                       note("No torch.profiler window (profiler_trace_steps=0)."))
    operators_txt = layout.trace_dir / "operators.txt"
    header = operators_txt.read_text().splitlines()[0] if operators_txt.is_file() else ""
    shown = [(esc(r["operator"]), esc(r["calls"]), esc(r["self_cpu_ms"]), esc(r["cpu_total_ms"]),
              esc(r["self_device_ms"])) for r in rows[:25]]
    return section("operators", "torch.profiler operators", note(header) + table(
        ["operator", "calls", "self CPU (ms)", "CPU total (ms)", "self GPU (ms)"], shown) + note(
        "The Chrome trace is profiler/trace/torch_trace.json: open it in chrome://tracing or ui.perfetto.dev."))


def files_section(layout: config.Layout) -> str:
    entries = []
    for path in (layout.job_file, layout.epochs_file, layout.predictions_file, layout.system_file, layout.steps_file,
                 layout.trace_dir / "torch_trace.json", layout.results_file, layout.history_file):
        if path.is_file():
            entries.append((esc(path.relative_to(layout.data)), f"{path.stat().st_size / 1024:.1f} KiB"))
    if layout.tensors.is_dir():
        size = sum(f.stat().st_size for f in layout.tensors.rglob("*") if f.is_file())
        entries.append((esc(layout.tensors), f"{size / 2**20:.1f} MiB (smdebug)"))
    return section("files", "Files", table(["file", "size"], entries) + note(
        "Formats: docs/debugger.md, 'Output data'."))


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#222;background:#f6f7f9}
header{background:#232f3e;color:#fff;padding:16px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#ccd}nav{padding:8px 28px;background:#fff;border-bottom:1px solid #ddd;font-size:13px}
nav a{margin-right:14px;color:#0366d6;text-decoration:none}main{padding:8px 28px 40px;max-width:1200px}
section{background:#fff;border:1px solid #e1e4e8;border-radius:6px;padding:12px 18px;margin:14px 0}
h2{font-size:18px;margin:4px 0 10px}h3{font-size:15px;margin:14px 0 6px}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0;width:100%}
th,td{border:1px solid #e1e4e8;padding:4px 7px;text-align:left;vertical-align:top}th{background:#f1f3f5}
tr.fired td{background:#fff5f5}
.badge{padding:2px 7px;border-radius:10px;font-size:11.5px;font-weight:600;white-space:nowrap}
.IssuesFound{background:#ffd7d5;color:#a40e26}.NoIssuesFound{background:#dcffe4;color:#176f2c}
.Error{background:#fff1c2;color:#735c0f}.InProgress{background:#e1ecf4;color:#2c5777}
.small{font-size:11px;color:#666}.note{font-size:12.5px;color:#444}img.plot{max-width:100%;display:block;margin:6px 0}
ul.recs li{margin:4px 0}details{margin-top:8px;font-size:13px}
"""


def build_html(data: jobdata.JobData, results: list[dict], name: str) -> str:
    sections = [job_summary(data, name), rules_summary(results), loss_curves(data), system_section(data),
                steps_section(data, results), data_wait_section(data), gpu_section(data), tensors_section(data),
                predictions_section(data), operators_section(data.layout), files_section(data.layout)]
    fired = sum(1 for r in results if r["status"] == "IssuesFound")
    nav = [("summary", "Summary"), ("rules", "Rules"), ("losses", "Losses"), ("system", "System"),
           ("steps", "Steps"), ("dataloading", "Data wait"), ("gpu", "GPU"), ("tensors", "Tensors"),
           ("classes", "Classes"), ("operators", "Operators"), ("files", "Files")]
    return html_page(f"Debugger report: {name}", f"Training job report: {name}",
                     f"{len(results)} rules, {fired} with issues.", nav, sections)


def html_page(title: str, heading: str, subtitle: str, nav: list[tuple[str, str]], sections: list[str],
              css: str = CSS) -> str:
    """One self-contained page: the header, a link to each section, the sections (the reports' too)."""
    links = "".join(f'<a href="#{esc(anchor)}">{esc(label)}</a>' for anchor, label in nav)
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><link rel="icon" href="data:,">'
            f"<style>{css}</style></head><body><header><h1>{esc(heading)}</h1>"
            f"<p>{esc(subtitle)} Generated {generated}.</p></header>"
            f"<nav>{links}</nav><main>{''.join(s for s in sections if s)}</main></body></html>")


def job_name(layout: config.Layout) -> str:
    parts = layout.data.resolve().parts
    if len(parts) >= 3 and parts[-2:] == ("output", "data"):
        return parts[-3]
    return layout.data.resolve().name


def write_report(layout: config.Layout, path: Path | None = None, results: list[dict] | None = None,
                 name: str | None = None, reader=None) -> Path:
    """Build the report from the job's files; `results` default to rules/rule_results.json.

    reader: a TensorReader that already holds the tensors' statistics (the training job's own).
    """
    data = jobdata.load(layout, reader, with_tensors=True)
    if results is None:
        results = (read_json(layout.results_file, {}) or {}).get("rules", [])
    html_text = build_html(data, results, name or job_name(layout))
    path = Path(path or layout.report_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html_text, encoding="utf-8")
    tmp.replace(path)
    return path

