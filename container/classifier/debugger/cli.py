"""Re-run the rules and rebuild the report offline, on any job's output.

    python -m classifier.debugger.cli rules  PATH [--rules a,b] [--param Rule.name=value,...] [--no-write]
    python -m classifier.debugger.cli report PATH [--out FILE] [--rerun-rules]

PATH: a local job dir (an /opt/ml tree such as jobs/<name>), an /opt/ml/output dir, or an extracted
output.tar.gz of a SageMaker job. `rules` prints each rule's result and writes rules/rule_results.json
(and appends to rules/rule_history.jsonl) unless --no-write; with --fail-on-issues it exits 1 when a
rule found issues.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import config, jobdata, rules


def run_rules(path: Path | str, names: str = "all", params: str = "", write: bool = True) -> list:
    layout = config.Layout.locate(path)
    data = jobdata.load(layout)
    job = data.job or {}
    stop = config.rule_names(job.get("hyperparameters", {}).get("debugger_stop_rules", ""))
    if names.strip().lower() != "all":  # named: run them, Error where the data is missing
        selected = config.rule_names(names)
    elif job:
        selected = config.rules_for(names, job.get("hook") is not None, job.get("profiler") is not None)
    else:  # no debugger record (a job run with both off): whatever its files allow
        selected = config.rules_for(names, layout.tensors.is_dir(), layout.system_file.is_file())
    results = rules.evaluate(data, selected, config.rule_parameters(params), stop)
    if write and results:
        from .session import write_results

        write_results(layout, results, epoch="offline")
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("rules", help="re-run the rules on a job's output")
    r.add_argument("path")
    r.add_argument("--rules", default="all", help="comma-separated rule names (default: all)")
    r.add_argument("--param", default="", help="Rule.parameter=value,... over the defaults")
    r.add_argument("--no-write", action="store_true", help="print only; leave rules/ as it is")
    r.add_argument("--fail-on-issues", action="store_true", help="exit 1 when a rule found issues")
    p = sub.add_parser("report", help="build the HTML report of a job's output")
    p.add_argument("path")
    p.add_argument("--out", help="the report file (default: <output data>/debugger-report.html)")
    p.add_argument("--rerun-rules", action="store_true", help="run all rules again first")
    p.add_argument("--name", help="the job's name in the report's title")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "rules":
            results = run_rules(args.path, args.rules, args.param, write=not args.no_write)
            if not results:
                print(f"no rules to run: {args.path} has neither smdebug tensors nor profiler data "
                      f"(name rules with --rules to run them anyway)")
            for result in results:
                print(result.line())
                if result.recommendation:
                    print(f"    recommendation: {result.recommendation}")
            return 1 if args.fail_on_issues and any(r.status == rules.ISSUES for r in results) else 0
        layout = config.Layout.locate(args.path)
        results = None
        if args.rerun_rules:
            results = [r.as_dict() for r in run_rules(args.path)]
        from .report import write_report

        print(write_report(layout, Path(args.out) if args.out else None, results, args.name))
        return 0
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
