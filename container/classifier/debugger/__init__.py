"""Debugger and profiler that work without the SageMaker Debugger service.

smdebug's hook captures the tensors; a background sampler and the loop's phase timings profile the job;
the rules (SageMaker's names and defaults), the StopTraining action and the HTML report run inside the
training job and again offline on a finished job's output (`python -m classifier.debugger.cli`).

The training job asks this package for its observers (`build_observers`); this package never imports
classifier.training. Importing it is cheap: torch, smdebug and matplotlib are imported by the modules
that need them.
"""
from __future__ import annotations

from ..observers import Observers


def build_observers(hp, is_main_process: bool) -> Observers:
    """The observers this job's hyperparameters ask for: smdebug's hook (debugger=true), the profiler
    (profiler=true), and with either the rules, StopTraining and the report (session.py).

    None when both are off, so they cost nothing; the main process only (it evaluates and writes outputs).
    """
    if not is_main_process or not (hp.debugger or hp.profiler):
        return Observers([])
    from .session import build

    return Observers(build(hp))
