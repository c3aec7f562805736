"""The monitor on AWS: PUBLISH=1's PutMetricData through botocore's Stubber (checked against CloudWatch's service
model) and moto; make deploy's monitor alarms beside its other alarms (dry run: the requests checked and printed),
refused without data capture; `make monitor-report ENDPOINT=... DRY_RUN=1`; and the whole path through moto: an
endpoint deployed with data capture, its capture files in S3 where SageMaker writes them, the model it serves
downloaded with its baseline, the report, the metrics."""
from __future__ import annotations

import io
import json
import re
import tarfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from aws_support import BUCKET, put_images, write_settings
from classifier.serving.capture import CaptureWriter
from scripts.aws import api_requests, deploy, settings as S
from scripts.monitor import analysis, capture_aws, capture_data, monitor_cli, publish

WHEN = datetime(2026, 1, 2, 4, 0, tzinfo=timezone.utc)
DIMENSIONS = [{"Name": "EndpointName", "Value": "img-clf"}, {"Name": "VariantName", "Value": "AllTraffic"}]


def requests_in(text: str) -> list[tuple[str, dict]]:
    found, decoder = [], json.JSONDecoder()
    for match in re.finditer(r"^([a-z0-9-]+\.[A-Z][A-Za-z0-9]+) (?=\{)", text, re.M):
        found.append((match.group(1), decoder.raw_decode(text, match.end())[0]))
    return found


def capture_of(folder: Path, image_set: Path, endpoint: str = "img-clf") -> Path:
    """The image set's test images as the endpoint would capture them, just now."""
    writer = CaptureWriter(folder, endpoint)
    answer = json.dumps({"predictions": [{"classes": [{"name": "x", "index": 0, "probability": 0.9}]}]})
    for offset, path in enumerate(sorted(p for p in (image_set / "test").rglob("*") if p.is_file())):
        writer.offer(path.read_bytes(), "image/jpeg", answer, "application/json", time.time() - 60 + offset / 10)
    writer.close()
    return folder


@pytest.fixture(scope="module")
def window(monitored_model, image_set, tmp_path_factory) -> analysis.Analysis:
    folder = capture_of(tmp_path_factory.mktemp("capture"), image_set)
    return analysis.analyse(capture_data.read(folder), monitored_model)


def test_publish_through_the_stubber(stubbed, window):
    aws, stubs = stubbed
    values = publish.metric_values(window)
    assert set(values) == set(api_requests.MONITOR_METRICS)  # a decided window: every metric
    assert values["DataDrift"] == float(window.drift) and values["CapturedImages"] == len(window.images)
    stubs("cloudwatch").add_response("put_metric_data", {}, {
        "Namespace": "byoc-classifier/monitor",
        "MetricData": [{"MetricName": name, "Dimensions": DIMENSIONS, "Timestamp": WHEN, "Value": float(value),
                        "Unit": api_requests.MONITOR_METRICS[name]} for name, value in values.items()]})
    publish.publish(aws, window, "img-clf", WHEN)


def test_monitor_alarms_beside_the_others(tmp_path, monkeypatch, capsys):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    topic = "arn:aws:sns:us-east-1:123456789012:drift"
    path = write_settings(tmp_path / "s.yaml", **{"endpoint.data_capture": True, "monitor.alarm": True,
                                                  "monitor.hours": 6, "monitor.alarm_runs": 3,
                                                  "monitor.low_confidence_alarm": 0.3, "monitor.alarm_topic": topic})
    assert deploy.main(["--settings", str(path), "--dry-run", "--model-data", "s3://my-bucket/m/model.tar.gz"]) == 0
    alarms = [request for name, request in requests_in(capsys.readouterr().out) if name == "cloudwatch.PutMetricAlarm"]
    assert [(a["AlarmName"], a["MetricName"], a["Statistic"], a["Threshold"]) for a in alarms] == [
        ("img-clf-data-drift", "DataDrift", "Maximum", 1.0), ("img-clf-low-confidence", "LowConfidenceShare",
                                                              "Average", 0.3)]
    for alarm in alarms:
        assert alarm["Namespace"] == "byoc-classifier/monitor" and alarm["Dimensions"] == DIMENSIONS
        assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (6 * 3600, 3, 3)
        assert alarm["AlarmActions"] == [topic] and alarm["TreatMissingData"] == "notBreaching"
    settings = S.load(write_settings(tmp_path / "off.yaml", **{"monitor.alarm": True}))
    with pytest.raises(S.SettingsError, match="monitor.alarm needs the endpoint's data capture"):
        api_requests.check_monitor(settings)
    with pytest.raises(S.SettingsError, match="exceed CloudWatch's 7 days"):
        S.load(write_settings(tmp_path / "long.yaml", **{"monitor.hours": 24, "monitor.alarm_runs": 8}))


def test_make_monitor_report_dry_run(settings_path, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(monitor_cli, "window", lambda hours, now=None: (WHEN.replace(hour=2, minute=30), WHEN))
    monkeypatch.setattr(capture_aws, "WORK_DIR", tmp_path / "work")
    assert monitor_cli.main(["--endpoint", "img-clf", "--settings", str(settings_path), "--dry-run",
                             "--publish"]) == 0
    printed = requests_in(capsys.readouterr().out)
    assert [name for name, _ in printed] == ["sagemaker.DescribeEndpoint", "s3.ListObjectsV2", "s3.ListObjectsV2",
                                             "s3.GetObject", "s3.GetObject", "cloudwatch.PutMetricData"]
    folders = [f"byoc-classifier/data-capture/img-clf/img-clf/AllTraffic/2026/01/02/{hour:02d}/" for hour in (2, 3)]
    assert [r["Prefix"] for n, r in printed if n == "s3.ListObjectsV2"] == folders
    # a file of each folder read as the real run reads it (make iam-policy grants it), nothing written
    assert [r["Key"] for n, r in printed if n == "s3.GetObject"] == [f"{folder}<file>.jsonl" for folder in folders]
    assert not (tmp_path / "work").exists()


def tar_gz(model_dir: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(model_dir.iterdir()):
            archive.add(path, arcname=path.name)
    return buffer.getvalue()


def test_the_monitor_of_a_sagemaker_endpoint_through_moto(moto, use, monitored_model, image_set, tmp_path,
                                                          monkeypatch, capsys):
    use(moto, deploy, monitor_cli)
    monkeypatch.setattr(capture_aws, "WORK_DIR", tmp_path / "work")
    put_images(moto, "byoc-classifier-serving")
    moto.settings.values["data_capture"] = True
    s3 = moto.client("s3")
    key = "byoc-classifier/output/img-clf-20260101-000000/output/model.tar.gz"
    s3.put_object(Bucket=BUCKET, Key=key, Body=tar_gz(monitored_model))
    assert deploy.main(["--model-data", f"s3://{BUCKET}/{key}"]) == 0, capsys.readouterr().err
    destination = moto.client("sagemaker").describe_endpoint(EndpointName="img-clf")["DataCaptureConfig"][
        "DestinationS3Uri"]
    assert destination == f"s3://{BUCKET}/byoc-classifier/data-capture/img-clf"
    local = capture_of(tmp_path / "written", image_set)  # what SageMaker would have written under its destination
    for path in local.rglob("*.jsonl"):
        s3.put_object(Bucket=BUCKET, Key=f"byoc-classifier/data-capture/img-clf/{path.relative_to(local).as_posix()}",
                      Body=path.read_bytes())
    out = tmp_path / "report" / "monitor-report.html"
    assert monitor_cli.main(["--endpoint", "img-clf", "--hours", "1", "--publish", "--out", str(out)]) == 0, \
        capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "Monitor report:" in printed and "Published 9 metrics to CloudWatch byoc-classifier/monitor" in printed
    summary = json.loads(out.with_name("monitor.json").read_text())
    images = len([p for p in (image_set / "test").rglob("*") if p.is_file()])
    assert summary["capture"]["source"] == f"{destination}/img-clf/AllTraffic/"
    assert summary["images"]["analysed"] == images and summary["decided"]
    assert summary["model"].startswith(str(tmp_path / "work" / "models"))  # the served model.tar.gz, unpacked
    metrics = moto.client("cloudwatch").list_metrics(Namespace="byoc-classifier/monitor")["Metrics"]
    assert {m["MetricName"] for m in metrics} == set(api_requests.MONITOR_METRICS)
    assert all(sorted(m["Dimensions"], key=lambda d: d["Name"]) == DIMENSIONS for m in metrics)
    # a second run reads the files it has (same size) without downloading them again
    calls = []
    original = moto.call
    monkeypatch.setattr(moto, "call", lambda *a, **k: calls.append(a[1]) or original(*a, **k))
    assert monitor_cli.main(["--endpoint", "img-clf", "--hours", "1", "--out", str(out)]) == 0
    assert "get_object" not in calls
