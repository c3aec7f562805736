"""`make tune-report TUNING=<name>`: the tuning job report of a local or a SageMaker tuning job.

    python -m scripts.reports.tuning_cli TUNING [--out FILE] [--sagemaker] [--dry-run] [--settings FILE]

A local tuning job (a name under jobs/tuning/, or its directory) is read from its files; its report goes
next to its record, jobs/tuning/<name>/tuning-report.html (the local tuner writes it there when it ends).
Any other name, or --sagemaker, is a SageMaker tuning job, read with boto3 and the AWS settings
(config/settings.yaml); its report goes to build/reports/<name>/tuning-report.html. --dry-run prints the
SageMaker and CloudWatch Logs requests and sends nothing.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scripts import REPO_ROOT, orchestration
from scripts.aws.common import open_aws, run
from scripts.local import jobs, tuning_jobs

from . import tuning_aws, tuning_local, tuning_report

REPORTS_DIR = REPO_ROOT / "build" / "reports"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tuning", nargs="?", help="tuning job name (TUNING=...) or a local tuning job's directory")
    parser.add_argument("--out", type=Path, help="report file (default: see above)")
    parser.add_argument("--sagemaker", action="store_true", help="a SageMaker tuning job, even if a local one has "
                                                                 "the name")
    parser.add_argument("--settings", help="AWS settings file (default: $SETTINGS or config/settings.yaml)")
    parser.add_argument("--dry-run", action="store_true", help="SageMaker: print the requests, send nothing")
    args = parser.parse_args(argv)
    if not args.tuning:
        parser.error("give a tuning job: make tune-report TUNING=<name>")
    if not args.sagemaker:
        try:
            directory = tuning_jobs.resolve_tuning(args.tuning)
        except jobs.JobError:
            directory = None
        if directory is not None:
            print(f"Tuning job report: {tuning_local.write_report(directory, args.out)}")
            return 0
        print(f"{args.tuning} is not a local tuning job (none in {tuning_jobs.tuning_root()}): reading the SageMaker "
              "tuning job of that name", file=sys.stderr)

    def go() -> int:
        orchestration.check_name(args.tuning, orchestration.TUNING_NAME_MAX, "SageMaker tuning job (TUNING=)")
        aws = open_aws(args)
        loaded = tuning_aws.load(aws, args.tuning)
        if aws.dry_run:
            return 0
        out = args.out or REPORTS_DIR / args.tuning / "tuning-report.html"
        print(f"Tuning job report: {tuning_report.write(loaded, out)}")
        return 0

    return run(go)


if __name__ == "__main__":
    sys.exit(main())
