"""The tuning job report: one HTML page for a local or SageMaker tuning job (tuning_data.TuningRun).

Summary, the best trial with the commands that retrain it, the trials table (status, objective, time,
hyperparameters, failure reason), the objective per trial with the best so far, each tuned hyperparameter
against the objective, parallel coordinates, and every trial's valid_loss per epoch.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from classifier.pages.figures import png
from classifier.pages.formats import MISSING, number
from scripts import orchestration

from . import tuning_plots
from .page import href, write_page
from .tuning_data import CURVE_METRIC, TrialRun, TuningRun

STATUS_CSS = {"Stopped early": "Pruned"}  # the badge class of a status the stylesheet names otherwise


def summary(run: TuningRun) -> dict:
    counts = Counter(t.shown_status for t in run.trials)
    where = run.location
    return {
        "where": where, "where_href": where if where.startswith(("https://", "http://")) else None,
        "trials": ", ".join(f"{n} {s.lower()}" for s, n in counts.most_common()) or "none yet",
        "tuned": ", ".join(_describe_range(r) for r in run.ranges) or MISSING,
        "duration": (run.ended - run.created).total_seconds() if run.ended and run.created else None,
    }


def _describe_range(r) -> str:
    if r.type == "Categorical":
        return f"{r.name} in {{{', '.join(map(str, r.values))}}}"
    return f"{r.name} {number(r.min)}–{number(r.max)} ({r.type.lower()}, {r.scaling.lower()})"


def _link(trial: TrialRun, out_dir: Path) -> dict:
    """The trial's name and, where it has one, a link to its own page (debugger report or console page)."""
    if not trial.page:
        return {"text": trial.trial.name, "href": None, "title": ""}
    console = trial.page.startswith(("https://", "http://"))
    return {"text": trial.trial.name, "href": href(trial.page, out_dir),
            "title": "console page" if console else "debugger report"}


def best_trial(run: TuningRun, out_dir: Path) -> dict | None:
    best = run.best()
    if best is None:
        return None
    epochs = MISSING
    if best.curve:
        epochs = f"{max(best.curve)} / {min(best.curve, key=best.curve.get)}"
    return {"link": _link(best, out_dir), "number": best.number, "objective": best.trial.objective,
            "tuned": orchestration.describe_values(best.trial.hyperparameters), "epochs": epochs}


def trial_rows(run: TuningRun, out_dir: Path) -> list[dict]:
    """Every trial, best first (the core's ranking), with its hyperparameters in the order of run.tuned_names()."""
    best = run.best()
    order = {t.name: i for i, t in enumerate(orchestration.ranked([t.trial for t in run.trials],
                                                                  run.objective.minimize))}
    rows = []
    for t in sorted(run.trials, key=lambda t: order[t.trial.name]):
        reason = t.trial.failure_reason or ("stopped by the tuner's early stopping" if t.early_stopped else "")
        rows.append({"number": t.number, "link": _link(t, out_dir), "status": t.shown_status,
                     "badge": STATUS_CSS.get(t.shown_status, t.shown_status), "objective": t.trial.objective,
                     "seconds": t.trial.seconds,
                     "values": [_short(t.trial.hyperparameters.get(n, "")) for n in run.tuned_names()],
                     "epochs": str(max(t.curve)) if t.curve else MISSING, "reason": reason,
                     "best": best is not None and t is best})
    return rows


def _short(value) -> str:
    number_ = tuning_plots.number_or_text(value)
    return f"{number_:.4g}" if isinstance(number_, float) else str(value)


def plots(run: TuningRun) -> dict:
    """The figures (None where there is nothing to draw) and the trials without a per-epoch curve."""
    study = tuning_plots.study_of(run)
    metric, names = run.objective.metric, run.tuned_names()
    completed = sum(1 for t in run.trials if t.trial.status == "Completed" and t.trial.objective is not None)
    return {
        "completed": completed,
        "history": png(tuning_plots.history(study, metric), crop=True) if completed else None,
        "slices": png(tuning_plots.slices(study, names, metric), crop=True) if completed and names else None,
        "parallel": png(tuning_plots.parallel(study, names, metric), crop=True) if completed >= 2 and names else None,
        "curves": png(tuning_plots.curves(run), crop=True) if any(t.curve for t in run.trials) else None,
        "silent": ", ".join(f"{t.number} ({t.shown_status.lower()})" for t in run.trials if not t.curve),
    }


def write(run: TuningRun, path: Path) -> Path:
    path = Path(path)
    out_dir = path.resolve().parent
    return write_page(path, "tuning-report.html", title=f"Tuning job report: {run.name}", run=run,
                      summary=summary(run), best=best_trial(run, out_dir), trials=trial_rows(run, out_dir),
                      tuned_names=run.tuned_names(), plots=plots(run), curve_metric=CURVE_METRIC)
