"""Real training jobs (in-process, tiny images) with planted faults: the rules catch them, a healthy run stays
clean, StopTraining ends a run early with a valid model, and the report is written and renders."""
import base64
import io
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

import browser
from classifier.debugger import cli, config
from classifier.training.main import main
from helpers import FAST_HP, args, write_image_set

pytestmark = pytest.mark.slow  # every test here runs a training job

FAST = {**FAST_HP, "epochs": "2", "debugger": "true", "profiler": "true", "debugger_train_interval": "3",
        "debugger_eval_interval": "1", "profiler_interval_ms": "100"}


def statuses(output: Path) -> dict:
    results = json.loads((output / "rules" / "rule_results.json").read_text())["rules"]
    return {r["rule"]: r for r in results}


def train_job(base: Path, data: Path, hp: dict) -> int:
    """A fresh /opt/ml tree at `base` with train and valid linked to `data`; returns the exit code."""
    shutil.rmtree(base, ignore_errors=True)
    for channel in ("train", "valid"):
        (base / "input" / "data").mkdir(parents=True, exist_ok=True)
        (base / "input" / "data" / channel).symlink_to((data / channel).resolve())
    (base / "input" / "config").mkdir(parents=True)
    return main(args(hp))


@pytest.fixture(scope="module")
def healthy(image_set, tmp_path_factory):
    """A short healthy run with the hook, the profiler and a 2-step torch.profiler window."""
    base = tmp_path_factory.mktemp("healthy") / "opt_ml"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SAGEMAKER_BASE_DIR", str(base))
        for name in ("SM_MODEL_DIR", "SM_OUTPUT_DATA_DIR", "SM_CHANNEL_TRAIN", "SM_CHANNEL_VALID"):
            mp.delenv(name, raising=False)
        # sampling every 100 ms: enough system samples however fast the short job runs
        code = train_job(base, image_set, {**FAST, "profiler_trace_steps": "2", "profiler_trace_start_step": "2",
                                           "profiler_interval_ms": "100"})
    assert code == 0, (base / "output" / "failure").read_text() if (base / "output" / "failure").exists() else code
    return base


def test_healthy_run_is_clean_and_writes_every_file(healthy):
    output = healthy / "output" / "data"
    results = statuses(output)
    for rule in config.TENSOR_RULES:
        assert results[rule]["status"] == "NoIssuesFound", results[rule]
    for rule in config.PROFILER_RULES:
        assert results[rule]["status"] in ("NoIssuesFound", "IssuesFound"), results[rule]
    job = json.loads((output / "debugger" / "job.json").read_text())
    assert job["status"] == "Completed" and job["first_step_start"] > job["started"] and job["loop_end"]
    assert job["hook"]["watched"] == "head" and job["train_label_counts"] == [30, 30, 30, 30]
    epochs = [json.loads(line) for line in (output / "debugger" / "epochs.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [1, 2] and epochs[1]["train_steps"] == [8, 15]
    with open(output / "profiler" / "step_timings.csv") as handle:
        header, *rows = handle.read().splitlines()
    assert header.split(",") == ["step", "epoch", "timestamp", "elapsed_s", "data_s", "forward_s", "backward_s",
                                 "optimizer_s", "step_s", "batch_size", "loss"]
    assert len(rows) == 16
    system = (output / "profiler" / "system_metrics.csv").read_text().splitlines()
    assert system[0].startswith("timestamp,elapsed_s,cpu_percent,cpu0_percent") and len(system) > 5
    assert (output / "profiler" / "trace" / "torch_trace.json").stat().st_size > 1000
    assert (healthy / "output" / "tensors" / "index").is_dir() and (output / "debugger" / "tensors" / "index").is_dir()
    assert (healthy / "model").iterdir()


def test_report_is_self_contained_with_its_plots(healthy):
    report = healthy / "output" / "data" / "debugger-report.html"
    text = report.read_text()
    for title in ("Job summary", "Rules summary", "Loss curves", "System utilisation over time", "Step durations",
                  "Waiting for data against compute", "GPU memory", "Tensors saved by the hook", "torch.profiler"):
        assert title in text, title
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(images) >= 7
    for data in images:
        Image.open(io.BytesIO(base64.b64decode(data))).verify()
    assert not re.search(r'(src|href)="(https?:)?//', text)  # nothing from the network


def test_offline_rerun_and_make_report(healthy, capsys):
    code = cli.main(["rules", str(healthy), "--no-write"])
    printed = capsys.readouterr().out
    for rule in config.TENSOR_RULES:
        assert f"{rule}: NoIssuesFound" in printed
    assert code in (0, 1)
    from scripts import report

    out = healthy / "again.html"
    assert report.main([str(healthy), "--out", str(out), "--rerun-rules"]) == 0
    assert capsys.readouterr().out.strip().endswith("again.html") and out.stat().st_size > 50_000
    # an output.tar.gz downloaded from S3 and extracted: the output data dir alone
    extracted = healthy.parent / "extracted"
    shutil.copytree(healthy / "output" / "data", extracted)
    assert cli.main(["report", str(extracted)]) == 0
    assert (extracted / "debugger-report.html").is_file()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium_without_errors(healthy, tmp_path):
    report = healthy / "output" / "data" / "debugger-report.html"
    shot = tmp_path / "report.png"
    command = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
               f"--screenshot={shot}", "--window-size=1280,3000", report.as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Failed to load" in line]
    assert not console, console
    image = Image.open(shot).convert("L")
    assert image.size == (1280, 3000)
    low, high = image.getextrema()
    assert high - low > 100 and len(image.getcolors(maxcolors=1 << 16) or range(1 << 16)) > 50  # plots drawn


@pytest.mark.skipif(not browser.available(), reason="chromium is not installed")
def test_names_with_markup_show_as_text(healthy, tmp_path):
    """The job's name, its class names (the data set's folders) and its hyperparameters are user data: a job
    whose name, a class and a hyperparameter value are `<img src=x onerror=alert(1)>` shows them as text."""
    output = tmp_path / "data"
    shutil.copytree(healthy / "output" / "data", output)
    job_file = output / "debugger" / "job.json"
    job = json.loads(job_file.read_text())
    job["classes"][1] = browser.MARKUP
    job["hyperparameters"]["model_name"] = browser.MARKUP
    job_file.write_text(json.dumps(job))
    assert cli.main(["report", str(output), "--name", browser.MARKUP, "--out", str(tmp_path / "markup.html")]) == 0
    page = tmp_path / "markup.html"
    assert browser.MARKUP not in page.read_text()
    rendered = browser.render(page, tmp_path, height=3000)
    browser.shows_as_text(rendered, f"Training job report: {browser.MARKUP}")
    assert rendered.console == [] and all(width > 100 for width, _ in rendered.images)
    # the title, the summary's Job row, the class in the per-class table and the hyperparameter (the
    # <details> are closed: their text is in the page, not in innerText)
    text = page.read_text()
    assert text.count("&lt;img src=x onerror=alert(1)&gt;") == 5


def test_huge_learning_rate_is_caught(opt_ml, image_set):
    opt_ml.link("train", image_set / "train")
    opt_ml.link("valid", image_set / "valid")
    hp = {**FAST, "profiler": "false", "optimizer": "sgd", "lr": "10", "debugger_train_interval": "1"}
    main(args(hp))  # may end as a failure (diverged): the rules ran at each epoch end regardless
    results = statuses(opt_ml.root / "output" / "data")
    fired = [r for r in ("ExplodingTensor", "LossNotDecreasing") if results[r]["status"] == "IssuesFound"]
    assert fired, {r: results[r]["message"] for r in results}
    assert results[fired[0]]["step"] is not None and results[fired[0]]["recommendation"]


def test_tiny_training_set_overfits_and_stop_training_keeps_a_valid_model(opt_ml, tmp_path):
    data = write_image_set(tmp_path / "tiny", classes=4, train=2, valid=8, test=0, size=40)
    opt_ml.link("train", data / "train")
    opt_ml.link("valid", data / "valid")
    hp = {**FAST, "profiler": "false", "epochs": "12", "batch_size": "2", "lr": "0.01",
          "debugger_stop_rules": "Overfit,Overtraining"}
    assert main(args(hp)) == 0, opt_ml.failure()
    output = opt_ml.root / "output" / "data"
    results = statuses(output)
    assert "IssuesFound" in (results["Overfit"]["status"], results["Overtraining"]["status"])
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["final"]["epochs_run"] < 12 and metrics["final"]["stopped"].startswith("StopTraining: rule Over")
    job = json.loads((output / "debugger" / "job.json").read_text())
    assert job["stopped_by_rule"] in ("Overfit", "Overtraining")
    from classifier.artifact import load_artifact

    model, artifact, _ = load_artifact(opt_ml.root / "model")  # the best epoch's model, loadable for serving
    assert artifact["classes"] == job["classes"]
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8)).shape == (1, 4)


def test_slow_decoding_without_workers_gets_a_data_loading_recommendation(opt_ml, tmp_path, monkeypatch):
    from classifier.training.data import ImageDataset

    data = write_image_set(tmp_path / "small", classes=4, train=6, valid=2, test=0, size=40)
    opt_ml.link("train", data / "train")
    opt_ml.link("valid", data / "valid")
    decode = ImageDataset.__getitem__

    def slow_decode(self, index):  # a slow image format, decoded in the training process
        time.sleep(0.1)
        return decode(self, index)

    monkeypatch.setattr(ImageDataset, "__getitem__", slow_decode)
    # augment: images are decoded at every step (a frozen backbone alone decodes them once, before training)
    hp = {**FAST, "debugger": "false", "epochs": "1", "batch_size": "8", "num_workers": "0", "augment": "true"}
    assert main(args(hp)) == 0, opt_ml.failure()
    result = statuses(opt_ml.root / "output" / "data")["Dataloader"]
    assert result["status"] == "IssuesFound" and result["values"]["data_wait_percent"] > 10, result
    assert "num_workers" in result["recommendation"] and "pre-fetching" in result["recommendation"]


def test_partial_fine_tuning_saves_the_trained_parts_only(image_set, tmp_path, monkeypatch):
    """unfreeze_stages=1: weights of the head and the last stage (not the frozen ones); gradients of both."""
    from classifier.debugger.tensors import TensorReader

    base = tmp_path / "opt_ml"
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    for name in ("SM_MODEL_DIR", "SM_OUTPUT_DATA_DIR", "SM_CHANNEL_TRAIN", "SM_CHANNEL_VALID"):
        monkeypatch.delenv(name, raising=False)
    hp = {**FAST, "epochs": "1", "profiler": "false", "unfreeze_stages": "1", "debugger_relu_modules": "all"}
    assert train_job(base, image_set, hp) == 0
    data = TensorReader(base / "output" / "tensors").read()
    assert data.error is None
    weights = {s.name for s in data.select("weights")}
    assert any("_head." in n for n in weights) and any("_backbone.blocks.6." in n for n in weights)
    assert not any(re.search(r"_backbone\.(blocks\.[0-4]|conv_stem|bn1)\.", n) for n in weights)
    gradients = {s.name for s in data.select("gradients")}
    assert any("blocks.6." in n for n in gradients) and not any("blocks.4." in n for n in gradients)
    job = json.loads((base / "output" / "data" / "debugger" / "job.json").read_text())
    assert "blocks.6" in job["hook"]["watched"]
    results = statuses(base / "output" / "data")
    assert all(results[r]["status"] != "Error" for r in config.TENSOR_RULES), results


def test_a_loop_shorter_than_one_sampling_interval_is_judged_as_too_little_data(image_set, opt_ml):
    """A head on cached features can train in less than one sampling interval: the sampler still samples at
    the loop's first step and at each epoch end, and no profiler rule ends in Error for want of data."""
    code = train_job(opt_ml.root, image_set, {**FAST, "epochs": "1", "profiler_interval_ms": "60000"})
    assert code == 0, opt_ml.failure()
    output = opt_ml.root / "output" / "data"
    samples = (output / "profiler" / "system_metrics.csv").read_text().splitlines()
    assert len(samples) - 1 >= 2  # the header, the first step's and the epoch end's
    results = statuses(output)
    for rule in config.PROFILER_RULES:
        assert results[rule]["status"] != "Error", results[rule]


def test_rules_without_samples_in_the_loop_say_too_little_data(healthy, tmp_path):
    """The same data with every system sample removed: too little data, not an Error."""
    copy = shutil.copytree(healthy / "output" / "data", tmp_path / "data")
    system = copy / "profiler" / "system_metrics.csv"
    system.write_text(system.read_text().splitlines()[0] + "\n")
    from classifier.debugger import jobdata, rules

    data = jobdata.load(config.Layout(copy, copy / "debugger" / "tensors"), with_tensors=False)
    results = {r.rule: r for r in rules.evaluate(data, ["CPUBottleneck", "IOBottleneck", "LowGPUUtilization"])}
    assert results["IOBottleneck"].status == "NoIssuesFound"
    assert results["IOBottleneck"].message.startswith("too little data to judge: no system sample")
    assert all(r.status != "Error" for r in results.values())
