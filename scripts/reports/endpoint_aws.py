"""A SageMaker endpoint's traffic for the endpoint report: CloudWatch GetMetricData (namespace AWS/SageMaker,
per EndpointName and VariantName, as `make endpoint-metrics`) for Invocations, Invocation4XXErrors,
Invocation5XXErrors and ModelLatency/OverheadLatency p50/p90/p99, per period and over the whole window;
and the per-request INVOCATION lines the container writes to the endpoint's log group
(/aws/sagemaker/Endpoints/<name>) for the statuses and the slowest requests."""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import botocore.exceptions

from scripts.aws.api_requests import VARIANT
from scripts.aws.client import Aws, error_code
from scripts.endpoint_stats import TAG, parse_records

from .endpoint_data import LATENCIES, PERCENTILES, Traffic

COUNTS = {"Invocations": "invocations", "Invocation4XXErrors": "errors_4xx", "Invocation5XXErrors": "errors_5xx"}
LOG_PAGES = 20  # at most this many pages of log events (10,000 events each at most)


def queries(endpoint: str, period: int, suffix: str = "") -> list[dict]:
    """MetricDataQueries: the counts summed and the latencies' percentiles, per `period` seconds."""
    def query(query_id: str, metric: str, stat: str) -> dict:
        return {"Id": query_id + suffix, "Label": f"{metric} {stat}", "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": "AWS/SageMaker", "MetricName": metric,
                       "Dimensions": [{"Name": "EndpointName", "Value": endpoint},
                                      {"Name": "VariantName", "Value": VARIANT}]},
            "Period": period, "Stat": stat}}

    found = [query(query_id, metric, "Sum") for metric, query_id in COUNTS.items()]
    found += [query(f"{metric.lower()}_p{q}", metric, f"p{q}") for metric in LATENCIES for q in PERCENTILES]
    return found


def window(minutes: int, now: datetime | None = None) -> tuple[datetime, datetime, int]:
    """The last `minutes` whole minutes, and a period that keeps it to a few hundred points."""
    end = (now or datetime.now(timezone.utc)).replace(second=0, microsecond=0) + timedelta(minutes=1)
    period = 60 if minutes <= 360 else 300 if minutes <= 1440 else 3600
    return end - timedelta(minutes=minutes), end, period


def metric_data(aws: Aws, endpoint: str, start: datetime, end: datetime, period: int,
                suffix: str = "") -> dict[str, dict[datetime, float]]:
    """Query id -> {timestamp: value}; every page of the answer."""
    request = {"MetricDataQueries": queries(endpoint, period, suffix), "StartTime": start, "EndTime": end,
               "ScanBy": "TimestampAscending"}
    found: dict[str, dict[datetime, float]] = {q["Id"]: {} for q in request["MetricDataQueries"]}
    for page in aws.paginate("cloudwatch", "get_metric_data", dry={"MetricDataResults": []}, **request):
        for result in page.get("MetricDataResults", []):
            found.setdefault(result["Id"], {}).update(zip(result.get("Timestamps", []), result.get("Values", []),
                                                         strict=True))
    return found


def log_records(aws: Aws, endpoint: str, start: datetime, end: datetime) -> tuple[list[dict], str]:
    """The container's INVOCATION records in the window, and a note when they could not all be read."""
    lines, pages = [], 0
    try:
        for page in aws.paginate("logs", "filter_log_events", input_token="nextToken",
                                 logGroupName=f"/aws/sagemaker/Endpoints/{endpoint}", filterPattern=f'"{TAG.strip()}"',
                                 startTime=int(start.timestamp() * 1000), endTime=int(end.timestamp() * 1000)):
            lines += [event.get("message", "") for event in page.get("events", [])]
            pages += 1
            if pages >= LOG_PAGES and page.get("nextToken"):
                return parse_records(lines), f"the endpoint's log was read up to {len(lines)} lines (the first)"
    except botocore.exceptions.ClientError as error:
        code = error_code(error)
        reason = "it has no log group yet" if code == "ResourceNotFoundException" else f"{code} reading its log"
        return [], f"no per-request records: {reason}"
    return parse_records(lines), ""


def load(aws: Aws, endpoint: str, minutes: int, now: datetime | None = None) -> Traffic:
    start, end, period = window(minutes, now)
    series = metric_data(aws, endpoint, start, end, period)
    whole = metric_data(aws, endpoint, start, end, int((end - start).total_seconds()), suffix="_all")
    records, problem = log_records(aws, endpoint, start, end)
    times = [start + timedelta(seconds=period * i) for i in range(int((end - start).total_seconds() // period))]

    def values(query_id: str) -> list[float]:
        found = [math.nan] * len(times)
        for stamp, value in series.get(query_id, {}).items():
            index = int((stamp - start).total_seconds() // period)
            if 0 <= index < len(found):
                found[index] = value
        return found

    def counts(query_id: str) -> list[float]:
        return [0.0 if math.isnan(v) else v for v in values(query_id)]

    overall = {m: {q: next(iter(whole.get(f"{m.lower()}_p{q}_all", {}).values()), math.nan) / 1000
                   for q in PERCENTILES} for m in LATENCIES}
    notes = [problem] if problem else []
    if not any(counts("invocations")):
        notes.append("CloudWatch has no invocations in this window (it shows them 1-2 minutes after the calls).")
    return Traffic(
        name=endpoint, backend="SageMaker",
        source=f"CloudWatch AWS/SageMaker, {aws.settings.region}, {period // 60}-minute periods", start=start,
        end=end, bucket_seconds=period, times=times, requests=counts("invocations"),
        errors={"4XX": counts("errors_4xx"), "5XX": counts("errors_5xx")},
        latency_ms={m: {q: [v / 1000 for v in values(f"{m.lower()}_p{q}")] for q in PERCENTILES} for m in LATENCIES},
        overall_ms=overall, records=records, notes=notes)
