"""The decisions both backends share (scripts/orchestration.py), one rule each."""
from datetime import datetime, timedelta, timezone

import pytest

from classifier.training import hyperparameters as hp_specs
from scripts import job_definition, orchestration
from scripts.orchestration import RequestError, Trial

MOMENT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def test_names_are_one_utc_format_within_sagemakers_limits():
    assert orchestration.training_job_name("img-clf", MOMENT) == "img-clf-20260102-030405"
    assert orchestration.tuning_job_name("img-clf", MOMENT) == "img-clf-20260102-030405"
    assert orchestration.training_job_name("img-clf", MOMENT, attempt=1) == "img-clf-20260102-030405-2"
    assert orchestration.trial_job_name("img-clf-20260102-030405", 7) == "img-clf-20260102-030405-007"
    # a clock in another zone names the same instant the same way
    local = MOMENT.astimezone(timezone(timedelta(hours=-5)))
    assert orchestration.timestamp(local) == "20260102-030405"
    longest = "a" * 16  # the longest name_prefix the job definition allows
    assert len(orchestration.tuning_job_name(longest, MOMENT)) == 32
    with pytest.raises(RequestError, match="1-32 letters"):
        orchestration.tuning_job_name("a" * 17, MOMENT)
    for bad in ("-x", "x-", "a_b", "a b", ""):
        with pytest.raises(RequestError):
            orchestration.check_name(bad, 63, "training job")


def test_merge_order_static_then_best_then_given():
    definition = job_definition.load()
    best = {"lr": "0.02", "epochs": "4", "dropout": "0.3", "weight_decay": "0.01", "model_name": "efficientnet_lite0",
            "_tuning_objective_metric": "valid_loss", "sagemaker_program": "train.py"}
    values, unset = orchestration.training_hyperparameters(definition, best, {"epochs": "10"})
    assert values["epochs"] == "10" and values["lr"] == "0.02" and values["model_name"] == "efficientnet_lite0"
    assert values["image_size"] == definition.static_hyperparameters["image_size"]
    assert not any(hp_specs.is_ignored(k) for k in values) and unset == []
    _, unset = orchestration.training_hyperparameters(definition, None, {"lr": "0.1"})
    assert unset == ["dropout", "weight_decay"]
    # an alias given later replaces its partner from earlier layers
    values, _ = orchestration.training_hyperparameters(definition, {"freeze_backbone": "true"},
                                                       {"unfreeze_stages": "1"})
    assert values["unfreeze_stages"] == "1" and "freeze_backbone" not in values
    with pytest.raises(hp_specs.HyperparameterError, match="learning_rate"):
        orchestration.training_hyperparameters(definition, None, {"learning_rate": "0.1"})


def test_the_final_job_fine_tunes_at_the_recipes_rate_and_the_head_alone_at_the_trials():
    definition = job_definition.load()
    best = {"lr": "0.02", "dropout": "0.3", "weight_decay": "0.01"}
    final = orchestration.final_job(definition, best)
    assert final.from_best_trial and final.hyperparameters["dropout"] == "0.3"
    assert {k: final.hyperparameters[k] for k in orchestration.FINE_TUNING} == orchestration.FINE_TUNING
    assert orchestration.final_job(definition, best, {"lr": "0.001"}).hyperparameters["lr"] == "0.001"  # HP= last
    for head_alone in ({"unfreeze_stages": "0"}, {"freeze_backbone": "true"}):
        final = orchestration.final_job(definition, best, head_alone)
        assert not final.from_best_trial and final.hyperparameters["lr"] == "0.02"
        assert final.hyperparameters == orchestration.training_hyperparameters(definition, best, head_alone)[0]


def test_the_word_best():
    argument = orchestration.parse_hp_argument("best epochs=10")
    assert argument.best and argument.given == {"epochs": "10"}
    assert orchestration.wants_best_trial(argument, "tuning-1")
    assert orchestration.wants_best_trial(orchestration.parse_hp_argument("epochs=3"), "tuning-1")
    assert not orchestration.wants_best_trial(orchestration.parse_hp_argument("epochs=3"), None)
    with pytest.raises(RequestError, match="HP=best needs TUNING="):
        orchestration.wants_best_trial(argument, "")
    with pytest.raises(RequestError, match="tuning job takes name=value"):
        orchestration.parse_hp_argument("best", allow_best=False)


def test_trials_get_the_objective_and_never_the_test_channel():
    definition = job_definition.load()
    values = orchestration.trial_hyperparameters(definition, {"lr": "0.01"})
    assert values["_tuning_objective_metric"] == "best_valid_loss" and values["lr"] == "0.01"
    present = ["weights", "test", "valid", "train"]
    assert orchestration.trial_channels(definition, present) == ["train", "valid", "weights"]
    assert orchestration.training_channels(definition, present) == ["train", "valid", "test", "weights"]
    assert orchestration.channels_to_look_for(definition, trial=True) == ["train", "valid", "weights"]
    with pytest.raises(RequestError, match="required channel.*valid"):
        orchestration.training_channels(definition, ["train"])


def test_feature_cache_rule_is_the_containers():
    definition = job_definition.load()
    values, _ = orchestration.training_hyperparameters(definition, None, {})
    assert orchestration.uses_feature_cache(values)
    for changed in ({"augment": "true"}, {"unfreeze_stages": "1"}, {"freeze_backbone": "false"},
                    {"pretrained": "false"}):
        values, _ = orchestration.training_hyperparameters(definition, None, changed)
        assert orchestration.uses_feature_cache(values) is hp_specs.features_are_fixed(hp_specs.parse(values)) is False


def test_best_trial_and_the_table():
    definition = job_definition.load()
    trials = [Trial("t-001", "Completed", 0.5, {"lr": "0.1"}, 60.0),
              Trial("t-002", "Failed", None, {"lr": "0.2"}, 10.0, "AlgorithmError: bad\nthing"),
              Trial("t-003", "Stopped", 0.1, {"lr": "0.3"}),  # early-stopped: no model of its own
              Trial("t-004", "Completed", 0.3, {"lr": "0.4"}, 50.0),
              Trial("t-005", "Completed", 0.3, {"lr": "0.5"})]
    assert orchestration.best_trial(trials, minimize=True).name == "t-004"  # the first of equals
    assert orchestration.best_trial(trials, minimize=False).name == "t-001"
    assert orchestration.best_trial(trials[1:3], minimize=True) is None
    lines = orchestration.trials_table(trials, definition).splitlines()
    assert lines[0].split() == ["training", "job", "status", "best_valid_loss", "dropout", "lr", "weight_decay", "time",
                                "failure", "reason"]
    assert [line.split()[0] for line in lines[2:]] == ["t-003", "t-004", "t-005", "t-001", "t-002"]
    assert lines[-1].endswith("AlgorithmError: bad thing")


def test_final_metrics_are_each_regexs_last_value():
    definition = job_definition.load()
    log = ("[metrics] epoch=1 train_loss=0.9 valid_loss=0.8 valid_accuracy=0.5\n"
           "[metrics] epoch=2 train_loss=0.7 valid_loss=0.9 valid_accuracy=0.6\n"
           "[metrics] best_epoch=1 valid_loss=0.8 valid_accuracy=0.5\n")
    assert orchestration.final_metrics(definition, log) == {"train_loss": 0.7, "valid_loss": 0.8,
                                                            "valid_accuracy": 0.5}


def test_sagemaker_limits_are_checked_for_every_job():
    definition = job_definition.load()
    with pytest.raises(hp_specs.HyperparameterError, match="2500"):
        orchestration.validate_hyperparameters({**definition.static_hyperparameters,
                                                "debugger_rule_parameters": "Overfit.patience=2," * 200})
