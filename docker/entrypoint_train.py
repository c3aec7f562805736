"""`train` for the training image: sagemaker-training's console script with SIGTERM passed on properly.

StopTrainingJob (and a spot interruption) sends SIGTERM to the container's PID 1 and SIGKILL 120 s
later. PID 1 is tini, which passes it to this process: the toolkit, which runs the training program
(`python train.py ...`, through `/bin/sh -c`) and waits for it. Left alone, the toolkit would die at
once, tini would exit and the container would be torn down under the program before it could stop
cleanly; signalling the whole process group instead would also hit the DataLoader workers, whose
death the program would report as a crash.

So the toolkit keeps running and hands SIGTERM to the training program itself (the first Python
process on each branch below it, not its DataLoader workers), which stops at its next step, writes
output/failure and exits 143 (classifier/training/stopping.py); the toolkit then reports the exit code as
usual. A SIGTERM that arrives before the program has started ends the toolkit at once, with that reason
written to output/failure as well.
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import psutil


def training_processes(root: int) -> list[int]:
    """The topmost python processes below `root` (through any shells in between)."""
    found, todo = [], psutil.Process(root).children()
    while todo:
        process = todo.pop()
        try:
            if process.name().startswith("python"):
                found.append(process.pid)
            else:
                todo.extend(process.children())
        except psutil.NoSuchProcess:
            continue
    return found


def write_failure(reason: str) -> None:
    """output/failure (SageMaker's FailureReason), unless the program wrote its own first."""
    failure = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")) / "output" / "failure"
    try:
        failure.parent.mkdir(parents=True, exist_ok=True)
        with open(failure, "x") as handle:
            handle.write(reason + "\n")
    except OSError:  # written already, or no output dir to write in: the exit status still says it
        pass


def _on_sigterm(signum, frame):
    targets = training_processes(os.getpid())
    if not targets:
        reason = "stopped by SIGTERM before the training program started; nothing to keep"
        print(f"train: {reason}", file=sys.stderr, flush=True)
        write_failure(reason)
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
    from sagemaker_training.cli.train import main as toolkit_main  # after the handler: the import takes a while

    toolkit_main()  # exits through sys.exit with the job's exit code
    return 0


if __name__ == "__main__":
    sys.exit(main())
