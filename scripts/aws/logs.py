"""make endpoint-logs / make training-logs: CloudWatch logs of the endpoint or of a SageMaker training job,
every instance's stream merged by time.

    python -m scripts.aws.logs endpoint [--minutes 60] [--follow]
    python -m scripts.aws.logs training JOB [--minutes N] [--follow]

The endpoint's group is /aws/sagemaker/Endpoints/<endpoint> (one stream per instance and variant); a training
job's streams are <job>/algo-<n>-<time> in /aws/sagemaker/TrainingJobs. Each line: time, the stream's short name
(when there are several), the message. --follow keeps asking for new events (Ctrl-C stops). A training job's
log is read from its start unless --minutes is given.
"""
from __future__ import annotations

import sys
import time
from datetime import datetime, timezone

from scripts import orchestration

from . import api_requests
from .client import Aws, AwsError, error_code
from .common import base_parser, open_aws, run


def short_stream(stream: str, job: str = "") -> str:
    """AllTraffic/i-0123... as it is; <job>/algo-1-1767330000 -> algo-1."""
    if job and stream.startswith(job + "/"):
        return "-".join(stream[len(job) + 1:].split("-")[:2])
    return stream


def fetch(aws: Aws, group: str, start_ms: int, prefix: str = "") -> list[dict]:
    """Every event from `start_ms` on, all streams, oldest first."""
    events = []
    try:
        for page in aws.paginate("logs", "filter_log_events", dry={"events": []}, input_token="nextToken",
                                 **api_requests.filter_log_events(group, start_ms, prefix)):
            events += page.get("events", [])
    except Exception as error:
        if error_code(error) == "ResourceNotFoundException":
            raise AwsError(f"no log group {group} (yet): the endpoint or job has not logged anything") from None
        raise
    return sorted(events, key=lambda e: (e.get("timestamp", 0), e.get("ingestionTime", 0)))


def line(event: dict, several: bool, job: str = "") -> str:
    when = datetime.fromtimestamp(event["timestamp"] / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    stream = f" [{short_stream(event.get('logStreamName', ''), job)}]" if several else ""
    return f"{when}{stream} {event.get('message', '').rstrip()}"


def show(aws: Aws, group: str, start_ms: int, prefix: str = "", job: str = "", follow: bool = False,
         out=None) -> int:
    """Print the events; with `follow`, keep polling for new ones. Returns how many were printed."""
    out = out or sys.stdout
    seen: set[str] = set()
    streams: set[str] = set()
    printed = 0
    while True:
        events = [e for e in fetch(aws, group, start_ms, prefix) if e.get("eventId") not in seen]
        streams.update(e.get("logStreamName", "") for e in events)
        for event in events:
            print(line(event, len(streams) > 1, job), file=out, flush=True)
            seen.add(event.get("eventId"))
            start_ms = max(start_ms, event.get("timestamp", 0))  # FilterLogEvents' startTime is inclusive
        printed += len(events)
        if not follow or aws.dry_run:
            return printed
        time.sleep(max(2, min(aws.settings.poll_seconds, 10)))


def main(argv=None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("what", choices=("endpoint", "training"))
    parser.add_argument("job", nargs="?", default="", help="training: the SageMaker training job")
    parser.add_argument("--minutes", type=float, default=None,
                        help="how far back (endpoint: default 60; training: from the job's start)")
    parser.add_argument("--follow", action="store_true", help="keep printing new events until Ctrl-C")
    args = parser.parse_args(argv)
    if args.what == "training" and not args.job:
        parser.error("give the SageMaker training job: make training-logs JOB=<name> (make logs JOB= is for local "
                     "jobs)")
    if args.minutes is not None and args.minutes <= 0:
        parser.error("MINUTES must be a positive number")

    def go() -> int:
        if args.what == "training":
            orchestration.check_name(args.job, orchestration.TRAINING_NAME_MAX, "training job (JOB=)")
        aws = open_aws(args)
        now_ms = int(time.time() * 1000)
        minutes = 60 if args.minutes is None and args.what == "endpoint" else args.minutes
        start_ms = now_ms - int(minutes * 60_000) if minutes else 0
        if args.what == "endpoint":
            group, prefix, job = api_requests.endpoint_log_group(aws.settings.endpoint_name), "", ""
        else:
            group, prefix, job = api_requests.TRAINING_LOG_GROUP, args.job + "/", args.job
        try:
            printed = show(aws, group, start_ms, prefix, job, args.follow)
        except KeyboardInterrupt:
            return 0
        if not printed and not aws.dry_run:
            since = f"in the last {minutes:g} minutes" if minutes else "yet"
            print(f"no log events in {group}{' for ' + job if job else ''} {since}", file=sys.stderr)
        return 0

    return run(go)


if __name__ == "__main__":
    sys.exit(main())
