"""Reading a data capture: SageMaker's JSON Lines files (the record and the layout are in
classifier/serving/capture.py, which writes them for the local endpoint) under a folder: a local endpoint's
`CAPTURE=<dir>`, or a SageMaker endpoint's capture downloaded from S3 (capture_aws.py) into the same layout.

The folder may be the capture's root (<endpoint>/<variant>/<yyyy>/<mm>/<dd>/<hh>/*.jsonl under it), one
endpoint's or one variant's folder, or any folder of .jsonl files. A window (`since`, `until`) keeps the records
whose inferenceTime falls in it; hour folders wholly outside it are not read. Nothing in a capture stops the
reading: a line that is not JSON (a file cut off while it was written), a record without the fields SageMaker
writes, a body that does not decode: each is a `Problem` with its file and line, and the rest is read.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from classifier.serving import capture as capture_format


class CaptureError(ValueError):
    """A capture that cannot be read at all (no such folder, several endpoints mixed); the message says why."""


@dataclass
class CapturedRequest:
    time: datetime
    event_id: str
    request_type: str
    request: bytes
    response_type: str | None  # None: the capture holds requests only (CaptureMode Input)
    response: bytes | None
    where: str  # <file>:<line>


@dataclass
class Problem:
    where: str
    what: str


@dataclass
class Capture:
    source: str  # the folder, or the S3 prefix it was downloaded from
    endpoint: str | None = None
    variant: str | None = None
    since: datetime | None = None  # the window asked for; None: open
    until: datetime | None = None
    files: int = 0
    requests: list[CapturedRequest] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    outside: int = 0  # records read and left out: outside the window

    @property
    def start(self) -> datetime | None:
        return self.since or (self.requests[0].time if self.requests else None)

    @property
    def end(self) -> datetime | None:
        return self.until or (self.requests[-1].time if self.requests else None)


HOUR_PARTS = re.compile(r"\d{4}/\d{2}/\d{2}/\d{2}")


def layout(relative: Path) -> tuple[str | None, str | None, datetime | None]:
    """(endpoint, variant, hour) of a file's path below the folder read, where it follows SageMaker's layout."""
    parts = relative.parts[:-1]
    for start in range(len(parts) - 3):
        if HOUR_PARTS.fullmatch("/".join(parts[start:start + 4])):
            try:
                hour = datetime(*map(int, parts[start:start + 4]), tzinfo=timezone.utc)
            except ValueError:
                return None, None, None
            endpoint = parts[start - 2] if start >= 2 else None
            variant = parts[start - 1] if start >= 1 else None
            return endpoint, variant, hour
    return None, None, None


def decode_body(side: dict, name: str) -> tuple[str, bytes]:
    """(content type, body) of endpointInput or endpointOutput; ValueError says what is wrong."""
    if not isinstance(side, dict):
        raise ValueError(f"{name} is not an object")
    content_type, data, encoding = side.get("observedContentType"), side.get("data"), side.get("encoding")
    if not isinstance(data, str):
        raise ValueError(f"{name}.data is missing")
    if encoding == "BASE64":
        try:
            return str(content_type or ""), base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{name}.data is not valid base64") from None
    if encoding in ("JSON", "CSV"):
        return str(content_type or ""), data.encode("utf-8")
    raise ValueError(f"{name}.encoding is {encoding!r}, not one of {', '.join(capture_format.ENCODINGS)}")


def parse_record(line: str, where: str) -> CapturedRequest:
    """One line of a capture file; ValueError says what is wrong with it."""
    try:
        document = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"not a JSON record ({error.msg} at character {error.pos}: a line cut off while it "
                         f"was written?)") from None
    except RecursionError:
        raise ValueError("not a capture record (nested too deeply)") from None
    if not isinstance(document, dict) or not isinstance(document.get("captureData"), dict):
        raise ValueError("not a capture record (no captureData)")
    data, metadata = document["captureData"], document.get("eventMetadata")
    if "endpointInput" not in data:
        raise ValueError("no captureData.endpointInput: the capture holds answers only (CaptureMode Output)")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("inferenceTime"), str):
        raise ValueError("no eventMetadata.inferenceTime")
    try:
        moment = datetime.fromisoformat(metadata["inferenceTime"].replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"eventMetadata.inferenceTime {metadata['inferenceTime']!r} is not a time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    request_type, request = decode_body(data["endpointInput"], "endpointInput")
    response_type = response = None
    if "endpointOutput" in data:
        response_type, response = decode_body(data["endpointOutput"], "endpointOutput")
    return CapturedRequest(moment.astimezone(timezone.utc), str(metadata.get("eventId", "")), request_type, request,
                           response_type, response, where)


def read(folder: Path, since: datetime | None = None, until: datetime | None = None,
         source: str | None = None) -> Capture:
    """Every record of the capture files under `folder` within [since, until), sorted by time."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CaptureError(f"CAPTURE={folder} is not a folder: give the folder `make serve-local CAPTURE=...` wrote "
                           "(or a SageMaker capture downloaded with its layout)")
    found = Capture(source or str(folder), since=since, until=until)
    origins = set()
    for path in sorted(folder.rglob("*.jsonl")):
        endpoint, variant, hour = layout(path.relative_to(folder))
        if hour is not None and ((since and hour + timedelta(hours=1) <= since) or (until and hour >= until)):
            continue  # the whole hour is outside the window
        found.files += 1
        kept = _read_file(path, folder, found)
        if kept and (endpoint or variant):
            origins.add((endpoint, variant))
    if len(origins) > 1:
        listing = ", ".join(f"{e or '?'}/{v or '?'}" for e, v in sorted(origins, key=str))
        raise CaptureError(f"{folder} holds the captures of several endpoints or variants ({listing}): give the "
                           f"folder of one of them")
    if origins:
        found.endpoint, found.variant = next(iter(origins))
    found.requests.sort(key=lambda request: request.time)
    return found


def _read_file(path: Path, folder: Path, found: Capture) -> int:
    """Add one file's records in the window to `found`; returns how many."""
    name, kept = path.relative_to(folder).as_posix(), 0
    try:
        handle = open(path, encoding="utf-8", errors="replace")
    except OSError as error:
        found.problems.append(Problem(name, f"cannot be read: {error.strerror or error}"))
        return 0
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{name}:{number}"
            try:
                request = parse_record(line, where)
            except ValueError as error:
                found.problems.append(Problem(where, str(error)))
                continue
            if (found.since and request.time < found.since) or (found.until and request.time >= found.until):
                found.outside += 1
                continue
            found.requests.append(request)
            kept += 1
    return kept
