"""make batch-transform: the CreateTransformJob request against the service model and the SageMaker Python
SDK's Transformer, the whole sequence against the Stubber and moto, and bad input refused with a clear error."""
from __future__ import annotations

import json

import pytest
from botocore.stub import ANY
from botocore.validate import validate_parameters

from aws_support import (
    BUCKET,
    FAKE_ARN,
    NOW,
    REGION,
    ROLE,
    TAG,
    credential_free_env,
    make,
    make_aws,
    stub_image,
    training_description,
)
from scripts import orchestration
from scripts.aws import api_requests, batch_transform

STAMP = "20260102-030405"
JOB = f"img-clf-batch-{STAMP}"
INPUT = f"s3://{BUCKET}/images/test/"
OUTPUT = f"s3://{BUCKET}/byoc-classifier/transform/{JOB}"
SERVING_IMAGE = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/byoc-classifier-serving:{TAG}"


@pytest.fixture(autouse=True)
def fixed_time(monkeypatch):
    monkeypatch.setattr(orchestration, "timestamp", lambda now=None: STAMP)


def answer(name: str, index: int) -> bytes:
    """What the serving handler answers for one image: every class, the best first."""
    other = "coat" if name != "coat" else "shirt"
    classes = [{"name": name, "index": index, "probability": 0.9},
               {"name": other, "index": 1 - index, "probability": 0.1}]
    return json.dumps({"predictions": [{"classes": classes}]}).encode()


# --- the request ----------------------------------------------------------------------------------------

def test_transform_request_is_valid_and_one_image_per_request(settings):
    request = api_requests.transform_job(settings, JOB, "img-clf-20260101-000000", INPUT, OUTPUT + "/", "image/png")
    shape = make_aws(settings).client("sagemaker").meta.service_model.operation_model("CreateTransformJob").input_shape
    validate_parameters(request, shape)  # raises on any field the service model does not allow
    assert request["BatchStrategy"] == "SingleRecord" and request["MaxPayloadInMB"] == 6
    assert request["TransformInput"] == {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": INPUT}},
                                         "ContentType": "image/png", "CompressionType": "None", "SplitType": "None"}
    assert request["TransformOutput"] == {"S3OutputPath": OUTPUT, "Accept": "application/json", "AssembleWith": "None"}
    assert request["TransformResources"] == {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1}
    assert request["Environment"] == {"CLASSIFIER_DEFAULT_TOP_K": "1000000"}  # every class in each answer


def test_transform_request_is_what_the_sdks_transformer_sends(settings, sdk):
    """The same job through sagemaker.transformer.Transformer (its own defaults), recorded offline."""
    import boto3
    import sagemaker
    from botocore.stub import Stubber
    from sagemaker.transformer import Transformer

    boto = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    client = boto.client("sagemaker")
    stubber = Stubber(client)
    ours = api_requests.transform_job(settings, JOB, "m-1", INPUT, OUTPUT + "/", "application/x-image")
    stubber.add_response("create_transform_job", {"TransformJobArn": FAKE_ARN}, ours)  # the SDK must send ours
    stubber.activate()
    session = sagemaker.Session(boto_session=boto, sagemaker_client=client, default_bucket=BUCKET)
    tags = [{"Key": "project", "Value": "byoc-classifier"}]
    transformer = Transformer("m-1", 1, "ml.m5.xlarge", strategy="SingleRecord", assemble_with="None",
                              output_path=OUTPUT, accept="application/json", max_concurrent_transforms=4,
                              max_payload=6, env={"CLASSIFIER_DEFAULT_TOP_K": "1000000"}, tags=tags,
                              sagemaker_session=session)
    transformer.transform(INPUT, data_type="S3Prefix", content_type="application/x-image", compression_type="None",
                          split_type="None", job_name=JOB, wait=False, logs=False)
    stubber.assert_no_pending_responses()


# --- the sequence, stubbed --------------------------------------------------------------------------------

def stub_inputs(stubs, keys, prefix="images/test/", size=1000):
    stubs("s3").add_response("list_objects_v2", {"KeyCount": len(keys), "Contents": [
        {"Key": prefix + key, "Size": size} for key in keys]}, {"Bucket": BUCKET, "Prefix": prefix})


def stub_outputs(stubs, keys=()):
    prefix = f"byoc-classifier/transform/{JOB}/"
    stubs("s3").add_response("list_objects_v2", {"KeyCount": len(keys), "Contents": [
        {"Key": prefix + key, "Size": 10} for key in keys]}, {"Bucket": BUCKET, "Prefix": prefix})


def transform_description(status: str, reason: str = "") -> dict:
    response = {"TransformJobName": JOB, "TransformJobArn": FAKE_ARN, "TransformJobStatus": status,
                "ModelName": JOB, "CreationTime": NOW,
                "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": INPUT}}},
                "TransformResources": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1}}
    if reason:
        response["FailureReason"] = reason
    return response


def test_a_model_from_the_newest_training_job_then_the_job_fails(stubbed, use, tmp_path, capsys):
    """No deployed model: one is made from the newest completed training job, the job runs, fails, and the
    summary says which images have no output and why; the model made for it is deleted."""
    aws, stubs = stubbed
    use(aws, batch_transform)
    sm = stubs("sagemaker")
    stub_inputs(stubs, ["coat/a.png", "shirt/b.png"])
    sm.add_response("list_models", {"Models": [{"ModelName": "other-20260101-000000", "ModelArn": FAKE_ARN,
                                                "CreationTime": NOW}]},
                    {"NameContains": "img-clf", "SortBy": "CreationTime", "SortOrder": "Descending", "MaxResults": 100})
    trained = "img-clf-20260101-000000"
    sm.add_response("list_training_jobs", {"TrainingJobSummaries": [
        {"TrainingJobName": trained, "TrainingJobArn": FAKE_ARN, "CreationTime": NOW,
         "TrainingJobStatus": "Completed"}]}, None)
    sm.add_response("describe_training_job", training_description(trained), {"TrainingJobName": trained})
    stub_image(stubs, "byoc-classifier-serving")
    model_data = f"s3://{BUCKET}/byoc-classifier/output/{trained}/output/model.tar.gz"
    sm.add_response("create_model", {"ModelArn": FAKE_ARN}, {
        "ModelName": JOB, "ExecutionRoleArn": ROLE, "Tags": ANY,
        "PrimaryContainer": {"Image": SERVING_IMAGE, "ModelDataUrl": model_data, "Mode": "SingleModel"}})
    sm.add_response("create_transform_job", {"TransformJobArn": FAKE_ARN},
                    api_requests.transform_job(aws.settings, JOB, JOB, INPUT, OUTPUT, "image/png"))
    sm.add_response("describe_transform_job", transform_description("InProgress"), {"TransformJobName": JOB})
    stub_outputs(stubs)
    sm.add_response("describe_transform_job", transform_description("Failed", "ClientError: See job logs"),
                    {"TransformJobName": JOB})
    stub_outputs(stubs)
    sm.add_response("delete_model", {}, {"ModelName": JOB})
    stub_outputs(stubs)  # the download finds nothing
    out = tmp_path / "out"
    assert batch_transform.main(["--data-s3", INPUT.rstrip("/"), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "0 of 2 images classified by transform job img-clf-batch-" in captured.out
    assert "coat/a.png: no output (job Failed: ClientError: See job logs" in captured.out
    assert "ClientError: See job logs" in captured.err and "/aws/sagemaker/TransformJobs" in captured.err
    assert "InProgress, 0/2 images done" in captured.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 2 and summary["classified"] == 0 and len(summary["failures"]) == 2


def test_a_refused_job_deletes_the_model_made_for_it(stubbed, use, capsys):
    aws, stubs = stubbed
    use(aws, batch_transform)
    sm = stubs("sagemaker")
    stub_inputs(stubs, ["a.jpg"])
    trained = "img-clf-20260101-000000"
    sm.add_response("describe_training_job", training_description(trained), {"TrainingJobName": trained})
    stub_image(stubs, "byoc-classifier-serving")
    sm.add_response("create_model", {"ModelArn": FAKE_ARN}, None)
    sm.add_client_error("create_transform_job", "ResourceLimitExceeded", "The account-level service limit "
                        "'ml.m5.xlarge for transform job usage' is 0 Instances")
    sm.add_response("delete_model", {}, {"ModelName": JOB})
    assert batch_transform.main(["--data-s3", INPUT, "--job", trained]) == 1
    assert "ResourceLimitExceeded" in capsys.readouterr().err


@pytest.mark.parametrize("keys, words", [
    ([], "holds no objects"),
    (["coat/a.png", "notes.txt"], "1 object(s) that are not JPEG or PNG images, which the job would send as "
                                  "images: notes.txt"),
])
def test_a_prefix_without_only_images_is_refused_before_any_job(stubbed, use, capsys, keys, words):
    aws, stubs = stubbed
    use(aws, batch_transform)
    stub_inputs(stubs, keys)
    assert batch_transform.main(["--data-s3", INPUT]) == 1
    assert words in capsys.readouterr().err


def test_a_model_named_must_exist(stubbed, use, capsys):
    aws, stubs = stubbed
    use(aws, batch_transform)
    stub_inputs(stubs, ["a.jpg"])
    stubs("sagemaker").add_client_error("describe_model", "ValidationException", "Could not find model \"nope\".",
                                        expected_params={"ModelName": "nope"})
    assert batch_transform.main(["--data-s3", INPUT, "--model", "nope"]) == 1
    assert "MODEL=nope: no SageMaker model by that name" in capsys.readouterr().err


@pytest.mark.parametrize("data_s3, words", [
    ("", "DATA_S3= is missing"),
    ("images/test", "DATA_S3=images/test is not an s3://bucket/prefix URI"),
    ("s3:///test", "is not an s3://bucket/prefix URI"),
])
def test_bad_data_s3_names_the_problem(capsys, data_s3, words):
    assert batch_transform.main(["--dry-run", "--data-s3", data_s3]) == 1
    assert words in capsys.readouterr().err


def test_an_out_folder_that_holds_files_is_refused_before_any_request(tmp_path, capsys):
    (tmp_path / "summary.json").write_text("{}")
    assert batch_transform.main(["--data-s3", INPUT, "--out", str(tmp_path)]) == 1
    assert "already holds files" in capsys.readouterr().err  # nothing sent: the Stubber is not even set up
    assert (tmp_path / "summary.json").read_text() == "{}"


def test_dry_run_prints_the_requests(capsys):
    assert batch_transform.main(["--dry-run", "--data-s3", INPUT, "--model", "img-clf-20260101-000000"]) == 0
    out = capsys.readouterr().out
    assert "sagemaker.DescribeModel" in out and "sagemaker.CreateTransformJob" in out
    assert '"BatchStrategy": "SingleRecord"' in out and '"SplitType": "None"' in out
    assert "CreateModel" not in out  # the model named is used as it is


# --- the sequence, against moto ---------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["", "test/"])
def test_the_newest_deployed_model_classifies_a_prefix(moto, use, tmp_path, capsys, layout):
    """moto keeps the job Completed at once and runs no container: the outputs SageMaker would write are put in
    place, and the script must find, download and summarise them. `layout`: the outputs at their path relative
    to the input prefix, or under the input prefix's own name too (as SageMaker's documentation shows)."""
    use(moto, batch_transform)
    s3, sm = moto.client("s3"), moto.client("sagemaker")
    for key in ("coat/a.png", "coat/b.png", "shirt/c.png"):
        s3.put_object(Bucket=BUCKET, Key=f"images/test/{key}", Body=b"\x89PNG")
    sm.create_model(ModelName="img-clf-20260101-000000", ExecutionRoleArn=ROLE,
                    PrimaryContainer={"Image": SERVING_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/m/model.tar.gz"})
    prefix = f"byoc-classifier/transform/{JOB}/{layout}"
    s3.put_object(Bucket=BUCKET, Key=prefix + "coat/a.png.out", Body=answer("coat", 0))
    s3.put_object(Bucket=BUCKET, Key=prefix + "coat/b.png.out", Body=answer("shirt", 1))
    s3.put_object(Bucket=BUCKET, Key=prefix + "shirt/c.png.out", Body=answer("shirt", 1))
    out = tmp_path / "out"
    assert batch_transform.main(["--data-s3", INPUT, "--out", str(out)]) == 0
    job = sm.describe_transform_job(TransformJobName=JOB)
    assert job["ModelName"] == "img-clf-20260101-000000" and job["TransformInput"]["ContentType"] == "image/png"
    assert [m["ModelName"] for m in sm.list_models()["Models"]] == ["img-clf-20260101-000000"]  # kept: not ours
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {"shirt": 2, "coat": 1} and summary["failures"] == []
    assert (out / layout / "coat" / "b.png.out").read_bytes() == answer("shirt", 1)
    assert "3 of 3 images classified" in capsys.readouterr().out


# --- the layout and summary both commands share -----------------------------------------------------------

def test_summary_counts_classes_and_names_each_failure(tmp_path):
    from scripts import batch_output

    for relative, body in (("a/1.jpg", answer("coat", 0)), ("a/2.jpg", answer("shirt", 1)),
                           ("b/3.jpg", answer("shirt", 1)), ("b/4.jpg", b"<html>502 Bad Gateway</html>"),
                           ("x/5.jpg", answer("coat", 0)), ("y/5.jpg", answer("coat", 0))):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f"{relative}.out").write_bytes(body)
    inputs = ["a/1.jpg", "a/2.jpg", "b/3.jpg", "b/4.jpg", "c/6.jpg", "5.jpg"]
    summary = batch_output.summarize(tmp_path, inputs, "test", str(tmp_path), {"c/6.jpg": "HTTP 400: too large"})
    assert summary.counts == {"shirt": 2, "coat": 1} and summary.classified == 3
    reasons = {item["input"]: item["reason"] for item in summary.failures}
    assert "b/4.jpg.out is not an answer of the endpoint" in reasons["b/4.jpg"]
    assert reasons["c/6.jpg"] == "HTTP 400: too large"
    assert reasons["5.jpg"] == "no output"  # two files could be its output (x/ and y/): neither is taken
    assert json.loads(batch_output.write_summary(summary, tmp_path).read_text())["classified"] == 3
    assert "3 of 6 images classified by test" in summary.text() and "3 failed:" in summary.text()


# --- make -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, expected", [
    (["DATA_S3=s3://b/p/", "MODEL=m 1", "OUT=o"], ["-m scripts.aws.batch_transform", "--data-s3 's3://b/p/'",
                                                  "--model 'm 1'", "--out 'o'"]),
    (["DATA_S3=s3://b/p/", "TUNING=t1", "DRY_RUN=1"], ["--dry-run", "--tuning 't1'", "IMAGE_TAG='abc1234'"]),
    (["DATA_S3=s3://b/p/", "MODEL_DATA=s3://b/m.tar.gz"], ["--model-data 's3://b/m.tar.gz'"]),
])
def test_make_passes_variables(args, expected):
    result = make("-n", "batch-transform", *args)
    assert result.returncode == 0, result.stderr
    command = " ".join(result.stdout.split())
    for piece in expected:
        assert piece in command, command


@pytest.mark.slow
def test_make_dry_run_end_to_end(tmp_path):
    env = credential_free_env(tmp_path)
    result = make("-s", "batch-transform", "DRY_RUN=1", f"DATA_S3={INPUT}", "JOB=img-clf-20260101-000000", env=env)
    assert result.returncode == 0, result.stderr
    assert "sagemaker.CreateModel {" in result.stdout and "sagemaker.CreateTransformJob {" in result.stdout
    assert "byoc-classifier-serving:abc1234" in result.stdout
    bad = make("-s", "batch-transform", "DRY_RUN=1", "DATA_S3=images/test", env=env)
    assert bad.returncode != 0 and "DATA_S3=images/test is not an s3://bucket/prefix URI" in bad.stderr
