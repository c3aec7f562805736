"""The training job under the SageMaker training contract.

Reads hyperparameters (as the training toolkit passes them) and the channels train, valid, [test],
[weights], [feature_cache]; trains with per-epoch validation and checkpoints; writes the model artifact to the model dir
and metric history, per-class accuracy and confusion matrix to the output data dir. Any error ends in
a one-paragraph reason in `output/failure` and a non-zero exit. With CLASSIFIER_JOB=features in the
environment the job only computes the frozen backbone's features (feature_job.py).
"""
from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import time
import traceback
from pathlib import Path

import torch
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler
from torch.utils.data.distributed import DistributedSampler

from .. import paths, runtime
from ..artifact import ArtifactError, atomic_write_json, save_artifact
from ..channels import OPTIONAL as CHANNELS_OPTIONAL, REQUIRED as CHANNELS_REQUIRED
from ..debugger import build_observers
from ..export.main import export_after_training
from ..model import WeightsError, build_model, find_pretrained_weights, get_architecture
from . import checkpoints, distributed, feature_cache, feature_job, metrics_log
from .checkpoints import CheckpointError
from .data import DataError, ImageDataset, scan_channel, verify_images
from .hyperparameters import (
    HyperparameterError,
    Hyperparameters,
    features_are_fixed,
    parse_args,
    resolve_epochs,
    resolve_num_workers,
)
from .loop import NLLWithLabelSmoothing, Precision, evaluate, train_one_epoch

log = logging.getLogger("classifier.training")
WEIGHTS_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")


class TrainingDiverged(RuntimeError):
    """No epoch produced a finite validation loss."""


class TrainingStopped(Exception):
    """SIGTERM (StopTrainingJob, spot interruption): stop at the next step, keep the last checkpoint."""


# Errors whose message is the whole story for the user (no traceback needed in the failure reason).
USER_ERRORS = (HyperparameterError, DataError, WeightsError, CheckpointError, ArtifactError, TrainingDiverged)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    world = distributed.World()
    try:
        hp = parse_args(argv)
        if feature_job.requested():  # CLASSIFIER_JOB=features: the feature cache only, one process
            feature_job.run(hp)
            return 0
        if distributed.needs_launch():
            return distributed.launch(argv)
        world = distributed.init()
        run(hp, world)
        return 0
    except USER_ERRORS as error:
        return fail(str(error))
    except TrainingStopped as error:
        return fail(str(error), code=143)
    except Exception as error:  # a bug or an environment problem: keep the traceback in the log
        log.error("Unexpected error:\n%s", traceback.format_exc())
        return fail(f"Unexpected {type(error).__name__}: {error} (the job log has the traceback)")
    finally:
        distributed.shutdown(world)


def fail(reason: str, code: int = 1) -> int:
    reason = " ".join(reason.split())  # one paragraph
    log.error("Training failed: %s", reason)
    # Any rank may fail first (a DDP worker's bad image, say): the first reason written wins.
    failure = paths.failure_file()
    failure.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(failure, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return code
    with os.fdopen(descriptor, "w") as handle:
        handle.write(reason[:1024] + "\n")
    return code


def find_channels() -> dict[str, Path]:
    """The channels present; a required one missing or an unknown one (a typo) is an error."""
    data_dir = paths.base_dir() / "input" / "data"
    present = {p.name: p for p in data_dir.iterdir()} if data_dir.is_dir() else {}
    for name in (*CHANNELS_REQUIRED, *CHANNELS_OPTIONAL):
        env = os.environ.get(f"SM_CHANNEL_{name.upper()}")
        if env and Path(env).exists():
            present[name] = Path(env)
    known = (*CHANNELS_REQUIRED, *CHANNELS_OPTIONAL)
    unknown = sorted(set(present) - set(known))
    if unknown:
        raise DataError(f"unknown channel(s) {', '.join(unknown)} in {data_dir}; this job reads "
                        f"{', '.join(CHANNELS_REQUIRED)} (required) and {', '.join(CHANNELS_OPTIONAL)} (optional)")
    missing = [name for name in CHANNELS_REQUIRED if name not in present]
    if missing:
        raise DataError(f"required channel(s) {', '.join(missing)} missing: expected {data_dir}/<channel>/ "
                        f"with one folder per class")
    return present


def find_weights_file(channel: Path) -> Path:
    if channel.is_file():
        return channel
    files = sorted(p for p in channel.rglob("*") if p.is_file() and p.suffix in WEIGHTS_SUFFIXES)
    if len(files) != 1:
        listing = ", ".join(p.name for p in files) or "none"
        raise WeightsError(f"the 'weights' channel must hold exactly one weights file "
                           f"({'/'.join(WEIGHTS_SUFFIXES)}); found {listing}")
    return files[0]


class EpochIndexSampler:
    """Yields (epoch, index) so that dataset workers, even persistent ones, know the epoch.

    The shuffle order of epoch e depends on (seed, e) alone: a resumed job sees the same order.
    """

    def __init__(self, sampler, seed: int):
        self.sampler, self.seed, self.epoch = sampler, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        elif getattr(self.sampler, "generator", None) is not None:
            self.sampler.generator.manual_seed(self.seed + epoch)

    def __iter__(self):
        return ((self.epoch, index) for index in self.sampler)

    def __len__(self):
        return len(self.sampler)


class FeatureDataset(torch.utils.data.Dataset):
    """Cached backbone features with their labels: the head trains on these directly."""

    def __init__(self, features: torch.Tensor, labels: list[int]):
        self.features, self.labels, self.epoch = features, torch.tensor(labels), 0

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.features[index], self.labels[index]


class _EpochDataset(torch.utils.data.Dataset):
    def __init__(self, dataset: ImageDataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, index = key
        self.dataset.epoch = epoch
        return self.dataset[index]


def make_loader(dataset, hp: Hyperparameters, world, shuffle: bool, workers: int) -> DataLoader:
    if shuffle and world.distributed:
        base = DistributedSampler(dataset, num_replicas=world.size, rank=world.rank, shuffle=True, seed=hp.seed)
    elif shuffle:
        base = RandomSampler(dataset, generator=torch.Generator())
    else:
        base = SequentialSampler(dataset)
    sampler = EpochIndexSampler(base, hp.seed)
    return DataLoader(
        _EpochDataset(dataset), batch_size=hp.batch_size, sampler=sampler, num_workers=workers,
        pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )


def make_optimizer(model, hp: Hyperparameters):
    """The head at `lr`, the trained backbone stages at `lr * backbone_lr_scale`. Weight decay applies
    to weight matrices and kernels only, not to biases and normalisation parameters (the usual practice:
    decaying those only shifts the features)."""
    backbone = [p for m in model.trained_backbone_modules() for p in m.parameters()]
    groups = []
    for params, lr in ((list(model.head.parameters()), hp.lr), (backbone, hp.lr * hp.backbone_lr_scale)):
        groups.append({"params": [p for p in params if p.ndim > 1], "lr": lr, "weight_decay": hp.weight_decay})
        groups.append({"params": [p for p in params if p.ndim <= 1], "lr": lr, "weight_decay": 0.0})
    groups = [group for group in groups if group["params"]]
    if hp.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=hp.lr, momentum=hp.momentum, nesterov=hp.momentum > 0)
    if hp.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=hp.lr)
    return torch.optim.Adam(groups, lr=hp.lr)


def make_scheduler(optimizer, hp: Hyperparameters, epochs: int, steps_per_epoch: int):
    """Per step: a linear warm-up over `warmup_epochs`, then a cosine decay to zero at the last step."""
    warmup, total = round(hp.warmup_epochs * steps_per_epoch), epochs * steps_per_epoch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run(hp: Hyperparameters, world: distributed.World) -> None:
    started = time.time()
    stop_signal = {"received": False}
    signal.signal(signal.SIGTERM, lambda *_: stop_signal.update(received=True))
    seed_everything(hp.seed)
    device = torch.device(f"cuda:{world.local_rank}" if torch.cuda.is_available() else "cpu")
    # channels_last on CPU too: faster for the frozen forward and for training steps (classifier/runtime.py)
    use_channels_last = runtime.MEMORY_FORMAT == torch.channels_last
    precision = Precision.choose(device, hp.amp)
    workers = resolve_num_workers(hp.num_workers)
    if device.type == "cpu":  # the forward beside the loader workers that decode (and malloc's heap kept)
        torch.set_num_threads(runtime.forward_threads())
        runtime.tune_malloc()
    log.info("Hyperparameters: %s", json.dumps(hp.as_strings(), sort_keys=True))
    log.info("Device %s, precision %s, %d loader workers, %d torch threads, world size %d", device,
             precision.dtype or "float32", workers, torch.get_num_threads(), world.size)

    channels = find_channels()
    train = scan_channel("train", channels["train"])
    valid = scan_channel("valid", channels["valid"], train.classes)
    test = scan_channel("test", channels["test"], train.classes) if "test" in channels else None
    classes = train.classes

    arch = get_architecture(hp.model_name)
    preprocessing = arch.preprocessing(hp.image_size)
    weights_file = None
    if hp.pretrained:
        weights_file = (find_weights_file(channels["weights"]) if "weights" in channels
                        else find_pretrained_weights(arch))
    cached, hashes = None, {}
    if features_are_fixed(hp) and "feature_cache" in channels:
        cached = feature_cache.load(feature_job.cache_directory(channels["feature_cache"]),
                                    feature_cache.model_key(hp.model_name, weights_file, preprocessing))
        hashes = {path: feature_cache.file_sha256(path) for channel in (train, valid) for path, _ in channel.samples}
    # An image whose bytes' features are in the cache was decoded by the pass that computed them: only
    # the others are decoded to check them (a trial on cached features would re-decode the whole set).
    decoded = {path for path, digest in hashes.items() if digest in (cached or {})}
    train = verify_images(train, workers, hp.skip_bad_images, known_good=decoded)
    valid = verify_images(valid, workers, hp.skip_bad_images, known_good=decoded)
    if test is not None:
        test = verify_images(test, workers, hp.skip_bad_images)

    model = build_model(hp.model_name, len(classes), hp.pretrained, weights_file=weights_file,
                        unfreeze_stages=hp.unfreeze_stages, dropout=hp.dropout).to(device)
    if use_channels_last:
        model = model.to(memory_format=torch.channels_last)

    # What trains: with a frozen backbone (and no augmentation), the head on the backbone's features,
    # computed once per image (or read from the feature_cache channel); else the model on images.
    if features_are_fixed(hp):
        def features(channel):
            stop = {"should_stop": lambda: stop_signal["received"]}
            if cached is None:  # no cache channel: one pass over the images, no file hashes needed
                rows = feature_cache.compute_features(model, channel, preprocessing, hp.batch_size, workers,
                                                      device, **stop)
            else:
                rows, _ = feature_cache.features_for(channel, cached, model, preprocessing, hp.batch_size,
                                                     workers, device, hashes=hashes, **stop)
            return FeatureDataset(rows, channel.labels())

        try:
            train_set, valid_set = features(train), features(valid)
        except feature_cache.PassStopped as stopped:
            raise TrainingStopped(f"stopped by SIGTERM before the first epoch ({stopped})") from None
        trained_module = eval_module = model.head_on_features()
        loader_workers = 0
    else:
        if "feature_cache" in channels:
            log.info("feature cache not used: it needs unfreeze_stages=0, augment=false and pretrained=true")
        train_set = ImageDataset(train, preprocessing, hp.augment, hp.seed, hp.crop_scale)
        valid_set = ImageDataset(valid, preprocessing)
        trained_module = eval_module = model
        loader_workers = workers
    train_model = trained_module
    if world.distributed:
        train_model = torch.nn.parallel.DistributedDataParallel(
            trained_module, device_ids=[world.local_rank] if device.type == "cuda" else None)

    train_loader = make_loader(train_set, hp, world, True, loader_workers)
    valid_loader = make_loader(valid_set, hp, world, False, loader_workers)
    loss_fn = NLLWithLabelSmoothing(hp.label_smoothing)
    epochs = resolve_epochs(hp)
    optimizer = make_optimizer(model, hp)
    scheduler = make_scheduler(optimizer, hp, epochs, len(train_loader))
    scaler = precision.scaler()
    # Dropout draws from the global generator, and so does a feature pass: start training from the seed,
    # so a job that read its features from the cache trains as the one that computed them.
    torch.manual_seed(hp.seed)

    checkpoint_dir = paths.checkpoint_dir()
    # Checkpoints hold the trained parts only: the rest must come from the same pretrained weights.
    fingerprint = {"model_name": hp.model_name, "classes": classes, "unfreeze_stages": hp.unfreeze_stages,
                   "weights": feature_cache.file_sha256(weights_file) if weights_file else None,
                   "optimizer": hp.optimizer, "image_size": hp.image_size, "pretrained": hp.pretrained,
                   "epochs": epochs, "batch_size": hp.batch_size}
    state = {"epoch": 0, "history": [], "best_epoch": 0, "best_valid_loss": math.inf, "epochs_without_improvement": 0,
             "stopped": None}
    best_model_state = None
    resumed = checkpoints.load(checkpoint_dir, fingerprint)
    if resumed:
        saved, best_model_state = resumed
        model.load_trained_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        scaler.load_state_dict(saved["scaler"])
        checkpoints.set_rng_state(saved["rng"])
        state = saved["progress"]
        log.info("Resumed from %s after epoch %d of %d", checkpoint_dir / checkpoints.LAST, state["epoch"], epochs)

    observer = build_observers(hp, world.is_main)
    observer.on_train_start(model, loss_fn, {
        "hyperparameters": hp, "classes": classes, "train_labels": train.labels(), "device": device,
        "world": world, "started": started, "num_workers": workers,
    })
    step = state["epoch"] * len(train_loader)
    log.info("Initialisation took %.1f s", time.time() - started)

    while state["epoch"] < epochs and not state["stopped"]:
        epoch = state["epoch"] + 1
        train_loader.sampler.set_epoch(epoch)
        result = train_one_epoch(train_model, train_loader, optimizer, loss_fn, precision, scaler, observer, step,
                                 use_channels_last, should_stop=lambda: stop_signal["received"], scheduler=scheduler)
        if stop_signal["received"]:
            raise TrainingStopped(f"stopped by SIGTERM during epoch {epoch}; the checkpoint of epoch "
                                  f"{epoch - 1} in {checkpoint_dir} is kept for resuming")
        step += len(train_loader)
        stop_reason = None
        if world.is_main:
            evaluation = evaluate(eval_module, valid_loader, precision, observer, use_channels_last)
            improved = evaluation.loss < state["best_valid_loss"]
            if improved:
                state.update(best_epoch=epoch, best_valid_loss=evaluation.loss, epochs_without_improvement=0)
                best_model_state = {k: v.detach().cpu().clone() for k, v in model.trained_state_dict().items()}
            else:
                state["epochs_without_improvement"] += 1
            images_per_sec = result.images * world.size / result.seconds
            metrics = {"epoch": epoch, "train_loss": result.loss, "valid_loss": evaluation.loss,
                       "valid_accuracy": evaluation.accuracy, "epoch_time": result.seconds,
                       "images_per_sec": images_per_sec, "lr": optimizer.param_groups[0]["lr"]}
            state["history"].append(metrics)
            print(metrics_log.epoch_line(epoch, result.loss, evaluation.loss, evaluation.accuracy,
                                         result.seconds, images_per_sec, best_valid_loss=state["best_valid_loss"]),
                  flush=True)
            if hp.early_stopping_patience and state["epochs_without_improvement"] >= hp.early_stopping_patience:
                stop_reason = (f"early stopping: valid_loss did not improve for {hp.early_stopping_patience} "
                               f"epoch(s) after epoch {state['best_epoch']}")
            stop_reason = observer.on_epoch_end(epoch, metrics) or stop_reason
            if stop_reason:
                log.info("Stopping after epoch %d: %s", epoch, stop_reason)
        stop = distributed.broadcast_flag(world, bool(stop_reason), device)
        state["epoch"] = epoch
        state["stopped"] = stop_reason or ("stopped by the main process" if stop else None)
        if world.is_main:
            checkpoints.save(checkpoint_dir, {
                "fingerprint": fingerprint, "model": model.trained_state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "rng": checkpoints.rng_state(),
                "progress": state,
            }, best_model_state if state["best_epoch"] == epoch else None)
        distributed.barrier(world)

    if world.is_main:
        finish(hp, model, best_model_state, state, classes, preprocessing, test, precision, observer,
               use_channels_last, workers, world, started)
        if hp.export:  # OpenVINO fp32 + int8 beside model.pth, each judged on the valid images
            export_after_training(paths.model_dir(), train, valid)
    distributed.barrier(world)


def finish(hp, model, best_model_state, state, classes, preprocessing, test, precision, observer,
           channels_last, workers, world, started) -> None:
    """Best epoch's weights to the model dir; history, test report and confusion matrix to output data."""
    if best_model_state is None:
        raise TrainingDiverged(f"valid_loss was not finite in any of {state['epoch']} epoch(s): training diverged "
                               f"(lr={hp.lr} may be too high); no model was saved")
    model.load_trained_state_dict(best_model_state)
    best = state["history"][state["best_epoch"] - 1] if state["history"] else {}
    final = {"best_epoch": state["best_epoch"], "valid_loss": state["best_valid_loss"],
             "valid_accuracy": best.get("valid_accuracy"), "epochs_run": state["epoch"], "stopped": state["stopped"]}
    # Last of the valid_* values in the log: the final objective describes the model that is saved.
    print(metrics_log.best_line(state["best_epoch"], state["best_valid_loss"], best.get("valid_accuracy", 0.0)),
          flush=True)
    output = paths.output_data_dir()
    output.mkdir(parents=True, exist_ok=True)
    if test is not None:
        loader = make_loader(ImageDataset(test, preprocessing), hp, distributed.World(), False, workers)
        evaluation = evaluate(model, loader, precision, observer, channels_last)
        final.update(test_loss=evaluation.loss, test_accuracy=evaluation.accuracy)
        print(metrics_log.test_line(evaluation.loss, evaluation.accuracy), flush=True)
        write_test_report(output, classes, evaluation.labels, evaluation.predictions)
    save_artifact(paths.model_dir(), model, hp.model_name, classes, preprocessing, hp.as_strings(), final)
    atomic_write_json(output / "metrics.json", {"history": state["history"], "final": final})
    observer.on_train_end({"final": final, "history": state["history"], "seconds": time.time() - started})
    log.info("Saved the model of epoch %d (valid_loss %.4f) to %s", state["best_epoch"], state["best_valid_loss"],
             paths.model_dir())


def write_test_report(output: Path, classes: list[str], labels: torch.Tensor, predictions: torch.Tensor) -> None:
    n = len(classes)
    matrix = torch.bincount(labels * n + predictions, minlength=n * n).view(n, n)
    per_class = {c: (float(matrix[i, i]) / float(matrix[i].sum()) if matrix[i].sum() else None)
                 for i, c in enumerate(classes)}
    atomic_write_json(output / "test_report.json", {
        "classes": classes, "accuracy": float(matrix.diag().sum()) / float(matrix.sum()),
        "per_class_accuracy": per_class, "confusion_matrix": matrix.tolist(),
        "confusion_matrix_axes": "rows: true class, columns: predicted class",
    })
    lines = ["true\\predicted," + ",".join(classes)]
    lines += [f"{c}," + ",".join(str(int(v)) for v in matrix[i]) for i, c in enumerate(classes)]
    (output / "confusion_matrix.csv").write_text("\n".join(lines) + "\n")
