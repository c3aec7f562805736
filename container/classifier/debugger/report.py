"""One self-contained HTML report per training job: job summary, rules with recommendations, loss curves,
system utilisation, step times, data wait against compute, GPU, tensors, predictions, operators.

The data of each section is read and computed here, its figures drawn by report_plots.py, and the page
rendered from templates/debugger-report.html in the frame every report shares (classifier/pages). Plots are
embedded PNGs; no script, no stylesheet or font from the network: the file opens anywhere, offline. Built
at the end of the training job (output data dir: debugger-report.html) and offline by `make report JOB=...`
from any job's output.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..pages import render
from ..pages.figures import png
from ..pages.formats import MISSING, number as fmt_number, seconds as fmt_seconds, utc
from . import config, jobdata, report_plots as plots
from .hook import describe_intervals
from .records import number, read_csv_rows, read_json

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATUS_ORDER = {"IssuesFound": 0, "Error": 1, "NoIssuesFound": 2, "InProgress": 3}
STATS_HEADERS = ["unit", "max", "p99", "p95", "p50", "min"]


def job_summary(data: jobdata.JobData, name: str) -> dict:
    """The summary table's rows, the time line (a plot, when the job has run its loop), the hyperparameters."""
    job = data.job
    started, first = job.get("started"), job.get("first_step_start")
    loop_end, end = data.loop_window()[1], job.get("train_end") or job.get("ended")
    init = first - started if first and started else None
    loop = loop_end - first if loop_end and first else None
    final = end - loop_end if end and loop_end else None
    total = end - started if end and started else None
    finals = job.get("final") or (read_json(data.layout.data / "metrics.json", {}) or {}).get("final") or {}
    rows = [
        ("Job", name), ("Status", job.get("status", "unknown")),
        ("Started", utc(started)), ("Ended", utc(end)),
        ("Initialisation (start to first step)", fmt_seconds(init)),
        ("Training loop (first step to last epoch end)", fmt_seconds(loop)),
        ("Finalisation (last epoch end to end)", fmt_seconds(final)), ("Total", fmt_seconds(total)),
        ("Epochs run / best epoch",
         f"{finals.get('epochs_run', len(data.epochs))} / {finals.get('best_epoch', MISSING)}"),
        ("Best valid loss / accuracy", f"{fmt_number(number(finals.get('valid_loss')))} / "
                                       f"{fmt_number(number(finals.get('valid_accuracy')))}"),
        ("Stopped", finals.get("stopped") or "no (ran all epochs)"),
        ("Host / device", f"{job.get('host', MISSING)} / {job.get('device', MISSING)}"),
        ("CPU cores / GPUs", f"{job.get('cpu_count', MISSING)} / {job.get('gpus', MISSING)}"),
        ("Batch size / loader workers", f"{job.get('batch_size', MISSING)} / {job.get('num_workers', MISSING)}"),
    ]
    hook = job.get("hook")
    if hook:
        intervals = hook.get("intervals") or {  # job.json of an earlier version: one setting for all
            name: {"train": hook.get("train_interval"), "eval": hook.get("eval_interval")}
            for name in hook.get("collections", [])}
        rows.append(("smdebug hook", f"from the {hook.get('source')}; watches the {hook.get('watched')}; saves "
                                     f"{describe_intervals(intervals)}; to {hook.get('out_dir')}"))
    else:
        rows.append(("smdebug hook", "off (debugger=false)"))
    prof = job.get("profiler")
    rows.append(("Profiler", f"every {prof.get('interval_ms')} ms, {prof.get('gpus')} GPU(s)"
                             f"{'' if prof.get('nvml') or not prof.get('gpus') else ' (no NVML)'}"
                 if prof else "off (profiler=false)"))
    timeline = png(plots.timeline(init, loop, final)) if init is not None and loop is not None else None
    hyperparameters = sorted((k, str(v)) for k, v in (job.get("hyperparameters") or {}).items())
    return {"rows": rows, "timeline": timeline, "hyperparameters": hyperparameters}


def rules_summary(results: list[dict]) -> dict:
    """Each rule's result, issues first, with where it fired, its values and parameters as text."""
    results = sorted(results, key=lambda r: (STATUS_ORDER.get(r["status"], 9), r.get("kind", ""), r["rule"]))
    rows = []
    for r in results:
        where = []
        if r.get("epoch") is not None:
            where.append(f"epoch {r['epoch']}")
        if r.get("step") is not None:
            where.append(f"step {r['step']}")
        if r.get("time") is not None:
            where.append(f"{number(r['time']):.1f} s")
        rows.append({
            "rule": r["rule"], "kind": r.get("kind", ""), "status": r["status"], "message": r.get("message", ""),
            "measured": "; ".join(f"{k}={fmt_number(v)}" for k, v in (r.get("values") or {}).items() if v is not None),
            "where": ", ".join(where) or MISSING,
            "parameters": ", ".join(f"{k}={fmt_number(v)}" for k, v in (r.get("parameters") or {}).items()),
            "action": ", ".join(r.get("actions") or []) or MISSING,
            "recommendation": r.get("recommendation") or ""})
    fired = [r for r in rows if r["status"] == "IssuesFound"]
    errors = sum(1 for r in rows if r["status"] == "Error")
    return {"rows": rows, "fired": fired, "errors": errors, "none_found": len(rows) - len(fired) - errors}


def loss_curves(data: jobdata.JobData) -> list[str]:
    epochs = [r for r in data.epochs if "epoch" in r]
    figures = []
    if epochs:
        figures.append(png(plots.losses_per_epoch(epochs)))
    step_losses = None
    if data.steps and "loss" in data.steps and len(data.steps["loss"]):
        step_losses = (data.steps["step"], data.steps["loss"], "every step (profiler)")
    saved = data.tensors.select("losses", "train") if data.tensors is not None else []
    if step_losses is not None or saved:
        figures.append(png(plots.losses_per_step(step_losses, saved, epochs)))
    return figures


def _stats_row(name, values, unit):
    values = jobdata.finite(values)
    if not values.size:
        return None
    q = np.percentile(values, [100, 99, 95, 50, 0])
    return [name, unit] + [f"{v:.1f}" for v in q]


def system_section(data: jobdata.JobData) -> dict | None:
    system = data.system
    if not system or not len(system.get("timestamp", [])):
        return None
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
    return {"plot": png(plots.system(data)), "stats": rows}


def gpu_section(data: jobdata.JobData) -> str | None:
    gpus = sorted({int(k[3:].split("_")[0]) for k in data.system if k.startswith("gpu") and "_memory" in k})
    return png(plots.gpu(data, gpus)) if gpus else None


def steps_section(data: jobdata.JobData, results: list[dict]) -> dict | None:
    steps = data.steps
    if not steps or not len(steps.get("step_s", [])):
        return None
    durations = steps["step_s"]
    params = next((r.get("parameters") for r in results if r["rule"] == "StepOutlier"), None) or \
        config.parameters_for("StepOutlier")
    mean, sd = float(np.mean(durations)), float(np.std(durations))
    limit = mean + params["stddev"] * sd
    outliers = durations > limit
    stats = [_stats_row(name, steps[key], "s") for name, key in (("step", "step_s"), ("waiting for data", "data_s"),
                                                                  ("forward", "forward_s"), ("backward", "backward_s"),
                                                                  ("optimizer", "optimizer_s"))]
    listed = ", ".join(f"{int(s)} ({d:.3f} s)"
                       for s, d in zip(steps["step"][outliers][:20], durations[outliers][:20], strict=True))
    return {"plot": png(plots.step_durations(steps, outliers, mean, limit, params["stddev"])),
            "stats": [r for r in stats if r], "outliers": listed}


def data_wait_section(data: jobdata.JobData) -> dict | None:
    steps = data.steps
    if not steps or not len(steps.get("step_s", [])):
        return None
    totals = {p: float(np.nansum(steps[f"{p}_s"])) for p in plots.PHASES}
    wait = 100 * totals["data"] / (sum(totals.values()) or 1.0)
    return {"plot": png(plots.data_wait(steps, totals)), "wait": wait}


def tensors_section(data: jobdata.JobData) -> dict | None:
    """None without the hook; else the statistics' plot (if any), a row per collection and the path."""
    tensors = data.tensors
    if tensors is None:
        return None
    if not tensors.stats:
        return {"empty": tensors.error or "No tensors saved."}
    grads = tensors.select("gradients", "train")
    weights = tensors.select("weights", "train")
    relus = [s for s in tensors.select("relu_output", "train") if s.unit_active is not None]
    panels = [p for p in (("gradients", grads), ("weights", weights), ("relu", relus)) if p[1]]
    collections = {}
    for s in tensors.stats:
        entry = collections.setdefault(s.collection, [set(), set(), 0, 0])
        entry[0].add(s.name)
        entry[1].add((s.mode, s.step))
        entry[2] += s.nan
        entry[3] += s.inf
    rows = [(c, len(v[0]), len({st for m, st in v[1] if m == "train"}), len({st for m, st in v[1] if m == "eval"}),
             v[2], v[3]) for c, v in sorted(collections.items())]
    return {"empty": "", "plot": png(plots.tensors(panels)) if panels else None, "collections": rows,
            "path": str(tensors.path)}


def classes_section(data: jobdata.JobData) -> dict | None:
    """Training images and the latest validation's mispredictions per class (None when neither was recorded)."""
    classes = data.job.get("classes") or []
    counts = data.job.get("train_label_counts") or []
    latest = [p for p in data.predictions if p.get("mode") == "valid"]
    if not counts and not latest:
        return None
    labels = list(classes) or [str(i) for i in range(len(counts))]
    wrong, epoch = None, None
    if latest:
        record = latest[-1]
        matrix = np.asarray(record["confusion"], dtype=float)
        rows = matrix.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            wrong = np.where(rows > 0, 1 - np.diag(matrix) / rows, 0) * 100
        epoch = record["epoch"]
    table = [(label, counts[i] if i < len(counts) else MISSING,
              f"{wrong[i]:.1f}" if wrong is not None and i < len(wrong) else MISSING) for i, label in enumerate(labels)]
    return {"plot": png(plots.classes(labels, counts, wrong, epoch)), "table": table, "epoch": epoch}


def operators_section(layout: config.Layout) -> dict | None:
    rows = read_csv_rows(layout.trace_dir / "operators.csv")
    if not rows:
        return None
    operators_txt = layout.trace_dir / "operators.txt"
    header = operators_txt.read_text().splitlines()[0] if operators_txt.is_file() else ""
    shown = [(r["operator"], r["calls"], r["self_cpu_ms"], r["cpu_total_ms"], r["self_device_ms"]) for r in rows[:25]]
    return {"header": header, "rows": shown}


def files_section(layout: config.Layout) -> list[tuple[str, str]]:
    entries = []
    for path in (layout.job_file, layout.epochs_file, layout.predictions_file, layout.system_file, layout.steps_file,
                 layout.trace_dir / "torch_trace.json", layout.results_file, layout.history_file):
        if path.is_file():
            entries.append((str(path.relative_to(layout.data)), f"{path.stat().st_size / 1024:.1f} KiB"))
    if layout.tensors.is_dir():
        size = sum(f.stat().st_size for f in layout.tensors.rglob("*") if f.is_file())
        entries.append((str(layout.tensors), f"{size / 2**20:.1f} MiB (smdebug)"))
    return entries


def build_html(data: jobdata.JobData, results: list[dict], name: str) -> str:
    rules = rules_summary(results)
    return render.render(
        TEMPLATES, "debugger-report.html", title=f"Debugger report: {name}", heading=f"Training job report: {name}",
        subtitle=f"{len(results)} rules, {len(rules['fired'])} with issues.",
        summary=job_summary(data, name), rules=rules, losses=loss_curves(data), system=system_section(data),
        steps=steps_section(data, results), data_wait=data_wait_section(data), gpu=gpu_section(data),
        tensors=tensors_section(data), classes=classes_section(data), operators=operators_section(data.layout),
        files=files_section(data.layout), stats_headers=STATS_HEADERS)


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
    return render.write(Path(path or layout.report_file), build_html(data, results, name or job_name(layout)))

