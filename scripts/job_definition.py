"""Load and validate config/job.yaml, the one definition of a tuning job (local mode and AWS alike)."""
from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from classifier.debugger import config as debugger_config
from classifier.training import hyperparameters as hp_specs
from scripts import REPO_ROOT

DEFAULT_PATH = REPO_ROOT / "config" / "job.yaml"
STRATEGIES = ("Bayesian", "Random", "Hyperband", "Grid")
SCALINGS = ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")
RANGE_TYPES = ("Continuous", "Integer", "Categorical")


class JobDefinitionError(ValueError):
    pass


@dataclass
class ParameterRange:
    name: str
    type: str
    min: float | None = None
    max: float | None = None
    scaling: str = "Auto"
    values: list = field(default_factory=list)


@dataclass
class JobDefinition:
    path: Path
    name_prefix: str
    ranges: list[ParameterRange]
    static_hyperparameters: dict[str, str]
    objective_metric: str
    objective_type: str
    metric_definitions: list[dict]  # [{"Name":..., "Regex":...}] as SageMaker takes them
    strategy: str
    early_stopping: str
    hyperband_min_resource: int
    hyperband_max_resource: int
    max_jobs: int
    max_parallel_jobs: int
    max_runtime_seconds: int
    training_max_runtime_seconds: int
    required_channels: list[str]
    optional_channels: list[str]
    raw: dict

    def metric_regexes(self) -> dict[str, re.Pattern]:
        return {m["Name"]: re.compile(m["Regex"]) for m in self.metric_definitions}

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
        return self.objective_type == "Minimize"

    def with_overrides(self, max_jobs=None, max_parallel_jobs=None, strategy=None, early_stopping=None,
                       hyperparameters: dict | None = None) -> "JobDefinition":
        """A copy with one run's overrides; validated again like the file."""
        raw = copy.deepcopy(self.raw)
        if max_jobs is not None:
            raw["limits"]["max_jobs"] = int(max_jobs)
        if max_parallel_jobs is not None:
            raw["limits"]["max_parallel_jobs"] = int(max_parallel_jobs)
        if strategy:
            raw["strategy"] = strategy
        if early_stopping:
            raw["early_stopping"] = early_stopping
        for name, value in (hyperparameters or {}).items():
            raw["hyperparameter_ranges"].pop(name, None)  # a fixed value replaces a range
            raw["static_hyperparameters"][name] = value
        return from_dict(raw, self.path)


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


def _string(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def from_dict(raw: dict, path: Path) -> JobDefinition:
    where = f"job definition {path}"
    if not isinstance(raw, dict):
        raise JobDefinitionError(f"{where}: expected a mapping at the top level")

    def need(mapping, key, context=""):
        if not isinstance(mapping, dict) or key not in mapping:
            raise JobDefinitionError(f"{where}: missing {context}{key}")
        return mapping[key]

    ranges = []
    for name, spec in (need(raw, "hyperparameter_ranges") or {}).items():
        kind = need(spec, "type", f"hyperparameter_ranges.{name}.")
        if kind not in RANGE_TYPES:
            raise JobDefinitionError(f"{where}: hyperparameter_ranges.{name}.type {kind!r} is not one of {RANGE_TYPES}")
        if kind == "Categorical":
            values = [_string(v) for v in need(spec, "values", f"hyperparameter_ranges.{name}.")]
            if not 1 <= len(values) <= 30:
                raise JobDefinitionError(f"{where}: hyperparameter_ranges.{name} needs 1 to 30 values")
            ranges.append(ParameterRange(name, kind, values=values))
            continue
        low = float(need(spec, "min", f"hyperparameter_ranges.{name}."))
        high = float(need(spec, "max", f"hyperparameter_ranges.{name}."))
        scaling = spec.get("scaling", "Auto")
        if scaling not in SCALINGS:
            raise JobDefinitionError(f"{where}: hyperparameter_ranges.{name}.scaling {scaling!r} "
                                     f"is not one of {SCALINGS}")
        if not low < high:
            raise JobDefinitionError(f"{where}: hyperparameter_ranges.{name}: min {low} must be below max {high}")
        if scaling == "Logarithmic" and low <= 0:
            raise JobDefinitionError(f"{where}: hyperparameter_ranges.{name}: Logarithmic scaling needs min > 0")
        if kind == "Integer" and not (low.is_integer() and high.is_integer()):
            raise JobDefinitionError(f"{where}: hyperparameter_ranges.{name}: Integer range needs whole min and max")
        ranges.append(ParameterRange(name, kind, low, high, scaling))
    if len(ranges) > 30:
        raise JobDefinitionError(f"{where}: {len(ranges)} ranges; SageMaker allows at most 30")

    static = {k: _string(v) for k, v in (raw.get("static_hyperparameters") or {}).items()}
    try:  # the debugger: and profiler: sections reach the job as hyperparameters; static ones win
        static = {**debugger_config.hyperparameters_from_job_definition(raw), **static}
    except ValueError as error:
        raise JobDefinitionError(f"{where}: {error}") from None
    both = sorted(set(static) & {r.name for r in ranges})
    if both:
        raise JobDefinitionError(f"{where}: {', '.join(both)} both static and tuned")
    # The training job rejects unknown names; catch them here, before any job runs.
    unknown = sorted(n for n in [*static, *(r.name for r in ranges)] if n not in hp_specs.SPECS)
    if unknown:
        raise JobDefinitionError(f"{where}: unknown hyperparameter(s) {', '.join(unknown)}; "
                                 f"the training job accepts: {', '.join(sorted(hp_specs.SPECS))}")
    try:
        hp_specs.parse(static)
    except hp_specs.HyperparameterError as error:
        raise JobDefinitionError(f"{where}: static_hyperparameters: {error}") from None

    metrics = []
    for entry in need(raw, "metric_definitions"):
        name, regex = need(entry, "name", "metric_definitions[]."), need(entry, "regex", "metric_definitions[].")
        if len(regex) > 500:
            raise JobDefinitionError(f"{where}: regex of metric {name} is longer than SageMaker's 500 characters")
        try:
            if re.compile(regex).groups < 1:
                raise JobDefinitionError(f"{where}: regex of metric {name} has no capture group for the value")
        except re.error as error:
            raise JobDefinitionError(f"{where}: regex of metric {name} does not compile: {error}") from None
        metrics.append({"Name": str(name), "Regex": regex})
    if len(metrics) > 20:
        raise JobDefinitionError(f"{where}: {len(metrics)} metric definitions; plan for at most 20")

    objective = need(raw, "objective")
    metric, kind = need(objective, "metric", "objective."), need(objective, "type", "objective.")
    if metric not in {m["Name"] for m in metrics}:
        raise JobDefinitionError(f"{where}: objective metric {metric!r} is not among metric_definitions")
    if kind not in ("Minimize", "Maximize"):
        raise JobDefinitionError(f"{where}: objective.type must be Minimize or Maximize, not {kind!r}")

    strategy = need(raw, "strategy")
    if strategy not in STRATEGIES:
        raise JobDefinitionError(f"{where}: strategy {strategy!r} is not one of {STRATEGIES}")
    early_stopping = raw.get("early_stopping", "Off")
    if early_stopping is False:  # YAML reads a bare Off as false
        early_stopping = "Off"
    if early_stopping not in ("Off", "Auto"):
        raise JobDefinitionError(f"{where}: early_stopping must be Off or Auto, not {early_stopping!r}")
    if strategy == "Hyperband" and early_stopping != "Off":
        raise JobDefinitionError(f"{where}: early_stopping must be Off with the Hyperband strategy")
    if strategy == "Grid" and any(r.type != "Categorical" for r in ranges):
        raise JobDefinitionError(f"{where}: the Grid strategy takes categorical ranges only; "
                                 f"{', '.join(r.name for r in ranges if r.type != 'Categorical')} are not")
    hyperband = raw.get("hyperband") or {}
    limits = need(raw, "limits")
    max_jobs, max_parallel = int(need(limits, "max_jobs", "limits.")), int(need(limits, "max_parallel_jobs", "limits."))
    if max_jobs < 1 or max_parallel < 1:
        raise JobDefinitionError(f"{where}: limits.max_jobs and limits.max_parallel_jobs must be at least 1")
    if strategy == "Grid":  # as on SageMaker: one job per combination
        max_jobs = math.prod(len(r.values) for r in ranges)
    channels = raw.get("channels") or {}
    prefix = str(need(raw, "name_prefix"))
    if not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,15}", prefix):
        raise JobDefinitionError(f"{where}: name_prefix {prefix!r} must be 1-16 letters, digits or hyphens")
    return JobDefinition(
        path=Path(path), name_prefix=prefix, ranges=ranges, static_hyperparameters=static,
        objective_metric=metric, objective_type=kind, metric_definitions=metrics, strategy=strategy,
        early_stopping=early_stopping,
        hyperband_min_resource=int(hyperband.get("min_resource", 1)),
        hyperband_max_resource=int(hyperband.get("max_resource", 6)),
        max_jobs=max_jobs, max_parallel_jobs=max_parallel,
        max_runtime_seconds=int(limits.get("max_runtime_seconds", 86400)),
        training_max_runtime_seconds=int(raw.get("training_max_runtime_seconds", 86400)),
        required_channels=list(channels.get("required", ["train", "valid"])),
        optional_channels=list(channels.get("optional", ["test", "weights"])),
        raw=raw,
    )
