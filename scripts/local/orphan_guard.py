"""Run a command that stops when the process that started it dies: `python orphan_guard.py PARENT_PID CMD...`.

Linux: prctl(PR_SET_PDEATHSIG, SIGTERM), then exec the command, which keeps the setting. So a local
training job whose `make train-local` or tuning process is killed (even with SIGKILL) gets SIGTERM, which
the training image's entry passes to the training program: it stops at its next step and keeps its last
checkpoint; and the local endpoint of `make batch-local` or the demo stops its servers. The signal comes
when the thread that started the command ends: start it from the main thread. If the parent is already
gone when this starts, the command does not run. Elsewhere the
command is run as it is (`make jobs` still sees that its process is gone). Standard library only: it runs
before the job's own Python.
"""
import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def guarded(command: list[str]) -> list[str]:
    """`command` run through this guard: it gets SIGTERM when the calling process dies."""
    return [sys.executable, "-s", "-S", os.path.abspath(__file__), str(os.getpid()), *command]


def main() -> int:
    parent, command = int(sys.argv[1]), sys.argv[2:]
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent:  # died before the line above: nobody will read this job's result
        return 128 + signal.SIGTERM
    os.execv(command[0], command)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
