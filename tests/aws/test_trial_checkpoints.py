"""Trials never download each other's checkpoints (issue 13 item 7).

A tuning job has one checkpoint S3 URI for all its trials, and SageMaker copies everything under it into
/opt/ml/checkpoints when a trial starts. The tests play SageMaker's part (start a trial: list what it copies
in; the trial writes its folder, <uri><job>/, as the container does; the trial ends) against a local moto S3
over HTTP, with the tuning job that `make tune` created there, and let `make tune`'s waiting code
(trial_checkpoints.TrialCheckpoints) see each change as a poll would."""
from __future__ import annotations

from aws_support import BUCKET, NOW, arn, put_images, trial_summary, tuning_description
from scripts.aws import api_requests, trial_checkpoints, tune

NAME = "img-clf-20260102-030405"


class SageMaker:
    """What SageMaker does with a tuning job's checkpoints, on the moto S3 the scripts use."""

    def __init__(self, aws, described: dict):
        self.s3 = aws.client("s3")
        self.described = described
        self.bucket, self.key = api_requests.split_s3_uri(trial_checkpoints.checkpoint_uri(described))
        self.status: dict[str, str] = {}

    def start(self, trial: str) -> set[str]:
        """The trial starts (or restarts after a spot interruption): the files copied into its
        /opt/ml/checkpoints, relative to it."""
        self.status[trial] = "InProgress"
        found = set()
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.key):
            found |= {item["Key"][len(self.key):] for item in page.get("Contents", [])}
        return found

    def checkpoint(self, trial: str, epoch: int) -> set[str]:
        """The trial's container writes last.pt and best-epoch-NNNN.pt in its own folder; SageMaker uploads them."""
        files = {f"{trial}/last.pt", f"{trial}/best-epoch-{epoch:04d}.pt"}
        for name in files:
            self.s3.put_object(Bucket=self.bucket, Key=self.key + name, Body=b"w" * 1024)
        return files

    def end(self, trial: str, status: str = "Completed") -> None:
        self.status[trial] = status

    def state(self) -> dict:
        """DescribeHyperParameterTuningJob now."""
        counters = {"Completed": 0, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0, "Stopped": 0}
        for status in self.status.values():
            counters["NonRetryableError" if status == "Failed" else status] += 1
        return {**self.described, "TrainingJobStatusCounters": counters}

    def trials(self) -> list[dict]:
        """ListTrainingJobsForHyperParameterTuningJob now."""
        return [{"TrainingJobName": name, "TrainingJobStatus": status} for name, status in self.status.items()]


def tuning_job(moto, use, *extra) -> dict:
    """`make tune` against moto; the tuning job as SageMaker describes it."""
    use(moto, tune)
    put_images(moto, "byoc-classifier-training")
    for channel in ("train", "valid"):
        moto.client("s3").put_object(Bucket=BUCKET, Key=f"byoc-classifier/data/fashion-mnist/{channel}/a/0.jpg",
                                     Body=b"x")
    assert tune.main(["--name", NAME, "--no-wait", "--no-cache", *extra]) == 0
    return moto.client("sagemaker").describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=NAME)


def test_trial_n_downloads_only_its_own_checkpoints(moto, use):
    described = tuning_job(moto, use, "--max-parallel", "1")
    uri = described["TrainingJobDefinition"]["CheckpointConfig"]["S3Uri"]
    assert uri == f"s3://{BUCKET}/byoc-classifier/checkpoints/{NAME}/"  # one URI for every trial
    sagemaker = SageMaker(moto, described)
    echoed = []
    retired = trial_checkpoints.TrialCheckpoints(moto, sagemaker.trials, echo=echoed.append)
    channels = {}
    for n in range(1, 5):
        trial = f"{NAME}-{n:03d}-abcd{n:04d}"
        channels[trial] = sagemaker.start(trial)
        retired.update(sagemaker.state())  # a poll while it runs: nothing has ended since the last one
        written = sagemaker.checkpoint(trial, 1)
        if n == 2:  # a spot interruption: the same job starts again and resumes from its own checkpoints
            assert sagemaker.start(trial) == written
            written |= sagemaker.checkpoint(trial, 2)
        sagemaker.end(trial, "Failed" if n == 3 else "Completed")
        retired.update(sagemaker.state())  # the next poll sees it ended
    assert channels == {trial: set() for trial in channels}  # each trial found only its own (none yet)
    assert sagemaker.start(f"{NAME}-005-abcd0005") == set()
    assert len([line for line in echoed if line.startswith("deleted the checkpoints of finished trial")]) == 4
    assert "3 file(s)" in echoed[1]  # trial 2: last.pt and two best-epoch files


def test_parallel_trials_never_download_a_finished_trials_checkpoints(moto, use):
    described = tuning_job(moto, use, "--max-parallel", "2")
    sagemaker = SageMaker(moto, described)
    retired = trial_checkpoints.TrialCheckpoints(moto, sagemaker.trials, echo=lambda text: None)
    names = [f"{NAME}-{n:03d}-abcd{n:04d}" for n in range(1, 6)]
    running, finished = [], set()
    for trial in names:
        if len(running) == 2:  # a slot frees: the oldest ends, the next poll sees it, the next trial starts
            ended = running.pop(0)
            sagemaker.end(ended)
            finished.add(ended)
            retired.update(sagemaker.state())
        copied = sagemaker.start(trial)
        folders = {key.split("/", 1)[0] for key in copied}
        assert not folders & finished, (trial, folders)
        assert folders <= set(running)  # only trials running right now
        sagemaker.checkpoint(trial, 1)
        running.append(trial)


def test_make_tune_deletes_each_finished_trials_checkpoints_while_it_waits(stubbed, use, capsys):
    """The wait (make tune, make tune TUNING=...) calls it on every poll: DescribeHyperParameterTuningJob, then
    when more trials have ended, ListTrainingJobsForHyperParameterTuningJob and DeleteObjects (Stubber)."""
    aws, stubs = stubbed
    use(aws, tune)
    sm, s3 = stubs("sagemaker"), stubs("s3")
    uri = f"s3://{BUCKET}/byoc-classifier/checkpoints/{NAME}/"
    first, second = f"{NAME}-001-aaaaaaaa", f"{NAME}-002-bbbbbbbb"

    def described(status, completed, running):
        state = tuning_description(NAME, status, static={"model_name": "resnet50"},
                                   counters={"Completed": completed, "InProgress": running, "RetryableError": 0,
                                             "NonRetryableError": 0, "Stopped": 0})
        state["TrainingJobDefinition"]["CheckpointConfig"] = {"S3Uri": uri, "LocalPath": "/opt/ml/checkpoints"}
        return state

    listing = {"HyperParameterTuningJobName": NAME, "SortBy": "CreationTime", "SortOrder": "Ascending",
               "MaxResults": 100}
    prefix = "byoc-classifier/checkpoints/" + NAME + "/"
    sm.add_response("describe_hyper_parameter_tuning_job", described("InProgress", 0, 2),
                    {"HyperParameterTuningJobName": NAME})  # nothing ended yet: nothing listed
    sm.add_response("describe_hyper_parameter_tuning_job", described("InProgress", 1, 1),
                    {"HyperParameterTuningJobName": NAME})
    sm.add_response("list_training_jobs_for_hyper_parameter_tuning_job", {"TrainingJobSummaries": [
        trial_summary(first, 0.4, {}), trial_summary(second, None, {}, "InProgress")]}, listing)
    s3.add_response("list_objects_v2", {"Contents": [{"Key": f"{prefix}{first}/last.pt", "Size": 2 * 2**20}],
                                        "KeyCount": 1}, {"Bucket": BUCKET, "Prefix": f"{prefix}{first}/"})
    s3.add_response("delete_objects", {}, {"Bucket": BUCKET, "Delete": {
        "Objects": [{"Key": f"{prefix}{first}/last.pt"}], "Quiet": True}})
    sm.add_response("describe_hyper_parameter_tuning_job", described("Completed", 2, 0),
                    {"HyperParameterTuningJobName": NAME})
    sm.add_response("list_training_jobs_for_hyper_parameter_tuning_job", {"TrainingJobSummaries": [
        trial_summary(first, 0.4, {}), trial_summary(second, 0.3, {})]}, listing)
    s3.add_response("list_objects_v2", {"KeyCount": 0}, {"Bucket": BUCKET, "Prefix": f"{prefix}{second}/"})
    # the report: the trials table and the best job
    sm.add_response("list_training_jobs_for_hyper_parameter_tuning_job", {"TrainingJobSummaries": [
        trial_summary(first, 0.4, {}), trial_summary(second, 0.3, {})]}, listing)
    sm.add_response("describe_training_job", {
        "TrainingJobName": second, "TrainingJobArn": arn("training-job", second), "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed", "ModelArtifacts": {"S3ModelArtifacts": "s3://b/m.tar.gz"},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60}, "CreationTime": NOW}, {"TrainingJobName": second})
    assert tune.main(["--attach", NAME]) == 0
    err = capsys.readouterr().err
    assert f"deleted the checkpoints of finished trial {first}: 1 file(s), 2.0 MiB" in err
    assert err.count("deleted the checkpoints") == 1  # the second trial's folder was empty


def test_a_folder_that_cannot_be_deleted_is_said_once_and_the_wait_goes_on(stubbed):
    aws, stubs = stubbed
    trial = f"{NAME}-001-aaaaaaaa"
    state = {"TrainingJobDefinition": {"CheckpointConfig": {"S3Uri": f"s3://{BUCKET}/ck/{NAME}/"}},
             "TrainingJobStatusCounters": {"Completed": 1}}
    stubs("s3").add_client_error("list_objects_v2", "AccessDenied", "not allowed",
                                 expected_params={"Bucket": BUCKET, "Prefix": f"ck/{NAME}/{trial}/"})
    echoed = []
    retired = trial_checkpoints.TrialCheckpoints(
        aws, lambda: [{"TrainingJobName": trial, "TrainingJobStatus": "Completed"}], echo=echoed.append)
    assert retired.update(state) == []
    assert retired.update({**state, "TrainingJobStatusCounters": {"Completed": 2}}) == []  # not tried again
    assert len(echoed) == 1 and "cannot delete the checkpoints of" in echoed[0] and "AccessDenied" in echoed[0]
