"""Small file helpers shared by the debugger's writers and readers (JSON lines, atomic JSON, CSV columns)."""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path


def read_jsonl(path: Path, by_epoch: bool = True) -> list[dict]:
    """Every record. by_epoch: a later record for the same (epoch, mode) (a resumed job redoing an epoch)
    replaces the earlier one."""
    path = Path(path)
    if not path.is_file():
        return []
    records, by_key = [], {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a killed job
            continue
        key = (record.get("epoch"), record.get("mode")) if by_epoch and "epoch" in record else None
        if key is not None and key in by_key:
            records[by_key[key]] = record
        else:
            if key is not None:
                by_key[key] = len(records)
            records.append(record)
    return records


def open_append(path: Path):
    """A text handle appending to `path`; a last line cut short (a killed run) is ended first, so that the
    next record starts on a line of its own instead of spoiling it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as handle:
        if handle.tell():
            with open(path, "rb") as tail:
                tail.seek(-1, os.SEEK_END)
                if tail.read(1) != b"\n":
                    handle.write(b"\n")
    return open(path, "a", newline="")


def append_jsonl(path: Path, record: dict) -> None:
    with open_append(path) as handle:
        handle.write(json.dumps(clean(record)) + "\n")


def write_json(path: Path, data) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(clean(data), indent=1))
    os.replace(tmp, path)


def read_json(path: Path, default=None):
    path = Path(path)
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return default


def clean(value):
    """JSON-safe: NaN and infinities become strings ('nan', 'inf'), numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def number(value) -> float:
    """A recorded number back as float ('nan' and 'inf' strings included)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def read_csv_columns(path: Path) -> dict:
    """A CSV as {column: numpy float array}; empty cells are NaN. {} when the file is missing."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        return {}
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return {}
    header, body = rows[0], [r for r in rows[1:] if len(r) == len(rows[0])]
    columns = {}
    for index, name in enumerate(header):
        values = []
        for row in body:
            try:
                values.append(float(row[index]) if row[index] != "" else math.nan)
            except ValueError:
                values.append(math.nan)
        columns[name] = np.asarray(values, dtype=float)
    return columns


def read_csv_rows(path: Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))
