"""The serving code in-process (no MMS): request parsing, settings, model loading, one request end to end
through the MMS handler with a stand-in for MMS's context, and the agreement with the shared code."""
from __future__ import annotations

import base64
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import serving_data
from classifier import artifact, preprocessing
from classifier.serving import inference, local, serve, settings
from classifier.serving.handler_service import REQUEST_LOG_TAG, HandlerService
from classifier.serving.inference import RequestError


def status_of(call, *args, **kwargs) -> tuple[int, str]:
    with pytest.raises(RequestError) as caught:
        call(*args, **kwargs)
    return caught.value.status_code, caught.value.message


# --- content negotiation and request bodies --------------------------------------------------------
@pytest.mark.parametrize("accept", [None, "", "*/*", "application/json", "application/*",
                                    "Application/JSON; charset=utf-8", "text/html, application/json;q=0.5",
                                    "image/png, */*;q=0.1"])
def test_accept_allows_json(accept):
    assert inference.accepts_json(accept)


@pytest.mark.parametrize("accept", ["text/csv", "image/png", "application/x-npy", "application/json;q=0", "text/*"])
def test_accept_refuses_other_types(accept):
    assert not inference.accepts_json(accept)


@pytest.mark.parametrize("attributes, expected", [(None, 3), ("", 3), ("top_k=5", 5), ("top_k=50", 10),
                                                  ("trace=1, top_k=2", 2), ("a=b;TOP_K = 4", 4), ("other=7", 3)])
def test_top_k_from_custom_attributes(attributes, expected):
    assert inference.parse_top_k(attributes, default=3, num_classes=10) == expected


@pytest.mark.parametrize("attributes, message", [("top_k=0", "at least 1"), ("top_k=-2", "at least 1"),
                                                 ("top_k=abc", "not an integer"), ("top_k=", "not an integer")])
def test_bad_top_k(attributes, message):
    status, text = status_of(inference.parse_top_k, attributes, 3, 10)
    assert status == 400 and message in text


@pytest.mark.parametrize("content_type", ["image/jpeg", "image/png", "application/x-image", "application/octet-stream",
                                          "IMAGE/JPEG", "image/jpeg; charset=binary"])
def test_image_content_types_are_one_image(content_type):
    batch = inference.input_fn(b"\xff\xd8 bytes", content_type)
    assert batch.images == [b"\xff\xd8 bytes"]


@pytest.mark.parametrize("content_type", [None, "", "text/plain", "image/gif", "multipart/form-data; boundary=x",
                                          "application/x-www-form-urlencoded", "text/csv"])
def test_unsupported_content_types(content_type):
    status, message = status_of(inference.input_fn, b"data", content_type)
    assert status == 415 and "not supported" in message


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_json_instances_in_order_and_base64_with_line_breaks():
    wrapped = base64.encodebytes(b"second image" * 20).decode()  # 76-column lines, as `base64` writes them
    body = json.dumps({"instances": [{"b64": b64(b"first")}, {"b64": wrapped}]})
    batch = inference.input_fn(body.encode(), "application/json")
    assert batch.images == [b"first", b"second image" * 20]
    assert batch.sources == ["instances[0]", "instances[1]"]


@pytest.mark.parametrize("body, message", [
    (b"", "empty"),
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[]", "instances"),
    (b'{"instances": []}', "at least one instance"),
    (b'{"instances": {"b64": "AAAA"}}', "instances"),
    (b'{"instances": ["AAAA"]}', "instances[0] must be an object"),
    (b'{"instances": [{"url": "http://example.com/cat.jpg"}]}', "URLs are not fetched"),
    (b'{"instances": [{"b64": "not base64!"}]}', "instances[0].b64 is not valid base64"),
    (b'{"instances": [{"b64": "QUJD"}, {"b64": "QUJ"}]}', "instances[1].b64 is not valid base64"),
    (b'{"instances": [{"b64": ""}]}', "not valid base64"),
    (json.dumps({"instances": [{"b64": "QUJD"}] * 33}).encode(), "at most 32"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),  # RecursionError: was a 500
    (b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
])
def test_bad_json_bodies(body, message):
    status, text = status_of(inference.input_fn, body, "application/json", 32)
    assert status == 400 and message in text, text


# --- settings and the code shared with the rest of the project --------------------------------------
def test_settings_defaults_and_environment(monkeypatch):
    for name in ("SAGEMAKER_MAX_PAYLOAD_IN_MB", "SAGEMAKER_MODEL_SERVER_WORKERS", "CLASSIFIER_THREADS_PER_WORKER",
                 "CLASSIFIER_MAX_PIXELS", "CLASSIFIER_MAX_INSTANCES", "CLASSIFIER_DEFAULT_TOP_K", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    defaults = settings.Settings.from_env()
    assert defaults.max_body_bytes == 6 * 1024 * 1024 == 6_291_456
    assert defaults.workers == settings.usable_cpus() and defaults.threads_per_worker >= 1
    assert defaults.default_top_k == 3
    monkeypatch.setenv("SAGEMAKER_MODEL_SERVER_WORKERS", "1")
    monkeypatch.setenv("SAGEMAKER_MAX_PAYLOAD_IN_MB", "2")
    custom = settings.Settings.from_env()
    assert custom.workers == 1 and custom.threads_per_worker == settings.usable_cpus()
    assert custom.max_body_bytes == 2 * 1024 * 1024
    monkeypatch.setenv("SAGEMAKER_MODEL_SERVER_WORKERS", "0")
    with pytest.raises(settings.SettingsError, match="at least 1"):
        settings.Settings.from_env()
    monkeypatch.setenv("SAGEMAKER_MODEL_SERVER_WORKERS", "two")
    with pytest.raises(settings.SettingsError, match="not an integer"):
        settings.Settings.from_env()


def test_the_pixel_limit_has_one_home():
    """preprocessing's (torch-free) default is the one settings uses: no copy to keep in step."""
    assert settings.Settings.from_env({}).max_pixels == preprocessing.DEFAULT_MAX_PIXELS
    assert "DEFAULT_MAX_PIXELS =" not in Path(settings.__file__).read_text()


def test_the_serve_front_end_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, classifier.serving.serve, classifier.serving.local; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={"PYTHONPATH": str(Path(serve.__file__).resolve().parents[2]), "PATH": "/usr/bin:/bin"})
    assert result.stdout.strip() == "False"


def test_configure_environment_sizes_mms():
    env = {}
    chosen = serve.configure_environment(env)
    assert env["SAGEMAKER_MODEL_SERVER_WORKERS"] == str(chosen.workers)
    assert env["OMP_NUM_THREADS"] == env["CLASSIFIER_THREADS_PER_WORKER"] == str(chosen.threads_per_worker)
    explicit = {"SAGEMAKER_MODEL_SERVER_WORKERS": "3", "OMP_NUM_THREADS": "2"}
    chosen = serve.configure_environment(explicit)
    assert (chosen.workers, chosen.threads_per_worker) == (3, 2)
    assert explicit["SAGEMAKER_MODEL_SERVER_WORKERS"] == "3" and explicit["CLASSIFIER_THREADS_PER_WORKER"] == "2"


def test_model_dir_or_job_dir(tmp_path):
    model = tmp_path / "job" / "model"
    model.mkdir(parents=True)
    (model / artifact.CONFIG_FILE).write_text("{}")
    assert local.resolve_model_dir(tmp_path / "job") == model.resolve()
    assert local.resolve_model_dir(model) == model.resolve()
    with pytest.raises(SystemExit, match="neither"):
        local.resolve_model_dir(tmp_path)


def valid_config() -> dict:
    return {
        "format_version": artifact.FORMAT_VERSION,
        "architecture": "efficientnet_lite0",
        "classes": ["cat", "dog", "fox"],
        "preprocessing": preprocessing.Preprocessing(image_size=64, resize_size=73).to_dict(),
        "hyperparameters": {},
        "metrics": {},
    }


def with_change(path: str, value) -> dict:
    """valid_config() with `a.b` set to value (or removed, for DELETE)."""
    config = valid_config()
    *parents, key = path.split(".")
    target = config
    for parent in parents:
        target = target[parent]
    if value is DELETE:
        del target[key]
    else:
        target[key] = value
    return config


DELETE = object()


@pytest.mark.parametrize("path, value, message", [
    ("preprocessing.image_size", 0, "preprocessing.image_size is 0; it must be a positive whole number"),
    ("preprocessing.image_size", -5, "preprocessing.image_size is -5"),
    ("preprocessing.image_size", "64", "preprocessing.image_size is '64'"),
    ("preprocessing.image_size", 64.5, "preprocessing.image_size is 64.5"),
    ("preprocessing.image_size", True, "preprocessing.image_size is True"),
    ("preprocessing.image_size", DELETE, "lacks preprocessing.image_size"),
    ("preprocessing.image_size", 20_000, "preprocessing.image_size is 20000: training makes models of 32 to 1024 px"),
    ("preprocessing.image_size", 8, "preprocessing.image_size is 8: training makes models of 32 to 1024 px"),
    ("preprocessing.resize_size", 32, "preprocessing.resize_size (32) is smaller than preprocessing.image_size"),
    ("preprocessing.mean", "0.5", "preprocessing.mean is '0.5'; it must be a list of 3 finite numbers"),
    ("preprocessing.mean", [0.5, 0.5, float("nan")], "preprocessing.mean is [0.5, 0.5, nan]"),
    ("preprocessing.std", [0.5, "x", 0.5], "preprocessing.std is [0.5, 'x', 0.5]"),
    ("preprocessing.std", [0.5, 0.5], "mean and std must hold 3 values each"),  # Preprocessing.from_dict's check
    ("preprocessing.std", [0.5, 0.0, 0.5], "std > 0"),
    ("preprocessing.interpolation", "lanczos", "unknown interpolation 'lanczos'"),
    ("preprocessing.interpolation", 3, "preprocessing.interpolation must be a string"),
    ("preprocessing.resize_rule", "stretch", "unknown resize_rule 'stretch'"),
    ("preprocessing", [64], "preprocessing must be an object, not a list"),
    ("classes", "cat,dog", "classes must be a list of class names, not a string"),
    ("classes", [], "classes is empty"),
    ("classes", ["cat", "dog", "cat"], "classes holds 'cat' more than once"),
    ("classes", ["cat", ""], "classes[1] is ''"),
    ("classes", ["cat", 7], "classes[1] is 7"),
    ("architecture", "resnet9", "architecture 'resnet9' is unknown"),
    ("architecture", DELETE, "lacks 'architecture'"),
    ("format_version", 2, "format_version is 2; this code reads 1"),
])
def test_read_config_validates_every_field(tmp_path, path, value, message):
    (tmp_path / artifact.CONFIG_FILE).write_text(json.dumps(with_change(path, value)))
    with pytest.raises(artifact.ArtifactError) as caught:
        artifact.read_config(tmp_path)
    assert message in str(caught.value) and str(tmp_path / artifact.CONFIG_FILE) in str(caught.value)


def test_read_config_accepts_what_training_writes(tmp_path):
    (tmp_path / artifact.CONFIG_FILE).write_text(json.dumps(valid_config()))
    assert artifact.read_config(tmp_path) == valid_config()


@pytest.mark.parametrize("files, message", [
    ({}, "model_config.json is missing"),
    ({"model_config.json": json.dumps(valid_config())}, "model.pth is missing"),
    ({"model_config.json": "{oops", "model.pth": ""}, "not readable JSON"),
    ({"model_config.json": "[1]", "model.pth": ""}, "must hold a JSON object, not a list"),
    ({"model_config.json": "[" * 100_000, "model.pth": ""}, "nested too deeply"),
])
def test_check_model_dir(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(artifact.ArtifactError, match=re.escape(message)):
        artifact.check_model_dir(tmp_path)


def test_serve_checks_the_model_dir_without_torch(tmp_path):
    """serve's check is artifact.check_model_dir itself, and needs no torch (serve's process stays small)."""
    (tmp_path / artifact.CONFIG_FILE).write_text(json.dumps(with_change("preprocessing.image_size", -5)))
    (tmp_path / artifact.WEIGHTS_FILE).write_bytes(b"")
    with pytest.raises(serve.ModelDirError, match="preprocessing.image_size is -5"):
        serve.check_model_dir(tmp_path)
    (tmp_path / artifact.CONFIG_FILE).write_text(json.dumps(valid_config()))
    assert serve.check_model_dir(tmp_path, env={}) == {"architecture": "efficientnet_lite0", "classes": 3,
                                                       "image_size": 64, "format": "torch",
                                                       "why": "no exported formats in the artifact"}
    code = ("import sys; from pathlib import Path; from classifier.serving import serve; "
            f"serve.check_model_dir(Path({str(tmp_path)!r})); print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": str(Path(serve.__file__).resolve().parents[2])})
    assert result.stdout.strip() == "False"


# --- the model in-process -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def serving_model(artifact_dir):
    return inference.model_fn(artifact_dir, settings=settings.Settings.from_env())


def test_model_fn_loads_the_artifact_for_inference(serving_model, artifact_dir):
    assert serving_model.classes == serving_data.CLASSES
    assert serving_model.format == "torch"
    model = serving_model.network.model
    assert not model.training and all(not m.training for m in model.modules())
    assert serving_model.preprocessing.image_size == serving_data.IMAGE_SIZE
    weight = next(p for p in model.parameters() if p.dim() == 4)
    assert weight.is_contiguous(memory_format=torch.channels_last)


def test_in_process_predictions_are_right(serving_model, test_images):
    images, labels = test_images
    probabilities = serving_model.predict([serving_data.encode(pixels) for pixels in images])
    assert probabilities.shape == (len(images), len(serving_data.CLASSES))
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(len(images), dtype=torch.float64), atol=1e-6)
    accuracy = (probabilities.argmax(dim=1) == torch.tensor(labels)).double().mean().item()
    assert accuracy >= 0.9


def test_predict_uses_the_evaluation_preprocessing(serving_model, test_images):
    """One implementation: the tensor the model sees is exactly Preprocessing.load_for_eval's."""
    image = serving_data.encode(test_images[0][0])
    expected = serving_model.preprocessing.load_for_eval(image)
    assert torch.equal(serving_model.preprocess(image), expected)
    with torch.inference_mode():
        direct = serving_model.network.model(expected.unsqueeze(0)).double().exp()
    assert torch.allclose(serving_model.predict([image]), direct, atol=1e-5)


def test_predict_fn_names_the_bad_instance(serving_model, test_images):
    good = serving_data.encode(test_images[0][0])
    cases = [
        (good[: len(good) // 2], "instances[1] could not be decoded"),
        (b"GIF89a not really", "instances[1] could not be decoded"),
        (serving_data.png_bomb(9000, 9000), "instances[1] is too large"),
    ]
    for bad, message in cases:
        batch = inference.ImageBatch([good, bad], ["instances[0]", "instances[1]"])
        status, text = status_of(inference.predict_fn, batch, serving_model)
        assert status == 400 and message in text, text
        assert "object at 0x" not in text


# --- the MMS handler with a stand-in for MMS ----------------------------------------------------------
class FakeRequestProcessor:
    def __init__(self, headers):
        self.headers = headers

    def get_request_properties(self):
        return self.headers


class FakeContext:
    """What the handler uses of MMS's context."""

    def __init__(self, headers, model_dir):
        self.request_processor = [FakeRequestProcessor(headers)]
        self.system_properties = {"model_dir": str(model_dir), "gpu_id": None}
        self.status = (200, None)
        self.content_type = None

    def set_response_status(self, code=200, phrase="", idx=0):
        self.status = (code, phrase)

    def set_response_content_type(self, idx, value):
        self.content_type = value


@pytest.fixture(scope="module")
def handler(artifact_dir, serving_model):
    service = HandlerService(settings.Settings.from_env())
    service.model = serving_model  # already loaded by the fixture
    return service


def run(handler, artifact_dir, body, headers):
    context = FakeContext(headers, artifact_dir)
    [response] = handler.handle([{"body": body}], context)
    return context, response


def test_handler_success_and_log_line(handler, artifact_dir, test_images, caplog):
    image = serving_data.encode(test_images[0][0])
    with caplog.at_level(logging.INFO, logger="classifier.serving.requests"):
        context, response = run(handler, artifact_dir, image,
                                {"Content-Type": "image/jpeg", "X-Amzn-SageMaker-Custom-Attributes": "top_k=2"})
    assert context.status[0] == 200 and context.content_type == "application/json"
    [prediction] = json.loads(response)["predictions"]
    assert [c["name"] for c in prediction["classes"]][0] == serving_data.CLASSES[test_images[1][0]]
    assert len(prediction["classes"]) == 2
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith(REQUEST_LOG_TAG)]
    record = json.loads(line[len(REQUEST_LOG_TAG) + 1:])
    assert record["status"] == 200 and record["images"] == 1 and record["bytes"] == len(image)
    assert record["content_type"] == "image/jpeg" and record["top_k"] == 2
    assert record["ModelLatency"] > 0 and record["OverheadLatency"] >= 0
    assert isinstance(record["ModelLatency"], int) and "time" in record


def test_handler_turns_unexpected_failures_into_json_500(handler, artifact_dir, test_images, monkeypatch):
    def broken(data, model):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(inference, "predict_fn", broken)
    context, response = run(handler, artifact_dir, serving_data.encode(test_images[0][0]),
                            {"content-type": "image/png"})
    assert context.status[0] == 500 and context.content_type == "application/json"
    body = json.loads(response)
    assert body["code"] == 500 and "simulated failure" in body["message"] and "Traceback" not in response
    monkeypatch.undo()
    context, _ = run(handler, artifact_dir, serving_data.encode(test_images[0][0]), {"content-type": "image/png"})
    assert context.status[0] == 200  # the same worker goes on serving


def test_handler_checks_size_first(handler, artifact_dir):
    context, response = run(handler, artifact_dir, b"x" * (6 * 1024 * 1024 + 1), {"Content-Type": "text/plain"})
    assert context.status[0] == 413
    assert json.loads(response)["message"].startswith("the body is 6291457 bytes; the limit is 6291456 bytes")


def test_mms_finds_the_one_handler_class_with_what_it_calls():
    """MMS's own loader takes the one class defined in the module and calls initialize and handle."""
    from mms.model_loader import ModelLoader

    from classifier.serving import handler_service

    assert ModelLoader.list_model_services(handler_service) == [HandlerService]
    assert callable(HandlerService.initialize) and callable(HandlerService.handle)


def test_content_negotiation_happens_once_before_any_work(handler, artifact_dir):
    """A 406 comes before the body is looked at; output_fn only writes the type negotiate() chose."""
    context, response = run(handler, artifact_dir, b"not an image",
                            {"Content-Type": "image/jpeg", "Accept": "text/csv"})
    assert context.status[0] == 406 and "responses are application/json" in json.loads(response)["message"]
    assert inference.negotiate("text/html, application/json;q=0.5") == "application/json"
    with pytest.raises(ValueError, match="negotiate"):
        inference.output_fn(inference.Prediction(torch.ones(1, 2) / 2, ["a", "b"]), "text/csv", 1)
