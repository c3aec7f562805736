"""The one progress display (classifier/progress.py): plain lines with the right counts where the output is
not a terminal (a log, CI, the training job's log), tqdm's live bar on a terminal."""
from __future__ import annotations

import io
import re
import threading

import pytest

from classifier import progress as progress_module
from classifier.progress import Progress

CONTROL = re.compile(r"[\r\x1b]")  # a carriage return or the start of an escape code


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    """time.monotonic for the module, moved by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", fake)
    return fake


def plain_lines(text: str) -> list[str]:
    assert not CONTROL.search(text), repr(text)
    assert text.endswith("\n")
    return text.splitlines()


def test_off_a_terminal_a_line_every_interval_and_one_at_the_end(clock):
    out = io.StringIO()
    with Progress("feature pass 'train'", total=1000, every=10, stream=out) as progress:
        for _ in range(10):
            clock.now += 3
            progress.add(100)
    lines = plain_lines(out.getvalue())
    # added at 3, 6, ... 30 s: a line at 12, 24 (400 and 800 done), and at the end (1000)
    assert [re.match(r"feature pass 'train': (\d+)/1000 images \[", line).group(1) for line in lines] == [
        "400", "800", "1000"]
    assert lines[-1] == "feature pass 'train': 1000/1000 images [00:30<00:00, 33.33 images/s]"


def test_short_work_prints_its_last_line_only(clock):
    out = io.StringIO()
    with Progress("batch-local", total=7, stream=out) as progress:
        for _ in range(7):
            clock.now += 1
            progress.add()
    assert plain_lines(out.getvalue()) == ["batch-local: 7/7 images [00:07<00:00,  1.00 images/s]"]


def test_lines_go_to_a_function_and_never_to_the_stream(clock):
    """The training job's feature pass: its lines to the log (log.info), even with a terminal attached."""
    terminal, lines = Terminal(), []
    with Progress("feature pass 'valid'", total=50, emit=lines.append, stream=terminal) as progress:
        clock.now += 20
        progress.add(20)
        clock.now += 5
        progress.add(30)
    assert terminal.getvalue() == ""
    assert [line.split(" [")[0] for line in lines] == ["feature pass 'valid': 20/50 images",
                                                       "feature pass 'valid': 50/50 images"]
    assert not any(CONTROL.search(line) for line in lines)


def test_bytes_and_a_detail(clock):
    out = io.StringIO()
    with Progress("upload", total=64 * 2**20, unit="B", binary=True, every=1, stream=out) as progress:
        clock.now += 2
        progress.detail("1/4 files")
        progress.add(16 * 2**20)
        clock.now += 2
        progress.detail("4/4 files")
        progress.add(48 * 2**20)
    # sizes in units of 1024 bytes, the rate in tqdm's own (SI) units
    assert plain_lines(out.getvalue()) == ["upload: 16.0M/64.0MB [00:02<00:06, 8.39MB/s, 1/4 files]",
                                           "upload: 64.0M/64.0MB [00:04<00:00, 16.8MB/s, 4/4 files]"]


def test_a_status_is_printed_when_it_changes_and_every_interval_while_it_does_not(clock):
    out = io.StringIO()
    with Progress("", every=60, stream=out) as display:
        for seconds, text in ((0, "training j: InProgress / Starting"), (30, "training j: InProgress / Starting"),
                              (30, "training j: InProgress / Training"), (30, "training j: InProgress / Training"),
                              (40, "training j: InProgress / Training"), (10, "training j: Completed / Completed")):
            clock.now += seconds
            display.status(text)
        display.print("a log line", stream=out)
    assert plain_lines(out.getvalue()) == ["training j: InProgress / Starting  [00:00]",
                                           "training j: InProgress / Training  [01:00]",
                                           "training j: InProgress / Training  [02:10]",
                                           "training j: Completed / Completed  [02:20]",
                                           "a log line"]


def test_counts_from_many_threads_add_up():
    out = io.StringIO()
    with Progress("upload", total=8 * 5000, unit="B", every=0.01, stream=out) as progress:
        workers = [threading.Thread(target=lambda: [progress.add(1) for _ in range(5000)]) for _ in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    assert progress.done == 40000
    assert plain_lines(out.getvalue())[-1].startswith("upload: 40000/40000 B [")


def test_on_a_terminal_a_live_bar():
    terminal = Terminal()
    with Progress("classifying", total=40, stream=terminal) as progress:
        for _ in range(4):
            progress.add(10)
        progress.print("a line of its own", stream=terminal)
    text = terminal.getvalue()
    assert "\r" in text and "40/40" in text and "100%" in text and "a line of its own\n" in text
