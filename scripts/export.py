"""`make export`: the training job's last step (OpenVINO fp32 + int8, each judged by the accuracy gate,
classifier/export) for a model that already exists.

    python -m scripts.export --model <local job | job dir | model dir | model.tar.gz> [--data <data set>]

- A local job (name or directory): its model/ is exported in place, calibrated on the job's own train
  channel and judged on its valid channel (`--data` names another data set).
- A model directory: in place; `--data` (a data set with train/ and valid/) is needed.
- A model.tar.gz (a SageMaker training job's output, downloaded): it is left as it is; the model is
  extracted to build/export/<archive name>-<time>/model/, exported there and packed again as
  build/export/<archive name>-<time>/model.tar.gz, ready to be uploaded as a model's ModelDataUrl.
In place, nothing training saved changes: model.pth stays, model_config.json gains `exports`, and the
formats go to model/openvino/ (an earlier export there is replaced once the new one is judged).
"""
from __future__ import annotations

import argparse
import logging
import sys
import tarfile
from pathlib import Path

from classifier.artifact import CONFIG_FILE, ArtifactError, read_config
from classifier.export.main import CALIBRATION_IMAGES, describe, export_model
from classifier.training.data import DataError, scan_channel
from scripts import REPO_ROOT, orchestration
from scripts.local import jobs

OUT_DIR = REPO_ROOT / "build" / "export"


class ExportError(ValueError):
    """Bad input for an export; the message says what to give instead."""


def resolve(model: str, data: str | None, out_dir: Path = OUT_DIR) -> tuple[Path, Path, Path, Path | None]:
    """(model dir, train dir, valid dir, archive to write or None) for MODEL= and DATA=; a model.tar.gz is
    extracted to a new folder in `out_dir`."""
    path = Path(model)
    archive = None
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz")):
        stem = path.name.removesuffix(".gz").removesuffix(".tar").removesuffix(".tgz")
        work = out_dir / f"{stem}-{orchestration.timestamp()}"
        model_dir = work / "model"
        model_dir.mkdir(parents=True)
        with tarfile.open(path) as tar:
            tar.extractall(model_dir, filter="data")
        archive = work / "model.tar.gz"
        channels = None
    else:
        try:
            job = jobs.resolve_job(model)
        except jobs.JobError:
            job = None
        model_dir = job / "model" if job else path
        channels = job / "input" / "data" if job else None
    if not (model_dir / CONFIG_FILE).is_file():
        raise ExportError(f"MODEL={model} is neither a local job (`make jobs` lists them), a model directory (with "
                          f"{CONFIG_FILE}) nor a model.tar.gz holding one")
    if data:
        channels = Path(data)
    if channels is None:
        raise ExportError(f"give DATA=<data set with train/ and valid/> for MODEL={model}: the int8 calibration uses "
                          "its training images and the accuracy gate its valid images")
    for split in ("train", "valid"):
        if not (channels / split).is_dir():
            raise ExportError(f"{channels / split} is not a directory: DATA must be a data set with train/ and valid/")
    return model_dir, channels / "train", channels / "valid", archive


def pack(model_dir: Path, archive: Path) -> None:
    """The model directory's files at the archive's top level, as SageMaker packs /opt/ml/model."""
    with tarfile.open(archive, "w:gz") as tar:
        for item in sorted(model_dir.iterdir()):
            tar.add(item, arcname=item.name)


def run(model: str, data: str | None = None, calibration_images: int = CALIBRATION_IMAGES, out_dir: Path = OUT_DIR
        ) -> Path:
    """Export MODEL=; returns the model dir exported in place, or the new archive for a model.tar.gz."""
    model_dir, train_dir, valid_dir, archive = resolve(model, data, out_dir)
    classes = read_config(model_dir)["classes"]
    train, valid = scan_channel("train", train_dir, classes), scan_channel("valid", valid_dir, classes)
    print(f"export: {model_dir}, calibrated on {train_dir}, judged on {len(valid)} images of {valid_dir}", flush=True)
    exports = export_model(model_dir, train, valid, calibration_images)
    for fmt, entry in exports["formats"].items():
        print(f"export: {describe(fmt, entry)}")
    print(f"export: PyTorch's top-1 on the same images {100 * exports['torch']['accuracy']:.1f} %; "
          f"{exports['seconds']:.0f} s; {model_dir / CONFIG_FILE} records it")
    if archive is not None:
        pack(model_dir, archive)
        print(f"export: {archive} (the original archive {model} is unchanged)")
        return archive
    return model_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="local job name or directory, model directory, or model.tar.gz")
    parser.add_argument("--data", help="data set with train/ (calibration) and valid/ (the accuracy gate)")
    parser.add_argument("--calibration-images", type=int, default=CALIBRATION_IMAGES)
    args = parser.parse_args(argv)
    if args.calibration_images < 1:
        parser.error(f"--calibration-images {args.calibration_images} must be at least 1")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("classifier.export").setLevel(logging.INFO)  # its steps, as the training log shows them
    try:
        run(args.model, args.data, args.calibration_images)
    except (ExportError, ArtifactError, DataError, OSError, tarfile.TarError) as error:
        print(f"export: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
