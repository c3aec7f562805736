"""The smdebug hook on the project's loop (a tiny model, synthetic batches), the system sampler with and
without a GPU (a stand-in NVML), and the torch.profiler window."""
import csv
import json
import sys
import time
import types

import pytest
import torch
from torch import nn

from classifier.debugger import config
from classifier.debugger.hook import HookObserver
from classifier.debugger.jobdata import JobData
from classifier.debugger.profiler import GPUMonitor, SystemSampler, TraceWindow
from classifier.debugger.rules import evaluate
from classifier.debugger.tensors import TensorReader
from classifier.observers import Observers
from classifier.training import hyperparameters
from classifier.training.loop import NLLWithLabelSmoothing, Precision, evaluate as evaluate_model, train_one_epoch


class TinyClassifier(nn.Module):
    """The shape of the project's ImageClassifier: a frozen backbone and a head ending in LogSoftmax."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(12, 16).requires_grad_(False)
        self.head = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3), nn.LogSoftmax(dim=1))
        self.backbone_frozen = True

    def forward(self, x):
        return self.head(self.backbone(x))


def batches(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(6, 12, generator=g), torch.randint(0, 3, (6,), generator=g)) for _ in range(n)]


def train(model, observer, loss_fn, epochs=2, steps=5, first_epoch=1):
    precision = Precision(torch.device("cpu"))
    optimizer = torch.optim.SGD(model.head.parameters(), lr=0.1)
    step = (first_epoch - 1) * steps
    for epoch in range(first_epoch, first_epoch + epochs):
        train_one_epoch(model, batches(steps, epoch), optimizer, loss_fn, precision, precision.scaler(), observer, step)
        step += steps
        evaluate_model(model, batches(3, 100 + epoch), precision, observer)
        observer.on_epoch_end(epoch, {"train_loss": 1.0, "valid_loss": 1.0})
    return loss_fn


@pytest.fixture
def layout(tmp_path):
    return config.Layout(tmp_path / "data", tmp_path / "tensors")


def start(observer, model, loss_fn):
    observer.on_train_start(model, loss_fn, {"device": torch.device("cpu"), "classes": ["a", "b", "c"]})


def test_hook_saves_the_collections_at_the_intervals(layout, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(layout.data.parent))  # no debughookconfig.json there
    hp = hyperparameters.parse({"debugger": "true", "debugger_train_interval": "3", "debugger_eval_interval": "2"})
    hook = HookObserver(hp, layout)
    model, loss_fn = TinyClassifier(), NLLWithLabelSmoothing(0.0)
    start(hook, model, loss_fn)
    assert hook.described["watched"] == "head" and hook.described["relu_modules"] == ["1"]
    precision = Precision(torch.device("cpu"))
    optimizer = torch.optim.SGD(model.head.parameters(), lr=0.1)
    observer = Observers([hook])
    for epoch, first in ((1, 0), (2, 5)):
        train_one_epoch(model, batches(5, epoch), optimizer, loss_fn, precision, precision.scaler(), observer, first)
        evaluate_model(model, batches(3, 10 + epoch), precision, observer)
        observer.on_epoch_end(epoch, {})
    observer.on_train_end({})
    data = TensorReader(layout.tensors).read()
    assert data.error is None
    assert data.steps("train") == [0, 3, 6, 9] and data.steps("eval") == [0, 2, 4]
    assert data.collections() == {"losses", "weights", "biases", "gradients", "relu_output"}
    assert {s.name for s in data.select("losses")} == {"NLLWithLabelSmoothing_output_0"}
    relu = data.select("relu_output")[0]
    assert relu.unit_active.shape == (8,)
    assert not any(s.name.startswith("backbone") for s in data.stats)  # the frozen backbone is not watched
    # the tensors were copied into the output data (so they reach output.tar.gz)
    assert (layout.debugger / "tensors" / "index").is_dir()


def test_nan_weights_are_caught_by_exploding_tensor(layout):
    hp = hyperparameters.parse({"debugger": "true", "debugger_train_interval": "1"})
    hook = HookObserver(hp, layout)
    model = TinyClassifier()
    loss_fn = NLLWithLabelSmoothing(0.0)
    start(hook, model, loss_fn)
    observer = Observers([hook])
    train(model, observer, loss_fn, epochs=1)
    with torch.no_grad():
        model.head[0].weight[0, 0] = float("nan")
    train(model, observer, loss_fn, epochs=1, first_epoch=2)
    reader = TensorReader(layout.tensors)
    [result] = evaluate(JobData(layout, tensors=reader.read()), ["ExplodingTensor"])
    assert result.status == "IssuesFound" and result.step == 5, result.line()
    hook.on_train_end({})


def test_resumed_job_continues_the_step_numbers(layout):
    layout.debugger.mkdir(parents=True)
    layout.epochs_file.write_text(json.dumps({"epoch": 2, "train_steps": [5, 9], "eval_steps": [3, 5]}) + "\n")
    hp = hyperparameters.parse({"debugger": "true", "debugger_train_interval": "5", "debugger_eval_interval": "3"})
    hook = HookObserver(hp, layout)
    model, loss_fn = TinyClassifier(), NLLWithLabelSmoothing(0.0)
    start(hook, model, loss_fn)
    observer = Observers([hook])
    train(model, observer, loss_fn, epochs=1, first_epoch=3)
    observer.on_train_end({})
    data = TensorReader(layout.tensors).read()
    assert data.steps("train") == [10] and data.steps("eval") == [6]


def fake_nvml(util=77, used=3 * 2**30, total=16 * 2**30):
    module = types.ModuleType("pynvml")
    module.nvmlInit = lambda: None
    module.nvmlShutdown = lambda: None
    module.nvmlDeviceGetCount = lambda: 1
    module.nvmlDeviceGetHandleByIndex = lambda i: f"gpu{i}"
    module.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=util, memory=10)
    module.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=used, total=total, free=total - used)
    return module


def sample_for(path, seconds=0.5, gpu=None):
    sampler = SystemSampler(path, 0.05, time.time(), gpu)
    sampler.start()
    time.sleep(seconds)
    sampler.stop()
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_sampler_records_system_metrics_and_gpu_through_nvml(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml())
    rows = sample_for(tmp_path / "system_metrics.csv", gpu=GPUMonitor())
    assert len(rows) >= 3
    row = rows[-1]
    for column in ("timestamp", "elapsed_s", "cpu_percent", "cpu0_percent", "iowait_percent", "memory_percent",
                   "process_rss_mb", "disk_read_mb_s", "net_recv_mb_s"):
        assert row[column] != "", column
    assert float(row["gpu0_util_percent"]) == 77
    assert float(row["gpu0_memory_percent"]) == pytest.approx(18.75)
    assert float(row["gpu0_memory_used_mb"]) == pytest.approx(3072)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_sampler_without_gpu_has_no_gpu_columns(tmp_path, monkeypatch):
    broken = types.ModuleType("pynvml")

    def fail():
        raise RuntimeError("NVML Shared Library Not Found")

    broken.nvmlInit = fail
    monkeypatch.setitem(sys.modules, "pynvml", broken)
    monitor = GPUMonitor()
    assert monitor.count == 0 and monitor.columns() == []
    rows = sample_for(tmp_path / "system_metrics.csv", 0.2, monitor)
    assert rows and not any(k.startswith("gpu") for k in rows[0])


def test_torch_profiler_window_exports_a_chrome_trace(tmp_path):
    model = TinyClassifier()
    trace = TraceWindow(tmp_path / "trace", start_step=1, steps=2, device=torch.device("cpu"))
    optimizer = torch.optim.SGD(model.head.parameters(), lr=0.1)
    for step, (x, y) in enumerate(batches(6)):
        loss = nn.functional.nll_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        trace.after_step(step)
    assert trace.done and trace.recorded == 2
    events = json.loads((tmp_path / "trace" / "torch_trace.json").read_text())
    assert events["traceEvents"]
    with open(tmp_path / "trace" / "operators.csv") as handle:
        operators = list(csv.DictReader(handle))
    assert any(r["operator"] == "aten::addmm" for r in operators)
    assert "2 training step(s)" in (tmp_path / "trace" / "operators.txt").read_text()


def test_hook_comes_from_debughookconfig_json_when_sagemaker_supplies_one(tmp_path, monkeypatch):
    base = tmp_path / "opt_ml"
    (base / "input" / "config").mkdir(parents=True)
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    local_path = tmp_path / "sagemaker-tensors"
    (base / "input" / "config" / "debughookconfig.json").write_text(json.dumps({
        "LocalPath": str(local_path), "HookParameters": {"save_interval": "4"},
        "CollectionConfigurations": [{"CollectionName": "losses"}, {"CollectionName": "gradients"},
                                     {"CollectionName": "relu_output"}]}))
    layout = config.Layout(base / "output" / "data", base / "output" / "tensors")
    hook = HookObserver(hyperparameters.parse({"debugger": "true", "debugger_train_interval": "1"}), layout)
    model, loss_fn = TinyClassifier(), NLLWithLabelSmoothing(0.0)
    start(hook, model, loss_fn)
    assert hook.described["source"].endswith("debughookconfig.json")
    observer = Observers([hook])
    train(model, observer, loss_fn, epochs=1)
    observer.on_train_end({})
    data = TensorReader(local_path).read()
    assert data.steps("train") == [0, 4] and data.collections() == {"losses", "gradients", "relu_output"}
    assert not (base / "output" / "tensors").exists()


def test_a_hook_that_cannot_start_does_not_stop_training(layout, monkeypatch):
    from classifier.debugger import hook as hook_module

    def unavailable():
        raise ImportError("No module named 'smdebug'")

    monkeypatch.setattr(hook_module, "import_smdebug", unavailable)
    hook = HookObserver(hyperparameters.parse({"debugger": "true"}), layout)
    model, loss_fn = TinyClassifier(), NLLWithLabelSmoothing(0.0)
    start(hook, model, loss_fn)
    assert hook.hook is None
    train(model, Observers([hook]), loss_fn, epochs=1)
    hook.on_train_end({})
