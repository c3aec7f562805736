"""The monitor's computation: a capture's requests turned into the images they carried and the answers the
endpoint gave; the model run once over every image, batched (classifier.monitoring.observe, as the training job
ran it for the baseline: the same decoding, preprocessing, features and projection); the five drift checks
(drift.py); how unusual each image is; and a timeline of the window.

Unusual: the distance from an image's projected embedding to its K_NEAREST-th nearest baseline image, ranked
among the same distances of the baseline's own images (each to the others): a conformal p-value, so about 5 %
of the images of an unshifted window fall under 0.05. The report shows the lowest ones, and per time bucket
the share under UNUSUAL.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from classifier.monitoring.baseline import Baseline, BaselineError
from classifier.monitoring.images import columns
from scripts.reports.endpoint_data import bucket_for

from . import drift
from .capture_data import Capture, Problem

K_NEAREST = 5
UNUSUAL = 0.05  # conformal p-value under which an image counts as unusual
MAX_IMAGES = 5000  # images of a window run through the model; a seeded sample of them beyond
MAX_INSTANCES = 10 ** 6  # the endpoint refused what it would not take; here every instance is read
BATCH = 32


@dataclass
class CapturedImage:
    request: int  # its request's index in capture.requests
    where: str  # <file>:<line>, and which instance of a JSON request
    time: datetime
    data: bytes
    served: str | None  # the endpoint's top class for it, from the captured answer


@dataclass
class Health:
    """What the capture says about the endpoint besides drift: its errors and what it could not read."""

    requests: int = 0
    answered: int = 0  # requests whose answer is in the capture
    errors: dict[str, int] = field(default_factory=dict)  # status code -> captured answers with it
    not_images: list[Problem] = field(default_factory=list)  # bodies the endpoint's request parser refuses
    undecodable: list[Problem] = field(default_factory=list)  # images the decoder refuses
    unreadable_answers: int = 0
    agreement: float | None = None  # share of images whose served top class is the monitor's
    sampled: int | None = None  # images left out of a window over MAX_IMAGES
    error_times: list[datetime] = field(default_factory=list)  # when each error answer was given

    @property
    def error_share(self) -> float | None:
        return sum(self.errors.values()) / self.answered if self.answered else None


@dataclass
class Timeline:
    bucket_seconds: int
    times: list[datetime]
    images: list[int]
    errors: list[int]
    mean_top1: list[float]  # nan: no image in the bucket
    low_share: list[float]
    unusual_share: list[float]


@dataclass
class Analysis:
    capture: Capture
    baseline: Baseline
    model: str  # the model directory
    images: list[CapturedImage]  # the ones observed, aligned with the arrays
    embeddings: np.ndarray  # (M, K)
    predicted: np.ndarray  # (M,)
    top1: np.ndarray  # (M,)
    stats: dict[str, np.ndarray]
    unusual: np.ndarray  # (M,) conformal p-values
    checks: list[drift.Check]
    health: Health
    timeline: Timeline | None
    alpha: float
    threshold: float
    seconds: float

    @property
    def drift(self) -> bool:
        return drift.any_drift(self.checks)

    @property
    def decided(self) -> bool:
        """False when no check could decide (too few images in the window)."""
        return any(check.drift is not None for check in self.checks)

    @property
    def classes(self) -> list[str]:
        return self.baseline.classes


def answer_of(response: bytes | None) -> tuple[int | None, list[str | None]]:
    """(status, each image's served top class) of a captured answer: 200 and the classes of a prediction, the
    code of an error body ({"code", "type", "message"}), None when there is no answer or it cannot be read."""
    if response is None:
        return None, []
    try:
        document = json.loads(response)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return None, []
    if isinstance(document, dict) and isinstance(document.get("predictions"), list):
        served = []
        for prediction in document["predictions"]:
            classes = prediction.get("classes") if isinstance(prediction, dict) else None
            served.append(classes[0].get("name") if isinstance(classes, list) and classes
                          and isinstance(classes[0], dict) else None)
        return 200, served
    if isinstance(document, dict) and isinstance(document.get("code"), int):
        return document["code"], []
    return None, []


def images_of(capture: Capture) -> tuple[list[CapturedImage], Health]:
    """The images the captured requests carried, as the endpoint's own request parser reads them
    (classifier.serving.inference.input_fn), with the endpoint's answer for each."""
    from classifier.serving.inference import RequestError, input_fn  # torch: only where images are read

    found, health = [], Health(requests=len(capture.requests))
    errors: Counter[str] = Counter()
    for index, request in enumerate(capture.requests):
        status, served = answer_of(request.response)
        if request.response is not None:
            health.answered += 1
            if status is None:
                health.unreadable_answers += 1
            elif status >= 400:
                errors[str(status)] += 1
                health.error_times.append(request.time)
        try:
            batch = input_fn(request.request, request.request_type, MAX_INSTANCES)
        except RequestError as error:
            health.not_images.append(Problem(request.where, f"{request.request_type or 'no content type'}: "
                                                            f"{error.message}"))
            continue
        for position, (data, source) in enumerate(zip(batch.images, batch.sources, strict=True)):
            where = request.where if len(batch.images) == 1 else f"{request.where} {source}"
            found.append(CapturedImage(index, where, request.time, data,
                                       served[position] if position < len(served) else None))
    health.errors = dict(sorted(errors.items()))
    return found, health


def load_model(model_dir: Path):
    """The artifact's torch model and preprocessing, and its baseline (whose classes must be the model's)."""
    from classifier.artifact import load_artifact

    baseline = Baseline.load(model_dir)
    model, config, preprocessing = load_artifact(model_dir)
    if list(config["classes"]) != baseline.classes:
        raise BaselineError(f"{model_dir}: the baseline's classes differ from the model's: make it again with "
                            f"`make monitor-baseline MODEL={model_dir} DATA=...`")
    return model, preprocessing, baseline


def knn_distances(points: np.ndarray, reference: np.ndarray, k: int, itself: bool = False) -> np.ndarray:
    """Each point's distance to its k-th nearest reference point (`itself`: the points are the reference, each
    one's own zero distance is skipped)."""
    k = min(k + int(itself), len(reference))
    found = np.zeros(len(points))
    if not len(points) or not k:
        return found
    squared_reference = (reference ** 2).sum(axis=1)
    for start in range(0, len(points), 1024):
        chunk = points[start:start + 1024].astype(np.float64)
        squared = (chunk ** 2).sum(axis=1)[:, None] + squared_reference[None, :] - 2 * chunk @ reference.T
        found[start:start + 1024] = np.sqrt(np.maximum(np.partition(squared, k - 1, axis=1)[:, k - 1], 0))
    return found


def unusual_p_values(baseline: np.ndarray, seen: np.ndarray, k: int = K_NEAREST) -> np.ndarray:
    """Conformal p-values of the seen embeddings' k-NN distances among the baseline's own."""
    reference = np.sort(knn_distances(baseline, baseline.astype(np.float64), k, itself=True))
    distances = knn_distances(seen, baseline.astype(np.float64), k)
    at_least = len(reference) - np.searchsorted(reference, distances, side="left")
    return (1 + at_least) / (len(reference) + 1)


def timeline(images: list[CapturedImage], top1: np.ndarray, unusual: np.ndarray, capture: Capture,
             error_times: list[datetime], threshold: float) -> Timeline | None:
    moments = [image.time for image in images] + error_times
    if not moments:
        return None
    start, end = capture.since or min(moments), capture.until or max(moments)
    bucket = bucket_for(max((end - start).total_seconds(), 1))
    origin = datetime.fromtimestamp(int(start.timestamp() // bucket) * bucket, timezone.utc)
    count = int((end - origin).total_seconds() // bucket) + 1
    slot = np.array([int((image.time - origin).total_seconds() // bucket) for image in images], dtype=int)
    slot = np.clip(slot, 0, count - 1)

    def per_bucket(values: np.ndarray) -> list[float]:
        return [float(values[slot == i].mean()) if (slot == i).any() else float("nan") for i in range(count)]

    errors = [0] * count
    for moment in error_times:
        errors[min(max(int((moment - origin).total_seconds() // bucket), 0), count - 1)] += 1
    return Timeline(bucket, [origin + timedelta(seconds=bucket * i) for i in range(count)],
                    np.bincount(slot, minlength=count).tolist(), errors, per_bucket(top1),
                    per_bucket((top1 < threshold).astype(float)), per_bucket((unusual < UNUSUAL).astype(float)))


def analyse(capture: Capture, model_dir: Path, alpha: float = drift.ALPHA, threshold: float = drift.LOW_CONFIDENCE,
            max_images: int = MAX_IMAGES, batch: int = BATCH) -> Analysis:
    """The whole computation for one window of a capture, against the baseline in `model_dir`."""
    from classifier.monitoring.observe import PassSettings, observe

    started = time.monotonic()
    model, preprocessing, baseline = load_model(model_dir)
    images, health = images_of(capture)
    if len(images) > max_images:  # a seeded sample, in time order
        keep = np.sort(np.random.default_rng(0).choice(len(images), size=max_images, replace=False))
        health.sampled = len(images) - max_images
        images = [images[i] for i in keep]
    seen = observe(model, [image.data for image in images], preprocessing,
                   what=f"monitor: {len(images)} captured images", settings=PassSettings(batch))
    health.undecodable = [Problem(images[index].where, reason) for index, reason in seen.failures]
    images = [images[index] for index in seen.kept]
    embeddings = (seen.features @ baseline.projection).astype(np.float32)
    predicted, top1, stats = seen.predicted, seen.top1, columns(seen.stats)
    served = [(image.served, baseline.classes[int(p)]) for image, p in zip(images, predicted, strict=True)
              if image.served is not None]
    health.agreement = sum(a == b for a, b in served) / len(served) if served else None
    unusual = unusual_p_values(baseline.embeddings, embeddings)
    checks = drift.run_checks(baseline, embeddings, predicted, top1, stats, alpha, threshold)
    return Analysis(capture=capture, baseline=baseline, model=str(model_dir), images=images, embeddings=embeddings,
                    predicted=predicted, top1=top1, stats=stats, unusual=unusual, checks=checks, health=health,
                    timeline=timeline(images, top1, unusual, capture, health.error_times, threshold), alpha=alpha,
                    threshold=threshold, seconds=time.monotonic() - started)
