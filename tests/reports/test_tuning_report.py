"""The tuning job report: written by the local tuner at its end from a real tiny tuning job, by `make
tune-report`, and for a SageMaker tuning job from recorded responses (botocore's Stubber)."""
from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess

import pytest

import browser
from scripts import job_definition, orchestration
from scripts.local import tune, tuning_jobs
from scripts.reports import tuning_data, tuning_local, tuning_plots, tuning_report

PLOTS = 4  # objective per trial, hyperparameters, parallel coordinates, per-epoch curves


def test_local_tuner_writes_the_report_at_its_end(tuning_run, tuning_job, tmp_path):
    _, _, output = tuning_run
    page = tuning_local.report_path(tuning_job)
    assert f"Tuning job report: {page}" in output
    record = json.loads((tuning_job / tuning_jobs.RECORD).read_text())
    text = page.read_text()
    for trial in record["trials"]:
        assert trial["job"] in text
        # the trial's own debugger report is linked, relative to the page
        assert f'href="../../{trial["job"]}/output/data/debugger-report.html"' in text
    best = record["best"]
    assert f"make train-local TUNING={record['name']}" in text
    assert re.search(r'<tr class="best"><td>%d</td><td><span[^>]*><a [^>]*>%s</a>' % (best["trial"], best["job"]), text)
    run = tuning_local.load(tuning_job)
    assert [t.trial.name for t in run.trials] == [t["job"] for t in record["trials"]]
    assert all(sorted(t.curve) == [1, 2] for t in run.trials)  # epochs=2: both per-epoch values
    # the last per-epoch value of the best trial is a value the tuner saw; its objective is the best epoch's
    best_run = run.best()
    assert best_run.trial.name == best["job"] and best_run.trial.objective == min(best_run.curve.values())
    browser.check_page(page, tmp_path, plots=PLOTS)


def test_make_tune_report_rewrites_it(tuning_run, tuning_job):
    root, _, _ = tuning_run
    page = tuning_local.report_path(tuning_job)
    page.unlink()
    done = subprocess.run(["make", "-s", "tune-report", f"TUNING={tuning_job.name}"], cwd=tune.jobs.REPO_ROOT,
                          env={**os.environ, "JOBS_DIR": str(root)}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == f"Tuning job report: {page}" and page.is_file()


def test_stopped_early_and_failed_trials_are_marked(tuning_job, tmp_path):
    """The same trials, the second as if the tuner had pruned it after epoch 1 and a third that failed
    before its first epoch: the table, the curves' legend and the notes say so."""
    run = tuning_local.load(tuning_job)
    first, second = run.trials
    pruned = dataclasses.replace(second, trial=dataclasses.replace(second.trial, status="Stopped", objective=None),
                                 curve=dict(list(second.curve.items())[:1]), early_stopped=True)
    failed = dataclasses.replace(second, number=3, curve={}, trial=orchestration.Trial(
        "img-clf-x-003", "Failed", None, {"lr": "0.01", "batch_size": "16"}, 4.0, "bad hyperparameter value(s)"))
    run = dataclasses.replace(run, trials=(first, pruned, failed))
    assert run.best() is first
    figure = tuning_plots.curves(run)
    assert [t.get_text() for t in figure.axes[0].get_legend().get_texts()] == [
        f"best (trial {first.number})", "stopped early"]
    page = tuning_report.write(run, tmp_path / "marked.html")
    text = page.read_text()
    assert 'class="badge Pruned">Stopped early<' in text and "stopped by the tuner&#39;s early stopping" in text
    assert 'class="badge Failed">Failed<' in text and "bad hyperparameter value(s)" in text
    assert "No per-epoch valid_loss from trial(s) 3 (failed)" in text
    assert "Parallel coordinates need at least two completed trials." in text  # one completed trial left
    browser.check_page(page, tmp_path, plots=PLOTS - 1)


@pytest.mark.slow
def test_names_with_markup_show_as_text(tmp_path):
    """Trial (training job) names, the tuning job's name, hyperparameter values and failure reasons are user
    data: a page holding `<img src=x onerror=alert(1)>` in each shows it as text, and no script runs."""
    definition = job_definition.load()
    categorical = job_definition.ParameterRange("optimizer", "Categorical", values=("sgd", browser.MARKUP))
    ranges = (*definition.ranges, categorical)
    names = [r.name for r in definition.ranges]
    page_dir = tmp_path / f"jobs/{browser.MARKUP}/output/data"
    page_dir.mkdir(parents=True)
    (page_dir / "debugger-report.html").write_text("<!DOCTYPE html><title>trial</title>")

    def trial(number: int, status: str, objective, reason: str = "") -> tuning_data.TrialRun:
        values = {**{n: str(0.01 * number) for n in names}, "optimizer": browser.MARKUP if number > 1 else "sgd"}
        return tuning_data.TrialRun(number, orchestration.Trial(f"{browser.MARKUP}-{number:03d}", status, objective,
                                                                values, 10.0 * number, reason),
                                    {1: 1.0 - 0.1 * number, 2: 0.9 - 0.1 * number} if objective else {},
                                    page=str(page_dir / "debugger-report.html") if number == 1 else "")

    run = tuning_data.TuningRun(
        name=browser.MARKUP, backend="local", location=str(tmp_path), status="Completed", strategy="Random",
        early_stopping="Off", objective=definition.objective, ranges=ranges,
        trials=(trial(1, "Completed", 0.7), trial(2, "Completed", 0.8), trial(3, "Failed", None, browser.MARKUP)),
        max_jobs=3, max_parallel=1, retrain=(f"make train-local TUNING={browser.MARKUP}",),
        notes=(f"a note about {browser.MARKUP}",))
    page = tuning_report.write(run, tmp_path / "markup.html")
    text = page.read_text()
    assert browser.MARKUP not in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    # the link to the trial's page is a quoted relative path: the name's `:`, `(` or `=` make no scheme of it
    assert 'href="jobs/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E/output/data/debugger-report.html"' in text
    rendered = browser.check_page(page, tmp_path, plots=PLOTS)
    browser.shows_as_text(rendered, f"Tuning job report: {browser.MARKUP}", f"{browser.MARKUP}-001",
                          f"{browser.MARKUP}-003", f"TUNING={browser.MARKUP}", f"a note about {browser.MARKUP}")
    assert rendered.text.count(browser.MARKUP) >= 8  # title, the trials (twice for the best), value, reason, ...
