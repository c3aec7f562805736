"""The checkpoints of a tuning job's trials in S3: each finished trial's folder is removed as soon as it ends.

CreateHyperParameterTuningJob takes one CheckpointConfig for all the trials of a training job definition
(S3Uri and LocalPath, nothing per trial), and SageMaker copies everything under that S3Uri into
/opt/ml/checkpoints when a trial starts. The training container keeps each job's files in a folder named after
the job (TRAINING_JOB_NAME, classifier/paths.py), so trials never read each other's files, but each new trial
would still download all the earlier trials' folders: traffic and start-up time growing with the square of the
number of trials. A trial that has ended never resumes (a spot interruption resumes the same job while it is
still running), so `make tune` deletes a trial's folder once SageMaker reports it Completed, Failed or Stopped.
A trial then starts with its own checkpoints only, besides those of trials still running at that moment.
"""
from __future__ import annotations

import sys
from typing import Callable

from . import api_requests
from .client import Aws

FINISHED = ("Completed", "Failed", "Stopped")
FINISHED_COUNTERS = ("Completed", "Stopped", "RetryableError", "NonRetryableError")
DELETE_BATCH = 1000  # DeleteObjects takes at most 1,000 keys


def checkpoint_uri(state: dict) -> str | None:
    """The tuning job's checkpoint S3 URI (DescribeHyperParameterTuningJob), None without checkpoints."""
    definition = state.get("TrainingJobDefinition") or (state.get("TrainingJobDefinitions") or [{}])[0]
    return (definition.get("CheckpointConfig") or {}).get("S3Uri") or None


def trial_folder(uri: str, job: str) -> tuple[str, str]:
    """(bucket, key prefix) of a trial's folder: <checkpoint uri><training job name>/."""
    bucket, key = api_requests.split_s3_uri(uri if uri.endswith("/") else uri + "/")
    return bucket, f"{key}{job}/"


def finished_count(state: dict) -> int:
    counters = state.get("TrainingJobStatusCounters") or {}
    return sum(counters.get(name, 0) for name in FINISHED_COUNTERS)


def delete_folder(aws: Aws, bucket: str, prefix: str) -> tuple[int, int]:
    """Delete every object under s3://bucket/prefix; (objects, bytes) deleted."""
    keys, size = [], 0
    dry = {"Contents": [{"Key": f"{prefix}<object>", "Size": 0}]}
    for page in aws.paginate("s3", "list_objects_v2", dry=dry, input_token="ContinuationToken",
                             output_token="NextContinuationToken", Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            keys.append(item["Key"])
            size += item.get("Size", 0)
    for start in range(0, len(keys), DELETE_BATCH):
        batch = keys[start:start + DELETE_BATCH]
        answer = aws.call("s3", "delete_objects", Bucket=bucket,
                          Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True})
        errors = answer.get("Errors") or []
        if errors:
            first = errors[0]
            raise RuntimeError(f"{len(errors)} object(s) under s3://{bucket}/{prefix} not deleted: "
                               f"{first.get('Key')}: {first.get('Code')} {first.get('Message', '')}".strip())
    return len(keys), size


class TrialCheckpoints:
    """Deletes the checkpoint folders of a tuning job's finished trials, once each; `update(state)` after each
    DescribeHyperParameterTuningJob lists the trials only when more of them have finished."""

    def __init__(self, aws: Aws, list_trials: Callable[[], list[dict] | None],
                 echo: Callable[[str], None] | None = None):
        self.aws, self.list_trials = aws, list_trials
        self.echo = echo or (lambda text: print(text, file=sys.stderr))
        self.seen = 0
        self.retired: set[str] = set()

    def update(self, state: dict) -> list[str]:
        """The trials whose folders this call deleted."""
        uri = checkpoint_uri(state)
        finished = finished_count(state)
        if not uri or finished <= self.seen:
            return []
        listed = self.list_trials()
        if listed is None:  # not allowed to list them: the next poll tries again
            return []
        self.seen = finished
        done = []
        for job in listed:
            name = job["TrainingJobName"]
            if job.get("TrainingJobStatus") not in FINISHED or name in self.retired:
                continue
            bucket, prefix = trial_folder(uri, name)
            self.retired.add(name)  # once, also when it fails: the wait and the report go on
            try:
                count, size = delete_folder(self.aws, bucket, prefix)
            except Exception as error:
                self.echo(f"note: cannot delete the checkpoints of {name} (s3://{bucket}/{prefix}): {error}; "
                          "later trials download them")
                continue
            done.append(name)
            if count:
                self.echo(f"deleted the checkpoints of finished trial {name}: {count} file(s), {size / 2**20:.1f} "
                          f"MiB (s3://{bucket}/{prefix}); later trials do not download them")
        return done
