"""Load and validate config/job.yaml, the one definition of this project's training and tuning jobs.

The file is parsed once into typed sections (ranges, static hyperparameters, objective, metrics,
strategy, limits, debugger, profiler); local mode and the AWS scripts read only these. Every key of the
file is required and an unknown key is an error, so no value has a second, silent default in code.
The input channels are not part of the file: the training container owns that list
(container/classifier/channels.py) and `JobDefinition.channels` hands it on.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from classifier import channels as container_channels
from classifier.debugger import config as rule_table
from classifier.training import hyperparameters as hp_specs
from scripts import REPO_ROOT

DEFAULT_PATH = REPO_ROOT / "config" / "job.yaml"
STRATEGIES = ("Bayesian", "Random", "Hyperband", "Grid")
EARLY_STOPPING = ("Off", "Auto")
OBJECTIVE_TYPES = ("Minimize", "Maximize")
SCALINGS = ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")
RANGE_TYPES = ("Continuous", "Integer", "Categorical")

# SageMaker's limits (botocore's service model; tests/aws checks them against it).
MAX_HYPERPARAMETERS = 100  # HyperParameters / StaticHyperParameters: at most 100 entries
MAX_HYPERPARAMETER_KEY = 256
MAX_HYPERPARAMETER_VALUE = 2500
MAX_CATEGORICAL_VALUE = 256  # a CategoricalParameterRange value (ParameterValue)
MAX_RANGES = 30
MAX_CATEGORICAL_VALUES = 30
MAX_REGEX = 500
MAX_METRICS = 20  # plan for at most 20 metric definitions per tuning job
NAME_PREFIX = r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,15}"  # 16 + "-yyyymmdd-hhmmss" = 32, the tuning job limit


class JobDefinitionError(ValueError):
    pass


def check_sagemaker_limits(values: dict[str, str], tuned: int = 0) -> None:
    """SageMaker's limits on a job's hyperparameters: at most 100 (with `tuned` names on top), keys up to
    256 characters, values up to 2,500. Raises HyperparameterError naming what is over."""
    problems = []
    if len(values) + tuned > MAX_HYPERPARAMETERS:
        problems.append(f"{len(values) + tuned} hyperparameters; SageMaker takes at most {MAX_HYPERPARAMETERS}")
    long_keys = [k for k in values if len(k) > MAX_HYPERPARAMETER_KEY]
    if long_keys:
        problems.append(f"name(s) longer than {MAX_HYPERPARAMETER_KEY} characters: "
                        + ", ".join(k[:40] + "..." for k in long_keys))
    long_values = [f"{k} ({len(str(v))} characters)" for k, v in values.items()
                   if len(str(v)) > MAX_HYPERPARAMETER_VALUE]
    if long_values:
        problems.append(f"value(s) longer than SageMaker's {MAX_HYPERPARAMETER_VALUE} characters: "
                        + ", ".join(long_values))
    if problems:
        raise hp_specs.HyperparameterError("; ".join(problems))


# --- the typed sections -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ParameterRange:
    name: str
    type: str  # Continuous | Integer | Categorical
    min: float | None = None
    max: float | None = None
    scaling: str = "Auto"  # only for Continuous and Integer; the file states it
    values: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        if self.type == "Categorical":
            return {"type": self.type, "values": list(self.values)}
        return {"type": self.type, "min": self.min, "max": self.max, "scaling": self.scaling}


@dataclass(frozen=True)
class Objective:
    metric: str
    type: str  # Minimize | Maximize

    @property
    def minimize(self) -> bool:
        return self.type == "Minimize"


@dataclass(frozen=True)
class MetricDefinition:
    name: str
    regex: str

    def api(self) -> dict:
        return {"Name": self.name, "Regex": self.regex}


@dataclass(frozen=True)
class Strategy:
    name: str  # Bayesian | Random | Hyperband | Grid
    early_stopping: str  # Off | Auto (median rule)
    hyperband_min_resource: int  # epochs
    hyperband_max_resource: int


@dataclass(frozen=True)
class Limits:
    max_jobs: int  # Grid: the number of combinations, as SageMaker counts them
    max_parallel_jobs: int
    max_runtime_seconds: int  # the whole tuning job (AWS)
    training_max_runtime_seconds: int  # each training job: StoppingCondition.MaxRuntimeInSeconds


@dataclass(frozen=True)
class Channels:
    """The container's channel list (classifier/channels.py), as the scripts use it."""
    required: tuple[str, ...] = container_channels.REQUIRED
    optional: tuple[str, ...] = container_channels.OPTIONAL
    data_set: tuple[str, ...] = container_channels.DATA_SET  # what a DATA folder (or its S3 copy) holds
    test: str = container_channels.TEST
    feature_cache: str = container_channels.FEATURE_CACHE
    init_model: str = container_channels.INIT_MODEL


def _flag(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class DebuggerSection:
    """`debugger:`: smdebug's hook, the rules and the report, run inside the training job. Reaches the job
    as the debugger_* hyperparameters; `attach_sagemaker_rules` is for scripts/aws only."""
    enabled: bool
    train_interval: int
    eval_interval: int
    collections: tuple[str, ...]
    relu_modules: str
    export_tensors_max_mb: int
    rules: tuple[str, ...]
    rule_parameters: dict  # {rule: {parameter: value}}
    actions: dict  # {"StopTraining": (rule, ...)}
    attach_sagemaker_rules: bool

    KEYS = ("enabled", "train_interval", "eval_interval", "collections", "relu_modules", "export_tensors_max_mb",
            "rules", "rule_parameters", "actions", "attach_sagemaker_rules")

    @property
    def stop_rules(self) -> tuple[str, ...]:
        return tuple(self.actions.get("StopTraining", ()))

    def hyperparameters(self) -> dict[str, str]:
        """Always the same names, whatever is set (SageMaker's warm start compares the name sets)."""
        return {
            "debugger": _flag(self.enabled),
            "debugger_train_interval": str(self.train_interval),
            "debugger_eval_interval": str(self.eval_interval),
            "debugger_collections": ",".join(self.collections),
            "debugger_relu_modules": self.relu_modules,
            "debugger_export_max_mb": str(self.export_tensors_max_mb),
            "debugger_rules": ",".join(self.rules) if self.rules else "none",
            "debugger_rule_parameters": ",".join(f"{rule}.{name}={_flag(value)}"
                                                 for rule, values in self.rule_parameters.items()
                                                 for name, value in values.items()),
            "debugger_stop_rules": ",".join(self.stop_rules),
        }

    def to_dict(self) -> dict:
        out = {key: getattr(self, key) for key in self.KEYS}
        out.update(collections=list(self.collections), rules=list(self.rules),
                   actions={k: list(v) for k, v in self.actions.items()},
                   rule_parameters={k: dict(v) for k, v in self.rule_parameters.items()})
        return out


@dataclass(frozen=True)
class ProfilerSection:
    """`profiler:`: system metrics, step phase timings and an optional torch.profiler trace."""
    enabled: bool
    interval_ms: int
    trace_steps: int
    trace_start_step: int

    KEYS = ("enabled", "interval_ms", "trace_steps", "trace_start_step")

    def hyperparameters(self) -> dict[str, str]:
        return {"profiler": _flag(self.enabled), "profiler_interval_ms": str(self.interval_ms),
                "profiler_trace_steps": str(self.trace_steps), "profiler_trace_start_step": str(self.trace_start_step)}

    def to_dict(self) -> dict:
        return {key: getattr(self, key) for key in self.KEYS}


@dataclass(frozen=True)
class JobDefinition:
    path: Path
    name_prefix: str
    ranges: tuple[ParameterRange, ...]
    static: dict[str, str]  # static_hyperparameters as the file (and a run's overrides) give them
    objective: Objective
    metrics: tuple[MetricDefinition, ...]
    strategy: Strategy
    limits: Limits
    debugger: DebuggerSection
    profiler: ProfilerSection
    channels: Channels = Channels()

    @property
    def static_hyperparameters(self) -> dict[str, str]:
        """What every job gets (StaticHyperParameters): every hyperparameter of the training container that is
        not tuned, so the names are the same whatever the file or a run's HP= sets (SageMaker refuses a warm
        start whose static + tuned names differ from its parents'). The container's defaults, then the debugger
        and profiler sections, then static_hyperparameters, which win."""
        given = hp_specs.merge(self.debugger.hyperparameters(), self.profiler.hyperparameters(), self.static)
        return every_name(given, self.tuned_names)

    @property
    def metric_definitions(self) -> list[dict]:
        """MetricDefinitions as SageMaker takes them: [{"Name": ..., "Regex": ...}]."""
        return [m.api() for m in self.metrics]

    @property
    def tuned_names(self) -> list[str]:
        return [r.name for r in self.ranges]

    def metric_regexes(self) -> dict[str, re.Pattern]:
        return {m.name: re.compile(m.regex) for m in self.metrics}

    def parse_metrics(self, log_text: str) -> dict[str, list[float]]:
        """Every value each metric regex finds in a training log, in order (as SageMaker reads them)."""
        found = {}
        for name, regex in self.metric_regexes().items():
            values = []
            for match in regex.finditer(log_text):
                try:
                    values.append(float(match.group(1)))
                except ValueError:
                    continue
            if values:
                found[name] = values
        return found

    def minimize(self) -> bool:
        return self.objective.minimize

    def with_overrides(self, max_jobs=None, max_parallel_jobs=None, strategy=None, early_stopping=None,
                       hyperparameters: dict | None = None) -> "JobDefinition":
        """A copy with one run's overrides (MAX_JOBS=, STRATEGY=, HP=...), validated again like the file. A
        fixed value replaces the range of its name (or of its alias) and wins over the static value."""
        fixed = {k: _flag(v) for k, v in (hyperparameters or {}).items()}
        replaced = set(fixed) | {hp_specs.ALIASES[k] for k in fixed if k in hp_specs.ALIASES}
        limits = dataclasses.replace(
            self.limits, max_jobs=self.limits.max_jobs if max_jobs is None else int(max_jobs),
            max_parallel_jobs=self.limits.max_parallel_jobs if max_parallel_jobs is None else int(max_parallel_jobs))
        chosen = dataclasses.replace(self.strategy, name=strategy or self.strategy.name,
                                     early_stopping=early_stopping or self.strategy.early_stopping)
        changed = dataclasses.replace(self, ranges=tuple(r for r in self.ranges if r.name not in replaced),
                                      static=hp_specs.merge(self.static, fixed), limits=limits, strategy=chosen)
        return validate(changed)

    def to_dict(self) -> dict:
        """The file's form (a tuning job keeps it to resume with the same definition)."""
        return {
            "name_prefix": self.name_prefix,
            "hyperparameter_ranges": {r.name: r.to_dict() for r in self.ranges},
            "static_hyperparameters": dict(self.static),
            "objective": {"metric": self.objective.metric, "type": self.objective.type},
            "metric_definitions": [{"name": m.name, "regex": m.regex} for m in self.metrics],
            "strategy": self.strategy.name,
            "early_stopping": self.strategy.early_stopping,
            "hyperband": {"min_resource": self.strategy.hyperband_min_resource,
                          "max_resource": self.strategy.hyperband_max_resource},
            "limits": {"max_jobs": self.limits.max_jobs, "max_parallel_jobs": self.limits.max_parallel_jobs,
                       "max_runtime_seconds": self.limits.max_runtime_seconds},
            "training_max_runtime_seconds": self.limits.training_max_runtime_seconds,
            "debugger": self.debugger.to_dict(),
            "profiler": self.profiler.to_dict(),
        }


# Of the alias pair, the name a job definition sends (unless the other one is tuned).
CANONICAL_ALIAS = "unfreeze_stages"


def every_name(given: dict[str, str], tuned: list[str]) -> dict[str, str]:
    """`given` with the training container's default for every other name it accepts, but the tuned ones.
    Of the alias pair freeze_backbone / unfreeze_stages one name is sent: the tuned one's partner is left out,
    and otherwise freeze_backbone=true / false becomes unfreeze_stages=0 / all, so that HP="freeze_backbone=..."
    changes a value, not the set of names."""
    values = dict(given)
    alias = hp_specs.ALIASES[CANONICAL_ALIAS]
    if CANONICAL_ALIAS not in tuned and alias not in tuned and alias in values:
        try:
            frozen = hp_specs.SPECS[alias].parse(str(values[alias]))
        except ValueError:
            frozen = None  # left as it is: the container's parse names the bad value
        if frozen is not None:
            del values[alias]
            values[CANONICAL_ALIAS] = "0" if frozen else "all"
    left_out = set(tuned) | {hp_specs.ALIASES[name] for name in tuned if name in hp_specs.ALIASES}
    if not left_out & set(hp_specs.ALIASES):
        left_out.add(alias)
    for name, spec in hp_specs.SPECS.items():
        if name not in values and name not in left_out:
            values[name] = _flag(spec.default)
    return values


def parse_hp_string(text: str) -> dict[str, str]:
    """'lr=0.01 epochs=2' -> {'lr': '0.01', 'epochs': '2'}."""
    values = {}
    for token in (text or "").split():
        name, sep, value = token.partition("=")
        if not sep or not name:
            raise JobDefinitionError(f"hyperparameter {token!r} is not name=value")
        values[name] = value
    return values


def load(path: Path | str | None = None) -> JobDefinition:
    path = Path(path or DEFAULT_PATH)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise JobDefinitionError(f"job definition {path} not found") from None
    except yaml.YAMLError as error:
        raise JobDefinitionError(f"job definition {path} is not valid YAML: {error}") from None
    return from_dict(raw, path)


# --- parsing ------------------------------------------------------------------------------------------------

TOP_LEVEL = ("name_prefix", "hyperparameter_ranges", "static_hyperparameters", "objective", "metric_definitions",
             "strategy", "early_stopping", "hyperband", "limits", "training_max_runtime_seconds", "debugger",
             "profiler")


class _Reader:
    """Typed access to the file's mappings; every error names the file and the key."""

    def __init__(self, path: Path):
        self.where = f"job definition {path}"

    def error(self, message: str) -> JobDefinitionError:
        return JobDefinitionError(f"{self.where}: {message}")

    def section(self, mapping, key: str, keys: tuple[str, ...], context: str = "") -> dict:
        """mapping[key] as a mapping holding exactly `keys`."""
        value = self.value(mapping, key, context)
        if not isinstance(value, dict):
            raise self.error(f"{context}{key} must be a mapping")
        return self.exact(value, keys, f"{context}{key}")

    def exact(self, mapping: dict, keys: tuple[str, ...], context: str) -> dict:
        unknown = sorted(set(mapping) - set(keys))
        if unknown:
            raise self.error(f"{context}: unknown key(s) {', '.join(map(str, unknown))}; known: {', '.join(keys)}")
        for name in keys:
            self.value(mapping, name, f"{context}.")
        return mapping

    def value(self, mapping, key: str, context: str = ""):
        if not isinstance(mapping, dict) or key not in mapping:
            raise self.error(f"missing {context}{key}")
        return mapping[key]

    def typed(self, mapping, key: str, kind, context: str):
        value = self.value(mapping, key, context)
        ok = isinstance(value, bool) if kind is bool else isinstance(value, kind) and not isinstance(value, bool)
        if not ok:
            names = {bool: "true or false", int: "a whole number", str: "text", list: "a list",
                     dict: "a mapping", (int, float): "a number"}
            raise self.error(f"{context}{key} must be {names.get(kind, kind)}, not {value!r}")
        return value

    def names(self, mapping, key: str, context: str) -> tuple[str, ...]:
        value = mapping.get(key)
        value = [] if value is None else value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(f"{context}{key} must be a list of names")
        return tuple(value)


def from_dict(raw: dict, path: Path) -> JobDefinition:
    read = _Reader(Path(path))
    if not isinstance(raw, dict):
        raise read.error("expected a mapping at the top level")
    if "channels" in raw:
        raise read.error("channels: the channel list is the training container's "
                         "(container/classifier/channels.py); remove the channels: section")
    unknown = sorted(set(raw) - set(TOP_LEVEL))
    if unknown:
        raise read.error(f"unknown key(s) {', '.join(map(str, unknown))}; known: {', '.join(TOP_LEVEL)}")
    for key in TOP_LEVEL:
        read.value(raw, key)

    ranges = [_parse_range(read, name, spec) for name, spec in (raw["hyperparameter_ranges"] or {}).items()]
    ranges = tuple(sorted(ranges, key=lambda r: r.name))  # one order, whatever the file's (tuning.json sorts keys)
    static_section = raw["static_hyperparameters"] or {}
    if not isinstance(static_section, dict):
        raise read.error("static_hyperparameters must be a mapping of name: value")
    static = {}
    for name, value in static_section.items():
        if isinstance(value, (dict, list)) or value is None:
            raise read.error(f"static_hyperparameters.{name} must be a single value")
        static[str(name)] = _flag(value)

    objective = read.section(raw, "objective", ("metric", "type"))
    metrics = []
    for entry in read.typed(raw, "metric_definitions", list, ""):
        if not isinstance(entry, dict) or set(entry) != {"name", "regex"}:
            raise read.error(f"each metric_definitions entry is {{name: ..., regex: ...}}, not {entry!r}")
        metrics.append(MetricDefinition(str(entry["name"]), str(entry["regex"])))
    strategy = read.typed(raw, "strategy", str, "")
    early_stopping = raw["early_stopping"]
    if early_stopping is False:  # YAML reads a bare Off as false
        early_stopping = "Off"
    hyperband = read.section(raw, "hyperband", ("min_resource", "max_resource"))
    limits = read.section(raw, "limits", ("max_jobs", "max_parallel_jobs", "max_runtime_seconds"))
    definition = JobDefinition(
        path=Path(path), name_prefix=str(raw["name_prefix"]), ranges=ranges, static=static,
        objective=Objective(str(objective["metric"]), str(objective["type"])), metrics=tuple(metrics),
        strategy=Strategy(strategy, str(early_stopping),
                          read.typed(hyperband, "min_resource", int, "hyperband."),
                          read.typed(hyperband, "max_resource", int, "hyperband.")),
        limits=Limits(read.typed(limits, "max_jobs", int, "limits."),
                      read.typed(limits, "max_parallel_jobs", int, "limits."),
                      read.typed(limits, "max_runtime_seconds", int, "limits."),
                      read.typed(raw, "training_max_runtime_seconds", int, "")),
        debugger=_parse_debugger(read, raw), profiler=_parse_profiler(read, raw))
    return validate(definition)


def _parse_range(read: _Reader, name: str, spec) -> ParameterRange:
    context = f"hyperparameter_ranges.{name}."
    if not isinstance(spec, dict):
        raise read.error(f"hyperparameter_ranges.{name} must be a mapping")
    kind = read.value(spec, "type", context)
    if kind not in RANGE_TYPES:
        raise read.error(f"{context}type {kind!r} is not one of {', '.join(RANGE_TYPES)}")
    if kind == "Categorical":
        read.exact(spec, ("type", "values"), context[:-1])
        values = read.typed(spec, "values", list, context)
        if not 1 <= len(values) <= MAX_CATEGORICAL_VALUES:
            raise read.error(f"hyperparameter_ranges.{name} needs 1 to {MAX_CATEGORICAL_VALUES} values")
        values = tuple(_flag(v) for v in values)
        too_long = [v for v in values if len(v) > MAX_CATEGORICAL_VALUE]
        if too_long:
            raise read.error(f"hyperparameter_ranges.{name}: values longer than SageMaker's "
                             f"{MAX_CATEGORICAL_VALUE} characters")
        return ParameterRange(str(name), kind, values=values)
    read.exact(spec, ("type", "min", "max", "scaling"), context[:-1])
    low = float(read.typed(spec, "min", (int, float), context))
    high = float(read.typed(spec, "max", (int, float), context))
    scaling = spec["scaling"]
    if scaling not in SCALINGS:
        raise read.error(f"{context}scaling {scaling!r} is not one of {', '.join(SCALINGS)}")
    if not low < high:
        raise read.error(f"hyperparameter_ranges.{name}: min {low} must be below max {high}")
    if scaling == "Logarithmic" and low <= 0:
        raise read.error(f"hyperparameter_ranges.{name}: Logarithmic scaling needs min > 0")
    if kind == "Integer" and not (low.is_integer() and high.is_integer()):
        raise read.error(f"hyperparameter_ranges.{name}: Integer range needs whole min and max")
    return ParameterRange(str(name), kind, low, high, scaling)


def _parse_debugger(read: _Reader, raw: dict) -> DebuggerSection:
    section = read.section(raw, "debugger", DebuggerSection.KEYS)
    c = "debugger."
    parameters = section["rule_parameters"] or {}
    if not isinstance(parameters, dict) or not all(isinstance(v, dict) for v in parameters.values()):
        raise read.error("debugger.rule_parameters must map rule names to {parameter: value}")
    actions = section["actions"] or {}
    if not isinstance(actions, dict):
        raise read.error("debugger.actions must map actions to lists of rule names")
    unknown = sorted(set(actions) - set(rule_table.ACTIONS))
    if unknown:
        raise read.error(f"debugger.actions: unknown action(s) {', '.join(unknown)}; this project runs "
                         f"{', '.join(rule_table.ACTIONS)} (Email and SMS need the Debugger service)")
    return DebuggerSection(
        enabled=read.typed(section, "enabled", bool, c),
        train_interval=read.typed(section, "train_interval", int, c),
        eval_interval=read.typed(section, "eval_interval", int, c),
        collections=read.names(section, "collections", c),
        relu_modules=read.typed(section, "relu_modules", str, c),
        export_tensors_max_mb=read.typed(section, "export_tensors_max_mb", int, c),
        rules=read.names(section, "rules", c),
        rule_parameters={str(rule): {str(k): v for k, v in (values or {}).items()}
                         for rule, values in parameters.items()},
        actions={name: read.names(actions, name, "debugger.actions.") for name in actions},
        attach_sagemaker_rules=read.typed(section, "attach_sagemaker_rules", bool, c))


def _parse_profiler(read: _Reader, raw: dict) -> ProfilerSection:
    section = read.section(raw, "profiler", ProfilerSection.KEYS)
    c = "profiler."
    return ProfilerSection(enabled=read.typed(section, "enabled", bool, c),
                           interval_ms=read.typed(section, "interval_ms", int, c),
                           trace_steps=read.typed(section, "trace_steps", int, c),
                           trace_start_step=read.typed(section, "trace_start_step", int, c))


# --- checks across sections (the file and every run's overrides) --------------------------------------------

def validate(definition: JobDefinition) -> JobDefinition:
    """The checks that need more than one section; returns the definition (Grid: with its job count)."""
    read = _Reader(definition.path)
    if len(definition.ranges) > MAX_RANGES:
        raise read.error(f"{len(definition.ranges)} ranges; SageMaker allows at most {MAX_RANGES}")
    if not re.fullmatch(NAME_PREFIX, definition.name_prefix):
        raise read.error(f"name_prefix {definition.name_prefix!r} must be 1-16 letters, digits or hyphens "
                         "(not starting or ending with a hyphen)")
    _check_debugger_sections(definition, read)
    _check_hyperparameters(definition, read)
    _check_metrics(definition, read)
    return _check_strategy_and_limits(definition, read)


def _check_debugger_sections(definition: JobDefinition, read: _Reader) -> None:
    """The debugger and profiler sections, checked by the training container's own rules (the rule table's
    messages name the rule or parameter; then every value as a hyperparameter)."""
    section_hyperparameters = definition.debugger.hyperparameters()
    try:
        for key in ("debugger_rules", "debugger_stop_rules"):
            rule_table.rule_names(section_hyperparameters[key])
        rule_table.rule_parameters(section_hyperparameters["debugger_rule_parameters"])
    except ValueError as error:
        raise read.error(f"debugger: {error}") from None
    for name, section in (("debugger", definition.debugger), ("profiler", definition.profiler)):
        try:
            hp_specs.parse(section.hyperparameters())
        except hp_specs.HyperparameterError as error:
            raise read.error(f"{name}: {error}") from None


def _check_hyperparameters(definition: JobDefinition, read: _Reader) -> None:
    static = definition.static_hyperparameters
    tuned = [r.name for r in definition.ranges]
    both = sorted(set(definition.static) & set(tuned))
    if both:
        raise read.error(f"{', '.join(both)} both static and tuned")
    # The training job rejects unknown names; catch them here, before any job runs.
    unknown = sorted(n for n in [*static, *tuned] if n not in hp_specs.SPECS)
    if unknown:
        raise read.error(f"unknown hyperparameter(s) {', '.join(unknown)}; "
                         f"the training job accepts: {', '.join(sorted(hp_specs.SPECS))}")
    try:
        hp_specs.parse(static)
        check_sagemaker_limits(static, tuned=len(tuned) + 1)  # + _tuning_objective_metric
    except hp_specs.HyperparameterError as error:
        raise read.error(f"static_hyperparameters: {error}") from None


def _check_metrics(definition: JobDefinition, read: _Reader) -> None:
    names = [m.name for m in definition.metrics]
    for metric in definition.metrics:
        if len(metric.regex) > MAX_REGEX:
            raise read.error(f"regex of metric {metric.name} is longer than SageMaker's {MAX_REGEX} characters")
        try:
            if re.compile(metric.regex).groups < 1:
                raise read.error(f"regex of metric {metric.name} has no capture group for the value")
        except re.error as error:
            raise read.error(f"regex of metric {metric.name} does not compile: {error}") from None
    if len(names) > MAX_METRICS:
        raise read.error(f"{len(names)} metric definitions; plan for at most {MAX_METRICS}")
    if len(set(names)) != len(names):
        raise read.error("metric_definitions: each name once")
    if definition.objective.metric not in names:
        raise read.error(f"objective metric {definition.objective.metric!r} is not among metric_definitions")
    if definition.objective.type not in OBJECTIVE_TYPES:
        raise read.error(f"objective.type must be Minimize or Maximize, not {definition.objective.type!r}")


def _check_strategy_and_limits(definition: JobDefinition, read: _Reader) -> JobDefinition:
    ranges, strategy, limits = definition.ranges, definition.strategy, definition.limits
    if strategy.name not in STRATEGIES:
        raise read.error(f"strategy {strategy.name!r} is not one of {', '.join(STRATEGIES)}")
    if strategy.early_stopping not in EARLY_STOPPING:
        raise read.error(f"early_stopping must be Off or Auto, not {strategy.early_stopping!r}")
    if strategy.name == "Hyperband" and strategy.early_stopping != "Off":
        raise read.error("early_stopping must be Off with the Hyperband strategy")
    if not 1 <= strategy.hyperband_min_resource <= strategy.hyperband_max_resource:
        raise read.error("hyperband: need 1 <= min_resource <= max_resource")
    if strategy.name == "Grid" and any(r.type != "Categorical" for r in ranges):
        raise read.error("the Grid strategy takes categorical ranges only; "
                         f"{', '.join(r.name for r in ranges if r.type != 'Categorical')} are not")
    if limits.max_jobs < 1 or limits.max_parallel_jobs < 1:
        raise read.error("limits.max_jobs and limits.max_parallel_jobs must be at least 1")
    if limits.max_runtime_seconds < 1 or limits.training_max_runtime_seconds < 1:
        raise read.error("limits.max_runtime_seconds and training_max_runtime_seconds must be at least 1")
    if strategy.name == "Grid":  # as on SageMaker: one job per combination
        count = math.prod(len(r.values) for r in ranges)
        if count != limits.max_jobs:
            definition = dataclasses.replace(definition, limits=dataclasses.replace(limits, max_jobs=count))
    return definition
