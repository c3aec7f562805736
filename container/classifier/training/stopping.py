"""SIGTERM asks a training job to stop: StopTrainingJob, a spot interruption, Ctrl-C of a local job.

SageMaker sends SIGTERM and SIGKILL 120 s later. Whenever it arrives, the job ends one way: it stops at its
next step (an epoch) or its next milestone (start-up, the feature pass), keeps its last checkpoint, writes the
reason to output/failure and exits 143. A SIGTERM after the last epoch lets the model be saved: the job then
completes, without the export; one during the export ends it at its next step, nothing of it kept
(classifier/export/main.py), and the job completes too. `install` runs first thing in container/train.py,
before torch is imported (seconds of start-up), so that a SIGTERM during start-up is a stop too and not a bare
exit 143 without a reason. Torch-free.
"""
from __future__ import annotations

import signal

_received = False


class TrainingStopped(Exception):
    """SIGTERM: stop at the next step, keep the last checkpoint."""


def _receive(*_) -> None:
    global _received
    _received = True


def install() -> None:
    signal.signal(signal.SIGTERM, _receive)


def requested() -> bool:
    return _received


def check(when: str) -> None:
    """Raise TrainingStopped when a SIGTERM has arrived; `when` says where the job was ("during start-up")."""
    if _received:
        raise TrainingStopped(f"stopped by SIGTERM {when}")
