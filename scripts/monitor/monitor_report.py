"""The monitor report: one self-contained HTML page (the reports' frame and stylesheet, plots as embedded PNGs)
and, beside it, monitor.json: the overall `drift` verdict, each check's test, p-value and verdict, the figures
behind them, and the metrics `PUBLISH=1` sends to CloudWatch."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from classifier.artifact import atomic_write_json
from classifier.monitoring.images import CONTINUOUS, FLAGS
from classifier.pages import render
from classifier.pages.figures import png
from scripts.reports.endpoint_data import LATENCIES, PERCENTILES, Traffic

from . import monitor_plots as plots, publish
from .analysis import Analysis

TEMPLATES = Path(__file__).resolve().parent / "templates"
JSON_NAME = "monitor.json"
PROBLEMS_SHOWN = 100
UNUSUAL_LISTED = 18
STATISTIC_NAMES = {"width": "width (px)", "height": "height (px)", "aspect": "aspect ratio", "brightness": "brightness",
                   "contrast": "contrast", "greyscale": "greyscale share", "exif_rotated": "EXIF-rotated share"}


def overall(a: Analysis) -> bool | None:
    """drift, no drift, or None: no check could decide (too few images)."""
    return a.drift if a.decided else None


def verdict_text(a: Analysis) -> str:
    state = overall(a)
    if state is None:
        return f"No verdict: {len(a.images)} images in the window, too few to test."
    fired = [check.title for check in a.checks if check.drift]
    return f"Drift: {', '.join(fired)}." if state else "No drift found."


def problems(a: Analysis) -> list[tuple[str, str]]:
    """Everything in the window the monitor could not use, with where it is."""
    found = [(p.where, p.what) for p in a.capture.problems]
    found += [(p.where, f"no image: {p.what}") for p in a.health.not_images]
    found += [(p.where, f"not decodable: {p.what}") for p in a.health.undecodable]
    return found


def unusual(a: Analysis, count: int = UNUSUAL_LISTED) -> list[dict]:
    order = np.argsort(a.unusual, kind="stable")[:count]
    return [{"p_value": float(a.unusual[i]), "time": a.images[i].time, "where": a.images[i].where,
             "predicted": a.classes[int(a.predicted[i])], "top1": float(a.top1[i]), "served": a.images[i].served}
            for i in order]


def latency(traffic: Traffic | None) -> list[list[str]]:
    if traffic is None:
        return []
    return [[metric] + [_ms(traffic.overall_ms[metric][q]) for q in PERCENTILES] for metric in LATENCIES]


def summary_json(a: Analysis, traffic: Traffic | None = None) -> dict:
    state = overall(a)
    found = problems(a)
    return {
        "drift": bool(state), "decided": state is not None, "verdict": verdict_text(a), "alpha": a.alpha,
        "window": {"start": _iso(a.capture.start), "end": _iso(a.capture.end)},
        "capture": {"source": a.capture.source, "endpoint": a.capture.endpoint, "variant": a.capture.variant,
                    "files": a.capture.files, "requests": len(a.capture.requests),
                    "outside_window": a.capture.outside, "unreadable_lines": len(a.capture.problems)},
        "images": {"analysed": len(a.images), "not_decodable": len(a.health.undecodable),
                   "requests_without_images": len(a.health.not_images), "left_out_by_sampling": a.health.sampled or 0},
        "model": a.model,
        "baseline": {"source": a.baseline.source, "images": a.baseline.images, "created": a.baseline.created},
        "checks": [check.as_json() for check in a.checks],
        "health": {"answered": a.health.answered, "errors": a.health.errors, "error_share": a.health.error_share,
                   "unreadable_answers": a.health.unreadable_answers, "served_agreement": a.health.agreement,
                   "latency_ms": None if traffic is None else {
                       m: {f"p{q}": traffic.overall_ms[m][q] for q in PERCENTILES} for m in LATENCIES}},
        "metrics": publish.metric_values(a),
        "unusual": [{**row, "time": _iso(row["time"])} for row in unusual(a)],
        "problems": [{"where": where, "what": what} for where, what in found],
        "seconds": round(a.seconds, 2),
    }


def figures(a: Analysis) -> dict:
    return {"timeline": png(plots.timeline(a)) if a.timeline else None,
            "classes": png(plots.class_mix(a)), "confidence": png(plots.confidence(a)),
            "embeddings": png(plots.embeddings(a)), "statistics": png(plots.image_statistics(a)),
            "unusual": png(plots.unusual_images(a), crop=True) if len(a.images) else None}


def class_rows(a: Analysis) -> list[dict]:
    details = next(c for c in a.checks if c.name == "class_mix").details
    rows = [{"name": name, "baseline": base, "captured": seen, "psi": term}
            for name, base, seen, term in zip(a.classes, details["baseline_share"], details["share"],
                                              details["psi_terms"], strict=True)]
    return sorted(rows, key=lambda row: -abs(row["captured"] - row["baseline"]))


def statistic_rows(a: Analysis) -> list[dict]:
    rows = next(c for c in a.checks if c.name == "image_statistics").details["statistics"]
    found = []
    for name in CONTINUOUS + FLAGS:
        row = rows[name]
        if name in FLAGS:
            shown = (f"{row['baseline_share']:.1%}", f"{row['share']:.1%}")
        else:
            shown = tuple("–" if v is None else f"{v:.4g}" for v in (row["baseline_median"], row["median"]))
        found.append({"name": STATISTIC_NAMES[name], "test": row["test"], "baseline": shown[0], "captured": shown[1],
                      "p_value": row["p_value"]})
    return found


def confidence_rows(a: Analysis) -> list[list[str]]:
    check = next(c for c in a.checks if c.name == "confidence").details
    low = next(c for c in a.checks if c.name == "low_confidence").details
    return [["median top-1 probability", _fixed(check["baseline_median"]), _fixed(check["median"])],
            ["mean top-1 probability", _fixed(check["baseline_mean"]), _fixed(check["mean"])],
            [f"share under {a.threshold:g}", f"{low['baseline_share']:.1%}", f"{low['share']:.1%}"]]


def health_rows(a: Analysis) -> list[list[str]]:
    h = a.health
    errors = ", ".join(f"{code}: {count}" for code, count in h.errors.items()) or "none"
    rows = [["requests in the window", str(h.requests)],
            ["answers captured", str(h.answered)],
            ["error answers", f"{errors}" + (f" ({h.error_share:.1%} of the answers)" if h.error_share else "")],
            ["requests without an image the endpoint could read", str(len(h.not_images))],
            ["images the decoder refused", str(len(h.undecodable))]]
    if h.unreadable_answers:
        rows.append(["answers that are neither predictions nor errors", str(h.unreadable_answers)])
    if h.agreement is not None:
        rows.append(["endpoint's top class = the monitor's (same model?)", f"{h.agreement:.1%}"])
    return rows


def notes(a: Analysis) -> list[str]:
    found = []
    if not a.capture.requests:
        found.append("No captured request in this window: send requests to the endpoint with data capture on "
                     "(make serve-local CAPTURE=..., or make deploy with endpoint.data_capture), or widen HOURS=.")
    if a.health.agreement is not None and a.health.agreement < 0.9:
        found.append(f"The endpoint's answers agree with this model's on only {a.health.agreement:.0%} of the "
                     "images: is MODEL= the model the endpoint serves?")
    return found


def write(a: Analysis, path: Path, title: str, traffic: Traffic | None = None,
          traffic_note: str = "") -> tuple[Path, Path]:
    """The page at `path` and monitor.json beside it; returns both paths."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    summary = summary_json(a, traffic)
    json_path = path.with_name(JSON_NAME)
    atomic_write_json(json_path, summary)
    found = problems(a)
    page = render.render(
        TEMPLATES, "monitor-report.html", title=f"Monitor report: {title}", a=a, checks=a.checks,
        summary={"overall": overall(a), "verdict_text": verdict_text(a)}, json_name=json_path.name,
        notes=notes(a), figures=figures(a), class_rows=class_rows(a), statistic_rows=statistic_rows(a),
        confidence_rows=confidence_rows(a), unusual_rows=unusual(a), health_rows=health_rows(a),
        latency_rows=latency(traffic), traffic_source=traffic.source if traffic else "",
        latency_note=traffic_note or "A capture record carries no latency: give the endpoint's log (LOG=, local) "
                                     "or ENDPOINT= (CloudWatch) for it.",
        problem_rows=found[:PROBLEMS_SHOWN], more_problems=max(0, len(found) - PROBLEMS_SHOWN))
    render.write(path, page)
    return path, json_path


def _iso(moment) -> str | None:
    return moment.isoformat() if moment is not None else None


def _fixed(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def _ms(value: float | None) -> str:
    return "–" if value is None or value != value else f"{value:.1f}"
