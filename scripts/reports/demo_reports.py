"""The three reports of a `make demo` run, each where its own command writes it: the tuning job's, the
final model's evaluation on the test images (from its model directory, as the endpoint computes), and the
demo endpoint's requests."""
from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

from scripts.local import tuning_jobs

from . import endpoint_cli, evaluation_cli, tuning_local
from .evaluation_data import EvaluationError

ENDPOINT_REPORT = endpoint_cli.REPORTS_DIR / "demo" / "endpoint-report.html"


def write_all(tuning: str, job: Path, test_images: Path, endpoint_log: Path, since: datetime) -> list[str]:
    """One line "<what> report: <path>" per report written; a report that fails is named with its error
    (the demo's results stand without it)."""
    steps = (("Tuning job", lambda: tuning_local.write_report(tuning_jobs.resolve_tuning(tuning))),
             ("Evaluation", lambda: evaluation_cli.evaluate_model(str(job), str(test_images))),
             ("Endpoint", lambda: endpoint_cli.write_local_report(endpoint_log, ENDPOINT_REPORT, "demo endpoint",
                                                                  since)))
    lines = []
    for what, write in steps:
        try:
            lines.append(f"{what} report: {write()}")
        except (OSError, ValueError, EvaluationError) as error:
            print(f"note: the {what.lower()} report was not written: {error}", file=sys.stderr)
    return lines
