"""Serving limits and sizes, from the environment (every one has a default that suits SageMaker).

| variable                          | default          | meaning                                             |
|-----------------------------------|------------------|-----------------------------------------------------|
| SAGEMAKER_MAX_PAYLOAD_IN_MB       | 6                | largest request body, MiB (InvokeEndpoint's limit)  |
| SAGEMAKER_MODEL_SERVER_WORKERS    | by format (below)| MMS worker processes                                |
| CLASSIFIER_THREADS_PER_WORKER     | CPUs / workers   | torch or OpenVINO threads in each worker (else      |
|                                   |                  | OMP_NUM_THREADS when that is set)                   |
| SERVING_RUNTIME                   | fastest accepted | torch, fp32 or int8 (classifier/export/formats.py)  |
| CLASSIFIER_MAX_PIXELS             | 40,000,000       | larger images are refused (decompression bombs)     |
| CLASSIFIER_MAX_REQUEST_PIXELS     | 100,000,000      | pixels one request's images decode to, all together |
|                                   |                  | (read from their headers before any is decoded)     |
| CLASSIFIER_MAX_INSTANCES          | 32               | images in one JSON request                          |
| CLASSIFIER_DEFAULT_TOP_K          | 3                | classes returned when the request names no top_k    |
| SAGEMAKER_BIND_TO_PORT            | 8080             | the endpoint's port (nginx)                         |
| CLASSIFIER_BIND_HOST              | 0.0.0.0          | the address it listens on (127.0.0.1: this machine) |
| CLASSIFIER_CAPTURE_DIR            | (none: off)      | SageMaker's capture files go here (capture.py)      |
| CLASSIFIER_CAPTURE_PERCENT        | 100              | share of requests captured, %                       |
| CLASSIFIER_CAPTURE_ENDPOINT       | local            | the endpoint's folder in the capture                |
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..export.formats import FP32, INT8, TORCH  # torch-free
from ..preprocessing import DEFAULT_MAX_PIXELS  # torch-free (PIL, which serve's model check imports anyway)
from .capture import DEFAULT_ENDPOINT  # torch-free

MIB = 1024 * 1024
DEFAULT_PORT = 8080  # where SageMaker sends /ping and /invocations; local endpoints take it too
# Workers per usable CPU for each format served, measured by benchmarks/bench_endpoint.py (the in-process layout
# comparison, docs/measurements.md): one single-threaded worker per CPU gives each format the most images/s
# under concurrent load, and a worker never waits for another's request; a single client still gets one core.
WORKERS_PER_CPU = {TORCH: 1, FP32: 1, INT8: 1}
# What one request may cost to decode, all its images together: 32 images of the largest size allowed would
# hold a worker for seconds while /ping says healthy. 2.5 of the largest images; a JPEG counts at the reduced
# scale it is decoded at, so a batch of 32 phone photos is far below it (docs/measurements.md).
DEFAULT_MAX_REQUEST_PIXELS = 100_000_000
REQUEST_PIXELS_ENV = "CLASSIFIER_MAX_REQUEST_PIXELS"
DEFAULT_MAX_PAYLOAD_MB = 6  # InvokeEndpoint: 6 MiB = 6,291,456 bytes


# Where a worker writes why the model cannot be loaded (a bad artifact: every worker would fail the same way);
# `serve` sets it for the workers, stops the servers and exits 1 with the reason, instead of workers that
# MMS restarts forever while /invocations never answers.
LOAD_FAILURE_ENV = "CLASSIFIER_LOAD_FAILURE_FILE"

MAX_MMS_PORT = 32766  # MMS refuses to bind 32767 and above ("Invalid port number"); nginx has no such limit


class SettingsError(ValueError):
    pass


def _int_env(env, name: str, default: int | None, minimum: int = 1) -> int | None:
    raw = str(env.get(name, "")).strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise SettingsError(f"{name}={value} must be at least {minimum}")
    return value


def usable_cpus() -> int:
    """CPUs this process may use: the affinity mask, further limited by a cgroup v2/v1 CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cpus = min(cpus, max(1, int(quota + 0.5)))
    return max(1, cpus)


def _cgroup_cpu_quota() -> float | None:
    try:
        with open("/sys/fs/cgroup/cpu.max") as handle:  # cgroup v2: "max 100000" or "200000 100000"
            quota, period = handle.read().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as q, open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as p:
            quota, period = int(q.read()), int(p.read())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class Settings:
    max_body_bytes: int
    max_pixels: int
    max_request_pixels: int
    max_instances: int
    default_top_k: int
    workers: int
    threads_per_worker: int
    port: int = DEFAULT_PORT
    host: str = "0.0.0.0"
    capture_dir: str = ""  # empty: no data capture
    capture_percent: int = 100
    capture_endpoint: str = DEFAULT_ENDPOINT

    @classmethod
    def from_env(cls, env=None, fmt: str = TORCH) -> "Settings":
        """The settings for serving format `fmt` (its default workers x threads), from the environment."""
        env = os.environ if env is None else env
        port = _int_env(env, "SAGEMAKER_BIND_TO_PORT", DEFAULT_PORT)
        if port > 65535:
            raise SettingsError(f"SAGEMAKER_BIND_TO_PORT={port} is not a TCP port (1 to 65535)")
        cpus = usable_cpus()
        workers = _int_env(env, "SAGEMAKER_MODEL_SERVER_WORKERS", max(1, round(cpus * WORKERS_PER_CPU[fmt])))
        threads = _int_env(env, "CLASSIFIER_THREADS_PER_WORKER",
                           _int_env(env, "OMP_NUM_THREADS", max(1, cpus // workers)))
        return cls(
            max_body_bytes=_int_env(env, "SAGEMAKER_MAX_PAYLOAD_IN_MB", DEFAULT_MAX_PAYLOAD_MB) * MIB,
            max_pixels=_int_env(env, "CLASSIFIER_MAX_PIXELS", DEFAULT_MAX_PIXELS),
            max_request_pixels=_int_env(env, REQUEST_PIXELS_ENV, DEFAULT_MAX_REQUEST_PIXELS),
            max_instances=_int_env(env, "CLASSIFIER_MAX_INSTANCES", 32),
            default_top_k=_int_env(env, "CLASSIFIER_DEFAULT_TOP_K", 3),
            workers=workers,
            threads_per_worker=threads,
            port=port,
            host=str(env.get("CLASSIFIER_BIND_HOST", "")).strip() or "0.0.0.0",
            capture_dir=str(env.get("CLASSIFIER_CAPTURE_DIR", "")).strip(),
            capture_percent=_capture_percent(env),
            capture_endpoint=_capture_endpoint(env),
        )


def _capture_percent(env) -> int:
    percent = _int_env(env, "CLASSIFIER_CAPTURE_PERCENT", 100, minimum=0)
    if percent > 100:
        raise SettingsError(f"CLASSIFIER_CAPTURE_PERCENT={percent} is not a percentage (0 to 100)")
    return percent


def _capture_endpoint(env) -> str:
    name = str(env.get("CLASSIFIER_CAPTURE_ENDPOINT", "")).strip() or DEFAULT_ENDPOINT
    if not re.fullmatch(r"[A-Za-z0-9](-*[A-Za-z0-9])*", name):
        raise SettingsError(f"CLASSIFIER_CAPTURE_ENDPOINT={name!r} is not an endpoint name (letters, digits, hyphens)")
    return name
