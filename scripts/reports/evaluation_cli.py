"""`make evaluate`: a model on a class-per-folder data set, from its model directory or through an
endpoint, as one HTML page (evaluation_report.py) with evaluation.json and predictions.csv next to it.

    python -m scripts.reports.evaluation_cli --model <job name | job dir | model dir | model.tar.gz> --data DIR
    python -m scripts.reports.evaluation_cli --endpoint <http://127.0.0.1:8080 | SageMaker endpoint name> --data DIR
    python -m scripts.reports.evaluation_cli --batch-output <make batch-local / batch-transform folder> --data DIR
    options: --out FILE, --batch N (images per forward pass / request), --dry-run and --settings (SageMaker)

DATA: one folder per class (the model's class names); a data set folder (train/ valid/ test/) means its
test/ folder. The report goes to build/reports/evaluation/<model or endpoint>-<data>/evaluation-report.html.
Through an endpoint and from the model directory the same images give the same numbers.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from classifier.artifact import ArtifactError
from classifier.export.formats import FormatError
from scripts import REPO_ROOT
from scripts.aws.common import open_aws, run
from scripts.batch_output import BatchError
from scripts.invoke import build_request, invoke_sagemaker, invoke_url
from scripts.local import jobs

from . import evaluation_report, metrics, predict
from .evaluation_data import EvaluationError, images

REPORTS_DIR = REPO_ROOT / "build" / "reports" / "evaluation"


def default_out(what: str, data: Path) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", what).strip("-")
    return REPORTS_DIR / f"{slug}-{data.resolve().name}" / evaluation_report.PAGE


def evaluate_model(model: str, data: str, out: Path | None = None, batch: int = predict.BATCH) -> Path:
    """MODEL= as every target resolves it (scripts/local/jobs.py); a model.tar.gz is unpacked for the evaluation
    and removed after it."""
    found = images(data)
    with jobs.opened_model(model) as directory:
        shown = model if Path(model).is_file() else str(directory)  # an archive by its name, not its unpacked copy
        print(f"Evaluating {shown} on {len(found.paths)} images of {found.folder}", file=sys.stderr)
        predictions = predict.from_model_dir(directory, found, batch, shown)
        name = model_name(model, directory)
    return _write(predictions, found.folder, out or default_out(name, found.folder), name)


def model_name(model: str, directory: Path) -> str:
    """What the report calls the model: its job's name, its folder's, or its archive's."""
    path = Path(model)
    if path.is_file():
        stem = path.name.removesuffix(".gz").removesuffix(".tar").removesuffix(".tgz")
        return f"{path.resolve().parent.name}-{stem}"
    return directory.parent.name if directory.name == "model" else directory.name


def evaluate_endpoint(url: str, data: str, out: Path | None = None, batch: int = predict.BATCH) -> Path:
    """A local endpoint (or any URL serving SageMaker's /invocations)."""
    found = images(data)
    print(f"Evaluating the endpoint {url} on {len(found.paths)} images of {found.folder}", file=sys.stderr)
    predictions = predict.from_endpoint(lambda body, kind, attributes: invoke_url(url, body, kind, attributes),
                                        f"endpoint {url}", found, batch)
    return _write(predictions, found.folder, out or default_out(f"endpoint-{url.split('://', 1)[-1]}", found.folder),
                  f"endpoint {url}")


def evaluate_batch_output(out_dir: str, data: str, out: Path | None = None) -> Path:
    """The .out files of a batch transform (local, or downloaded from S3); DATA gives the true classes."""
    folder = Path(out_dir)
    if not folder.is_dir():
        raise EvaluationError(f"BATCH_OUTPUT={out_dir} is not a directory (make batch-local or make batch-transform "
                              "writes one)")
    found = images(data)
    predictions = predict.from_batch_output(folder, found)
    name = f"batch-{folder.resolve().name}"
    return _write(predictions, found.folder, out or default_out(name, found.folder), f"batch output {folder.name}")


def _write(predictions, folder: Path, out: Path, name: str) -> Path:
    return evaluation_report.write(predictions, metrics.evaluate(predictions), folder, out,
                                   f"{name} on {folder.name}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", help="local job name or directory, model directory, or model.tar.gz")
    source.add_argument("--endpoint", help="a local endpoint's URL, or a SageMaker endpoint's name")
    source.add_argument("--batch-output", help="the .out files of make batch-local or make batch-transform")
    parser.add_argument("--data", help="class-per-folder images (or a data set folder: its test/)")
    parser.add_argument("--out", type=Path, help="report file")
    parser.add_argument("--batch", type=int, default=predict.BATCH, help="images per forward pass or request")
    parser.add_argument("--settings", help="AWS settings file (SageMaker endpoints)")
    parser.add_argument("--dry-run", action="store_true", help="SageMaker: print the first request, send nothing")
    args = parser.parse_args(argv)
    if not (args.model or args.endpoint or args.batch_output) or not args.data:
        parser.error("give MODEL=<job or model dir> (or ENDPOINT=<url or SageMaker endpoint>, or BATCH_OUTPUT=<dir>) "
                     "and DATA=<folder>")
    if not 1 <= args.batch <= 32:
        parser.error("--batch must be 1 to 32 (the endpoint takes at most 32 images per request)")
    try:
        if args.model:
            path = evaluate_model(args.model, args.data, args.out, args.batch)
        elif args.batch_output:
            path = evaluate_batch_output(args.batch_output, args.data, args.out)
        elif re.match(r"https?://", args.endpoint):
            path = evaluate_endpoint(args.endpoint, args.data, args.out, args.batch)
        else:
            return run(lambda: sagemaker(args))
    except (EvaluationError, BatchError, jobs.JobError, ArtifactError, FormatError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    say_written(path)
    return 0


def say_written(page: Path) -> None:
    numbers, rows = evaluation_report.side_files(page)
    print(f"Evaluation report: {page} (beside it: {numbers.name}, {rows.name})")


def sagemaker(args) -> int:
    """A SageMaker endpoint through InvokeEndpoint (the settings' region and profile)."""
    aws = open_aws(args)
    found = images(args.data)
    if aws.dry_run:
        body, kind = build_request([found.paths[i] for i in predict.batches(found.paths, args.batch)[0]])
        aws.call("sagemaker-runtime", "invoke_endpoint", EndpointName=args.endpoint, Body=body, ContentType=kind,
                 Accept="application/json", CustomAttributes=predict.ALL_CLASSES)
        return 0
    client = aws.client("sagemaker-runtime")
    print(f"Evaluating the SageMaker endpoint {args.endpoint} on {len(found.paths)} images of {found.folder}",
          file=sys.stderr)
    predictions = predict.from_endpoint(
        lambda body, kind, attributes: invoke_sagemaker(args.endpoint, body, kind, attributes, client=client),
        f"SageMaker endpoint {args.endpoint} ({aws.settings.region})", found, args.batch)
    path = _write(predictions, found.folder, args.out or default_out(f"sagemaker-{args.endpoint}", found.folder),
                  f"SageMaker endpoint {args.endpoint}")
    say_written(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
