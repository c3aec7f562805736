"""`make endpoint-report`: an endpoint's requests, errors and latency over time as one HTML page.

    python -m scripts.reports.endpoint_cli [--log FILE | --port 8080]       # a local endpoint's request log
    python -m scripts.reports.endpoint_cli --endpoint http://127.0.0.1:8080  # the same: that port's log
    python -m scripts.reports.endpoint_cli --endpoint NAME [--minutes 60]  # a SageMaker endpoint (CloudWatch)
    options: --out FILE, --settings FILE and --dry-run (SageMaker)

Local: the handler's INVOCATION lines in MMS's log (build/serve-local/<port>/logs/mms_log.log, what
`make endpoint-stats` reads). SageMaker: GetMetricData for the last --minutes and the INVOCATION lines of the
endpoint's CloudWatch log group. The page goes to build/reports/endpoint/<local-PORT | name>/.
"""
from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime
from pathlib import Path

from classifier.serving.settings import DEFAULT_PORT
from scripts import REPO_ROOT
from scripts.aws.common import open_aws, run
from scripts.endpoint_stats import parse_records

from . import endpoint_aws, endpoint_report
from .endpoint_data import from_records, record_time

REPORTS_DIR = REPO_ROOT / "build" / "reports" / "endpoint"
SERVE_DIR = REPO_ROOT / "build" / "serve-local"  # mk/serving.mk's SERVE_DIR


def local_log(port: int) -> Path:
    return SERVE_DIR / str(port) / "logs" / "mms_log.log"


def write_local_report(log: Path, out: Path | None = None, name: str | None = None,
                       since: datetime | None = None) -> Path:
    """The report of a local endpoint from its MMS log (`since`: only the requests from then on; MMS appends
    to the log of a work dir used before)."""
    log = Path(log)
    if not log.is_file():
        raise FileNotFoundError(f"no endpoint log {log}: start one with `make serve-local MODEL=...` (its port's "
                                "log) or give LOG=<file>")
    served = log.resolve().parent.parent
    port = served.name if served.parent == SERVE_DIR.resolve() else None  # make serve-local's own log
    malformed = []
    with open(log, errors="replace") as handle:
        records = [r for r in parse_records(handle, malformed) if since is None or record_time(r) >= since]
        traffic = from_records(records, name or (f"local endpoint on port {port}" if port else
                                                               f"local endpoint ({log.name})"), str(log))
    if malformed:
        traffic.notes.append(f"{len(malformed)} INVOCATION line(s) of the log are not records the handler writes and "
                             f"were left out; the first: {malformed[0][:200]}")
    slug = f"local-{port}" if port else f"local-{log.stem}"
    return endpoint_report.write(traffic, out or REPORTS_DIR / slug / "endpoint-report.html")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log", type=Path, help="a local endpoint's log (MMS's mms_log.log, or a saved stdout)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="the local endpoint's port (its log under build/)")
    parser.add_argument("--endpoint", help="a SageMaker endpoint's name (CloudWatch)")
    parser.add_argument("--minutes", type=int, default=60, help="SageMaker: the last this many minutes")
    parser.add_argument("--out", type=Path, help="report file")
    parser.add_argument("--settings", help="AWS settings file")
    parser.add_argument("--dry-run", action="store_true", help="SageMaker: print the requests, send nothing")
    args = parser.parse_args(argv)
    local = re.fullmatch(r"https?://[^/:]+:(\d+)/?", args.endpoint or "")
    if local:  # a local endpoint's URL: its port's log
        args.port, args.endpoint = int(local.group(1)), None
    if args.endpoint:
        return run(lambda: sagemaker(args))
    try:
        path = write_local_report(args.log or local_log(args.port), args.out)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Endpoint report: {path}")
    return 0


def sagemaker(args) -> int:
    if not 1 <= args.minutes <= 60 * 24 * 15:
        raise ValueError("MINUTES must be 1 to 21600 (CloudWatch keeps 1-minute data 15 days)")
    aws = open_aws(args)
    traffic = endpoint_aws.load(aws, args.endpoint, args.minutes)
    if aws.dry_run:
        return 0
    path = endpoint_report.write(traffic, args.out or REPORTS_DIR / args.endpoint / "endpoint-report.html")
    print(f"Endpoint report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
