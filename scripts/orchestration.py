"""What a training or tuning job is, decided once for both backends (local mode and SageMaker).

The backends (scripts/local, scripts/aws) only submit jobs, wait for them and read their logs and
metrics. Every decision they share is made here, from the typed job definition (scripts/job_definition.py):
- hyperparameters: the layers static < best trial < given (`hyperparameters.merge`, which also lets a
  later layer's alias replace its partner), the word `best` in HP=, the keys SageMaker adds that are not
  ours (`hyperparameters.is_ignored`), the training container's checks and SageMaker's limits;
- channels: a tuning trial gets the data set's channels but `test` (the test set never takes part in a
  choice); a training job gets all of them;
- names: training and tuning jobs are `<name_prefix>-<yyyymmdd-hhmmss>` (UTC), within SageMaker's
  limits (63 and 32 characters, letters, digits and hyphens);
- shared features: whether a tuning job computes the frozen backbone's features once before its trials
  (`shared_features`) and the key of that cache (`feature_cache_key`);
- the final metrics and the objective read from a log, the trials table and the best trial.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable

from classifier.training import hyperparameters as hp_specs
from scripts.job_definition import JobDefinition, check_sagemaker_limits, parse_hp_string

BEST = "best"  # HP="best epochs=10": the best trial's values, with epochs=10 on top
OBJECTIVE_KEY = "_tuning_objective_metric"  # what SageMaker adds to every trial's hyperparameters
TRAINING_NAME_MAX = 63
TUNING_NAME_MAX = 32
NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")


class RequestError(ValueError):
    """A job request that cannot be made as asked (the message says what to give instead)."""


# --- names ----------------------------------------------------------------------------------------------------

def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def timestamp(now: datetime | None = None) -> str:
    return (now or utc_now()).astimezone(timezone.utc).strftime("%Y%m%d-%H%M%S")


def check_name(name: str, limit: int, what: str) -> str:
    if not (len(name) <= limit and NAME_PATTERN.fullmatch(name)):
        raise RequestError(f"{what} name {name!r} must be 1-{limit} letters, digits and hyphens, starting and "
                           "ending with a letter or digit (SageMaker's rule)")
    return name


def training_job_name(prefix: str, now: datetime | None = None, attempt: int = 0) -> str:
    """<prefix>-<yyyymmdd-hhmmss>; attempt n > 0 (the name is taken: several jobs in one second) adds -<n+1>."""
    return check_name(f"{prefix}-{timestamp(now)}" + (f"-{attempt + 1}" if attempt else ""), TRAINING_NAME_MAX,
                      "training job")


def tuning_job_name(prefix: str, now: datetime | None = None) -> str:
    return check_name(f"{prefix}-{timestamp(now)}", TUNING_NAME_MAX, "tuning job")


def trial_job_name(tuning: str, ordinal: int) -> str:
    """A local tuning job's trial n: <tuning>-NNN (SageMaker names its trials <tuning>-NNN-<8 hex digits>)."""
    return check_name(f"{tuning}-{ordinal:03d}", TRAINING_NAME_MAX, "training job")


# --- hyperparameters ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HpArgument:
    """What HP= says: the word `best` (the best trial's values) and name=value pairs given on top."""
    best: bool = False
    given: dict = field(default_factory=dict)


def parse_hp_argument(text: str, allow_best: bool = True) -> HpArgument:
    tokens = (text or "").split()
    best = BEST in tokens
    if best and not allow_best:
        raise RequestError("HP=best is for training jobs (make train / make train-local TUNING=<tuning job>); "
                           "a tuning job takes name=value pairs")
    return HpArgument(best, parse_hp_string(" ".join(t for t in tokens if t != BEST)))


def wants_best_trial(argument: HpArgument, tuning: str | None) -> bool:
    """TUNING=<tuning job> takes its best trial's hyperparameters (HP=best says so explicitly); `best`
    without a tuning job is an error."""
    if argument.best and not tuning:
        raise RequestError("HP=best needs TUNING=<tuning job> (its best training job's hyperparameters)")
    return bool(tuning)


def recorded_hyperparameters(values: dict) -> dict[str, str]:
    """A finished job's hyperparameters as it ran with them, without the keys SageMaker adds."""
    return {k: str(v) for k, v in values.items() if not hp_specs.is_ignored(k)}


def program_arguments(values: dict) -> list[str]:
    """The `--name value` arguments the sagemaker-training toolkit gives the training program for these
    hyperparameters.json values: each value JSON-decoded where it is JSON (as environment.read_hyperparameters
    does: an SDK Framework estimator sends "\\"resnet50\\"", which arrives as resnet50), SageMaker's own keys
    set apart (mapping.split_by_criteria, as environment.Environment does), then mapping.to_cmd_args."""
    from sagemaker_training import mapping, params

    decoded = {}
    for name, value in values.items():
        try:
            decoded[name] = json.loads(value)
        except (ValueError, TypeError):
            decoded[name] = value
    ours = mapping.split_by_criteria(decoded, keys=params.SAGEMAKER_HYPERPARAMETERS,
                                     prefix=params.SAGEMAKER_PREFIX).excluded
    return mapping.to_cmd_args(ours)


def container_parse(values: dict) -> hp_specs.Hyperparameters:
    """What the training container makes of a job's hyperparameters: the toolkit's arguments (program_arguments),
    parsed by the container's own parser (names, types, ranges, aliases)."""
    return hp_specs.parse_args(program_arguments(values))


def validate_hyperparameters(values: dict[str, str]) -> hp_specs.Hyperparameters:
    """The one check of a job's hyperparameters before it is submitted, on either backend: what the training
    container accepts (container_parse), then SageMaker's limits (100 names, keys of 256 and values of 2,500
    characters)."""
    parsed = container_parse(values)
    check_sagemaker_limits(values)
    return parsed


def _strings(values: dict) -> dict[str, str]:
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items()}


def training_hyperparameters(definition: JobDefinition, best: dict | None = None, given: dict | None = None,
                             check: bool = True, recipe: dict | None = None) -> tuple[dict[str, str], list[str]]:
    """A training job's hyperparameters: the job definition's static ones < the best trial's < `recipe` (the
    final job's fine-tuning, FINE_TUNING) < the given ones. Also the tuned names none of them sets (the job
    then uses the container's default)."""
    values = _strings(hp_specs.merge(definition.static_hyperparameters, recorded_hyperparameters(best or {}),
                                     recipe or {}, given or {}))
    if check:
        validate_hyperparameters(values)
    unset = [name for name in definition.tuned_names
             if name not in values and hp_specs.ALIASES.get(name) not in values]
    return dict(sorted(values.items())), unset


# --- the final job of a tuning job ------------------------------------------------------------------------------

# `make train TUNING=` and `make train-local TUNING=`: the best trial's hyperparameters with the backbone's last
# stage fine-tuned too (on augmented images: augment=auto), started from the best trial's model: its tuned head
# on the same pretrained backbone, at the fine-tuning learning rate: the head's tuned rate is too high for the
# backbone (benchmarks/bench_quality.py measured the stages, the rate and the start: docs/measurements.md). HP=
# comes last: HP="best unfreeze_stages=0" retrains the head alone, from a new head, as a trial did.
FINE_TUNING = {"unfreeze_stages": "1", "lr": "0.0003"}


@dataclass(frozen=True)
class FinalJob:
    """The final job of a tuning job, decided once for both backends."""
    hyperparameters: dict[str, str]
    unset: list[str]  # tuned names nothing sets (the container's default applies)
    from_best_trial: bool  # its init_model channel is the best trial's model


def final_job(definition: JobDefinition, best: dict, given: dict | None = None, check: bool = True) -> FinalJob:
    """The recipe applies to a job that fine-tunes; one that HP= keeps on the head alone (unfreeze_stages=0,
    freeze_backbone=true) runs with the best trial's values as its trial did, the tuned learning rate included."""
    values, unset = training_hyperparameters(definition, best, given, check=check, recipe=FINE_TUNING)
    try:
        fine_tunes = container_parse(values).unfreeze_stages != 0
    except hp_specs.HyperparameterError:  # a dry run's placeholders: the recipe's own value decides
        fine_tunes = values.get("unfreeze_stages", FINE_TUNING["unfreeze_stages"]) != "0"
    if not fine_tunes:
        values, unset = training_hyperparameters(definition, best, given, check=check)
    return FinalJob(values, unset, fine_tunes)


@dataclass(frozen=True)
class FinalModel:
    """Which model a tuning job's final job leaves as the loop's model: its own or the best trial's."""
    job: str
    fine_tuned: bool
    reason: str


def final_model(definition: JobDefinition, final_job_name: str, final_metrics: dict[str, float],
                best_trial: Trial) -> FinalModel:
    """The one with the better objective on the valid set (`best_valid_loss`: the saved model's valid loss; the
    test set chooses nothing): the final job's against the best trial's."""
    metric = definition.objective.metric
    ours, theirs = final_metrics.get(metric), best_trial.objective
    better = ours is not None and (theirs is None or (ours < theirs if definition.minimize() else ours > theirs))
    ours_text = "none" if ours is None else f"{ours:.4f}"
    theirs_text = "none" if theirs is None else f"{theirs:.4f}"
    if better:
        return FinalModel(final_job_name, True, f"{metric} {ours_text}, better than the best trial's {theirs_text} "
                                                f"({best_trial.name})")
    return FinalModel(best_trial.name, False, f"the best trial's {metric} {theirs_text} is not beaten by the final "
                                              f"job's {ours_text} ({final_job_name})")


def unset_note(unset: list[str]) -> str:
    return ("note: no value for tuned hyperparameter(s) "
            + ", ".join(f"{n} (the training job's default {hp_specs.SPECS[n].default})" for n in unset)
            + '; give them with HP="name=value" or TUNING=<tuning job>')


def trial_hyperparameters(definition: JobDefinition, tuned: dict) -> dict[str, str]:
    """What a tuning trial runs with, as SageMaker builds it: the static ones, the tuner's values and the
    objective's name. Not checked here: a bad value fails its trial, as on SageMaker."""
    values = _strings(hp_specs.merge(definition.static_hyperparameters, tuned))
    values[OBJECTIVE_KEY] = definition.objective.metric
    return dict(sorted(values.items()))


def uses_feature_cache(values: dict[str, str]) -> bool:
    """Whether a job with these hyperparameters trains from cached backbone features (the training
    container's rule, `features_are_fixed`)."""
    try:
        return hp_specs.features_are_fixed(container_parse(values))
    except hp_specs.HyperparameterError:
        return False


# --- shared backbone features --------------------------------------------------------------------------------

# What decides whether a job's backbone features are fixed, and which features they are: when none of these is
# tuned, every trial of a tuning job trains its head on the same features, so they are computed once first.
FEATURE_HYPERPARAMETERS = ("model_name", "image_size", "pretrained", "unfreeze_stages", "freeze_backbone", "augment")
FEATURE_KEY_VERSION = 1  # bump when what the key covers changes


def shared_features(definition: JobDefinition) -> dict[str, str] | None:
    """The hyperparameters of the one feature pass a tuning job runs before its trials (locally: the shared
    cache filled in-process; on SageMaker: a feature job), or None when its trials cannot share features: the
    static values do not fix them (`features_are_fixed`: a frozen pretrained backbone, no augmentation) or a
    tuned hyperparameter changes them (FEATURE_HYPERPARAMETERS)."""
    if set(definition.tuned_names) & set(FEATURE_HYPERPARAMETERS):
        return None
    values = {k: v for k, v in trial_hyperparameters(definition, {}).items() if not hp_specs.is_ignored(k)}
    return values if uses_feature_cache(values) else None


def feature_cache_key(values: dict[str, str], code: str, weights: Iterable[str], images: Iterable[str]) -> str:
    """The key of one stored feature cache: what the local cache is keyed by (classifier/training/feature_cache:
    the architecture, the preprocessing, the pretrained weights' contents, each image's contents), as far as a
    host that has not the files sees them. `code`: what computes the features (the training image); `weights`:
    the weights files' content hashes (empty: the image's built-in weights); `images`: the train and valid
    images' content hashes (S3 ETags), in any order."""
    parsed = container_parse(values)
    identity = {"version": FEATURE_KEY_VERSION, "model_name": parsed.model_name, "image_size": parsed.image_size,
                "code": code, "weights": sorted(weights), "images": sorted(images)}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]


# --- channels -------------------------------------------------------------------------------------------------

def data_set_channels(definition: JobDefinition, present: Iterable[str]) -> list[str]:
    """The data set's channels that are present, in the container's order; a required one missing is an
    error."""
    present = set(present)
    missing = [c for c in definition.channels.required if c not in present]
    if missing:
        raise RequestError(f"the data set lacks the required channel(s) {', '.join(missing)}")
    return [c for c in definition.channels.data_set if c in present]


def trial_channels(definition: JobDefinition, present: Iterable[str]) -> list[str]:
    """A tuning trial's channels: never the test set, which plays no part in choosing."""
    return [c for c in data_set_channels(definition, present) if c != definition.channels.test]


def training_channels(definition: JobDefinition, present: Iterable[str]) -> list[str]:
    """A training job's channels: all of the data set's (the test set for the final report)."""
    return data_set_channels(definition, present)


def channels_to_look_for(definition: JobDefinition, trial: bool) -> list[str]:
    return [c for c in definition.channels.data_set if not (trial and c == definition.channels.test)]


# --- metrics, trials and the best one --------------------------------------------------------------------------

def final_metrics(definition: JobDefinition, log_text: str) -> dict[str, float]:
    """Each metric's last value in a training log, read with the job definition's regexes (as SageMaker
    reads its final metrics and a trial's objective)."""
    return {name: values[-1] for name, values in definition.parse_metrics(log_text).items()}


@dataclass(frozen=True)
class Trial:
    """One training job of a tuning job, as either backend reports it."""
    name: str
    status: str  # InProgress | Completed | Failed | Stopped (early stopping, or the tuning job stopped)
    objective: float | None
    hyperparameters: dict  # the tuned ones
    seconds: float | None = None
    failure_reason: str = ""


def ranked(trials: Iterable[Trial], minimize: bool) -> list[Trial]:
    """Best objective first; trials without one after them, in their given order."""
    trials = list(trials)
    scored = [t for t in trials if t.objective is not None]
    scored.sort(key=lambda t: t.objective if minimize else -t.objective)
    return scored + [t for t in trials if t.objective is None]


def best_trial(trials: Iterable[Trial], minimize: bool) -> Trial | None:
    """The completed trial with the best objective (the first of equals). A stopped trial has no model of
    its own, so it is never the best."""
    candidates = [t for t in ranked(trials, minimize) if t.status == "Completed" and t.objective is not None]
    return candidates[0] if candidates else None


def table(rows: list[list], headers: list[str]) -> str:
    """A plain text table, columns padded to their widest cell."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(row):
        return "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def seconds_text(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.0f}s"


def trials_table(trials: Iterable[Trial], definition: JobDefinition) -> str:
    """The trials of a tuning job, best first: name, status, objective, tuned values, time, failure reason."""
    trials = ranked(trials, definition.minimize())
    names = definition.tuned_names or sorted({k for t in trials for k in t.hyperparameters})
    rows = [[t.name, t.status, "-" if t.objective is None else f"{t.objective:.4g}",
             *[t.hyperparameters.get(n, "") for n in names], seconds_text(t.seconds),
             " ".join((t.failure_reason or "").split())[:80]] for t in trials]
    return table(rows, ["training job", "status", definition.objective.metric, *names, "time", "failure reason"])


def describe_values(values: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(values.items()))
