"""`train` for the training image: sagemaker-training's console script with SIGTERM passed on properly.

StopTrainingJob (and a spot interruption) sends SIGTERM to the container's PID 1 and SIGKILL 120 s
later. PID 1 is tini, which passes it to this process: the toolkit, which runs the training program
(`python train.py ...`, through `/bin/sh -c`) and waits for it. Left alone, the toolkit would die at
once, tini would exit and the container would be torn down under the program before it could stop
cleanly; signalling the whole process group instead would also hit the DataLoader workers, whose
death the program would report as a crash.

So the toolkit keeps running and hands SIGTERM to the training program itself (the first Python
process on each branch below it, not its DataLoader workers), which stops at its next step, writes
output/failure and exits; the toolkit then reports the exit code as usual. A SIGTERM that arrives
before the program has started ends the toolkit at once.
"""
from __future__ import annotations

import os
import signal
import sys


def _children() -> dict[int, list[tuple[int, str]]]:
    """parent pid -> [(pid, executable name)] for every process we can see."""
    tree: dict[int, list[tuple[int, str]]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read().decode(errors="replace")
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may contain spaces and parentheses.
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        tree.setdefault(ppid, []).append((int(entry), comm))
    return tree


def training_processes(root: int) -> list[int]:
    """The topmost python processes below `root` (through any shells in between)."""
    tree = _children()
    found, todo = [], list(tree.get(root, []))
    while todo:
        pid, comm = todo.pop()
        if comm.startswith("python"):
            found.append(pid)
        else:
            todo.extend(tree.get(pid, []))
    return found


def _on_sigterm(signum, frame):
    targets = training_processes(os.getpid())
    if not targets:
        print("train: SIGTERM before the training program started; stopping", file=sys.stderr, flush=True)
        raise SystemExit(128 + signum)
    print(f"train: SIGTERM passed on to the training program (pid {', '.join(map(str, targets))})",
          file=sys.stderr, flush=True)
    for pid in targets:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def main() -> int:
    signal.signal(signal.SIGTERM, _on_sigterm)
    sys.argv[0] = "train"
    from sagemaker_training.cli.train import main as toolkit_main

    toolkit_main()  # exits through sys.exit with the job's exit code
    return 0


if __name__ == "__main__":
    sys.exit(main())
