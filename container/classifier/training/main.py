"""The training job under the SageMaker training contract.

Reads hyperparameters (as the training toolkit passes them) and the channels train, valid, [test],
[weights], [feature_cache]; trains with per-epoch validation and checkpoints; writes the model artifact to the
model dir and metric history, per-class accuracy and confusion matrix to the output data dir. Any error ends in
a one-paragraph reason in `output/failure` and a non-zero exit. With CLASSIFIER_JOB=features in the
environment the job only computes the frozen backbone's features (feature_job.py).

The recipe, top to bottom (`run`): assemble the job (setup.py: channels, data, backbone, model), verify the
images, make what trains (the head on the backbone's features when they are fixed, else the model on
images), the loaders, the optimizer and schedule (optim.py), resume from a checkpoint, then per epoch: train,
validate, keep the best, checkpoint; at the end the best epoch's model, its test report and the artifact.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import paths, runtime
from ..artifact import ArtifactError, atomic_write_json, model_config, save_artifact
from ..channels import FEATURE_CACHE
from ..debugger import build_observers
from ..export.main import export_after_training
from ..model import WeightsError
from ..monitoring import baseline as monitor_baseline
from ..monitoring.observe import PassSettings, PassStopped as MonitorPassStopped
from . import distributed, feature_cache, feature_job, metrics_log, setup, stopping
from .checkpoints import Checkpointer, CheckpointError, Progress
from .data import Channel, DataError, FeatureDataset, ImageDataset, make_loader
from .hyperparameters import (
    HyperparameterError,
    Hyperparameters,
    features_are_fixed,
    parse_args,
    resolve_epochs,
    resolve_num_workers,
)
from .init_model import InitModelError
from .loop import (
    EvalResult,
    NLLWithLabelSmoothing,
    Optimisation,
    Precision,
    balanced_class_weights,
    evaluate,
    train_one_epoch,
)
from .optim import make_optimizer, make_scheduler
from .stopping import TrainingStopped

log = logging.getLogger("classifier.training")
# channels_last on CPU too: faster for the frozen forward and for training steps (classifier/runtime.py)
CHANNELS_LAST = runtime.MEMORY_FORMAT == torch.channels_last


class TrainingDiverged(RuntimeError):
    """No epoch produced a finite validation loss."""


# Errors whose message is the whole story for the user (no traceback needed in the failure reason).
USER_ERRORS = (HyperparameterError, DataError, WeightsError, CheckpointError, ArtifactError, InitModelError,
               feature_cache.CacheWriteError, TrainingDiverged)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    stopping.install()  # container/train.py installed it before torch was imported; in-process callers too
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


@dataclass(frozen=True)
class Process:
    """How this process trains: its place in the job, its device and precision, its loader workers."""

    world: distributed.World
    device: torch.device
    precision: Precision
    workers: int
    started: float

    @classmethod
    def start(cls, hp: Hyperparameters, world: distributed.World) -> "Process":
        started = time.time()
        device = torch.device(f"cuda:{world.local_rank}" if torch.cuda.is_available() else "cpu")
        if device.type == "cpu":  # the forward beside the loader workers that decode (and malloc's heap kept)
            torch.set_num_threads(runtime.forward_threads())
            runtime.tune_malloc()
        return cls(world, device, Precision.choose(device, hp.amp), resolve_num_workers(hp.num_workers), started)


@dataclass(frozen=True)
class CachedFeatures:
    """The feature_cache channel's entries for this job's backbone, and the SHA-256 of its train and valid files."""

    entries: dict[str, torch.Tensor]
    hashes: dict[Path, str]

    @classmethod
    def of(cls, job: setup.JobSetup) -> "CachedFeatures | None":
        """None unless the job trains the head on fixed features and a cache is given."""
        if not (features_are_fixed(job.hp) and FEATURE_CACHE in job.channels):
            return None
        entries = feature_cache.load(feature_job.cache_directory(job.channels[FEATURE_CACHE]), job.backbone.cache_key())
        hashes = {path: feature_cache.file_sha256(path) for channel in (job.data.train, job.data.valid)
                  for path, _ in channel.samples}
        return cls(entries, hashes)

    def decoded_files(self) -> frozenset[Path]:
        """Files whose features are in the cache: the pass that computed them decoded them without error."""
        return frozenset(path for path, digest in self.hashes.items() if digest in self.entries)


@dataclass(frozen=True)
class Trainable:
    """What trains and on what: the datasets, the module that trains and is validated, its loader workers."""

    train: Dataset
    valid: Dataset
    module: torch.nn.Module
    loader_workers: int


def trainable(job: setup.JobSetup, process: Process, cache: CachedFeatures | None) -> Trainable:
    """With fixed backbone features (frozen backbone, no augmentation): the head on the backbone's features,
    computed once per image here or read from the feature_cache channel. Else the model on images."""
    hp = job.hp
    if not features_are_fixed(hp):
        if FEATURE_CACHE in job.channels:
            log.info("feature cache not used: it needs unfreeze_stages=0, augment=false and pretrained=true")
        return Trainable(ImageDataset(job.data.train, job.preprocessing, hp.augment, hp.seed, hp.crop_scale),
                         ImageDataset(job.data.valid, job.preprocessing), job.model, process.workers)

    feature_pass = feature_cache.FeaturePass(job.model, job.preprocessing, hp.batch_size, process.workers,
                                             process.device, should_stop=stopping.requested)

    def features(channel: Channel) -> FeatureDataset:
        if cache is None:  # no cache channel: one pass over the images, no file hashes needed
            rows = feature_pass.compute(channel)
        else:
            rows, _ = feature_pass.features_for(channel, cache.entries, cache.hashes)
        return FeatureDataset(rows, channel.labels())

    try:
        train, valid = features(job.data.train), features(job.data.valid)
    except feature_cache.PassStopped as stopped:
        raise TrainingStopped(f"stopped by SIGTERM before the first epoch ({stopped}); no checkpoint yet") from None
    return Trainable(train, valid, job.model.head_on_features(), 0)


def class_weights(job: setup.JobSetup) -> torch.Tensor | None:
    """class_weighting=balanced: the training loss weights each class by images / (classes x its images)."""
    if job.hp.class_weighting == "none":
        return None
    weights = balanced_class_weights(job.data.train.labels(), len(job.classes))
    log.info("Class weights (%s): %s", job.hp.class_weighting,
             ", ".join(f"{c}={w:.3g}" for c, w in zip(job.classes, weights.tolist(), strict=True)))
    return weights


def fingerprint(job: setup.JobSetup, epochs: int) -> dict:
    """What a checkpoint must match to be resumed by this job. Checkpoints hold the trained parts only: the
    rest must come from the same pretrained weights."""
    hp = job.hp
    return {"model_name": hp.model_name, "classes": job.classes, "unfreeze_stages": hp.unfreeze_stages,
            "weights": job.backbone.weights_sha256(), "optimizer": hp.optimizer, "image_size": hp.image_size,
            "pretrained": hp.pretrained, "epochs": epochs, "batch_size": hp.batch_size}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run(hp: Hyperparameters, world: distributed.World) -> None:
    process = Process.start(hp, world)
    seed_everything(hp.seed)
    log.info("Hyperparameters: %s", json.dumps(hp.as_strings(), sort_keys=True))
    log.info("Device %s, precision %s, %d loader workers, %d torch threads, world size %d", process.device,
             process.precision.dtype or "float32", process.workers, torch.get_num_threads(), world.size)

    job = setup.assemble(hp, setup.find_channels(), process.device)
    stopping.check("during start-up (setting up the job); no checkpoint yet")
    cache = CachedFeatures.of(job)
    # An image whose bytes' features are in the cache was decoded by the pass that computed them: only
    # the others are decoded to check them (a trial on cached features would re-decode the whole set).
    known_good = cache.decoded_files() if cache else frozenset()
    job = job.with_data(job.data.verified(process.workers, hp.skip_bad_images, known_good))
    stopping.check("during start-up (checking the images); no checkpoint yet")
    trains = trainable(job, process, cache)

    train_loader = make_loader(trains.train, hp.batch_size, hp.seed, world, True, trains.loader_workers)
    valid_loader = make_loader(trains.valid, hp.batch_size, hp.seed, world, False, trains.loader_workers)
    train_model = distributed.wrap(trains.module, world, process.device)
    loss_fn = NLLWithLabelSmoothing(hp.label_smoothing, class_weights(job)).to(process.device)
    epochs = resolve_epochs(hp)
    optimizer = make_optimizer(job.model, hp)
    scheduler = make_scheduler(optimizer, hp, epochs, len(train_loader))
    scaler = process.precision.scaler()
    optimisation = Optimisation(loss_fn, optimizer, process.precision, scaler, scheduler)
    # Dropout draws from the global generator, and so does a feature pass: start training from the seed,
    # so a job that read its features from the cache trains as the one that computed them.
    torch.manual_seed(hp.seed)
    checkpointer = Checkpointer(paths.checkpoint_dir(), fingerprint(job, epochs), job.model, optimizer, scheduler,
                                scaler)
    progress, best_state = checkpointer.resume()

    observer = build_observers(hp, world.is_main)
    observer.on_train_start(job.model, loss_fn, {
        "hyperparameters": hp, "classes": job.classes, "train_labels": job.data.train.labels(),
        "device": process.device, "world": world, "started": process.started, "num_workers": process.workers,
    })
    step = progress.epoch * len(train_loader)
    log.info("Initialisation took %.1f s", time.time() - process.started)

    while progress.epoch < epochs and not progress.stopped:
        epoch = progress.epoch + 1
        train_loader.sampler.set_epoch(epoch)
        result = train_one_epoch(train_model, train_loader, optimisation, observer, step, CHANNELS_LAST,
                                 should_stop=stopping.requested)
        if stopping.requested():
            kept = (f"the checkpoint of epoch {epoch - 1} in {checkpointer.directory} is kept for resuming"
                    if epoch > 1 else "no checkpoint yet")
            raise TrainingStopped(f"stopped by SIGTERM during epoch {epoch}; {kept}")
        step += len(train_loader)
        # Each process trained on its share of every batch: the epoch's loss and images are the whole job's.
        loss_sum, images = distributed.sum_over_workers(world, [result.loss * result.images, result.images],
                                                        process.device)
        result = dataclasses.replace(result, loss=loss_sum / images, images=int(images))
        reason = None
        if world.is_main:
            evaluation = evaluate(trains.module, valid_loader, process.precision, observer, CHANNELS_LAST)
            metrics = {"epoch": epoch, "train_loss": result.loss, "valid_loss": evaluation.loss,
                       "valid_accuracy": evaluation.accuracy, "valid_macro_f1": evaluation.macro_f1,
                       "epoch_time": result.seconds, "images_per_sec": result.images / result.seconds,
                       "lr": optimizer.param_groups[0]["lr"]}
            if progress.record(metrics):
                best_state = {k: v.detach().cpu().clone() for k, v in job.model.trained_state_dict().items()}
            print(metrics_log.epoch_line(metrics, progress.best_valid_loss), flush=True)
            reason = observer.on_epoch_end(epoch, metrics) or early_stopping(hp, progress)
            if reason:
                log.info("Stopping after epoch %d: %s", epoch, reason)
        stopped_by_main = distributed.broadcast_flag(world, bool(reason), process.device)
        progress.epoch = epoch
        progress.stopped = reason or ("stopped by the main process" if stopped_by_main else None)
        if world.is_main:
            checkpointer.save(progress, best_state if progress.best_epoch == epoch else None)
        distributed.barrier(world)

    if world.is_main:
        finish(job, process, observer, progress, best_state)
        if stopping.requested():  # after the last epoch: the model was saved, the job completes
            log.info("SIGTERM arrived after the last epoch: the model was saved first; the job completes "
                     "(without the monitor's baseline and the export: `make monitor-baseline` and `make export` "
                     "make them later)")
        elif write_monitor_baseline(job, process, trains) and hp.export:
            # OpenVINO fp32 + int8 beside model.pth, each judged on the valid images; a SIGTERM during it ends it
            # at its next step with nothing of it kept (the job completes, as above)
            export_after_training(paths.model_dir(), job.data.train, job.data.valid, should_stop=stopping.requested)
    distributed.barrier(world)


def early_stopping(hp: Hyperparameters, progress: Progress) -> str | None:
    if hp.early_stopping_patience and progress.epochs_without_improvement >= hp.early_stopping_patience:
        return (f"early stopping: valid_loss did not improve for {hp.early_stopping_patience} epoch(s) after "
                f"epoch {progress.best_epoch}")
    return None


def evaluate_channel(job: setup.JobSetup, process: Process, observer, channel: Channel) -> EvalResult:
    """The whole model on a channel's images (the evaluation view), in this process alone."""
    loader = make_loader(ImageDataset(channel, job.preprocessing), job.hp.batch_size, job.hp.seed,
                         distributed.World(), False, process.workers)
    return evaluate(job.model, loader, process.precision, observer, CHANNELS_LAST)


def finish(job: setup.JobSetup, process: Process, observer, progress: Progress, best_state: dict | None) -> None:
    """Best epoch's weights to the model dir; history, test report and confusion matrix to output data."""
    if best_state is None:
        raise TrainingDiverged(f"valid_loss was not finite in any of {progress.epoch} epoch(s): training diverged "
                               f"(lr={job.hp.lr} may be too high); no model was saved")
    job.model.load_trained_state_dict(best_state)
    best = progress.best_metrics
    final = {"best_epoch": progress.best_epoch, "valid_loss": progress.best_valid_loss,
             "valid_accuracy": best["valid_accuracy"], "valid_macro_f1": best.get("valid_macro_f1"),
             "epochs_run": progress.epoch, "stopped": progress.stopped}
    # Last of the valid_* values in the log: the final objective describes the model that is saved.
    # (a checkpoint from before macro-F1 was measured has none for its epochs: nan, which no regex reads)
    print(metrics_log.best_line(progress.best_epoch, {"valid_macro_f1": float("nan"), **best}), flush=True)
    output = paths.output_data_dir()
    output.mkdir(parents=True, exist_ok=True)
    if job.data.test is not None:
        evaluation = evaluate_channel(job, process, observer, job.data.test)
        final.update(test_loss=evaluation.loss, test_accuracy=evaluation.accuracy, test_macro_f1=evaluation.macro_f1)
        print(metrics_log.test_line(evaluation.loss, evaluation.accuracy, evaluation.macro_f1), flush=True)
        write_test_report(output, job.classes, evaluation)
    save_artifact(paths.model_dir(), job.model, model_config(job.hp.model_name, job.classes, job.preprocessing,
                                                             job.hp.as_strings(), final, job.init_model))
    atomic_write_json(output / "metrics.json", {"history": progress.history, "final": final})
    observer.on_train_end({"final": final, "history": progress.history, "seconds": time.time() - process.started})
    log.info("Saved the model of epoch %d (valid_loss %.4f) to %s", progress.best_epoch, progress.best_valid_loss,
             paths.model_dir())


def write_monitor_baseline(job: setup.JobSetup, process: Process, trains: Trainable) -> bool:
    """The monitor's baseline beside the saved model (classifier/monitoring/baseline.py): the valid images as the
    final model sees them. With fixed backbone features the valid pass's features are reused: only the head runs.
    A SIGTERM during it ends it at its next batch with nothing written (False): the job completes without it and
    without the export, as after the last epoch."""
    fixed = trains.valid.features if isinstance(trains.valid, FeatureDataset) else None
    settings = PassSettings(job.hp.batch_size, process.device, emit=log.info, should_stop=stopping.requested)
    try:
        monitor_baseline.write(paths.model_dir(), job.model, job.data.valid, job.preprocessing, features=fixed,
                               settings=settings)
    except MonitorPassStopped as stopped:
        log.info("SIGTERM during the monitor's baseline (%s): the job completes without it and without the export "
                 "(`make monitor-baseline` and `make export` make them later)", stopped)
        return False
    return True


def write_test_report(output: Path, classes: list[str], evaluation: EvalResult) -> None:
    n = len(classes)
    matrix = torch.bincount(evaluation.labels * n + evaluation.predictions, minlength=n * n).view(n, n)
    per_class = {c: (float(matrix[i, i]) / float(matrix[i].sum()) if matrix[i].sum() else None)
                 for i, c in enumerate(classes)}
    atomic_write_json(output / "test_report.json", {
        "classes": classes, "accuracy": float(matrix.diag().sum()) / float(matrix.sum()),
        "macro_f1": evaluation.macro_f1,
        "per_class_accuracy": per_class, "confusion_matrix": matrix.tolist(),
        "confusion_matrix_axes": "rows: true class, columns: predicted class",
    })
    lines = ["true\\predicted," + ",".join(classes)]
    lines += [f"{c}," + ",".join(str(int(v)) for v in matrix[i]) for i, c in enumerate(classes)]
    (output / "confusion_matrix.csv").write_text("\n".join(lines) + "\n")
