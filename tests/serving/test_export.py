"""The exported formats end to end: `make export` of a SageMaker model.tar.gz (OpenVINO fp32 + NNCF int8, each
judged by the accuracy gate on the valid images), the formats' answers beside PyTorch's, the gate refusing an
int8 model calibrated on one blank image, and the real endpoint serving each format (SERVING_RUNTIME), or
refusing to start when the format asked for is absent. Speed is measured by benchmarks/bench_endpoint.py."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import serving_data
from classifier.export import formats, gate
from classifier.export.main import export_model
from classifier.serving import serve
from classifier.serving.inference import load_model
from classifier.training.data import Channel, scan_channel
from mms_server import CONTAINER_DIR, mms_missing, start_server
from scripts import export as export_script

needs_mms = pytest.mark.skipif(bool(mms_missing()), reason=f"not installed: {mms_missing()}")


@pytest.fixture(scope="session")
def sample_set(artifact_dir, tmp_path_factory) -> Path:
    """train/ (the images the artifact's head was fitted on: calibration), valid/ (held out: the gate), test/."""
    root = tmp_path_factory.mktemp("sample-set")
    serving_data.write_tree(root / "train", "train", 100)
    serving_data.write_tree(root / "valid", "train", 25, offset=100)
    serving_data.write_tree(root / "test", "test", 6)
    return root


@pytest.fixture(scope="session")
def exported(artifact_dir, sample_set, tmp_path_factory) -> dict:
    """`make export MODEL=model.tar.gz DATA=...`: the artifact (made by today's code) packed as SageMaker packs it."""
    folder = tmp_path_factory.mktemp("export")
    archive = folder / "model.tar.gz"
    export_script.pack(artifact_dir, archive)
    before = archive.read_bytes()
    written = export_script.run(str(archive), str(sample_set), out_dir=folder / "out")
    return {"archive": archive, "before": before, "written": written, "model_dir": written.parent / "model"}


def config_of(model_dir: Path) -> dict:
    return json.loads((model_dir / "model_config.json").read_text())


def test_make_export_of_a_model_tar_gz_writes_a_new_archive_and_keeps_the_old(exported, artifact_dir):
    assert exported["archive"].read_bytes() == exported["before"]  # nothing already saved is lost
    with tarfile.open(exported["written"]) as tar:
        names = set(tar.getnames())
    assert {"model.pth", "model_config.json", "openvino/fp32/model.xml", "openvino/fp32/model.bin"} <= names
    config = config_of(exported["model_dir"])
    assert {k: v for k, v in config.items() if k != "exports"} == config_of(artifact_dir)
    exports = config["exports"]
    assert exports["runtime"] == "openvino" and exports["valid_images"] == 100
    assert exports["calibration_images"] == 300 and set(exports["formats"]) == {"fp32", "int8"}
    for fmt, entry in exports["formats"].items():
        assert set(entry["figures"]) == {"images", "accuracy", "accuracy_change_points", "top1_agreement",
                                         "max_probability_difference"}
        assert entry["accepted"] == (exported["model_dir"] / formats.model_file(fmt)).is_file()
    assert not (exported["model_dir"] / ".export-staging").exists()


def test_fp32_equals_pytorch_within_the_tolerance_on_real_images(exported, test_images):
    entry = config_of(exported["model_dir"])["exports"]["formats"]["fp32"]
    assert entry["accepted"] and entry["figures"]["max_probability_difference"] <= gate.FP32_TOLERANCE
    images = [serving_data.encode(pixels) for pixels in test_images[0]]
    answers = {fmt: load_model(exported["model_dir"], fmt, threads=1).predict(images) for fmt in ("torch", "fp32")}
    difference = (answers["fp32"] - answers["torch"]).abs().max().item()
    assert difference <= gate.FP32_TOLERANCE, difference
    assert torch.equal(answers["fp32"].argmax(1), answers["torch"].argmax(1))


def test_the_int8_gate_refuses_a_model_calibrated_on_one_blank_image(exported, sample_set, tmp_path):
    """Quantisation ranges from one grey image clip every real image's activations: the gate sees the answers
    change and refuses int8; the endpoint then serves fp32, and forcing int8 names the reason."""
    model_dir = shutil.copytree(exported["model_dir"], tmp_path / "model")
    blank = tmp_path / "blank.jpg"
    Image.new("RGB", (serving_data.IMAGE_SIZE, serving_data.IMAGE_SIZE), (128, 128, 128)).save(blank)
    classes = config_of(model_dir)["classes"]
    train = Channel("train", tmp_path, classes, [(blank, 0)])
    exports = export_model(model_dir, train, scan_channel("valid", sample_set / "valid", classes))
    int8 = exports["formats"]["int8"]
    assert exports["calibration_images"] == 1 and not int8["accepted"]
    assert "below PyTorch's" in int8["reason"] or "agrees with PyTorch's top-1 on" in int8["reason"]
    assert int8["figures"]["top1_agreement"] < gate.INT8_MIN_AGREEMENT or \
        int8["figures"]["accuracy_change_points"] < -gate.INT8_MAX_DROP_POINTS
    assert not (model_dir / "openvino" / "int8").exists() and exports["formats"]["fp32"]["accepted"]
    config = config_of(model_dir)
    assert config["exports"]["formats"]["int8"]["reason"] == int8["reason"]
    choice = formats.choose(config, model_dir)
    assert choice.format == "fp32" and f"int8 ({int8['reason']})" in choice.why
    with pytest.raises(serve.ModelDirError, match="the accuracy gate refused int8 for this model"):
        serve.check_model_dir(model_dir, env={"SERVING_RUNTIME": "int8"})


def test_serving_runtime_forcing_an_absent_format_stops_serve_before_it_starts(artifact_dir, tmp_path):
    """An artifact without exports (today's training without export) and SERVING_RUNTIME=int8: exit 1 with the
    reason, before nginx and MMS start (not a worker that dies and restarts in a loop)."""
    model = shutil.copytree(artifact_dir, tmp_path / "model")
    env = dict(os.environ, SAGEMAKER_BASE_DIR=str(tmp_path), PYTHONPATH=str(CONTAINER_DIR), SERVING_RUNTIME="int8")
    result = subprocess.run([sys.executable, "-m", "classifier.serving.serve"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"SERVING_RUNTIME=int8 but {model} holds no int8 export" in result.stderr
    assert "make export" in result.stderr and "nginx on" not in result.stdout


@needs_mms
def test_an_artifact_without_exports_still_serves_torch(server):
    assert "format torch (no exported formats in the artifact)" in server.log_text()


@needs_mms
@pytest.mark.parametrize("fmt", ["fp32", "int8"])
def test_the_endpoint_gives_the_same_top1_in_each_format(fmt, exported, server, test_images, tmp_path):
    """The same requests to the endpoint serving torch (the session's server, same weights) and `fmt`."""
    if not config_of(exported["model_dir"])["exports"]["formats"][fmt]["accepted"]:
        pytest.fail(f"the gate refused {fmt} for the test artifact: {config_of(exported['model_dir'])['exports']}")
    images = [serving_data.encode(pixels) for pixels in test_images[0]]
    running = start_server(exported["model_dir"], tmp_path, env={"SAGEMAKER_MODEL_SERVER_WORKERS": "1",
                                                                 "SERVING_RUNTIME": fmt})
    try:
        assert f"format {fmt} (SERVING_RUNTIME={fmt})" in running.log_text()
        answers = {}
        for name, endpoint in (("torch", server), (fmt, running)):
            bodies = [endpoint.invoke(image) for image in images]
            assert all(body.status == 200 for body in bodies)
            answers[name] = np.array([body.json()["predictions"][0]["classes"][0]["index"] for body in bodies])
    finally:
        running.stop()
    np.testing.assert_array_equal(answers[fmt], answers["torch"])
    assert (answers[fmt] == np.array(test_images[1])).mean() >= 0.9
