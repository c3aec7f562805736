"""`make monitor-report ... PUBLISH=1`: a window's figures as CloudWatch custom metrics on the endpoint's
dimensions (EndpointName, VariantName) in the settings' monitor.namespace, stamped with the window's end, one
PutMetricData request (api_requests.monitor_metric_data builds it). The alarms `make deploy` makes with
monitor.alarm watch DataDrift and LowConfidenceShare (api_requests.monitor_alarms). A window with too few
images to decide publishes its counts only: no drift figure, which the alarms read as no data, not as
"no drift"."""
from __future__ import annotations

from datetime import datetime

from scripts.aws import api_requests
from scripts.aws.client import Aws

from .analysis import Analysis


def metric_values(a: Analysis) -> dict[str, float]:
    """The metrics of a window, by their CloudWatch names (api_requests.MONITOR_METRICS)."""
    values = {"CapturedImages": float(len(a.images))}
    if a.health.error_share is not None:
        values["ErrorShare"] = a.health.error_share
    if not a.decided:
        return values
    checks = {check.name: check for check in a.checks}
    values.update({
        api_requests.DRIFT_METRIC: float(a.drift),
        "EmbeddingDriftPValue": checks["embeddings"].p_value,
        "ClassMixPValue": checks["class_mix"].p_value,
        "ClassMixPSI": checks["class_mix"].details["psi"],
        "ConfidencePValue": checks["confidence"].p_value,
        api_requests.LOW_CONFIDENCE_METRIC: checks["low_confidence"].details["share"],
        "ImageStatisticsPValue": checks["image_statistics"].p_value,
    })
    return values


def publish(aws: Aws, a: Analysis, endpoint: str, when: datetime, variant: str | None = None) -> dict:
    """Send the window's metrics; returns the request."""
    request = api_requests.monitor_metric_data(aws.settings, endpoint, metric_values(a), when,
                                               variant or api_requests.VARIANT)
    aws.call("cloudwatch", "put_metric_data", **request)
    return request
