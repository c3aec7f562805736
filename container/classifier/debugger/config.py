"""Rule names and defaults, the debugger's hyperparameters, and where a job's debugger files live.

No torch or smdebug here: the hyperparameter specs and the job definition loader import this module.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

COLLECTIONS = ("losses", "weights", "biases", "gradients", "relu_output")
RELU_SCOPES = ("head", "all")


@dataclass(frozen=True)
class RuleInfo:
    name: str
    kind: str  # "tensor" (needs debugger=true) or "profiler" (needs profiler=true)
    defaults: dict
    checks: str  # what the rule looks at, one line for the report
    recommendation: str  # shown in the report and the log when the rule fires


RULES: dict[str, RuleInfo] = {r.name: r for r in [
    RuleInfo("VanishingGradient", "tensor", {"threshold": 1e-7},
             "mean absolute value of each saved gradient below `threshold`",
             "Gradients are vanishing: the weights no longer change. Check the weight initialisation, use "
             "ReLU-family activations, batch normalisation or residual connections, and try a larger learning rate."),
    RuleInfo("ExplodingTensor", "tensor", {"only_nan": False},
             "any NaN (or infinite, unless `only_nan`) value in any saved tensor",
             "Tensors became NaN or infinite: lower the learning rate (lr), add gradient clipping, check the input "
             "data for NaN and, with float16 mixed precision, keep loss scaling on."),
    RuleInfo("LossNotDecreasing", "tensor", {"num_steps": 10, "diff_percent": 0.1, "increase_threshold_percent": 5},
             "mean saved training loss of each block of `num_steps` steps against the previous block's: fell by "
             "less than `diff_percent` % or rose by more than `increase_threshold_percent` %",
             "The training loss stopped decreasing or rose: if it rose, lower the learning rate; if it plateaued, "
             "check the labels and the shuffling of the data, try another learning rate, or stop training earlier."),
    RuleInfo("Overfit", "tensor", {"start_step": 0, "patience": 1, "ratio_threshold": 0.1},
             "(mean validation loss - mean training loss) / mean training loss of an epoch above "
             "`ratio_threshold` for `patience` consecutive epochs",
             "The model fits the training data much better than the validation data: use more training data or "
             "augmentation (augment=true), regularisation (weight_decay, label_smoothing), or early stopping "
             "(early_stopping_patience)."),
    RuleInfo("Overtraining", "tensor", {"patience_train": 5, "patience_validation": 10, "delta": 0.01},
             "training loss not better by `delta` for `patience_train` epochs, or validation loss for "
             "`patience_validation` epochs",
             "Training goes on without improving the model: stop earlier (early_stopping_patience) or train "
             "fewer epochs; the best epoch's model is the one kept."),
    RuleInfo("PoorWeightInitialization", "tensor",
             {"threshold": 10.0, "distribution_range": 0.001, "patience": 5, "steps": 10},
             "in `patience` of the first `steps` saved steps: ReLU output variance ratio across layers above "
             "`threshold`, or every layer's gradients within a 5th-95th percentile spread below `distribution_range`",
             "The weights look poorly initialised: use He (Kaiming) initialisation for ReLU layers or Xavier for "
             "tanh/sigmoid, start from pretrained weights, or add batch normalisation."),
    RuleInfo("DeadRelu", "tensor", {"threshold_inactivity": 1.0, "threshold_layer": 50.0},
             "share of a ReLU layer's units that are non-zero for fewer than `threshold_inactivity` % of their "
             "outputs above `threshold_layer` %",
             "Many ReLU units never activate (dead ReLUs): lower the learning rate, use LeakyReLU, or improve the "
             "initialisation."),
    RuleInfo("ClassImbalance", "tensor", {"threshold_imbalance": 10.0, "threshold_misprediction": 0.7, "samples": 500},
             "ratio of the largest to the smallest class in the training labels above `threshold_imbalance`, or "
             "a class's share of mispredictions above `threshold_misprediction` (latest epoch, once `samples` "
             "predictions were seen)",
             "The classes are imbalanced or some are mostly mispredicted: collect more images of the small classes, "
             "oversample them or weight the loss by class, and check those classes' labels."),
    RuleInfo("LowGPUUtilization", "profiler", {"threshold_p95": 70.0, "threshold_p5": 10.0},
             "GPU utilisation p95 below `threshold_p95` % (under-used), or p95 above it with p5 below "
             "`threshold_p5` % (fluctuating), during the training loop",
             "The GPU is under-used: look for bottlenecks (data loading, CPU pre-processing, blocking calls), "
             "increase the batch size, or choose a smaller instance type to save cost."),
    RuleInfo("CPUBottleneck", "profiler", {"threshold": 50.0, "cpu_threshold": 90.0, "gpu_threshold": 10.0},
             "CPU above `cpu_threshold` % while GPU below `gpu_threshold` % for more than `threshold` % of the time",
             "The CPU holds the GPU back: increase the number of data loader workers (num_workers) or pre-fetch "
             "data, move pre-processing (decoding, resizing) offline, or choose an instance with more CPU cores."),
    RuleInfo("IOBottleneck", "profiler", {"threshold": 50.0, "io_threshold": 50.0, "gpu_threshold": 70.0},
             "I/O wait above `io_threshold` % while GPU below `gpu_threshold` % (0 without GPU) for more than "
             "`threshold` % of the time",
             "The job waits for storage: pre-fetch data, use binary file formats (RecordIO, TFRecord, WebDataset "
             "shards) instead of many small image files, or the FastFile input mode."),
    RuleInfo("BatchSize", "profiler",
             {"cpu_threshold_p95": 70.0, "gpu_threshold_p95": 70.0, "gpu_memory_threshold_p95": 70.0},
             "CPU, GPU and GPU memory p95 all below their thresholds during the training loop",
             "The instance is under-used: increase the batch size (batch_size) or run on a smaller instance type."),
    RuleInfo("GPUMemoryIncrease", "profiler", {"increase": 10.0, "window": 20},
             "GPU memory use (moving mean of `window` samples) growing by more than `increase` percentage points",
             "GPU memory keeps growing: look for a leak (tensors kept across steps, losses accumulated with their "
             "graph); otherwise lower the batch size or choose an instance with more GPU memory."),
    RuleInfo("StepOutlier", "profiler", {"stddev": 5.0, "n_outliers": 10},
             "more than `n_outliers` training steps longer than mean + `stddev` standard deviations",
             "Some steps take far longer than the others: check for bottlenecks (CPU, I/O, data loading, "
             "checkpointing) at the times of the outliers."),
    RuleInfo("MaxInitializationTime", "profiler", {"threshold": 20.0},
             "first training step not reached within `threshold` minutes of the job start",
             "Initialisation takes long: use the FastFile input mode or smaller channels, ship pretrained weights "
             "in the image or the weights channel, and skip work before the first step."),
    RuleInfo("Dataloader", "profiler", {"min_threshold": 70.0, "max_threshold": 200.0, "min_data_wait_percent": 10.0},
             "data loader processes fewer than `min_threshold` % of the CPU cores while waiting for data takes "
             "more than `min_data_wait_percent` % of the step time, or more than `max_threshold` % of the cores",
             "Data loading holds training back: use more data loader workers (num_workers) or pre-fetching, decode "
             "and resize images offline (smaller files, binary formats), or choose an instance with more CPU cores."),
]}
TENSOR_RULES = tuple(n for n, r in RULES.items() if r.kind == "tensor")
PROFILER_RULES = tuple(n for n, r in RULES.items() if r.kind == "profiler")
ACTIONS = ("StopTraining",)


def split_names(text: str) -> list[str]:
    return [part.strip() for part in str(text or "").split(",") if part.strip()]


def rule_names(text: str) -> list[str]:
    """'all', 'none', '' or comma-separated names; raises ValueError naming an unknown one."""
    lowered = str(text or "").strip().lower()
    if lowered == "all":
        return list(RULES)
    if lowered in ("", "none"):
        return []
    names = split_names(text)
    unknown = [n for n in names if n not in RULES]
    if unknown:
        raise ValueError(f"unknown rule(s) {', '.join(unknown)}; known: {', '.join(RULES)}")
    return names


def rules_for(text: str, debugger: bool, profiler: bool) -> list[str]:
    """The rules a job runs: those named ('all': every one) whose data it collects, tensor rules with the
    debugger, profiler rules with the profiler (the others would only say Error: no data)."""
    return [n for n in rule_names(text)
            if (RULES[n].kind == "tensor" and debugger) or (RULES[n].kind == "profiler" and profiler)]


def valid_rule_names(text: str) -> bool:
    try:
        rule_names(text)
        return True
    except ValueError:
        return False


def valid_collections(text: str) -> bool:
    names = split_names(text)
    return bool(names) and all(n in COLLECTIONS for n in names)


def rule_parameters(text: str) -> dict[str, dict]:
    """'Overfit.patience=2,StepOutlier.stddev=4' -> {'Overfit': {'patience': 2.0}, ...} (numbers or booleans)."""
    result: dict[str, dict] = {}
    for item in split_names(text):
        key, sep, value = item.partition("=")
        rule, dot, param = key.strip().partition(".")
        if not sep or not dot or rule not in RULES:
            raise ValueError(f"{item!r} is not Rule.parameter=value with a known rule")
        if param not in RULES[rule].defaults:
            raise ValueError(f"rule {rule} has no parameter {param!r} (it has {', '.join(RULES[rule].defaults)})")
        result.setdefault(rule, {})[param] = _number(value.strip())
    return result


def valid_rule_parameters(text: str) -> bool:
    try:
        rule_parameters(text)
        return True
    except ValueError:
        return False


def _number(text: str):
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    value = float(text)
    return int(value) if value.is_integer() and "." not in text and "e" not in lowered else value


def parameters_for(rule: str, overrides: dict | None = None) -> dict:
    params = dict(RULES[rule].defaults)
    params.update((overrides or {}).get(rule, {}))
    return params


# --- where the files are -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    """A job's debugger and profiler files.

    data: the output data dir (/opt/ml/output/data, output.tar.gz in S3): everything below except tensors.
    tensors: smdebug's output (/opt/ml/output/tensors; a copy in data/debugger/tensors when exported).
    """
    data: Path
    tensors: Path

    @property
    def debugger(self) -> Path:
        return self.data / "debugger"

    @property
    def profiler(self) -> Path:
        return self.data / "profiler"

    @property
    def rules(self) -> Path:
        return self.data / "rules"

    @property
    def epochs_file(self) -> Path:
        return self.debugger / "epochs.jsonl"

    @property
    def predictions_file(self) -> Path:
        return self.debugger / "predictions.jsonl"

    @property
    def job_file(self) -> Path:
        return self.debugger / "job.json"

    @property
    def system_file(self) -> Path:
        return self.profiler / "system_metrics.csv"

    @property
    def steps_file(self) -> Path:
        return self.profiler / "step_timings.csv"

    @property
    def trace_dir(self) -> Path:
        return self.profiler / "trace"

    @property
    def results_file(self) -> Path:
        return self.rules / "rule_results.json"

    @property
    def history_file(self) -> Path:
        return self.rules / "rule_history.jsonl"

    @property
    def report_file(self) -> Path:
        return self.data / "debugger-report.html"

    @classmethod
    def for_running_job(cls) -> "Layout":
        from .. import paths

        return cls(paths.output_data_dir(), paths.output_dir() / "tensors")

    @classmethod
    def locate(cls, path: Path | str) -> "Layout":
        """A local job dir (an /opt/ml tree), an /opt/ml/output dir, or an extracted output.tar.gz."""
        path = Path(path)
        for data, output in ((path / "output" / "data", path / "output"), (path / "data", path), (path, None)):
            if (data / "debugger").is_dir() or (data / "profiler").is_dir() or (data / "metrics.json").is_file():
                tensors = data / "debugger" / "tensors"
                if output is not None and (output / "tensors").is_dir():
                    tensors = output / "tensors"
                job = data / "debugger" / "job.json"
                if job.is_file():  # the hook may have written elsewhere (debughookconfig.json's LocalPath)
                    recorded = json.loads(job.read_text()).get("hook", {}).get("out_dir")
                    if recorded and not tensors.is_dir() and Path(recorded).is_dir():
                        tensors = Path(recorded)
                return cls(data, tensors)
        raise FileNotFoundError(f"{path} holds no training job output (looked for output/data/, data/ and "
                                f"debugger/ or profiler/ or metrics.json in it)")
