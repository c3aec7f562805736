"""make endpoint-metrics: the endpoint's invocation metrics from CloudWatch, for the last hour.

    python -m scripts.aws.endpoint_metrics [--minutes 60] [--bucket-minutes 10] [--dry-run]

Invocations, Invocation4XXErrors and Invocation5XXErrors are summed; ModelLatency (the container's time)
and OverheadLatency (SageMaker's) are averaged and shown in milliseconds (CloudWatch has microseconds).
"""
from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone

from scripts.orchestration import table

from . import api_requests
from .client import Aws
from .common import base_parser, open_aws, run

LATENCIES = ("ModelLatency", "OverheadLatency")


def fetch(aws: Aws, endpoint: str, minutes: int,
          now: datetime | None = None) -> dict[str, list[tuple[datetime, float]]]:
    """metric -> [(minute, value)] in time order."""
    end = (now or datetime.now(timezone.utc)).replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(minutes=minutes + 1)
    series: dict[str, list] = {name: [] for name, _ in api_requests.ENDPOINT_METRICS}
    request = api_requests.endpoint_metric_data(endpoint, start, end)
    labels = {q["Id"]: q["Label"] for q in request["MetricDataQueries"]}
    for page in aws.paginate("cloudwatch", "get_metric_data", dry={"MetricDataResults": []}, **request):
        for result in page.get("MetricDataResults", []):
            name = labels.get(result["Id"], result.get("Label"))
            series[name] += list(zip(result.get("Timestamps", []), result.get("Values", []), strict=True))
    for points in series.values():
        points.sort(key=lambda p: p[0])
    return series


def summary(series: dict[str, list], bucket_minutes: int = 10) -> str:
    def total(name):
        return sum(v for _, v in series[name])

    def mean_ms(points):
        return f"{sum(v for _, v in points) / len(points) / 1000:.1f}" if points else "-"

    lines = [table([
        ["invocations", f"{total('Invocations'):.0f}"],
        ["4xx errors", f"{total('Invocation4XXErrors'):.0f}"],
        ["5xx errors", f"{total('Invocation5XXErrors'):.0f}"],
        ["model latency, ms (mean of minutes)", mean_ms(series["ModelLatency"])],
        ["overhead latency, ms (mean of minutes)", mean_ms(series["OverheadLatency"])],
    ], ["metric", "value"])]
    stamps = sorted({t for points in series.values() for t, _ in points})
    if stamps:
        rows = {}
        for name, points in series.items():
            for stamp, value in points:
                slot = stamp.replace(minute=stamp.minute - stamp.minute % bucket_minutes, second=0, microsecond=0)
                rows.setdefault(slot, {}).setdefault(name, []).append(value)
        body = []
        for slot in sorted(rows):
            values = rows[slot]
            body.append([slot.strftime("%H:%M"), *[f"{sum(values.get(n, [])):.0f}" for n in
                                                    ("Invocations", "Invocation4XXErrors", "Invocation5XXErrors")],
                         *[mean_ms([(None, v) for v in values.get(n, [])]) for n in LATENCIES]])
        lines.append("")
        lines.append(table(body, [f"{bucket_minutes} min from (UTC)", "invocations", "4xx", "5xx", "model ms",
                                  "overhead ms"]))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--bucket-minutes", type=int, default=10)
    args = parser.parse_args(argv)

    def go() -> int:
        aws = open_aws(args)
        endpoint = aws.settings.endpoint_name
        series = fetch(aws, endpoint, args.minutes)
        if aws.dry_run:
            return 0
        print(f"endpoint {endpoint}, last {args.minutes} minutes ({aws.settings.region}):")
        if not any(series.values()):
            print("no data points: no invocations in that time (CloudWatch shows them 1-2 minutes after the calls)")
            return 0
        print(summary(series, args.bucket_minutes))
        return 0

    return run(go)


if __name__ == "__main__":
    sys.exit(main())
