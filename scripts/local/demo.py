"""`make demo`: the whole loop on this machine, as it would run on SageMaker.

Sample data -> a small tuning job of the head on the frozen backbone's cached features -> its final job, as
`make train-local TUNING=` runs it (orchestration.final_job: the best trial's hyperparameters with the
backbone's last stage fine-tuned, started from the best trial's model; the debugger and profiler on), kept
if its valid loss is below the best trial's ->
the report -> the local endpoint (the serving image's nginx + MMS stack, with data capture on, sampled as
endpoint.capture_percent says) -> every test image sent to it -> accuracy beside the baseline (a linear probe on
the frozen features), per-class accuracy and endpoint latency -> the endpoint stopped -> the tuning job,
evaluation and endpoint reports, and the monitor's report of what the endpoint captured.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from classifier.artifact import read_config
from classifier.export import formats
from classifier.serving.local import free_port
from classifier.training import hyperparameters as hp_specs
from classifier.training.data import DataError, scan_channel
from scripts import DEFAULT_DATA, REPO_ROOT, export, job_definition
from scripts.aws import settings as aws_settings
from scripts.data import fashion_mnist
from scripts.endpoint_stats import percentile
from scripts.invoke import CONTENT_TYPES, invoke_url
from scripts.local import LOCAL_BACKBONE, endpoint_process, jobs, train, tune
from scripts.local.baseline import linear_probe
from scripts.reports import demo_reports, evaluation_cli

STARTED = time.time()
CAPTURE_DIR = REPO_ROOT / "build" / "demo-capture"  # the demo endpoint's data capture (make monitor-report reads it)


def say(message: str) -> None:
    elapsed = int(time.time() - STARTED)
    print(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {message}", flush=True)


def tune_and_fine_tune(args, data: Path) -> tuple[Path, dict]:
    definition = job_definition.load().with_overrides(
        max_jobs=args.max_jobs, max_parallel_jobs=1,
        hyperparameters={"model_name": args.backbone, "image_size": str(args.image_size)})
    directory = tune.create_tuning(definition, data)
    tuner = tune.Tuner(directory, echo=say)
    say(f"Tuning job {tuner.record['name']}: {definition.strategy.name}, {definition.limits.max_jobs} trials over "
        + ", ".join(definition.tuned_names) + f", objective {definition.objective.type} "
        f"{definition.objective.metric} (the head on cached backbone features)")
    record = tuner.run()
    tune.print_summary(record, definition)
    if not record.get("best"):
        raise RuntimeError("no trial of the tuning job completed")
    # The loop's final job, as `make train-local TUNING=` runs it (orchestration.final_job), with the debugger
    # and profiler on.
    extra = {name: "true" for name in ("debugger", "profiler") if name in hp_specs.SPECS}
    job, best = train.prepare_final_job(definition, data, record["name"], given=extra, echo=say)
    say(f"Final job {job.name}" + (" with the " + " and ".join(extra) + " on" if extra else ""))

    def echo(line: str) -> None:
        if line.startswith(("[metrics]", "Traceback")) or " rule " in line:
            say(line)

    result = jobs.run_job(job, definition=definition, echo=echo)
    if result["status"] != "Completed":
        raise RuntimeError(f"the final job failed: {result.get('failure_reason')} (log: {job / jobs.LOG})")
    choice = train.record_final_model(definition, job, best)
    say(f"The final model is {'the final job' if choice.fine_tuned else 'the best trial'}'s: {choice.reason}")
    return (job if choice.fine_tuned else best[1]), record


def export_if_needed(job: Path) -> None:
    """The best trial's model, when it is the final one, has no exports (export=auto skips tuning trials): make
    them now, as a job that is not a trial does at its end, so the endpoint serves the fastest accepted format."""
    if formats.EXPORTS_KEY not in read_config(job / "model"):
        say(f"Exporting {job.name}'s model (OpenVINO fp32 + int8, each judged on the valid images)")
        export.run(str(job))


def served_format_lines(evaluation_json: Path) -> list[str]:
    """What the served format changes, from the evaluation report's side-by-side run on the test images."""
    results = {f["format"]: f for f in json.loads(evaluation_json.read_text()).get("formats", [])}
    served = next((f for f in results.values() if f["served"]), None)
    if served is None or "torch" not in results:
        return []
    torch_ = results["torch"]
    lines = [f"Served format: {served['format']} (the fastest the accuracy gate accepted on the valid images)"]
    if served["format"] != "torch":
        lines.append(f"  {served['images_per_second'] / torch_['images_per_second']:.1f}x PyTorch's forward speed on "
                     f"this machine; top-1 on the test images {served['accuracy']:.1%} vs PyTorch's "
                     f"{torch_['accuracy']:.1%} ({100 * (served['accuracy'] - torch_['accuracy']):+.1f} points)")
    lines += [f"  {name} refused by the accuracy gate: {f['gate']['reason']}" for name, f in results.items()
              if f.get("gate") and not f["gate"].get("accepted")]
    return lines


def serve_and_evaluate(job: Path, data: Path) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    work_dir = REPO_ROOT / "build" / "demo-endpoint"
    percent = aws_settings.load().capture_percent
    shutil.rmtree(CAPTURE_DIR, ignore_errors=True)  # this run's capture only
    say(f"Starting the local endpoint (sagemaker-inference + multi-model-server) on {url}, capturing {percent} % of "
        f"the requests in {CAPTURE_DIR}")
    log = REPO_ROOT / "build" / "demo-endpoint.log"
    server = endpoint_process.start(job, port, work_dir, log, capture=CAPTURE_DIR, capture_percent=percent)
    try:
        endpoint_process.wait_until_healthy(url, server, log)
        say("Endpoint answers /ping; sending every test image, one request each")
        classes = json.loads((job / "model" / "model_config.json").read_text())["classes"]
        test = scan_channel("test", data / "test", classes)
        latencies, correct, per_class = [], 0, {c: [0, 0] for c in classes}
        for path, label in test.samples:
            started = time.perf_counter()
            answer = invoke_url(url, path.read_bytes(), CONTENT_TYPES[path.suffix.lower()], "top_k=1")
            latencies.append((time.perf_counter() - started) * 1000)
            if answer.status != 200:
                raise RuntimeError(f"{path.name}: HTTP {answer.status}: {answer.body[:300]!r}")
            predicted = _top_index(answer.body)
            hit = predicted == label
            correct += hit
            per_class[classes[label]][0] += hit
            per_class[classes[label]][1] += 1
        return {"accuracy": correct / len(test), "count": len(test), "latencies": latencies,
                "per_class": {c: hits / total for c, (hits, total) in per_class.items() if total}}
    finally:
        say("Stopping the endpoint (SIGTERM)")
        endpoint_process.stop(server)


def _top_index(body: bytes) -> int:
    """The best class index of the first (only) image in an endpoint answer."""
    return int(json.loads(body)["predictions"][0]["classes"][0]["index"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--backbone", default=LOCAL_BACKBONE)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--max-jobs", type=int, default=4)
    args = parser.parse_args(argv)
    data = Path(args.data)
    (REPO_ROOT / "build").mkdir(exist_ok=True)
    if not (data / "train").is_dir():
        say(f"Preparing the sample data in {data}")
        if fashion_mnist.main(["--out", str(data)]) != 0:
            return 2
    try:
        job, tuning = tune_and_fine_tune(args, data)
        reports = sorted((job / "output").rglob("*.html"))
        if reports:
            say(f"Debugger/profiler report: {reports[0]}")
        say("Baseline: scikit-learn LogisticRegression on the frozen backbone's features")
        probe = linear_probe(args.backbone, args.image_size, data, jobs.feature_cache_dir(), progress=say)
        export_if_needed(job)
        endpoint_started = datetime.now(timezone.utc)
        results = serve_and_evaluate(job, data)
        report_lines = demo_reports.write_all(tuning["name"], job, data / "test",
                                              REPO_ROOT / "build" / "demo-endpoint" / "logs" / "mms_log.log",
                                              since=endpoint_started, capture=CAPTURE_DIR)
    except (RuntimeError, jobs.JobError, job_definition.JobDefinitionError, export.ExportError, DataError,
            aws_settings.SettingsError) as error:
        say(f"demo failed: {error}")
        return 1
    latencies = results["latencies"]
    print(f"\nTest accuracy on {results['count']} test images, through the endpoint: {results['accuracy']:.1%}")
    print(f"  baseline, LogisticRegression on the frozen features: {probe.test_accuracy:.1%} "
          f"({probe.tuned_test_accuracy:.1%} with {probe.tuned} chosen on valid)")
    print(f"  change over the baseline: {100 * (results['accuracy'] - probe.test_accuracy):+.1f} points")
    for name, accuracy in results["per_class"].items():
        print(f"  {name:<20} {accuracy:6.1%}")
    print(f"Endpoint latency per request (client side, JPEG/PNG {args.image_size}px model): "
          f"p50 {statistics.median(latencies):.1f} ms, p99 {percentile(latencies, 99):.1f} ms")
    evaluation_json = evaluation_cli.default_out(job.name, data / "test").with_name("evaluation.json")
    if evaluation_json.is_file():
        print("\n".join(served_format_lines(evaluation_json)))
    print(f"Model: {job / 'model'}   Training log: {job / jobs.LOG}   Tuning job: {tuning['name']}")
    print("\n".join(([f"Debugger/profiler report: {reports[0]}"] if reports else []) + report_lines))
    say("Demo finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
