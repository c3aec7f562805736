"""The servers' guard: no nginx, MMS or worker outlives the `serve` that started them, however it ends.

    python -m classifier.serving.guard RUN_DIR      (started by `launcher.run`, its standard input a pipe)

The guard leads the process group that nginx, MMS's Java front end and MMS's Python workers join (they
inherit it; nothing in them changes it). `serve` holds the write end of the guard's standard input and
never writes to it, so the guard reads end-of-file when `serve` closes it to stop the servers, and
equally when `serve` dies in any way, SIGKILL included: the kernel closes a dead process's files. Then
the guard sends SIGTERM to the group, SIGKILL to whatever of it is left after STOP_GRACE_S, removes the
servers' private run directory and exits. It ignores SIGTERM, SIGINT and SIGHUP itself: a signal to
the whole group, or the terminal hanging up, must not end it before the servers are gone. Standard
library and psutil only: it starts before the servers and stays small.
"""
from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from pathlib import Path

STOP_GRACE_S = 20  # SIGKILL for what is left this long after SIGTERM (SageMaker kills after 30 s)


def group_members(pgid: int, but: int | None = None) -> list:
    """The live (not zombie) processes of a process group, leaving out pid `but`."""
    import psutil

    members = []
    for process in psutil.process_iter():
        try:
            if process.pid != but and os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process)
        except (OSError, psutil.Error):
            continue
    return members


def stop_group(pgid: int, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM to the group, SIGKILL to each of its processes still there after `grace_s` (this one spared)."""
    me = os.getpid()
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while group_members(pgid, but=me) and time.monotonic() < deadline:
        time.sleep(0.2)
    for process in group_members(pgid, but=me):
        try:
            process.kill()
        except Exception:  # noqa: BLE001 - gone meanwhile
            pass


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m classifier.serving.guard RUN_DIR  (standard input: the lifeline)", file=sys.stderr)
        return 64
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    try:
        while os.read(sys.stdin.fileno(), 4096):  # nothing is ever written: this returns b"" at end-of-file
            pass
    except OSError:
        pass
    stop_group(os.getpgrp())
    shutil.rmtree(Path(args[0]), ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
