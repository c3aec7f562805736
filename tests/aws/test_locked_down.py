"""A locked-down account (issue 26): jobs and models in the VPC and isolated, the customer managed key on every
request that takes one, the least-privilege policies derived from the dry runs, bootstrap and teardown, and the
bad settings and names refused before any request (issue 24 item 7)."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import botocore.session
import pytest
from botocore.stub import ANY

from aws_support import ACCOUNT, BUCKET, NOW, REGION, ROLE, Stubs, make_aws, write_settings
from scripts import REPO_ROOT, job_definition
from scripts.aws import (
    api_requests,
    bootstrap,
    deploy,
    dry_runs,
    iam_policy,
    lockdown,
    registry,
    settings as S,
    teardown,
    train,
    tune,
)
from scripts.aws.client import recording
from scripts.aws.settings import SettingsError

KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SUBNETS = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
GROUPS = ["sg-0123456789abcdef0"]
# EBS-only instance types everywhere: every volume can take the key (instance storage cannot: see below)
LOCKED = {"network.subnets": SUBNETS, "network.security_groups": GROUPS, "network.isolation": True,
          "network.encrypt_inter_container": True, "kms.key_id": KEY, "training.instance_type": "ml.p3.2xlarge"}
KMS_FIELD = re.compile(r"(?i)kms.*key(id)?$")  # KmsKeyId, VolumeKmsKeyId, SSEKMSKeyId, kmsKey, KMSMasterKeyID


@pytest.fixture(scope="module")
def locked_records(tmp_path_factory):
    path = write_settings(tmp_path_factory.mktemp("locked") / "settings.yaml", **LOCKED)
    return path, dry_runs.record(path)


@pytest.fixture(scope="module")
def plain_records(tmp_path_factory):
    path = write_settings(tmp_path_factory.mktemp("plain") / "settings.yaml")
    return path, dry_runs.record(path)


def every_request(records):
    return [(run, service, api, params) for run, calls in records for service, api, params in calls]


_MODELS = {}


def input_shape(service: str, api: str):
    if service not in _MODELS:
        _MODELS[service] = botocore.session.get_session().get_service_model(service)
    return _MODELS[service].operation_model(api).input_shape


def fields_in(shape, value, is_field, path: str = "") -> list[tuple[str, object]]:
    """(path, value) of every member of the structures the request holds that `is_field(name, member, holder)`
    picks, as botocore's model has them (the value None where the request leaves one out)."""
    found = []
    if shape.type_name == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if is_field(name, member, value):
                found.append((f"{path}.{name}", value.get(name)))
            elif name in value:
                found += fields_in(member, value[name], is_field, f"{path}.{name}")
    elif shape.type_name == "list" and isinstance(value, list):
        for index, item in enumerate(value):
            found += fields_in(shape.member, item, is_field, f"{path}[{index}]")
    return found


def _takes_a_key(name: str, member, holder: dict) -> bool:
    """A key field, or a wrapper left out that holds nothing but key fields (SecurityConfig)."""
    if member.type_name == "string":
        return KMS_FIELD.search(name) is not None
    return member.type_name == "structure" and name not in holder and bool(member.members) and all(
        m.type_name == "string" and KMS_FIELD.search(n) for n, m in member.members.items())


def key_fields(shape, value) -> list[tuple[str, object]]:
    """(path, value) of every field of the request that takes a KMS key."""
    return fields_in(shape, value, _takes_a_key)


# --- every request that takes a key carries it ------------------------------------------------------------------

def test_every_request_of_every_dry_run_that_takes_a_key_carries_it(locked_records):
    _, records = locked_records
    missing, carried = [], set()
    for run, service, api, params in every_request(records):
        if (service, api) == ("ecr", "PushImage"):  # the engine's push, not a boto3 request
            continue
        for path, value in key_fields(input_shape(service, api), params):
            if value != KEY:
                missing.append(f"make {run.target}: {service}.{api}{path}")
            else:
                carried.add(service + "." + api + re.sub(r"\[\d+\]", "[]", path))
        if service == "s3" and params.get("SSEKMSKeyId"):
            assert params["ServerSideEncryption"] == "aws:kms"
    assert not missing, "requests that take a KMS key without it:\n" + "\n".join(sorted(set(missing)))
    # the walk saw what the issue lists: volumes and outputs of jobs, the endpoint's volume, data capture, async
    # answers, batch output and volumes, uploads, the bucket's default and the repositories
    assert {"sagemaker.CreateTrainingJob.OutputDataConfig.KmsKeyId", "sagemaker.CreateTrainingJob.ResourceConfig"
            ".VolumeKmsKeyId", "sagemaker.CreateHyperParameterTuningJob.TrainingJobDefinition.ResourceConfig"
            ".VolumeKmsKeyId", "sagemaker.CreateEndpointConfig.KmsKeyId",
            "sagemaker.CreateEndpointConfig.DataCaptureConfig.KmsKeyId",
            "sagemaker.CreateEndpointConfig.AsyncInferenceConfig.OutputConfig.KmsKeyId",
            "sagemaker.CreateTransformJob.TransformOutput.KmsKeyId",
            "sagemaker.CreateTransformJob.TransformResources.VolumeKmsKeyId",
            "sagemaker.CreateModelPackage.SecurityConfig.KmsKeyId", "s3.PutObject.SSEKMSKeyId",
            "s3.PutBucketEncryption.ServerSideEncryptionConfiguration.Rules[].ApplyServerSideEncryptionByDefault"
            ".KMSMasterKeyID", "ecr.CreateRepository.encryptionConfiguration.kmsKey"} <= carried


NETWORK_FIELDS = ("VpcConfig", "EnableNetworkIsolation", "EnableInterContainerTrafficEncryption")
# CreateEndpointConfig's VpcConfig and EnableNetworkIsolation are for inference components (with its
# ExecutionRoleArn); an endpoint of models runs in each model's VPC and isolation, which CreateModel carries.
MODELS_NETWORK = {("CreateEndpointConfig", ".VpcConfig"), ("CreateEndpointConfig", ".EnableNetworkIsolation")}


def network_fields(shape, value) -> list[tuple[str, object]]:
    """(path, value) of every network field botocore's model has in the structures the request holds."""
    return fields_in(shape, value, lambda name, member, holder: name in NETWORK_FIELDS)


def test_every_request_that_takes_the_network_fields_carries_them(locked_records):
    """Read from botocore's models, so a new request (or a field SageMaker adds) is checked without a list here."""
    _, records = locked_records
    wanted = {"VpcConfig": {"SecurityGroupIds": GROUPS, "Subnets": SUBNETS}, "EnableNetworkIsolation": True,
              "EnableInterContainerTrafficEncryption": True}
    missing, carried = [], set()
    for run, service, api, params in every_request(records):
        if service != "sagemaker":
            continue
        for path, value in network_fields(input_shape(service, api), params):
            if (api, path) in MODELS_NETWORK:
                assert value is None, f"make {run.target}: {api}{path} is for inference components"
            elif value != wanted[path.rsplit(".", 1)[1]]:
                missing.append(f"make {run.target}: {api}{path} = {value!r}")
            else:
                carried.add(api + path)
    assert not missing, "requests that take a network field without it:\n" + "\n".join(sorted(set(missing)))
    assert {"CreateTrainingJob.VpcConfig", "CreateTrainingJob.EnableInterContainerTrafficEncryption",
            "CreateHyperParameterTuningJob.TrainingJobDefinition.VpcConfig", "CreateModel.VpcConfig",
            "CreateModel.EnableNetworkIsolation"} <= carried


def test_every_job_and_model_runs_in_the_vpc_isolated(locked_records):
    _, records = locked_records
    vpc = {"SecurityGroupIds": GROUPS, "Subnets": SUBNETS}
    seen = set()
    for run, _, api, params in every_request(records):
        job = params.get("TrainingJobDefinition", params) if api == "CreateHyperParameterTuningJob" else params
        if api in ("CreateTrainingJob", "CreateHyperParameterTuningJob", "CreateModel"):
            seen.add(api)
            assert job["VpcConfig"] == vpc and job["EnableNetworkIsolation"] is True, f"make {run.target}: {api}"
        if api in ("CreateTrainingJob", "CreateHyperParameterTuningJob"):
            assert job["EnableInterContainerTrafficEncryption"] is True
    assert seen == {"CreateTrainingJob", "CreateHyperParameterTuningJob", "CreateModel"}


def test_without_the_settings_no_request_carries_them(plain_records):
    _, records = plain_records
    for run, service, api, params in every_request(records):
        if (service, api) == ("ecr", "PushImage"):
            continue
        assert all(value is None for _, value in key_fields(input_shape(service, api), params)), (run.target, api)
        text = json.dumps(params, default=str)
        assert "VpcConfig" not in text and "EnableNetworkIsolation" not in text, (run.target, api)
    creates = [p for _, service, api, p in every_request(records) if api == "CreateRepository"]
    assert creates and all(p["encryptionConfiguration"] == {"encryptionType": "AES256"} for p in creates)


def test_instance_storage_takes_no_volume_key(tmp_path):
    """SageMaker refuses a volume key on instance types with local NVMe storage (encrypted in hardware)."""
    settings = S.load(write_settings(tmp_path / "s.yaml", **{**LOCKED, "training.instance_type": "ml.g4dn.xlarge",
                                                             "endpoint.instance_type": "ml.g5.xlarge",
                                                             "endpoint.data_capture": True}))
    definition = job_definition.load()
    request = api_requests.training_job(definition, settings, "img-clf-20260101-000000", "img", "s3://b/d/",
                                        ["train", "valid", "weights"], {"lr": "0.01"})
    assert "VolumeKmsKeyId" not in request["ResourceConfig"] and request["OutputDataConfig"]["KmsKeyId"] == KEY
    config = api_requests.endpoint_config(settings, "img-clf-1", "img-clf-1")
    assert "KmsKeyId" not in config and config["DataCaptureConfig"]["KmsKeyId"] == KEY
    assert [lockdown.has_instance_storage(t) for t in ("ml.g4dn.xlarge", "ml.p4d.24xlarge", "ml.m5d.large",
                                                       "ml.g5.2xlarge", "ml.m5.large", "ml.p3.2xlarge")] == \
        [True, True, True, True, False, False]


def test_a_serverless_endpoint_cannot_be_in_a_vpc(tmp_path):
    settings = S.load(write_settings(tmp_path / "s.yaml", **{**LOCKED, "endpoint.type": "serverless"}))
    with pytest.raises(SettingsError, match="a serverless endpoint cannot run in a VPC"):
        api_requests.check_endpoint_type(settings)


# --- isolation: nothing downloaded in a container --------------------------------------------------------------

def data_set(root: Path, weights: bool) -> Path:
    dry_runs.sample_data(root)
    if not weights:
        (root / "weights" / "weights.pth").unlink()
        (root / "weights").rmdir()
    return root


def test_isolation_refuses_a_job_that_would_download_its_weights(tmp_path, capsys):
    path = write_settings(tmp_path / "s.yaml", **LOCKED)
    no_weights = data_set(tmp_path / "plain", weights=False)
    argv = ["--settings", str(path), "--dry-run", "--data", str(no_weights)]
    assert train.main(argv + ["--hp", "epochs=1"]) == 1
    error = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "setting network.isolation is on" in error[0]
    err = error[0]
    assert "make upload-data DATA=... WEIGHTS=resnet50-0676ba61.pth" in err and "efficientnet_lite0" in err
    assert tune.main(argv + ["--no-cache"]) == 1
    assert "tuning job's trials would download resnet50's pretrained weights" in capsys.readouterr().err
    # the fixes: weights in the data set, an architecture whose weights ship with the image, no weights at all
    assert train.main(argv + ["--hp", "model_name=efficientnet_lite0"]) == 0
    assert train.main(argv + ["--hp", "pretrained=false"]) == 0
    with_weights = data_set(tmp_path / "weights", weights=True)
    assert train.main(["--settings", str(path), "--dry-run", "--data", str(with_weights)]) == 0


# --- settings and names refused before any request ---------------------------------------------------------------

# --- tags: every new resource carries the settings' tags ---------------------------------------------------------

# Requests whose model takes tags that are not a new resource of ours to tag: the serving record an update puts
# on the endpoint (AddTags), the auto scaling target (untagged, as before issue 26).
UNTAGGED = {("sagemaker", "AddTags"), ("application-autoscaling", "RegisterScalableTarget")}


def test_every_new_resource_carries_the_settings_tags(locked_records):
    path, records = locked_records
    tags = S.load(path).tag_list
    assert tags
    untagged, tagged = [], set()
    for run, service, api, params in every_request(records):
        if (service, api) in UNTAGGED | {("ecr", "PushImage")}:
            continue
        fields = [name for name in input_shape(service, api).members if name.lower() == "tags"]
        given = params.get(fields[0]) if fields else None
        if fields and not all(tag in (given or []) for tag in tags):
            untagged.append(f"make {run.target}: {service}.{api}")
        elif fields:
            tagged.add(api)
    assert not untagged, "new resources without the settings' tags:\n" + "\n".join(sorted(set(untagged)))
    bucket_tags = [p for _, _, api, p in every_request(records) if api == "PutBucketTagging"]
    assert bucket_tags and bucket_tags[0]["Tagging"]["TagSet"] == tags  # CreateBucket takes none: tagged after
    assert {"CreateRole", "CreateRepository", "PutMetricAlarm", "CreateTrainingJob", "CreateModel"} <= tagged


@pytest.mark.parametrize("changes, words", [
    ({"network.subnets": ["subnet-12"], "network.security_groups": GROUPS}, "network.subnets"),
    ({"network.subnets": SUBNETS, "network.security_groups": ["sg-nothex0"]}, "not a security group id"),
    ({"network.subnets": SUBNETS}, "network.subnets is set but network.security_groups is empty"),
    ({"kms.key_id": "alias/my-key"}, "kms.key_id"),
    ({"kms.key_id": "arn:aws:kms:us-east-1:123456789012:key/not-a-key"}, "not a KMS key ARN"),
    ({"kms.key_id": KEY.replace(REGION, "eu-west-1")}, "kms.key_id is a key in eu-west-1, but aws.region is us-east-1"),
    ({"aws.region": "us-east-9"}, "aws.region = 'us-east-9'"),
    ({"lifecycle.checkpoint_days": 1, "training.max_wait_seconds": 172800}, "would expire checkpoints before"),
])
def test_bad_settings_stop_before_any_request(tmp_path, changes, words, capsys):
    path = write_settings(tmp_path / "s.yaml", **changes)
    for module, argv in ((train, ["--hp", "epochs=1"]), (deploy, ["--job", "img-clf-20260101-000000"]),
                         (bootstrap, []), (iam_policy, [])):
        with recording() as calls:
            assert module.main(["--settings", str(path)] + argv) == 1
        err = capsys.readouterr().err
        assert words in err and err.startswith("error: setting ") and err.count("\n") == 1, (module, err)
        assert calls == []


NAME = "img-clf;touch-x"


@pytest.mark.parametrize("module, argv, words", [
    (deploy, ["--job", NAME], "training job (JOB=) name 'img-clf;touch-x'"),
    (deploy, ["--tuning", "t" * 33], "tuning job (TUNING=) name"),
    (deploy, ["--model-data", "s3://bucket-only/"], "MODEL_DATA=s3://bucket-only/ names no object"),
    (deploy, ["--model-data", "s3://Bad_Bucket/m/model.tar.gz"], "'Bad_Bucket' is not a valid S3 bucket name"),
    (registry, ["register", "--job=-starts-with-hyphen"], "training job (JOB=) name"),
    (registry, ["register", "--model-data", "bucket/model.tar.gz"], "not an s3://bucket/key URI"),
    (train, ["--tuning", NAME], "tuning job (TUNING=) name"),
    (train, ["--init-model", "s3://ok-bucket/"], "INIT_MODEL=s3://ok-bucket/ names no object"),
    (train, ["--data-s3", "s3://x/data/"], "'x' is not a valid S3 bucket name"),
    (tune, ["--attach", "t" * 33], "tuning job name"),
    (tune, ["--parent", "a b;c"], "tuning job name 'b;c'"),
])
def test_bad_names_and_uris_stop_before_any_request(settings_path, module, argv, words, capsys):
    with recording() as calls:
        assert module.main(argv + ["--settings", str(settings_path)]) == 1
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1
    assert calls == []


@pytest.mark.parametrize("target, argv, words", [
    ("batch", ["--data-s3", "s3://bkt/in/", "--model", "m" * 64], "SageMaker model (MODEL=) name"),
    ("batch", ["--data-s3", "s3://A_b/in/"], "DATA_S3=s3://A_b/in/: 'A_b' is not a valid S3 bucket name"),
    ("batch", ["--data-s3", "s3://bkt/in/", "--job", "x.y"], "training job (JOB=) name 'x.y'"),
    ("logs", ["training", "job/with/slashes"], "training job (JOB=) name"),
    ("report", ["t" * 40, "--sagemaker"], "SageMaker tuning job (TUNING=) name"),
])
def test_every_other_target_that_takes_a_name_checks_it(settings_path, target, argv, words, capsys):
    from scripts.aws import batch_transform, logs
    from scripts.reports import tuning_cli

    module = {"batch": batch_transform, "logs": logs, "report": tuning_cli}[target]
    with recording() as calls:
        assert module.main(argv + ["--settings", str(settings_path)]) == 1
    assert words in capsys.readouterr().err
    assert calls == []


# --- the policies ----------------------------------------------------------------------------------------------------

def allows(document: dict, grant: iam_policy.Grant) -> bool:
    """IAM's decision for one action on one resource (a dry run's placeholders match anything), with the
    grant's condition keys as the request context."""
    context = {}
    for block in json.loads(grant.condition).values() if grant.condition else ():
        for key, value in block.items():
            context[key] = value
    for statement in document["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if grant.action not in actions or not any(iam_policy.matches(r, grant.resource) for r in resources):
            continue
        condition = statement.get("Condition", {})
        if all(key in context and all(any(iam_policy.globs_meet(p, v) for p in _listed(wanted))
                                      for v in _listed(context[key]))
               for block in condition.values() for key, wanted in block.items()):
            return True
    return False


def _listed(value) -> list[str]:
    return value if isinstance(value, list) else [value]


@pytest.fixture(scope="module")
def locked_documents(locked_records):
    path, records = locked_records
    return iam_policy.documents(path, S.load(path))


def test_every_operation_of_every_dry_run_is_allowed(locked_records, locked_documents):
    path, records = locked_records
    scope = iam_policy.Scope(S.load(path), job_definition.load().name_prefix)
    denied = []
    for run, calls in records:
        document = locked_documents["admin" if run.admin else "caller"]
        for service, api, params in calls:
            for grant in iam_policy.grants(scope, service, api, params):
                if grant.action == "s3:ListBucket" and params.get("Prefix"):  # the request's own prefix
                    grant = iam_policy.Grant(grant.action, grant.resource,
                                             json.dumps({"StringLike": {"s3:prefix": params["Prefix"]}}))
                if not allows(document, grant):
                    denied.append(f"make {run.target}: {grant.action} on {grant.resource}")
    assert not denied, "\n".join(sorted(set(denied)))
    caller = json.dumps(locked_documents["caller"])
    assert "iam:CreateRole" not in caller and "iam:PutRolePolicy" not in caller  # the administrator's only
    assert '"Resource": "*"' not in json.dumps([s for s in locked_documents["caller"]["Statement"]
                                               if any(a.startswith(("s3:", "iam:", "kms:")) for a in s["Action"])])


def test_no_granted_operation_is_unused(locked_records, locked_documents):
    path, records = locked_records
    scope = iam_policy.Scope(S.load(path), job_definition.load().name_prefix)
    for kind, runs in (("caller", [r for r in records if not r[0].admin]),
                       ("admin", [r for r in records if r[0].admin])):
        used = {(g.action, pattern) for g in iam_policy.request_grants(scope, runs)
                for pattern in iam_policy.scoped(scope, g, scope.patterns())}
        for statement in locked_documents[kind]["Statement"]:
            for action in statement["Action"]:
                for resource in _listed(statement["Resource"]):
                    assert (action, resource) in used, f"{kind}: {action} on {resource} is granted, no target uses it"


def test_the_monitors_requests_are_in_the_policies(locked_records, locked_documents):
    """Issue 27's requests: make deploy's monitor alarms, make monitor-report ENDPOINT=...'s capture reads and
    PUBLISH=1's metrics (in their namespace only), and make teardown finding those alarms."""
    _, records = locked_records
    caller, part = locked_documents["caller"], "aws"

    def alarm(name: str) -> str:
        return f"arn:{part}:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"

    def metrics(namespace: str) -> iam_policy.Grant:
        return iam_policy.Grant("cloudwatch:PutMetricData", "*",
                                json.dumps({"StringEquals": {"cloudwatch:namespace": namespace}}))

    drift, low_confidence = api_requests.monitor_alarm_names("img-clf")
    for name in (drift, low_confidence):
        assert allows(caller, iam_policy.Grant("cloudwatch:PutMetricAlarm", alarm(name)))
        assert allows(caller, iam_policy.Grant("cloudwatch:DeleteAlarms", alarm(name)))
    capture = f"arn:{part}:s3:::{BUCKET}/byoc-classifier/data-capture/img-clf/img-clf/AllTraffic/2026/01/01/00/x.jsonl"
    assert allows(caller, iam_policy.Grant("s3:GetObject", capture))
    assert allows(caller, iam_policy.Grant("kms:Decrypt", KEY))  # capture files are written with the key
    assert allows(caller, metrics("byoc-classifier/monitor")) and not allows(caller, metrics("AWS/SageMaker"))
    # what the real run reads beyond the dry run (the served model, the endpoint's latency) other targets need too
    config = f"arn:{part}:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/img-clf-20260101-000000"
    for action, resource in (("sagemaker:DescribeEndpointConfig", config), ("sagemaker:ListTags", config),
                             ("sagemaker:DescribeModel", config.replace("endpoint-config", "model")),
                             ("s3:GetObject", f"arn:{part}:s3:::{BUCKET}/byoc-classifier/output/j/output/model.tar.gz"),
                             ("cloudwatch:GetMetricData", "*")):
        assert allows(caller, iam_policy.Grant(action, resource)), action
    asked = [params["AlarmNames"] for run, calls in records if run.target == "teardown"
             for _, api, params in calls if api == "DescribeAlarms"]
    assert asked and {drift, low_confidence} <= set(asked[0])


def call_sites() -> set[tuple[str, str]]:
    """(service, API name) of every request the scripts can send: each aws.call / aws.paginate with literal names,
    and the operations deploy.leftovers lists."""
    session = botocore.session.get_session()
    found = {("sagemaker", "list_models"), ("sagemaker", "list_endpoint_configs")}
    for path in (REPO_ROOT / "scripts").rglob("*.py"):  # every script that talks to AWS (aws, reports, monitor)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in ("call", "paginate") and len(node.args) >= 2 \
                    and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args[:2]):
                found.add((node.args[0].value, node.args[1].value))
    names = {}
    for service, operation in found:
        model = session.get_service_model(service)
        names[(service, operation)] = next(api for api in model.operation_names
                                           if botocore.xform_name(api) == operation)
    return {(service, api) for (service, _), api in names.items()}


def test_every_call_site_is_reached_by_a_dry_run(locked_records, plain_records):
    recorded = {(service, api) for records in (locked_records[1], plain_records[1])
                for _, service, api, _ in every_request(records)}
    missing = call_sites() - recorded
    assert not missing, f"operations no target's dry run shows (so no policy grants them): {sorted(missing)}"


def test_the_execution_role_reads_and_writes_what_its_jobs_are_given(locked_records, locked_documents):
    path, records = locked_records
    role = locked_documents["execution-role"]
    settings = S.load(path)
    part = settings.partition
    for _, service, api, params in every_request(records):
        if service != "sagemaker" or not api.startswith("Create"):
            continue
        for uri in (u for p in iam_policy.READS for u in iam_policy.values_at(params, p)):
            bucket, key = api_requests.split_s3_uri(uri)
            assert allows(role, iam_policy.Grant("s3:GetObject", f"arn:{part}:s3:::{bucket}/{key}x")), (api, uri)
        for uri in (u for p in iam_policy.WRITES for u in iam_policy.values_at(params, p)):
            bucket, key = api_requests.split_s3_uri(uri)
            assert allows(role, iam_policy.Grant("s3:PutObject", f"arn:{part}:s3:::{bucket}/{key}x")), (api, uri)
    for action in ("kms:GenerateDataKey", "kms:Decrypt", "kms:CreateGrant"):
        assert allows(role, iam_policy.Grant(action, KEY))
    assert allows(role, iam_policy.Grant("ec2:CreateNetworkInterface", "*"))
    assert allows(role, iam_policy.Grant("ecr:BatchGetImage", f"arn:{part}:ecr:{REGION}:{ACCOUNT}:repository/"
                                                              f"{settings.training_repository}"))
    assert not allows(role, iam_policy.Grant("s3:GetObject", f"arn:{part}:s3:::{BUCKET}/elsewhere/x"))
    trust = locked_documents["execution-role-trust"]["Statement"][0]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}


def test_make_iam_policy_writes_the_four_documents(locked_records, tmp_path, capsys):
    path, _ = locked_records
    assert iam_policy.main(["--settings", str(path), "--out", str(tmp_path / "iam")]) == 0
    written = sorted(p.name for p in (tmp_path / "iam").iterdir())
    assert written == sorted(iam_policy.FILES.values())
    caller = json.loads((tmp_path / "iam" / "caller-policy.json").read_text())
    assert any("iam:PassRole" in s["Action"] and s["Resource"] == ROLE for s in caller["Statement"])
    unset = write_settings(tmp_path / "unset.yaml", **{"aws.role_arn": ""})
    assert iam_policy.main(["--settings", str(unset)]) == 1
    assert "aws.role_arn is not set" in capsys.readouterr().err


def test_a_policy_over_the_managed_policy_limit_is_written_in_parts(locked_documents, tmp_path, monkeypatch):
    monkeypatch.setattr(iam_policy, "MANAGED_POLICY_LIMIT", 2000)
    files = iam_policy.written_files(locked_documents)
    parts = [name for name in files if name.startswith("caller-policy")]
    assert parts[:2] == ["caller-policy.json", "caller-policy-2.json"] and len(parts) >= 3
    assert all(iam_policy.size(files[name]) <= 2000 for name in parts)
    assert [s for name in parts for s in files[name]["Statement"]] == locked_documents["caller"]["Statement"]
    assert files["execution-role-policy.json"] == locked_documents["execution-role"]  # inline: never split
    (tmp_path / "admin-policy-7.json").write_text("{}")  # a part an earlier run wrote
    (tmp_path / "notes.json").write_text("{}")  # someone else's file
    iam_policy.write(tmp_path, files)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*files, "notes.json"])


@pytest.mark.slow
def test_long_names_split_a_policy_into_managed_policies_iam_accepts(tmp_path, capsys):
    """A 63-character bucket and a 47-character endpoint take the caller's policy past IAM's 6,144 characters of
    a managed policy: it is written in parts, each under the limit, together the whole policy."""
    names = {"s3.bucket": "b" * 63, "endpoint.name": "e" * 47}
    path = write_settings(tmp_path / "long.yaml", **LOCKED, **names)
    whole = iam_policy.documents(path, S.load(path))
    assert iam_policy.size(whole["caller"]) > iam_policy.MANAGED_POLICY_LIMIT
    out = tmp_path / "iam"
    out.mkdir()
    (out / "caller-policy-9.json").write_text("{}")  # a part of an earlier run, no longer needed
    assert iam_policy.main(["--settings", str(path), "--out", str(out)]) == 0
    assert "caller-policy-2.json" in capsys.readouterr().err
    parts = sorted(out.glob("caller-policy*.json"))
    assert [p.name for p in parts] == ["caller-policy-2.json", "caller-policy.json"]
    documents = [json.loads(p.read_text()) for p in reversed(parts)]
    assert all(iam_policy.size(d) <= iam_policy.MANAGED_POLICY_LIMIT for d in documents)
    assert [s for d in documents for s in d["Statement"]] == whole["caller"]["Statement"]
    assert iam_policy.managed_parts(whole["execution-role"]) == [whole["execution-role"]]  # short: one part


# --- bootstrap and teardown (Stubber) ---------------------------------------------------------------------------

@pytest.fixture
def locked(tmp_path):
    return S.load(write_settings(tmp_path / "locked.yaml", **LOCKED))


def test_bootstrap_creates_the_role_bucket_and_repositories(locked):
    aws = make_aws(locked)
    stubs = Stubs(aws)
    policy, trust = {"Version": "2012-10-17", "Statement": []}, api_requests.sagemaker_trust_policy(ACCOUNT)
    stubs("sts").add_response("get_caller_identity", {"Account": ACCOUNT}, {})
    stubs("iam").add_client_error("get_role", "NoSuchEntity", http_status_code=404,
                                  expected_params={"RoleName": "SageMakerRole"})
    stubs("iam").add_response("create_role", {"Role": {"Path": "/", "RoleName": "SageMakerRole", "RoleId": "A" * 16,
                                                        "Arn": ROLE, "CreateDate": NOW}},
                              api_requests.create_role(locked, trust))
    stubs("iam").add_response("put_role_policy", {}, api_requests.put_role_policy(locked, policy))
    stubs("s3").add_client_error("get_bucket_location", "NoSuchBucket", http_status_code=404,
                                 expected_params={"Bucket": BUCKET})
    stubs("s3").add_response("create_bucket", {}, {"Bucket": BUCKET, "ObjectOwnership": "BucketOwnerEnforced"})
    stubs("s3").add_response("put_bucket_encryption", {}, {"Bucket": BUCKET, "ServerSideEncryptionConfiguration": {
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": KEY},
                   "BucketKeyEnabled": True}]}})
    stubs("s3").add_response("put_public_access_block", {}, {"Bucket": BUCKET, "PublicAccessBlockConfiguration": {
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}})
    stubs("s3").add_response("put_bucket_lifecycle_configuration", {}, api_requests.bucket_lifecycle(locked))
    stubs("s3").add_response("put_bucket_tagging", {}, {"Bucket": BUCKET, "Tagging": {"TagSet": locked.tag_list}})
    for repository in (locked.training_repository, locked.serving_repository):
        stubs("ecr").add_client_error("describe_repositories", "RepositoryNotFoundException",
                                      expected_params={"repositoryNames": [repository]})
        stubs("ecr").add_response("create_repository", {"repository": {"repositoryUri": f"r/{repository}"}}, {
            "repositoryName": repository, "imageTagMutability": "MUTABLE",
            "imageScanningConfiguration": {"scanOnPush": True},
            "encryptionConfiguration": {"encryptionType": "KMS", "kmsKey": KEY}, "tags": locked.tag_list})
    done = bootstrap.bootstrap(aws, policy, trust)
    stubs.verify()
    assert done[0].startswith("execution role SageMakerRole: created") and "SSE-KMS" in done[1]
    rules = {rule["ID"]: rule for rule in api_requests.bucket_lifecycle(locked)["LifecycleConfiguration"]["Rules"]}
    assert rules["checkpoint-expiry"]["Filter"] == {"Prefix": "byoc-classifier/checkpoints/"}
    assert rules["feature-cache-expiry"]["Expiration"] == {"Days": 30}


def test_bootstrap_leaves_an_existing_bucket_as_it_is_and_says_what_it_lacks(locked):
    aws = make_aws(locked)
    stubs = Stubs(aws)
    stubs("s3").add_response("get_bucket_location", {"LocationConstraint": "eu-west-1"}, {"Bucket": BUCKET})
    with pytest.raises(bootstrap.AwsError, match="bucket test-bucket is in eu-west-1, aws.region is us-east-1"):
        bootstrap.check_bucket(aws, bootstrap.bucket_region(aws))
    stubs("s3").add_response("get_bucket_encryption", {"ServerSideEncryptionConfiguration": {"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}}, {"Bucket": BUCKET})
    stubs("s3").add_client_error("get_public_access_block", "NoSuchPublicAccessBlockConfiguration",
                                 expected_params={"Bucket": BUCKET})
    notes = bootstrap.check_bucket(aws, REGION)
    stubs.verify()
    assert "not kms.key_id" in notes[0] and "put-bucket-encryption" in notes[0]
    assert "public access is not blocked" in notes[1]


CONFIG_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/img-clf-20260101-000000"


def test_teardown_lists_first_and_asks(settings, monkeypatch, capsys):
    aws = make_aws(settings)
    stubs = Stubs(aws)
    sm = stubs("sagemaker")
    sm.add_client_error("describe_endpoint", "ValidationException", "Could not find endpoint img-clf",
                        expected_params={"EndpointName": "img-clf"})
    sm.add_response("list_endpoint_configs", {"EndpointConfigs": [{
        "EndpointConfigName": "img-clf-20260101-000000", "EndpointConfigArn": CONFIG_ARN, "CreationTime": NOW}]},
        {"NameContains": "img-clf", "MaxResults": 100})
    sm.add_response("describe_endpoint_config", {"EndpointConfigName": "img-clf-20260101-000000",
                                                 "EndpointConfigArn": CONFIG_ARN, "CreationTime": NOW,
                                                 "ProductionVariants": [{"VariantName": "AllTraffic",
                                                                         "ModelName": "img-clf-20260101-000000"}]},
                    {"EndpointConfigName": "img-clf-20260101-000000"})
    sm.add_response("list_models", {"Models": []}, {"NameContains": "img-clf", "MaxResults": 100})
    stubs("cloudwatch").add_response("describe_alarms", {"MetricAlarms": [{"AlarmName": "img-clf-5xx-errors"}]},
                                     {"AlarmNames": ANY})
    stubs("logs").add_response("describe_log_groups", {"logGroups": []},
                               {"logGroupNamePrefix": "/aws/sagemaker/Endpoints/img-clf"})
    items = teardown.inventory(aws, everything=False)
    assert [str(i) for i in items] == ["endpoint config img-clf-20260101-000000", "model img-clf-20260101-000000",
                                       "alarms img-clf-5xx-errors"]
    monkeypatch.setattr(teardown.sys.stdin, "isatty", lambda: False, raising=False)
    with pytest.raises(teardown.AwsError, match="not asking without a terminal: YES=1"):
        teardown.confirmed(items, yes=False)
    monkeypatch.setattr(teardown.sys.stdin, "isatty", lambda: True, raising=False)
    assert teardown.confirmed(items, yes=False, ask=lambda _: "no") is False
    assert teardown.confirmed(items, yes=False, ask=lambda _: "yes") is True
    sm.add_response("delete_endpoint_config", {}, {"EndpointConfigName": "img-clf-20260101-000000"})
    sm.add_response("delete_model", {}, {"ModelName": "img-clf-20260101-000000"})
    stubs("cloudwatch").add_response("delete_alarms", {}, {"AlarmNames": ["img-clf-5xx-errors"]})
    assert teardown.remove(items) == [str(i) for i in items]
    stubs.verify()


# --- against the local moto server: IAM, the bucket's settings, ECR, KMS ----------------------------------------

@pytest.fixture
def moto_account(moto_server, monkeypatch):
    """A clean moto (reset) with the scripts pointed at it, and a customer managed key there."""
    import urllib.request

    import boto3

    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST"), timeout=10).read()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    key = session.client("kms").create_key(Description="byoc-classifier test key")["KeyMetadata"]["Arn"]
    return session, key


def test_bootstrap_upload_and_teardown_against_moto(moto_account, tmp_path, capsys):
    from scripts.aws import upload_data

    session, key = moto_account
    path = write_settings(tmp_path / "s.yaml", **{**LOCKED, "kms.key_id": key, "s3.bucket": "locked-down-bucket"})
    settings = S.load(path)
    assert bootstrap.main(["--settings", str(path)]) == 0
    out = capsys.readouterr().out
    assert "execution role SageMakerRole: created" in out and "bucket locked-down-bucket: created" in out
    iam, s3, ecr = session.client("iam"), session.client("s3"), session.client("ecr")
    role = iam.get_role(RoleName="SageMakerRole")["Role"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    written = iam.get_role_policy(RoleName="SageMakerRole", PolicyName=api_requests.ROLE_POLICY_NAME)
    assert written["PolicyDocument"] == iam_policy.execution_role(path, settings)[0]
    encryption = s3.get_bucket_encryption(Bucket="locked-down-bucket")["ServerSideEncryptionConfiguration"]
    assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms",
                                                                            "KMSMasterKeyID": key}
    block = s3.get_public_access_block(Bucket="locked-down-bucket")["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    rules = s3.get_bucket_lifecycle_configuration(Bucket="locked-down-bucket")["Rules"]
    assert {r["ID"] for r in rules} == {"abort-incomplete-uploads", "feature-cache-expiry", "checkpoint-expiry"}
    repositories = ecr.describe_repositories()["repositories"]
    assert sorted(r["repositoryName"] for r in repositories) == ["byoc-classifier-serving", "byoc-classifier-training"]
    assert all(r["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": key} for r in repositories)

    assert bootstrap.main(["--settings", str(path)]) == 0  # a second time: nothing made twice, the policy renewed
    out = capsys.readouterr().out
    assert "exists; its policy byoc-classifier-execution set to the current one" in out
    assert "bucket locked-down-bucket: exists, left as it is" in out and "note:" not in out

    data = dry_runs.sample_data(tmp_path / "set")
    upload = ["--settings", str(path), "--data", str(data), "--weights", str(data / "weights" / "weights.pth")]
    assert upload_data.main(upload) == 0
    head = s3.head_object(Bucket="locked-down-bucket", Key="byoc-classifier/data/set/train/a/0.png")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key
    capsys.readouterr()
    assert upload_data.main(upload) == 0
    assert "uploaded 0 file(s)" in capsys.readouterr().out  # encrypted with the key already: unchanged

    assert teardown.main(["--settings", str(path), "--all", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "deleted execution role SageMakerRole" in out and "deleted bucket" in out
    assert not [r for r in iam.list_roles()["Roles"] if r["RoleName"] == "SageMakerRole"]
    assert ecr.describe_repositories()["repositories"] == []
    assert "locked-down-bucket" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert teardown.main(["--settings", str(path), "--all", "--yes"]) == 0
    assert "nothing of this project's to delete" in capsys.readouterr().out


def test_teardown_keeps_a_bucket_and_role_it_did_not_make(moto_account, tmp_path, capsys):
    session, key = moto_account
    path = write_settings(tmp_path / "s.yaml", **{"s3.bucket": "shared-bucket"})
    s3 = session.client("s3")
    s3.create_bucket(Bucket="shared-bucket")
    s3.put_object(Bucket="shared-bucket", Key="byoc-classifier/output/j/output/model.tar.gz", Body=b"m")
    s3.put_object(Bucket="shared-bucket", Key="someone-else/file", Body=b"x")
    session.client("iam").create_role(RoleName="SageMakerRole", AssumeRolePolicyDocument=json.dumps(
        api_requests.sagemaker_trust_policy(ACCOUNT)))
    assert teardown.main(["--settings", str(path), "--all", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "deleted S3 prefix s3://shared-bucket/byoc-classifier/output/" in out
    assert "deleted bucket" not in out and "deleted execution role" not in out
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="shared-bucket")["Contents"]] == ["someone-else/file"]
