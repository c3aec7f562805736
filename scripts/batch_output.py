"""A batch transform's output, one layout for SageMaker transform jobs and `make batch-local`, and its summary.

A transform job over s3://bucket/prefix/ (SplitType None: one object, one request) writes, for each input
object, `<output path>/<key relative to the prefix>.out` holding the container's answer: the JSON of the
serving handler's output_fn, {"predictions": [{"classes": [{"name", "index", "probability"}, ...]}]}, with
every class (the batch asks for all of them, so the evaluation report can be built from the output).
`make batch-local` writes the same files under its output folder. An input without its .out file is a
failure. summary.json beside the .out files: images, counts per predicted class, failures, where.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scripts.invoke import CONTENT_TYPES

OUT_SUFFIX = ".out"
SUMMARY_FILE = "summary.json"
EVERY_CLASS = 1_000_000  # a top_k above any model's class count: the endpoint answers every class
GENERIC_CONTENT_TYPE = "application/x-image"  # the serving handler takes JPEG and PNG under it


class BatchError(ValueError):
    """Bad input or output of a batch transform; the message names the problem."""


def is_image(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return not base.startswith(".") and Path(base).suffix.lower() in CONTENT_TYPES


def content_type(names: list[str]) -> str:
    """One content type for a whole job: image/jpeg or image/png when all are alike, else application/x-image."""
    kinds = {CONTENT_TYPES[Path(name).suffix.lower()] for name in names}
    return kinds.pop() if len(kinds) == 1 else GENERIC_CONTENT_TYPE


def output_name(relative: str) -> str:
    """Where an input's answer goes, relative to the output folder (SageMaker's rule)."""
    return relative + OUT_SUFFIX


def local_inputs(data: str | Path) -> list[str]:
    """The JPEG and PNG images under DATA (any depth), as sorted paths relative to it."""
    folder = Path(data)
    if not str(data).strip():
        raise BatchError("DATA= is missing: give the folder of images to classify")
    if not folder.is_dir():
        raise BatchError(f"DATA={data} is not a directory (a folder of JPEG/PNG images, sub-folders included)")
    found = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    images = [name for name in found if is_image(name) and not any(part.startswith(".") for part in name.split("/"))]
    if not images:
        raise BatchError(f"DATA={data} holds no JPEG or PNG images (sub-folders included)")
    return images


def broken_links(data: str | Path) -> list[str]:
    """The links under DATA that lead to no file or folder (a missing target, or a loop), as sorted paths relative
    to it: nothing to send, but said, as the training job says them (classifier/training/data.py)."""
    folder = Path(data)
    found = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_symlink() and not p.exists()]
    return sorted(name for name in found if not any(part.startswith(".") for part in name.split("/")))


def fresh_folder(path: Path) -> Path:
    """An output folder: new or empty (the outputs of an earlier run are never overwritten)."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise BatchError(f"OUT={path} already holds files: give an empty or new folder (nothing is overwritten)")
    return path


class Outputs:
    """The .out files under a folder, found by their input's path relative to the job's input: at
    <relative>.out, else at <folders>/<relative>.out when only one file matches (outputs of a job run over a
    parent prefix; SageMaker's documentation also shows the input prefix's name in the output path)."""

    def __init__(self, out_dir: Path):
        self.root = Path(out_dir)
        self.by_suffix: dict[str, list[Path]] = defaultdict(list)
        for path in self.root.rglob("*" + OUT_SUFFIX):
            parts = path.relative_to(self.root).parts
            for start in range(1, len(parts)):
                self.by_suffix["/".join(parts[start:])].append(path)

    def find(self, relative: str) -> Path | None:
        exact = self.root / output_name(relative)
        if exact.is_file():
            return exact
        found = self.by_suffix.get(output_name(relative), [])
        return found[0] if len(found) == 1 else None


def read_output(path: Path) -> list[dict]:
    """The classes of one .out file: [{"name", "index", "probability"}, ...]."""
    try:
        document = json.loads(path.read_text())
        classes = document["predictions"][0]["classes"]
        if not classes or not all({"name", "index", "probability"} <= set(entry) for entry in classes):
            raise ValueError("no classes with name, index and probability")
    except (OSError, ValueError, KeyError, IndexError, TypeError) as error:
        raise BatchError(f"{path} is not an answer of the endpoint ({error})") from None
    return classes


def top_class(classes: list[dict]) -> dict:
    return max(classes, key=lambda entry: entry["probability"])


@dataclass
class Summary:
    source: str  # what classified the images: a transform job, a local endpoint
    output: str  # where the .out files are
    images: int
    counts: dict[str, int]  # predicted class -> images, most first
    failures: list[dict] = field(default_factory=list)  # {"input", "reason"}

    @property
    def classified(self) -> int:
        return self.images - len(self.failures)

    def text(self) -> str:
        lines = [f"{self.classified} of {self.images} images classified by {self.source}; output: {self.output}"]
        width = max((len(name) for name in self.counts), default=0)
        lines += [f"  {name:<{width}}  {count}" for name, count in self.counts.items()]
        if self.failures:
            lines.append(f"{len(self.failures)} failed:")
            lines += [f"  {item['input']}: {item['reason']}" for item in self.failures[:20]]
            if len(self.failures) > 20:
                lines.append(f"  ... and {len(self.failures) - 20} more (summary.json lists them all)")
        return "\n".join(lines)


def summarize(out_dir: Path, inputs: list[str], source: str, output: str,
              reasons: dict[str, str] | None = None) -> Summary:
    """Read each input's .out file; an input without one failed (`reasons`: why, when known)."""
    counts, failures, outputs = Counter(), [], Outputs(out_dir)
    for relative in inputs:
        path = outputs.find(relative)
        if path is None:
            failures.append({"input": relative, "reason": (reasons or {}).get(relative, "no output")})
            continue
        try:
            counts[top_class(read_output(path))["name"]] += 1
        except BatchError as error:
            failures.append({"input": relative, "reason": str(error)})
    ordered = dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    return Summary(source, output, len(inputs), ordered, failures)


def write_summary(summary: Summary, out_dir: Path) -> Path:
    path = Path(out_dir) / SUMMARY_FILE
    path.write_text(json.dumps({**asdict(summary), "classified": summary.classified}, indent=2) + "\n")
    return path


