"""The three reports on AWS, from recorded responses (botocore's Stubber checks every request and response
against the service models): a SageMaker tuning job (its trials' per-epoch values from their CloudWatch
logs, here the metric lines of the real tiny tuning run), the evaluation through InvokeEndpoint (answers
made by the endpoint's own output_fn from the model directory's probabilities) and the endpoint report from
CloudWatch GetMetricData and the endpoint's log. Nothing leaves the machine: fake credentials, every
endpoint on a closed local port, and the dry runs send nothing."""
from __future__ import annotations

import io
import json
import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY

import browser
from scripts import job_definition
from scripts.local import jobs
from scripts.reports import (
    endpoint_aws,
    endpoint_cli,
    endpoint_report,
    evaluation_cli,
    predict,
    tuning_aws,
    tuning_cli,
    tuning_report,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "aws"))
from aws_support import (  # noqa: E402  (tests/aws/aws_support.py)
    CLOSED_PORT_URL,
    ROLE,
    Stubs,
    make_aws,
    trial_summary,
    tuning_description,
    write_settings,
)
from scripts.aws import settings as settings_module  # noqa: E402

TUNING = "img-clf-20260102-030405"


@pytest.fixture(autouse=True)
def no_aws(monkeypatch, tmp_path):
    """Fake credentials, no AWS config, no metadata service, every endpoint on a closed local port."""
    for name in [n for n in os.environ if n.startswith("AWS_")] + ["SETTINGS", "ENDPOINT_NAME"]:
        monkeypatch.delenv(name, raising=False)
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_EC2_METADATA_DISABLED": "true",
                        "AWS_CONFIG_FILE": str(tmp_path / "none"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                        "AWS_ENDPOINT_URL": CLOSED_PORT_URL, "AWS_MAX_ATTEMPTS": "1"}.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def settings_path(tmp_path) -> Path:
    return write_settings(tmp_path / "settings.yaml")


@pytest.fixture
def stubbed(settings_path, monkeypatch):
    """An Aws with Stubbers, which the report commands use in place of their own."""
    aws = make_aws(settings_module.load(settings_path))
    stubs = Stubs(aws)
    for module in (tuning_cli, evaluation_cli, endpoint_cli):
        monkeypatch.setattr(module, "open_aws", lambda args, *required: aws)
    yield aws, stubs
    stubs.verify()


# --- tuning --------------------------------------------------------------------------------------------------

def tuning_state() -> dict:
    definition = job_definition.load()
    state = tuning_description(TUNING, best=None, static={"epochs": "2"})
    state["HyperParameterTuningJobConfig"].update({
        "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "valid_loss"},
        "TrainingJobEarlyStoppingType": "Auto",
        "ParameterRanges": {"ContinuousParameterRanges": [{"Name": "lr", "MinValue": "0.001", "MaxValue": "0.1",
                                                           "ScalingType": "Logarithmic"}],
                            "CategoricalParameterRanges": [{"Name": "batch_size", "Values": ["16", "32", "64"]}]}})
    state["TrainingJobDefinition"]["AlgorithmSpecification"].update(
        {"TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/byoc-classifier-training:abc1234",
         "MetricDefinitions": definition.metric_definitions})
    return state


def log_page(job: str, lines: list[str], token: str | None = None) -> dict:
    stamp = 1767323045000
    page = {"events": [{"logStreamName": f"{job}/algo-1-1767323045", "timestamp": stamp + i, "message": line,
                        "ingestionTime": stamp + i, "eventId": f"{i:056d}"} for i, line in enumerate(lines)],
            "searchedLogStreams": []}
    if token:
        page["nextToken"] = token
    return page


def test_sagemaker_tuning_job_report(tuning_job, stubbed, tmp_path):
    aws, stubs = stubbed
    record = json.loads((tuning_job / "tuning.json").read_text())
    lines = [line for t in record["trials"] for line in (jobs.JOBS_ROOT / t["job"] / jobs.LOG).read_text().splitlines()
             if line.startswith("[metrics]")]  # a real run's metric lines, as CloudWatch would hold them
    names = [f"{TUNING}-00{n}-{h}" for n, h in ((1, "a1b2c3d4"), (2, "0f0f0f0f"), (3, "deadbeef"), (4, "12345678"))]
    summaries = [trial_summary(names[0], 0.61, {"lr": "0.01", "batch_size": "32"}),
                 trial_summary(names[1], None, {"lr": "0.09", "batch_size": "16"}, status="Stopped"),
                 {**trial_summary(names[2], None, {"lr": "0.002", "batch_size": "64"}, status="Failed"),
                  "FailureReason": "AlgorithmError: CUDA out of memory"},
                 trial_summary(names[3], 0.7, {"lr": "0.004", "batch_size": "16"})]
    sm, logs = stubs("sagemaker"), stubs("logs")
    sm.add_response("describe_hyper_parameter_tuning_job", tuning_state(), {"HyperParameterTuningJobName": TUNING})
    sm.add_response("list_training_jobs_for_hyper_parameter_tuning_job", {"TrainingJobSummaries": summaries},
                    {"HyperParameterTuningJobName": TUNING, "SortBy": "CreationTime", "SortOrder": "Ascending",
                     "MaxResults": 100})
    request = {"logGroupName": "/aws/sagemaker/TrainingJobs", "filterPattern": '"[metrics]"'}
    epochs = [line for line in lines if " epoch=" in line]
    logs.add_response("filter_log_events", log_page(names[0], lines[:2], token="next"),
                      {**request, "logStreamNamePrefix": f"{names[0]}/algo-1-"})
    logs.add_response("filter_log_events", log_page(names[0], lines[2:3]),
                      {**request, "logStreamNamePrefix": f"{names[0]}/algo-1-", "nextToken": "next"})
    logs.add_response("filter_log_events", log_page(names[1], epochs[:1]),
                      {**request, "logStreamNamePrefix": f"{names[1]}/algo-1-"})
    logs.add_response("filter_log_events", log_page(names[2], []),
                      {**request, "logStreamNamePrefix": f"{names[2]}/algo-1-"})
    logs.add_client_error("filter_log_events", "AccessDeniedException", "not allowed",
                          expected_params={**request, "logStreamNamePrefix": f"{names[3]}/algo-1-"})
    run = tuning_aws.load(aws, TUNING)
    assert [t.number for t in run.trials] == [1, 2, 3, 4]
    assert [t.shown_status for t in run.trials] == ["Completed", "Stopped early", "Failed", "Completed"]
    assert run.best().trial.name == names[0]
    assert run.trials[0].curve == tuning_aws.per_epoch("\n".join(lines[:3]), tuning_aws.metric_regexes(
        tuning_state())["valid_loss"]) and len(run.trials[0].curve) >= 1
    assert list(run.trials[1].curve) == [1] and run.trials[2].curve == {} == run.trials[3].curve
    assert any(names[2] in n and "no metric lines" in n for n in run.notes)
    assert any(names[3] in n and "AccessDeniedException" in n for n in run.notes)
    assert [r.name for r in run.ranges] == ["lr", "batch_size"] and run.ranges[0].scaling == "Logarithmic"
    assert run.retrain[0] == f"make train TUNING={TUNING}"
    out = tmp_path / "tuning-report.html"
    text = tuning_report.write(run, out).read_text()
    assert "CUDA out of memory" in text and "stopped by the tuner&#39;s early stopping" in text
    assert f'href="https://us-east-1.console.aws.amazon.com/sagemaker/home?region=us-east-1#/jobs/{names[0]}"' in text
    browser.check_page(out, tmp_path, plots=4)


# --- evaluation through InvokeEndpoint -------------------------------------------------------------------------

def test_evaluation_through_a_sagemaker_endpoint(trained_job, image_set, stubbed, tmp_path):
    """InvokeEndpoint answered as the serving container answers (its output_fn, every class), from the
    model directory's own probabilities: the report's numbers are the model directory's."""
    import torch

    from classifier.serving.inference import Prediction, output_fn
    from scripts.reports.evaluation_data import images

    aws, stubs = stubbed
    found = images(str(image_set / "test"))
    local = predict.from_model_dir(trained_job / "model", found)
    runtime = stubs("sagemaker-runtime")
    for group in predict.batches(found.paths):
        body, _ = output_fn(Prediction(torch.from_numpy(local.probabilities[group]), local.classes),
                            "application/json", top_k=len(local.classes))
        data = body.encode()
        runtime.add_response("invoke_endpoint", {"Body": StreamingBody(io.BytesIO(data), len(data)),
                                                 "ContentType": "application/json"},
                             {"EndpointName": "img-clf", "Body": ANY, "ContentType": "application/json",
                              "Accept": "application/json", "CustomAttributes": predict.ALL_CLASSES})
    out = tmp_path / "evaluation-report.html"
    assert evaluation_cli.main(["--endpoint", "img-clf", "--data", str(image_set / "test"), "--out", str(out)]) == 0
    numbers = json.loads(out.with_name("evaluation.json").read_text())
    assert numbers["source"] == "SageMaker endpoint img-clf (us-east-1)" and numbers["images"] == 40
    expected = (local.predicted == local.labels).mean()
    assert numbers["accuracy"] == pytest.approx(expected, abs=1e-12)
    assert "Evaluation report: SageMaker endpoint img-clf on test" in out.read_text()
    browser.check_page(out, tmp_path, plots=4 + (expected < 1), height=5000)


# --- the endpoint report from CloudWatch ------------------------------------------------------------------------

NOW = datetime(2026, 1, 2, 3, 30, 20, tzinfo=timezone.utc)
# One line as the serving container writes it (a local endpoint's log), times moved into the window.
RECORDED = ('2026-01-02T03:{minute:02d}:10,512 [INFO ] W-model-1-stdout com.amazonaws.ml.mms.wlm.WorkerLifeCycle - '
            'INVOCATION {{"time": "2026-01-02T03:{minute:02d}:10.511+00:00", "request_id": "{id}", '
            '"content_type": "image/jpeg", "accept": "application/json", "bytes": 1528, "images": 1, "top_k": 3, '
            '"status": {status}, "ModelLatency": {model}, "OverheadLatency": 180, "pid": 32462}}')


def metric_results(queries: list[dict], start: datetime, period: int, points: int) -> dict:
    results = []
    for q in queries:
        metric, stat = q["MetricStat"]["Metric"]["MetricName"], q["MetricStat"]["Stat"]
        base = {"Invocations": 20.0, "Invocation4XXErrors": 1.0, "Invocation5XXErrors": 0.0}.get(metric)
        scale = {"p50": 12000.0, "p90": 15000.0, "p99": 30000.0}.get(stat, 1.0)
        values = [base if base is not None else scale * (1 + 0.01 * i) for i in range(points)]
        if metric == "Invocation5XXErrors" and points > 1:
            values[3] = 2.0
        results.append({"Id": q["Id"], "Label": q["Label"], "StatusCode": "Complete", "Values": values,
                        "Timestamps": [start + timedelta(seconds=period * i) for i in range(points)]})
    return {"MetricDataResults": results}


@pytest.mark.slow
def test_sagemaker_endpoint_report(stubbed, tmp_path):
    aws, stubs = stubbed
    start, end, period = endpoint_aws.window(30, NOW)
    assert (start, end, period) == (datetime(2026, 1, 2, 3, 1, tzinfo=timezone.utc),
                                    datetime(2026, 1, 2, 3, 31, tzinfo=timezone.utc), 60)
    cloudwatch, logs = stubs("cloudwatch"), stubs("logs")
    series = endpoint_aws.queries("img-clf", 60)
    cloudwatch.add_response("get_metric_data", metric_results(series, start, 60, 30),
                            {"MetricDataQueries": series, "StartTime": start, "EndTime": end,
                             "ScanBy": "TimestampAscending"})
    whole = endpoint_aws.queries("img-clf", 1800, "_all")
    cloudwatch.add_response("get_metric_data", metric_results(whole, start, 1800, 1),
                            {"MetricDataQueries": whole, "StartTime": start, "EndTime": end,
                             "ScanBy": "TimestampAscending"})
    lines = [RECORDED.format(minute=m, id=f"r-{m}", status=200 if m % 9 else 400, model=9000 + 400 * m)
             for m in range(2, 30)]
    logs.add_response("filter_log_events", log_page("img-clf", lines),
                      {"logGroupName": "/aws/sagemaker/Endpoints/img-clf", "filterPattern": '"INVOCATION"',
                       "startTime": int(start.timestamp() * 1000), "endTime": int(end.timestamp() * 1000)})
    traffic = endpoint_aws.load(aws, "img-clf", 30, now=NOW)
    assert traffic.total_requests == 600 and traffic.total_errors == {"4XX": 30.0, "5XX": 2.0}
    assert traffic.latency_ms["ModelLatency"][99][:2] == [30.0, 30.3]
    assert traffic.overall_ms["OverheadLatency"][50] == 12.0
    assert len(traffic.records) == 28 and traffic.notes == []
    out = tmp_path / "endpoint-report.html"
    text = endpoint_report.write(traffic, out).read_text()
    assert "<td>Errors by status</td><td>4XX: 30, 5XX: 2</td>" in text and "r-29" in text
    browser.check_page(out, tmp_path, plots=3)


# --- dry runs ---------------------------------------------------------------------------------------------------

def test_dry_runs_print_the_requests_and_send_nothing(settings_path, image_set, capsys):
    settings = ["--settings", str(settings_path), "--dry-run"]
    assert tuning_cli.main([TUNING, "--sagemaker", *settings]) == 0
    printed = capsys.readouterr().out
    for request in ("sagemaker.DescribeHyperParameterTuningJob", "sagemaker.ListTrainingJobsForHyperParameterTuningJob",
                    "logs.FilterLogEvents"):
        assert request in printed
    assert evaluation_cli.main(["--endpoint", "img-clf", "--data", str(image_set), *settings]) == 0
    printed = capsys.readouterr().out
    assert "sagemaker-runtime.InvokeEndpoint" in printed and '"CustomAttributes": "top_k=1000000"' in printed
    assert endpoint_cli.main(["--endpoint", "img-clf", "--minutes", "30", *settings]) == 0
    printed = capsys.readouterr().out
    assert printed.count("cloudwatch.GetMetricData") == 2 and "logs.FilterLogEvents" in printed
    assert '"Stat": "p99"' in printed and ROLE not in printed
