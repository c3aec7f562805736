"""Profiler rules over the system metrics, the step timings and the job's timeline.

They look at the training loop only (first step to the end of the last epoch), so the initialisation and
the finalisation do not count as idle GPU time. Rules about the GPU say "not applicable" (NoIssuesFound)
on a job without one.
"""
from __future__ import annotations

import math

import numpy as np

from ..jobdata import finite, percentile
from .results import RuleError, TooLittleData, issues, no_issues

MIN_SAMPLES = 5


def _system(data):
    if not data.system:
        raise RuleError("no system metrics: the job ran with profiler=false")
    window = data.system_in_loop()
    if not window or len(window.get("timestamp", [])) == 0:
        raise TooLittleData("no system sample in the training loop yet (the sampler takes one at the loop's first "
                            "step, at each epoch end and every profiler_interval_ms)")
    return window


def _gpus(data, window):
    """(index, util array, memory % array) per GPU with samples; raises when the GPU was not observable."""
    gpus = []
    for index in data.gpu_indices():
        util = finite(window.get(f"gpu{index}_util_percent", []))
        memory = finite(window.get(f"gpu{index}_memory_percent", []))
        gpus.append((index, util, memory))
    profiler = data.job.get("profiler", {})
    if profiler.get("gpus") and not any(len(u) for _, u, _ in gpus):
        raise RuleError("the job had a GPU but its utilisation was not sampled (NVML missing: install nvidia-ml-py)")
    return [g for g in gpus if len(g[1])]


def _not_applicable(what="no GPU in this job"):
    return no_issues(f"not applicable: {what}", applicable=False)


def _time(data, window, mask=None):
    stamps = window["timestamp"] if mask is None else window["timestamp"][mask]
    if not len(stamps) or data.started is None:
        return None
    return float(stamps[0] - data.started)


def _few(window):
    n = len(window["timestamp"])
    if n < MIN_SAMPLES:
        return no_issues(f"only {n} system sample(s) in the training loop (< {MIN_SAMPLES}): too few to judge",
                         samples=n)
    return None


def low_gpu_utilization(data, threshold_p95=70.0, threshold_p5=10.0):
    window = _system(data)
    gpus = _gpus(data, window)
    if not gpus:
        return _not_applicable()
    if few := _few(window):
        return few
    for index, util, _ in gpus:
        p95, p5 = float(np.percentile(util, 95)), float(np.percentile(util, 5))
        if p95 < threshold_p95:
            return issues(f"GPU {index} utilisation p95 is {p95:.0f} % (< {threshold_p95:g} %): under-used",
                          time=_time(data, window), gpu=index, p95=p95, p5=p5)
        if p5 < threshold_p5:
            return issues(f"GPU {index} utilisation fluctuates: p95 {p95:.0f} %, p5 {p5:.0f} % (< {threshold_p5:g} %)",
                          time=_time(data, window), gpu=index, p95=p95, p5=p5)
    return no_issues(", ".join(f"GPU {i}: p95 {np.percentile(u, 95):.0f} %, p5 {np.percentile(u, 5):.0f} %"
                               for i, u, _ in gpus))


def _gpu_util_matrix(gpus):
    length = min(len(u) for _, u, _ in gpus)
    return np.max(np.stack([u[:length] for _, u, _ in gpus]), axis=0)


def cpu_bottleneck(data, threshold=50.0, cpu_threshold=90.0, gpu_threshold=10.0):
    window = _system(data)
    gpus = _gpus(data, window)
    if not gpus:
        return _not_applicable("no GPU in this job (a CPU-only job keeps its CPUs busy by design)")
    if few := _few(window):
        return few
    gpu = _gpu_util_matrix(gpus)
    cpu = window["cpu_percent"][: len(gpu)]
    hit = (cpu > cpu_threshold) & (gpu < gpu_threshold)
    share = 100.0 * hit.mean()
    if share > threshold:
        return issues(f"CPU above {cpu_threshold:g} % while the GPU was below {gpu_threshold:g} % in {share:.0f} % "
                      f"of the samples (> {threshold:g} %)", time=_time(data, window, np.nonzero(hit)[0][:1]),
                      share_percent=share, samples=int(hit.sum()))
    return no_issues(f"CPU-bound with an idle GPU in {share:.0f} % of the samples", share_percent=share)


def io_bottleneck(data, threshold=50.0, io_threshold=50.0, gpu_threshold=70.0):
    window = _system(data)
    if few := _few(window):
        return few
    iowait = window.get("iowait_percent")
    if iowait is None or not len(finite(iowait)):
        raise RuleError("I/O wait was not sampled on this system")
    gpus = _gpus(data, window)
    gpu = _gpu_util_matrix(gpus) if gpus else np.zeros(len(iowait))
    iowait = iowait[: len(gpu)]
    hit = (iowait > io_threshold) & (gpu < gpu_threshold)
    share = 100.0 * hit.mean()
    if share > threshold:
        return issues(f"I/O wait above {io_threshold:g} % while the GPU was below {gpu_threshold:g} % in {share:.0f} %"
                      f" of the samples (> {threshold:g} %)", time=_time(data, window, np.nonzero(hit)[0][:1]),
                      share_percent=share, iowait_p95=percentile(iowait, 95))
    return no_issues(f"I/O wait p95 {percentile(iowait, 95):.1f} %; I/O-bound in {share:.0f} % of the samples",
                     share_percent=share)


def batch_size(data, cpu_threshold_p95=70.0, gpu_threshold_p95=70.0, gpu_memory_threshold_p95=70.0):
    window = _system(data)
    gpus = _gpus(data, window)
    if not gpus:
        return _not_applicable()
    if few := _few(window):
        return few
    cpu = percentile(window["cpu_percent"], 95)
    gpu = max(float(np.percentile(u, 95)) for _, u, _ in gpus)
    memories = [float(np.percentile(m, 95)) for _, _, m in gpus if len(m)]
    memory = max(memories) if memories else math.nan
    if (cpu < cpu_threshold_p95 and gpu < gpu_threshold_p95
            and (math.isnan(memory) or memory < gpu_memory_threshold_p95)):
        return issues(f"p95 of CPU {cpu:.0f} %, GPU {gpu:.0f} %, GPU memory {memory:.0f} % are all below their "
                      f"thresholds ({cpu_threshold_p95:g}/{gpu_threshold_p95:g}/{gpu_memory_threshold_p95:g} %)",
                      time=_time(data, window), cpu_p95=cpu, gpu_p95=gpu, gpu_memory_p95=memory)
    return no_issues(f"p95 of CPU {cpu:.0f} %, GPU {gpu:.0f} %, GPU memory {memory:.0f} %")


def gpu_memory_increase(data, increase=10.0, window=20):
    samples = _system(data)
    gpus = [(i, m) for i, _, m in _gpus(data, samples)]
    if not gpus:
        memory_cols = [k for k in samples if k.endswith("_memory_percent") and k.startswith("gpu")]
        gpus = [(int(k[3:].split("_")[0]), finite(samples[k])) for k in memory_cols if len(finite(samples[k]))]
    if not gpus:
        return _not_applicable()
    width = max(1, int(window))
    for index, memory in gpus:
        if len(memory) < 2 * width:
            continue
        means = np.convolve(memory, np.ones(width) / width, mode="valid")
        rise = float(means.max() - means[0])
        if rise > increase:
            at = int(np.argmax(means > means[0] + increase)) + width - 1
            return issues(f"GPU {index} memory grew by {rise:.1f} percentage points (> {increase:g}): "
                          f"{means[0]:.1f} % -> {means.max():.1f} %",
                          time=float(samples["timestamp"][at] - data.started) if data.started else None,
                          gpu=index, increase=rise)
    return no_issues(f"GPU memory stable (window {width} samples)")


def step_outlier(data, stddev=5.0, n_outliers=10):
    steps = data.steps
    if not steps or "step_s" not in steps:
        raise RuleError("no step timings: the job ran with profiler=false")
    durations = steps["step_s"]
    if len(durations) < 3:
        return no_issues(f"{len(durations)} step(s) timed: too few to judge")
    mean, sd = float(np.mean(durations)), float(np.std(durations))
    limit = mean + stddev * sd
    outliers = np.nonzero(durations > limit)[0] if sd > 0 else np.array([], dtype=int)
    if len(outliers) > n_outliers:
        first = int(outliers[0])
        return issues(f"{len(outliers)} steps took longer than mean + {stddev:g} sd = {limit:.3f} s "
                      f"(mean {mean:.3f} s, sd {sd:.3f} s; allowed {n_outliers}); "
                      f"longest {durations[outliers].max():.3f} s",
                      step=int(steps["step"][first]), time=float(steps["elapsed_s"][first]), outliers=len(outliers),
                      mean=mean, sd=sd, limit=limit, outlier_steps=[int(steps["step"][i]) for i in outliers[:20]])
    return no_issues(f"{len(outliers)} outlier step(s) (limit {limit:.3f} s, allowed {n_outliers}); mean {mean:.3f} s",
                     outliers=len(outliers), mean=mean, sd=sd)


def max_initialization_time(data, threshold=20.0):
    started = data.started
    if started is None:
        raise RuleError("the job's start time was not recorded")
    first, _ = data.loop_window()
    if first is not None and first < started:  # a resumed run: the step timings hold earlier runs' steps too
        first = data.job.get("first_step_start")
    limit = threshold * 60
    if first is None:
        ended = data.job.get("ended")
        waited = (ended or data.now) - started
        if waited > limit:
            return issues(f"no training step after {waited / 60:.1f} min (> {threshold:g} min)", time=waited,
                          initialization_s=waited)
        if ended:
            return no_issues(f"no training step in this run ({waited:.0f} s from start to end: it resumed after "
                             f"the last epoch)")
        return no_issues(f"no training step yet ({waited:.0f} s since the start)")
    seconds = first - started
    if seconds > limit:
        return issues(f"the first step began {seconds / 60:.1f} min after the start (> {threshold:g} min)",
                      time=seconds, initialization_s=seconds)
    return no_issues(f"initialisation took {seconds:.1f} s (limit {threshold:g} min)", initialization_s=seconds)


def dataloader(data, min_threshold=70.0, max_threshold=200.0, min_data_wait_percent=10.0):
    workers = data.job.get("num_workers")
    if workers is None:
        raise RuleError("the number of data loader workers was not recorded")
    cores = data.cpu_cores()
    percent = 100.0 * workers / cores
    steps = data.steps
    wait = None
    if steps and "data_s" in steps and len(steps["data_s"]):
        total = float(np.nansum(steps["step_s"]))
        wait = 100.0 * float(np.nansum(steps["data_s"])) / total if total > 0 else 0.0
    values = dict(workers=workers, cores=cores, workers_percent_of_cores=percent, data_wait_percent=wait)
    if percent > max_threshold:
        return issues(f"{workers} data loader workers on {cores} cores ({percent:.0f} % > {max_threshold:g} %): "
                      f"too many processes compete for the CPUs", time=None, **values)
    if percent < min_threshold and (wait is None or wait > min_data_wait_percent):
        waited = f"; waiting for data took {wait:.0f} % of the step time" if wait is not None else ""
        return issues(f"{workers} data loader worker(s) on {cores} cores ({percent:.0f} % < {min_threshold:g} %)"
                      f"{waited}", **values)
    waited = f"waiting for data {wait:.0f} % of the step time" if wait is not None else "no step timings"
    return no_issues(f"{workers} worker(s) on {cores} cores ({percent:.0f} %); {waited}", **values)


RULES = {
    "LowGPUUtilization": low_gpu_utilization,
    "CPUBottleneck": cpu_bottleneck,
    "IOBottleneck": io_bottleneck,
    "BatchSize": batch_size,
    "GPUMemoryIncrease": gpu_memory_increase,
    "StepOutlier": step_outlier,
    "MaxInitializationTime": max_initialization_time,
    "Dataloader": dataloader,
}
