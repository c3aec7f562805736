"""What the SageMaker Python SDK v3 sends for this project's images, recorded offline. Run by test_sdk_v3.py with
the interpreter of .venv-sdk3 (the v3 SDK and v2 share the package name `sagemaker`, so they live apart); it
imports nothing of the project and prints [[service, operation, parameters], ...] as JSON on stdout.

Nothing leaves the machine: every client of the SDK (those made from our session and those it makes from boto3's
default session, which this script replaces before the SDK is imported) is answered by a `before-send` handler
here, after botocore has validated the request against its service model; telemetry is replaced; the caller sets
fake credentials and points every proxy at a closed 127.0.0.1 port, so a client made any other way fails at once.

    ModelTrainer(training image, role, compute, hyperparameters).train(train + valid channels, wait=False)
    ModelBuilder(serving image, s3_model_data_url, role).build() / .deploy(1 x instance) / .register(group)
    ModelBuilder(...).deploy(ServerlessInferenceConfig(...))
"""
from __future__ import annotations

import copy
import json
import sys
from urllib.parse import parse_qs, quote

import boto3
from botocore.awsrequest import AWSResponse

REGION, ACCOUNT, BUCKET = "us-east-1", "123456789012", "test-bucket"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/SageMakerRole"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
NOW = "2026-01-02T03:04:05Z"
SETUP = json.loads(sys.argv[1])  # images, model data, hyperparameters, channels: what the test compares with ours

sent: list[tuple[str, str, dict]] = []
created: dict[str, dict] = {}
KINDS = {"TrainingJob": "training-job", "ModelPackageGroup": "model-package-group", "ModelPackage": "model-package",
         "EndpointConfig": "endpoint-config", "Endpoint": "endpoint", "Model": "model"}
DESCRIBED = {  # what a description adds to the request that created the resource
    "TrainingJob": {"TrainingJobStatus": "InProgress", "SecondaryStatus": "Starting",
                    "ModelArtifacts": {"S3ModelArtifacts": ""}},
    "Endpoint": {"EndpointStatus": "Creating"},
    "ModelPackage": {"ModelPackageStatus": "Completed", "ModelPackageVersion": 1,
                     "ModelPackageStatusDetails": {"ValidationStatuses": []}},
    "ModelPackageGroup": {"ModelPackageGroupStatus": "Completed"},
}
TRUST = quote(json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
QUERY_RESULTS = {  # IAM and STS (query protocol): XML results
    "GetRole": f"<Role><Path>/</Path><RoleName>SageMakerRole</RoleName><RoleId>AROAEXAMPLEEXAMPLE01</RoleId>"
               f"<Arn>{ROLE}</Arn><CreateDate>{NOW}</CreateDate><AssumeRolePolicyDocument>{TRUST}"
               f"</AssumeRolePolicyDocument></Role>",
    "GetCallerIdentity": f"<Arn>arn:aws:sts::{ACCOUNT}:assumed-role/SageMakerRole/s</Arn><UserId>AROA:s</UserId>"
                         f"<Account>{ACCOUNT}</Account>",
}


class Body:
    def __init__(self, data: bytes):
        self.data = data

    def stream(self, **kwargs):
        yield self.data


def record(params, model, **kwargs):
    sent.append((model.service_model.service_name, model.name, copy.deepcopy(params)))


def sagemaker_answer(operation: str, body: dict) -> dict:
    """Create*: the ARN; Describe*: what was created, with its status; List*: empty."""
    if operation.startswith("List"):
        return {key: [] for key in ("ModelPackageGroupSummaryList", "ModelPackageSummaryList", "Tags")
                if key.startswith(operation[4:-1]) or operation == "ListTags"}
    kind = next((k for k in KINDS if operation.endswith(k)), None)
    if kind is None:
        return {}
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{KINDS[kind]}/"
    if operation.startswith("Create"):
        created[kind] = body
        return {f"{kind}Arn": arn + (body.get(f"{kind}Name") or body.get("ModelPackageGroupName", "x") + "/1")}
    made = created.get(kind, {})
    name = body.get(f"{kind}Name") or made.get(f"{kind}Name") or "x"
    return {**{k: v for k, v in made.items() if k != "Tags"}, f"{kind}Name": name, f"{kind}Arn": arn + name,
            "CreationTime": NOW, "LastModifiedTime": NOW, **DESCRIBED.get(kind, {})}


def answer(request, **kwargs):
    raw = request.body or b""
    raw = raw.encode() if isinstance(raw, str) else raw
    target = request.headers.get("X-Amz-Target", b"")
    target = target.decode() if isinstance(target, bytes) else target
    if target:  # JSON protocol (SageMaker)
        data = json.dumps(sagemaker_answer(target.split(".")[-1], json.loads(raw or b"{}"))).encode()
    else:  # query protocol (IAM, STS)
        action = parse_qs(raw.decode()).get("Action", ["?"])[0]
        data = (f"<{action}Response><{action}Result>{QUERY_RESULTS.get(action, '')}</{action}Result>"
                f"</{action}Response>").encode()
    return AWSResponse(request.url, 200, {"x-amzn-RequestId": "offline"}, Body(data))


def main() -> None:
    boto3.setup_default_session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                aws_session_token="testing", region_name=REGION)
    boto = boto3.DEFAULT_SESSION  # the SDK also makes clients of its own from the default session
    boto.events.register("provide-client-params", record)
    boto.events.register("before-send", answer)

    from sagemaker.core.telemetry import telemetry_logging

    telemetry = []
    telemetry_logging._send_telemetry_request = lambda *args, **kwargs: telemetry.append(args)

    from sagemaker.core.helper.session_helper import Session
    from sagemaker.core.inference_config import (
        ServerlessInferenceConfig,  # (not the one of serverless_inference_config)
    )
    from sagemaker.core.training.configs import Compute, InputData, OutputDataConfig
    from sagemaker.serve import ModelBuilder
    from sagemaker.train import ModelTrainer

    session = Session(boto_session=boto, default_bucket=BUCKET)
    trainer = ModelTrainer(training_image=SETUP["training_image"], role=ROLE, base_job_name="img-clf",
                           sagemaker_session=session, hyperparameters=SETUP["hyperparameters"],
                           compute=Compute(instance_type="ml.g4dn.xlarge", instance_count=1, volume_size_in_gb=30),
                           output_data_config=OutputDataConfig(s3_output_path=SETUP["output"]))
    trainer.train(input_data_config=[InputData(channel_name=name, data_source=uri)
                                     for name, uri in SETUP["channels"].items()], wait=False, logs=False)

    builder = ModelBuilder(image_uri=SETUP["serving_image"], s3_model_data_url=SETUP["model_data"], role_arn=ROLE,
                           sagemaker_session=session, instance_type="ml.m5.2xlarge")
    builder.build(model_name="img-clf-sdk3")
    builder.deploy(endpoint_name="img-clf", initial_instance_count=1, instance_type="ml.m5.2xlarge", wait=False)
    builder.register(model_package_group_name="byoc-classifier", content_types=["image/jpeg", "image/png"],
                     response_types=["application/json"], approval_status="PendingManualApproval")

    serverless = ModelBuilder(image_uri=SETUP["serving_image"], s3_model_data_url=SETUP["model_data"],
                              role_arn=ROLE, sagemaker_session=session)
    serverless.build(model_name="img-clf-sdk3-serverless")
    serverless.deploy(endpoint_name="img-clf-serverless", wait=False, inference_config=ServerlessInferenceConfig(
        memory_size_in_mb=3072, max_concurrency=5))
    json.dump({"sent": sent, "telemetry": len(telemetry)}, sys.stdout, default=str)


if __name__ == "__main__":
    main()
