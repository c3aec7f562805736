"""Export a saved model directory: OpenVINO fp32 and int8, each judged by the accuracy gate, recorded in
`model_config.json`. The training job calls `export_model` at its end; `make export` runs it on an existing
artifact (scripts/export.py), or in an image:

    python -m classifier.export MODEL_DIR --train DIR --valid DIR [--calibration-images 300]

1. PyTorch's probabilities for every valid image (the reference; the evaluation view, as served).
2. fp32: `convert.to_openvino`, judged by `gate.judge_fp32` on the same images.
3. int8: NNCF on that IR, calibrated on `calibration_images` training images (evaluation view: what the
   endpoint will see; never valid or test images, which judge it), judged by `gate.judge_int8`.
4. Accepted formats go to `openvino/<format>/` in the model dir (built in a staging folder first; older
   exports there are replaced only once the new ones are judged); `model_config.json` gets `exports` with
   every format's figures and, for a refused one, the reason. `model.pth` and the rest of the config are
   kept as they were: the artifact still serves `torch` whatever the gate said.
"""
from __future__ import annotations

import argparse
import logging
import random
import shutil
import sys
import time
import traceback
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from .. import runtime
from ..artifact import CONFIG_FILE, ArtifactError, atomic_write_json, load_artifact, read_config
from ..preprocessing import Preprocessing
from ..training.data import Channel, DataError, scan_channel
from . import convert, gate
from .formats import EXPORT_DIR, EXPORTS_KEY, FP32, INT8, model_file
from .openvino_model import OpenVINONetwork

log = logging.getLogger("classifier.export")
CALIBRATION_IMAGES = 300  # NNCF's default subset size; a few hundred images settle its statistics
BATCH = 16  # images per forward pass while judging
STAGING = ".export-staging"


def calibration_sample(channel: Channel, count: int, seed: int = 0) -> list[Path]:
    """`count` training images, a seeded random sample (the classes in their channel's proportions; the same
    channel, the same sample)."""
    paths = [path for path, _ in channel.samples]
    random.Random(seed).shuffle(paths)
    return paths[:count]


def decode_all(paths: list[Path], preprocessing: Preprocessing) -> list[torch.Tensor]:
    """The evaluation view of each image (uint8 CHW), as the endpoint decodes it, in batches of BATCH."""
    return list(runtime.decoded_batches(len(paths), lambda i: preprocessing.load_for_eval(paths[i]), BATCH))


def probabilities(network, batches: list[torch.Tensor]) -> np.ndarray:
    with torch.inference_mode():
        return np.concatenate([network(batch).double().exp().numpy() for batch in batches])


def torch_network(model):
    """The served torch path: the model in channels_last, on the CPU."""
    model = model.to(memory_format=torch.channels_last).eval()
    return lambda batch: model(batch.contiguous(memory_format=torch.channels_last))


def export_model(model_dir: Path, train: Channel, valid: Channel, calibration_images: int = CALIBRATION_IMAGES,
                 threads: int | None = None) -> dict:
    """Export and judge both formats; returns the `exports` section written into model_config.json."""
    started = time.monotonic()
    model_dir = Path(model_dir)
    threads = threads or runtime.cpu_count()
    model, config, preprocessing = load_artifact(model_dir)
    if train.classes != config["classes"] or valid.classes != config["classes"]:
        raise DataError(f"the calibration and valid images' classes ({', '.join(valid.classes)}) are not the "
                        f"model's ({', '.join(config['classes'])})")
    if not valid.samples:
        raise DataError(f"no valid images in {valid.root}: the accuracy gate needs them")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        log.info("Export: PyTorch on %d valid images of %s (the gate's reference)", len(valid), valid.root)
        valid_batches = decode_all([path for path, _ in valid.samples], preprocessing)
        labels = np.array(valid.labels())
        reference = probabilities(torch_network(model), valid_batches)
        sample = calibration_sample(train, calibration_images)
        calibration = [image.unsqueeze(0).numpy() for batch in decode_all(sample, preprocessing) for image in batch]
        staging = model_dir / STAGING
        files = build_formats(model, preprocessing.image_size, calibration, staging)
        judges = {FP32: gate.judge_fp32, INT8: gate.judge_int8}
        entries = {}
        for fmt, xml in files.items():  # each run as serving runs it: compiled from its files
            verdict = judges[fmt](labels, reference, probabilities(OpenVINONetwork.load(xml, threads), valid_batches))
            entries[fmt] = {"accepted": verdict.accepted, "figures": verdict.figures,
                            **({"file": model_file(fmt)} if verdict.accepted else {"reason": verdict.reason})}
    finally:
        torch.set_num_threads(previous_threads)
    exports = install(model_dir, staging, entries, {
        "valid_images": len(valid),
        "calibration_images": len(calibration),
        "torch": {"accuracy": float((reference.argmax(axis=1) == labels).mean())},
        "seconds": round(time.monotonic() - started, 1),
    })
    for fmt, entry in entries.items():
        log.info("Export: %s", describe(fmt, entry))
    return exports


def export_after_training(model_dir: Path, train: Channel, valid: Channel) -> dict | None:
    """The training job's last step. A failure here is logged with its traceback and leaves the artifact as
    training saved it (it serves PyTorch): the model is not lost to an export problem."""
    try:
        return export_model(model_dir, train, valid)
    except Exception as error:  # noqa: BLE001 - the model is saved; say why it has no exports
        log.error("Export failed (%s: %s); the model serves with PyTorch. Retry with `make export MODEL=...`:\n%s",
                  type(error).__name__, error, traceback.format_exc())
        return None


def build_formats(model, image_size: int, calibration: list[np.ndarray], staging: Path) -> dict[str, Path]:
    """Both formats' IR files in a fresh `staging` folder: fp32 converted from the model, int8 quantised from
    that fp32 IR with the calibration images (uint8 arrays (1, 3, H, W))."""
    shutil.rmtree(staging, ignore_errors=True)
    files = {fmt: staging / model_file(fmt) for fmt in (FP32, INT8)}
    log.info("Export: converting to OpenVINO fp32")
    fp32_model = convert.to_openvino(model, image_size)
    log.info("Export: int8 quantisation (NNCF), calibrated on %d training images", len(calibration))
    int8_model = convert.quantize_int8(fp32_model, calibration, len(calibration))
    for fmt, ov_model in ((FP32, fp32_model), (INT8, int8_model)):
        files[fmt].parent.mkdir(parents=True, exist_ok=True)
        convert.save(ov_model, files[fmt])
    return files


def install(model_dir: Path, staging: Path, entries: dict, details: dict) -> dict:
    """Accepted formats from staging to openvino/<format>/ (replacing an older export; refused ones removed),
    then `exports` (the runtime, `details` and every format's entry) into model_config.json, the rest of which
    stays as it was. Returns that section."""
    target_root = model_dir / EXPORT_DIR
    target_root.mkdir(exist_ok=True)
    for fmt, entry in entries.items():
        target = target_root / fmt
        shutil.rmtree(target, ignore_errors=True)
        if entry["accepted"]:
            (staging / EXPORT_DIR / fmt).rename(target)
    shutil.rmtree(staging, ignore_errors=True)
    if not any(target_root.iterdir()):
        target_root.rmdir()
    exports = {"runtime": "openvino", "versions": {name: metadata.version(name) for name in ("openvino", "nncf")},
               **details, "formats": entries}
    config = read_config(model_dir)
    config[EXPORTS_KEY] = exports
    atomic_write_json(model_dir / CONFIG_FILE, config)
    return exports


def describe(fmt: str, entry: dict) -> str:
    """One line for a log or a terminal: the verdict and its figures."""
    figures = entry["figures"]
    measured = (f"top-1 {100 * figures['accuracy']:.1f} % ({figures['accuracy_change_points']:+.1f} points vs "
                f"PyTorch), same top-1 as PyTorch on {100 * figures['top1_agreement']:.1f} %, max probability "
                f"difference {figures['max_probability_difference']:.1e}, {figures['images']} valid images")
    if entry["accepted"]:
        return f"{fmt} accepted: {measured}"
    return f"{fmt} refused: {entry['reason']} ({measured})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m classifier.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path, help="a model directory written by training (model_config.json)")
    parser.add_argument("--train", type=Path, required=True, help="the training images (calibration), class folders")
    parser.add_argument("--valid", type=Path, required=True, help="the valid images (the accuracy gate), class folders")
    parser.add_argument("--calibration-images", type=int, default=CALIBRATION_IMAGES)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.calibration_images < 1:
        parser.error(f"--calibration-images {args.calibration_images} must be at least 1")
    try:
        classes = read_config(args.model_dir)["classes"]
        train = scan_channel("train", args.train, classes)
        valid = scan_channel("valid", args.valid, classes)
        export_model(args.model_dir, train, valid, args.calibration_images)
    except (ArtifactError, DataError) as error:
        print(f"export: {error}", file=sys.stderr)
        return 1
    return 0
