"""The feature job: a mode of the training entry that computes the frozen backbone's features and stops.

The same image and the same `train` entry as every training job; with the environment variable
CLASSIFIER_JOB=features (CreateTrainingJob's Environment) the job does not train. It computes the backbone
features of every train and valid image with the training code's own feature pass (feature_cache.FeaturePass) and
writes them to the model dir as a feature cache, `<model dir>/<model key>/features.pt` (keyed as local mode
keys its cache: architecture, weights file contents, preprocessing, each image's SHA-256), with a summary in
`feature_job.json`. SageMaker uploads the model dir as the job's model.tar.gz; the trials of a tuning job get
that file as their `feature_cache` channel, which `cache_directory` unpacks. A `feature_cache` channel given
to the feature job itself (an earlier cache) is kept: only the images it lacks are computed.
"""
from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from .. import paths
from ..artifact import ArtifactError, atomic_write_json, unpack_archive
from ..channels import FEATURE_CACHE
from . import feature_cache, setup, stopping
from .data import DataError
from .hyperparameters import HyperparameterError, Hyperparameters, features_are_fixed, resolve_num_workers

log = logging.getLogger("classifier.training")
MODE_VARIABLE = "CLASSIFIER_JOB"
FEATURES = "features"
SUMMARY = "feature_job.json"


def requested() -> bool:
    return os.environ.get(MODE_VARIABLE, "").strip().lower() == FEATURES


def run(hp: Hyperparameters) -> dict:
    """Fill the feature cache in the model dir for the train and valid channels; returns the summary."""
    if not features_are_fixed(hp):
        raise HyperparameterError(f"{MODE_VARIABLE}={FEATURES} needs fixed backbone features (unfreeze_stages=0, "
                                  f"augment=false, pretrained=true); got unfreeze_stages={hp.unfreeze_stages}, "
                                  f"augment={str(hp.augment).lower()}, pretrained={str(hp.pretrained).lower()}")
    started = time.time()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    workers = resolve_num_workers(hp.num_workers)
    channels = setup.find_channels()
    job = setup.assemble(hp, channels, device, with_test=False)
    job = job.with_data(job.data.verified(workers, hp.skip_bad_images))
    train, valid, key = job.data.train, job.data.valid, job.backbone.cache_key()
    out = paths.model_dir()
    log.info("Feature job: %s at %d px on %s, %d train and %d valid images, cache key %s", hp.model_name,
             hp.image_size, device, len(train), len(valid), key)
    if FEATURE_CACHE in channels:  # an earlier cache: keep its entries, compute only what it lacks
        earlier = feature_cache.load(cache_directory(channels[FEATURE_CACHE]), key)
        if earlier:
            feature_cache.save(out, key, earlier)
    try:
        feature_pass = feature_cache.FeaturePass(job.model, job.preprocessing, hp.batch_size, workers, device,
                                                 should_stop=stopping.requested)
        added = feature_pass.build(out, key, [train, valid])
    except feature_cache.PassStopped as stopped:
        raise stopping.TrainingStopped(f"stopped by SIGTERM during the feature job ({stopped})") from None
    summary = {"key": key, "model_name": hp.model_name, "image_size": hp.image_size,
               "images": {"train": len(train), "valid": len(valid)}, "computed": added,
               "seconds": round(time.time() - started, 1)}
    atomic_write_json(out / SUMMARY, summary)
    log.info("Feature job done: %d of %d images computed, cache %s in %.1f s", added, len(train) + len(valid),
             out / key / feature_cache.FEATURES_FILE, summary["seconds"])
    return summary


def cache_directory(channel: Path) -> Path:
    """The feature cache a `feature_cache` channel holds: a cache folder (local mode), or a feature job's
    model.tar.gz (SageMaker), unpacked into a temporary folder (the channel may be read-only)."""
    channel = Path(channel)
    archives = sorted(channel.glob("*.tar.gz")) if channel.is_dir() else [channel]
    archives = [a for a in archives if a.name.endswith(".tar.gz") and a.is_file()]
    if not archives:
        return channel
    target = Path(tempfile.mkdtemp(prefix="feature-cache-"))
    atexit.register(shutil.rmtree, target, ignore_errors=True)  # removed when the job ends, however it ends
    for archive in archives:  # members checked, size and free space too (a model archive's rules)
        try:
            unpack_archive(archive, target)
        except ArtifactError as error:
            raise DataError(f"the {FEATURE_CACHE} channel: {error}") from None
    log.info("feature cache: unpacked %s into %s", ", ".join(a.name for a in archives), target)
    return target
