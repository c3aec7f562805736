"""Waiting for a SageMaker training job (`make train`'s, or the feature job `make tune` runs first): poll its
status on one status line and stream its CloudWatch log above it."""
from __future__ import annotations

import sys

from classifier.progress import Progress

from .api_requests import TRAINING_LOG_GROUP as LOG_GROUP
from .client import Aws, error_code
from .common import poll, poll_interval, status_display

FINISHED = ("Completed", "Failed", "Stopped")


class LogTail:
    """New events of the job's log streams (<job>/algo-N-...) in /aws/sagemaker/TrainingJobs."""

    def __init__(self, aws: Aws, job: str, display: Progress):
        self.aws, self.job, self.display = aws, job, display
        self.tokens: dict[str, str | None] = {}
        self.text: list[str] = []

    def fetch(self) -> None:
        try:
            streams = []
            dry = {"logStreams": [{"logStreamName": f"{self.job}/algo-1-<time>"}]}
            for page in self.aws.paginate("logs", "describe_log_streams", dry=dry, input_token="nextToken",
                                          logGroupName=LOG_GROUP, logStreamNamePrefix=f"{self.job}/"):
                streams += [s["logStreamName"] for s in page.get("logStreams", [])]
        except Exception as error:
            if error_code(error) == "ResourceNotFoundException":  # no log yet
                return
            raise
        for stream in sorted(streams):
            self._drain(stream, several=len(streams) > 1)

    def _drain(self, stream: str, several: bool) -> None:
        while True:
            params = {"logGroupName": LOG_GROUP, "logStreamName": stream, "startFromHead": True}
            if self.tokens.get(stream):
                params["nextToken"] = self.tokens[stream]
            page = self.aws.call("logs", "get_log_events", **params)
            for event in page.get("events", []):
                message = event.get("message", "").rstrip("\n")
                self.text.append(message)
                host = stream.split("/", 1)[-1].split("-")[0:2]
                self.display.print(f"[{'-'.join(host)}] {message}" if several else message)
            token = page.get("nextForwardToken")
            if not page.get("events") or token == self.tokens.get(stream):
                self.tokens[stream] = token or self.tokens.get(stream)
                return
            self.tokens[stream] = token


def status_text(state: dict) -> str:
    secondary = state.get("SecondaryStatus", "")
    transitions = state.get("SecondaryStatusTransitions") or []
    message = transitions[-1].get("StatusMessage", "") if transitions else ""
    return (f"training {state.get('TrainingJobName')}: {state.get('TrainingJobStatus')} / {secondary}"
            + (f" - {message[:80]}" if message else ""))


def wait(aws: Aws, name: str, stream_logs: bool = True) -> tuple[dict, str]:
    """Poll until the job ends, streaming its log; a dry run shows one round of these requests."""
    display = status_display(quiet=aws.dry_run)
    tail = LogTail(aws, name, display)
    if aws.dry_run:
        streamed = " (its log streamed)" if stream_logs else ""
        print(f"# then, every {aws.settings.poll_seconds} s until {name} ends{streamed}:", file=aws.out)
    dry = {"TrainingJobName": name, "TrainingJobStatus": "Completed"}
    try:
        state = poll(lambda: aws.call("sagemaker", "describe_training_job", TrainingJobName=name, dry=dry),
                     lambda s: s.get("TrainingJobStatus") in FINISHED, status_text, poll_interval(aws.settings),
                     on_poll=(lambda s: tail.fetch()) if stream_logs else None, display=display)
    except KeyboardInterrupt:
        print(f"\nstopped waiting; training job {name} goes on (`aws sagemaker stop-training-job "
              f"--training-job-name {name}` stops it)", file=sys.stderr)
        raise
    if stream_logs and not aws.dry_run:
        tail.fetch()  # what arrived after the last poll
    return state, "\n".join(tail.text)
