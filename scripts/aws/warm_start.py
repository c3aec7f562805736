"""Warm start of a tuning job from parent tuning jobs (make tune PARENT_TUNING=...): which type, checked
against the parents before anything is created.

SageMaker's rules (developer guide, "Run a Warm Start Hyperparameter Tuning Job"): 1 to 5 parents, each in a
terminal state; the same objective metric; the same total number of static plus tuned hyperparameters (a name
may move between static and tuned), each keeping its type (continuous, integer, categorical).
IdenticalDataAndAlgorithm also needs the parents' input data and training image; the image tag changes with
every commit, so a new image (or data set) needs TransferLearning. `auto` picks it and says why.

Pure functions: the descriptions come from DescribeHyperParameterTuningJob, the request from api_requests.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from scripts.orchestration import RequestError

IDENTICAL, TRANSFER = "IdenticalDataAndAlgorithm", "TransferLearning"
AUTO = "auto"
TYPES = (AUTO, IDENTICAL, TRANSFER)
TERMINAL = ("Completed", "Stopped", "Failed")
MAX_PARENTS = 5
RANGE_KINDS = {"ContinuousParameterRanges": "continuous", "IntegerParameterRanges": "integer",
               "CategoricalParameterRanges": "categorical"}


@dataclass(frozen=True)
class Plan:
    config: dict  # WarmStartConfig
    notes: list[str] = field(default_factory=list)


def _training_definition(job: dict) -> dict:
    """The (first) training job definition of a request or a description."""
    return job.get("TrainingJobDefinition") or (job.get("TrainingJobDefinitions") or [{}])[0]


def _ranges(job: dict) -> dict[str, str]:
    """Tuned name -> kind (continuous, integer, categorical)."""
    ranges = (job.get("HyperParameterTuningJobConfig", {}).get("ParameterRanges")
              or _training_definition(job).get("HyperParameterRanges") or {})
    return {r["Name"]: kind for key, kind in RANGE_KINDS.items() for r in ranges.get(key, [])}


def _names(job: dict) -> set[str]:
    return set(_training_definition(job).get("StaticHyperParameters", {})) | set(_ranges(job))


def _image(job: dict) -> str:
    return _training_definition(job).get("AlgorithmSpecification", {}).get("TrainingImage", "")


def _data(job: dict) -> dict[str, str]:
    return {c["ChannelName"]: c.get("DataSource", {}).get("S3DataSource", {}).get("S3Uri", "")
            for c in _training_definition(job).get("InputDataConfig", [])}


def _objective(job: dict) -> str:
    return job.get("HyperParameterTuningJobConfig", {}).get("HyperParameterTuningJobObjective", {}).get("MetricName",
                                                                                                        "")


def _listed(names) -> str:
    names = sorted(names)
    return ", ".join(names) if names else "none"


def plan(request: dict, parents: dict[str, dict], asked: str = AUTO) -> Plan:
    """The WarmStartConfig of `request` (CreateHyperParameterTuningJob) from its parents' descriptions, or a
    RequestError that says which rule a parent breaks (SageMaker would refuse the job, or fail it later)."""
    if asked not in TYPES:
        raise RequestError(f"warm start type {asked!r} is not one of {', '.join(TYPES)}")
    if not 1 <= len(parents) <= MAX_PARENTS:
        raise RequestError(f"warm start takes 1 to {MAX_PARENTS} parent tuning jobs, not {len(parents)}")
    problems, differs = [], []
    names, ranges = _names(request), _ranges(request)
    for parent, described in parents.items():
        status = described.get("HyperParameterTuningJobStatus", "")
        if status not in TERMINAL:
            problems.append(f"parent {parent} is {status or 'in an unknown state'}; it must have finished "
                            f"({', '.join(TERMINAL)}): `make tune TUNING={parent}` waits for it")
        if _objective(described) != _objective(request):
            problems.append(f"parent {parent} tuned {_objective(described) or 'another objective'}, this job "
                            f"tunes {_objective(request)}: the objective metric must be the same")
        theirs = _names(described)
        if len(theirs) != len(names):
            problems.append(f"parent {parent} has {len(theirs)} static + tuned hyperparameters, this job {len(names)}: "
                            f"SageMaker needs the same number (only the parent's: {_listed(theirs - names)}; only "
                            f"this job's: {_listed(names - theirs)})")
        kinds = [f"{n} ({kind} there, {ranges[n]} here)" for n, kind in _ranges(described).items()
                 if n in ranges and ranges[n] != kind]
        if kinds:
            problems.append(f"parent {parent} tunes {', '.join(kinds)}: a hyperparameter keeps its type")
        if _image(described) != _image(request):
            differs.append(f"parent {parent} ran the training image {_image(described) or '(unknown)'}, this job "
                           f"runs {_image(request)}")
        if _data(described) != _data(request):
            differs.append(f"parent {parent} read {_describe_data(_data(described))}, this job reads "
                           f"{_describe_data(_data(request))}")
    if differs and asked == IDENTICAL:
        problems.append(f"{IDENTICAL} needs the parents' training image and data: " + "; ".join(differs)
                        + f" (WARM_START_TYPE={TRANSFER}, or leave it at {AUTO})")
    if problems:
        raise RequestError("cannot warm start from " + ", ".join(parents) + ": " + "; ".join(problems))
    chosen = asked if asked != AUTO else (TRANSFER if differs else IDENTICAL)
    notes = [f"warm start type {chosen}: " + ("; ".join(differs) if differs else
                                              "the parents ran the same training image on the same data")]
    config = {"ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": p} for p in parents],
              "WarmStartType": chosen}
    return Plan(config, notes)


def _describe_data(channels: dict[str, str]) -> str:
    return ", ".join(f"{name} {uri}" for name, uri in sorted(channels.items())) or "no channels"


def dry_parent(request: dict) -> dict:
    """What a dry run assumes of a parent: finished, with this job's definition (the real type is decided from
    the parents' descriptions when the job is created)."""
    return {"HyperParameterTuningJobStatus": "Completed",
            "HyperParameterTuningJobConfig": request.get("HyperParameterTuningJobConfig", {}),
            "TrainingJobDefinition": request.get("TrainingJobDefinition", {})}
