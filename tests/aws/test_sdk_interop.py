"""What users of the SageMaker Python SDK send, with its defaults, and what this project's images make of it.

The SDK (pinned in requirements-dev.txt) builds its own requests offline: its boto3 clients are answered by
botocore's Stubber (requests checked against the service models) and the parameters of each request are
recorded; nothing leaves the machine (the `sdk` fixture: telemetry replaced, fake credentials, endpoints and
proxies on 127.0.0.1). Then the training container's own code reads what SageMaker would hand it (the
hyperparameters through the sagemaker-training toolkit's decoding, debughookconfig.json, the channels) and the
serving code answers InvokeEndpoint with the Predictor's exact headers, in-process.
"""
from __future__ import annotations

import copy
import io
import json
import re

import boto3
import pytest
import torch
from botocore.awsrequest import AWSResponse
from botocore.response import StreamingBody
from botocore.stub import Stubber
from PIL import Image

from aws_support import BUCKET, REGION, ROLE, TAG, stub_channels, stub_image, training_description, trial_summary
from classifier.training import hyperparameters as hp_specs
from scripts import REPO_ROOT, orchestration
from scripts.aws import train

REGISTRY = f"123456789012.dkr.ecr.{REGION}.amazonaws.com"
TRAINING_IMAGE = f"{REGISTRY}/byoc-classifier-training:{TAG}"
SERVING_IMAGE = f"{REGISTRY}/byoc-classifier-serving:{TAG}"
DATA = f"s3://{BUCKET}/byoc-classifier/data/fashion-mnist"
CHANNELS = {"train": f"{DATA}/train/", "valid": f"{DATA}/valid/"}
ARN = f"arn:aws:sagemaker:{REGION}:123456789012:resource/x"
# What a user sets, as Python values (the SDK turns them into strings its own way).
USER_HYPERPARAMETERS = {"model_name": "resnet50", "pretrained": True, "batch_size": 32, "epochs": 2,
                        "lr": 0.001, "debugger": True, "debugger_train_interval": 100, "unfreeze_stages": 0}


class SdkSession:
    """A sagemaker.Session whose clients are stubbed; `sent` holds (operation, parameters) in order."""

    def __init__(self, sagemaker_module):
        self.boto = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                  aws_session_token="testing", region_name=REGION)
        self.sent: list[tuple[str, dict]] = []
        self.client = self._client("sagemaker")
        self.runtime = self._client("sagemaker-runtime")
        self.stubber = Stubber(self.client)
        self.stubber.activate()
        self.session = sagemaker_module.Session(boto_session=self.boto, sagemaker_client=self.client,
                                                sagemaker_runtime_client=self.runtime, default_bucket=BUCKET)

    def _client(self, service):
        client = self.boto.client(service)
        client.meta.events.register(f"provide-client-params.{client.meta.service_model.service_id.hyphenize()}.*",
                                    self._record)
        return client

    def _record(self, params, model, **kwargs):
        self.sent.append((model.name, copy.deepcopy(params)))

    def request(self, operation: str) -> dict:
        return next(params for name, params in self.sent if name == operation)


@pytest.fixture
def sdk_session(sdk):
    import sagemaker

    session = SdkSession(sagemaker)
    yield session
    session.stubber.assert_no_pending_responses()


def estimator(session, **extra):
    from sagemaker.estimator import Estimator

    return Estimator(image_uri=TRAINING_IMAGE, role=ROLE, instance_count=1, instance_type="ml.g4dn.xlarge",
                     output_path=f"s3://{BUCKET}/byoc-classifier/output/", hyperparameters=dict(USER_HYPERPARAMETERS),
                     sagemaker_session=session.session, **extra)


def fit(session, inputs, **extra) -> dict:
    session.stubber.add_response("create_training_job", {"TrainingJobArn": ARN})
    estimator(session, **extra).fit(inputs, wait=False, logs=False)
    return session.request("CreateTrainingJob")


# --- what the sagemaker-training toolkit and the training container make of a request ---------------------------

def toolkit_arguments(hyperparameters: dict, tmp_path, monkeypatch) -> list[str]:
    """The arguments the real toolkit gives train.py for this hyperparameters.json (environment.Environment's
    steps: read_hyperparameters, SageMaker's keys set apart, to_cmd_args)."""
    from sagemaker_training import environment, mapping, params

    path = tmp_path / "hyperparameters.json"
    path.write_text(json.dumps(hyperparameters))
    monkeypatch.setattr(environment, "hyperparameters_file_dir", str(path))
    decoded = environment.read_hyperparameters()
    ours = mapping.split_by_criteria(decoded, keys=params.SAGEMAKER_HYPERPARAMETERS,
                                     prefix=params.SAGEMAKER_PREFIX).excluded
    return mapping.to_cmd_args(ours)


def container_accepts(hyperparameters: dict, tmp_path, monkeypatch) -> hp_specs.Hyperparameters:
    """The training container's parse of what the toolkit passes, and the same from the host's check."""
    arguments = toolkit_arguments(hyperparameters, tmp_path, monkeypatch)
    parsed = hp_specs.parse_args(arguments)
    assert orchestration.program_arguments(hyperparameters) == arguments  # the host decodes as the toolkit does
    assert orchestration.validate_hyperparameters(hyperparameters) == parsed
    return parsed


def channels_found(request: dict, tmp_path, monkeypatch):
    """The training container's channel check, on the /opt/ml/input/data SageMaker makes for the request."""
    from classifier.training.setup import find_channels

    base = tmp_path / "opt_ml"
    for channel in request["InputDataConfig"]:
        (base / "input" / "data" / channel["ChannelName"]).mkdir(parents=True)
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    for name in ("SM_CHANNEL_TRAIN", "SM_CHANNEL_VALID", "SM_CHANNEL_TEST"):
        monkeypatch.delenv(name, raising=False)
    return find_channels()


def test_an_estimator_with_the_sdks_defaults_fits_the_training_container(sdk_session, tmp_path, monkeypatch):
    request = fit(sdk_session, CHANNELS)
    assert request["AlgorithmSpecification"]["TrainingImage"] == TRAINING_IMAGE
    # a generic Estimator sends str(value): "True", "0.001"
    assert request["HyperParameters"]["pretrained"] == "True" and request["HyperParameters"]["lr"] == "0.001"
    parsed = container_accepts(request["HyperParameters"], tmp_path, monkeypatch)
    assert parsed.pretrained is True and parsed.debugger is True and parsed.lr == 0.001 and parsed.epochs == 2
    assert sorted(channels_found(request, tmp_path, monkeypatch)) == ["train", "valid"]
    # the SDK's defaults: an empty DebugHookConfig and an active profiler
    assert request["DebugHookConfig"] == {"S3OutputPath": f"s3://{BUCKET}/byoc-classifier/output/",
                                          "CollectionConfigurations": []}
    assert request["ProfilerConfig"]["DisableProfiler"] is False


def test_the_sdks_empty_debug_hook_config_keeps_the_jobs_own_hook(sdk_session, tmp_path, monkeypatch):
    """SageMaker writes the SDK's empty DebugHookConfig into debughookconfig.json; the hook keeps the job's
    collections and intervals (issue 13 item 2) and writes where the JSON says."""
    from classifier.debugger import config as layout_config
    from classifier.debugger.hook import HookObserver
    from classifier.training.loop import NLLWithLabelSmoothing

    request = fit(sdk_session, CHANNELS)
    base = tmp_path / "opt_ml"
    (base / "input" / "config").mkdir(parents=True)
    hook_config = {"LocalPath": str(tmp_path / "tensors"), **request["DebugHookConfig"]}
    (base / "input" / "config" / "debughookconfig.json").write_text(json.dumps(hook_config))
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    hp = container_accepts(request["HyperParameters"], tmp_path, monkeypatch)
    hook = HookObserver(hp, layout_config.Layout(base / "output" / "data", base / "output" / "tensors"))
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.LogSoftmax(dim=1))
    hook.on_train_start(model, NLLWithLabelSmoothing(0.0), {"device": torch.device("cpu"), "classes": ["a", "b"]})
    try:
        described = hook.described
        assert "names no collections" in described["source"] and described["out_dir"] == str(tmp_path / "tensors")
        assert described["collections"] == sorted(hp_specs.SPECS["debugger_collections"].default.split(","))
        assert {(i["train"], i["eval"]) for i in described["intervals"].values()} == {(100, 10)}
    finally:
        hook.on_train_end({})


def test_turning_the_sdks_debugger_and_profiler_off_sends_neither(sdk_session):
    """What docs/aws.md shows SDK users: the job's own debugger and profiler only."""
    request = fit(sdk_session, CHANNELS, debugger_hook_config=False, disable_profiler=True)
    assert "DebugHookConfig" not in request
    assert request.get("ProfilerConfig", {"DisableProfiler": True})["DisableProfiler"] is True


def test_a_single_s3_uri_is_the_channel_training_which_the_job_refuses_by_name(sdk_session, tmp_path, monkeypatch):
    """Issue 13 item 11: fit("s3://...") makes one channel named `training`; the container says which
    channels it reads (docs/aws.md shows fit({"train": ..., "valid": ...}))."""
    from classifier.training.data import DataError

    request = fit(sdk_session, DATA)
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["training"]
    with pytest.raises(DataError, match=r"unknown channel\(s\) training .* this job reads train, valid \(required\)"):
        channels_found(request, tmp_path, monkeypatch)


# --- a Framework estimator's tuning job, then make train TUNING=<it> ---------------------------------------------

def framework_tuning(sdk_session) -> dict:
    """CreateHyperParameterTuningJob of a HyperparameterTuner over the SDK's PyTorch estimator with this image:
    a Framework estimator JSON-encodes its static hyperparameters ("\\"resnet50\\"")."""
    from sagemaker.pytorch import PyTorch
    from sagemaker.tuner import ContinuousParameter, HyperparameterTuner

    pytorch = PyTorch(entry_point="train.py", source_dir=f"s3://{BUCKET}/code/sourcedir.tar.gz",
                      image_uri=TRAINING_IMAGE, role=ROLE, instance_count=1, instance_type="ml.g4dn.xlarge",
                      framework_version="2.1", py_version="py310", hyperparameters=dict(USER_HYPERPARAMETERS),
                      output_path=f"s3://{BUCKET}/byoc-classifier/output/", sagemaker_session=sdk_session.session)
    tuner = HyperparameterTuner(pytorch, "best_valid_loss", {"lr": ContinuousParameter(0.001, 0.1)},
                                metric_definitions=[{"Name": "best_valid_loss",
                                                     "Regex": "best_valid_loss=([0-9.eE+-]+)"}],
                                objective_type="Minimize", max_jobs=2, max_parallel_jobs=1)
    sdk_session.stubber.add_response("create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": ARN})
    tuner.fit(CHANNELS, wait=False)
    return sdk_session.request("CreateHyperParameterTuningJob")


def test_make_train_takes_the_best_trial_of_an_sdk_framework_tuning_job(sdk_session, stubbed, use, tmp_path,
                                                                      monkeypatch, capsys):
    """Issue 13 item 10: its trials ran with JSON-encoded values, which the toolkit decodes; the host-side check
    of `make train TUNING=<it>` decodes them the same way (it used to refuse "\\"resnet50\\"")."""
    tuning = framework_tuning(sdk_session)
    static = tuning["TrainingJobDefinition"]["StaticHyperParameters"]
    assert static["model_name"] == '"resnet50"' and static["sagemaker_program"] == '"train.py"'
    name, best = tuning["HyperParameterTuningJobName"], f"{tuning['HyperParameterTuningJobName']}-001-abcdef12"
    # what SageMaker records for a trial: the static values, the tuner's (plain) and the objective's name
    recorded = {**static, "lr": "0.0123", "_tuning_objective_metric": "best_valid_loss"}
    trial = container_accepts(recorded, tmp_path, monkeypatch)
    assert trial.model_name == "resnet50" and trial.lr == 0.0123

    aws, stubs = stubbed
    use(aws, train)
    stubs("sagemaker").add_response("list_training_jobs_for_hyper_parameter_tuning_job", {
        "TrainingJobSummaries": [trial_summary(best, 0.3, {"lr": "0.0123"})]}, None)
    stubs("sagemaker").add_response("describe_training_job", training_description(best, hyperparameters=recorded),
                                    {"TrainingJobName": best})
    stub_image(stubs, "byoc-classifier-training")
    stub_channels(stubs)
    stubs("sagemaker").add_response("create_training_job", {"TrainingJobArn": ARN}, None)
    assert train.main(["--tuning", name, "--hp", "epochs=3", "--name", "img-clf-20260102-030405", "--no-wait"]) == 0, \
        capsys.readouterr().err
    sent = next(params for _, api, params in aws.sent if api == "CreateTrainingJob")["HyperParameters"]
    job = container_accepts(sent, tmp_path, monkeypatch)
    assert not any(hp_specs.is_ignored(k) for k in sent)  # the SDK's sagemaker_* keys are not carried over
    # the trial's values (decoded) over the job definition's static ones, the final job's fine-tuning (the
    # recipe: orchestration.FINE_TUNING) and epochs=3 on top
    assert {k: job[k] for k in recorded if not hp_specs.is_ignored(k)} == {
        **{k: trial[k] for k in recorded if not hp_specs.is_ignored(k)}, "epochs": 3,
        **{k: hp_specs.parse(orchestration.FINE_TUNING)[k] for k in orchestration.FINE_TUNING}}
    assert job.model_name == "resnet50" and job.pretrained is True


def test_a_generic_tuner_sends_what_the_container_parses(sdk_session, tmp_path, monkeypatch):
    from sagemaker.tuner import CategoricalParameter, HyperparameterTuner, IntegerParameter

    tuner = HyperparameterTuner(estimator(sdk_session), "best_valid_loss",
                                {"batch_size": CategoricalParameter([16, 32]), "epochs": IntegerParameter(2, 6)},
                                metric_definitions=[{"Name": "best_valid_loss",
                                                     "Regex": "best_valid_loss=([0-9.eE+-]+)"}],
                                objective_type="Minimize", max_jobs=2, max_parallel_jobs=1, strategy="Hyperband")
    sdk_session.stubber.add_response("create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": ARN})
    tuner.fit(CHANNELS, wait=False)
    request = sdk_session.request("CreateHyperParameterTuningJob")
    static = request["TrainingJobDefinition"]["StaticHyperParameters"]
    trial = {**static, "batch_size": "32", "epochs": "4", "_tuning_objective_metric": "best_valid_loss"}
    assert container_accepts(trial, tmp_path, monkeypatch).batch_size == 32


# --- deploy and the Predictor's headers, answered by the serving code ----------------------------------------

class Endpoint:
    """InvokeEndpoint answered in-process by the serving image's request handling (classifier.serving), with
    the HTTP headers botocore built for the SDK's Predictor."""

    def __init__(self, runtime_client, model_dir):
        from classifier.serving import settings
        from classifier.serving.handler_service import HandlerService

        self.handler = HandlerService(settings.Settings.from_env())
        self.handler.initialize(_Context({}, model_dir))
        self.headers: dict = {}
        runtime_client.meta.events.register("before-call.sagemaker-runtime.InvokeEndpoint", self.answer)

    def answer(self, params, **kwargs):
        self.headers = dict(params["headers"])
        context = _Context(self.headers)
        [body] = self.handler.handle([{"body": params["body"]}], context)
        data = body.encode()
        parsed = {"Body": StreamingBody(io.BytesIO(data), len(data)), "ContentType": context.content_type,
                  "InvokedProductionVariant": "AllTraffic"}
        return AWSResponse(params["url"], context.status, {}, None), parsed


class _Context:
    """The part of MMS's context the handler uses."""

    def __init__(self, headers, model_dir=None):
        processor = type("Processor", (), {"get_request_properties": lambda _self: headers})()
        self.request_processor = [processor]
        self.system_properties = {"model_dir": str(model_dir), "gpu_id": None}
        self.status, self.content_type = 200, None

    def set_response_status(self, code=200, phrase="", idx=0):
        self.status = code

    def set_response_content_type(self, idx, value):
        self.content_type = value


def test_deploy_with_the_serving_image_and_the_predictors_headers(sdk_session, trained_job, image_set):
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.model import Model
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import IdentitySerializer

    stub = sdk_session.stubber
    stub.add_response("create_model", {"ModelArn": ARN})
    stub.add_response("create_endpoint_config", {"EndpointConfigArn": ARN})
    stub.add_response("create_endpoint", {"EndpointArn": ARN})
    Model(image_uri=SERVING_IMAGE, model_data=f"s3://{BUCKET}/byoc-classifier/output/job/output/model.tar.gz",
          role=ROLE, sagemaker_session=sdk_session.session).deploy(
        initial_instance_count=1, instance_type="ml.m5.xlarge", endpoint_name="img-clf", wait=False)
    assert sdk_session.request("CreateModel")["PrimaryContainer"]["Image"] == SERVING_IMAGE
    variant = sdk_session.request("CreateEndpointConfig")["ProductionVariants"][0]
    assert variant["InstanceType"] == "ml.m5.xlarge" and variant["InitialInstanceCount"] == 1

    endpoint = Endpoint(sdk_session.runtime, trained_job / "model")
    predictor = Predictor("img-clf", sagemaker_session=sdk_session.session,
                          serializer=IdentitySerializer("image/jpeg"), deserializer=JSONDeserializer())
    photo = next(p for p in (image_set / "test").rglob("*") if p.is_file())
    buffer = io.BytesIO()
    Image.open(photo).convert("RGB").save(buffer, "JPEG")
    answer = predictor.predict(buffer.getvalue(), custom_attributes="top_k=2")
    sent = sdk_session.request("InvokeEndpoint")
    assert (sent["ContentType"], sent["Accept"], sent["CustomAttributes"]) == ("image/jpeg", "application/json",
                                                                               "top_k=2")
    headers = {k.lower(): v for k, v in endpoint.headers.items()}
    assert headers["content-type"] == "image/jpeg" and headers["accept"] == "application/json"
    [prediction] = answer["predictions"]  # the serving code's JSON, read by the SDK's deserializer
    probabilities = [c["probability"] for c in prediction["classes"]]
    assert len(probabilities) == 2 and probabilities == sorted(probabilities, reverse=True)  # top_k=2 arrived
    classes = json.loads((trained_job / "model" / "model_config.json").read_text())["classes"]
    assert all(0 <= p <= 1 for p in probabilities) and {c["name"] for c in prediction["classes"]} <= set(classes)


# --- docs/aws.md shows SDK users the calls these tests make ---------------------------------------------------

def docs_sdk_code() -> str:
    text = (REPO_ROOT / "docs" / "aws.md").read_text()
    section = text[text.index("## With the SageMaker Python SDK"):]
    ends = [section.index(mark) for mark in ("\n## ", "\n# ") if mark in section]
    section = section[:min(ends)] if ends else section
    return "\n".join(re.findall(r"```python\n(.*?)```", section, re.S))


def test_the_docs_show_sdk_users_the_calls_that_fit():
    code = docs_sdk_code()
    from classifier import channels

    fitted = re.search(r"\.fit\(\{(.*?)\}\)", code, re.S)
    assert fitted, "docs/aws.md's fit() takes a dict of channels"
    named = set(re.findall(r'"(\w+)":', fitted.group(1)))
    assert set(channels.REQUIRED) <= named <= set(channels.DATA_SET)
    assert "debugger_hook_config=False" in code and "disable_profiler=True" in code
    assert re.search(r"\.deploy\([^)]*image_uri=", code, re.S)  # the serving image, not the training one
    assert 'IdentitySerializer("image/jpeg")' in code and "JSONDeserializer()" in code
    assert "best_valid_loss" in code  # the tuner's objective is the job definition's


@pytest.mark.parametrize("values", [
    {"model_name": '"resnet50"', "pretrained": "true", "lr": "1e-3", "epochs": '"auto"'},
    {"pretrained": "True", "batch_size": "32.0", "freeze_backbone": '"false"', "sagemaker_program": '"train.py"'},
    {"lr": "null"}, {"batch_size": "[16, 32]"}, {"debugger_rule_parameters": "Overfit.patience=2", "seed": " 7"},
    {"model_name": '"resnet51"'}, {"_tuning_objective_metric": "best_valid_loss", "momentum": "0.95"},
])
def test_the_host_accepts_and_refuses_what_the_container_does(values, tmp_path, monkeypatch):
    """The host's decoding is the toolkit's, value for value, and the check passes or fails with the container."""
    arguments = toolkit_arguments(values, tmp_path, monkeypatch)
    assert orchestration.program_arguments(values) == arguments
    try:
        expected = hp_specs.parse_args(arguments)
    except hp_specs.HyperparameterError as error:
        with pytest.raises(hp_specs.HyperparameterError) as raised:
            orchestration.validate_hyperparameters(values)
        assert str(raised.value) == str(error)
    else:
        assert orchestration.validate_hyperparameters(values) == expected


# --- issue 25: the SDK's serverless, async and registry requests beside ours ------------------------------------------

def test_the_sdks_serverless_async_and_register_requests_match_ours(sdk_session, tmp_path):
    """v2's ServerlessInferenceConfig, AsyncInferenceConfig and model.register() send the fields our builders send
    (api_requests.production_variant / async_inference_config / model_package)."""
    from sagemaker.async_inference import AsyncInferenceConfig
    from sagemaker.model import Model
    from sagemaker.serverless import ServerlessInferenceConfig

    from aws_support import write_settings
    from scripts.aws import api_requests, settings as S

    settings = S.load(write_settings(tmp_path / "s.yaml", **{"endpoint.type": "serverless",
                                                              "serverless.memory_mb": 3072,
                                                              "serverless.max_concurrency": 5}))
    model_data = f"s3://{BUCKET}/byoc-classifier/output/job/output/model.tar.gz"
    stub = sdk_session.stubber
    for _ in range(2):
        stub.add_response("create_model", {"ModelArn": ARN})
        stub.add_response("create_endpoint_config", {"EndpointConfigArn": ARN})
        stub.add_response("create_endpoint", {"EndpointArn": ARN})
    model = Model(image_uri=SERVING_IMAGE, model_data=model_data, role=ROLE, sagemaker_session=sdk_session.session)
    model.deploy(serverless_inference_config=ServerlessInferenceConfig(memory_size_in_mb=3072, max_concurrency=5),
                 endpoint_name="img-clf", wait=False)
    ours = api_requests.production_variant(settings, "m")
    assert sdk_session.request("CreateEndpointConfig")["ProductionVariants"][0]["ServerlessConfig"] == \
        ours["ServerlessConfig"]

    settings.values["endpoint_type"] = "async"
    outputs = api_requests.async_inference_config(settings)["OutputConfig"]
    Model(image_uri=SERVING_IMAGE, model_data=model_data, role=ROLE, sagemaker_session=sdk_session.session).deploy(
        initial_instance_count=1, instance_type="ml.m5.2xlarge", endpoint_name="img-clf-async", wait=False,
        async_inference_config=AsyncInferenceConfig(output_path=outputs["S3OutputPath"],
                                                    failure_path=outputs["S3FailurePath"],
                                                    max_concurrent_invocations_per_instance=4))
    sent = [params for name, params in sdk_session.sent if name == "CreateEndpointConfig"][-1]
    assert sent["AsyncInferenceConfig"] == api_requests.async_inference_config(settings)

    stub.add_response("search", {"Results": []})  # v2 looks for the group first; absent: it makes it
    stub.add_response("create_model_package_group", {"ModelPackageGroupArn": ARN})
    stub.add_response("create_model_package", {"ModelPackageArn": f"{ARN}/1"})
    model.register(content_types=api_requests.PACKAGE_CONTENT_TYPES, response_types=["application/json"],
                   model_package_group_name="byoc-classifier", approval_status="PendingManualApproval")
    theirs = sdk_session.request("CreateModelPackage")
    mine = api_requests.model_package(settings, SERVING_IMAGE, model_data, "d", "s3://b/m.json", "0" * 64, {}, False)
    for key in ("SupportedContentTypes", "SupportedResponseMIMETypes"):
        assert theirs["InferenceSpecification"][key] == mine["InferenceSpecification"][key]
    assert {k: theirs["InferenceSpecification"]["Containers"][0][k] for k in ("Image", "ModelDataUrl")} == \
        mine["InferenceSpecification"]["Containers"][0]
    assert theirs["ModelApprovalStatus"] == mine["ModelApprovalStatus"] == "PendingManualApproval"


# --- issue 26: a locked-down account's fields beside the SDK's --------------------------------------------------------

LOCKED_KEY = f"arn:aws:kms:{REGION}:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
LOCKED = {"network.subnets": ["subnet-0123456789abcdef0"], "network.security_groups": ["sg-0123456789abcdef0"],
          "network.isolation": True, "network.encrypt_inter_container": True, "kms.key_id": LOCKED_KEY,
          "training.instance_type": "ml.p3.2xlarge"}  # an EBS volume: it takes the volume key


def test_the_sdks_vpc_and_kms_fields_match_ours_on_a_training_job_and_a_model(sdk_session, tmp_path):
    """Estimator(subnets=, security_group_ids=, volume_kms_key=, output_kms_key=, enable_network_isolation=,
    encrypt_inter_container_traffic=) and a Model with the same VPC, isolation and key: the same fields, the same
    values, as our builders send them from the settings (network.*, kms.key_id)."""
    from sagemaker.model import Model

    from aws_support import write_settings
    from scripts import job_definition
    from scripts.aws import api_requests, settings as S

    settings = S.load(write_settings(tmp_path / "s.yaml", **LOCKED))
    from sagemaker.estimator import Estimator

    sdk_session.stubber.add_response("create_training_job", {"TrainingJobArn": ARN})
    Estimator(image_uri=TRAINING_IMAGE, role=ROLE, instance_count=1, instance_type="ml.p3.2xlarge",
              output_path=f"s3://{BUCKET}/byoc-classifier/output/", hyperparameters=dict(USER_HYPERPARAMETERS),
              sagemaker_session=sdk_session.session, subnets=list(settings.subnets),
              security_group_ids=list(settings.security_groups), volume_kms_key=LOCKED_KEY, output_kms_key=LOCKED_KEY,
              enable_network_isolation=True, encrypt_inter_container_traffic=True).fit(CHANNELS, wait=False,
                                                                                       logs=False)
    theirs = sdk_session.request("CreateTrainingJob")
    ours = api_requests.training_job(job_definition.load(), settings, "img-clf-20260102-030405", TRAINING_IMAGE,
                                     f"{DATA}/", ["train", "valid", "weights"], {"lr": "0.001"})
    for field in ("VpcConfig", "EnableNetworkIsolation", "EnableInterContainerTrafficEncryption"):
        assert theirs[field] == ours[field], field
    assert theirs["ResourceConfig"]["VolumeKmsKeyId"] == ours["ResourceConfig"]["VolumeKmsKeyId"] == LOCKED_KEY
    assert theirs["OutputDataConfig"]["KmsKeyId"] == ours["OutputDataConfig"]["KmsKeyId"] == LOCKED_KEY

    stub = sdk_session.stubber
    stub.add_response("create_model", {"ModelArn": ARN})
    stub.add_response("create_endpoint_config", {"EndpointConfigArn": ARN})
    stub.add_response("create_endpoint", {"EndpointArn": ARN})
    model_data = f"s3://{BUCKET}/byoc-classifier/output/job/output/model.tar.gz"
    Model(image_uri=SERVING_IMAGE, model_data=model_data, role=ROLE, sagemaker_session=sdk_session.session,
          vpc_config={"Subnets": list(settings.subnets), "SecurityGroupIds": list(settings.security_groups)},
          enable_network_isolation=True).deploy(initial_instance_count=1, instance_type="ml.m5.2xlarge",
                                                endpoint_name="img-clf", kms_key=LOCKED_KEY, wait=False)
    model = api_requests.model(settings, "img-clf-20260102-030405", SERVING_IMAGE, model_data)
    sent = sdk_session.request("CreateModel")
    assert sent["VpcConfig"] == model["VpcConfig"] and sent["EnableNetworkIsolation"] is model[
        "EnableNetworkIsolation"] is True
    config = api_requests.endpoint_config(settings, "img-clf-20260102-030405", "img-clf-20260102-030405")
    assert sdk_session.request("CreateEndpointConfig")["KmsKeyId"] == config["KmsKeyId"] == LOCKED_KEY
