"""`make report JOB=...` and `make rules JOB=...`: the debugger/profiler report, or the rules re-run, for one
training job's output.

    python -m scripts.report JOB                 # build the HTML report, print its path
    python -m scripts.report JOB --rerun-rules   # run the rules again first (all, SageMaker's defaults)
    python -m scripts.report JOB --rules [--only VanishingGradient,Overfit] [--param Overfit.patience=2]

JOB: a local job's name or directory (jobs/<name>, an /opt/ml tree), or a SageMaker job's output
downloaded from S3 (the directory an output.tar.gz was extracted into).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from classifier.debugger import cli
from scripts.local import jobs


def resolve(job: str) -> Path:
    try:
        return jobs.resolve_job(job)
    except jobs.JobError:
        path = Path(job)
        if path.is_dir():
            return path
        raise


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("job", nargs="?", help="job name or directory (JOB=...)")
    parser.add_argument("--rules", action="store_true", help="re-run the rules and print them (no report)")
    parser.add_argument("--only", default="all", help="with --rules: comma-separated rule names")
    parser.add_argument("--param", default="", help="with --rules: Rule.parameter=value,...")
    parser.add_argument("--rerun-rules", action="store_true", help="run the rules again before the report")
    parser.add_argument("--out", help="report file (default: <output data>/debugger-report.html)")
    args = parser.parse_args(argv)
    if not args.job:
        print("error: JOB=<name or directory> is required (`make jobs` lists local jobs)", file=sys.stderr)
        return 2
    try:
        path = resolve(args.job)
    except jobs.JobError as error:
        print(f"error: {error}; or give the directory of an extracted output.tar.gz", file=sys.stderr)
        return 2
    if args.rules:
        return cli.main(["rules", str(path), "--rules", args.only, "--param", args.param])
    extra = (["--out", args.out] if args.out else []) + (["--rerun-rules"] if args.rerun_rules else [])
    return cli.main(["report", str(path), "--name", path.resolve().name, *extra])


if __name__ == "__main__":
    sys.exit(main())
