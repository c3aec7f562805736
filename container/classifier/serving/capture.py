"""Data capture on the local endpoint: the files SageMaker's data capture writes, written by our handler.

A SageMaker endpoint with data capture on (`make deploy`, setting endpoint.data_capture) stores a share of its
requests and answers in S3 as JSON Lines, one file at a time per host, under

    <destination>/<endpoint>/<variant>/<yyyy>/<mm>/<dd>/<hh>/<mm>-<ss>-<mmm>-<uuid>.jsonl

(the hour of the requests, then the minute, second and millisecond the file was started), one record a line:

    {"captureData": {"endpointInput":  {"observedContentType": "image/jpeg", "mode": "INPUT",
                                        "data": "<base64>", "encoding": "BASE64"},
                     "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                        "data": "{\"predictions\": ...}", "encoding": "JSON"}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceTime": "2026-01-02T03:04:05Z"},
     "eventVersion": "0"}

A body whose content type is one of the capture's JSON content types (CaptureContentTypeHeader, the same list
`make deploy` sets: JSON_CONTENT_TYPES) is stored as text with encoding "JSON", anything else as base64
("BASE64"). The local endpoint writes exactly these records and this layout under a folder of this machine
(`make serve-local CAPTURE=<dir>`), sampled by the same percentage, so the monitor (scripts/monitor) reads a
local capture and a downloaded SageMaker one with the same code.

The handler must stay fast: `CaptureWriter.offer` draws the sample and queues the bodies (no copy, no
encoding, no wake-up of another thread) and returns; a thread of the worker encodes and writes what is queued
every WRITE_EVERY seconds (benchmarks/bench_capture.py measured the layouts). Each worker writes its own files
(no two processes append to one file), a new one each hour. If the thread falls behind by more than
`max_pending_bytes`, records are dropped and counted rather than held: capture never slows or stops serving.
"""
from __future__ import annotations

import atexit
import base64
import json
import logging
import queue
import random
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Callable

log = logging.getLogger(__name__)

VARIANT = "AllTraffic"  # the one production variant `make deploy` makes; the local capture's folder too
JSON_CONTENT_TYPES = ("application/json",)  # CaptureContentTypeHeader.JsonContentTypes of make deploy's config
CSV_CONTENT_TYPES: tuple[str, ...] = ()  # ... and its CsvContentTypes: none
EVENT_VERSION = "0"
INPUT, OUTPUT = "INPUT", "OUTPUT"
ENCODINGS = ("BASE64", "JSON", "CSV")
DEFAULT_ENDPOINT = "local"  # the endpoint's folder in a local capture
MAX_PENDING_BYTES = 64 * 1024 * 1024  # bodies queued for the writer thread before records are dropped
WRITE_EVERY = 0.5  # seconds between the writer thread's turns (SageMaker itself delivers captures minutes later)


def media_type(content_type: str | None) -> str:
    """`Application/JSON; charset=utf-8` -> `application/json`."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def encode(body: bytes, content_type: str, mode: str) -> dict:
    """One side of a record: the body as text for a JSON or CSV content type (base64 when it is not UTF-8
    text), else base64."""
    kind = media_type(content_type)
    encoding = "JSON" if kind in JSON_CONTENT_TYPES else "CSV" if kind in CSV_CONTENT_TYPES else "BASE64"
    if encoding != "BASE64":
        try:
            data = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            encoding = "BASE64"
    if encoding == "BASE64":
        data = base64.b64encode(body).decode("ascii")
    return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}


def inference_time(moment: float) -> str:
    """A Unix time as a record's inferenceTime: UTC to the second, `Z`."""
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def record(request: bytes, request_type: str, response: bytes, response_type: str, event_id: str,
           moment: float) -> dict:
    """A capture record, field for field as SageMaker writes it."""
    return {"captureData": {"endpointInput": encode(request, request_type, INPUT),
                            "endpointOutput": encode(response, response_type, OUTPUT)},
            "eventMetadata": {"eventId": event_id, "inferenceTime": inference_time(moment)},
            "eventVersion": EVENT_VERSION}


def hour_folder(root: Path, endpoint: str, moment: float, variant: str = VARIANT) -> Path:
    """<root>/<endpoint>/<variant>/<yyyy>/<mm>/<dd>/<hh> of a Unix time (UTC)."""
    when = datetime.fromtimestamp(moment, timezone.utc)
    return Path(root) / endpoint / variant / when.strftime("%Y/%m/%d/%H")


def file_name(moment: float) -> str:
    """<mm>-<ss>-<mmm>-<uuid>.jsonl: when the file was started, and a random id."""
    when = datetime.fromtimestamp(moment, timezone.utc)
    return f"{when:%M-%S}-{when.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"


def event_id(request_id: str | None) -> str:
    """The request's id when it is a UUID (MMS's ids are), else a new one: eventId is a UUID."""
    try:
        return str(uuid.UUID(str(request_id)))
    except (ValueError, TypeError):
        return str(uuid.uuid4())


class CaptureError(ValueError):
    """The capture folder cannot be written."""


def check_directory(root: Path) -> Path:
    """Make the capture folder (or say why it cannot be): before the server starts."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-test-{uuid.uuid4()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise CaptureError(f"cannot write the data capture to {root}: {error.strerror or error}") from None
    return root


@dataclass
class _Pending:
    moment: float
    event_id: str
    request: bytes
    request_type: str
    response: bytes
    response_type: str
    size: int


class CaptureWriter:
    """A worker's data capture: `offer` each request and answer; `percent` of them are written."""

    def __init__(self, root: Path, endpoint: str = DEFAULT_ENDPOINT, percent: int = 100,
                 max_pending_bytes: int = MAX_PENDING_BYTES, draw: Callable[[], float] = random.random):
        if not 0 <= percent <= 100:
            raise ValueError(f"capture percent {percent} is not between 0 and 100")
        self.root, self.endpoint, self.percent = Path(root), endpoint, percent
        self.max_pending_bytes, self.draw = max_pending_bytes, draw
        self.written = self.dropped = self.failed = 0
        self._pending_bytes = 0
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._file: IO[str] | None = None
        self._file_hour: Path | None = None
        self._closed = False

    # --- the handler's side: cheap ------------------------------------------------------------------
    def offer(self, request: bytes, request_type: str | None, response: bytes | str, response_type: str,
              moment: float, request_id: str | None = None) -> bool:
        """Queue this request and its answer for writing, if it is drawn (`percent`); returns whether it was."""
        if self._closed or self.draw() * 100 >= self.percent:
            return False
        if isinstance(response, str):
            response = response.encode("utf-8")
        size = len(request) + len(response)
        with self._lock:
            if self._pending_bytes + size > self.max_pending_bytes:
                self.dropped += 1
                if self.dropped & (self.dropped - 1) == 0:  # the 1st, 2nd, 4th, 8th... drop: a line, not a flood
                    log.warning("data capture: %d record(s) dropped so far: the writer is %d bytes behind",
                                self.dropped, self._pending_bytes)
                return False
            self._pending_bytes += size
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="data-capture", daemon=True)
                self._thread.start()
                atexit.register(self.close)
        self._queue.put(_Pending(moment, event_id(request_id), request, request_type or "application/octet-stream",
                                 response, response_type, size))
        return True

    # --- the writer thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        """Every WRITE_EVERY seconds, write what was queued and flush it. The thread is not woken per request: a
        wake-up on each `offer` would hand the CPU to it in the middle of the handler's request."""
        while not self._stop.wait(WRITE_EVERY):
            self._write_queued()
        self._write_queued()

    def _write_queued(self) -> None:
        written = []
        while True:
            try:
                written.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if not written:
            return
        for pending in written:
            self._write(pending)
        self._flush()
        with self._lock:  # on disk (or given up): no longer pending
            self._pending_bytes -= sum(pending.size for pending in written)

    def _write(self, pending: _Pending) -> None:
        line = json.dumps(record(pending.request, pending.request_type, pending.response, pending.response_type,
                                 pending.event_id, pending.moment), separators=(",", ":")) + "\n"  # as SageMaker's
        try:
            self._open_for(pending.moment).write(line)
            self.written += 1
        except OSError as error:  # a full disk, say: count it, keep serving
            self.failed += 1
            if self.failed & (self.failed - 1) == 0:
                log.warning("data capture: %d record(s) not written so far: %s", self.failed, error)
            self._close_file()

    def _open_for(self, moment: float) -> IO[str]:
        folder = hour_folder(self.root, self.endpoint, moment)
        if self._file is None or folder != self._file_hour:
            self._close_file()
            folder.mkdir(parents=True, exist_ok=True)
            self._file = open(folder / file_name(moment), "a", encoding="utf-8")
            self._file_hour = folder
        return self._file

    def _flush(self) -> None:
        if self._file is not None:
            try:
                self._file.flush()
            except OSError as error:
                log.warning("data capture: flushing failed: %s", error)
                self._close_file()

    def _close_file(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
        self._file, self._file_hour = None, None

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued and close the file (at exit; tests)."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout)
        self._close_file()

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until every queued record is written (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._pending_bytes == 0:
                    return
            time.sleep(0.005)
