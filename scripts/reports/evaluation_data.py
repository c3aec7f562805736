"""What an evaluation reads and produces: the model directory a MODEL= names, the images of a
class-per-folder DATA= folder with their classes, and the predictions (every class's probability for
every image), which the model directory and an endpoint produce alike (predict.py)."""
from __future__ import annotations

import csv
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from classifier.artifact import CONFIG_FILE
from classifier.training.data import DataError, scan_channel
from scripts.local import jobs

SPLITS = ("test", "valid", "train")  # a data set's folders; DATA= may name the set or one of them


class EvaluationError(ValueError):
    """Bad input for an evaluation; the message says what to give instead."""


def model_dir(model: str) -> Path:
    """MODEL=: a local job's name or directory (its model/), a model directory, or a SageMaker model.tar.gz
    (extracted into a temporary directory)."""
    path = Path(model)
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz")):
        target = Path(tempfile.mkdtemp(prefix="evaluate-model-"))
        with tarfile.open(path) as archive:
            archive.extractall(target, filter="data")
        return model_dir(str(target))
    candidates = [path, path / "model"]
    try:
        candidates.append(jobs.resolve_job(model) / "model")
    except jobs.JobError:
        pass
    for candidate in candidates:
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    raise EvaluationError(f"MODEL={model} is neither a model directory (with {CONFIG_FILE}), a local job (name or "
                          "directory, `make jobs` lists them) nor a model.tar.gz")


@dataclass(frozen=True)
class Images:
    """The images to evaluate and the name of each one's class folder."""
    folder: Path
    paths: list[Path]
    class_names: list[str]  # one per image


def images(data: str) -> Images:
    """DATA=: a class-per-folder folder, or a data set holding one (then its test/ folder, else valid/)."""
    folder = Path(data)
    if not folder.is_dir():
        raise EvaluationError(f"DATA={data} is not a directory (a folder with one sub-folder of images per class)")
    split = next((folder / s for s in SPLITS[:2] if (folder / s).is_dir() and (folder / "train").is_dir()), None)
    folder = split or folder
    try:
        channel = scan_channel("DATA", folder)
    except DataError as error:
        raise EvaluationError(str(error)) from None
    if not channel.samples:
        raise EvaluationError(f"DATA={folder} holds no JPEG or PNG images")
    return Images(folder, [p for p, _ in channel.samples], [channel.classes[i] for _, i in channel.samples])


@dataclass(frozen=True)
class FormatResult:
    """One format of a model directory on the same images: top-1 accuracy, agreement with PyTorch's top-1,
    forward speed in this process, and the accuracy gate's record (None for torch); a format the gate refused
    was not run (accuracy None)."""
    format: str
    served: bool  # the format an endpoint serves on a CPU (formats.choose)
    accuracy: float | None = None
    agreement: float | None = None
    images_per_second: float | None = None
    gate: dict | None = None


@dataclass
class Predictions:
    """Every class's probability for every image that could be classified."""
    source: str  # where they came from: the model directory, an endpoint URL, a SageMaker endpoint
    classes: list[str]  # the model's, in label order
    paths: list[Path]
    labels: np.ndarray  # each image's true class index (in `classes`)
    probabilities: np.ndarray  # (images, classes), rows sum to 1
    seconds: float  # how long classifying took
    failures: list[tuple[Path, str]] = field(default_factory=list)  # images that could not be classified
    model: dict = field(default_factory=dict)  # the model's config, when read from its directory
    formats: list[FormatResult] = field(default_factory=list)  # each format side by side (model directory only)

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)


def true_labels(found: Images, classes: list[str]) -> np.ndarray:
    """Each image's class index in the model's label order; a class folder the model lacks is an error."""
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted(set(found.class_names) - set(index))
    if unknown:
        raise EvaluationError(f"DATA={found.folder} has {len(unknown)} class folder(s) the model does not know: "
                              f"{', '.join(unknown[:10])}{' ...' if len(unknown) > 10 else ''} (the model's classes: "
                              f"{', '.join(classes[:10])}{' ...' if len(classes) > 10 else ''})")
    return np.array([index[name] for name in found.class_names], dtype=int)


def write_predictions_csv(predictions: Predictions, path: Path) -> Path:
    """One row per image: file, true class, predicted class, its probability, the true class's probability."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "true_class", "predicted_class", "probability", "true_class_probability"])
        for file, label, row in zip(predictions.paths, predictions.labels, predictions.probabilities, strict=True):
            best = int(row.argmax())
            writer.writerow([str(file), predictions.classes[label], predictions.classes[best], f"{row[best]:.6f}",
                             f"{row[label]:.6f}"])
    return path
