"""make tune: a SageMaker hyperparameter tuning job from config/job.yaml; waits, then prints the trials
and the best training job.

    python -m scripts.aws.tune [--data data/fashion-mnist | --data-s3 s3://...] [--max-jobs N] [--max-parallel N]
                               [--strategy S] [--hp "name=value ..."] [--parent TUNING ...] [--no-wait] [--dry-run]
    python -m scripts.aws.tune --attach <tuning job>     # wait for / report on an existing one

The request comes from the job definition (ranges, static hyperparameters, metric definitions, objective,
strategy, early stopping, limits) and the settings (image, role, instance type, spot, channels, output and
checkpoint locations). --hp fixes a tuned hyperparameter for this run. The trials get the train, valid
(and weights) channels, never test: the test set plays no part in choosing (`make train` reports on it).
"""
from __future__ import annotations

import sys
from datetime import datetime

from scripts import job_definition

from . import api_requests, debugger
from .client import Aws
from .common import (
    base_parser,
    console_url,
    data_uri,
    ecr_image,
    open_aws,
    poll,
    poll_interval,
    present_channels,
    run,
    table,
)

FINISHED = ("Completed", "Failed", "Stopped", "DeleteFailed")
IGNORED_HYPERPARAMETERS = ("_tuning_objective_metric",)
TEST_CHANNELS = ("test",)


def describe(aws: Aws, name: str, dry: dict | None = None) -> dict:
    return aws.call("sagemaker", "describe_hyper_parameter_tuning_job", HyperParameterTuningJobName=name, dry=dry)


def status_text(state: dict) -> str:
    counters = state.get("TrainingJobStatusCounters", {})
    limits = state.get("HyperParameterTuningJobConfig", {}).get("ResourceLimits", {})
    of = f" of {limits['MaxNumberOfTrainingJobs']}" if limits.get("MaxNumberOfTrainingJobs") else ""
    failed = counters.get("RetryableError", 0) + counters.get("NonRetryableError", 0)
    text = (f"tuning {state.get('HyperParameterTuningJobName')}: {state.get('HyperParameterTuningJobStatus')}  "
            f"jobs: {counters.get('Completed', 0)} completed, {counters.get('InProgress', 0)} running, "
            f"{failed} failed, {counters.get('Stopped', 0)} stopped{of}")
    best = state.get("BestTrainingJob")
    if best and best.get("FinalHyperParameterTuningJobObjectiveMetric"):
        metric = best["FinalHyperParameterTuningJobObjectiveMetric"]
        text += f"  best {metric.get('MetricName')}={metric.get('Value'):.4g}"
    return text


def wait(aws: Aws, name: str) -> dict:
    try:
        return poll(lambda: describe(aws, name), lambda s: s.get("HyperParameterTuningJobStatus") in FINISHED,
                    status_text, poll_interval(aws.settings))
    except KeyboardInterrupt:
        print(f"\nstopped waiting; tuning job {name} goes on. `make tune TUNING={name}` waits again; "
              f"`aws sagemaker stop-hyper-parameter-tuning-job --hyper-parameter-tuning-job-name {name}` stops it",
              file=sys.stderr)
        raise


def trials(aws: Aws, name: str) -> list[dict] | None:
    """Every training job of the tuning job (None when they cannot be listed). Sorted by creation time on
    the server: a list sorted by the objective leaves out jobs that emitted no objective."""
    try:
        jobs = []
        for page in aws.paginate("sagemaker", "list_training_jobs_for_hyper_parameter_tuning_job",
                                 HyperParameterTuningJobName=name, SortBy="CreationTime", SortOrder="Ascending",
                                 MaxResults=100):
            jobs.extend(page.get("TrainingJobSummaries", []))
        return jobs
    except Exception as error:  # the table is a report; its absence must not fail the run
        print(f"note: cannot list the training jobs of {name}: {error}", file=sys.stderr)
        return None


def _seconds(job: dict) -> str:
    start, end = job.get("TrainingStartTime"), job.get("TrainingEndTime")
    if isinstance(start, datetime) and isinstance(end, datetime):
        return f"{(end - start).total_seconds():.0f}s"
    return ""


def trials_table(jobs: list[dict], minimize: bool) -> str:
    def key(job):
        metric = job.get("FinalHyperParameterTuningJobObjectiveMetric")
        if not metric:
            return (1, 0.0)
        return (0, metric["Value"] if minimize else -metric["Value"])

    rows = []
    names = sorted({k for job in jobs for k in job.get("TunedHyperParameters", {})})
    for job in sorted(jobs, key=key):
        metric = job.get("FinalHyperParameterTuningJobObjectiveMetric")
        status = job.get("TrainingJobStatus", "")
        if job.get("FailureReason"):
            status += f" ({job['FailureReason'][:60]})"
        rows.append([job["TrainingJobName"], f"{metric['Value']:.4g}" if metric else "-",
                     *[job.get("TunedHyperParameters", {}).get(n, "") for n in names], _seconds(job), status])
    return table(rows, ["training job", "objective", *names, "time", "status"])


def best_training_job(state: dict) -> dict:
    best = state.get("BestTrainingJob")
    if not best:
        raise ValueError(f"tuning job {state.get('HyperParameterTuningJobName')} has no best training job yet "
                         f"(status {state.get('HyperParameterTuningJobStatus')}: no trial reported the objective)")
    return best


def best_hyperparameters(aws: Aws, tuning_name: str, definition: job_definition.JobDefinition) -> tuple[str, dict]:
    """The best trial's name and every hyperparameter it ran with (static and tuned), as SageMaker recorded
    them; SageMaker's own keys are dropped."""
    placeholder = f"<best training job of {tuning_name}>"
    state = describe(aws, tuning_name, dry={"BestTrainingJob": {"TrainingJobName": placeholder}})
    best = best_training_job(state)["TrainingJobName"]
    dry_hps = {**definition.static_hyperparameters, **{r.name: f"<best {r.name}>" for r in definition.ranges}}
    job = aws.call("sagemaker", "describe_training_job", TrainingJobName=best, dry={"HyperParameters": dry_hps})
    hps = {k: v for k, v in job.get("HyperParameters", {}).items()
           if k not in IGNORED_HYPERPARAMETERS and not k.startswith("sagemaker_")}
    return best, hps


def report(aws: Aws, state: dict, definition: job_definition.JobDefinition) -> None:
    name = state["HyperParameterTuningJobName"]
    jobs = trials(aws, name)
    if jobs:
        print(trials_table(jobs, definition.minimize()))
    if state.get("FailureReason"):
        print(f"failure reason: {state['FailureReason']}")
    best = state.get("BestTrainingJob")
    if not best:
        print("no best training job: no trial reported the objective metric "
              f"{definition.objective_metric} (see the trials' logs in CloudWatch /aws/sagemaker/TrainingJobs)")
        return
    metric = best.get("FinalHyperParameterTuningJobObjectiveMetric", {})
    job = aws.call("sagemaker", "describe_training_job", TrainingJobName=best["TrainingJobName"])
    print(f"\nbest training job: {best['TrainingJobName']}")
    print(f"  {metric.get('MetricName')} = {metric.get('Value')} ({metric.get('Type', definition.objective_type)})")
    print("  tuned: " + " ".join(f"{k}={v}" for k, v in sorted(best.get("TunedHyperParameters", {}).items())))
    print(f"  model artifact: {job.get('ModelArtifacts', {}).get('S3ModelArtifacts', '(none)')}")
    print(f"  next: `make deploy JOB={best['TrainingJobName']}`, or `make train TUNING={name}` for one more "
          f"job with these hyperparameters")


def main(argv=None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--job-definition", help="job definition (default: config/job.yaml)")
    parser.add_argument("--data", default="data/fashion-mnist", help="the local data set uploaded with upload-data")
    parser.add_argument("--data-s3", default="", help="the data set's S3 URI (default: from the settings and --data)")
    parser.add_argument("--attach", default="", help="an existing tuning job: wait for it and report")
    parser.add_argument("--name", default="", help="tuning job name (default: <name_prefix>-<yyyymmdd-hhmmss>)")
    parser.add_argument("--parent", action="append", default=[],
                        help="warm start from this tuning job (repeat, or space/comma-separated; 1-5)")
    parser.add_argument("--warm-start-type", default="IdenticalDataAndAlgorithm",
                        choices=["IdenticalDataAndAlgorithm", "TransferLearning"])
    parser.add_argument("--max-jobs", type=int)
    parser.add_argument("--max-parallel", type=int)
    parser.add_argument("--strategy", choices=list(job_definition.STRATEGIES))
    parser.add_argument("--early-stopping", choices=["Off", "Auto"])
    parser.add_argument("--hp", default="", help='fixed values for this run: "name=value ..."')
    parser.add_argument("--no-wait", action="store_true", help="create the job and return")
    args = parser.parse_args(argv)

    def go() -> int:
        fixed = job_definition.parse_hp_string(args.hp) if args.hp.strip() else {}
        definition = job_definition.load(args.job_definition).with_overrides(
            max_jobs=args.max_jobs, max_parallel_jobs=args.max_parallel, strategy=args.strategy,
            early_stopping=args.early_stopping, hyperparameters=fixed)
        if args.attach:
            aws = open_aws(args)
            name = args.attach
        else:
            aws = open_aws(args, "role_arn", "bucket")
            name = args.name or api_requests.job_name(definition.name_prefix)
            image = ecr_image(aws, aws.settings.training_repository)
            uri = data_uri(aws.settings, args.data, args.data_s3)
            # As in local mode, trials never see the test channel: selection uses the validation set only.
            optional = [c for c in definition.optional_channels if c not in TEST_CHANNELS]
            names = present_channels(aws, uri, definition.required_channels, optional, args.data)
            parents = [p for item in args.parent for p in item.replace(",", " ").split()]
            request = api_requests.tuning_job(definition, aws.settings, name, image, uri, names, parents,
                                              args.warm_start_type)
            aws.call("sagemaker", "create_hyper_parameter_tuning_job", dry={}, **request)
            if debugger.attach_requested(definition.raw):
                print("note: debugger.attach_sagemaker_rules applies to `make train` only (tuning jobs cannot carry "
                      "Debugger rules); the job's own rules run in every trial", file=sys.stderr)
            if aws.dry_run:
                return 0
            print(f"created tuning job {name}: {definition.max_jobs} jobs, {definition.max_parallel_jobs} at a time, "
                  f"{definition.strategy}, {aws.settings.training_instance_type}"
                  f"{' (spot)' if aws.settings.spot else ''}\n"
                  f"  {console_url(aws.settings.region, 'hyper-tuning-jobs', name)}")
        if aws.dry_run:
            describe(aws, name)
            return 0
        if args.no_wait:
            print(f"not waiting: `make tune TUNING={name}` waits and reports")
            return 0
        state = wait(aws, name)
        report(aws, state, definition)
        return 0 if state["HyperParameterTuningJobStatus"] == "Completed" else 1

    return run(go)


if __name__ == "__main__":
    sys.exit(main())
