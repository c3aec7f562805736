"""Warm start (issue 13 item 8): the same hyperparameter names whatever is set, and the warm start type
from the parents' image and data, checked before the tuning job is created (botocore Stubber)."""
from __future__ import annotations

import copy
import dataclasses

import pytest

from aws_support import DATA_URI, FAKE_ARN, TRAINING_IMAGE, stub_channels, stub_image, tuning_description
from classifier.training import hyperparameters as hp_specs
from scripts import job_definition
from scripts.aws import api_requests, tune

NAME = "img-clf-20260102-030405"
PARENT = "img-clf-20260101-000000"


def request_names(definition, settings) -> set[str]:
    """The static + tuned names a tuning job built from `definition` sends (what warm start compares)."""
    request = api_requests.tuning_job(definition, settings, NAME, TRAINING_IMAGE, DATA_URI, ["train", "valid"])
    ranges = request["HyperParameterTuningJobConfig"]["ParameterRanges"]
    return set(request["TrainingJobDefinition"]["StaticHyperParameters"]) | {
        r["Name"] for kind in ranges.values() for r in kind}


def test_the_names_are_the_same_whatever_is_set(settings):
    definition = job_definition.load()
    debugger = definition.debugger
    variants = {
        "the file": definition,
        "rule parameters, no stop rules": dataclasses.replace(definition, debugger=dataclasses.replace(
            debugger, rule_parameters={"Overfit": {"patience": 2}}, actions={})),
        "HP=lr (tuned becomes static)": definition.with_overrides(hyperparameters={"lr": "0.01"}),
        "HP=dropout (not in the file)": definition.with_overrides(hyperparameters={"dropout": "0.1"}),
        "HP=freeze_backbone (the alias)": definition.with_overrides(hyperparameters={"freeze_backbone": "false"}),
        "HP=unfreeze_stages": definition.with_overrides(hyperparameters={"unfreeze_stages": "all"}),
        "debugger off": definition.with_overrides(hyperparameters={"debugger": "false", "profiler": "false"}),
    }
    names = {label: request_names(variant, settings) for label, variant in variants.items()}
    expected = names["the file"]
    assert {label: n for label, n in names.items() if n != expected} == {}
    assert expected == set(hp_specs.SPECS) - {"freeze_backbone"}  # one name of the alias pair
    # the alias becomes its partner, with the same meaning
    assert variants["HP=freeze_backbone (the alias)"].static_hyperparameters["unfreeze_stages"] == "all"
    hp_specs.parse(variants["HP=dropout (not in the file)"].static_hyperparameters)


def test_tuning_the_alias_sends_it_instead_of_its_partner(tmp_path):
    raw = job_definition.yaml.safe_load(job_definition.DEFAULT_PATH.read_text())
    raw["static_hyperparameters"].pop("unfreeze_stages")
    raw["hyperparameter_ranges"]["freeze_backbone"] = {"type": "Categorical", "values": [True, False]}
    path = tmp_path / "job.yaml"
    path.write_text(job_definition.yaml.safe_dump(raw))
    definition = job_definition.load(path)
    static = definition.static_hyperparameters
    assert "freeze_backbone" not in static and "unfreeze_stages" not in static
    assert len(static) + len(definition.ranges) == len(hp_specs.SPECS) - 1


# --- the warm start type, from the parents ----------------------------------------------------------------------

def parent_description(request: dict, name: str = PARENT, status: str = "Completed", image: str | None = None,
                       data_uri: str | None = None, static: dict | None = None, objective: str | None = None):
    """DescribeHyperParameterTuningJob of a parent made from `request`, with the given differences."""
    described = tuning_description(name, status)
    described["HyperParameterTuningJobConfig"] = copy.deepcopy(request["HyperParameterTuningJobConfig"])
    definition = copy.deepcopy(request["TrainingJobDefinition"])
    if image:
        definition["AlgorithmSpecification"]["TrainingImage"] = image
    if data_uri:
        for channel in definition["InputDataConfig"]:
            channel["DataSource"]["S3DataSource"]["S3Uri"] = f"{data_uri}{channel['ChannelName']}/"
    if static is not None:
        definition["StaticHyperParameters"] = static
    if objective:
        described["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"] = objective
    described["TrainingJobDefinition"] = definition
    return described


def run_tune(stubbed, use, parents: dict, extra=(), created=True):
    """`make tune PARENT_TUNING=...`: the parents are described, then (if they fit) the job is created."""
    aws, stubs = stubbed
    use(aws, tune)
    stub_image(stubs, "byoc-classifier-training")
    stub_channels(stubs, checked=("train", "valid", "weights"))
    for name, description in parents.items():
        stubs("sagemaker").add_response("describe_hyper_parameter_tuning_job", description,
                                        {"HyperParameterTuningJobName": name})
    if created:
        stubs("sagemaker").add_response("create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": FAKE_ARN})
    argv = ["--name", NAME, "--no-wait", "--no-cache", *[arg for name in parents for arg in ("--parent", name)], *extra]
    code = tune.main(argv)
    sent = [params for _, api, params in aws.sent if api == "CreateHyperParameterTuningJob"]
    return code, (sent[0] if sent else None)


@pytest.fixture
def ours(settings):
    """The request `make tune` builds here (image tag abc1234, the data set's train/valid)."""
    return api_requests.tuning_job(job_definition.load(), settings, NAME, TRAINING_IMAGE, DATA_URI,
                                   ["train", "valid"])


def test_same_image_and_data_identical_data_and_algorithm(stubbed, use, ours, capsys):
    code, request = run_tune(stubbed, use, {PARENT: parent_description(ours)})
    assert code == 0
    assert request["WarmStartConfig"] == {"ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": PARENT}],
                                          "WarmStartType": "IdenticalDataAndAlgorithm"}
    err = capsys.readouterr().err
    assert "warm start type IdenticalDataAndAlgorithm: the parents ran the same training image" in err


def test_a_new_image_transfer_learning_and_says_why(stubbed, use, ours, capsys):
    older = TRAINING_IMAGE.replace(":abc1234", ":0ld0ld0")
    code, request = run_tune(stubbed, use, {PARENT: parent_description(ours, image=older),
                                            "img-clf-20251231-000000": parent_description(
                                                ours, "img-clf-20251231-000000")})
    assert code == 0 and request["WarmStartConfig"]["WarmStartType"] == "TransferLearning"
    assert [p["HyperParameterTuningJobName"] for p in request["WarmStartConfig"]["ParentHyperParameterTuningJobs"]] \
        == [PARENT, "img-clf-20251231-000000"]
    err = capsys.readouterr().err
    assert f"warm start type TransferLearning: parent {PARENT} ran the training image {older}" in err
    assert TRAINING_IMAGE in err


def test_other_data_transfer_learning(stubbed, use, ours, capsys):
    code, request = run_tune(stubbed, use, {PARENT: parent_description(ours, data_uri="s3://test-bucket/other/")})
    assert code == 0 and request["WarmStartConfig"]["WarmStartType"] == "TransferLearning"
    assert "s3://test-bucket/other/train/" in capsys.readouterr().err


def test_identical_asked_with_a_new_image_is_refused_before_anything_is_created(stubbed, use, ours, capsys):
    older = TRAINING_IMAGE.replace(":abc1234", ":0ld0ld0")
    code, request = run_tune(stubbed, use, {PARENT: parent_description(ours, image=older)},
                             extra=["--warm-start-type", "IdenticalDataAndAlgorithm"], created=False)
    assert code == 1 and request is None
    err = capsys.readouterr().err
    assert "IdenticalDataAndAlgorithm needs the parents' training image and data" in err
    assert "WARM_START_TYPE=TransferLearning" in err


@pytest.mark.parametrize("change, words", [
    ({"static": {"model_name": "resnet50", "optimizer": "adam"}},
     f"has 5 static + tuned hyperparameters, this job {len(hp_specs.SPECS) - 1}: SageMaker needs the same number"),
    ({"objective": "valid_loss"}, "parent img-clf-20260101-000000 tuned valid_loss, this job tunes best_valid_loss"),
    ({"status": "InProgress"}, "is InProgress; it must have finished"),
])
def test_a_parent_that_does_not_fit_is_named_before_anything_is_created(stubbed, use, ours, capsys, change, words):
    code, request = run_tune(stubbed, use, {PARENT: parent_description(ours, **change)}, created=False)
    assert code == 1 and request is None
    err = capsys.readouterr().err
    assert "error: cannot warm start from img-clf-20260101-000000" in err and words in err


def test_the_dry_run_describes_the_parents(tmp_path, capsys):
    from aws_support import write_settings

    path = write_settings(tmp_path / "settings.yaml", **{"aws.role_arn": "", "s3.bucket": ""})
    assert tune.main(["--settings", str(path), "--dry-run", "--name", NAME, "--parent", PARENT,
                      "--no-cache"]) == 0
    out = capsys.readouterr().out
    assert "sagemaker.DescribeHyperParameterTuningJob" in out and '"WarmStartType": "IdenticalDataAndAlgorithm"' in out
    assert "TransferLearning when their training image or data differ" in out
