"""After training, end to end over HTTP against the local moto server (conftest.py): register a training job's model,
approve it, list the versions, deploy the latest approved one (its record read back from the endpoint's tags), an
asynchronous endpoint that scales to zero and answers `make invoke` through S3, and the endpoint's logs. moto has
no UpdateEndpoint: updates, guardrails and rollback are covered with the Stubber (test_lifecycle_stubbed.py)."""
from __future__ import annotations

import json
import urllib.request
from datetime import datetime, timezone

from PIL import Image

from aws_support import ACCOUNT, BUCKET, REGION, put_images
from scripts.aws import deploy, invoke_endpoint, logs, registry, serving_record
from test_lifecycle_stubbed import CLASSES, MODEL_CONFIG, TEST_REPORT, tar_gz

JOB = "img-clf-20260101-000000"


def trained_job(aws) -> str:
    """A completed training job in moto, its model.tar.gz and output.tar.gz where SageMaker writes them."""
    aws.client("sagemaker").create_training_job(
        TrainingJobName=JOB, AlgorithmSpecification={"TrainingImage": "img", "TrainingInputMode": "File"},
        RoleArn=aws.settings.role_arn, OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/byoc-classifier/output/"},
        ResourceConfig={"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 60})
    s3 = aws.client("s3")
    s3.put_object(Bucket=BUCKET, Key=f"byoc-classifier/output/{JOB}/output/model.tar.gz",
                  Body=tar_gz({"model_config.json": json.dumps(MODEL_CONFIG).encode(), "model.pth": b"w"}))
    s3.put_object(Bucket=BUCKET, Key=f"byoc-classifier/output/{JOB}/output/output.tar.gz",
                  Body=tar_gz({"test_report.json": json.dumps(TEST_REPORT).encode()}))
    return f"s3://{BUCKET}/byoc-classifier/output/{JOB}/output/model.tar.gz"


def test_register_approve_list_and_deploy_the_latest_approved(moto, use, capsys):
    use(moto, registry, deploy)
    put_images(moto, "byoc-classifier-serving")
    model_data = trained_job(moto)
    assert registry.main(["register", "--job", JOB]) == 0, capsys.readouterr().err
    assert "next: make approve VERSION=1" in capsys.readouterr().out
    sm = moto.client("sagemaker")
    [summary] = sm.list_model_packages(ModelPackageGroupName="byoc-classifier")["ModelPackageSummaryList"]
    package = sm.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert package["CustomerMetadataProperties"]["test_accuracy"] == "0.9000"
    metrics = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    bucket, key = metrics[5:].split("/", 1)
    document = json.loads(moto.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    assert document["classes"] == CLASSES and document["dataset"] == {"item_count": 30, "from": "test_report"}
    assert registry.main(["packages"]) == 0
    row = capsys.readouterr().out.splitlines()[2].split()
    assert row[:3] == ["1", "PendingManualApproval", "0.9000"] and "img-clf" not in row

    assert deploy.main(["--package", "latest-approved"]) == 1  # nothing approved yet
    assert "has no approved version" in capsys.readouterr().err
    assert registry.main(["approve", "--version", "1"]) == 0
    assert deploy.main(["--package", "latest-approved"]) == 0, capsys.readouterr().err
    assert "serving model package byoc-classifier/1 (Approved)" in capsys.readouterr().out
    endpoint = sm.describe_endpoint(EndpointName="img-clf")
    served, previous = serving_record.read(sm.list_tags(ResourceArn=endpoint["EndpointArn"])["Tags"])
    assert served.package == summary["ModelPackageArn"] and served.model_data == model_data and previous is None
    model = sm.describe_model(ModelName=endpoint["EndpointConfigName"])
    assert model["PrimaryContainer"].get("ModelPackageName") == summary["ModelPackageArn"]

    assert registry.main(["packages"]) == 0  # (moto's UpdateModelPackage drops the metadata; AWS keeps it)
    row = capsys.readouterr().out.splitlines()[2].split()
    assert row[:2] == ["1", "Approved"] and row[-2:] == ["<-", "img-clf"]


def test_an_async_endpoint_scales_from_zero_and_answers_through_s3(moto, moto_server, use, tmp_path, capsys):
    use(moto, deploy, invoke_endpoint)
    put_images(moto, "byoc-classifier-serving")
    moto.settings.values.update({"endpoint_type": "async", "max_instances": 2})
    assert deploy.main(["--model-data", trained_job(moto)]) == 0, capsys.readouterr().err
    sm = moto.client("sagemaker")
    config = sm.describe_endpoint_config(EndpointConfigName=sm.describe_endpoint(EndpointName="img-clf")[
        "EndpointConfigName"])
    assert config["AsyncInferenceConfig"]["OutputConfig"]["S3OutputPath"] == (
        f"s3://{BUCKET}/byoc-classifier/async/img-clf/output")
    scaling = moto.client("application-autoscaling")
    [target] = scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (0, 2)
    policies = {p["PolicyName"]: p for p in scaling.describe_scaling_policies(
        ServiceNamespace="sagemaker")["ScalingPolicies"]}
    assert set(policies) == {"img-clf-backlog", "img-clf-wake-from-zero"}
    [alarm] = moto.client("cloudwatch").describe_alarms(AlarmNames=["img-clf-backlog-without-capacity"])[
        "MetricAlarms"]
    assert alarm["AlarmActions"] == [policies["img-clf-wake-from-zero"]["PolicyARN"]]

    answer = {"predictions": [{"classes": [{"name": "fox", "index": 2, "probability": 0.8}]}]}
    queue = {"account_id": ACCOUNT, "region": REGION, "results": [{"data": json.dumps(answer)}]}
    request = urllib.request.Request(f"{moto_server}/moto-api/static/sagemaker/async-endpoint-results",
                                     data=json.dumps(queue).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()
    moto.settings.values["endpoint_type"] = "realtime"  # make invoke asks the endpoint which type it is
    picture = tmp_path / "fox.png"
    Image.new("RGB", (8, 8)).save(picture)
    assert invoke_endpoint.main([str(picture)]) == 0, capsys.readouterr().err
    assert "1. fox" in capsys.readouterr().out
    left = moto.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="byoc-classifier/async/img-clf/input/")
    assert left.get("KeyCount", 0) == 0  # the request is deleted once answered


def test_endpoint_logs_of_every_instance_by_time(moto, use, capsys):
    use(moto, logs)
    client = moto.client("logs")
    group = "/aws/sagemaker/Endpoints/img-clf"
    client.create_log_group(logGroupName=group)
    now = int(datetime.now(timezone.utc).timestamp() * 1000)
    for stream, offsets in (("AllTraffic/i-aaa", (0, 2)), ("AllTraffic/i-bbb", (1, 3))):
        client.create_log_stream(logGroupName=group, logStreamName=stream)
        client.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
            {"timestamp": now - 60_000 + n * 1000, "message": f"line {n}"} for n in offsets])
    assert logs.main(["endpoint", "--minutes", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == ["line 0", "line 1", "line 2", "line 3"]
    assert "[AllTraffic/i-bbb]" in lines[1]
