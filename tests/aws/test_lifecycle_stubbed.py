"""After training (issue 25): the model registry, deploying a package, rollback, guarded updates, serverless and
async endpoints, the cost printed first, and the logs. Each target's requests through botocore's Stubber, checked
against the real service models, run through the scripts' main() as `make` runs them; bad input stops with one
line that names it before any request that would change anything."""
from __future__ import annotations

import io
import json
import tarfile

import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY

from aws_support import (
    BUCKET,
    FAKE_ARN,
    NOW,
    OLD_MODEL_DATA,
    REGION,
    ROLE,
    SERVING_IMAGE,
    Stubs,
    arn,
    endpoint_config_description,
    endpoint_description,
    make_aws,
    record_tags,
    stub_alarm_states,
    stub_endpoint_tagged,
    stub_image,
    stub_live_config,
    stub_rollback_alarms,
    training_description,
    write_settings,
)
from classifier.backbones import get_architecture
from scripts import endpoint_cost, orchestration
from scripts.aws import deploy, invoke_endpoint, logs, registry, rollback, settings as S

JOB = "img-clf-20260101-000000"
MODEL_DATA = f"s3://{BUCKET}/byoc-classifier/output/{JOB}/output/model.tar.gz"
STAMP = "img-clf-20260102-030405"
GROUP = "byoc-classifier"
CLASSES = ["cat", "dog", "fox"]
CONFUSION = [[8, 2, 0], [1, 9, 0], [0, 0, 10]]  # 27 of 30 right
PACKAGE_ARN = f"arn:aws:sagemaker:{REGION}:123456789012:model-package/{GROUP}/3"
WRITES = ("Create", "Update", "Put", "Delete", "Add", "Register", "Invoke")


def tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def body(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


MODEL_CONFIG = {"format_version": 1, "architecture": "resnet50", "classes": CLASSES,
                "preprocessing": get_architecture("resnet50").preprocessing(224).to_dict(),
                "hyperparameters": {"lr": "0.001", "epochs": "4", "debugger_collections": "losses,weights"},
                "metrics": {"valid_loss": 0.4, "test_accuracy": 0.9}}
TEST_REPORT = {"classes": CLASSES, "accuracy": 0.9, "confusion_matrix": CONFUSION}


@pytest.fixture
def aws_for(tmp_path, use, monkeypatch):
    """An Aws on settings with `changes`, stubbed, used by the given modules' main()."""
    monkeypatch.setattr(orchestration, "timestamp", lambda now=None: "20260102-030405")
    made = []

    def make(*modules, **changes):
        aws = make_aws(S.load(write_settings(tmp_path / f"s{len(made)}.yaml", **changes)))
        use(aws, *modules)
        stubs = Stubs(aws)
        made.append(stubs)
        return aws, stubs
    yield make
    for stubs in made:
        stubs.verify()


def writes(aws) -> list[str]:
    return [api for _, api, _ in aws.sent if api.startswith(WRITES)]


def package_description(status: str = "Approved", version: int = 3, model_data: str = MODEL_DATA) -> dict:
    return {"ModelPackageName": GROUP, "ModelPackageGroupName": GROUP, "ModelPackageVersion": version,
            "ModelPackageArn": PACKAGE_ARN.replace("/3", f"/{version}"), "CreationTime": NOW,
            "ModelPackageStatus": "Completed", "ModelApprovalStatus": status,
            "ModelPackageStatusDetails": {"ValidationStatuses": []},
            "InferenceSpecification": {"Containers": [{"Image": SERVING_IMAGE, "ModelDataUrl": model_data}],
                                       "SupportedContentTypes": ["image/jpeg"],
                                       "SupportedResponseMIMETypes": ["application/json"]},
            "CustomerMetadataProperties": {"test_accuracy": "0.9000", "source": f"training job {JOB}"}}


def package_summary(version: int, status: str) -> dict:
    return {"ModelPackageGroupName": GROUP, "ModelPackageVersion": version,
            "ModelPackageArn": PACKAGE_ARN.replace("/3", f"/{version}"), "CreationTime": NOW,
            "ModelPackageStatus": "Completed", "ModelApprovalStatus": status}


LIST = {"ModelPackageGroupName": GROUP, "SortBy": "CreationTime", "SortOrder": "Descending", "MaxResults": 100}


# --- registry ---------------------------------------------------------------------------------------------------

def stub_artifacts(stubs, config: dict = MODEL_CONFIG, with_report: bool = True):
    s3 = stubs("s3")
    s3.add_response("get_object", {"Body": body(tar_gz({"model.pth": b"w" * 100,
                                                         "model_config.json": json.dumps(config).encode()}))},
                    {"Bucket": BUCKET, "Key": f"byoc-classifier/output/{JOB}/output/model.tar.gz"})
    if not with_report:
        return
    s3.add_response("get_object", {"Body": body(tar_gz({"data/test_report.json": json.dumps(TEST_REPORT).encode(),
                                                         "data/metrics.json": b"{}"}))},
                    {"Bucket": BUCKET, "Key": f"byoc-classifier/output/{JOB}/output/output.tar.gz"})


@pytest.mark.parametrize("change, words", [
    ({"image_size": 5000}, "preprocessing.image_size is 5000: training makes models of 32 to 1024 px"),
    ({"image_size": 4, "resize_size": 4}, "preprocessing.image_size is 4"),
])
def test_register_refuses_a_model_config_serving_would_refuse_before_anything_is_made(aws_for, capsys, change,
                                                                                       words):
    """Issue 24 item 7: what the artifact says is checked as serving checks it, before the package exists."""
    aws, stubs = aws_for(registry)
    stubs("sagemaker").add_response("describe_training_job", training_description(JOB), {"TrainingJobName": JOB})
    config = {**MODEL_CONFIG, "preprocessing": {**MODEL_CONFIG["preprocessing"], **change}}
    stub_artifacts(stubs, config, with_report=False)
    assert registry.main(["register", "--job", JOB]) == 1
    assert words in capsys.readouterr().err
    assert [api for _, api, _ in aws.sent] == ["DescribeTrainingJob", "GetObject"]  # nothing made


@pytest.mark.parametrize("approve", [False, True])
def test_register_makes_the_group_and_a_version_with_the_reports_as_model_metrics(aws_for, tmp_path, capsys,
                                                                                    approve):
    aws, stubs = aws_for(registry)
    evaluation = tmp_path / "evaluation.json"
    evaluation.write_text(json.dumps({"class_names": CLASSES, "images": 12, "accuracy": 0.75,
                                      "confusion_matrix": [[3, 1, 0], [1, 3, 0], [0, 1, 3]]}))
    sm = stubs("sagemaker")
    sm.add_response("describe_training_job", training_description(JOB), {"TrainingJobName": JOB})
    stub_artifacts(stubs)
    stub_image(stubs, "byoc-classifier-serving")
    sm.add_client_error("describe_model_package_group", "ValidationException", "Model Package Group does not exist.",
                        expected_params={"ModelPackageGroupName": GROUP})
    sm.add_response("create_model_package_group", {"ModelPackageGroupArn": FAKE_ARN}, {
        "ModelPackageGroupName": GROUP, "ModelPackageGroupDescription": ANY,
        "Tags": [{"Key": "project", "Value": "byoc-classifier"}]})
    metrics_key = f"byoc-classifier/registry/{GROUP}/{JOB}-20260102-030405/model-quality.json"
    stubs("s3").add_response("put_object", {}, {"Bucket": BUCKET, "Key": metrics_key, "Body": ANY,
                                                "ContentType": "application/json"})
    sm.add_response("create_model_package", {"ModelPackageArn": PACKAGE_ARN}, {
        "ModelPackageGroupName": GROUP, "ModelPackageDescription": ANY,
        "InferenceSpecification": {"Containers": [{"Image": SERVING_IMAGE, "ModelDataUrl": MODEL_DATA}],
                                   "SupportedContentTypes": ["image/jpeg", "image/png", "application/json"],
                                   "SupportedResponseMIMETypes": ["application/json"]},
        "ModelApprovalStatus": "Approved" if approve else "PendingManualApproval",
        "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json", "ContentDigest": ANY,
                                                         "S3Uri": f"s3://{BUCKET}/{metrics_key}"}}},
        "CustomerMetadataProperties": ANY, "Tags": [{"Key": "project", "Value": "byoc-classifier"}]})
    argv = ["register", "--job", JOB, "--evaluation", str(evaluation)] + (["--approve"] if approve else [])
    assert registry.main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert f"registered {GROUP}/3" in out and ("make deploy PACKAGE=latest-approved" if approve
                                                else "make approve VERSION=3") in out
    sent = dict((api, params) for _, api, params in aws.sent)
    document = json.loads(sent["PutObject"]["Body"])
    # the evaluation report (make evaluate) is the headline; the test report's figures are kept beside it
    assert document["multiclass_classification_metrics"]["accuracy"]["value"] == pytest.approx(9 / 12)
    assert document["test_report"]["accuracy"]["value"] == pytest.approx(27 / 30)
    assert document["test_report"]["confusion_matrix"]["cat"] == {"cat": 8, "dog": 2, "fox": 0}
    assert document["classes"] == CLASSES and document["hyperparameters"]["lr"] == "0.001"
    import hashlib
    digest = sent["CreateModelPackage"]["ModelMetrics"]["ModelQuality"]["Statistics"]["ContentDigest"]
    assert digest == "sha256:" + hashlib.sha256(sent["PutObject"]["Body"]).hexdigest()
    properties = sent["CreateModelPackage"]["CustomerMetadataProperties"]
    assert properties["classes"] == "3" and properties["test_accuracy"] == "0.9000"
    assert properties["evaluation_accuracy"] == "0.7500" and properties["hp:lr"] == "0.001"
    assert "hp:debugger_collections" not in properties  # a comma list: only in the document
    assert "resnet50, 3 classes (cat, dog, fox)" in sent["CreateModelPackage"]["ModelPackageDescription"]


def test_register_refuses_an_evaluation_that_is_not_a_report_before_any_request(aws_for, tmp_path, capsys):
    aws, _ = aws_for(registry)
    (tmp_path / "e.json").write_text("{}")
    assert registry.main(["register", "--job", JOB, "--evaluation", str(tmp_path / "e.json")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "lacks class_names, confusion_matrix" in err
    assert aws.sent == []


def test_approve_updates_the_version(aws_for, capsys):
    aws, stubs = aws_for(registry)
    sm = stubs("sagemaker")
    sm.add_response("list_model_packages", {"ModelPackageSummaryList": [package_summary(3, "PendingManualApproval"),
                                                                        package_summary(2, "Approved")]}, LIST)
    sm.add_response("describe_model_package", package_description("PendingManualApproval"),
                    {"ModelPackageName": PACKAGE_ARN})
    sm.add_response("update_model_package", {"ModelPackageArn": PACKAGE_ARN}, {
        "ModelPackageArn": PACKAGE_ARN, "ModelApprovalStatus": "Approved", "ApprovalDescription": "checked"})
    assert registry.main(["approve", "--version", "3", "--note", "checked"]) == 0
    assert f"{GROUP}/3: PendingManualApproval -> Approved" in capsys.readouterr().out


def test_an_unknown_version_is_one_line_naming_it_before_any_change(aws_for, capsys):
    aws, stubs = aws_for(registry)
    stubs("sagemaker").add_response("list_model_packages", {"ModelPackageSummaryList": [
        package_summary(2, "Approved"), package_summary(1, "Rejected")]}, LIST)
    assert registry.main(["approve", "--version", "7"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: model package group {GROUP} has no version 7 (versions: 2, 1)"
    assert writes(aws) == []


def test_packages_lists_status_metrics_and_the_deployed_one(aws_for, capsys):
    aws, stubs = aws_for(registry)
    sm = stubs("sagemaker")
    sm.add_response("list_model_packages", {"ModelPackageSummaryList": [package_summary(3, "Approved"),
                                                                        package_summary(2, "Rejected")]},
                    {**LIST, "MaxResults": 20})
    sm.add_response("describe_endpoint", endpoint_description("img-clf", "InService", STAMP),
                    {"EndpointName": "img-clf"})
    sm.add_response("list_tags", {"Tags": record_tags(MODEL_DATA, package=PACKAGE_ARN)},
                    {"ResourceArn": arn("endpoint", "img-clf")})
    sm.add_response("describe_model_package", package_description("Approved"), {"ModelPackageName": PACKAGE_ARN})
    sm.add_response("describe_model_package", package_description("Rejected", 2),
                    {"ModelPackageName": PACKAGE_ARN.replace("/3", "/2")})
    assert registry.main(["packages"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split()[:2] == ["version", "status"]
    assert rows[2].split()[:3] == ["3", "Approved", "0.9000"] and rows[2].endswith("<- img-clf")
    assert rows[3].split()[:2] == ["2", "Rejected"] and not rows[3].endswith("img-clf")


# --- deploying a package ----------------------------------------------------------------------------------------

def test_deploy_latest_approved_package_records_it_on_config_and_endpoint(aws_for, capsys):
    aws, stubs = aws_for(deploy)
    sm = stubs("sagemaker")
    sm.add_response("list_model_packages", {"ModelPackageSummaryList": [package_summary(3, "Approved")]},
                    {**LIST, "ModelApprovalStatus": "Approved", "MaxResults": 1})
    sm.add_response("describe_model_package", package_description(), {"ModelPackageName": PACKAGE_ARN})
    sm.add_client_error("describe_endpoint", "ValidationException", 'Could not find endpoint "img-clf".')
    sm.add_response("create_model", {"ModelArn": FAKE_ARN}, {
        "ModelName": STAMP, "PrimaryContainer": {"ModelPackageName": PACKAGE_ARN}, "ExecutionRoleArn": ROLE,
        "Tags": [{"Key": "project", "Value": "byoc-classifier"}]})
    served = record_tags(MODEL_DATA, package=PACKAGE_ARN)
    sm.add_response("create_endpoint_config", {"EndpointConfigArn": FAKE_ARN}, {
        "EndpointConfigName": STAMP, "ProductionVariants": ANY, "Tags": served})
    sm.add_response("create_endpoint", {"EndpointArn": FAKE_ARN}, {"EndpointName": "img-clf",
                                                                   "EndpointConfigName": STAMP, "Tags": served})
    sm.add_response("describe_endpoint", endpoint_description("img-clf", "InService", STAMP), None)
    assert deploy.main(["--package", "latest-approved"]) == 0
    out = capsys.readouterr().out
    assert "# cost: realtime, 1 x ml.m5.2xlarge: 730 instance-hours a month" in out
    assert f"serving model package {GROUP}/3 (Approved)" in out


def test_an_unapproved_package_needs_force(aws_for, capsys):
    aws, stubs = aws_for(deploy)
    sm = stubs("sagemaker")
    sm.add_response("list_model_packages", {"ModelPackageSummaryList": [package_summary(3, "PendingManualApproval")]},
                    LIST)
    sm.add_response("describe_model_package", package_description("PendingManualApproval"),
                    {"ModelPackageName": PACKAGE_ARN})
    assert deploy.main(["--package", "3"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"error: model package {GROUP}/3 is PendingManualApproval, not Approved: `make approve VERSION=3` "
                   f"first, or FORCE=1 to deploy it anyway")
    assert writes(aws) == []


# --- guarded updates ---------------------------------------------------------------------------------------------

def updating(stubs, old: str, new: str, phases: list[tuple[str, float]]):
    """DescribeEndpoint while the new fleet goes through `phases` (status, traffic weight)."""
    for status, weight in phases:
        state = endpoint_description("img-clf", "Updating", old)
        state["PendingDeploymentSummary"] = {"EndpointConfigName": new, "ProductionVariants": [{
            "VariantName": "AllTraffic", "CurrentInstanceCount": 2, "DesiredInstanceCount": 2,
            "CurrentWeight": weight, "VariantStatus": [{"Status": status, "StartTime": NOW,
                                                        "StatusMessage": f"{status.lower()} the new fleet"}]}]}
        stubs("sagemaker").add_response("describe_endpoint", state, {"EndpointName": "img-clf"})


def start_update(stubs, old: str, live_tags: list[dict]):
    sm = stubs("sagemaker")
    sm.add_response("describe_endpoint", endpoint_description("img-clf", "InService", old), {"EndpointName": "img-clf"})
    stub_live_config(stubs, old, live_tags)
    sm.add_response("create_model", {"ModelArn": FAKE_ARN}, None)
    sm.add_response("create_endpoint_config", {"EndpointConfigArn": FAKE_ARN}, None)
    stub_rollback_alarms(stubs)
    stubs("application-autoscaling").add_response("describe_scalable_targets", {"ScalableTargets": []}, None)


CANARY = {"deployment.strategy": "canary", "endpoint.instance_count": 2, "deployment.canary_percent": 25,
          "deployment.wait_seconds": 600, "deployment.alarm_model_latency_ms": 800}


def test_a_canary_update_makes_its_alarms_and_shows_each_phase(aws_for, capsys):
    aws, stubs = aws_for(deploy, **CANARY)
    old = "img-clf-20251231-235959"
    stub_image(stubs, "byoc-classifier-serving")
    start_update(stubs, old, record_tags())
    stubs("sagemaker").add_response("update_endpoint", {"EndpointArn": FAKE_ARN}, {
        "EndpointName": "img-clf", "EndpointConfigName": STAMP, "RetainAllVariantProperties": False,
        "DeploymentConfig": {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": "CANARY", "WaitIntervalInSeconds": 600,
                                                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25}},
                "TerminationWaitInSeconds": 300, "MaximumExecutionTimeoutInSeconds": 3600},
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "img-clf-5xx-errors"},
                                                     {"AlarmName": "img-clf-model-latency"}]}}})
    updating(stubs, old, STAMP, [("Creating", 0.0), ("Baking", 0.25), ("ActivatingTraffic", 1.0)])
    stubs("sagemaker").add_response("describe_endpoint", endpoint_description("img-clf", "InService", STAMP), None)
    stub_endpoint_tagged(stubs, MODEL_DATA)
    stubs("sagemaker").add_response("describe_endpoint_config", endpoint_config_description(old, [old]), None)
    stubs("sagemaker").add_response("delete_endpoint_config", {}, {"EndpointConfigName": old})
    stubs("sagemaker").add_response("delete_model", {}, {"ModelName": old})
    assert deploy.main(["--model-data", MODEL_DATA]) == 0
    err = capsys.readouterr().err
    assert "new fleet Creating (creating the new fleet), 2/2 instances, traffic weight 0" in err
    assert "new fleet Baking (baking the new fleet), 2/2 instances, traffic weight 0.25" in err
    alarms = [params for _, api, params in aws.sent if api == "PutMetricAlarm"]
    latency = next(a for a in alarms if a["MetricName"] == "ModelLatency")
    assert latency["Threshold"] == 800_000.0 and latency["Statistic"] == "Average"  # microseconds
    errors = next(a for a in alarms if a["MetricName"] == "Invocation5XXErrors")
    assert (errors["Threshold"], errors["Statistic"], errors["EvaluationPeriods"]) == (1.0, "Sum", 2)
    config = next(params for _, api, params in aws.sent if api == "CreateEndpointConfig")
    assert {t["Key"]: t["Value"] for t in config["Tags"]}["previous:model-data"] == OLD_MODEL_DATA


def test_an_alarm_rollback_is_reported_with_the_alarms_name_and_reason(aws_for, capsys):
    aws, stubs = aws_for(deploy, **CANARY)
    old = "img-clf-20251231-235959"
    stub_image(stubs, "byoc-classifier-serving")
    start_update(stubs, old, record_tags())
    stubs("sagemaker").add_response("update_endpoint", {"EndpointArn": FAKE_ARN}, None)
    updating(stubs, old, STAMP, [("Baking", 0.25)])
    stubs("sagemaker").add_response("describe_endpoint", endpoint_description(
        "img-clf", "InService", old, reason="Deployment was rolled back because alarm img-clf-5xx-errors was "
                                            "triggered."), None)
    reason = ("Threshold Crossed: 2 out of the last 2 datapoints [4.0 (06/12/26 10:01:00), 3.0 (06/12/26 10:00:00)] "
              "were greater than or equal to the threshold (1.0)")
    stub_alarm_states(stubs, fired={"img-clf-5xx-errors": reason})
    assert deploy.main(["--model-data", MODEL_DATA]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"error: the update of img-clf to {STAMP} failed and was rolled back")
    assert f"alarm img-clf-5xx-errors: ALARM: {reason}" in err and f"it still serves {old}" in err
    assert "img-clf-model-latency" not in err.split("rolled back because")[-1].split(";", 1)[-1]
    assert "AddTags" not in writes(aws) and "DeleteEndpointConfig" not in writes(aws)


def test_a_canary_on_one_instance_is_refused_before_any_request(aws_for, capsys):
    aws, _ = aws_for(deploy, **{**CANARY, "endpoint.instance_count": 1})
    assert deploy.main(["--model-data", MODEL_DATA]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: deployment canary needs 2 or more instances") and "\n" not in err
    assert aws.sent == []


# --- rollback ---------------------------------------------------------------------------------------------------

def test_rollback_after_the_old_config_was_retired_rebuilds_it_from_the_record(aws_for, capsys):
    aws, stubs = aws_for(rollback)
    live, earlier = STAMP.replace("030405", "010000"), f"s3://{BUCKET}/byoc-classifier/output/j-0/output/model.tar.gz"
    earlier_image = SERVING_IMAGE.replace(":abc1234", ":0ld0001")
    sm = stubs("sagemaker")
    tags = record_tags(MODEL_DATA, previous=(earlier, earlier_image, ""))
    for _ in range(2):  # what to go back to; then the update reads the endpoint and what it replaces again
        sm.add_response("describe_endpoint", endpoint_description("img-clf", "InService", live), None)
        stub_live_config(stubs, live, tags)  # the earlier config itself is long gone: only the record is read
    sm.add_response("create_model", {"ModelArn": FAKE_ARN}, {
        "ModelName": STAMP, "PrimaryContainer": {"Image": earlier_image, "ModelDataUrl": earlier,
                                                 "Mode": "SingleModel"}, "ExecutionRoleArn": ROLE, "Tags": ANY})
    sm.add_response("create_endpoint_config", {"EndpointConfigArn": FAKE_ARN}, {
        "EndpointConfigName": STAMP, "ProductionVariants": ANY,
        "Tags": record_tags(earlier, earlier_image, previous=(MODEL_DATA, SERVING_IMAGE, ""))})
    stub_rollback_alarms(stubs)
    stubs("application-autoscaling").add_response("describe_scalable_targets", {"ScalableTargets": []}, None)
    sm.add_response("update_endpoint", {"EndpointArn": FAKE_ARN}, {
        "EndpointName": "img-clf", "EndpointConfigName": STAMP, "RetainAllVariantProperties": False,
        "DeploymentConfig": ANY})
    sm.add_response("describe_endpoint", endpoint_description("img-clf", "InService", STAMP), None)
    stub_endpoint_tagged(stubs, earlier, earlier_image)
    sm.add_response("describe_endpoint_config", endpoint_config_description(live, [live]), None)
    sm.add_response("delete_endpoint_config", {}, {"EndpointConfigName": live})
    sm.add_response("delete_model", {}, {"ModelName": live})
    assert rollback.main([]) == 0
    assert f"endpoint img-clf serves {earlier} again, InService" in capsys.readouterr().out


def test_a_rollback_with_nothing_to_go_back_to_is_one_line_before_any_change(aws_for, capsys):
    aws, stubs = aws_for(rollback)
    stubs("sagemaker").add_response("describe_endpoint", endpoint_description("img-clf", "InService", STAMP),
                                    {"EndpointName": "img-clf"})
    stub_live_config(stubs, STAMP, record_tags(MODEL_DATA))  # the first deploy: no previous:* tags
    assert rollback.main([]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: endpoint img-clf has nothing to go back to: its config {STAMP} records no earlier "
                          f"model") and "\n" not in err
    assert writes(aws) == []


def test_rollback_to_a_package_that_was_rejected_since_needs_force(aws_for, capsys):
    aws, stubs = aws_for(rollback)
    sm = stubs("sagemaker")
    sm.add_response("describe_endpoint", endpoint_description("img-clf", "InService", STAMP), None)
    stub_live_config(stubs, STAMP, record_tags(MODEL_DATA, previous=(OLD_MODEL_DATA, SERVING_IMAGE, PACKAGE_ARN)))
    sm.add_response("describe_model_package", package_description("Rejected"), {"ModelPackageName": PACKAGE_ARN})
    assert rollback.main([]) == 1
    assert "now Rejected: FORCE=1 rolls back to it anyway" in capsys.readouterr().err
    assert writes(aws) == []


# --- endpoint types ---------------------------------------------------------------------------------------------

SERVERLESS = {"endpoint.type": "serverless", "serverless.memory_mb": 2048, "serverless.max_concurrency": 8,
              "serverless.price_per_gb_second": 0.00002}


def test_a_serverless_endpoint_has_memory_and_concurrency_and_a_per_request_cost(aws_for, capsys):
    aws, stubs = aws_for(deploy, **SERVERLESS)
    stub_image(stubs, "byoc-classifier-serving")
    stubs("s3").add_response("head_object", {"ContentLength": 95 * 2**20},
                             {"Bucket": BUCKET, "Key": f"byoc-classifier/output/{JOB}/output/model.tar.gz"})
    sm = stubs("sagemaker")
    sm.add_client_error("describe_endpoint", "ValidationException", 'Could not find endpoint "img-clf".')
    sm.add_response("create_model", {"ModelArn": FAKE_ARN}, None)
    sm.add_response("create_endpoint_config", {"EndpointConfigArn": FAKE_ARN}, {
        "EndpointConfigName": STAMP, "ProductionVariants": [{
            "VariantName": "AllTraffic", "ModelName": STAMP,
            "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 8}}], "Tags": ANY})
    sm.add_response("create_endpoint", {"EndpointArn": FAKE_ARN}, None)
    sm.add_response("describe_endpoint", endpoint_description("img-clf", "InService", STAMP), None)
    assert deploy.main(["--model-data", MODEL_DATA, "--latency-ms", "200"]) == 0
    out = capsys.readouterr().out
    # 1,000 x 0.2 s x 2 GB = 400 GB-s at $0.00002
    assert "# cost: serverless, 2048 MB: nothing while idle; per 1,000 requests 400 GB-s = $0.008" in out
    assert "serverless, 2048 MB, up to 8 at once" in out
    assert not [s for s, _, _ in aws.sent if s == "application-autoscaling"]


@pytest.mark.parametrize("changes, words", [
    ({"endpoint.data_capture": True}, "a serverless endpoint cannot capture data: set DATA_CAPTURE=false"),
    ({"endpoint.instance_type": "ml.g4dn.xlarge"}, "a serverless endpoint runs on CPUs only: ENDPOINT_INSTANCE_TYPE="
                                                   "ml.g4dn.xlarge asks for a GPU"),
    ({"endpoint.autoscaling": True}, "a serverless endpoint scales by itself"),
])
def test_what_serverless_cannot_do_is_refused_before_any_request(aws_for, capsys, changes, words):
    aws, _ = aws_for(deploy, **SERVERLESS, **changes)
    assert deploy.main(["--model-data", MODEL_DATA]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {words}") and "\n" not in err
    assert aws.sent == []


def test_a_model_too_big_for_serverless_memory_is_refused_before_anything_is_made(aws_for, capsys):
    aws, stubs = aws_for(deploy, **{**SERVERLESS, "serverless.memory_mb": 1024})
    stub_image(stubs, "byoc-classifier-serving")
    stubs("s3").add_response("head_object", {"ContentLength": 700 * 2**20}, None)
    assert deploy.main(["--model-data", MODEL_DATA]) == 1
    assert "does not fit a serverless endpoint of SERVERLESS_MEMORY_MB=1024" in capsys.readouterr().err
    assert writes(aws) == []


def test_an_async_endpoint_writes_to_s3_and_scales_from_zero(aws_for, capsys):
    topic = "arn:aws:sns:us-east-1:123456789012:answers"
    aws, stubs = aws_for(deploy, **{"endpoint.type": "async", "async.success_topic": topic,
                                    "endpoint.max_instances": 3, "endpoint.prices": {"ml.m5.2xlarge": 0.5}})
    stub_image(stubs, "byoc-classifier-serving")
    sm = stubs("sagemaker")
    sm.add_client_error("describe_endpoint", "ValidationException", 'Could not find endpoint "img-clf".')
    sm.add_response("create_model", {"ModelArn": FAKE_ARN}, None)
    base = f"s3://{BUCKET}/byoc-classifier/async/img-clf"
    sm.add_response("create_endpoint_config", {"EndpointConfigArn": FAKE_ARN}, {
        "EndpointConfigName": STAMP, "ProductionVariants": ANY, "Tags": ANY,
        "AsyncInferenceConfig": {"OutputConfig": {"S3OutputPath": f"{base}/output", "S3FailurePath": f"{base}/failure",
                                                  "NotificationConfig": {"SuccessTopic": topic}},
                                 "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 4}}})
    sm.add_response("create_endpoint", {"EndpointArn": FAKE_ARN}, None)
    sm.add_response("describe_endpoint", endpoint_description("img-clf", "InService", STAMP), None)
    target = {"ServiceNamespace": "sagemaker", "ResourceId": "endpoint/img-clf/variant/AllTraffic",
              "ScalableDimension": "sagemaker:variant:DesiredInstanceCount"}
    scaling = stubs("application-autoscaling")
    scaling.add_response("register_scalable_target", {}, {**target, "MinCapacity": 0, "MaxCapacity": 3})
    scaling.add_response("put_scaling_policy", {"PolicyARN": FAKE_ARN, "Alarms": []}, {
        **target, "PolicyName": "img-clf-backlog", "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": ANY})
    wake = f"arn:aws:autoscaling:{REGION}:123456789012:scalingPolicy:wake"
    scaling.add_response("put_scaling_policy", {"PolicyARN": wake, "Alarms": []}, {
        **target, "PolicyName": "img-clf-wake-from-zero", "PolicyType": "StepScaling",
        "StepScalingPolicyConfiguration": ANY})
    stubs("cloudwatch").add_response("put_metric_alarm", {}, {
        "AlarmName": "img-clf-backlog-without-capacity", "AlarmDescription": ANY,
        "MetricName": "HasBacklogWithoutCapacity", "Namespace": "AWS/SageMaker",
        "Dimensions": [{"Name": "EndpointName", "Value": "img-clf"}], "Statistic": "Average", "Period": 60,
        "EvaluationPeriods": 2, "DatapointsToAlarm": 2, "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "missing",
        "AlarmActions": [wake], "Tags": ANY})
    assert deploy.main(["--model-data", MODEL_DATA, "--latency-ms", "360"]) == 0
    out = capsys.readouterr().out
    assert "# cost: async, 0 to 3 x ml.m5.2xlarge: 0 to 2,190 instance-hours a month = $0.00 to $1,095.00" in out
    # 1,000 x 0.36 s = 360 instance-seconds = 0.1 h at $0.5; 600 s idle before scale-in = $0.0833
    assert "per 1,000 requests 360 instance-seconds = $0.05, plus 600 s of an idle instance after each burst = " \
           "$0.0833" in out


def test_async_invoke_puts_the_request_in_s3_and_prints_the_answer(aws_for, tmp_path, capsys, monkeypatch):
    from PIL import Image

    aws, stubs = aws_for(invoke_endpoint, **{"endpoint.type": "async"})
    picture = tmp_path / "dog.jpg"
    Image.new("RGB", (8, 8)).save(picture)
    monkeypatch.setattr(invoke_endpoint.uuid, "uuid4", lambda: type("U", (), {"hex": "req1"})())
    stubs("sagemaker").add_response("describe_endpoint", endpoint_description("img-clf", "InService", STAMP),
                                    {"EndpointName": "img-clf"})
    config = endpoint_config_description(STAMP, [STAMP])
    config["AsyncInferenceConfig"] = {"OutputConfig": {"S3OutputPath": "s3://b/out"}}
    stubs("sagemaker").add_response("describe_endpoint_config", config, {"EndpointConfigName": STAMP})
    key = "byoc-classifier/async/img-clf/input/req1.jpg"
    stubs("s3").add_response("put_object", {}, {"Bucket": BUCKET, "Key": key, "Body": picture.read_bytes(),
                                                "ContentType": "image/jpeg"})
    stubs("sagemaker-runtime").add_response("invoke_endpoint_async", {
        "InferenceId": "inf-1", "OutputLocation": f"s3://{BUCKET}/out/inf-1.out",
        "FailureLocation": f"s3://{BUCKET}/failure/inf-1-error.out"}, {
        "EndpointName": "img-clf", "InputLocation": f"s3://{BUCKET}/{key}", "ContentType": "image/jpeg",
        "Accept": "application/json", "InvocationTimeoutSeconds": 900, "CustomAttributes": "top_k=1"})
    answer = {"predictions": [{"classes": [{"name": "dog", "index": 1, "probability": 0.93}]}]}
    stubs("s3").add_client_error("get_object", "NoSuchKey", "not yet", http_status_code=404,
                                 expected_params={"Bucket": BUCKET, "Key": "out/inf-1.out"})
    stubs("s3").add_client_error("get_object", "NoSuchKey", "not yet", http_status_code=404,
                                 expected_params={"Bucket": BUCKET, "Key": "failure/inf-1-error.out"})
    monkeypatch.setattr(invoke_endpoint.time, "sleep", lambda seconds: None)
    stubs("s3").add_response("get_object", {"Body": body(json.dumps(answer).encode())},
                             {"Bucket": BUCKET, "Key": "out/inf-1.out"})
    stubs("s3").add_response("delete_object", {}, {"Bucket": BUCKET, "Key": key})
    assert invoke_endpoint.main([str(picture), "--top-k", "1"]) == 0
    out = capsys.readouterr()
    assert "1. dog" in out.out and "0.9300" in out.out
    assert "request inf-1 queued on img-clf, waiting for its answer" in out.err


# --- logs -------------------------------------------------------------------------------------------------------

def test_endpoint_logs_merge_every_instance_by_time(aws_for, capsys, monkeypatch):
    aws, stubs = aws_for(logs)
    monkeypatch.setattr(logs.time, "time", lambda: 1_767_330_000.0)
    group = "/aws/sagemaker/Endpoints/img-clf"
    base = 1_767_330_000_000 - 10 * 60_000

    def event(n, stream, message):
        return {"logStreamName": f"AllTraffic/{stream}", "timestamp": base + n * 1000, "message": message,
                "ingestionTime": base + n * 1000 + 5, "eventId": f"e{n}"}
    stubs("logs").add_response("filter_log_events", {"events": [event(3, "i-b", "third"), event(1, "i-a", "first")],
                                                     "nextToken": "t"},
                               {"logGroupName": group, "startTime": base})
    stubs("logs").add_response("filter_log_events", {"events": [event(2, "i-b", "second")]},
                               {"logGroupName": group, "startTime": base, "nextToken": "t"})
    assert logs.main(["endpoint", "--minutes", "10"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == ["first", "second", "third"]
    assert lines[0].endswith("[AllTraffic/i-a] first") and lines[1].startswith("2026-01-02 04:")


def test_training_logs_name_the_hosts_of_a_sagemaker_job(aws_for, capsys):
    aws, stubs = aws_for(logs)
    stubs("logs").add_response("filter_log_events", {"events": [
        {"logStreamName": f"{JOB}/algo-1-1767330000", "timestamp": 1000, "message": "epoch=1", "eventId": "a"},
        {"logStreamName": f"{JOB}/algo-2-1767330000", "timestamp": 2000, "message": "epoch=1", "eventId": "b"}]},
        {"logGroupName": "/aws/sagemaker/TrainingJobs", "startTime": 0, "logStreamNamePrefix": f"{JOB}/"})
    assert logs.main(["training", JOB]) == 0
    assert [line.split(" ", 2)[2] for line in capsys.readouterr().out.splitlines()] == [
        "[algo-1] epoch=1", "[algo-2] epoch=1"]


# --- the estimate -----------------------------------------------------------------------------------------------

def test_monthly_cost_of_a_realtime_endpoint_with_auto_scaling():
    lines = endpoint_cost.describe(endpoint_cost.Endpoint("realtime", "ml.m5.xlarge", 2, autoscaling=True,
                                                          min_instances=1, max_instances=4,
                                                          prices={"ml.m5.xlarge": 0.23}))
    assert lines[0] == ("realtime, 1 to 4 x ml.m5.xlarge: 730 to 2,920 instance-hours a month = $167.90 to $671.60")
