"""A SageMaker tuning job as the tuning report reads it: DescribeHyperParameterTuningJob (status, strategy,
ranges, objective, the metric definitions), ListTrainingJobsForHyperParameterTuningJob (the trials, as
`make tune` lists them) and each trial's per-epoch values.

The per-epoch values come from the trials' CloudWatch logs (group /aws/sagemaker/TrainingJobs, stream
<job>/algo-1-<time>): FilterLogEvents with the pattern "[metrics]" returns just the metric lines, which the
tuning job's own metric regexes read, the lines SageMaker itself reads. The CloudWatch metrics SageMaker
derives from them (namespace /aws/sagemaker/TrainingJobs) carry no epoch number, only a time, and
GetMetricData at its 1-minute period merges the epochs that end in the same minute; the log keeps every
epoch with its number, read the same way as a local trial's job.log.
"""
from __future__ import annotations

import re

import botocore.exceptions

from scripts.aws import tune as aws_tune
from scripts.aws.client import Aws, error_code
from scripts.aws.common import console_url
from scripts.aws.training_job import LOG_GROUP
from scripts.job_definition import Objective, ParameterRange

from .tuning_data import CURVE_METRIC, TrialRun, TuningRun, per_epoch

METRIC_LINES = '"[metrics]"'  # a filter pattern term in quotes: its brackets are plain characters
TRIAL_NUMBER = re.compile(r"-(\d{3})-[0-9a-f]{8}$")  # SageMaker names trials <tuning>-NNN-<8 hex digits>
STOPPED = ("Stopping", "Stopped")


def load(aws: Aws, name: str) -> TuningRun:
    state = aws_tune.describe(aws, name)
    listed = aws_tune.trials(aws, name, dry={"TrainingJobSummaries": [{"TrainingJobName": f"{name}-001-0123abcd"}]})
    config = state.get("HyperParameterTuningJobConfig", {})
    regex = metric_regexes(state).get(CURVE_METRIC)
    notes = [] if listed is not None else ["The trials could not be listed (see the note printed with the error)."]
    trials = []
    for index, summary in enumerate(listed or [], start=1):
        job = summary["TrainingJobName"]
        number = TRIAL_NUMBER.search(job)
        text, problem = metric_lines(aws, job)
        if problem:
            notes.append(f"{job}: no per-epoch values ({problem}).")
        trial = aws_tune.as_trial(summary)
        # A trial stops by itself only through the tuner's early stopping; otherwise the tuning job was stopped.
        early = trial.status == "Stopped" and state.get("HyperParameterTuningJobStatus") not in STOPPED
        trials.append(TrialRun(int(number.group(1)) if number else index, trial, per_epoch(text, regex), early,
                               summary.get("TrainingStartTime"), summary.get("TrainingEndTime"),
                               console_url(aws.settings.region, "jobs", job)))
    objective = config.get("HyperParameterTuningJobObjective", {})
    limits = config.get("ResourceLimits", {})
    return TuningRun(
        name=name, backend="SageMaker", location=console_url(aws.settings.region, "hyper-tuning-jobs", name),
        status=state.get("HyperParameterTuningJobStatus", "unknown"), strategy=config.get("Strategy", "–"),
        early_stopping=config.get("TrainingJobEarlyStoppingType", "Off"),
        objective=Objective(objective.get("MetricName", CURVE_METRIC), objective.get("Type", "Minimize")),
        ranges=parameter_ranges(config.get("ParameterRanges", {})),
        trials=tuple(sorted(trials, key=lambda t: t.number)),
        max_jobs=limits.get("MaxNumberOfTrainingJobs"), max_parallel=limits.get("MaxParallelTrainingJobs"),
        created=state.get("CreationTime"), ended=state.get("HyperParameterTuningEndTime"),
        failure_reason=state.get("FailureReason", ""),
        retrain=(f"make train TUNING={name}", f'make train TUNING={name} HP="best epochs=10"',
                 f"make deploy TUNING={name}"),
        notes=tuple(notes))


def metric_regexes(state: dict) -> dict[str, re.Pattern]:
    """The tuning job's own MetricDefinitions (what SageMaker read its trials' logs with)."""
    definition = state.get("TrainingJobDefinition") or next(iter(state.get("TrainingJobDefinitions") or []), {})
    metrics = definition.get("AlgorithmSpecification", {}).get("MetricDefinitions", [])
    return {m["Name"]: re.compile(m["Regex"]) for m in metrics}


def parameter_ranges(ranges: dict) -> tuple[ParameterRange, ...]:
    """ParameterRanges as the job definition's typed ranges (the report draws them the same way)."""
    found = []
    for kind in ("Continuous", "Integer"):
        for r in ranges.get(f"{kind}ParameterRanges", []):
            found.append(ParameterRange(r["Name"], kind, float(r["MinValue"]), float(r["MaxValue"]),
                                        r.get("ScalingType", "Auto")))
    for r in ranges.get("CategoricalParameterRanges", []):
        found.append(ParameterRange(r["Name"], "Categorical", values=tuple(r["Values"])))
    return tuple(found)


def metric_lines(aws: Aws, job: str) -> tuple[str, str]:
    """The trial's metric lines from its first host's log, and what went wrong if they cannot be read."""
    lines = []
    try:
        for page in aws.paginate("logs", "filter_log_events", input_token="nextToken", logGroupName=LOG_GROUP,
                                 logStreamNamePrefix=f"{job}/algo-1-", filterPattern=METRIC_LINES):
            lines += [event.get("message", "") for event in page.get("events", [])]
    except botocore.exceptions.ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            return "", f"no log group {LOG_GROUP} in {aws.settings.region}"
        return "", f"{error_code(error) or 'error'} reading its log"
    if not lines:
        return "", "its log holds no metric lines (it may have failed before the first epoch)"
    return "\n".join(lines), ""
