"""make train: one SageMaker training job with the best hyperparameters of a tuning job, or given ones;
waits, streams its CloudWatch log, prints the final metrics and the model artifact.

    python -m scripts.aws.train --tuning <tuning job> [--hp "epochs=10"] [--dry-run]
    python -m scripts.aws.train --hp "lr=0.01 batch_size=32 epochs=4" [--data ... | --data-s3 ...]

Same limits, spot and checkpoint settings as the tuning job's trials, and every channel of the data set
(the test set too, for the final report). Hyperparameters (scripts/orchestration.py, as `make train-local`):
the static ones of config/job.yaml, then the best trial's of --tuning (all it ran with), then --hp, where
the word `best` is allowed (`--hp "best epochs=10"`); a tuned one given by neither takes the training
job's default (printed). SageMaker's built-in Debugger/Profiler rules are attached when job.yaml's
debugger.attach_sagemaker_rules is true (see debugger.py).
"""
from __future__ import annotations

import sys

from scripts import job_definition, orchestration

from . import api_requests, debugger
from .common import base_parser, console_url, data_uri, ecr_image, open_aws, present_channels, run
from .training_job import wait
from .tune import best_hyperparameters


def report(state: dict, definition: job_definition.JobDefinition, log_text: str) -> None:
    name = state["TrainingJobName"]
    metrics = {m["MetricName"]: m["Value"] for m in state.get("FinalMetricDataList", [])}
    if not metrics and log_text:  # SageMaker's list can lag: read the same regexes over the log
        metrics = orchestration.final_metrics(definition, log_text)
    if metrics:
        print(orchestration.table([[k, f"{v:.6g}"] for k, v in sorted(metrics.items())], ["final metric", "value"]))
    if state.get("TrainingJobStatus") != "Completed":
        print(f"training job {name}: {state.get('TrainingJobStatus')}: {state.get('FailureReason', '')}")
        return
    billable, seconds = state.get("BillableTimeInSeconds"), state.get("TrainingTimeInSeconds")
    if state.get("EnableManagedSpotTraining") and billable and seconds:
        print(f"spot: billed {billable} s of {seconds} s ({(1 - billable / seconds):.0%} saved)")
    print(f"model artifact: {state.get('ModelArtifacts', {}).get('S3ModelArtifacts')}")
    print(f"next: `make deploy JOB={name}`")


def main(argv=None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--job-definition", help="job definition (default: config/job.yaml)")
    parser.add_argument("--data", default="data/fashion-mnist")
    parser.add_argument("--data-s3", default="")
    parser.add_argument("--tuning", default="", help="take the best trial's hyperparameters of this tuning job")
    parser.add_argument("--hp", default="", help='"name=value ..." (on top of the tuning job\'s best); "best '
                                                 'epochs=10" says the same as --tuning with epochs=10')
    parser.add_argument("--name", default="", help="training job name (default: <name_prefix>-<yyyymmdd-hhmmss>)")
    parser.add_argument("--no-wait", action="store_true")
    parser.add_argument("--no-logs", action="store_true", help="wait without streaming the log")
    args = parser.parse_args(argv)

    def go() -> int:
        definition = job_definition.load(args.job_definition)
        argument = orchestration.parse_hp_argument(args.hp)
        orchestration.training_hyperparameters(definition, given=argument.given)  # bad input: before any request
        aws = open_aws(args, "role_arn", "bucket")
        best, source = None, ""
        if orchestration.wants_best_trial(argument, args.tuning):
            source, best = best_hyperparameters(aws, args.tuning, definition)
        final, unset = orchestration.training_hyperparameters(definition, best, argument.given,
                                                              check=not aws.dry_run)  # dry run: placeholders
        if unset:
            print(orchestration.unset_note(unset), file=sys.stderr)
        name = args.name or orchestration.training_job_name(definition.name_prefix)
        image = ecr_image(aws, aws.settings.training_repository)
        uri = data_uri(aws.settings, args.data, args.data_s3)
        found = present_channels(aws, uri, orchestration.channels_to_look_for(definition, trial=False),
                                 definition.channels.required, args.data)
        names = orchestration.training_channels(definition, found)
        extra = debugger.training_job_fields(definition, aws.settings, name)
        request = api_requests.training_job(definition, aws.settings, name, image, uri, names, final, extra)
        aws.call("sagemaker", "create_training_job", dry={}, **request)
        if aws.dry_run:
            return 0
        print(f"created training job {name}" + (f" with the hyperparameters of {source}" if source else "")
              + ": " + orchestration.describe_values(final)
              + f"\n  {console_url(aws.settings.region, 'jobs', name)}")
        if args.no_wait:
            return 0
        state, log_text = wait(aws, name, stream_logs=not args.no_logs)
        report(state, definition, log_text)
        return 0 if state.get("TrainingJobStatus") == "Completed" else 1

    return run(go)


if __name__ == "__main__":
    sys.exit(main())
