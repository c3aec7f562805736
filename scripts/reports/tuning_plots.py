"""The tuning report's plots: Optuna's own (optimization history, slice, parallel coordinates; its
matplotlib versions) on an in-memory study rebuilt from the trials of either backend, and each trial's
per-epoch valid_loss with matplotlib."""
from __future__ import annotations

import math
import warnings

import matplotlib
import numpy as np
import optuna
from matplotlib.colors import ListedColormap
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from classifier.pages.figures import pyplot
from scripts.job_definition import ParameterRange

from .tuning_data import CURVE_METRIC, TrialRun, TuningRun

STATUS_STYLE = {  # per-epoch curves: colour and line by what happened to the trial
    "Completed": {"color": "#1f77b4", "ls": "-", "alpha": 0.55},
    "Stopped early": {"color": "#ff7f0e", "ls": "--", "alpha": 0.8},
    "Stopped": {"color": "#8c564b", "ls": "-.", "alpha": 0.8},
    "Failed": {"color": "#d62728", "ls": ":", "alpha": 0.9},
    "InProgress": {"color": "#7f7f7f", "ls": "-", "alpha": 0.8},
}
_VISIBLE_BLUES = ListedColormap(matplotlib.colormaps["Blues"](np.linspace(0.3, 1.0, 256)), "Blues_visible")
END_MARKER = {"Stopped early": "x", "Stopped": "s", "Failed": "X", "InProgress": ">"}


# --- an Optuna study of the trials ---------------------------------------------------------------------------

def number_or_text(text):
    """A hyperparameter's value as sent ("16", "0.01", '"adam"') as the number it means, else the text."""
    text = str(text).strip().strip('"')
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def distribution(r: ParameterRange, observed: list):
    """The range as an Optuna distribution, wide enough for every value a trial ran with. A range over two
    orders of magnitude or more (lr) is drawn on a log axis, whatever SageMaker's Auto scaling chose."""
    if r.type == "Categorical":
        choices = [number_or_text(v) for v in r.values]
        choices += [v for v in observed if v not in choices]
        return CategoricalDistribution(choices)
    low, high = min([r.min, *observed]), max([r.max, *observed])
    log = r.scaling == "Logarithmic" or (low > 0 and high / low >= 100)
    if r.type == "Integer":
        return IntDistribution(int(low), int(high), log=log)
    return FloatDistribution(float(low), float(high), log=log)


def study_of(run: TuningRun) -> optuna.Study:
    """The trials as an in-memory Optuna study, trial numbers as in the report. Optuna numbers trials from 0:
    failed placeholders take the numbers no trial has (0 at least), and no plot here shows failed trials."""
    values = {r.name: [number_or_text(t.trial.hyperparameters[r.name]) for t in run.trials
                       if t.trial.hyperparameters.get(r.name) is not None] for r in run.ranges}
    distributions = {r.name: distribution(r, values[r.name]) for r in run.ranges}
    study = optuna.create_study(direction="minimize" if run.objective.minimize else "maximize")
    by_number = {t.number: t for t in run.trials}
    for number in range(max(by_number, default=0) + 1):
        trial = by_number.get(number)
        study.add_trial(_frozen(trial, distributions) if trial else optuna.trial.create_trial(state=TrialState.FAIL))
    return study


def _frozen(run: TrialRun, distributions: dict):
    params = {name: number_or_text(run.trial.hyperparameters[name]) for name in distributions
              if run.trial.hyperparameters.get(name) is not None}
    complete = run.trial.status == "Completed" and run.trial.objective is not None
    state = TrialState.COMPLETE if complete else TrialState.PRUNED if run.early_stopped else TrialState.FAIL
    return optuna.trial.create_trial(params=params, distributions={n: distributions[n] for n in params},
                                     value=run.trial.objective if complete else None, state=state,
                                     intermediate_values=run.curve)


def _optuna_figure(plot, *args, size=(10, 3.6), whole: tuple[str, ...] = ("Trial",), **kwargs):
    """One of optuna.visualization.matplotlib's plots as a figure. They set matplotlib's ggplot style
    globally: rc_context puts the settings back afterwards. Axes labelled with a name in `whole` (trial
    numbers, integer hyperparameters) get whole-number ticks."""
    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna.exceptions.ExperimentalWarning for the matplotlib plots
        axes = plot(*args, **kwargs)
        first = axes.flat[0] if hasattr(axes, "flat") else axes
        fig = first.figure
        fig.set_size_inches(*size)
        for ax in fig.axes:
            for axis in (ax.xaxis, ax.yaxis):
                if axis.get_label_text() in whole and axis.get_scale() == "linear":
                    axis.set_major_locator(MaxNLocator(integer=True))
            if ax.get_xscale() == "log":  # 0.001, 0.002, 0.005, 0.01...: labelled whatever the span
                ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
                ax.xaxis.set_minor_formatter(NullFormatter())
            for drawn in ax.collections:  # Optuna's Blues run to white: the palest trial would not show
                name = getattr(drawn.get_cmap(), "name", "")
                if name.startswith("Blues") and drawn.get_array() is not None:
                    drawn.set_cmap(_VISIBLE_BLUES.reversed() if name.endswith("_r") else _VISIBLE_BLUES)
    return fig


def history(study: optuna.Study, metric: str):
    from optuna.visualization.matplotlib import plot_optimization_history

    fig = _optuna_figure(plot_optimization_history, study, target_name=metric)
    fig.axes[0].set_title(f"{metric} per trial (completed trials), with the best so far")
    fig.axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def _integers(study: optuna.Study) -> tuple[str, ...]:
    names = {n for t in study.trials for n, d in t.distributions.items() if isinstance(d, IntDistribution)}
    return ("Trial", *sorted(names))


def slices(study: optuna.Study, names: list[str], metric: str):
    from optuna.visualization.matplotlib import plot_slice

    return _optuna_figure(plot_slice, study, params=names, target_name=metric,
                          size=(max(4.0 * len(names), 6.0), 3.6), whole=_integers(study))


def parallel(study: optuna.Study, names: list[str], metric: str):
    from optuna.visualization.matplotlib import plot_parallel_coordinate

    return _optuna_figure(plot_parallel_coordinate, study, params=names, target_name=metric, size=(10, 4.2))


def curves(run: TuningRun):
    """Every trial's valid_loss per epoch: colour and line by status, a marker where a stopped or failed
    trial ended, the best trial thick and labelled."""
    plt = pyplot()
    from matplotlib.lines import Line2D

    best = run.best()
    fig, ax = plt.subplots(figsize=(10, 4))
    shown = set()
    for t in run.trials:
        if not t.curve:
            continue
        status = t.shown_status
        style = STATUS_STYLE.get(status, STATUS_STYLE["InProgress"])
        epochs, losses = list(t.curve), list(t.curve.values())
        is_best = best is not None and t is best
        ax.plot(epochs, losses, lw=2.6 if is_best else 1.2, color="#2ca02c" if is_best else style["color"],
                ls=style["ls"], alpha=1 if is_best else style["alpha"], zorder=3 if is_best else 2)
        if status in END_MARKER:
            ax.plot(epochs[-1:], losses[-1:], END_MARKER[status], color=style["color"], ms=7, zorder=4)
        if is_best:
            ax.annotate(f"best: trial {t.number}", (epochs[-1], losses[-1]), textcoords="offset points",
                        xytext=(6, 0), va="center", color="#2ca02c", fontsize=8)
        if not is_best:
            shown.add(status)
    legend = [Line2D([], [], color=STATUS_STYLE[s]["color"], ls=STATUS_STYLE[s]["ls"], marker=END_MARKER.get(s),
                     label=s.lower()) for s in STATUS_STYLE if s in shown]
    if best is not None and best.curve:
        legend.insert(0, Line2D([], [], color="#2ca02c", lw=2.6, label=f"best (trial {best.number})"))
    finite = [v for t in run.trials for v in t.curve.values() if math.isfinite(v) and v > 0]
    if finite and max(finite) / min(finite) > 30:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(CURVE_METRIC)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"{CURVE_METRIC} per epoch: {sum(1 for t in run.trials if t.curve)} of {len(run.trials)} trials")
    ax.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig
