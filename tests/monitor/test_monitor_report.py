"""make monitor-report on captures that hold what real ones can: lines cut off while they were written, lines that
are not capture records, bodies that are not images, error answers, JSON requests of several images, an empty
window, an empty folder. Each is reported with where it is; nothing stops the report. And the page renders in
Chromium with its plots, showing user data (a folder name that is markup) as text."""
from __future__ import annotations

import base64
import json
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import browser
from classifier.serving.capture import CaptureWriter
from scripts import REPO_ROOT
from scripts.monitor import capture_data, monitor_cli
from scripts.reports import demo_reports

ANSWER = json.dumps({"predictions": [{"classes": [{"name": "x", "index": 0, "probability": 0.9}]}]})
ERROR = json.dumps({"code": 400, "type": "BadRequest", "message": "the image could not be decoded"})


def sample_images(image_set) -> list[bytes]:
    return [path.read_bytes() for path in sorted((image_set / "test").rglob("*")) if path.is_file()]


def write_capture(folder: Path, images: list[bytes], start: float) -> Path:
    writer = CaptureWriter(folder, "img-clf")
    for index, data in enumerate(images):
        writer.offer(data, "image/jpeg", ANSWER, "application/json", start + index)
    two = json.dumps({"instances": [{"b64": base64.b64encode(d).decode()} for d in images[:2]]})
    two_answer = json.dumps({"predictions": [json.loads(ANSWER)["predictions"][0]] * 2})
    writer.offer(two.encode(), "application/json", two_answer, "application/json", start + len(images))
    writer.offer(b"hello", "text/plain", json.dumps({"code": 415, "type": "UnsupportedMediaType", "message": "no"}),
                 "application/json", start + len(images) + 1)
    writer.offer(b"\xff\xd8\xff not a jpeg", "image/jpeg", ERROR, "application/json", start + len(images) + 2)
    writer.close()
    return next(folder.rglob("*.jsonl"))


@pytest.fixture
def damaged_capture(image_set, tmp_path) -> Path:
    """A capture of the test images with every kind of damage a capture file can carry."""
    folder = tmp_path / "capture"
    path = write_capture(folder, sample_images(image_set), time.time() - 3600)
    good = path.read_text().splitlines()
    record = json.loads(good[0])
    bad_base64 = json.loads(good[0])
    bad_base64["captureData"]["endpointInput"]["data"] = "%%%"
    odd_encoding = json.loads(good[0])
    odd_encoding["captureData"]["endpointInput"]["encoding"] = "XML"
    no_time = {**record, "eventMetadata": {"eventId": "x"}}
    lines = good + ["this is not json", json.dumps({"captureData": "?"}), json.dumps(bad_base64),
                    json.dumps(odd_encoding), json.dumps(no_time), "", good[1][: len(good[1]) // 2]]  # cut off last
    path.write_text("\n".join(lines))
    return folder


def test_a_damaged_capture_is_reported_not_a_crash(damaged_capture, monitored_model, image_set, tmp_path, capsys):
    found = capture_data.read(damaged_capture)
    images = len(sample_images(image_set))
    assert len(found.requests) == images + 3
    problems = {p.where.rsplit(":", 1)[1]: p.what for p in found.problems}
    first = images + 4  # the line after the writer's own
    assert problems[str(first)].startswith("not a JSON record")
    assert problems[str(first + 1)] == "not a capture record (no captureData)"
    assert problems[str(first + 2)] == "endpointInput.data is not valid base64"
    assert problems[str(first + 3)] == "endpointInput.encoding is 'XML', not one of BASE64, JSON, CSV"
    assert problems[str(first + 4)] == "no eventMetadata.inferenceTime"
    assert "a line cut off while it was written?" in problems[str(first + 6)]  # the empty line is skipped
    out = tmp_path / "report" / "monitor-report.html"
    assert monitor_cli.main(["--capture", str(damaged_capture), "--model", str(monitored_model),
                             "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"Monitor report: {out}" in printed and f"Monitor summary: {out.with_name('monitor.json')}" in printed
    summary = json.loads(out.with_name("monitor.json").read_text())
    assert summary["images"] == {"analysed": images + 2, "not_decodable": 1, "requests_without_images": 1,
                                 "left_out_by_sampling": 0}
    assert summary["health"]["errors"] == {"400": 1, "415": 1}
    assert summary["capture"]["unreadable_lines"] == 6
    whats = [p["what"] for p in summary["problems"]]
    assert any(w.startswith("no image: text/plain: Content-Type 'text/plain' is not supported") for w in whats)
    assert any(w.startswith("not decodable: ") for w in whats)
    assert {c["name"] for c in summary["checks"]} == {"embeddings", "class_mix", "confidence", "low_confidence",
                                                      "image_statistics"}
    assert summary["decided"] and isinstance(summary["drift"], bool)
    assert "DataDrift" in summary["metrics"] and summary["metrics"]["CapturedImages"] == images + 2
    rendered = browser.check_page(out, tmp_path, plots=6)
    assert "Capture problems" in rendered.text and "not a capture record (no captureData)" in rendered.text


def test_an_empty_window_and_an_empty_folder(damaged_capture, monitored_model, tmp_path, capsys):
    out = tmp_path / "empty" / "monitor-report.html"
    future = monitor_cli.window(1, now=datetime.now(timezone.utc) + timedelta(days=30))
    found = capture_data.read(damaged_capture, *future)
    assert found.requests == [] and found.files == 0  # the hour folders before the window are not read
    assert monitor_cli.main(["--capture", str(damaged_capture), "--model", str(monitored_model), "--hours", "0.001",
                             "--out", str(out)]) == 0
    summary = json.loads(out.with_name("monitor.json").read_text())
    assert summary["drift"] is False and summary["decided"] is False
    assert summary["verdict"].startswith("No verdict: 0 images")
    assert summary["metrics"] == {"CapturedImages": 0.0}  # no drift figure: the alarm reads it as no data
    assert {c["verdict"] for c in summary["checks"]} == {"too few images"}
    rendered = browser.check_page(out, tmp_path, plots=4)  # no timeline, no unusual images
    assert "No captured request in this window" in rendered.text
    (tmp_path / "nothing").mkdir()
    assert monitor_cli.main(["--capture", str(tmp_path / "nothing"), "--model", str(monitored_model),
                             "--out", str(tmp_path / "nothing-report" / "r.html")]) == 0
    assert "No verdict" in capsys.readouterr().out


def test_bad_input_is_one_line(monitored_model, tmp_path, capsys):
    assert monitor_cli.main(["--capture", str(tmp_path / "missing"), "--model", str(monitored_model)]) == 2
    assert "is not a folder" in capsys.readouterr().err
    for endpoint in ("a", "b"):
        writer = CaptureWriter(tmp_path / "mixed", endpoint)
        writer.offer(b"x", "image/jpeg", "{}", "application/json", time.time())
        writer.close()
    with pytest.raises(capture_data.CaptureError, match="several endpoints or variants"):
        capture_data.read(tmp_path / "mixed")
    (tmp_path / "nothing-here").mkdir()
    assert monitor_cli.main(["--capture", str(tmp_path / "nothing-here"), "--model", str(tmp_path / "mixed")]) == 2
    assert "MODEL=" in capsys.readouterr().err
    no_baseline = tmp_path / "plain-model"
    no_baseline.mkdir()
    (no_baseline / "model_config.json").write_text((monitored_model / "model_config.json").read_text())
    (no_baseline / "model.pth").write_bytes((monitored_model / "model.pth").read_bytes())
    assert monitor_cli.main(["--capture", str(tmp_path / "nothing-here"), "--model", str(no_baseline)]) == 2
    assert "make monitor-baseline MODEL=" in capsys.readouterr().err


def test_the_demo_reports_what_its_endpoint_captured(image_set, monitored_model, tmp_path, monkeypatch):
    """make demo's last report: its endpoint's capture against the final model's baseline, the page's path and the
    verdict on one line; the endpoint's log missing is a note on the page, not a failure."""
    monkeypatch.setattr(demo_reports, "MONITOR_REPORT", tmp_path / "demo" / "monitor-report.html")
    capture = tmp_path / "demo-capture"
    write_capture(capture, sample_images(image_set), time.time() - 60)
    line = demo_reports.monitor_report(capture, monitored_model, tmp_path / "no-endpoint.log")
    assert line.startswith(f"{tmp_path / 'demo' / 'monitor-report.html'} (") and "drift" in line.lower(), line
    summary = json.loads((tmp_path / "demo" / "monitor.json").read_text())
    assert summary["decided"] and summary["images"]["analysed"] == len(sample_images(image_set)) + 2
    with pytest.raises(capture_data.CaptureError):  # no capture at all: write_all notes it, the demo goes on
        demo_reports.monitor_report(tmp_path / "none", monitored_model, tmp_path / "no-endpoint.log")
    assert issubclass(capture_data.CaptureError, ValueError)


def test_markup_in_user_data_shows_as_text(image_set, monitored_model, tmp_path):
    folder = tmp_path / browser.MARKUP
    write_capture(folder, sample_images(image_set)[:25], time.time() - 100)
    out = tmp_path / "markup" / "monitor-report.html"
    assert monitor_cli.main(["--capture", str(folder), "--model", str(monitored_model), "--out", str(out)]) == 0
    assert browser.MARKUP not in out.read_text()
    rendered = browser.check_page(out, tmp_path, plots=6)
    browser.shows_as_text(rendered, browser.MARKUP)


@pytest.mark.slow
def test_make_monitor_report_without_arguments_says_what_to_give():
    done = subprocess.run(["make", "-s", "monitor-report"], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0 and "CAPTURE=<capture folder> MODEL=" in done.stderr
