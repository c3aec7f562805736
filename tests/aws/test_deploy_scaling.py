"""`make deploy` keeps the endpoint's auto scaling on every path (issue 13 item 4): an update that fails or
rolls back, an instance type change, NO_WAIT=1 (nothing registered on a Creating/Updating endpoint; what is
left is said, and `make deploy-finish` does it). botocore's Stubber against the real SageMaker and Application
Auto Scaling models, and a local moto server over HTTP."""
from __future__ import annotations

import json

import pytest
from botocore.stub import ANY

from aws_support import (
    BUCKET,
    FAKE_ARN,
    NOW,
    Stubs,
    arn,
    endpoint_config_description,
    endpoint_description,
    make_aws,
    put_images,
    record_tags,
    stub_alarm_states,
    stub_endpoint_tagged,
    stub_image,
    stub_live_config,
    stub_rollback_alarms,
    write_settings,
)
from scripts import orchestration
from scripts.aws import deploy, settings as S

OLD, NEW = "img-clf-20251231-235959", "img-clf-20260102-030405"
MODEL_DATA = f"s3://{BUCKET}/m/model.tar.gz"
TARGET = {"ServiceNamespace": "sagemaker", "ResourceId": "endpoint/img-clf/variant/AllTraffic",
          "ScalableDimension": "sagemaker:variant:DesiredInstanceCount"}
# Someone's scaling on the live endpoint (not this project's settings): 2-6 instances, 250 invocations each.
LIVE_TARGET = {**TARGET, "MinCapacity": 2, "MaxCapacity": 6, "RoleARN": FAKE_ARN, "CreationTime": NOW,
               "SuspendedState": {"DynamicScalingInSuspended": False, "DynamicScalingOutSuspended": False,
                                  "ScheduledScalingSuspended": False}}
LIVE_POLICY = {"PolicyARN": FAKE_ARN, "PolicyName": "invocations-250", **TARGET, "PolicyType": "TargetTrackingScaling",
               "TargetTrackingScalingPolicyConfiguration": {
                   "TargetValue": 250.0, "ScaleInCooldown": 600, "ScaleOutCooldown": 120,
                   "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}},
               "Alarms": [{"AlarmName": "a", "AlarmARN": FAKE_ARN}], "CreationTime": NOW}
RESTORED = [  # what putting it back sends: the same target and policy, no description-only fields
    ("register_scalable_target", {**TARGET, "MinCapacity": 2, "MaxCapacity": 6,
                                  "SuspendedState": LIVE_TARGET["SuspendedState"]}),
    ("put_scaling_policy", {"PolicyName": "invocations-250", **TARGET, "PolicyType": "TargetTrackingScaling",
                            "TargetTrackingScalingPolicyConfiguration":
                                LIVE_POLICY["TargetTrackingScalingPolicyConfiguration"]}),
]


@pytest.fixture
def endpoint(tmp_path, use, monkeypatch):
    """`make deploy` with stubbed clients; `changes`: settings (instance type, autoscaling)."""
    monkeypatch.setattr(orchestration, "timestamp", lambda now=None: "20260102-030405")

    def make(**changes):
        aws = make_aws(S.load(write_settings(tmp_path / "s.yaml", **changes)))
        use(aws, deploy)
        return aws, Stubs(aws)
    return make


def live_endpoint(stubs, scaled: bool, instance_type: str = "ml.m5.2xlarge"):
    """The endpoint exists (InService on OLD); the new model and config are made; its scaling is looked at."""
    sm, scaling = stubs("sagemaker"), stubs("application-autoscaling")
    stub_image(stubs, "byoc-classifier-serving")
    sm.add_response("describe_endpoint", endpoint_description("img-clf", "InService", OLD), {"EndpointName": "img-clf"})
    stub_live_config(stubs, OLD, instance_type=instance_type)
    sm.add_response("create_model", {"ModelArn": FAKE_ARN}, {"ModelName": NEW, "PrimaryContainer": ANY,
                                                            "ExecutionRoleArn": ANY, "Tags": ANY})
    sm.add_response("create_endpoint_config", {"EndpointConfigArn": FAKE_ARN}, None)
    stub_rollback_alarms(stubs)
    scaling.add_response("describe_scalable_targets", {"ScalableTargets": [LIVE_TARGET] if scaled else []},
                         {"ServiceNamespace": "sagemaker", "ResourceIds": [TARGET["ResourceId"]],
                          "ScalableDimension": TARGET["ScalableDimension"]})
    if scaled:
        scaling.add_response("describe_scaling_policies", {"ScalingPolicies": [LIVE_POLICY]},
                             {**{k: TARGET[k] for k in ("ServiceNamespace", "ResourceId", "ScalableDimension")}})


def expect_restored(stubs):
    for operation, params in RESTORED:
        stubs("application-autoscaling").add_response(operation, {"PolicyARN": FAKE_ARN, "Alarms": []}
                                                      if operation == "put_scaling_policy" else {}, params)


def rolled_back(stubs):
    stubs("sagemaker").add_response("update_endpoint", {"EndpointArn": FAKE_ARN}, None)
    stubs("sagemaker").add_response("describe_endpoint", endpoint_description(
        "img-clf", "InService", OLD, reason="The primary container did not pass the ping health check"),
        {"EndpointName": "img-clf"})
    stub_alarm_states(stubs)


def test_a_rolled_back_update_keeps_the_scaling_it_did_not_need_to_touch(endpoint, capsys):
    """The same instance type: the scaling stays registered through the update (nothing deregistered)."""
    aws, stubs = endpoint()
    live_endpoint(stubs, scaled=True)
    rolled_back(stubs)
    assert deploy.main(["--model-data", MODEL_DATA]) == 1
    stubs.verify()
    assert not [api for _, api, _ in aws.sent if api == "DeregisterScalableTarget"]
    err = capsys.readouterr().err
    assert f"the update of img-clf to {NEW} failed and was rolled back" in err
    assert f"it still serves {OLD} and its auto scaling was not touched" in err


def test_a_rolled_back_instance_type_change_registers_the_scaling_again_as_it_was(endpoint, capsys):
    aws, stubs = endpoint(**{"endpoint.instance_type": "ml.c5.xlarge"})
    live_endpoint(stubs, scaled=True)
    stubs("application-autoscaling").add_response("deregister_scalable_target", {}, TARGET)
    rolled_back(stubs)
    expect_restored(stubs)
    assert deploy.main(["--model-data", MODEL_DATA]) == 1
    stubs.verify()
    err = capsys.readouterr().err
    assert "taken off for the update (the instance type changes to ml.c5.xlarge)" in err
    assert "its auto scaling was registered again as it was" in err


def test_a_refused_update_registers_the_scaling_again_at_once(endpoint, capsys):
    aws, stubs = endpoint(**{"endpoint.instance_type": "ml.c5.xlarge"})
    live_endpoint(stubs, scaled=True)
    stubs("application-autoscaling").add_response("deregister_scalable_target", {}, TARGET)
    stubs("sagemaker").add_client_error("update_endpoint", "ResourceLimitExceeded", "ml.c5.xlarge for endpoint usage")
    expect_restored(stubs)
    assert deploy.main(["--model-data", MODEL_DATA]) == 1
    stubs.verify()
    err = capsys.readouterr().err
    assert "registered again as it was" in err and "UpdateEndpoint failed: ResourceLimitExceeded" in err


@pytest.mark.parametrize("autoscaling", [False, True])
def test_a_successful_instance_type_change_ends_with_scaling(endpoint, autoscaling):
    """AUTOSCALING=false: the endpoint's own scaling comes back as it was; true: the settings' scaling."""
    aws, stubs = endpoint(**{"endpoint.instance_type": "ml.c5.xlarge", "endpoint.autoscaling": autoscaling})
    live_endpoint(stubs, scaled=True)
    scaling, sm = stubs("application-autoscaling"), stubs("sagemaker")
    scaling.add_response("deregister_scalable_target", {}, TARGET)
    sm.add_response("update_endpoint", {"EndpointArn": FAKE_ARN}, None)
    sm.add_response("describe_endpoint", endpoint_description("img-clf", "Updating", OLD), {"EndpointName": "img-clf"})
    sm.add_response("describe_endpoint", endpoint_description("img-clf", "InService", NEW), {"EndpointName": "img-clf"})
    stub_endpoint_tagged(stubs, MODEL_DATA)
    if autoscaling:
        scaling.add_response("register_scalable_target", {}, {**TARGET, "MinCapacity": 1, "MaxCapacity": 2})
        scaling.add_response("put_scaling_policy", {"PolicyARN": FAKE_ARN, "Alarms": []},
                             {"PolicyName": "img-clf-invocations", **TARGET, "PolicyType": "TargetTrackingScaling",
                              "TargetTrackingScalingPolicyConfiguration": ANY})
    else:
        expect_restored(stubs)
    sm.add_response("describe_endpoint_config", endpoint_config_description(OLD, [OLD]), {"EndpointConfigName": OLD})
    sm.add_response("delete_endpoint_config", {}, {"EndpointConfigName": OLD})
    sm.add_response("delete_model", {}, {"ModelName": OLD})
    assert deploy.main(["--model-data", MODEL_DATA]) == 0
    stubs.verify()


def test_no_wait_registers_nothing_on_a_creating_endpoint_and_says_what_is_left(endpoint, capsys):
    aws, stubs = endpoint(**{"endpoint.autoscaling": True})
    sm = stubs("sagemaker")
    stub_image(stubs, "byoc-classifier-serving")
    sm.add_client_error("describe_endpoint", "ValidationException", 'Could not find endpoint "img-clf".')
    sm.add_response("create_model", {"ModelArn": FAKE_ARN}, None)
    sm.add_response("create_endpoint_config", {"EndpointConfigArn": FAKE_ARN}, None)
    sm.add_response("create_endpoint", {"EndpointArn": FAKE_ARN}, None)
    assert deploy.main(["--model-data", MODEL_DATA, "--no-wait"]) == 0
    stubs.verify()
    assert not [service for service, _, _ in aws.sent if service == "application-autoscaling"]
    err = capsys.readouterr().err
    assert "not waiting: endpoint img-clf is Creating" in err
    assert "`make deploy-finish` waits for it, will register its auto scaling (AUTOSCALING=true)" in err


def test_no_wait_update_leaves_the_old_config_and_hands_over_the_scaling_it_took_off(endpoint, capsys):
    aws, stubs = endpoint(**{"endpoint.instance_type": "ml.c5.xlarge"})
    live_endpoint(stubs, scaled=True)
    stubs("application-autoscaling").add_response("deregister_scalable_target", {}, TARGET)
    stubs("sagemaker").add_response("update_endpoint", {"EndpointArn": FAKE_ARN}, None)
    assert deploy.main(["--model-data", MODEL_DATA, "--no-wait"]) == 0
    stubs.verify()
    assert not [api for _, api, _ in aws.sent if api.startswith(("Delete", "Register", "PutScaling"))]
    err = capsys.readouterr().err
    assert "not waiting: endpoint img-clf is Updating" in err
    assert f"will record what it serves in its tags and delete the endpoint config {OLD} it replaces and its " \
           "model" in err
    commands = [line.strip() for line in err.splitlines() if line.strip().startswith("aws application-autoscaling")]
    assert [c.split()[2] for c in commands] == ["register-scalable-target", "put-scaling-policy"]
    sent = [json.loads(c.split("--cli-input-json ", 1)[1].strip("'")) for c in commands]
    assert sent == [params for _, params in RESTORED]  # exactly what the script would have sent


def test_deploy_finish_waits_registers_and_retires(endpoint, capsys):
    aws, stubs = endpoint(**{"endpoint.autoscaling": True})
    sm, scaling = stubs("sagemaker"), stubs("application-autoscaling")
    sm.add_response("describe_endpoint", endpoint_description("img-clf", "Updating", OLD), {"EndpointName": "img-clf"})
    sm.add_response("describe_endpoint", endpoint_description("img-clf", "InService", NEW), {"EndpointName": "img-clf"})
    scaling.add_response("register_scalable_target", {}, {**TARGET, "MinCapacity": 1, "MaxCapacity": 2})
    scaling.add_response("put_scaling_policy", {"PolicyARN": FAKE_ARN, "Alarms": []}, None)
    sm.add_response("describe_endpoint_config", endpoint_config_description(NEW, [NEW]), {"EndpointConfigName": NEW})
    sm.add_response("list_tags", {"Tags": record_tags(MODEL_DATA)}, {"ResourceArn": arn("endpoint-config", NEW)})
    stub_endpoint_tagged(stubs, MODEL_DATA)
    sm.add_response("list_endpoint_configs", {"EndpointConfigs": [
        {"EndpointConfigName": n, "EndpointConfigArn": FAKE_ARN, "CreationTime": NOW}
        for n in (NEW, OLD, "img-clf-manual")]}, {"NameContains": "img-clf", "MaxResults": 100})
    sm.add_response("delete_endpoint_config", {}, {"EndpointConfigName": OLD})
    sm.add_response("list_models", {"Models": [{"ModelName": n, "ModelArn": FAKE_ARN, "CreationTime": NOW}
                                               for n in (NEW, OLD)]}, {"NameContains": "img-clf", "MaxResults": 100})
    sm.add_response("delete_model", {}, {"ModelName": OLD})
    assert deploy.main(["--finish"]) == 0
    stubs.verify()
    out = capsys.readouterr().out
    assert "auto scaling registered" in out
    assert f"deleted endpoint config {OLD}" in out and f"deleted model {OLD}" in out


def test_no_wait_then_deploy_finish_on_moto(moto, use, monkeypatch, capsys):
    """Over HTTP: `make deploy NO_WAIT=1` registers no scaling (SageMaker would refuse it on a Creating
    endpoint); `make deploy-finish` registers it and deletes the config and model a second deploy replaced.
    (moto has no UpdateEndpoint: updates are covered with the Stubber above.)"""
    use(moto, deploy)
    put_images(moto, "byoc-classifier-serving")
    moto.settings.values.update({"autoscaling": True, "max_instances": 4})
    monkeypatch.setattr(orchestration, "timestamp", lambda now=None: "20260101-000000")
    scaling, sm = moto.client("application-autoscaling"), moto.client("sagemaker")
    assert deploy.main(["--model-data", MODEL_DATA, "--no-wait"]) == 0
    assert "`make deploy-finish` waits for it, will register its auto scaling" in capsys.readouterr().err
    assert scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []
    # an older deploy's leftovers (what a NO_WAIT update leaves behind)
    sm.create_model(ModelName=OLD, PrimaryContainer={"Image": "img", "ModelDataUrl": MODEL_DATA},
                    ExecutionRoleArn=moto.settings.role_arn)
    sm.create_endpoint_config(EndpointConfigName=OLD, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": OLD, "InstanceType": "ml.m5.2xlarge", "InitialInstanceCount": 1}])
    assert deploy.main(["--finish"]) == 0
    out = capsys.readouterr().out
    assert f"deleted endpoint config {OLD}" in out and f"deleted model {OLD}" in out
    targets = scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert [(t["ResourceId"], t["MinCapacity"], t["MaxCapacity"]) for t in targets] == [
        ("endpoint/img-clf/variant/AllTraffic", 1, 4)]
    policies = scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    assert [p["PolicyName"] for p in policies] == ["img-clf-invocations"]
    assert [c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]] == [
        "img-clf-20260101-000000"]
