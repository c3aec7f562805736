"""The evaluation report from a real small trained job: the model directory's numbers are the training
job's own test numbers, and through the local endpoint (real MMS) the same images give the same numbers."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import browser
from scripts.invoke import invoke_url
from scripts.reports import evaluation_cli, evaluation_report, metrics, predict
from scripts.reports.evaluation_data import Predictions, images


def plot_count(numbers: dict) -> int:
    # per-class scores, confusion matrix, top-k and reliability; the mistakes grid when there are mistakes
    return 4 + (numbers["accuracy"] < 1)


def test_model_directory_evaluation_is_the_training_jobs_own_test_evaluation(trained_job, image_set, tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv("SERVING_RUNTIME", "torch")  # the training job's test evaluation is PyTorch's
    out = tmp_path / "model" / "evaluation-report.html"
    assert evaluation_cli.main(["--model", str(trained_job), "--data", str(image_set), "--out", str(out)]) == 0
    numbers = json.loads(out.with_name("evaluation.json").read_text())
    job = json.loads((trained_job / "job.json").read_text())["metrics"]
    assert numbers["images"] == 40  # DATA, a data set, means its test/ folder
    assert numbers["accuracy"] == pytest.approx(job["test_accuracy"], abs=1e-6)
    assert numbers["log_loss"] == pytest.approx(job["test_loss"], abs=1e-4)
    rows = out.with_name("predictions.csv").read_text().splitlines()
    assert rows[0] == "image,true_class,predicted_class,probability,true_class_probability" and len(rows) == 41
    text = out.read_text()
    assert "Evaluation report: " + trained_job.name + " on test" in text
    # every format of the job's export on the same images, side by side: torch served (SERVING_RUNTIME), fp32 run
    formats = {f["format"]: f for f in numbers["formats"]}
    assert formats["torch"]["served"] and formats["torch"]["accuracy"] == numbers["accuracy"]
    assert formats["fp32"]["accuracy"] == pytest.approx(numbers["accuracy"], abs=1 / 40) and formats["fp32"]["gate"]
    assert "int8" in formats and "Formats: top-1 side by side" in text
    assert sum(c["images"] for c in numbers["classes"]) == 40 and len(numbers["confusion_matrix"]) == 4
    browser.check_page(out, tmp_path, plots=plot_count(numbers), height=5000)


def test_evaluation_through_the_local_endpoint_equals_the_model_directorys(endpoint, trained_job, image_set,
                                                                           tmp_path):
    """The same images, one of them corrupt: from the model directory (serving's own loading and
    preprocessing, in this process) and through the real endpoint (JSON batches; the batch holding the
    corrupt image is refused, so its images go alone) give the same classes, probabilities and report."""
    data = tmp_path / "test"
    shutil.copytree(image_set / "test", data)
    broken = next(data.iterdir()) / "broken.jpg"
    broken.write_bytes(next(next(data.iterdir()).glob("*.jpg")).read_bytes()[:300])
    found = images(str(data))
    local = predict.from_model_dir(trained_job / "model", found)
    served = predict.from_endpoint(lambda body, kind, attributes: invoke_url(endpoint.url, body, kind, attributes),
                                   f"endpoint {endpoint.url}", found)
    assert served.classes == local.classes and served.paths == local.paths and len(local.paths) == 40
    assert [p for p, _ in served.failures] == [p for p, _ in local.failures] == [broken]
    assert served.failures[0][1].startswith("HTTP 400") and local.failures[0][1] in served.failures[0][1]
    np.testing.assert_array_equal(served.labels, local.labels)
    np.testing.assert_array_equal(served.predicted, local.predicted)
    np.testing.assert_allclose(served.probabilities, local.probabilities, atol=1e-5, rtol=0)
    assert metrics.evaluate(served).accuracy == metrics.evaluate(local).accuracy
    # the commands: the same numbers on the two pages
    pages = {}
    for name, argument in (("model", ["--model", str(trained_job)]), ("endpoint", ["--endpoint", endpoint.url])):
        out = tmp_path / name / "evaluation-report.html"
        assert evaluation_cli.main([*argument, "--data", str(data), "--out", str(out)]) == 0
        pages[name] = json.loads(out.with_name("evaluation.json").read_text())
    for key in ("images", "accuracy", "top_k_accuracy", "macro_f1", "confusion_matrix", "most_confused"):
        assert pages["endpoint"][key] == pages["model"][key], key
    assert pages["endpoint"]["log_loss"] == pytest.approx(pages["model"]["log_loss"], abs=1e-5)
    assert pages["endpoint"]["ece"] == pytest.approx(pages["model"]["ece"], abs=1e-5)
    assert [f["image"] for f in pages["endpoint"]["not_classified"]] == [str(broken)]
    text = (tmp_path / "endpoint" / "evaluation-report.html").read_text()
    assert "Images that could not be classified" in text and "broken.jpg" in text
    browser.check_page(tmp_path / "endpoint" / "evaluation-report.html", tmp_path, plots=plot_count(pages["model"]),
                       height=5000)


def test_bad_model_or_data_is_named(trained_job, image_set, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(image_set / "test", data)
    (data / "999.Unknown").mkdir()
    shutil.copy(next((image_set / "test").rglob("*.jpg")), data / "999.Unknown" / "a.jpg")
    assert evaluation_cli.main(["--model", str(trained_job), "--data", str(data)]) == 2
    assert "1 class folder(s) the model does not know: 999.Unknown" in capsys.readouterr().err
    assert evaluation_cli.main(["--model", str(tmp_path), "--data", str(image_set)]) == 2
    assert f"MODEL={tmp_path}: {str(tmp_path)!r} is neither a local job" in capsys.readouterr().err


@pytest.mark.slow
def test_many_classes_stay_readable(image_set, tmp_path):
    """At 133 classes (the dog breeds) the full matrix keeps a readable size in a scrolling box, sorted by
    recall, with a close-up of the most confused classes and the pairs listed."""
    rng = np.random.default_rng(0)
    classes = [f"{i + 1:03d}.{name}" for i, name in enumerate(f"Breed_{chr(65 + i % 26)}{i}" for i in range(133))]
    labels = np.repeat(np.arange(133), 3)
    logits = rng.normal(0, 1, (len(labels), 133))
    logits[np.arange(len(labels)), labels] += 3
    logits[np.arange(len(labels)), (labels + 1) % 133] += rng.normal(2, 1, len(labels))  # each mixed with the next
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    paths = sorted((image_set / "test").rglob("*.jpg"))
    predictions = Predictions("synthetic", classes, [paths[i % len(paths)] for i in range(len(labels))], labels,
                              probabilities, 1.0)
    result = metrics.evaluate(predictions)
    assert len(result.pairs) == 20 and all(p.predicted == (p.true + 1) % 133 for p in result.pairs[:5])
    out = evaluation_report.write(predictions, result, tmp_path, tmp_path / "many.html", "133 classes")
    text = out.read_text()
    assert text.count('<div class="wide"><img class="plot" alt="confusion matrix"') == 1
    assert 'alt="confusion matrix close-up"' in text and text.count("<tr>", text.index("Most confused pairs")) >= 21
    rendered = browser.check_page(out, tmp_path, plots=6, height=3000)
    assert max(width for width, _ in rendered.images) > 133 * 12  # at its own size: 12 px or more per class


def test_calibration_and_top_k_against_scikit_learn():
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(1)
    probabilities = rng.dirichlet(np.ones(5) * 0.5, size=300)
    labels = rng.integers(0, 5, 300)
    predictions = Predictions("test", list("abcde"), [], labels, probabilities, 1.0)
    cal = metrics.calibration(predictions)
    correct = (probabilities.argmax(1) == labels).astype(int)
    accuracy, confidence = calibration_curve(correct, probabilities.max(1), n_bins=10)
    filled = cal.counts > 0
    np.testing.assert_allclose(cal.accuracy[filled], accuracy)
    np.testing.assert_allclose(cal.confidence[filled], confidence)
    expected = sum(n / 300 * abs(a - c) for n, a, c in zip(cal.counts[filled], accuracy, confidence, strict=True))
    assert cal.ece == pytest.approx(expected)
    top = metrics.top_k_accuracy(predictions)
    assert list(top) == [1, 2, 3] and top[1] == pytest.approx(correct.mean())
    ranks = (-probabilities).argsort(axis=1)
    assert top[3] == pytest.approx(np.mean([labels[i] in ranks[i, :3] for i in range(300)]))


@pytest.mark.slow
def test_class_names_with_markup_show_as_text(image_set, tmp_path):
    """Class names (the data set's folder names), the model's source and an image that could not be classified
    are user data: `<img src=x onerror=alert(1)>` among them shows as text in every table, and no script runs."""
    rng = np.random.default_rng(2)
    classes = ["001.Cat", browser.MARKUP, "003.Dog"]
    labels = np.repeat(np.arange(3), 4)
    logits = rng.normal(0, 1, (len(labels), 3))
    logits[np.arange(len(labels)), labels] += 1.5
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    paths = sorted((image_set / "test").rglob("*.jpg"))[:len(labels)]
    predictions = Predictions(f"endpoint {browser.MARKUP}", classes, paths, labels, probabilities, 1.0,
                              failures=[(tmp_path / browser.MARKUP / "a.jpg", f"HTTP 400: {browser.MARKUP}")])
    result = metrics.evaluate(predictions)
    assert any(predictions.classes[p.true] == browser.MARKUP or predictions.classes[p.predicted] == browser.MARKUP
               for p in result.pairs)  # the name is in the most confused pairs too
    out = evaluation_report.write(predictions, result, tmp_path, tmp_path / "markup.html", browser.MARKUP)
    assert browser.MARKUP not in out.read_text()
    rendered = browser.check_page(out, tmp_path, plots=plot_count({"accuracy": result.accuracy}), height=3000)
    browser.shows_as_text(rendered, f"Evaluation report: {browser.MARKUP}", f"endpoint {browser.MARKUP}",
                          f"HTTP 400: {browser.MARKUP}", str(tmp_path / browser.MARKUP / "a.jpg"))
    assert rendered.text.count(browser.MARKUP) >= 6  # title, source, per-class row, pairs, failure
