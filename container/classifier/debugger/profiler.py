"""The profiler: system metrics on a background thread, each training step's phases, an optional
torch.profiler window.

Files (under the output data dir, so they reach output.tar.gz):
  profiler/system_metrics.csv  one row per sample (every `profiler_interval_ms`, default 500 ms):
      timestamp (Unix s), elapsed_s (since the job started), cpu_percent (all cores), cpu<i>_percent (each core),
      iowait_percent, memory_percent, memory_used_mb, process_rss_mb (this process and its children, e.g.
      data loader workers), loader_processes (child processes), disk_read_mb_s, disk_write_mb_s,
      net_recv_mb_s, net_sent_mb_s, and per GPU (through NVML, when there is one): gpu<i>_util_percent,
      gpu<i>_memory_percent, gpu<i>_memory_used_mb
  profiler/step_timings.csv    one row per training step: step, epoch, timestamp (end of the step, Unix s),
      elapsed_s, data_s (waiting for the batch), forward_s, backward_s, optimizer_s, step_s (their sum),
      batch_size, loss
  profiler/trace/torch_trace.json, operators.txt, operators.csv   with profiler_trace_steps > 0: a Chrome
      trace (chrome://tracing, https://ui.perfetto.dev) of that many steps from profiler_trace_start_step,
      and its operator table (self CPU/CUDA time per operator)
"""
from __future__ import annotations

import csv
import logging
import threading
import time
from pathlib import Path

from ..observers import Observer
from . import config
from .records import open_append, read_jsonl

log = logging.getLogger(__name__)
STEP_COLUMNS = ["step", "epoch", "timestamp", "elapsed_s", "data_s", "forward_s", "backward_s", "optimizer_s",
                "step_s", "batch_size", "loss"]


class GPUMonitor:
    """Utilisation and memory of each GPU through NVML (nvidia-ml-py's `pynvml`); nothing without a GPU.

    Without pynvml but with CUDA, memory comes from torch.cuda.mem_get_info and utilisation stays empty.
    """

    def __init__(self):
        self.nvml, self.handles, self.torch_devices = None, [], 0
        try:
            import pynvml

            pynvml.nvmlInit()
            self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
            self.nvml = pynvml
        except Exception as error:  # no library, no driver, no GPU
            self.nvml, self.handles = None, []
            try:
                import torch

                if torch.cuda.is_available():
                    self.torch_devices = torch.cuda.device_count()
                    log.warning("NVML unavailable (%s): GPU utilisation is not sampled, GPU memory comes from "
                                "torch.cuda; install nvidia-ml-py for both", error)
            except Exception:
                self.torch_devices = 0

    @property
    def count(self) -> int:
        return len(self.handles) or self.torch_devices

    def columns(self) -> list[str]:
        return [f"gpu{i}_{c}" for i in range(self.count) for c in ("util_percent", "memory_percent", "memory_used_mb")]

    def sample(self) -> list:
        values = []
        if self.nvml is not None:
            for handle in self.handles:
                try:
                    util = self.nvml.nvmlDeviceGetUtilizationRates(handle).gpu
                    memory = self.nvml.nvmlDeviceGetMemoryInfo(handle)
                    values += [float(util), 100.0 * memory.used / memory.total, memory.used / 2**20]
                except Exception:
                    values += ["", "", ""]
            return values
        if self.torch_devices:
            import torch

            for index in range(self.torch_devices):
                try:
                    free, total = torch.cuda.mem_get_info(index)
                    values += ["", 100.0 * (total - free) / total, (total - free) / 2**20]
                except Exception:
                    values += ["", "", ""]
        return values

    def close(self) -> None:
        if self.nvml is not None:
            try:
                self.nvml.nvmlShutdown()
            except Exception:
                pass


class SystemSampler:
    """Samples system metrics every `interval` seconds on a daemon thread and appends them to a CSV."""

    def __init__(self, path: Path, interval: float, started: float, gpu: GPUMonitor | None = None):
        import psutil

        self.psutil = psutil
        self.path, self.interval, self.started = Path(path), interval, started
        self.gpu = gpu if gpu is not None else GPUMonitor()
        self.cores = psutil.cpu_count() or 1
        self.process = psutil.Process()
        self._stop = threading.Event()
        self._thread = None
        self._lock = threading.Lock()  # the sampling thread and sample_now() write the same CSV
        self.samples = 0

    def columns(self) -> list[str]:
        return (["timestamp", "elapsed_s", "cpu_percent"] + [f"cpu{i}_percent" for i in range(self.cores)]
                + ["iowait_percent", "memory_percent", "memory_used_mb", "process_rss_mb", "loader_processes",
                   "disk_read_mb_s", "disk_write_mb_s", "net_recv_mb_s", "net_sent_mb_s"] + self.gpu.columns())

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.is_file() or self.path.stat().st_size == 0
        if not new:  # a resumed job appends; a header from another machine would not fit
            with open(self.path) as handle:
                new = handle.readline().strip().split(",") != self.columns()
            if new:
                self.path.rename(self.path.with_name(f"system_metrics.{int(time.time())}.csv"))
        self._handle = open_append(self.path)
        self._writer = csv.writer(self._handle)
        if new:
            self._writer.writerow(self.columns())
        self._thread = threading.Thread(target=self._run, name="profiler-sampler", daemon=True)
        self._thread.start()

    def _io(self):
        disk, net = self.psutil.disk_io_counters(), self.psutil.net_io_counters()
        return (disk.read_bytes if disk else 0, disk.write_bytes if disk else 0,
                net.bytes_recv if net else 0, net.bytes_sent if net else 0)

    def _run(self) -> None:
        with self._lock:
            self.psutil.cpu_percent(percpu=True)  # measurements start here, in the sampling thread
            self.psutil.cpu_times_percent()
            self._last = (time.time(), self._io())
        while not self._stop.wait(self.interval):
            try:
                self.sample_now()
            except Exception as error:  # never let the sampler take the job down
                log.warning("profiler sampler stopped: %s", error)
                return

    def sample_now(self) -> None:
        """One sample now (also from the training loop: its first step and each epoch end, so that a loop
        shorter than one interval has samples too)."""
        with self._lock:
            if getattr(self, "_handle", None) is None:
                return
            if not hasattr(self, "_last"):  # before the sampling thread primed the counters
                self.psutil.cpu_percent(percpu=True)
                self._last = (time.time(), self._io())
            self._writer.writerow(self.sample())
            self.samples += 1
            if self.samples % 20 == 0:
                self._handle.flush()

    def flush(self) -> None:
        with self._lock:
            if getattr(self, "_handle", None) is not None:
                self._handle.flush()

    def sample(self) -> list:
        now = time.time()
        per_core = self.psutil.cpu_percent(percpu=True)
        times = self.psutil.cpu_times_percent()
        memory = self.psutil.virtual_memory()
        io = self._io()
        last_time, last_io = self._last
        seconds = max(now - last_time, 1e-6)
        rates = [max(0, a - b) / 2**20 / seconds for a, b in zip(io, last_io, strict=True)]
        self._last = (now, io)
        rss, children = self._process_memory()
        return ([round(now, 3), round(now - self.started, 3), round(sum(per_core) / len(per_core), 1)]
                + [round(v, 1) for v in per_core]
                + [round(getattr(times, "iowait", 0.0), 1), round(memory.percent, 1),
                   round((memory.total - memory.available) / 2**20, 1), round(rss, 1), children]
                + [round(r, 3) for r in rates]
                + [round(v, 2) if isinstance(v, float) else v for v in self.gpu.sample()])

    def _process_memory(self):
        try:
            children = self.process.children(recursive=True)
            rss = self.process.memory_info().rss
            for child in children:
                try:
                    rss += child.memory_info().rss
                except self.psutil.Error:
                    pass
            return rss / 2**20, len(children)
        except self.psutil.Error:
            return 0.0, 0

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            if getattr(self, "_handle", None) is not None:
                self._handle.flush()
                self._handle.close()
                self._handle = None
        self.gpu.close()


class TraceWindow:
    """torch.profiler over a few training steps, exported as a Chrome trace and an operator table."""

    def __init__(self, directory: Path, start_step: int, steps: int, device):
        self.directory, self.start_step, self.steps, self.device = Path(directory), start_step, steps, device
        self.profile = None
        self.recorded = 0
        self.done = steps <= 0

    def after_step(self, step: int) -> None:
        if self.done:
            return
        if self.profile is None:
            if step + 1 >= self.start_step:  # record the steps that follow this one
                self._begin()
            return
        self.recorded += 1
        self.profile.step()
        if self.recorded >= self.steps:
            self.finish()

    def _begin(self) -> None:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU]
        if getattr(self.device, "type", "cpu") == "cuda":
            activities.append(ProfilerActivity.CUDA)
        self.profile = profile(activities=activities, record_shapes=True)
        self.profile.__enter__()

    def finish(self) -> None:
        """Stop and export (also when the epoch ends before the window is full)."""
        if self.done or self.profile is None:
            self.done = True
            return
        self.done = True
        try:
            self.profile.__exit__(None, None, None)
            self.directory.mkdir(parents=True, exist_ok=True)
            self.profile.export_chrome_trace(str(self.directory / "torch_trace.json"))
            averages = self.profile.key_averages()
            cuda = getattr(self.device, "type", "cpu") == "cuda"
            sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
            (self.directory / "operators.txt").write_text(
                f"torch.profiler over {self.recorded} training step(s) from step {self.start_step}\n"
                + averages.table(sort_by=sort, row_limit=40) + "\n")
            rows = []
            for event in averages:
                rows.append([event.key, event.count, round(event.self_cpu_time_total / 1000, 3),
                             round(event.cpu_time_total / 1000, 3),
                             round(getattr(event, "self_device_time_total",
                                           getattr(event, "self_cuda_time_total", 0)) / 1000, 3)])
            rows.sort(key=lambda r: -(r[4] if cuda else r[2]))
            with open(self.directory / "operators.csv", "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["operator", "calls", "self_cpu_ms", "cpu_total_ms", "self_device_ms"])
                writer.writerows(rows)
            log.info("torch.profiler trace of %d step(s) written to %s", self.recorded, self.directory)
        except Exception as error:
            log.warning("torch.profiler trace failed: %s", error)
        finally:
            self.profile = None


class ProfilerObserver(Observer):
    wants_step_timings = True  # on GPU the loop synchronises to time each phase

    def __init__(self, hp, layout: config.Layout):
        self.hp, self.layout = hp, layout
        self.sampler = None
        self.trace = None
        self.epoch = 1
        self.started = time.time()
        self._steps_handle = None
        self.described: dict = {}
        self._stepped = False

    def on_train_start(self, model, loss_fn, context):
        self.started = context.get("started", time.time())
        earlier = read_jsonl(self.layout.epochs_file)  # a resumed job goes on from its last recorded epoch
        self.epoch = (earlier[-1]["epoch"] + 1) if earlier else 1
        self.sampler = SystemSampler(self.layout.system_file, self.hp.profiler_interval_ms / 1000, self.started)
        self.sampler.start()
        self.layout.steps_file.parent.mkdir(parents=True, exist_ok=True)
        new = not self.layout.steps_file.is_file() or self.layout.steps_file.stat().st_size == 0
        self._steps_handle = open_append(self.layout.steps_file)
        self._steps = csv.writer(self._steps_handle)
        if new:
            self._steps.writerow(STEP_COLUMNS)
        self.trace = TraceWindow(self.layout.trace_dir, self.hp.profiler_trace_start_step, self.hp.profiler_trace_steps,
                                 context.get("device"))
        self.described = {"interval_ms": self.hp.profiler_interval_ms, "gpus": self.sampler.gpu.count,
                          "nvml": self.sampler.gpu.nvml is not None, "cores": self.sampler.cores,
                          "trace_steps": self.hp.profiler_trace_steps,
                          "trace_start_step": self.hp.profiler_trace_start_step}
        log.info("Profiler: system metrics every %d ms (%d cores, %d GPU(s)%s) and step timings to %s",
                 self.hp.profiler_interval_ms, self.sampler.cores, self.sampler.gpu.count,
                 "" if self.sampler.gpu.count == 0 or self.sampler.gpu.nvml else ", no NVML", self.layout.profiler)

    def on_train_step(self, step, timings, loss, labels, log_probs):
        if not self._stepped:  # the loop's first step (of this run): a sample inside the loop's window
            self._stepped = True
            self.sampler.sample_now()
        now = time.time()
        total = sum(timings.values())
        self._steps.writerow([step, self.epoch, round(now, 4), round(now - self.started, 4),
                              *(f"{timings.get(k, 0.0):.6f}" for k in ("data", "forward", "backward", "optimizer")),
                              f"{total:.6f}", int(labels.shape[0]), f"{float(loss.detach()):.6g}"])
        self.trace.after_step(step)

    def on_mode(self, mode):
        if mode == "eval" and self.trace is not None and self.trace.profile is not None:
            self.trace.finish()

    def on_epoch_end(self, epoch, metrics):
        self.epoch = epoch + 1
        if self._steps_handle is not None:
            self._steps_handle.flush()
        if self.sampler is not None:
            self.sampler.sample_now()  # the epoch's end, inside the loop's window however short the epoch
            self.sampler.flush()
        return None

    def on_train_end(self, summary):
        self.close()

    def close(self) -> None:
        if self.trace is not None:
            self.trace.finish()
        if self.sampler is not None:
            self.sampler.stop()
        if self._steps_handle is not None:
            self._steps_handle.close()
            self._steps_handle = None
