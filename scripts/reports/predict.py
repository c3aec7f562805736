"""Every class's probability for every image, from a model directory, through an endpoint or from a batch
transform's output; all give the same numbers for the same images.

- The model directory goes through what serving runs: the endpoint's own `load_model` and `ServingModel`
  in the format an endpoint would serve (each image through the artifact's `Preprocessing.load_for_eval`,
  probabilities as float64), in batches; every other format the artifact can serve (torch, and the
  exports the accuracy gate accepted) runs on the same batches, for its top-1 side by side.
- An endpoint (a local one by URL, a SageMaker one by name through InvokeEndpoint) gets the same batches
  as JSON `{"instances": [...]}` requests asking for every class (top_k above the class count: the
  endpoint caps it at its class count); its answers carry each class's name, index and probability.
An image that cannot be classified (not a JPEG/PNG, corrupt, too large) is listed with the reason and
left out, in both.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from classifier.export import formats  # torch-free
from classifier.progress import Progress
from scripts import batch_output
from scripts.invoke import Answer, build_request

from .evaluation_data import EvaluationError, FormatResult, Images, Predictions, true_labels

BATCH = 16  # images per forward pass and per endpoint request (the endpoint takes up to 32)
MAX_REQUEST_BYTES = 5 * 2**20  # an InvokeEndpoint body is at most 6 MiB; base64 adds a third
ALL_CLASSES = "top_k=1000000"  # more than any model's classes: the endpoint answers every class


def batches(paths: list[Path], size: int = BATCH) -> list[list[int]]:
    """Indices of `paths` in groups of at most `size` images and MAX_REQUEST_BYTES of base64."""
    groups, current, total = [], [], 0
    for index, path in enumerate(paths):
        encoded = (path.stat().st_size + 2) // 3 * 4
        if current and (len(current) == size or total + encoded > MAX_REQUEST_BYTES):
            groups.append(current)
            current, total = [], 0
        current.append(index)
        total += encoded
    return groups + ([current] if current else [])


# --- the model directory ---------------------------------------------------------------------------------

def from_model_dir(model_dir: Path, found: Images, batch: int = BATCH, name: str | None = None) -> Predictions:
    """The format an endpoint would serve on a CPU (`formats.choose`, SERVING_RUNTIME included) gives the
    predictions; every other format the artifact can serve runs on the same decoded batches, for its top-1
    accuracy side by side (`Predictions.formats`). `name`: what the report calls the model (default: the
    directory)."""
    # torch and the serving code only here: an evaluation through an endpoint needs neither
    import torch

    from classifier import runtime
    from classifier.artifact import read_config
    from classifier.preprocessing import ImageDecodeError, ImageTooLargeError
    from classifier.serving.inference import load_model
    from classifier.serving.settings import Settings

    config = read_config(model_dir)
    choice = formats.choose(config, model_dir, os.environ.get(formats.RUNTIME_ENV))
    order = [choice.format] + [fmt for fmt in formats.accepted(config) if fmt != choice.format]
    models = {fmt: load_model(model_dir, fmt, runtime.cpu_count(), max_pixels=Settings.from_env().max_pixels)
              for fmt in order}
    serving = models[choice.format]
    labels = true_labels(found, serving.classes)
    kept, rows, failures = [], [], []
    top1 = {fmt: [] for fmt in order}
    seconds = dict.fromkeys(order, 0.0)
    with Progress(f"classifying (model directory, {' + '.join(order)})", len(found.paths)) as progress:
        for group in batches(found.paths, batch):
            tensors, indices = [], []
            for index in group:
                try:
                    tensors.append(serving.preprocess(found.paths[index].read_bytes()))
                    indices.append(index)
                except (ImageDecodeError, ImageTooLargeError, OSError) as error:
                    failures.append((found.paths[index], str(error)))
            if tensors:
                images = torch.stack(tensors)
                for fmt, model in models.items():
                    started = time.perf_counter()
                    probabilities = model.forward(images).numpy()
                    seconds[fmt] += time.perf_counter() - started
                    top1[fmt].append(probabilities.argmax(axis=1))
                    if fmt == choice.format:
                        rows.append(probabilities)
                kept += indices
            progress.add(len(group))
    source = f"{name or f'model directory {model_dir}'} ({choice.format}: {choice.why})"
    predictions = _predictions(source, serving.classes, found, kept, rows, failures, progress.seconds)
    predictions.model = config
    predictions.formats = _format_results(config, choice.format, labels[kept], top1, seconds)
    return predictions


def _format_results(config: dict, served: str, labels, top1: dict, seconds: dict) -> list[FormatResult]:
    answers = {fmt: np.concatenate(parts) if parts else np.zeros(0, dtype=int) for fmt, parts in top1.items()}
    reference = answers.get(formats.TORCH)
    exported = formats.formats_in(config)
    results = []
    for fmt in formats.FORMATS:
        if fmt in answers:
            predicted = answers[fmt]
            results.append(FormatResult(
                fmt, served=fmt == served, accuracy=float((predicted == labels).mean()) if len(labels) else 0.0,
                agreement=float((predicted == reference).mean()) if len(labels) else 0.0,
                images_per_second=len(predicted) / max(seconds[fmt], 1e-9), gate=exported.get(fmt)))
        elif fmt in exported:  # refused by the gate: not run, its reason shown
            results.append(FormatResult(fmt, served=False, gate=exported[fmt]))
    return results


# --- an endpoint -------------------------------------------------------------------------------------------

Send = Callable[[bytes, str, str], Answer]  # (body, content type, custom attributes) -> the endpoint's answer


def from_endpoint(send: Send, source: str, found: Images, batch: int = BATCH) -> Predictions:
    """`send` posts one request (scripts/invoke.py's invoke_url or invoke_sagemaker, bound to an endpoint)."""
    classes: list[str] | None = None
    kept, rows, failures = [], [], []
    with Progress(f"classifying ({source})", len(found.paths)) as progress:
        for group in batches(found.paths, batch):
            answered = _ask(send, [found.paths[i] for i in group])
            if answered is None:  # an image the endpoint refused: ask for each one alone to find which
                results = [(i, _ask(send, [found.paths[i]])[0]) for i in group]
            else:
                results = list(zip(group, answered, strict=True))
            for index, result in results:
                if isinstance(result, str):
                    failures.append((found.paths[index], result))
                    continue
                names, row = result
                if classes is None:
                    classes = names
                elif names != classes:
                    raise EvaluationError(f"{source} answered with other classes for {found.paths[index]}")
                kept.append(index)
                rows.append(row[None, :])
            progress.add(len(group))
    if classes is None:
        raise EvaluationError(f"{source} classified none of the images: {failures[0][1] if failures else ''}")
    return _predictions(source, classes, found, kept, rows, failures, progress.seconds)


# --- a batch transform's output ------------------------------------------------------------------------------

def from_batch_output(out_dir: Path, found: Images) -> Predictions:
    """The .out files of `make batch-transform` (downloaded) or `make batch-local` for the images of DATA, which
    mirrors the job's input prefix (scripts/batch_output.py's layout); an image without one failed."""
    classes: list[str] | None = None
    kept, rows, failures, outputs = [], [], [], batch_output.Outputs(out_dir)
    for index, path in enumerate(found.paths):
        relative = path.relative_to(found.folder).as_posix()
        out = outputs.find(relative)
        if out is None:
            failures.append((path, f"no {batch_output.output_name(relative)} in {out_dir}"))
            continue
        names, row = _distribution(batch_output.read_output(out))
        if classes is not None and names != classes:
            raise EvaluationError(f"{out} holds other classes than the outputs before it")
        classes = names
        kept.append(index)
        rows.append(row[None, :])
    if classes is None:
        raise EvaluationError(f"BATCH_OUTPUT={out_dir} holds no .out file for the images of {found.folder}: give the "
                              "folder the transform job's input prefix mirrors as DATA")
    return _predictions(f"batch output {out_dir}", classes, found, kept, rows, failures, 0.0)


def _ask(send: Send, paths: list[Path]):
    """One request: [(class names, probabilities)] per image. An image refused (400, 413): None for a
    batch (each image is then sent alone), the refusal's message for a single image."""
    body, content_type = build_request(paths)
    answer = send(body, content_type, ALL_CLASSES)
    if answer.status != 200:
        message = _message(answer)
        if answer.status in (400, 413):
            return None if len(paths) > 1 else [f"HTTP {answer.status}: {message}"]
        raise EvaluationError(f"the endpoint answered HTTP {answer.status}: {message}")
    predictions = json.loads(answer.body)["predictions"]
    return [_distribution(p["classes"]) for p in predictions]


def _distribution(entries: list[dict]) -> tuple[list[str], np.ndarray]:
    count = max(e["index"] for e in entries) + 1
    if len(entries) != count:
        raise EvaluationError(f"the endpoint answered {len(entries)} of {count} classes: it did not send every "
                              "class's probability")
    names, row = [""] * count, np.zeros(count)
    for e in entries:
        names[e["index"]], row[e["index"]] = e["name"], e["probability"]
    return names, row


def _message(answer: Answer) -> str:
    try:
        return json.loads(answer.body).get("message") or answer.body.decode(errors="replace")
    except (ValueError, AttributeError):
        return answer.body.decode(errors="replace")[:300]


def _predictions(source, classes, found, kept, rows, failures, seconds) -> Predictions:
    order = np.argsort(kept, kind="stable")  # the images' own order, whatever the batches were
    probabilities = np.concatenate(rows)[order] if rows else np.zeros((0, len(classes)))
    kept = [kept[i] for i in order]
    return Predictions(source, list(classes), [found.paths[i] for i in kept], true_labels(found, classes)[kept],
                       probabilities, seconds, failures)
