"""Summarise an endpoint log: requests, errors by status code, latency percentiles.

    python scripts/endpoint_stats.py [LOG ...]        # files (MMS's mms_log.log, a saved stdout, a CloudWatch
                                                      # export); none or "-": standard input
    options: --json (print the summary as JSON)

Reads the handler's structured lines, `... INVOCATION {"time": ..., "status": ..., "ModelLatency": ...,
"OverheadLatency": ...}` (classifier.serving.handler_service writes one per request; latencies in
microseconds, named as CloudWatch names them), wherever they are in a line, and ignores everything else.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from pathlib import Path

TAG = "INVOCATION "  # classifier.serving.handler_service.REQUEST_LOG_TAG


def parse_records(lines) -> list[dict]:
    """The records in order; a request logged twice (MMS's log4j config writes mms_log.log lines twice)
    counts once."""
    records, seen = [], set()
    for line in lines:
        _, tag, payload = line.partition(TAG)
        if not tag or not payload.lstrip().startswith("{"):
            continue
        try:
            record = json.loads(payload)
        except ValueError:
            continue
        if not isinstance(record, dict) or "status" not in record:
            continue
        request_id = record.get("request_id")
        if request_id is not None:
            if request_id in seen:
                continue
            seen.add(request_id)
        records.append(record)
    return records


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of the values; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarise(records: list[dict]) -> dict:
    statuses = Counter(int(record["status"]) for record in records)
    ok = [r for r in records if int(r["status"]) == 200]
    latency = {}
    for name, values in (
        ("ModelLatency", [r.get("ModelLatency", 0) for r in ok]),
        ("OverheadLatency", [r.get("OverheadLatency", 0) for r in ok]),
        ("TotalLatency", [r.get("ModelLatency", 0) + r.get("OverheadLatency", 0) for r in ok]),
    ):
        latency[name] = {f"p{q}": percentile(values, q) for q in (50, 90, 99)}
    return {
        "requests": len(records),
        "ok": len(ok),
        "errors": sum(count for status, count in statuses.items() if status >= 400),
        "errors_by_status": {str(status): count for status, count in sorted(statuses.items()) if status >= 400},
        "images": sum(int(r.get("images") or 0) for r in ok),
        "first": records[0].get("time") if records else None,
        "last": records[-1].get("time") if records else None,
        "latency_us": latency,  # successful requests only
    }


def format_summary(summary: dict) -> str:
    def ms(value):
        return "-" if value is None else f"{value / 1000:.1f}"

    lines = [f"requests {summary['requests']}  ok {summary['ok']}  errors {summary['errors']}  "
             f"images {summary['images']}"]
    if summary["first"]:
        lines.append(f"from {summary['first']} to {summary['last']}")
    if summary["errors_by_status"]:
        lines.append("errors by status: " + ", ".join(f"{k}: {v}" for k, v in summary["errors_by_status"].items()))
    lines.append(f"{'latency (ms, 200s)':<20}{'p50':>8}{'p90':>8}{'p99':>8}")
    for name, values in summary["latency_us"].items():
        lines.append(f"{name:<20}{ms(values['p50']):>8}{ms(values['p90']):>8}{ms(values['p99']):>8}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Summarise the endpoint's per-request log lines.")
    parser.add_argument("logs", nargs="*", help="log files; none or '-' reads standard input")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    records = []
    for name in args.logs or ["-"]:
        if name == "-":
            records += parse_records(sys.stdin)
            continue
        path = Path(name)
        if not path.is_file():
            print(f"endpoint_stats: no such file: {path}", file=sys.stderr)
            return 2
        with open(path, errors="replace") as handle:
            records += parse_records(handle)
    summary = summarise(records)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
