"""What the endpoint report draws, from a local endpoint's request log or from CloudWatch: requests, errors
by status and ModelLatency/OverheadLatency percentiles per time bucket, the whole window's percentiles,
and the per-request records where a log was read (the handler's INVOCATION lines, which
scripts/endpoint_stats.py parses)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from scripts.endpoint_stats import percentile, summarise

LATENCIES = ("ModelLatency", "OverheadLatency")
PERCENTILES = (50, 90, 99)
BUCKETS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)  # seconds
MOST_BUCKETS = 60


@dataclass
class Traffic:
    name: str  # the endpoint
    backend: str  # local | SageMaker
    source: str  # the log file, or CloudWatch's namespace and the window
    start: datetime
    end: datetime
    bucket_seconds: int
    times: list[datetime]  # each bucket's start
    requests: list[float]  # per bucket
    errors: dict[str, list[float]]  # status ("400", or CloudWatch's "4XX") -> per bucket
    latency_ms: dict[str, dict[int, list[float]]]  # metric -> percentile -> per bucket (nan: no request)
    overall_ms: dict[str, dict[int, float | None]]  # metric -> percentile over the whole window
    records: list[dict] = field(default_factory=list)  # per request, where a log was read
    notes: list[str] = field(default_factory=list)

    @property
    def total_requests(self) -> float:
        return sum(self.requests)

    @property
    def total_errors(self) -> dict[str, float]:
        return {status: sum(values) for status, values in self.errors.items() if sum(values)}


def record_time(record: dict) -> datetime:
    return datetime.fromisoformat(record["time"]).astimezone(timezone.utc)


def bucket_for(seconds: float) -> int:
    """The smallest bucket that keeps the window to MOST_BUCKETS of them."""
    return next((b for b in BUCKETS if seconds / b <= MOST_BUCKETS), BUCKETS[-1])


def from_records(records: list[dict], name: str, source: str) -> Traffic:
    """A local endpoint's traffic from its INVOCATION records (latency percentiles of successful requests,
    in ms, as `make endpoint-stats` computes them)."""
    records = sorted((r for r in records if r.get("time")), key=record_time)
    if not records:
        raise ValueError(f"no requests in {source}: send some first (`make invoke-local IMAGE=...`)")
    start, end = record_time(records[0]), record_time(records[-1])
    bucket = bucket_for((end - start).total_seconds())
    origin = datetime.fromtimestamp(math.floor(start.timestamp() / bucket) * bucket, timezone.utc)
    count = int((end - origin).total_seconds() // bucket) + 1
    times = [origin + timedelta(seconds=bucket * i) for i in range(count)]
    slots: list[list[dict]] = [[] for _ in times]
    for record in records:
        slots[int((record_time(record) - origin).total_seconds() // bucket)].append(record)
    statuses = sorted({int(r["status"]) for r in records if int(r["status"]) >= 400})
    summary = summarise(records)
    return Traffic(
        name=name, backend="local", source=source, start=start, end=end, bucket_seconds=bucket, times=times,
        requests=[float(len(slot)) for slot in slots],
        errors={str(s): [float(sum(int(r["status"]) == s for r in slot)) for slot in slots] for s in statuses},
        latency_ms={metric: {q: [_ms(percentile([r.get(metric, 0) for r in slot if int(r["status"]) == 200], q))
                                 for slot in slots] for q in PERCENTILES} for metric in LATENCIES},
        overall_ms={metric: {q: _ms(summary["latency_us"][metric][f"p{q}"]) for q in PERCENTILES}
                    for metric in LATENCIES},
        records=records)


def slowest(records: list[dict], count: int = 15) -> list[dict]:
    return sorted(records, key=lambda r: -(r.get("ModelLatency", 0) + r.get("OverheadLatency", 0)))[:count]


def _ms(microseconds) -> float:
    return math.nan if microseconds is None else microseconds / 1000
