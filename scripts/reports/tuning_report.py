"""The tuning job report: one HTML page for a local or SageMaker tuning job (tuning_data.TuningRun).

Summary, the best trial with the commands that retrain it, the trials table (status, objective, time,
hyperparameters, failure reason), the objective per trial with the best so far, each tuned hyperparameter
against the objective, parallel coordinates, and every trial's valid_loss per epoch.
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from scripts import orchestration

from . import tuning_plots
from .page import (
    badge,
    command,
    esc,
    fmt_number,
    fmt_seconds,
    html_page,
    note,
    png,
    section,
    table,
    utc_text,
    write_page,
)
from .tuning_data import CURVE_METRIC, TrialRun, TuningRun

STATUS_CSS = {"Stopped early": "Pruned"}  # the badge classes of page.py
NAV = [("summary", "Summary"), ("best", "Best trial"), ("trials", "Trials"), ("history", "Objective"),
       ("hyperparameters", "Hyperparameters"), ("parallel", "Parallel coordinates"), ("curves", "Per epoch")]


def summary_section(run: TuningRun) -> str:
    counts = Counter(t.shown_status for t in run.trials)
    duration = (run.ended - run.created).total_seconds() if run.ended and run.created else None
    limits = f"{fmt_number(run.max_jobs)} trials, {fmt_number(run.max_parallel)} at a time"
    where = _link(run.location, run.location) if "://" in run.location else esc(run.location)
    rows = [("Tuning job", esc(run.name)), ("Where", where),
            ("Status", badge(run.status)), ("Strategy / early stopping", esc(f"{run.strategy} / {run.early_stopping}")),
            ("Objective", esc(f"{run.objective.type} {run.objective.metric}")), ("Limits", esc(limits)),
            ("Trials", esc(", ".join(f"{n} {s.lower()}" for s, n in counts.most_common()) or "none yet")),
            ("Tuned", esc(", ".join(_describe_range(r) for r in run.ranges) or "–")),
            ("Created / ended", esc(f"{utc_text(run.created)} / {utc_text(run.ended)}")),
            ("Duration", esc(fmt_seconds(duration)))]
    if run.failure_reason:
        rows.append(("Failure reason", esc(run.failure_reason)))
    body = table(None, rows) + "".join(note(text) for text in run.notes)
    return section("summary", "Summary", body)


def _describe_range(r) -> str:
    if r.type == "Categorical":
        return f"{r.name} in {{{', '.join(map(str, r.values))}}}"
    return f"{r.name} {fmt_number(r.min)}–{fmt_number(r.max)} ({r.type.lower()}, {r.scaling.lower()})"


def best_section(run: TuningRun, out_dir: Path) -> str:
    best = run.best()
    if best is None:
        return section("best", "Best trial", note(f"No trial completed with the objective {run.objective.metric}: "
                                                  "no best trial (see the failure reasons below)."))
    rows = [("Training job", _trial_link(best, out_dir)), ("Trial", str(best.number)),
            (esc(run.objective.metric), fmt_number(best.trial.objective)),
            ("Tuned hyperparameters", esc(orchestration.describe_values(best.trial.hyperparameters))),
            ("Epochs run / best epoch by valid_loss", esc(_epochs_text(best)))]
    return section("best", "Best trial", table(None, rows) + "<h3>Retrain (or deploy) it</h3>"
                   + command("\n".join(run.retrain)) + note("The best trial is the completed one with the best "
                                                            "objective (the orchestration core's rule, as "
                                                            "`make tune`/`make tune-local` print it)."))


def _epochs_text(trial: TrialRun) -> str:
    if not trial.curve:
        return "–"
    best_epoch = min(trial.curve, key=trial.curve.get)
    return f"{max(trial.curve)} / {best_epoch}"


def trials_section(run: TuningRun, out_dir: Path) -> str:
    names = run.tuned_names()
    best = run.best()
    order = {t.name: i for i, t in enumerate(orchestration.ranked([t.trial for t in run.trials],
                                                                  run.objective.minimize))}
    trials = sorted(run.trials, key=lambda t: order[t.trial.name])
    rows, classes = [], []
    for t in trials:
        css = STATUS_CSS.get(t.shown_status, t.shown_status)
        reason = t.trial.failure_reason or ("stopped by the tuner's early stopping" if t.early_stopped else "")
        rows.append([str(t.number), _nowrap(_trial_link(t, out_dir)), badge(css, t.shown_status),
                     fmt_number(t.trial.objective), _nowrap(esc(fmt_seconds(t.trial.seconds))),
                     *[esc(_short(t.trial.hyperparameters.get(n, ""))) for n in names],
                     esc(str(max(t.curve)) if t.curve else "–"), f'<span class="small">{esc(reason)}</span>'])
        classes.append("best" if best is not None and t is best else "")
    headers = ["trial", "training job", "status", run.objective.metric, "time", *names, "epochs run", "failure reason"]
    return section("trials", f"Trials ({len(rows)}), best first", table(headers, rows, classes) if rows else
                   note("No trials recorded."))


def _nowrap(html_text: str) -> str:
    return f'<span style="white-space:nowrap">{html_text}</span>'


def _short(value) -> str:
    number = tuning_plots.number_or_text(value)
    return f"{number:.4g}" if isinstance(number, float) else str(value)


def _trial_link(trial: TrialRun, out_dir: Path) -> str:
    if not trial.page:
        return esc(trial.trial.name)
    target = trial.page if "://" in trial.page else os.path.relpath(trial.page, out_dir)
    title = "console page" if "://" in trial.page else "debugger report"
    return _link(target, trial.trial.name, title)


def _link(target: str, text: str, title: str = "") -> str:
    shown = f' title="{esc(title)}"' if title else ""
    return f'<a href="{esc(target)}"{shown}>{esc(text)}</a>'


def plot_sections(run: TuningRun) -> list[str]:
    study = tuning_plots.study_of(run)
    metric, names = run.objective.metric, run.tuned_names()
    completed = sum(1 for t in run.trials if t.trial.status == "Completed" and t.trial.objective is not None)
    missing = note(f"No completed trial with {metric} yet: nothing to draw.")
    history = png(tuning_plots.history(study, metric)) if completed else missing
    sliced = png(tuning_plots.slices(study, names, metric)) if completed and names else missing
    if completed >= 2 and names:
        lines = png(tuning_plots.parallel(study, names, metric))
    else:
        lines = note("Parallel coordinates need at least two completed trials.")
    curves = png(tuning_plots.curves(run)) if any(t.curve for t in run.trials) else ""
    silent = [f"{t.number} ({t.shown_status.lower()})" for t in run.trials if not t.curve]
    if silent:
        curves += note(f"No per-epoch {CURVE_METRIC} from trial(s) {', '.join(silent)}: they ended before their "
                       "first epoch, or their log could not be read.")
    return [
        section("history", "Objective per trial", history + note(
            f"Each completed trial's final {metric} (what the tuner ranked it by) in the order the trials were "
            f"made, and the best value so far. Failed and stopped trials have no objective.")),
        section("hyperparameters", "Each tuned hyperparameter against the objective", sliced + note(
            "One panel per tuned hyperparameter; the colour is the trial number. Ranges spanning two orders of "
            "magnitude or more (lr) are on a log axis.")),
        section("parallel", "Parallel coordinates", lines + note(
            "One line per completed trial through its hyperparameter values; the colour is its objective.")),
        section("curves", f"{CURVE_METRIC} per epoch, every trial", curves + note(
            "From each trial's per-epoch metric lines. Dashed with ×: stopped early by the tuner; dotted with a "
            "red X: failed; thick green: the best trial.")),
    ]


def build_html(run: TuningRun, out_dir: Path) -> str:
    best = run.best()
    subtitle = (f"{run.backend} tuning job, {run.status}, {len(run.trials)} trials; best "
                + (f"{best.trial.name} {run.objective.metric}={best.trial.objective:.4g}." if best else "none."))
    sections = [summary_section(run), best_section(run, out_dir), trials_section(run, out_dir), *plot_sections(run)]
    return html_page(f"Tuning job report: {run.name}", subtitle, NAV, sections)


def write(run: TuningRun, path: Path) -> Path:
    path = Path(path)
    return write_page(path, build_html(run, path.resolve().parent))
