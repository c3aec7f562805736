"""Rule names and parameters, where a job's files are (the job definition's sections: tests/local)."""
import json

import pytest

from classifier.debugger import config
from classifier.training import hyperparameters


def test_every_sagemaker_rule_is_known_with_its_defaults():
    assert set(config.TENSOR_RULES) == {"VanishingGradient", "ExplodingTensor", "LossNotDecreasing", "Overfit",
                                        "Overtraining", "PoorWeightInitialization", "DeadRelu", "ClassImbalance"}
    assert set(config.PROFILER_RULES) == {"LowGPUUtilization", "CPUBottleneck", "IOBottleneck", "BatchSize",
                                          "GPUMemoryIncrease", "StepOutlier", "MaxInitializationTime", "Dataloader"}
    assert config.RULES["VanishingGradient"].defaults["threshold"] == 1e-7
    assert config.RULES["LossNotDecreasing"].defaults == {"num_steps": 10, "diff_percent": 0.1,
                                                          "increase_threshold_percent": 5}
    assert config.RULES["Overtraining"].defaults == {"patience_train": 5, "patience_validation": 10, "delta": 0.01}
    assert config.RULES["ClassImbalance"].defaults == {"threshold_imbalance": 10.0, "threshold_misprediction": 0.7,
                                                       "samples": 500}
    assert config.RULES["MaxInitializationTime"].defaults["threshold"] == 20.0
    assert all(r.recommendation for r in config.RULES.values())


def test_rule_lists_and_parameters():
    assert config.rule_names("all") == list(config.RULES)
    assert config.rule_names("none") == [] == config.rule_names("")
    assert config.rule_names("Overfit, DeadRelu") == ["Overfit", "DeadRelu"]
    with pytest.raises(ValueError, match="Overfitt"):
        config.rule_names("Overfitt")
    assert config.rule_parameters("Overfit.patience=2,StepOutlier.stddev=4.5") == {
        "Overfit": {"patience": 2}, "StepOutlier": {"stddev": 4.5}}
    with pytest.raises(ValueError, match="no parameter"):
        config.rule_parameters("Overfit.bogus=1")
    assert config.parameters_for("Overfit", {"Overfit": {"patience": 3}})["patience"] == 3
    # 'all' and lists run the rules whose data the job collects
    assert config.rules_for("all", debugger=True, profiler=False) == list(config.TENSOR_RULES)
    assert config.rules_for("Overfit,StepOutlier", debugger=False, profiler=True) == ["StepOutlier"]


def test_hyperparameters_are_strict_and_off_by_default():
    hp = hyperparameters.parse({})
    assert hp.debugger is False and hp.profiler is False
    assert hp.debugger_train_interval == 100 and hp.debugger_eval_interval == 10 and hp.profiler_interval_ms == 500
    for bad in ({"debugger_rules": "Nope"}, {"debugger_collections": "losses,activations"},
                {"debugger_rule_parameters": "Overfit=2"}, {"debugger_train_interval": "0"},
                {"profiler_interval_ms": "10"}):
        with pytest.raises(hyperparameters.HyperparameterError):
            hyperparameters.parse(bad)


def test_layout_finds_local_jobs_output_dirs_and_extracted_tarballs(tmp_path):
    job = tmp_path / "job"
    (job / "output" / "data" / "debugger").mkdir(parents=True)
    (job / "output" / "tensors").mkdir()
    layout = config.Layout.locate(job)
    assert layout.data == job / "output" / "data" and layout.tensors == job / "output" / "tensors"
    assert config.Layout.locate(job / "output").data == job / "output" / "data"
    extracted = tmp_path / "extracted"
    (extracted / "profiler").mkdir(parents=True)
    layout = config.Layout.locate(extracted)
    assert layout.data == extracted and layout.tensors == extracted / "debugger" / "tensors"
    with pytest.raises(FileNotFoundError):
        config.Layout.locate(tmp_path / "nothing")
    (extracted / "debugger").mkdir()
    (extracted / "debugger" / "job.json").write_text(json.dumps({"hook": {"out_dir": str(job / "output" / "tensors")}}))
    assert config.Layout.locate(extracted).tensors == job / "output" / "tensors"


def test_hooks_off_cost_nothing_and_only_the_main_process_observes():
    from classifier.debugger import build_observers

    assert build_observers(hyperparameters.parse({}), True).observers == []
    assert build_observers(hyperparameters.parse({"debugger": "true"}), False).observers == []
    kinds = [type(o).__name__ for o in build_observers(hyperparameters.parse({"debugger": "true", "profiler": "true"}),
                                                        True).observers]
    assert kinds == ["HookObserver", "ProfilerObserver", "DebuggerSession"]
    assert not build_observers(hyperparameters.parse({}), True).wants_step_timings
