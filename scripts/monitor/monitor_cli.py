"""`make monitor-report`: an endpoint's captured requests against its model's training-time baseline, as one
HTML page (monitor_report.py) with monitor.json beside it; both paths and the verdict are printed.

    python -m scripts.monitor.monitor_cli --capture DIR --model <job | model dir | model.tar.gz>
                                          [--hours H] [--log MMS_LOG] [--publish [--endpoint-name NAME]]
    python -m scripts.monitor.monitor_cli --endpoint <SageMaker endpoint> [--model ...] [--hours H] [--publish]
    options: --out FILE, --alpha 0.05, --low-confidence 0.5, --max-images 5000, --dry-run and --settings (AWS)

CAPTURE: what `make serve-local CAPTURE=<dir>` wrote (or a SageMaker capture downloaded with its layout); every
record, or those of the last H hours. LOG: the local endpoint's MMS log, for the latency of the window.
ENDPOINT: the capture files of the last H hours (default: the settings' monitor.hours) from S3, the model the
endpoint serves (unless MODEL= names it) and its latency from CloudWatch. --publish: the figures as CloudWatch
metrics on the endpoint's dimensions (publish.py), which the alarms of `make deploy` (monitor.alarm) watch.
The report goes to build/monitor/<endpoint or capture>/monitor-report.html.
"""
from __future__ import annotations

import argparse
import re
import sys
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path

from classifier.artifact import ArtifactError
from classifier.monitoring.baseline import BaselineError
from scripts import REPO_ROOT
from scripts.aws import api_requests
from scripts.aws.common import open_aws, run
from scripts.endpoint_stats import parse_records
from scripts.local import jobs
from scripts.reports.endpoint_data import Traffic, from_records, record_time

from . import analysis, capture_data, drift, monitor_report, publish

REPORTS_DIR = REPO_ROOT / "build" / "monitor"


def default_out(name: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "capture"
    return REPORTS_DIR / slug / "monitor-report.html"


def window(hours: float | None, now: datetime | None = None) -> tuple[datetime | None, datetime | None]:
    if hours is None:
        return None, None
    end = now or datetime.now(timezone.utc)
    return end - timedelta(hours=hours), end


def local_traffic(log: Path, capture: capture_data.Capture) -> tuple[Traffic | None, str]:
    """The local endpoint's latency over the capture's window, from its MMS log (INVOCATION lines)."""
    if not log.is_file():
        return None, f"No endpoint log at {log}: the latency is not shown."
    records = parse_records(log.read_text(errors="replace").splitlines())
    start, end = capture.start, capture.end
    if start and end:
        records = [r for r in records if r.get("time") and start <= record_time(r) <= end + timedelta(seconds=1)]
    try:
        return from_records(records, capture.endpoint or "local", str(log)), ""
    except ValueError:
        return None, f"The endpoint log {log} has no requests in this window: the latency is not shown."


def local_report(capture: Path, model: str, out: Path | None = None, hours: float | None = None,
                 log: Path | None = None, name: str | None = None, **options):
    """A local capture folder against MODEL's baseline (`make monitor-report CAPTURE=...`, the demo); `options`:
    analysis.analyse's. Returns (page, summary, analysis, the window's end)."""
    since, until = window(hours)
    found = capture_data.read(Path(capture), since, until)
    traffic, note = local_traffic(Path(log), found) if log else (None, "")
    name = name or found.endpoint or Path(capture).resolve().name
    with jobs.opened_model(model) as directory:  # a model.tar.gz: unpacked for the analysis, then removed
        result = analysis.analyse(found, directory, **options)
        page, summary = monitor_report.write(result, out or default_out(name), f"{name} ({found.source})", traffic,
                                             note)
    return page, summary, result, until or datetime.now(timezone.utc)


def printed(page: Path, summary: Path, result: analysis.Analysis) -> None:
    print(f"Monitor report: {page}\nMonitor summary: {summary}\n{monitor_report.verdict_text(result)}")


def local(args) -> int:
    page, summary, result, until = local_report(
        args.capture, args.model, args.out, args.hours, args.log, args.endpoint_name, alpha=args.alpha,
        threshold=args.low_confidence, max_images=args.max_images)
    printed(page, summary, result)
    if args.publish:
        name = args.endpoint_name or result.capture.endpoint or Path(args.capture).resolve().name
        return run(lambda: _publish(args, result, name, result.capture.variant, until))
    return 0


def _publish(args, result: analysis.Analysis, endpoint: str, variant: str | None, when: datetime) -> int:
    aws = open_aws(args)
    request = publish.publish(aws, result, endpoint, when, variant)
    if not aws.dry_run:
        print(f"Published {len(request['MetricData'])} metrics to CloudWatch {request['Namespace']} for endpoint "
              f"{endpoint}")
    return 0


def sagemaker(args) -> int:
    """A SageMaker endpoint: its capture of the window from S3, its model, its latency from CloudWatch."""
    from scripts.aws.client import AwsError
    from scripts.reports import endpoint_aws

    from . import capture_aws

    aws = open_aws(args)
    hours = args.hours if args.hours is not None else aws.settings.monitor_hours
    since, until = window(hours)
    if aws.dry_run:  # the requests that find the capture, and what PUBLISH would send
        capture_aws.download_capture(aws, args.endpoint, since, until)
        if args.publish:
            aws.call("cloudwatch", "put_metric_data", **api_requests.monitor_metric_data(
                aws.settings, args.endpoint, {"CapturedImages": 0.0}, until))
        print("# dry run: nothing was downloaded, so there is no report")
        return 0
    found = capture_aws.read_window(aws, args.endpoint, since, until)
    traffic = endpoint_aws.load(aws, args.endpoint, int(hours * 60))
    with ExitStack() as stack:
        try:  # MODEL= as every target names one; else the model the endpoint serves
            model = (stack.enter_context(jobs.opened_model(args.model)) if args.model
                     else capture_aws.served_model(aws, args.endpoint))
        except jobs.JobError as error:
            raise AwsError(str(error)) from None
        result = analysis.analyse(found, model, args.alpha, args.low_confidence, args.max_images)
        page, summary = monitor_report.write(result, args.out or default_out(args.endpoint),
                                             f"SageMaker endpoint {args.endpoint}, last {hours:g} h", traffic)
    printed(page, summary, result)
    if args.publish:
        request = publish.publish(aws, result, args.endpoint, until, found.variant)
        print(f"Published {len(request['MetricData'])} metrics to CloudWatch {request['Namespace']}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--capture", help="a capture folder (make serve-local CAPTURE=..., or a downloaded one)")
    source.add_argument("--endpoint", help="a SageMaker endpoint with data capture on")
    parser.add_argument("--model", help="the model served: local job name or directory, model directory, model.tar.gz")
    parser.add_argument("--hours", type=float, help="the last H hours (default: CAPTURE all of it, ENDPOINT the "
                                                    "settings' monitor.hours)")
    parser.add_argument("--log", help="the local endpoint's MMS log, for the latency (build/serve-local/<port>/logs/"
                                      "mms_log.log)")
    parser.add_argument("--out", type=Path, help="report file")
    parser.add_argument("--publish", action="store_true", help="put the figures as CloudWatch metrics")
    parser.add_argument("--endpoint-name", help="CAPTURE: the endpoint the metrics are put for (default: the "
                                                "capture's endpoint folder)")
    parser.add_argument("--alpha", type=float, default=drift.ALPHA, help="false-alarm rate of the overall verdict")
    parser.add_argument("--low-confidence", type=float, default=drift.LOW_CONFIDENCE,
                        help="top-1 probability under which an answer is low-confidence")
    parser.add_argument("--max-images", type=int, default=analysis.MAX_IMAGES,
                        help="images of the window run through the model (a random sample beyond)")
    parser.add_argument("--settings", help="AWS settings file")
    parser.add_argument("--dry-run", action="store_true", help="AWS: print the requests, send nothing")
    args = parser.parse_args(argv)
    if not (args.capture or args.endpoint):
        parser.error("give CAPTURE=<capture folder> MODEL=<job or model dir>, or ENDPOINT=<SageMaker endpoint>")
    if args.capture and not args.model:
        parser.error("CAPTURE= needs MODEL=<the job or model directory the endpoint served>: its baseline is the "
                     "reference")
    if not 0 < args.alpha < 1 or not 0 < args.low_confidence < 1:
        parser.error("--alpha and --low-confidence are between 0 and 1")
    if args.hours is not None and not 0 < args.hours <= 24 * 31:
        parser.error(f"HOURS={args.hours:g}: give 0 < HOURS <= {24 * 31}")
    if args.max_images < drift.MIN_IMAGES:
        parser.error(f"--max-images must be at least {drift.MIN_IMAGES}")
    try:
        if args.endpoint:
            return run(lambda: sagemaker(args))
        return local(args)
    except (capture_data.CaptureError, jobs.JobError, BaselineError, ArtifactError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
