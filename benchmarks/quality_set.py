"""The data and jobs directory that the quality benchmarks share."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from scripts.data import fashion_mnist
from scripts.local import jobs


@contextmanager
def quality_set(data: Path | None):
    """(a temporary directory that local jobs and their feature cache use, the data set): `data`, or the
    `make data` set with 100 test images per class (1,000: an accuracy's standard error ~1.1 points)."""
    with tempfile.TemporaryDirectory() as tmp:
        if data is None:
            data = Path(tmp) / "data"
            if fashion_mnist.main(["--out", str(data), "--test-per-class", "100"]) != 0:
                raise SystemExit(2)
        os.environ["JOBS_DIR"] = tmp
        jobs.JOBS_ROOT = Path(tmp)
        yield Path(tmp), data
