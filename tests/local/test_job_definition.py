"""config/job.yaml parsed once into typed sections: every key stated there and nowhere else, errors that name
the entry, the debugger and profiler sections as hyperparameters, SageMaker's limits."""
import copy
import dataclasses

import pytest
import yaml

from classifier import channels
from classifier.debugger import config
from classifier.training import hyperparameters
from scripts import job_definition
from scripts.job_definition import JobDefinitionError


def raw_file() -> dict:
    return yaml.safe_load(job_definition.DEFAULT_PATH.read_text())


def test_sections_are_typed_and_hold_the_files_values():
    definition = job_definition.load()
    raw = raw_file()
    assert definition.limits.training_max_runtime_seconds == raw["training_max_runtime_seconds"] == 7200
    assert definition.limits.max_runtime_seconds == raw["limits"]["max_runtime_seconds"]
    assert definition.strategy.hyperband_max_resource == raw["hyperband"]["max_resource"]
    assert definition.debugger.train_interval == raw["debugger"]["train_interval"] == 100
    assert definition.debugger.stop_rules == ("ExplodingTensor",)
    assert definition.profiler.interval_ms == raw["profiler"]["interval_ms"]
    assert definition.objective.minimize and definition.objective.metric == "best_valid_loss"
    assert definition.metric_definitions[0] == {"Name": "train_loss", "Regex": raw["metric_definitions"][0]["regex"]}
    assert not hasattr(definition, "raw")
    # round trip through the file's form (a tuning job keeps it)
    assert job_definition.from_dict(definition.to_dict(), definition.path) == definition


@pytest.mark.parametrize("path", [("training_max_runtime_seconds",), ("limits", "max_runtime_seconds"),
                                  ("hyperband", "min_resource"), ("early_stopping",), ("debugger", "train_interval"),
                                  ("debugger", "eval_interval"), ("profiler", "interval_ms"),
                                  ("hyperparameter_ranges", "lr", "scaling")])
def test_every_key_is_required_no_default_in_code(path, tmp_path):
    raw = raw_file()
    node = raw
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    with pytest.raises(JobDefinitionError, match="missing " + r"\.".join(path)):
        job_definition.from_dict(raw, tmp_path / "job.yaml")


def test_channels_belong_to_the_training_container(tmp_path):
    definition = job_definition.load()
    assert definition.channels.required == channels.REQUIRED == ("train", "valid")
    assert set(definition.channels.optional) == {"test", "weights", "feature_cache", "init_model"}
    from classifier.training import setup  # the container reads the same list

    assert setup.REQUIRED is channels.REQUIRED and setup.OPTIONAL is channels.OPTIONAL
    raw = raw_file()
    raw["channels"] = {"required": ["train", "valid"], "optional": ["test"]}
    with pytest.raises(JobDefinitionError, match="container/classifier/channels.py"):
        job_definition.from_dict(raw, tmp_path / "job.yaml")


def test_unknown_keys_are_errors(tmp_path):
    for change, words in ((lambda r: r.update(strategie="Random"), "unknown key.*strategie"),
                          (lambda r: r["limits"].update(max_job=3), "limits: unknown key.*max_job"),
                          (lambda r: r["debugger"].update(interval=3), "debugger: unknown key.*interval"),
                          (lambda r: r["objective"].update(goal="x"), "objective: unknown key")):
        raw = raw_file()
        change(raw)
        with pytest.raises(JobDefinitionError, match=words):
            job_definition.from_dict(raw, tmp_path / "job.yaml")


# Moved from tests/debugger/test_config.py with the translator (scripts/job_definition.py now owns it).
def test_job_definition_sections_become_hyperparameters():
    definition = job_definition.load()
    assert definition.debugger.attach_sagemaker_rules is False
    assert set(definition.debugger.rules) == set(config.RULES)
    static = definition.static_hyperparameters
    assert static["debugger"] == "true" and static["profiler"] == "true"
    assert static["debugger_stop_rules"] == "ExplodingTensor"
    assert set(static["debugger_rules"].split(",")) == set(config.RULES)
    assert all(len(v) <= 2500 for v in static.values()) and len(static) + len(definition.ranges) <= 100
    hyperparameters.parse(static)
    # the same names whatever is set (SageMaker's warm start compares them)
    names = {name for name in static if name.startswith(("debugger", "profiler"))}
    assert names == {n for n in hyperparameters.SPECS if n.startswith(("debugger", "profiler"))}
    # a run's override wins over the section
    overridden = definition.with_overrides(hyperparameters={"debugger": "false"})
    assert overridden.static_hyperparameters["debugger"] == "false"


def test_job_definition_errors_name_the_entry(tmp_path):
    raw = raw_file()
    for section, message in (({"rules": ["Overfit", "Typo"]}, "Typo"),
                             ({"actions": {"Email": ["Overfit"]}}, "Email"),
                             ({"train_interval": 0}, "debugger_train_interval"),
                             ({"rule_parameters": {"Overfit": {"patience": 0.5, "x": 1}}}, "'x'")):
        changed = copy.deepcopy(raw)
        changed["debugger"].update(section)
        with pytest.raises(JobDefinitionError, match=message):
            job_definition.from_dict(changed, tmp_path / "job.yaml")
    definition = job_definition.load()
    sections = dataclasses.replace(definition.debugger, rule_parameters={"Overfit": {"patience": 2}},
                                   actions={"StopTraining": ("Overfit",)}, collections=("losses",))
    converted = sections.hyperparameters()
    assert converted["debugger_rule_parameters"] == "Overfit.patience=2"
    assert converted["debugger_stop_rules"] == "Overfit" and converted["debugger_collections"] == "losses"
    profiler = dataclasses.replace(definition.profiler, enabled=False, trace_steps=3).hyperparameters()
    assert profiler["profiler"] == "false" and profiler["profiler_trace_steps"] == "3"


def test_long_values_fit_sagemakers_2500_not_256(tmp_path):
    """Issue 13 item 5: a value may have 2,500 characters (256 is the key limit); every rule named is 203."""
    definition = job_definition.load()
    assert len(definition.static_hyperparameters["debugger_rules"]) > 200
    raw = raw_file()
    raw["debugger"]["rule_parameters"] = {rule: dict(info.defaults) for rule, info in config.RULES.items()}
    loaded = job_definition.from_dict(raw, tmp_path / "job.yaml")  # all 40-odd parameters: about 900 characters
    assert 256 < len(loaded.static_hyperparameters["debugger_rule_parameters"]) <= 2500
    with pytest.raises(hyperparameters.HyperparameterError, match="longer than SageMaker's 2500"):
        job_definition.check_sagemaker_limits({"x": "y" * 2501})
    with pytest.raises(hyperparameters.HyperparameterError, match="longer than 256"):
        job_definition.check_sagemaker_limits({"k" * 257: "1"})
    with pytest.raises(hyperparameters.HyperparameterError, match="101 hyperparameters"):
        job_definition.check_sagemaker_limits({f"h{i}": "1" for i in range(101)})
    job_definition.check_sagemaker_limits({"x": "y" * 2500, "k" * 256: "1"})


def test_limits_are_botocores():
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    assert model.shape_for("HyperParameters").metadata["max"] == job_definition.MAX_HYPERPARAMETERS
    assert model.shape_for("HyperParameterKey").metadata["max"] == job_definition.MAX_HYPERPARAMETER_KEY
    assert model.shape_for("HyperParameterValue").metadata["max"] == job_definition.MAX_HYPERPARAMETER_VALUE
    assert model.shape_for("ParameterValue").metadata["max"] == job_definition.MAX_CATEGORICAL_VALUE
    assert model.shape_for("TrainingJobName").metadata["max"] == 63
    assert model.shape_for("HyperParameterTuningJobName").metadata["max"] == 32


def test_overrides_replace_ranges_and_aliases():
    definition = job_definition.load()
    fixed = definition.with_overrides(hyperparameters={"lr": "0.01", "unfreeze_stages": "1"}, max_jobs=7,
                                      strategy="Random", early_stopping="Auto")
    assert "lr" not in fixed.tuned_names and fixed.static["lr"] == "0.01"
    # unfreeze_stages replaces its alias freeze_backbone of the file: no contradiction
    assert "freeze_backbone" not in fixed.static and fixed.static["unfreeze_stages"] == "1"
    assert (fixed.limits.max_jobs, fixed.strategy.name, fixed.strategy.early_stopping) == (7, "Random", "Auto")
    assert definition.limits.max_jobs == 4  # the original is unchanged
    with pytest.raises(JobDefinitionError, match="early_stopping must be Off with the Hyperband"):
        definition.with_overrides(strategy="Hyperband", early_stopping="Auto")
