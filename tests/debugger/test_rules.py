"""Each rule on synthetic tensors and metrics: planted faults fire (with where and why), healthy data stays
clean, missing data is an Error with its reason."""
import math

import numpy as np
import pytest

from classifier.debugger import config, rules
from classifier.debugger.jobdata import JobData
from classifier.debugger.tensors import TensorData, _reduce

T0 = 1_700_000_000.0


def layout(tmp_path):
    return config.Layout(tmp_path / "data", tmp_path / "tensors")


def stat(name, collection, step, value, mode="train"):
    return _reduce(name, collection, mode, step, np.asarray(value, dtype=np.float32))


def run(data, name, **params):
    overrides = {name: params} if params else None
    [result] = rules.evaluate(data, [name], overrides)
    return result


def healthy_tensors(tmp_path, steps=(0, 10, 20, 30)):
    rng = np.random.default_rng(0)
    stats = []
    for i, step in enumerate(steps):
        stats.append(stat("loss_output_0", "losses", step, [2.0 * 0.8 ** i]))
        stats.append(stat("head.0.weight", "weights", step, rng.normal(0, 0.05, (64, 32))))
        stats.append(stat("gradient/head.0.weight", "gradients", step, rng.normal(0, 0.01, (64, 32))))
        stats.append(stat("gradient/head.2.bias", "gradients", step, rng.normal(0, 0.05, (10,))))
        stats.append(stat("1_output_0", "relu_output", step, np.maximum(rng.normal(0, 1, (16, 64)), 0)))
        stats.append(stat("3_output_0", "relu_output", step, np.maximum(rng.normal(0, 0.7, (16, 32)), 0)))
    return TensorData(tmp_path / "tensors", stats)


def epochs(train, valid):
    return [{"epoch": i + 1, "train_loss": t, "valid_loss": v, "train_steps": [10 * i, 10 * i + 9],
             "eval_steps": [3 * i, 3 * i + 2]} for i, (t, v) in enumerate(zip(train, valid, strict=True))]


def test_healthy_tensors_give_no_issues(tmp_path):
    data = JobData(layout(tmp_path), tensors=healthy_tensors(tmp_path),
                   epochs=epochs([1.0, 0.8, 0.7], [0.9, 0.78, 0.72]),
                   job={"classes": ["a", "b"], "train_label_counts": [50, 60]})
    results = rules.evaluate(data, list(config.TENSOR_RULES))
    assert {r.rule: r.status for r in results} == {r: "NoIssuesFound" for r in config.TENSOR_RULES}, \
        [r.line() for r in results]


def test_exploding_tensor_names_tensor_and_step(tmp_path):
    tensors = healthy_tensors(tmp_path)
    tensors.stats.append(stat("gradient/head.0.weight", "gradients", 40, [1.0, np.nan, np.inf]))
    result = run(JobData(layout(tmp_path), tensors=tensors), "ExplodingTensor")
    assert result.status == "IssuesFound" and result.step == 40
    assert result.values["tensor"] == "gradient/head.0.weight" and result.values["nan"] == 1
    assert "NaN" in result.message and result.recommendation


def test_vanishing_gradient(tmp_path):
    tensors = healthy_tensors(tmp_path)
    tensors.stats.append(stat("gradient/head.0.weight", "gradients", 40, np.full((8, 8), 1e-9)))
    result = run(JobData(layout(tmp_path), tensors=tensors), "VanishingGradient")
    assert result.status == "IssuesFound" and result.step == 40 and result.values["abs_mean"] < 1e-7


@pytest.mark.parametrize("losses, fires", [([2.0, 1.5, 1.2, 1.0], False), ([2.0, 2.0, 2.0, 2.0], True),
                                           ([2.0, 1.5, 3.0, 3.5], True), ([2.0, 1.0, math.nan, 1.0], True)])
def test_loss_not_decreasing(tmp_path, losses, fires):
    stats = [stat("loss_output_0", "losses", 10 * i, [v]) for i, v in enumerate(losses)]
    result = run(JobData(layout(tmp_path), tensors=TensorData(tmp_path, stats)), "LossNotDecreasing")
    assert (result.status == "IssuesFound") == fires, result.line()


def test_overfit_and_overtraining(tmp_path):
    data = JobData(layout(tmp_path), epochs=epochs([1.0, 0.5, 0.2, 0.1], [1.0, 0.9, 1.0, 1.2]))
    result = run(data, "Overfit")
    assert result.status == "IssuesFound" and result.epoch == 2 and result.values["ratio"] > 0.1
    assert run(data, "Overfit", patience=3).epoch == 4
    flat = JobData(layout(tmp_path), epochs=epochs([1.0] + [0.9] * 6, [1.0] + [0.95] * 6))
    result = run(flat, "Overtraining")
    assert result.status == "IssuesFound" and result.values["which"] == "training" and result.epoch == 7
    assert run(flat, "Overtraining", patience_train=10).status == "NoIssuesFound"


def test_dead_relu_and_poor_initialisation(tmp_path):
    dead = np.zeros((16, 64))
    dead[:, :10] = 1.0  # 54 of 64 units never fire
    tensors = TensorData(tmp_path, [stat("1_output_0", "relu_output", 0, dead)])
    result = run(JobData(layout(tmp_path), tensors=tensors), "DeadRelu")
    assert result.status == "IssuesFound" and result.values["dead_percent"] > 80
    # identical weights: every gradient of a layer is the same (no spread), in every early step
    constant = [stat(f"gradient/head.{i}.weight", "gradients", step, np.full((8, 8), 0.01 * (i + 1)))
                for step in range(0, 50, 10) for i in range(2)]
    result = run(JobData(layout(tmp_path), tensors=TensorData(tmp_path, constant)), "PoorWeightInitialization")
    assert result.status == "IssuesFound" and "spread" in result.message
    mixed = [stat("1_output_0", "relu_output", 0, np.abs(np.random.default_rng(0).normal(0, 10, (8, 8)))),
             stat("3_output_0", "relu_output", 0, np.abs(np.random.default_rng(1).normal(0, 0.1, (8, 8))))]
    result = run(JobData(layout(tmp_path), tensors=TensorData(tmp_path, mixed)), "PoorWeightInitialization")
    assert result.status == "IssuesFound" and "variance ratio" in result.message


def test_class_imbalance(tmp_path):
    job = {"classes": ["big", "small"], "train_label_counts": [500, 20]}
    result = run(JobData(layout(tmp_path), job=job), "ClassImbalance")
    assert result.status == "IssuesFound" and result.values["imbalance"] == 25
    balanced = {"classes": ["a", "b"], "train_label_counts": [300, 300]}
    confusion = [[290, 10], [250, 50]]  # class b: 83 % wrong
    predictions = [{"epoch": 1, "mode": "train", "confusion": confusion}]
    result = run(JobData(layout(tmp_path), job=balanced, predictions=predictions, epochs=epochs([1], [1])),
                 "ClassImbalance")
    assert result.status == "IssuesFound" and result.values["class_name"] == "b"
    few = [{"epoch": 1, "mode": "train", "confusion": [[29, 1], [25, 5]]}]
    assert run(JobData(layout(tmp_path), job=balanced, predictions=few), "ClassImbalance").status == "NoIssuesFound"


def test_missing_data_is_an_error_with_a_reason(tmp_path):
    data = JobData(layout(tmp_path))
    results = {r.rule: r for r in rules.evaluate(data, list(config.RULES))}
    assert results["ExplodingTensor"].status == "Error" and "debugger=false" in results["ExplodingTensor"].message
    assert results["StepOutlier"].status == "Error" and "profiler=false" in results["StepOutlier"].message
    assert results["LowGPUUtilization"].status == "Error"


def system(n=200, gpu_util=None, gpu_mem=None, cpu=50.0, iowait=1.0, cores=4):
    columns = {"timestamp": T0 + 0.5 * np.arange(n), "cpu_percent": np.full(n, cpu),
               "iowait_percent": np.full(n, iowait), "memory_percent": np.full(n, 30.0)}
    for i in range(cores):
        columns[f"cpu{i}_percent"] = np.full(n, cpu)
    if gpu_util is not None:
        columns["gpu0_util_percent"] = np.asarray(gpu_util, dtype=float) * np.ones(n)
        columns["gpu0_memory_percent"] = np.asarray(gpu_mem if gpu_mem is not None else 50.0, dtype=float) * np.ones(n)
        columns["gpu0_memory_used_mb"] = columns["gpu0_memory_percent"] * 160
    return columns


def gpu_job(**system_args):
    return dict(job={"started": T0 - 30, "first_step_start": T0, "loop_end": T0 + 100, "cpu_count": 4,
                     "num_workers": 3, "profiler": {"gpus": 1, "nvml": True}}, system=system(**system_args))


@pytest.mark.parametrize("rule, system_args, fires", [
    ("LowGPUUtilization", dict(gpu_util=95), False),
    ("LowGPUUtilization", dict(gpu_util=40), True),
    ("LowGPUUtilization", dict(gpu_util=np.r_[np.full(180, 95), np.zeros(20)]), True),  # fluctuating
    ("CPUBottleneck", dict(gpu_util=5, cpu=97), True),
    ("CPUBottleneck", dict(gpu_util=90, cpu=97), False),
    ("IOBottleneck", dict(gpu_util=20, iowait=70), True),
    ("IOBottleneck", dict(gpu_util=20, iowait=5), False),
    ("BatchSize", dict(gpu_util=30, gpu_mem=20, cpu=20), True),
    ("BatchSize", dict(gpu_util=90, gpu_mem=20, cpu=20), False),
    ("GPUMemoryIncrease", dict(gpu_util=90, gpu_mem=np.linspace(20, 60, 200)), True),
    ("GPUMemoryIncrease", dict(gpu_util=90, gpu_mem=50), False),
])
def test_profiler_rules_on_a_gpu_job(tmp_path, rule, system_args, fires):
    result = run(JobData(layout(tmp_path), **gpu_job(**system_args)), rule)
    assert result.status == ("IssuesFound" if fires else "NoIssuesFound"), result.line()
    if fires:
        assert result.recommendation and result.time is not None


def test_gpu_rules_are_not_applicable_without_gpu(tmp_path):
    data = JobData(layout(tmp_path), job={"started": T0, "first_step_start": T0, "loop_end": T0 + 100},
                   system=system())
    for rule in ("LowGPUUtilization", "CPUBottleneck", "BatchSize", "GPUMemoryIncrease"):
        result = run(data, rule)
        assert result.status == "NoIssuesFound" and "not applicable" in result.message
    no_nvml = JobData(layout(tmp_path), job={"started": T0, "profiler": {"gpus": 1, "nvml": False}}, system=system())
    assert run(no_nvml, "LowGPUUtilization").status == "Error"


def steps(n=100, data_s=0.001, slow=()):
    step_s = np.full(n, 0.1) + np.random.default_rng(0).normal(0, 0.002, n)
    for index in slow:
        step_s[index] = 2.0
    return {"step": np.arange(n, dtype=float), "elapsed_s": 30 + 0.1 * np.arange(n),
            "timestamp": T0 + 0.1 * np.arange(n), "step_s": step_s, "data_s": np.full(n, data_s),
            "epoch": np.ones(n)}


def test_step_outlier_initialisation_and_dataloader(tmp_path):
    job = {"started": T0 - 30, "first_step_start": T0, "cpu_count": 8, "num_workers": 0}
    result = run(JobData(layout(tmp_path), job=job, steps=steps(1000, slow=range(100, 700, 50))), "StepOutlier")
    assert result.status == "IssuesFound" and result.step == 100 and result.values["outliers"] == 12
    assert run(JobData(layout(tmp_path), job=job, steps=steps(slow=[10, 50])), "StepOutlier").status == "NoIssuesFound"
    assert run(JobData(layout(tmp_path), job=job), "MaxInitializationTime").status == "NoIssuesFound"
    slow_start = {**job, "first_step_start": T0 + 25 * 60}
    result = run(JobData(layout(tmp_path), job=slow_start), "MaxInitializationTime")
    assert result.status == "IssuesFound" and result.values["initialization_s"] > 20 * 60
    # A run resumed after the last epoch trains no step; the step timings are those of the earlier runs.
    finish_only = {**job, "started": T0 + 600, "first_step_start": None, "ended": T0 + 610}
    result = run(JobData(layout(tmp_path), job=finish_only, steps=steps()), "MaxInitializationTime")
    assert result.status == "NoIssuesFound" and result.message.startswith("no training step in this run (10 s"), \
        result.message
    waiting = JobData(layout(tmp_path), job=job, steps=steps(data_s=0.08))
    result = run(waiting, "Dataloader")
    assert result.status == "IssuesFound" and result.values["data_wait_percent"] > 50
    assert "num_workers" in result.recommendation
    assert run(JobData(layout(tmp_path), job=job, steps=steps(data_s=0.001)), "Dataloader").status == "NoIssuesFound"
    crowded = {**job, "num_workers": 32}
    assert run(JobData(layout(tmp_path), job=crowded, steps=steps()), "Dataloader").status == "IssuesFound"


def test_a_crashing_rule_is_an_error_not_a_crash(tmp_path, monkeypatch):
    from classifier.debugger import rules

    def broken(data, **params):
        raise ZeroDivisionError("boom")

    monkeypatch.setitem(rules.FUNCTIONS, "Overfit", broken)
    result = run(JobData(layout(tmp_path)), "Overfit")
    assert result.status == "Error" and "boom" in result.message
