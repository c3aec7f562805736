"""`make jobs` and `make logs JOB=...`: the local job records as a table, one job's log."""
from __future__ import annotations

import sys

from classifier.training import hyperparameters as hp_specs
from scripts import job_definition
from scripts.local import jobs


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=True)]

    def line(cells):
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def list_jobs() -> int:
    definition = job_definition.load()
    records = jobs.list_jobs()
    if not records:
        print(f"No local jobs in {jobs.JOBS_ROOT}")
        return 0
    tuned = {r.name for r in definition.ranges}
    rows = []
    for r in records:
        objective = (r.get("metrics") or {}).get(definition.objective_metric)
        hps = r.get("hyperparameters", {})
        # What sets this job apart: tuned values and anything other than the job definition's static ones.
        shown = " ".join(f"{k}={v}" for k, v in sorted(hps.items())
                         if not hp_specs.is_ignored(k)
                         and (k in tuned or definition.static_hyperparameters.get(k) != v))
        rows.append([r["name"], r.get("status", "?"), "" if objective is None else f"{objective:.4f}",
                     "" if r.get("duration_seconds") is None else f"{r['duration_seconds']:.0f}s", shown])
    print(table(rows, ["name", "status", definition.objective_metric, "duration", "hyperparameters"]))
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
