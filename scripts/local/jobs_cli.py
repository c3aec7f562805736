"""`make jobs` and `make logs JOB=...`: the local job records as a table, one job's log."""
from __future__ import annotations

import sys

from classifier.training import hyperparameters as hp_specs
from scripts import job_definition, orchestration
from scripts.local import jobs


def list_jobs() -> int:
    definition = job_definition.load()
    records = jobs.list_jobs(definition=definition)  # a job whose processes are gone is shown as it ended
    if not records:
        print(f"No local jobs in {jobs.JOBS_ROOT}")
        return 0
    tuned = set(definition.tuned_names)
    metric = definition.objective.metric
    rows = []
    for r in records:
        objective = (r.get("metrics") or {}).get(metric)
        hps = r.get("hyperparameters", {})
        # What sets this job apart: tuned values and anything other than the job definition's static ones.
        shown = orchestration.describe_values({
            k: v for k, v in hps.items()
            if not hp_specs.is_ignored(k) and (k in tuned or definition.static_hyperparameters.get(k) != v)})
        rows.append([r["name"], r.get("status", "?"), "" if objective is None else f"{objective:.4f}",
                     orchestration.seconds_text(r.get("duration_seconds")), shown])
    print(orchestration.table(rows, ["name", "status", metric, "duration", "hyperparameters"]))
    return 0


def show_log(name: str) -> int:
    if not name:
        print("usage: make logs JOB=<name>  (make jobs lists them)", file=sys.stderr)
        return 2
    job = jobs.resolve_job(name)
    sys.stdout.write((job / jobs.LOG).read_text(errors="replace"))
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["list"]:
            return list_jobs()
        if argv[:1] == ["logs"]:
            return show_log(argv[1] if len(argv) > 1 else "")
    except jobs.JobError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("usage: python -m scripts.local.jobs_cli list | logs JOB", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
