"""The one progress display of long work (a feature pass, an upload, a batch, an evaluation, waiting for a
SageMaker job): tqdm's live bar on a terminal; anywhere else (a log, CI, a training job's log) plain lines,
one every `every` seconds and one at the end, never a carriage return or an escape code. The lines use
tqdm's own format, so both read alike:

    feature pass 'train': 4800/6680 images [03:10<01:14, 25.21 images/s]

    with Progress("feature pass 'train'", total=len(images)) as progress:
        for batch in batches:
            ...
            progress.add(len(batch))

Without a total it shows a status that changes (`status(text)`: a SageMaker job's state) and the time since
it started; off a terminal a status is printed when it changes, and every `every` seconds while it does not.
`emit` sends the lines to a function instead (a logger: the training job logs its feature pass), always as
lines. `add`, `detail` and `print` may be called from several threads (an upload's callbacks).
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Callable, TextIO

from tqdm import tqdm

EVERY = 10.0  # seconds between lines off a terminal
LINE = "{desc}: {n_fmt}/{total_fmt}{unit} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
LINE_WITHOUT_TOTAL = "{desc}: {n_fmt}{unit} [{elapsed}, {rate_fmt}{postfix}]"


def is_terminal(stream) -> bool:
    return bool(getattr(stream, "isatty", None)) and stream.isatty()


class Progress:
    """Work done of a total (`add`), or a status (`status`), on a live bar or as plain lines.

    unit: what is counted, as it follows a number ("images"); `binary`: bytes, shown as KB/MB/GB of 1024.
    """

    def __init__(self, what: str, total: float | None = None, unit: str = "images", *, binary: bool = False,
                 every: float = EVERY, emit: Callable[[str], None] | None = None, stream: TextIO | None = None):
        self.what, self.total, self.every = what, total, every
        self.stream = stream or sys.stderr
        self.emit = emit or (lambda line: print(line, file=self.stream, flush=True))
        self.unit = unit if binary else f" {unit}"
        self.scale = {"unit_scale": True, "unit_divisor": 1024} if binary else {}
        self.done = 0
        self.started = self.last_line = time.monotonic()
        self.shown: tuple | None = None  # (done, status) of the last line
        self.current, self.extra = "", ""  # the status, the detail
        self.lock = threading.Lock()
        self.bar = None
        if emit is None and is_terminal(self.stream):
            self.bar = tqdm(total=total, desc=what, unit=self.unit, file=self.stream, dynamic_ncols=True,
                            mininterval=0.2, bar_format=None if total or what else "{desc}  [{elapsed}]",
                            **self.scale)

    # --- what the work reports ------------------------------------------------------------------------
    def add(self, count: float = 1) -> None:
        with self.lock:
            self.done += count
            if self.bar is not None:
                self.bar.update(count)
            elif time.monotonic() - self.last_line >= self.every:
                self._line()

    def detail(self, text: str) -> None:
        """A short note after the counts (an upload's files done): on the bar now, in the next line."""
        with self.lock:
            self.extra = text
            if self.bar is not None:
                self.bar.set_postfix_str(text, refresh=False)

    def status(self, text: str) -> None:
        """What is going on now; off a terminal a line when it changed or every `every` seconds."""
        with self.lock:
            changed, self.current = text != self.current, text
            if self.bar is not None:
                self.bar.set_description_str(text)
            elif changed or time.monotonic() - self.last_line >= self.every:
                self._line()

    def print(self, text: str, stream: TextIO | None = None) -> None:
        """A line of output of its own (a log line), above the live bar."""
        stream = stream or sys.stdout
        if self.bar is not None:
            tqdm.write(text, file=stream)
        else:
            print(text, file=stream, flush=True)

    def close(self) -> None:
        """The end: the bar's last state stays on screen; off a terminal the last line, unless shown."""
        with self.lock:
            if self.bar is not None:
                self.bar.close()
            elif self.shown != (self.done, self.current):
                self._line()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    # --- lines -----------------------------------------------------------------------------------------
    def _line(self) -> None:
        now = time.monotonic()
        self.last_line, self.shown = now, (self.done, self.current)
        if self.current and not self.what:  # a status alone: a job's state and how long it has been waited for
            self.emit(f"{self.current}  [{tqdm.format_interval(now - self.started)}]")
            return
        self.emit(tqdm.format_meter(self.done, self.total, now - self.started, prefix=self.current or self.what,
                                    unit=self.unit, postfix=self.extra or None,
                                    bar_format=LINE if self.total else LINE_WITHOUT_TOTAL, **self.scale))
