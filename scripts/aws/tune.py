"""make tune: a SageMaker hyperparameter tuning job from config/job.yaml; waits, then prints the trials
and the best training job.

    python -m scripts.aws.tune [--data data/fashion-mnist | --data-s3 s3://...] [--max-jobs N] [--max-parallel N]
                               [--strategy S] [--hp "name=value ..."] [--parent TUNING ...] [--no-wait] [--dry-run]
    python -m scripts.aws.tune --attach <tuning job>     # wait for / report on an existing one

The request comes from the job definition (ranges, static hyperparameters, metric definitions, objective,
strategy, early stopping, limits) and the settings (image, role, instance type, spot, channels, output and
checkpoint locations). --hp fixes a hyperparameter for this run (a tuned one stops being tuned). What the
trials get and which is best is scripts/orchestration.py's, as in local mode: the train, valid (and weights)
channels, never test; the best is the completed trial with the best objective. When the static values fix
the backbone features (orchestration.shared_features), a feature job computes them once first, or a stored
cache for the same key is reused (features.py); the trials then get it as their feature_cache channel and run
on tuning.cached_instance_type. --no-cache (NO_CACHE=1): no shared features.
"""
from __future__ import annotations

import io
import sys
from datetime import datetime

from classifier.training import hyperparameters as hp_specs
from scripts import DEFAULT_DATA, job_definition, orchestration, tuning_cost

from . import api_requests, debugger, features, warm_start
from .client import Aws
from .common import (
    base_parser,
    console_url,
    data_set_channels,
    ecr_image,
    open_aws,
    poll,
    poll_interval,
    run,
    s3_uri_argument,
    status_display,
)
from .trial_checkpoints import TrialCheckpoints

FINISHED = ("Completed", "Failed", "Stopped", "DeleteFailed")


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


def dry_trials(name: str) -> dict:
    """What a dry run assumes of a tuning job's trials: one, finished, with an objective."""
    return {"TrainingJobSummaries": [{"TrainingJobName": f"{name}-001-<id>", "TrainingJobStatus": "Completed",
                                      "FinalHyperParameterTuningJobObjectiveMetric": {"Value": 0.0}}]}


def wait(aws: Aws, name: str) -> dict:
    """Poll until the tuning job ends; each trial's checkpoint folder is deleted as soon as the trial ends
    (trial_checkpoints: later trials would download it). A dry run shows one round of these requests."""
    display = status_display(quiet=aws.dry_run)
    retired = TrialCheckpoints(aws, lambda: trials(aws, name, dry=dry_trials(name)),
                               echo=lambda text: display.print(text, stream=sys.stderr))
    dry = {"HyperParameterTuningJobName": name, "HyperParameterTuningJobStatus": "Completed",
           "TrainingJobStatusCounters": {"Completed": 1},
           "TrainingJobDefinition": {"CheckpointConfig": {"S3Uri": aws.settings.s3_uri("checkpoint_prefix", name)}}}
    if aws.dry_run:
        print(f"# then, every {aws.settings.poll_seconds} s until {name} ends (a finished trial's checkpoints "
              f"deleted), and its report:", file=aws.out)
    try:
        state = poll(lambda: describe(aws, name, dry=dry),
                     lambda s: s.get("HyperParameterTuningJobStatus") in FINISHED,
                     status_text, poll_interval(aws.settings), on_poll=retired.update, display=display)
    except KeyboardInterrupt:
        print(f"\nstopped waiting; tuning job {name} goes on. `make tune TUNING={name}` waits again (and "
              f"deletes the finished trials' checkpoints); "
              f"`aws sagemaker stop-hyper-parameter-tuning-job --hyper-parameter-tuning-job-name {name}` stops it",
              file=sys.stderr)
        raise
    return state


def trials(aws: Aws, name: str, dry: dict | None = None) -> list[dict] | None:
    """Every training job of the tuning job (None when they cannot be listed). Sorted by creation time on
    the server: a list sorted by the objective leaves out jobs that emitted no objective."""
    try:
        jobs = []
        for page in aws.paginate("sagemaker", "list_training_jobs_for_hyper_parameter_tuning_job", dry=dry,
                                 HyperParameterTuningJobName=name, SortBy="CreationTime", SortOrder="Ascending",
                                 MaxResults=100):
            jobs.extend(page.get("TrainingJobSummaries", []))
        return jobs
    except Exception as error:  # the table is a report; its absence must not fail the run
        print(f"note: cannot list the training jobs of {name}: {error}", file=sys.stderr)
        return None


def as_trial(job: dict) -> orchestration.Trial:
    """A TrainingJobSummary of a tuning job as the core's Trial (the table and the best-trial choice)."""
    metric = job.get("FinalHyperParameterTuningJobObjectiveMetric")
    start, end = job.get("TrainingStartTime"), job.get("TrainingEndTime")
    seconds = (end - start).total_seconds() if isinstance(start, datetime) and isinstance(end, datetime) else None
    return orchestration.Trial(job["TrainingJobName"], job.get("TrainingJobStatus", ""),
                               metric["Value"] if metric else None, dict(job.get("TunedHyperParameters", {})),
                               seconds, job.get("FailureReason", ""))


def best_training_job(state: dict) -> dict:
    best = state.get("BestTrainingJob")
    if not best:
        raise ValueError(f"tuning job {state.get('HyperParameterTuningJobName')} has no best training job yet "
                         f"(status {state.get('HyperParameterTuningJobStatus')}: no trial reported the objective)")
    return best


def best_trial(aws: Aws, tuning_name: str, definition: job_definition.JobDefinition,
               listed: list[dict] | None = None) -> orchestration.Trial:
    """The core's choice among the tuning job's trials (orchestration.best_trial, as in local mode). Where
    the trials cannot be listed (no ListTrainingJobsForHyperParameterTuningJob permission), SageMaker's
    own BestTrainingJob, which follows the same rule (the completed job with the best objective)."""
    placeholder = f"<best training job of {tuning_name}>"
    if listed is None:
        listed = trials(aws, tuning_name, dry={"TrainingJobSummaries": [{
            "TrainingJobName": placeholder, "TrainingJobStatus": "Completed",
            "FinalHyperParameterTuningJobObjectiveMetric": {"Value": 0.0}}]})
    if listed is not None:
        best = orchestration.best_trial([as_trial(job) for job in listed], definition.minimize())
        if best is None:
            raise ValueError(f"tuning job {tuning_name} has no completed training job that reported the objective "
                             f"{definition.objective.metric}")
        return best
    state = describe(aws, tuning_name, dry={"BestTrainingJob": {"TrainingJobName": placeholder}})
    return as_trial(best_training_job(state))


def best_trial_job(aws: Aws, tuning_name: str,
                   definition: job_definition.JobDefinition) -> tuple[orchestration.Trial, dict]:
    """The best trial (best_trial) and its DescribeTrainingJob: every hyperparameter it ran with (static and
    tuned) as SageMaker recorded them, and its model artifact."""
    best = best_trial(aws, tuning_name, definition)
    dry = {"HyperParameters": {**definition.static_hyperparameters,
                               **{n: f"<best {n}>" for n in definition.tuned_names}},
           "ModelArtifacts": {"S3ModelArtifacts": aws.settings.s3_uri("output_prefix", best.name, "output")
                              + "model.tar.gz"}}
    return best, aws.call("sagemaker", "describe_training_job", TrainingJobName=best.name, dry=dry)


def report(aws: Aws, state: dict, definition: job_definition.JobDefinition) -> None:
    """The trials table and the best job (a dry run: the requests only)."""
    name = state["HyperParameterTuningJobName"]
    out = io.StringIO() if aws.dry_run else sys.stdout
    listed = trials(aws, name, dry=dry_trials(name))
    if listed:
        print(orchestration.trials_table([as_trial(job) for job in listed], definition), file=out)
    if state.get("FailureReason"):
        print(f"failure reason: {state['FailureReason']}", file=out)
    try:
        best = best_trial(aws, name, definition, listed)
    except ValueError:
        print("no best training job: no trial completed with the objective metric "
              f"{definition.objective.metric} (see the trials' logs in CloudWatch /aws/sagemaker/TrainingJobs)",
              file=out)
        return
    job = aws.call("sagemaker", "describe_training_job", TrainingJobName=best.name)
    value = "-" if best.objective is None else f"{best.objective:g}"
    print(f"\nbest training job: {best.name}\n  {definition.objective.metric} = {value} ({definition.objective.type})"
          f"\n  tuned: {orchestration.describe_values(best.hyperparameters)}"
          f"\n  model artifact: {job.get('ModelArtifacts', {}).get('S3ModelArtifacts', '(none)')}"
          f"\n  next: `make deploy JOB={best.name}`, or `make train TUNING={name}` for one more job with these "
          f"hyperparameters", file=out)


def with_warm_start(aws: Aws, request: dict, parents: list[str], asked: str) -> dict:
    """The request with its WarmStartConfig: the type from the parents' descriptions (warm_start.plan)."""
    described = {p: describe(aws, p, dry=warm_start.dry_parent(request)) for p in dict.fromkeys(parents)}
    if aws.dry_run:
        print("# the warm start type comes from the parents' descriptions: TransferLearning when their training "
              "image or data differ from this job's", file=aws.out)
    plan = warm_start.plan(request, described, asked)
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr)
    return {**request, "WarmStartConfig": plan.config}


def print_estimate(aws: Aws, definition: job_definition.JobDefinition, values: dict[str, str], images: int) -> None:
    """The instance hours (and cost, where tuning.prices has the types) of both plans, before anything is
    created (scripts/tuning_cost.py)."""
    epochs = hp_specs.resolve_epochs(orchestration.container_parse(values))
    settings = aws.settings
    pair = tuning_cost.plans(definition.limits.max_jobs, images, epochs, settings.training_instance_type,
                             settings.cached_instance_type)
    print(f"# estimate for {definition.limits.max_jobs} trials over {images} train+valid images, up to {epochs} "
          f"epochs (this run: shared features; NO_CACHE=1: every trial runs the backbone):", file=aws.out)
    for line in tuning_cost.describe(pair, settings.prices):
        print(f"#   {line}", file=aws.out)


def main(argv=None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--job-definition", help="job definition (default: config/job.yaml)")
    parser.add_argument("--data", default=DEFAULT_DATA, help="the local data set uploaded with upload-data")
    parser.add_argument("--data-s3", default="", help="the data set's S3 URI (default: from the settings and --data)")
    parser.add_argument("--attach", default="", help="an existing tuning job: wait for it and report")
    parser.add_argument("--name", default="", help="tuning job name (default: <name_prefix>-<yyyymmdd-hhmmss>)")
    parser.add_argument("--parent", action="append", default=[],
                        help="warm start from this tuning job (repeat, or space/comma-separated; 1-5)")
    parser.add_argument("--warm-start-type", default=warm_start.AUTO, choices=list(warm_start.TYPES),
                        help="auto: IdenticalDataAndAlgorithm when the parents ran the same image on the same "
                             "data, else TransferLearning")
    parser.add_argument("--max-jobs", type=int)
    parser.add_argument("--max-parallel", type=int)
    parser.add_argument("--strategy", choices=list(job_definition.STRATEGIES))
    parser.add_argument("--early-stopping", choices=["Off", "Auto"])
    parser.add_argument("--hp", default="", help='fixed values for this run: "name=value ..."')
    parser.add_argument("--no-wait", action="store_true", help="create the job and return (a feature job that "
                        "runs first is still waited for)")
    parser.add_argument("--no-cache", action="store_true", help="no shared features: every trial runs the backbone "
                        "on training.instance_type")
    args = parser.parse_args(argv)
    return run(lambda: tune(args))


def tune(args) -> int:
    fixed = orchestration.parse_hp_argument(args.hp, allow_best=False).given
    definition = job_definition.load(args.job_definition).with_overrides(
        max_jobs=args.max_jobs, max_parallel_jobs=args.max_parallel, strategy=args.strategy,
        early_stopping=args.early_stopping, hyperparameters=fixed)
    parents = [p for item in args.parent for p in item.replace(",", " ").split()]
    for name in [args.attach, args.name, *parents]:  # the names and the data given, before any request
        if name:
            orchestration.check_name(name, orchestration.TUNING_NAME_MAX, "tuning job")
    if args.data_s3:
        s3_uri_argument(args.data_s3, "DATA_S3")
    if args.attach:
        aws = open_aws(args)
        name = args.attach
    else:
        aws = open_aws(args, "role_arn", "bucket")
        name = create(aws, args, definition, parents)
        if aws.dry_run and args.no_wait:
            return 0
    if args.no_wait and not aws.dry_run:
        print(f"not waiting: `make tune TUNING={name}` waits and reports")
        return 0
    state = wait(aws, name)
    report(aws, state, definition)
    return 0 if aws.dry_run or state["HyperParameterTuningJobStatus"] == "Completed" else 1


def create(aws: Aws, args, definition: job_definition.JobDefinition, parents: list[str]) -> str:
    """CreateHyperParameterTuningJob, after the feature job its trials share (unless --no-cache); its name."""
    name = args.name or orchestration.tuning_job_name(definition.name_prefix)
    image = ecr_image(aws, aws.settings.training_repository)
    uri, found = data_set_channels(aws, definition, args.data, args.data_s3, trial=True)
    names = orchestration.trial_channels(definition, found)
    shared, values, etags = None, orchestration.shared_features(definition), {}
    if values is not None and not args.no_cache:  # a feature job (or a stored cache) first, as tune-local
        etags = features.listed(aws, uri, names, args.data)
        print_estimate(aws, definition, values, features.image_count(etags))
        shared = features.plan(aws, definition, values, image, uri, names, etags)
    request = api_requests.tuning_job(definition, aws.settings, name, image, uri, names,
                                      feature_cache=shared.artifact if shared else "")
    if parents:  # a parent that does not fit stops here, before the feature job costs anything
        request = with_warm_start(aws, request, parents, args.warm_start_type)
    if shared:
        features.run(aws, shared, features.image_count(etags))
    aws.call("sagemaker", "create_hyper_parameter_tuning_job", dry={}, **request)
    if debugger.attach_requested(definition):
        print("note: debugger.attach_sagemaker_rules applies to `make train` only (tuning jobs cannot carry "
              "Debugger rules); the job's own rules run in every trial", file=sys.stderr)
    if not aws.dry_run:
        limits = definition.limits
        trial_type = request["TrainingJobDefinition"]["ResourceConfig"]["InstanceType"]
        print(f"created tuning job {name}: {limits.max_jobs} jobs, {limits.max_parallel_jobs} at a time, "
              f"{definition.strategy.name}, {trial_type}{' (spot)' if aws.settings.spot else ''}"
              f"{', shared features ' + shared.artifact if shared else ''}\n"
              f"  {console_url(aws.settings.region, 'hyper-tuning-jobs', name)}")
    return name


if __name__ == "__main__":
    sys.exit(main())
