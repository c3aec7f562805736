"""The training job end to end through the sagemaker-training toolkit, as SageMaker runs it."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from classifier import artifact
from classifier.monitoring.baseline import BASELINE_FILE
from classifier.training import metrics_log
from classifier.training.data import scan_channel
from helpers import FAST_HP
from scripts import job_definition
from scripts.local import jobs

pytestmark = pytest.mark.slow  # every test here runs training jobs through the toolkit


def test_model_learns_and_reports_metric_lines(trained_job):
    record = jobs.read_record(trained_job)
    metrics = record["metrics"]  # read from the log with config/job.yaml's regexes
    assert metrics["valid_accuracy"] > 0.6  # 4 classes: chance is 0.25
    assert metrics["test_accuracy"] > 0.6
    log_text = (trained_job / jobs.LOG).read_text()
    epoch_lines = [line for line in log_text.splitlines() if line.startswith(metrics_log.PREFIX + " epoch=")]
    assert len(epoch_lines) == 3
    parsed = job_definition.load().parse_metrics(log_text)
    assert len(parsed["images_per_sec"]) == 3 and len(parsed["valid_loss"]) == 4
    # the last valid_loss is the best epoch's: the saved model's
    assert parsed["valid_loss"][-1] == min(parsed["valid_loss"][:3])
    # the objective: one value per epoch (the best so far), the last one the saved model's
    assert parsed["best_valid_loss"] == [min(parsed["valid_loss"][:n]) for n in (1, 2, 3)]
    assert record["metrics"]["valid_loss"] == pytest.approx(json.loads(
        (trained_job / "model" / "model_config.json").read_text())["metrics"]["valid_loss"], abs=1e-6)
    assert (trained_job / "output" / "success").exists() and not (trained_job / "output" / "failure").exists()


def test_the_job_ends_with_the_export_and_its_accuracy_gate(trained_job):
    """export=auto in a job that is not a tuning trial: OpenVINO fp32 and int8 beside model.pth, each judged on
    the valid channel, recorded in model_config.json and in the training log."""
    model_dir = trained_job / "model"
    exports = json.loads((model_dir / "model_config.json").read_text())["exports"]
    assert exports["valid_images"] == 40 and exports["calibration_images"] == 120  # every training image (< 300)
    assert set(exports["formats"]) == {"fp32", "int8"} and exports["formats"]["fp32"]["accepted"]
    log_text = (trained_job / jobs.LOG).read_text()
    for fmt, entry in exports["formats"].items():
        verdict = "accepted" if entry["accepted"] else "refused: " + entry["reason"]
        assert f"Export: {fmt} {verdict}" in log_text
        assert (model_dir / "openvino" / fmt / "model.xml").is_file() == entry["accepted"]
    assert (model_dir / "model.pth").is_file()  # PyTorch's weights stay: torch serves on a GPU


def test_artifact_is_complete_and_predicts_like_the_trained_model(trained_job, image_set):
    model_dir = trained_job / "model"
    config = json.loads((model_dir / "model_config.json").read_text())
    assert config["architecture"] == "efficientnet_lite0"
    assert config["classes"] == sorted(p.name for p in (image_set / "train").iterdir())
    assert config["preprocessing"]["image_size"] == 64 and config["preprocessing"]["mean"] == [0.5, 0.5, 0.5]
    assert config["hyperparameters"]["epochs"] == "3" and "valid_loss" in config["metrics"]
    state = torch.load(model_dir / "model.pth", weights_only=True)  # a plain state dict
    assert all(isinstance(v, torch.Tensor) for v in state.values())

    model, config, preprocessing = artifact.load_artifact(model_dir)
    test = scan_channel("test", image_set / "test", config["classes"])
    batch = torch.stack([preprocessing.load_for_eval(path) for path, _ in test.samples])
    labels = torch.tensor(test.labels())
    with torch.inference_mode():
        predictions = model(batch).argmax(1)
    accuracy = float((predictions == labels).float().mean())
    report = json.loads((trained_job / "output" / "data" / "test_report.json").read_text())
    assert accuracy == pytest.approx(report["accuracy"]) == pytest.approx(config["metrics"]["test_accuracy"])
    [best_file] = (trained_job / "checkpoints").glob("best-epoch-*.pt")  # only the current best is kept
    assert best_file.name == f"best-epoch-{config['metrics']['best_epoch']:04d}.pt"
    best = torch.load(best_file, weights_only=True)
    # the checkpoint holds what trained (here the head: the backbone is the pretrained file's)
    assert set(best) == {k for k in state if k.startswith("head.")}
    assert all(torch.equal(best[k], state[k]) for k in best)
    matrix = torch.tensor(report["confusion_matrix"])
    assert int(matrix.sum()) == len(test) and set(report["per_class_accuracy"]) == set(config["classes"])
    history = json.loads((trained_job / "output" / "data" / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]


def _train_env(job):
    return jobs.training_environment(job)


def test_sigkill_mid_epoch_then_restart_resumes_to_the_same_result(image_set, tmp_path):
    definition = job_definition.load()
    # augment: the model trains on images (a frozen backbone alone trains the head on features, in no time)
    hp = {**FAST_HP, "epochs": "4", "batch_size": "8", "augment": "true"}
    reference = jobs.create_job(definition, image_set, hp, root=tmp_path)
    assert jobs.run_job(reference, definition=definition)["status"] == "Completed"

    job = jobs.create_job(definition, image_set, hp, root=tmp_path)
    killed = {}

    def kill_in_epoch_3(line, process):
        if line.startswith("[metrics] epoch=2") and not killed:
            # Kill as soon as epoch 2's checkpoint is saved: early in epoch 3, however fast an epoch is.
            last, deadline = job / "checkpoints" / "last.pt", time.time() + 60
            while time.time() < deadline and not (
                    last.exists() and torch.load(last, weights_only=True)["progress"]["epoch"] == 2):
                time.sleep(0.01)
            os.killpg(process.pid, signal.SIGKILL)
            killed["at"] = time.time()
        return False

    first = jobs.run_job(job, definition=definition, on_line=kill_in_epoch_3)
    assert killed and first["status"] == "Failed"
    checkpoint = torch.load(job / "checkpoints" / "last.pt", weights_only=True)  # intact after SIGKILL
    assert checkpoint["progress"]["epoch"] == 2

    second = jobs.run_job(job, definition=definition)
    assert second["status"] == "Completed", (job / jobs.LOG).read_text()[-2000:]
    log_text = (job / jobs.LOG).read_text()
    assert "Resumed from" in log_text and "after epoch 2 of 4" in log_text
    history = json.loads((job / "output" / "data" / "metrics.json").read_text())["history"]
    expected = json.loads((reference / "output" / "data" / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    # Deterministic on CPU: the resumed job ends exactly where the uninterrupted one did.
    for ours, theirs in zip(history, expected, strict=True):
        assert ours["valid_loss"] == pytest.approx(theirs["valid_loss"], rel=1e-5)
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-5)
    assert not list((job / "checkpoints").glob(".*.tmp"))


def test_make_train_local_prints_the_job(image_set, tmp_path):
    env = {**os.environ, "JOBS_DIR": str(tmp_path)}
    hp = "model_name=efficientnet_lite0 image_size=32 epochs=1 num_workers=0 batch_size=32"
    result = subprocess.run([sys.executable, "-m", "scripts.local.train", "--quiet", "--data", str(image_set),
                             "--hp", hp],
                            capture_output=True, text=True, env=env, cwd=jobs.REPO_ROOT, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Training job img-clf-" in result.stdout and "Completed" in result.stdout and str(tmp_path) in result.stdout
    bad = subprocess.run([sys.executable, "-m", "scripts.local.train", "--data", str(image_set), "--hp", "epoch=3"],
                         capture_output=True, text=True, env=env, cwd=jobs.REPO_ROOT, timeout=120)
    assert bad.returncode == 2 and "epoch" in bad.stderr and "valid names" in bad.stderr


def test_ddp_with_two_cpu_processes_trains_as_one_process_on_the_same_global_batches(image_set, tmp_path):
    """Several workers (GPUs, hosts) run DDP under torchrun; on CPU the gloo backend stands in.

    What DDP must give: DistributedSampler deals worker r the items r, r+2, ... of the same permutation one
    process's sampler draws (both seeded with seed + epoch), and each step's gradient is the mean of the
    workers' gradients. So 2 workers with batch_size B train on exactly the global batches one process sees
    with batch_size 2B (120 train images: every batch full, both workers alike) and must reach the same model,
    to float rounding. Dropout is off: its random masks cannot match across two layouts of a batch. The epoch's
    train_loss is the whole job's (summed over the workers), so it equals one process's too."""
    definition = job_definition.load()
    assert len(scan_channel("train", image_set / "train").samples) % 20 == 0
    hp = {**FAST_HP, "epochs": "2", "lr": "0.003", "dropout": "0"}
    one = jobs.create_job(definition, image_set, {**hp, "batch_size": "20"}, root=tmp_path)
    two = jobs.create_job(definition, image_set, {**hp, "batch_size": "10"}, root=tmp_path)
    assert jobs.run_job(one, definition=definition)["status"] == "Completed", (one / jobs.LOG).read_text()[-3000:]
    record = jobs.run_job(two, definition=definition,
                          env={"TRAINING_PROCESSES_PER_HOST": "2", "MASTER_PORT": str(_free_port())})
    log_text = (two / jobs.LOG).read_text()
    assert record["status"] == "Completed", log_text[-3000:]
    assert "world size 2" in log_text

    def history(job):
        return json.loads((job / "output" / "data" / "metrics.json").read_text())["history"]

    single, ddp = history(one), history(two)
    assert [h["epoch"] for h in ddp] == [h["epoch"] for h in single] == [1, 2]
    one_image = 1 / len(scan_channel("valid", image_set / "valid").samples)
    for ours, theirs in zip(ddp, single, strict=True):  # valid_*: the whole valid set, evaluated on rank 0
        assert ours["valid_loss"] == pytest.approx(theirs["valid_loss"], rel=1e-5)
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-5)
        assert abs(ours["valid_accuracy"] - theirs["valid_accuracy"]) <= one_image + 1e-9  # a tie may flip
    artifact.load_artifact(two / "model")  # one complete artifact, written by rank 0
    weights = {job: torch.load(job / "model" / "model.pth", weights_only=True) for job in (one, two)}
    for name, tensor in weights[one].items():
        torch.testing.assert_close(weights[two][name], tensor, rtol=1e-4, atol=1e-5, msg=f"{name} differs")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_corrupt_artifact_is_named(trained_job, tmp_path):
    import shutil

    model_dir = shutil.copytree(trained_job / "model", tmp_path / "model")
    weights = model_dir / "model.pth"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(artifact.ArtifactError, match="model.pth cannot be read"):
        artifact.load_artifact(model_dir)


@pytest.mark.parametrize("marker", ["Job setup:", "[metrics] epoch=1 "])
def test_sigterm_at_any_moment_ends_one_documented_way(image_set, tmp_path, marker):
    """StopTrainingJob's SIGTERM, through the image's entry point as SageMaker sends it, during start-up or an
    epoch: the job stops by itself, writes the reason and keeps what it had (never a bare 143)."""
    import re

    definition = job_definition.load()
    hp = {**FAST_HP, "epochs": "50", "batch_size": "8", "augment": "true", "early_stopping_patience": "0",
          "debugger": "false", "profiler": "false"}
    job = jobs.create_job(definition, image_set, hp, root=tmp_path)
    sent = {}

    def stop_on_marker(line, process):
        if marker in line and not sent:
            process.send_signal(signal.SIGTERM)  # the entry point passes it on to the training program
            sent["at"] = time.time()
        return False

    record = jobs.run_job(job, definition=definition, on_line=stop_on_marker)
    assert sent, (job / jobs.LOG).read_text()[-2000:]
    failure = (job / "output" / "failure").read_text()
    assert record["status"] in ("Stopped", "Failed") and not (job / "output" / "success").exists()
    if marker == "Job setup:":
        assert re.search(r"stopped by SIGTERM (during start-up|before the first epoch|during epoch 1; no checkpoint)",
                         failure), failure
    else:  # the last finished epoch's checkpoint is kept for resuming
        epoch = int(re.search(r"stopped by SIGTERM during epoch (\d+)", failure).group(1))
        assert torch.load(job / "checkpoints" / "last.pt", weights_only=True)["progress"]["epoch"] == epoch - 1 >= 1


@pytest.mark.slow  # a training job
def test_sigterm_during_the_export_stops_it_and_keeps_nothing_of_it(image_set, tmp_path):
    """The export is the job's last step, after the model is saved: a SIGTERM there ends it at its next step, no
    `.export-staging` or half an `openvino/` is left, and the job completes with the model PyTorch serves."""
    definition = job_definition.load()
    hp = {**FAST_HP, "epochs": "1", "export": "true", "debugger": "false", "profiler": "false"}
    job = jobs.create_job(definition, image_set, hp, root=tmp_path)
    sent = {}

    def stop_on_marker(line, process):
        if "Export: PyTorch on" in line and not sent:
            process.send_signal(signal.SIGTERM)
            sent["at"] = time.time()
        return False

    record = jobs.run_job(job, definition=definition, on_line=stop_on_marker)
    log = (job / jobs.LOG).read_text()
    assert sent and record["status"] == "Completed", log[-3000:]
    assert "Export stopped by SIGTERM before " in log and "nothing of the export was kept" in log
    model_dir = job / "model"
    # What the job saved before the export (the model, its config, the monitor's baseline), and nothing of it.
    assert {p.name for p in model_dir.iterdir()} == {artifact.WEIGHTS_FILE, artifact.CONFIG_FILE, BASELINE_FILE}
    assert "exports" not in json.loads((model_dir / "model_config.json").read_text())
    artifact.load_artifact(model_dir)
