"""make train: one SageMaker training job, the final job of a tuning job or one with given hyperparameters;
waits, streams its CloudWatch log, prints the final metrics and the model artifact.

    python -m scripts.aws.train --tuning <tuning job> [--hp "epochs=10"] [--dry-run]
    python -m scripts.aws.train --hp "lr=0.01 batch_size=32 epochs=4" [--data ... | --data-s3 ...]
    python -m scripts.aws.train --init-model <training job | s3://.../model.tar.gz> [--hp ...]

Same limits, spot and checkpoint settings as the tuning job's trials, and every channel of the data set
(the test set too, for the final report). Hyperparameters (scripts/orchestration.py, as `make train-local`):
the static ones of config/job.yaml, then the best trial's of --tuning (all it ran with), then --hp, where
the word `best` is allowed (`--hp "best epochs=10"`); a tuned one given by neither takes the training
job's default (printed). With --tuning the job is the tuning job's final job (orchestration.final_job, as
`make train-local TUNING=`): the backbone's last stage fine-tuned, started from the best trial's model.tar.gz
(its init_model channel); at the end it says which model is the final one, its own or the best trial's.
--init-model starts a job from an earlier model (incremental training). SageMaker's built-in
Debugger/Profiler rules are attached when job.yaml's debugger.attach_sagemaker_rules is true (debugger.py).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

from scripts import DEFAULT_DATA, job_definition, orchestration

from . import api_requests, debugger
from .client import Aws
from .common import base_parser, console_url, data_set_channels, ecr_image, open_aws, run, s3_uri_argument
from .training_job import wait
from .tune import best_trial_job


def metrics_of(state: dict, definition: job_definition.JobDefinition, log_text: str) -> dict[str, float]:
    metrics = {m["MetricName"]: m["Value"] for m in state.get("FinalMetricDataList", [])}
    if not metrics and log_text:  # SageMaker's list can lag: read the same regexes over the log
        metrics = orchestration.final_metrics(definition, log_text)
    return metrics


def report(state: dict, metrics: dict[str, float]) -> None:
    name = state["TrainingJobName"]
    if metrics:
        print(orchestration.table([[k, f"{v:.6g}"] for k, v in sorted(metrics.items())], ["final metric", "value"]))
    if state.get("TrainingJobStatus") != "Completed":
        print(f"training job {name}: {state.get('TrainingJobStatus')}: {state.get('FailureReason', '')}")
        return
    billable, seconds = state.get("BillableTimeInSeconds"), state.get("TrainingTimeInSeconds")
    if state.get("EnableManagedSpotTraining") and billable and seconds:
        print(f"spot: billed {billable} s of {seconds} s ({(1 - billable / seconds):.0%} saved)")
    print(f"model artifact: {state.get('ModelArtifacts', {}).get('S3ModelArtifacts')}")


def check_init_model(init_model: str) -> None:
    """INIT_MODEL=: the s3:// URI of a model.tar.gz or a training job's name, checked before any request."""
    if init_model.startswith("s3://"):
        s3_uri_argument(init_model, "INIT_MODEL", object_key=True)
        return
    if "/" in init_model or init_model.endswith(".tar.gz"):
        raise ValueError(f"--init-model {init_model!r}: give a SageMaker training job's name or the s3:// URI of a "
                         "model.tar.gz (a local model is for make train-local INIT_MODEL=)")
    orchestration.check_name(init_model, orchestration.TRAINING_NAME_MAX, "training job (INIT_MODEL=)")


def init_model_uri(aws: Aws, init_model: str) -> str:
    """--init-model: an s3:// URI of a model.tar.gz as it is, or a training job's model artifact."""
    check_init_model(init_model)
    if init_model.startswith("s3://"):
        return init_model
    job = aws.call("sagemaker", "describe_training_job", TrainingJobName=init_model, dry={"ModelArtifacts": {
        "S3ModelArtifacts": aws.settings.s3_uri("output_prefix", init_model, "output") + "model.tar.gz"}})
    uri = job.get("ModelArtifacts", {}).get("S3ModelArtifacts")
    if not uri:
        raise ValueError(f"training job {init_model} has no model artifact (status {job.get('TrainingJobStatus')})")
    return uri


@dataclass
class JobPlan:
    """What the job runs with: its hyperparameters, the tuned names nothing sets, the model it starts from (an S3
    URI) and, for the final job of a tuning job, the tuning job's best trial."""

    hyperparameters: dict[str, str]
    unset: list[str]
    init_model: str = ""
    best: orchestration.Trial | None = None


def check_arguments(args, definition: job_definition.JobDefinition) -> orchestration.HpArgument:
    """Every argument checked before any request."""
    argument = orchestration.parse_hp_argument(args.hp)
    orchestration.training_hyperparameters(definition, given=argument.given)  # the given values, checked
    if args.tuning:
        orchestration.check_name(args.tuning, orchestration.TUNING_NAME_MAX, "tuning job (TUNING=)")
    if args.name:
        orchestration.check_name(args.name, orchestration.TRAINING_NAME_MAX, "training job (--name)")
    if args.init_model:
        check_init_model(args.init_model)
    if args.data_s3:
        s3_uri_argument(args.data_s3, "DATA_S3")
    return argument


def plan_job(aws: Aws, args, definition: job_definition.JobDefinition, argument: orchestration.HpArgument) -> JobPlan:
    """The final job of --tuning (its best trial's hyperparameters, from its model), or a job of the given
    hyperparameters (from --init-model's model). A dry run checks no values: they hold placeholders."""
    if not orchestration.wants_best_trial(argument, args.tuning):
        values, unset = orchestration.training_hyperparameters(definition, None, argument.given,
                                                               check=not aws.dry_run)
        return JobPlan(values, unset, init_model_uri(aws, args.init_model) if args.init_model else "")
    if args.init_model:
        raise ValueError("--init-model and --tuning both give the job its starting model: the final job of a "
                         "tuning job starts from its best trial's; give one of them")
    best, described = best_trial_job(aws, args.tuning, definition)
    final = orchestration.final_job(definition, orchestration.recorded_hyperparameters(
        described.get("HyperParameters", {})), argument.given, check=not aws.dry_run)
    init = ""
    if final.from_best_trial:
        init = described.get("ModelArtifacts", {}).get("S3ModelArtifacts", "")
        if not init:
            raise ValueError(f"the best trial {best.name} has no model artifact to start from")
    return JobPlan(final.hyperparameters, final.unset, init, best)


def create(aws: Aws, args, definition: job_definition.JobDefinition, plan: JobPlan) -> str:
    """CreateTrainingJob with every channel of the data set found; returns the job's name."""
    name = args.name or orchestration.training_job_name(definition.name_prefix)
    image = ecr_image(aws, aws.settings.training_repository)
    uri, found = data_set_channels(aws, definition, args.data, args.data_s3, trial=False)
    names = orchestration.training_channels(definition, found)
    extra = debugger.training_job_fields(definition, aws.settings, name)
    request = api_requests.training_job(definition, aws.settings, name, image, uri, names, plan.hyperparameters,
                                        extra, plan.init_model)
    aws.call("sagemaker", "create_training_job", dry={}, **request)
    return name


def follow(aws: Aws, args, definition: job_definition.JobDefinition, name: str,
           best: orchestration.Trial | None) -> int:
    """Wait for the job (its log streamed), print its final metrics and which model is the loop's."""
    state, log_text = wait(aws, name, stream_logs=not args.no_logs)
    metrics = metrics_of(state, definition, log_text)
    report(state, metrics)
    if state.get("TrainingJobStatus") != "Completed":
        return 1
    deployed = name
    if best is not None:
        choice = orchestration.final_model(definition, name, metrics, best)
        deployed = choice.job
        print(f"the final model is {'this job' if choice.fine_tuned else 'the best trial'}'s: {choice.reason}")
    print(f"next: `make deploy JOB={deployed}`")
    return 0


def train(args) -> int:
    definition = job_definition.load(args.job_definition)
    argument = check_arguments(args, definition)
    aws = open_aws(args, "role_arn", "bucket")
    plan = plan_job(aws, args, definition, argument)
    if plan.unset:
        print(orchestration.unset_note(plan.unset), file=sys.stderr)
    name = create(aws, args, definition, plan)
    if aws.dry_run:
        if not args.no_wait:
            wait(aws, name, stream_logs=not args.no_logs)
        return 0
    origin = (f", the final job of {args.tuning} (best trial {plan.best.name})" if plan.best else "") + (
        f", from {plan.init_model}" if plan.init_model else "")
    print(f"created training job {name}{origin}: {orchestration.describe_values(plan.hyperparameters)}"
          f"\n  {console_url(aws.settings.region, 'jobs', name)}")
    if args.no_wait:
        return 0
    return follow(aws, args, definition, name, plan.best)


def main(argv=None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--job-definition", help="job definition (default: config/job.yaml)")
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--data-s3", default="")
    parser.add_argument("--tuning", default="", help="the final job of this tuning job (its best trial's "
                                                     "hyperparameters, fine-tuned from its model)")
    parser.add_argument("--init-model", default="", help="start from this model: a training job or the s3:// URI "
                                                         "of a model.tar.gz (incremental training)")
    parser.add_argument("--hp", default="", help='"name=value ..." (on top of the tuning job\'s best); "best '
                                                 'epochs=10" says the same as --tuning with epochs=10')
    parser.add_argument("--name", default="", help="training job name (default: <name_prefix>-<yyyymmdd-hhmmss>)")
    parser.add_argument("--no-wait", action="store_true")
    parser.add_argument("--no-logs", action="store_true", help="wait without streaming the log")
    args = parser.parse_args(argv)
    return run(lambda: train(args))


if __name__ == "__main__":
    sys.exit(main())
