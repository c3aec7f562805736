"""make batch-local against the real endpoint (nginx + MMS): the same predictions as one-by-one invocations, the
transform job's layout and summary, the evaluation report from its output, and bad input named."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

import serving_data
from scripts import batch_output
from scripts.invoke import invoke_url
from scripts.local import batch
from scripts.reports import evaluation_cli, predict
from scripts.reports.evaluation_data import EvaluationError, images

EVERY_CLASS = f"top_k={batch_output.EVERY_CLASS}"


@pytest.fixture(scope="module")
def tree(test_images, tmp_path_factory):
    """A class-per-folder tree of JPEGs and PNGs (the artifact's classes), with one corrupt image."""
    root = tmp_path_factory.mktemp("batch-data") / "test"
    pictures, labels = test_images
    for number, (pixels, label) in enumerate(zip(pictures[::2], labels[::2], strict=True)):
        folder = root / serving_data.CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        fmt = "PNG" if number % 3 == 0 else "JPEG"
        (folder / f"{number:02d}.{fmt.lower().replace('jpeg', 'jpg')}").write_bytes(serving_data.encode(pixels, fmt))
    (root / serving_data.CLASSES[0] / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a whole JPEG")
    return root


def one_by_one(url: str, tree, relative: str) -> dict:
    path = tree / relative
    kind = "image/png" if path.suffix == ".png" else "image/jpeg"
    answer = invoke_url(url, path.read_bytes(), kind, EVERY_CLASS)
    assert answer.status == 200, answer.body
    return json.loads(answer.body)


def same_answer(written: str, expected: dict) -> bool:
    """The same classes in the same order, the same probabilities (up to float printing)."""
    got = json.loads(written)["predictions"][0]["classes"]
    want = expected["predictions"][0]["classes"]
    return ([(c["name"], c["index"]) for c in got] == [(c["name"], c["index"]) for c in want]
            and np.allclose([c["probability"] for c in got], [c["probability"] for c in want], atol=1e-9, rtol=0))


def test_batch_local_gives_the_endpoints_predictions(server, tree, tmp_path, capsys):
    """Through the endpoint on PORT: one .out per image, each the endpoint's own answer to that image alone."""
    out = tmp_path / "out"
    assert batch.main(["--data", str(tree), "--port", str(server.port), "--out", str(out)]) == 1  # the broken one
    inputs = batch_output.local_inputs(tree)
    good = [name for name in inputs if not name.endswith("broken.jpg")]
    for relative in good:
        assert same_answer((out / f"{relative}.out").read_text(), one_by_one(server.url, tree, relative)), relative
    assert not (out / f"{serving_data.CLASSES[0]}/broken.jpg.out").exists()  # as a transform job: no output
    summary = json.loads((out / "summary.json").read_text())
    tops = Counter(batch_output.top_class(one_by_one(server.url, tree, r)["predictions"][0]["classes"])["name"]
                   for r in good)
    assert summary["images"] == len(inputs) and summary["classified"] == len(good)
    assert summary["counts"] == dict(tops) and list(summary["counts"].values()) == sorted(tops.values(), reverse=True)
    [failure] = summary["failures"]
    assert failure["input"] == f"{serving_data.CLASSES[0]}/broken.jpg" and failure["reason"].startswith("HTTP 400")
    captured = capsys.readouterr()
    assert f"{len(inputs)}/{len(inputs)} images" in captured.err  # progress
    assert f"{len(good)} of {len(inputs)} images classified" in captured.out and "1 failed:" in captured.out


def test_batch_local_starts_its_own_endpoint(server, artifact_dir, tree, tmp_path):
    """MODEL=: the stack started on a free port for the run, stopped after; the same answers as `server`."""
    small = tmp_path / "small"
    for relative in batch_output.local_inputs(tree)[:4]:
        (small / relative).parent.mkdir(parents=True, exist_ok=True)
        (small / relative).write_bytes((tree / relative).read_bytes())
    out = tmp_path / "out"
    summary = batch.run(str(small), model=str(artifact_dir), out=str(out))
    assert summary.images == summary.classified == 4
    for relative in batch_output.local_inputs(small):
        assert same_answer((out / f"{relative}.out").read_text(), one_by_one(server.url, small, relative))


def test_evaluation_report_from_a_batch_output(server, tree, tmp_path):
    """The .out files + the class folders: the predictions the endpoint gives, and the report's numbers."""
    out = tmp_path / "out"
    batch.run(str(tree), port=server.port, out=str(out))
    found = images(str(tree))
    from_batch = predict.from_batch_output(out, found)
    served = predict.from_endpoint(lambda body, kind, attributes: invoke_url(server.url, body, kind, attributes),
                                   "endpoint", found)
    assert from_batch.classes == served.classes and from_batch.paths == served.paths
    assert [p.name for p, _ in from_batch.failures] == ["broken.jpg"]
    np.testing.assert_array_equal(from_batch.labels, served.labels)
    np.testing.assert_allclose(from_batch.probabilities, served.probabilities, atol=1e-6, rtol=0)
    report = tmp_path / "report" / "evaluation-report.html"
    assert evaluation_cli.main(["--batch-output", str(out), "--data", str(tree), "--out", str(report)]) == 0
    numbers = json.loads(report.with_name("evaluation.json").read_text())
    assert numbers["images"] == len(served.paths)
    assert numbers["accuracy"] == pytest.approx(float(np.mean(served.predicted == served.labels)))


def test_a_transform_job_over_the_parent_prefix_is_found_too(server, tree, tmp_path):
    """A job run over the data set's prefix (test/ one level down): DATA=its test folder still finds the outputs."""
    out = tmp_path / "out"
    batch.run(str(tree.parent), port=server.port, out=str(out))
    assert (out / "test").is_dir()
    found = images(str(tree))
    assert len(predict.from_batch_output(out, found).paths) == len(found.paths) - 1


def test_bad_input_is_named(server, tree, tmp_path, capsys):
    from classifier.serving.local import free_port

    (tmp_path / "empty" / "class").mkdir(parents=True)
    (tmp_path / "empty" / "class" / "notes.txt").write_text("no images here")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "kept.txt").write_text("saved before")
    cases = [
        (["--data", ""], "DATA= is missing"),
        (["--data", str(tmp_path / "nowhere")], "is not a directory"),
        (["--data", str(tmp_path / "empty")], "holds no JPEG or PNG images"),
        (["--data", str(tree), "--port", str(free_port())], "no endpoint answers http://127.0.0.1:"),
        (["--data", str(tree), "--model", str(tmp_path)], "is neither a local job"),
        (["--data", str(tree), "--port", str(server.port), "--out", str(tmp_path / "full")], "already holds files"),
    ]
    for argv, words in cases:
        assert batch.main(argv) == 1, argv
        assert words in capsys.readouterr().err, argv
    assert (tmp_path / "full" / "kept.txt").read_text() == "saved before"
    with pytest.raises(EvaluationError, match="holds no .out file"):
        predict.from_batch_output(tmp_path / "empty", images(str(tree)))


def test_broken_links_are_said_not_lost_silently(server, tree, tmp_path, capsys):
    """A dangling image link and a folder link that loops are not sent, and are said (issue 24 item 8)."""
    data = tmp_path / "data"
    data.mkdir()
    first = sorted(p for p in tree.rglob("*.jpg") if p.name != "broken.jpg")[0]
    (data / "a.jpg").write_bytes(first.read_bytes())
    (data / "gone.jpg").symlink_to(tmp_path / "missing.jpg")
    (data / "loop").symlink_to(data / "loop")
    assert batch.main(["--data", str(data), "--port", str(server.port), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "batch-local: ignored 2 link(s) that lead to no file or folder (missing target or a loop): gone.jpg, " \
           "loop" in err, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == \
        ["a.jpg.out", "summary.json"]


def test_make_batch_local_needs_data():
    import subprocess

    from scripts import REPO_ROOT

    result = subprocess.run(["make", "--no-print-directory", "batch-local"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "usage: make batch-local DATA=<dir of images>" in result.stderr
    shown = subprocess.run(["make", "-n", "--no-print-directory", "batch-local", "DATA=d 1", "MODEL=m", "PORT=9000",
                            "OUT=o", "CONCURRENCY=2"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    command = " ".join(shown.stdout.replace("\\\n", " ").split())
    expected = "-m scripts.local.batch --data 'd 1' --model 'm' --port '9000' --out 'o' --concurrency '2'"
    assert expected in command, command


def test_an_interrupted_batch_local_goes_on_with_the_same_out(server, tree, tmp_path, monkeypatch, capsys):
    """Ctrl-C (or SIGTERM) part way: what was answered stays, the message says how to go on, and the same command
    sends only the rest; a finished OUT or one of another DATA is refused with what to do instead."""
    out = tmp_path / "out"
    argv = ["--data", str(tree), "--port", str(server.port), "--out", str(out), "--concurrency", "1"]
    real_send, sent = batch.send, []

    def interrupted_after_three(url, data, relative, out_dir):
        if len(sent) == 3:
            raise KeyboardInterrupt
        sent.append(relative)
        return real_send(url, data, relative, out_dir)

    monkeypatch.setattr(batch, "send", interrupted_after_three)
    assert batch.main(argv) == 130
    err = capsys.readouterr().err
    inputs = batch_output.local_inputs(tree)
    assert f"interrupted: 3 of {len(inputs)} images are answered in {out}; the same command" in err
    assert sorted(p.name for p in out.rglob("*.out")) == sorted(f"{r.rsplit('/', 1)[-1]}.out" for r in sent)
    assert not (out / "summary.json").exists()

    def counted(url, data, relative, out_dir):
        sent.append(relative)
        return real_send(url, data, relative, out_dir)

    monkeypatch.setattr(batch, "send", counted)
    assert batch.main(argv) == 1  # the broken image
    assert "(3 answered by an earlier, interrupted run)" in capsys.readouterr().err
    assert sorted(sent) == sorted(inputs)  # each image sent once over the two runs
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == len(inputs) and summary["classified"] == len(inputs) - 1
    assert batch.main(argv) == 1
    assert "holds a finished run (summary.json)" in capsys.readouterr().err
    (out / "summary.json").unlink()  # as if interrupted again
    assert batch.main(argv + ["--data", str(tree.parent)]) == 1
    assert f"holds an interrupted run over DATA={tree.resolve()}: give that DATA=" in capsys.readouterr().err
