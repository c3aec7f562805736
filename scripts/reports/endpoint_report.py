"""The endpoint report: one HTML page of an endpoint's traffic (endpoint_data.Traffic), local or SageMaker.

Summary (requests, errors by status, the window's latency percentiles), requests per minute and errors
over time, ModelLatency and OverheadLatency p50/p90/p99 over time, the latency distribution and the
slowest requests (where per-request records were read).
"""
from __future__ import annotations

from pathlib import Path

from classifier.pages.figures import png

from . import endpoint_plots as plots
from .endpoint_data import LATENCIES, PERCENTILES, Traffic, record_time, slowest
from .page import write_page


def summary(traffic: Traffic) -> dict:
    images, where = None, ""
    if traffic.records:
        images = sum(int(r.get("images") or 0) for r in traffic.records if int(r["status"]) == 200)
        where = "" if traffic.backend == "local" else f" (in the {len(traffic.records)} log lines read)"
    return {"span": (traffic.end - traffic.start).total_seconds(), "errors": sorted(traffic.total_errors.items()),
            "images": images, "images_where": where,
            "latency": [(metric, [traffic.overall_ms[metric][q] for q in PERCENTILES]) for metric in LATENCIES]}


def figures(traffic: Traffic) -> dict:
    """Each figure as a PNG data URI; the latency ones None when no request succeeded."""
    latency = plots.any_latency(traffic)
    return {"traffic": png(plots.requests_and_errors(traffic), crop=True),
            "latency": png(plots.latency_over_time(traffic), crop=True) if latency else None,
            "histogram": png(plots.latency_histogram(traffic.records), crop=True)
            if latency and traffic.records else None}


def slowest_requests(traffic: Traffic) -> list[dict]:
    """The slowest requests by ModelLatency + OverheadLatency, their latencies in milliseconds."""
    return [{"time": record_time(r), "request_id": r.get("request_id", ""), "status": r["status"],
             "content_type": r.get("content_type", ""), "images": r.get("images", ""), "bytes": r.get("bytes", ""),
             "model_ms": r.get("ModelLatency", 0) / 1000, "overhead_ms": r.get("OverheadLatency", 0) / 1000,
             "total_ms": (r.get("ModelLatency", 0) + r.get("OverheadLatency", 0)) / 1000}
            for r in slowest(traffic.records)]


def write(traffic: Traffic, path: Path) -> Path:
    return write_page(path, "endpoint-report.html", title=f"Endpoint report: {traffic.name}", traffic=traffic,
                      summary=summary(traffic), figures=figures(traffic), slowest=slowest_requests(traffic),
                      percentiles=PERCENTILES)
