"""The endpoint report: one HTML page of an endpoint's traffic (endpoint_data.Traffic), local or SageMaker.

Summary (requests, errors by status, the window's latency percentiles), requests per minute and errors
over time, ModelLatency and OverheadLatency p50/p90/p99 over time, the latency distribution and the
slowest requests (where per-request records were read).
"""
from __future__ import annotations

import math
from pathlib import Path

from . import endpoint_plots as plots
from .endpoint_data import LATENCIES, PERCENTILES, Traffic, record_time, slowest
from .page import esc, fmt_seconds, html_page, note, png, section, table, utc_text, write_page

NAV = [("summary", "Summary"), ("traffic", "Requests and errors"), ("latency", "Latency"),
       ("slowest", "Slowest requests")]


def _ms(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.1f}"


def summary_section(traffic: Traffic) -> str:
    errors = traffic.total_errors
    span = (traffic.end - traffic.start).total_seconds()
    rows = [("Endpoint", esc(f"{traffic.name} ({traffic.backend})")), ("Read from", esc(traffic.source)),
            ("Window", esc(f"{utc_text(traffic.start)} to {utc_text(traffic.end)} ({fmt_seconds(span)})")),
            ("Requests", esc(f"{traffic.total_requests:.0f}")),
            ("Errors by status", esc(", ".join(f"{s}: {n:.0f}" for s, n in sorted(errors.items())) or "none"))]
    if traffic.records:
        images = sum(int(r.get("images") or 0) for r in traffic.records if int(r["status"]) == 200)
        where = "" if traffic.backend == "local" else f" (in the {len(traffic.records)} log lines read)"
        rows.append((f"Images classified{where}", esc(str(images))))
    latency = table(["latency (ms)", *[f"p{q}" for q in PERCENTILES]],
                    [[esc(m), *[_ms(traffic.overall_ms[m][q]) for q in PERCENTILES]] for m in LATENCIES])
    return section("summary", "Summary", table(None, rows) + "<h3>Latency over the whole window</h3>" + latency
                   + note("ModelLatency: the container's time for a request (decode, preprocess, forward); "
                          "OverheadLatency: the rest of the request's time around it (locally: the handler's own, "
                          "on SageMaker: SageMaker's). Successful requests only, in milliseconds.")
                   + "".join(note(text) for text in traffic.notes))


def traffic_section(traffic: Traffic) -> str:
    return section("traffic", "Requests and errors over time", png(plots.requests_and_errors(traffic),
                                                                   "requests and errors over time"))


def latency_section(traffic: Traffic) -> str:
    if not plots.any_latency(traffic):
        return section("latency", "Latency", note("No successful request in this window: no latency to show."))
    body = png(plots.latency_over_time(traffic), "latency percentiles over time")
    if traffic.records:
        body += png(plots.latency_histogram(traffic.records), "latency distribution")
    return section("latency", "ModelLatency and OverheadLatency: p50, p90, p99", body)


def slowest_section(traffic: Traffic) -> str:
    if not traffic.records:
        return section("slowest", "Slowest requests", note("No per-request records were read (see the notes above)."))
    rows = [[esc(utc_text(record_time(r))), f'<span class="small">{esc(r.get("request_id", ""))}</span>',
             esc(r["status"]), esc(r.get("content_type", "")), esc(r.get("images", "")), esc(r.get("bytes", "")),
             _ms(r.get("ModelLatency", 0) / 1000), _ms(r.get("OverheadLatency", 0) / 1000),
             _ms((r.get("ModelLatency", 0) + r.get("OverheadLatency", 0)) / 1000)] for r in slowest(traffic.records)]
    return section("slowest", "Slowest requests", table(
        ["time", "request id", "status", "content type", "images", "bytes", "model ms", "overhead ms", "total ms"],
        rows) + note("By ModelLatency + OverheadLatency, from the handler's INVOCATION log lines."))


def write(traffic: Traffic, path: Path) -> Path:
    subtitle = (f"{traffic.backend} endpoint, {traffic.total_requests:.0f} requests, "
                f"{sum(traffic.total_errors.values()):.0f} errors.")
    sections = [summary_section(traffic), traffic_section(traffic), latency_section(traffic), slowest_section(traffic)]
    return write_page(path, html_page(f"Endpoint report: {traffic.name}", subtitle, NAV, sections))
