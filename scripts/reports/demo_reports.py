"""The reports of a `make demo` run, each where its own command writes it: the tuning job's, the final model's
evaluation on the test images (from its model directory, as the endpoint computes), the demo endpoint's requests,
and the monitor's report of what that endpoint captured (scripts/monitor)."""
from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

from classifier.monitoring.baseline import BaselineError
from scripts.local import tuning_jobs
from scripts.monitor import monitor_cli

from . import endpoint_cli, evaluation_cli, tuning_local
from .evaluation_data import EvaluationError

ENDPOINT_REPORT = endpoint_cli.REPORTS_DIR / "demo" / "endpoint-report.html"
MONITOR_REPORT = monitor_cli.REPORTS_DIR / "demo" / "monitor-report.html"


def write_all(tuning: str, job: Path, test_images: Path, endpoint_log: Path, since: datetime,
              capture: Path | None = None) -> list[str]:
    """One line "<what> report: <path>" per report written; a report that fails is named with its error
    (the demo's results stand without it)."""
    steps = [("Tuning job", lambda: tuning_local.write_report(tuning_jobs.resolve_tuning(tuning))),
             ("Evaluation", lambda: evaluation_cli.evaluate_model(str(job), str(test_images))),
             ("Endpoint", lambda: endpoint_cli.write_local_report(endpoint_log, ENDPOINT_REPORT, "demo endpoint",
                                                                  since))]
    if capture is not None:
        steps.append(("Monitor", lambda: monitor_report(capture, job, endpoint_log)))
    lines = []
    for what, write in steps:
        try:
            lines.append(f"{what} report: {write()}")
        except (OSError, ValueError, EvaluationError, BaselineError) as error:
            print(f"note: the {what.lower()} report was not written: {error}", file=sys.stderr)
    return lines


def monitor_report(capture: Path, job: Path, endpoint_log: Path) -> str:
    """The demo endpoint's capture against the final model's baseline, and the verdict."""
    page, _, result, _ = monitor_cli.local_report(capture, str(job), MONITOR_REPORT, log=endpoint_log,
                                                  name="demo endpoint")
    return f"{page} ({monitor_cli.monitor_report.verdict_text(result)})"
