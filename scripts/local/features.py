"""The frozen-backbone feature cache that every local job shares (jobs/feature-cache/).

With a frozen pretrained backbone and no random augmentation (`features_are_fixed`) an image's backbone
output never changes, so it is computed once, with the training code's own feature pass, and every job
that applies (tuning trials, `make train-local`, a retrain of the best trial) trains the head from it
through the optional `feature_cache` channel. The cache is keyed by the architecture, the pretrained
weights file's contents and the preprocessing, and within that by each image file's SHA-256
(classifier/training/feature_cache.py), so one directory is valid for every data set and job.
"""
from __future__ import annotations

import fcntl
import logging
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from classifier.training import hyperparameters as hp_specs
from scripts import orchestration
from scripts.job_definition import Channels
from scripts.local import jobs

BATCH_SIZE = 64
CHANNELS = Channels()
_LOCK = threading.Lock()  # parallel trials of one tuning job
_FILLED: set[tuple] = set()  # (cache dir, model, image size, weights, data) filled by this process


def prepare(values: dict[str, str], data: Path, echo=print, init_model: Path | None = None) -> Path | None:
    """The cache directory, holding the features of `data`'s train and valid images for a job with these
    hyperparameters (and this init_model channel: its backbone); None when the job cannot train from cached
    features (it then runs the backbone)."""
    if not orchestration.uses_feature_cache(values):
        return None
    # torch, imported by the training job's setup, only when a cache is filled: the tuner's process needs
    # it for nothing else (its trials are processes of their own).
    from classifier.model import WeightsError
    from classifier.training import feature_cache, setup
    from classifier.training.init_model import InitModelError

    hp = hp_specs.parse(values)
    data, cache_dir = Path(data).resolve(), jobs.feature_cache_dir()
    channels = setup.data_set_channels(data)
    if init_model is not None:
        channels[CHANNELS.init_model] = Path(init_model)
    try:
        backbone = setup.Backbone.for_job(hp, channels)
    except (WeightsError, InitModelError) as error:  # the job itself fails with the full explanation
        echo(f"Feature cache not used: {error}")
        return None
    identity = (str(cache_dir), hp.model_name, hp.image_size, str(backbone.weights_file), str(data))
    with _LOCK:
        if identity not in _FILLED:
            try:
                cache_dir.mkdir(parents=True, exist_ok=True)
                with open(cache_dir / ".lock", "w") as lock:  # another process filling the same cache
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    fill(hp, channels, cache_dir, echo)
            except (OSError, feature_cache.CacheWriteError) as error:  # a full disk: the jobs compute their own
                echo(f"Feature cache not used: {error}")
                return None
            _FILLED.add(identity)
    return cache_dir


def fill(hp: hp_specs.Hyperparameters, channels: dict[str, Path], cache_dir: Path, echo) -> int:
    """Backbone features of every train and valid image not in the cache yet, with the training job's own
    setup (channels, weights, model, preprocessing) and feature pass; returns how many were added."""
    from classifier.training import feature_cache, setup

    workers = hp_specs.resolve_num_workers("auto")
    job = setup.assemble(hp, channels, with_test=False)
    job = job.with_data(job.data.verified(workers, skip_bad=True))
    channels = [job.data.train, job.data.valid]
    key = job.backbone.cache_key()
    started = time.time()
    with _lines_to(echo, feature_cache.log):  # the pass's own progress lines (images done, images/s, time left)
        added = feature_cache.FeaturePass(job.model, job.preprocessing, BATCH_SIZE, workers).build(cache_dir, key,
                                                                                                  channels)
    echo(f"Feature cache {cache_dir}/{key} ({hp.model_name}, {hp.image_size} px): {added} new of "
         f"{sum(len(c) for c in channels)} images in {time.time() - started:.1f}s")
    return added


class _Echo(logging.Handler):
    def __init__(self, echo):
        super().__init__(logging.INFO)
        self.echo = echo

    def emit(self, record: logging.LogRecord) -> None:
        self.echo(record.getMessage())


@contextmanager
def _lines_to(echo, logger: logging.Logger):
    """A logger's INFO lines to `echo` for a while (this process does not configure logging)."""
    handler, level, propagate = _Echo(echo), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
