"""Reports under faults (issue 24 items 3, 6 and 9): `make evaluate` into a folder of other files, of a bad model or
a bad model.tar.gz (one line, nothing left unpacked), an endpoint log with malformed lines, class names in
Chinese, Korean and emoji in the figures."""
from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest

import browser
from classifier.pages import figures
from scripts.export import pack
from scripts.reports import endpoint_cli, evaluation_cli, evaluation_report, metrics
from scripts.reports.evaluation_data import Predictions


@pytest.fixture
def scratch(tmp_path, monkeypatch) -> Path:
    """The temporary folder everything is unpacked into: empty after every evaluation, whatever its outcome."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def unpacked(folder: Path) -> list[Path]:
    """What opened_model unpacked there (torch keeps caches of its own in the temporary folder too)."""
    return sorted(folder.glob("unpacked-model-*"))


def test_evaluate_into_a_folder_of_other_files_replaces_none_of_them(trained_job, image_set, tmp_path, capsys):
    folder = tmp_path / "shared"
    folder.mkdir()
    kept = {"evaluation.json": '{"mine": true}', "predictions.csv": "mine\n", "notes.txt": "mine\n"}
    for name, text in kept.items():
        (folder / name).write_text(text)
    out = folder / "r.html"
    assert evaluation_cli.main(["--model", str(trained_job), "--data", str(image_set), "--out", str(out)]) == 0
    assert {name: (folder / name).read_text() for name in kept} == kept
    numbers, rows = evaluation_report.side_files(out)
    assert (numbers.name, rows.name) == ("r-evaluation.json", "r-predictions.csv")
    assert json.loads(numbers.read_text())["images"] == 40 and len(rows.read_text().splitlines()) == 41
    assert f"Evaluation report: {out} (beside it: r-evaluation.json, r-predictions.csv)" in capsys.readouterr().out
    assert "r-evaluation.json" in out.read_text()  # the page links its own files
    # The default page keeps the names other tools read (make register EVALUATION=.../evaluation.json).
    assert [p.name for p in evaluation_report.side_files(folder / "evaluation-report.html")] == \
        ["evaluation.json", "predictions.csv"]


def archive_with(tmp_path: Path, name: str, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    path = tmp_path / name
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def member(name: str, data: bytes = b"x", **fields) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in fields.items():
        setattr(info, key, value)
    return info, data


def huge_archive(tmp_path: Path) -> Path:
    """A small model.tar.gz whose first member's header says 1 TiB: refused as that header is read, before
    anything is written and before its data is decompressed."""
    info = tarfile.TarInfo("model.pth")
    info.size = 1024 ** 4
    header = info.tobuf(format=tarfile.GNU_FORMAT)
    path = tmp_path / "huge.tar.gz"
    path.write_bytes(gzip.compress(header + b"\0" * 1024 * 1024))
    return path


def test_evaluate_of_bad_models_and_archives_is_one_line_and_leaves_nothing(trained_job, image_set, tmp_path,
                                                                            scratch, capsys):
    model = trained_job / "model"
    config = json.loads((model / "model_config.json").read_text())
    misfit = shutil.copytree(model, tmp_path / "misfit")
    (misfit / "model_config.json").write_text(json.dumps({**config, "classes": config["classes"] + ["extra"]}))
    corrupt = shutil.copytree(model, tmp_path / "corrupt")
    (corrupt / "model.pth").write_bytes((model / "model.pth").read_bytes()[:1000])
    no_weights = shutil.copytree(model, tmp_path / "no-weights")
    (no_weights / "model.pth").unlink()
    good = tmp_path / "good" / "model.tar.gz"
    good.parent.mkdir()
    pack(model, good)
    misfit_archive = tmp_path / "misfit.tar.gz"
    pack(misfit, misfit_archive)
    cases = [
        (misfit, "does not match architecture efficientnet_lite0 with 5 classes: size mismatch for"),
        (corrupt, "model.pth cannot be read as a state dict of tensors"),
        (no_weights, "model.pth is missing"),
        (misfit_archive, "does not match architecture"),  # unpacked, failed, removed
        (archive_with(tmp_path, "escape.tar.gz", [member("../../escaped", b"owned")]), "is refused: "),
        (archive_with(tmp_path, "link.tar.gz", [member("model.pth", b"", type=tarfile.SYMTYPE,
                                                       linkname="/etc/passwd")]), "is refused: "),
        (archive_with(tmp_path, "empty.tar.gz", [member("README", b"hello")]), "holds no model_config.json"),
        (huge_archive(tmp_path), "would unpack to 1024.0 GiB or more, more than the 8 GiB a model archive may hold"),
        (tmp_path / "not-an-archive.tar.gz", "cannot be unpacked: not a tar archive (gzip, bzip2, xz or "),
        (tmp_path / "truncated.tar.gz", "cannot be unpacked: "),
    ]
    (tmp_path / "not-an-archive.tar.gz").write_bytes(b"not gzip")
    (tmp_path / "truncated.tar.gz").write_bytes(good.read_bytes()[:2000])  # a download cut short
    for bad, words in cases:
        out = tmp_path / "reports" / f"{bad.name}.html"
        assert evaluation_cli.main(["--model", str(bad), "--data", str(image_set), "--out", str(out)]) == 2, bad
        lines = capsys.readouterr().err.strip().splitlines()
        assert lines[-1].startswith("error: ") and words in lines[-1], (bad, lines)
        assert len(lines) <= 2 and "Traceback" not in "".join(lines), lines  # "Evaluating ..." when it got that far
        assert not out.exists()
        assert unpacked(scratch) == [], bad  # nothing left unpacked
    assert not (tmp_path.parent / "escaped").exists()
    out = tmp_path / "reports" / "good.html"
    assert evaluation_cli.main(["--model", str(good), "--data", str(image_set), "--out", str(out)]) == 0
    assert json.loads(evaluation_report.side_files(out)[0].read_text())["images"] == 40
    assert unpacked(scratch) == []


def test_a_free_space_check_comes_before_unpacking(tmp_path, monkeypatch):
    from classifier import artifact

    archive = archive_with(tmp_path, "model.tar.gz", [member("model.pth", b"0" * 4096)])
    monkeypatch.setattr(artifact, "FREE_SPACE_LEFT", shutil.disk_usage(tmp_path).free)  # as if the disk were full
    with pytest.raises(artifact.ArtifactError, match=r"would unpack to 0 MiB; .* MiB free"):
        artifact.unpack_archive(archive, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_an_archive_is_judged_from_its_headers_and_its_errors_are_one_line(tmp_path):
    """The bomb's size is known from its first header: refused there, before its data is decompressed (the
    archive holds only the first MiB of it, so reading on would fail otherwise). A file that is no archive at all
    is one line, not Python's line per decompressor tried."""
    from classifier import artifact

    with pytest.raises(artifact.ArtifactError, match=r"would unpack to 1024\.0 GiB or more, more than the 8 GiB"):
        artifact.unpack_archive(huge_archive(tmp_path), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (tmp_path / "text.tar.gz").write_text("hello\n")
    with pytest.raises(artifact.ArtifactError) as refused:
        artifact.unpack_archive(tmp_path / "text.tar.gz", tmp_path / "out")
    assert str(refused.value) == (f"{tmp_path / 'text.tar.gz'} cannot be unpacked: not a tar archive (gzip, bzip2, "
                                  "xz or uncompressed)")


def test_the_endpoint_report_leaves_out_malformed_lines(tmp_path, capsys):
    good = [{"time": f"2026-01-02T03:04:{s:02d}.000+00:00", "request_id": f"r{s}", "content_type": "image/jpeg",
             "bytes": 900, "images": 1, "status": 200, "ModelLatency": 9000 + s, "OverheadLatency": 300}
            for s in range(10)]
    lines = [f"2026-01-02 INFO INVOCATION {json.dumps(record)}" for record in good]
    lines[3:3] = ['INFO INVOCATION {"time": "2026-01-02T03:04:05', "INFO INVOCATION {\"status\": \"abc\"}",
                  'INFO INVOCATION {"status": 200, "time": "yesterday"}',
                  'INFO INVOCATION {"status": 200, "ModelLatency": "fast"}',
                  "INFO INVOCATION [1, 2]"]  # not a record at all: not counted
    log = tmp_path / "mms_log.log"
    log.write_text("\n".join(lines) + "\n")
    out = tmp_path / "endpoint-report.html"
    assert endpoint_cli.main(["--log", str(log), "--out", str(out)]) == 0
    text = out.read_text()
    assert "<td>Requests</td><td>10</td>" in text
    assert "4 INVOCATION line(s) of the log are not records the handler writes and were left out" in text


@pytest.mark.slow  # Chromium
def test_chinese_korean_and_emoji_class_names_are_drawn(image_set, tmp_path):
    classes = ["鞋子", "T恤 👕", "가방", "Sneaker ☂"]
    if figures.undrawable(classes):
        pytest.skip(f"the fonts for {figures.undrawable(classes)!r} are not installed ({figures.FONT_PACKAGES})")
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 5)
    probabilities = rng.dirichlet(np.ones(4), size=len(labels))
    paths = sorted((image_set / "test").rglob("*.jpg"))[: len(labels)]
    predictions = Predictions("synthetic", classes, paths, labels, probabilities, 1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = evaluation_report.write(predictions, metrics.evaluate(predictions), tmp_path, tmp_path / "cjk.html",
                                      "CJK")
    missing = [str(w.message) for w in caught if "missing from font" in str(w.message)]
    assert missing == []
    assert "are in no installed font" not in out.read_text()
    browser.check_page(out, tmp_path, plots=5)
    # A script none of the fonts has (Adlam) is said on the page, not drawn as boxes silently.
    predictions.classes = ["\U0001E900\U0001E901", *classes[1:]]
    out = evaluation_report.write(predictions, metrics.evaluate(predictions), tmp_path, tmp_path / "adlam.html",
                                  "Adlam")
    assert "the class names&#39; characters \U0001E900\U0001E901 are in no installed font" in out.read_text()
