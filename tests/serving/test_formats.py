"""Which format an endpoint serves (classifier/export/formats.py), how model_config.json records the exports,
the accuracy gate's rules (classifier/export/gate.py) and the `export` hyperparameter: pure functions, no model."""
from __future__ import annotations

import numpy as np
import pytest

from classifier.artifact import config_problem
from classifier.export import formats, gate
from classifier.training import hyperparameters


def config_with(fp32=None, int8=None) -> dict:
    """A model config whose exports record fp32 / int8 as given: True (accepted), a reason (refused), None (absent)."""
    entries = {}
    for fmt, state in (("fp32", fp32), ("int8", int8)):
        if state is True:
            entries[fmt] = {"accepted": True, "file": formats.model_file(fmt), "figures": {"accuracy": 0.9}}
        elif state:
            entries[fmt] = {"accepted": False, "reason": state, "figures": {"accuracy": 0.5}}
    config = {"format_version": 1, "architecture": "efficientnet_lite0", "classes": ["a", "b"],
              "preprocessing": {"image_size": 64, "resize_size": 73, "mean": [0.5] * 3, "std": [0.5] * 3,
                                "interpolation": "bicubic", "resize_rule": "shorter_side_then_center_crop"}}
    if entries:
        config["exports"] = {"runtime": "openvino", "formats": entries}
    return config


@pytest.fixture
def model_dir(tmp_path):
    for fmt in ("fp32", "int8"):
        xml = tmp_path / formats.model_file(fmt)
        xml.parent.mkdir(parents=True)
        xml.write_text("<net/>")
        xml.with_suffix(".bin").write_bytes(b"\0")
    return tmp_path


def test_an_artifact_without_exports_serves_torch(model_dir):
    choice = formats.choose(config_with(), model_dir)
    assert choice.format == "torch" and "no exported formats" in choice.why
    assert formats.accepted(config_with()) == ["torch"]


def test_the_fastest_accepted_format_on_a_cpu_and_torch_on_a_gpu(model_dir):
    assert formats.choose(config_with(fp32=True, int8=True), model_dir).format == "int8"
    refused = formats.choose(config_with(fp32=True, int8="top-1 dropped"), model_dir)
    assert refused.format == "fp32" and "int8 (top-1 dropped)" in refused.why
    assert formats.choose(config_with(fp32="off", int8="off"), model_dir).format == "torch"
    assert formats.choose(config_with(fp32=True, int8=True), model_dir, gpu=True).format == "torch"


def test_serving_runtime_forces_a_format(model_dir):
    config = config_with(fp32=True, int8=True)
    for fmt in formats.FORMATS:
        assert formats.choose(config, model_dir, requested=fmt).format == fmt
    assert formats.choose(config, model_dir, requested=" INT8 ").format == "int8"
    assert formats.choose(config, model_dir, requested="fp32", gpu=True).format == "fp32"  # asked for: honoured


@pytest.mark.parametrize("config, requested, words", [
    (config_with(), "int8", "SERVING_RUNTIME=int8 but"),
    (config_with(), "int8", "holds no int8 export"),
    (config_with(fp32=True), "int8", "records fp32"),
    (config_with(fp32=True, int8="top-1 accuracy 80.0 % is 5.0 points below"), "int8",
     "the accuracy gate refused int8 for this model: top-1 accuracy 80.0 % is 5.0 points below"),
    (config_with(fp32=True), "onnx", "SERVING_RUNTIME='onnx' is not a format: choose one of torch, fp32, int8"),
])
def test_a_forced_format_that_cannot_be_served_is_a_clear_error(model_dir, config, requested, words):
    with pytest.raises(formats.FormatError) as caught:
        formats.choose(config, model_dir, requested=requested)
    assert words in str(caught.value)


def test_missing_files_of_an_accepted_format_are_named(model_dir):
    (model_dir / formats.model_file("int8")).with_suffix(".bin").unlink()
    with pytest.raises(formats.FormatError, match=r"int8/model\.bin is missing"):
        formats.choose(config_with(fp32=True, int8=True), model_dir)
    assert formats.choose(config_with(fp32=True, int8=True), model_dir, requested="fp32").format == "fp32"


@pytest.mark.parametrize("exports, words", [
    ([], "exports must be an object"),
    ({"formats": {"onnx": {"accepted": True}}}, "exports.formats.onnx: unknown format"),
    ({"formats": {"int8": {"accepted": "yes"}}}, "accepted: true or false"),
    ({"formats": {"int8": {"accepted": True, "file": "../../etc/passwd"}}}, "file must be 'openvino/int8/model.xml'"),
    ({"formats": {"int8": {"accepted": False}}}, "refused without a reason"),
    ({"formats": {"fp32": {"accepted": True, "file": "openvino/fp32/model.xml", "figures": {"accuracy": "high"}}}},
     "figures.accuracy is 'high'"),
])
def test_the_config_check_reads_the_exports_section(exports, words):
    config = config_with()
    config["exports"] = exports
    assert words in config_problem(config)
    assert config_problem(config_with(fp32=True, int8="refused for a reason")) is None


def test_the_fp32_gate_is_a_tolerance_on_every_probability():
    labels = np.array([0, 1, 1, 0])
    reference = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]])
    assert gate.judge_fp32(labels, reference, reference + 5e-5 * np.array([1, -1])).accepted
    verdict = gate.judge_fp32(labels, reference, reference + 3e-4 * np.array([1, -1]))
    assert not verdict.accepted and "differ from PyTorch's by up to 0.0003" in verdict.reason
    assert verdict.figures["max_probability_difference"] == pytest.approx(3e-4)


def test_the_int8_gate_wants_the_same_answers_and_at_most_half_a_point_less_accuracy():
    labels = np.repeat([0, 1], 100)  # 200 images: one image is half a point
    reference = np.tile([[0.9, 0.1]], (200, 1))
    reference[100:] = [0.1, 0.9]  # right on every image
    one_wrong, three_wrong = reference.copy(), reference.copy()
    one_wrong[0] = three_wrong[:3] = [0.4, 0.6]
    accepted = gate.judge_int8(labels, reference, one_wrong)
    assert accepted.accepted and accepted.figures["accuracy_change_points"] == pytest.approx(-0.5)
    refused = gate.judge_int8(labels, reference, three_wrong)
    assert not refused.accepted and "1.5 points below PyTorch's (at most 0.5 allowed)" in refused.reason
    reference_wrong = reference.copy()
    reference_wrong[100:105] = [0.9, 0.1]  # PyTorch wrong on 5 images that the candidate gets right:
    verdict = gate.judge_int8(labels, reference_wrong, reference)  # 2.5 points better, 97.5 % the same answers
    assert verdict.figures["accuracy_change_points"] == pytest.approx(2.5)
    assert not verdict.accepted and "agrees with PyTorch's top-1 on 97.5 %" in verdict.reason


@pytest.mark.parametrize("given, expected", [
    ({}, True),
    ({"_tuning_objective_metric": "best_valid_loss"}, False),  # a tuning job's trial: compared, not served
    ({"_tuning_objective_metric": "best_valid_loss", "export": "true"}, True),
    ({"export": "false"}, False),
])
def test_export_auto_means_every_job_but_a_tuning_trial(given, expected):
    assert hyperparameters.parse(given)["export"] is expected
