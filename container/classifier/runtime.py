"""How the network runs fastest on the machine at hand, for every path that runs it (feature pass,
training, evaluation, serving). Measured by benchmarks/bench_backbone_pass.py (docs/measurements.md):

- memory format: channels_last on CPU as on CUDA (EfficientNet-Lite0's CPU forward ~2x faster);
- forward chunks: on CPU, a batch goes through the backbone in chunks of about 8 images at 224 px
  (`forward_chunk`), whose activations stay in the caches and in malloc's heap (~1.6-2x faster than
  one call on 64 images; 8 measured 1.09x 16 on the idle machine, in turns in one process); the
  results are the same per image (eval-mode BatchNorm);
- threads: the forward uses every core (`forward_threads`), also while DataLoader workers decode beside
  it (training and evaluation loaders): on the idle 2-core machine 1.3-1.4x the forward on the one core
  a worker would leave; leaving the workers their cores was faster only while other busy processes
  shared the machine;
- decoding and the forward take turns in a pass over images on CPU (`decoded_batches`: the feature
  pass): a batch is decoded on every core, then the forward has every core. A worker decoding beside
  the forward takes a core from one OpenMP thread and the other waits for it at every barrier: in the
  same process, on the idle 2-core machine, taking turns reached 85-87 % of the bare forward's speed,
  the worker beside the forward 73 % (the cap, forward + decode on the same cores, ~86 %);
- malloc: glibc keeps freed activation buffers in its heap instead of returning them (`tune_malloc`).

Tried and not kept: bf16 autocast on CPU (marginally faster, ~5 % feature error); torch.compile
(1.2x on the forward after a 3-minute compile on 2 cores: more than a feature pass of a few thousand
images saves); torch.jit.freeze + optimize_for_inference (no faster).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch

MEMORY_FORMAT = torch.channels_last
# Images (at 224x224) per backbone call on CPU; scaled by pixels for other sizes.
CPU_CHUNK_IMAGES_AT_224 = 8


def forward_chunk(image_size: int) -> int:
    """Images per backbone call on CPU for images of this side length."""
    return max(1, round(CPU_CHUNK_IMAGES_AT_224 * (224 / image_size) ** 2))


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def forward_threads(cpus: int | None = None) -> int:
    """Torch threads for a forward that runs while loader workers decode images: every core."""
    return cpus or cpu_count()


def decoded_batches(count: int, decode: Callable[[int], torch.Tensor], batch_size: int,
                    threads: int | None = None) -> Iterator[torch.Tensor]:
    """Batches of `decode(index)` for range(count), each decoded on every core (a thread per core: Pillow
    lets go of the GIL while it decodes and resizes) while the caller waits; the caller's forward on the
    batch then has every core to itself."""
    with ThreadPoolExecutor(max_workers=threads or cpu_count(), thread_name_prefix="decode") as pool:
        for start in range(0, count, batch_size):
            yield torch.stack(list(pool.map(decode, range(start, min(count, start + batch_size)))))


@contextmanager
def threads_while_decoding(device: torch.device):
    """Torch's intra-op threads set for a forward that runs between or beside decoding (CPU only),
    restored afterwards."""
    if torch.device(device).type != "cpu":
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(forward_threads())
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def tune_malloc(mmap_threshold: int = 32 * 1024 * 1024, trim_threshold: int = 256 * 1024 * 1024) -> bool:
    """Keep the forward pass's activation buffers in glibc's heap between calls.

    By default glibc serves blocks of a few MiB with mmap and returns freed heap to the system, so
    every forward page-faults its activations in again: with EfficientNet-Lite0 at 224 px on one
    thread, 27 ms a forward pass instead of 21 (benchmarks/bench_endpoint.py's machine). Fixed
    thresholds (what MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ would set) keep the pages;
    the process's memory then stays at its peak, which it reaches anyway. Returns False where
    this is not glibc.
    """
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    return bool(libc.mallopt(m_mmap_threshold, mmap_threshold)) and bool(libc.mallopt(m_trim_threshold, trim_threshold))
