"""The SageMaker Python SDK v3 (ModelTrainer, ModelBuilder), recorded offline as the v2 tests are, against what this
project sends and what its images accept (issue 25 item 7).

v3 lives in .venv-sdk3 (`make setup`; pinned in requirements-sdk3.txt): v2 and v3 share the package name. The
requests are recorded by tests/aws/sdk_v3_record.py in that environment, with every client answered in-process
(after botocore validated the request), telemetry replaced, fake credentials and every proxy on a closed
127.0.0.1 port. What the comparison found is in docs (AWS page, "SageMaker Python SDK v3"); what it needed
fixed is tested at the end: `make deploy` over an endpoint that v3 made.
"""
from __future__ import annotations

import json
import os
import subprocess

import pytest
from botocore.stub import ANY

from aws_support import (
    BUCKET,
    CLOSED_PORT_URL,
    FAKE_ARN,
    REGION,
    ROLE,
    SERVING_IMAGE,
    TRAINING_IMAGE,
    Stubs,
    arn,
    endpoint_description,
    make_aws,
    record_tags,
    stub_endpoint_tagged,
    stub_image,
    stub_rollback_alarms,
    write_settings,
)
from scripts import REPO_ROOT, job_definition, orchestration
from scripts.aws import api_requests, deploy, model_packages, settings as S
from test_sdk_interop import USER_HYPERPARAMETERS, container_accepts

PYTHON = REPO_ROOT / ".venv-sdk3" / "bin" / "python"
MODEL_DATA = f"s3://{BUCKET}/byoc-classifier/output/img-clf-20260101-000000/output/model.tar.gz"
DATA = f"s3://{BUCKET}/byoc-classifier/data/fashion-mnist/"
SETUP = {"training_image": TRAINING_IMAGE, "serving_image": SERVING_IMAGE, "model_data": MODEL_DATA,
         "hyperparameters": USER_HYPERPARAMETERS, "output": f"s3://{BUCKET}/byoc-classifier/output/",
         "channels": {"train": f"{DATA}train/", "valid": f"{DATA}valid/"}}


@pytest.fixture(scope="module")
def v3(tmp_path_factory) -> dict:
    """{"sent": [(service, operation, params), ...], "telemetry": count} of the recording, run once."""
    if not PYTHON.exists():
        if os.environ.get("CI"):
            pytest.fail(".venv-sdk3 is missing: `make setup` creates it (make test runs setup first)")
        pytest.skip(".venv-sdk3 is missing: `make setup` creates it")
    home = tmp_path_factory.mktemp("home")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "AWS_DEFAULT_REGION": REGION,
           "AWS_CONFIG_FILE": str(home / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(home / "none"),
           "AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL": CLOSED_PORT_URL,
           **{name: CLOSED_PORT_URL for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")}}
    done = subprocess.run([str(PYTHON), str(REPO_ROOT / "tests" / "aws" / "sdk_v3_record.py"), json.dumps(SETUP)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def requests(v3: dict, operation: str) -> list[dict]:
    return [params for _, name, params in v3["sent"] if name == operation]


@pytest.fixture
def settings(tmp_path):
    return S.load(write_settings(tmp_path / "s.yaml"))


def test_nothing_left_the_machine_and_telemetry_was_replaced(v3):
    assert v3["telemetry"] > 0  # the SDK tried: each attempt went to the replacement
    services = {service for service, _, _ in v3["sent"]}
    assert services <= {"sagemaker", "iam", "sts"}, services


def test_model_trainer_sends_json_encoded_hyperparameters_that_the_container_parses(v3, tmp_path, monkeypatch):
    [request] = requests(v3, "CreateTrainingJob")
    assert request["AlgorithmSpecification"]["TrainingImage"] == TRAINING_IMAGE
    hyperparameters = request["HyperParameters"]
    assert hyperparameters["pretrained"] == "true" and hyperparameters["model_name"] == "resnet50"  # v2: "True"
    parsed = container_accepts(hyperparameters, tmp_path, monkeypatch)
    assert parsed.pretrained is True and parsed.debugger is True and parsed.lr == 0.001 and parsed.epochs == 2


def test_model_trainer_channels_match_ours_and_what_it_leaves_out(v3, settings):
    [request] = requests(v3, "CreateTrainingJob")
    definition = job_definition.load()
    ours = api_requests.training_job(definition, settings, "img-clf-20260102-030405", TRAINING_IMAGE, DATA,
                                     ["train", "valid"], {})
    assert ({c["ChannelName"]: c["DataSource"] for c in request["InputDataConfig"]}
            == {c["ChannelName"]: c["DataSource"] for c in ours["InputDataConfig"]})
    # v3's defaults, unlike make train's: one hour at most, no spot, no checkpoints, no metric definitions (so no
    # FinalMetricDataList), no Debugger/Profiler fields (v2 added an empty DebugHookConfig and a profiler)
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    assert request["StoppingCondition"] != ours["StoppingCondition"]
    missing = {"EnableManagedSpotTraining", "CheckpointConfig", "DebugHookConfig", "ProfilerConfig"} - set(request)
    assert missing == {"EnableManagedSpotTraining", "CheckpointConfig", "DebugHookConfig", "ProfilerConfig"}
    assert "MetricDefinitions" not in request["AlgorithmSpecification"]
    # before creating anything, it checks the role: the caller needs iam:SimulatePrincipalPolicy and iam:GetRole
    assert requests(v3, "SimulatePrincipalPolicy")[0]["PolicySourceArn"] == ROLE
    assert requests(v3, "GetRole")[0] == {"RoleName": "SageMakerRole"}


def test_model_builder_makes_the_model_and_variants_ours_make(v3, settings):
    realtime, serverless = requests(v3, "CreateModel")
    ours = api_requests.model(settings, "m", SERVING_IMAGE, MODEL_DATA)["PrimaryContainer"]
    for model in (realtime, serverless):
        assert {k: model["PrimaryContainer"][k] for k in ("Image", "ModelDataUrl")} == {
            k: ours[k] for k in ("Image", "ModelDataUrl")}
    configs = requests(v3, "CreateEndpointConfig")
    assert configs[0]["EndpointConfigName"] == "img-clf"  # v3 names the config after the endpoint
    variant = {k: v for k, v in configs[0]["ProductionVariants"][0].items() if k != "ModelName"}
    assert variant == {k: v for k, v in api_requests.production_variant(settings, "m").items() if k != "ModelName"}
    settings.values.update({"endpoint_type": "serverless", "serverless_memory_mb": 3072,
                            "serverless_max_concurrency": 5})
    assert configs[1]["ProductionVariants"][0]["ServerlessConfig"] == api_requests.production_variant(
        settings, "m")["ServerlessConfig"]


def test_a_package_registered_by_v3_is_one_make_deploy_can_serve(v3, settings):
    [request] = requests(v3, "CreateModelPackage")
    container = request["InferenceSpecification"]["Containers"][0]
    assert (container["Image"], container["ModelDataUrl"]) == (SERVING_IMAGE, MODEL_DATA)
    assert "ModelMetrics" not in request and "CustomerMetadataProperties" not in request  # make packages: no figures
    package = model_packages.Package.of({**request, "ModelPackageArn": f"{FAKE_ARN}/1", "ModelPackageVersion": 1})
    assert (package.image, package.model_data, package.status) == (SERVING_IMAGE, MODEL_DATA,
                                                                   "PendingManualApproval")
    ours = api_requests.model_package(settings, SERVING_IMAGE, MODEL_DATA, "d", "s3://b/m.json", "0" * 64, {}, False)
    assert ours["InferenceSpecification"]["Containers"] == [{k: container[k] for k in ("Image", "ModelDataUrl")}]


def test_make_deploy_updates_an_endpoint_v3_made_and_records_what_it_replaces(v3, tmp_path, use, monkeypatch, capsys):
    """v3's endpoint config is named like the endpoint and records nothing of ours: the update rebuilds what it
    served from its model (so `make rollback` can return to it) and leaves v3's config and model in place."""
    monkeypatch.setattr(orchestration, "timestamp", lambda now=None: "20260102-030405")
    aws = make_aws(S.load(write_settings(tmp_path / "s.yaml")))
    use(aws, deploy)
    stubs = Stubs(aws)
    config, model = requests(v3, "CreateEndpointConfig")[0], requests(v3, "CreateModel")[0]
    new_data = MODEL_DATA.replace("20260101-000000", "20260102-000000")
    sm = stubs("sagemaker")
    stub_image(stubs, "byoc-classifier-serving")
    sm.add_response("describe_endpoint", endpoint_description("img-clf", "InService", "img-clf"), None)
    described = {**{k: v for k, v in config.items() if k != "Tags"}, "EndpointConfigArn": arn("endpoint-config",
                                                                                                "img-clf"),
                 "CreationTime": "2026-01-01T00:00:00Z"}
    sm.add_response("describe_endpoint_config", described, {"EndpointConfigName": "img-clf"})
    sm.add_response("list_tags", {"Tags": config["Tags"]}, {"ResourceArn": arn("endpoint-config", "img-clf")})
    sm.add_response("describe_model", {**model, "ModelArn": arn("model", model["ModelName"]),
                                       "CreationTime": "2026-01-01T00:00:00Z"}, {"ModelName": model["ModelName"]})
    sm.add_response("create_model", {"ModelArn": FAKE_ARN}, None)
    sm.add_response("create_endpoint_config", {"EndpointConfigArn": FAKE_ARN}, {
        "EndpointConfigName": "img-clf-20260102-030405", "ProductionVariants": ANY,
        "Tags": record_tags(new_data, previous=(MODEL_DATA, SERVING_IMAGE, ""))})
    stub_rollback_alarms(stubs)
    stubs("application-autoscaling").add_response("describe_scalable_targets", {"ScalableTargets": []}, None)
    sm.add_response("update_endpoint", {"EndpointArn": FAKE_ARN}, None)
    sm.add_response("describe_endpoint", endpoint_description("img-clf", "InService", "img-clf-20260102-030405"),
                    None)
    stub_endpoint_tagged(stubs, new_data)
    sm.add_response("describe_endpoint_config", described, {"EndpointConfigName": "img-clf"})
    assert deploy.main(["--model-data", new_data]) == 0, capsys.readouterr().err
    stubs.verify()
    err = capsys.readouterr().err
    assert f"left in place (not made by make deploy; delete them when nothing needs them): endpoint config img-clf, " \
           f"model {model['ModelName']}" in err
    assert not [api for _, api, _ in aws.sent if api.startswith("Delete")]
