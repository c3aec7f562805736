"""make batch-local: a batch transform on this machine, through the serving image's own stack (nginx + MMS).

    python -m scripts.local.batch --data DIR [--model <model dir | job dir | job name>] [--port 8080] [--out DIR]
                                  [--concurrency 4]

Each JPEG or PNG under DATA (sub-folders included) is one request with its own content type, every class
asked for: what a SageMaker transform job with SplitType None and SingleRecord sends, --concurrency at a
time (its MaxConcurrentTransforms). Each answer goes to
<out>/<path under DATA>.out, summary.json beside them (scripts/batch_output.py: the layout and summary that
`make batch-transform` shares). With --model the endpoint is started on a free port and stopped at the end
(`make serve-local`'s command); without it, the endpoint on --port is used. Output folder:
build/batch-local/<DATA name>-<yyyymmdd-hhmmss>/ unless --out (a folder that holds other files is refused).
An interrupted run (Ctrl-C, SIGTERM, a crash) goes on where it stopped when it is run again with the same DATA
and OUT: the images whose .out file is there are not sent again (each .out is written whole or not at all).
"""
from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import ExitStack, contextmanager
from pathlib import Path

from classifier.artifact import atomic_write_bytes, atomic_write_json
from classifier.progress import Progress
from classifier.serving.settings import DEFAULT_PORT
from scripts import REPO_ROOT, batch_output, orchestration
from scripts.batch_output import BatchError
from scripts.invoke import CONTENT_TYPES, invoke_url
from scripts.local import endpoint_process, jobs

OUT_DIR = REPO_ROOT / "build" / "batch-local"
RUN_RECORD = ".batch-local.json"  # in the output folder: which DATA this run classifies (to go on after a stop)
CONCURRENCY = 4  # requests in flight, as transform.max_concurrent_transforms (MMS queues what its workers lack)


def output_dir(out: str, data: Path, inputs: list[str]) -> tuple[Path, set[str]]:
    """Where the outputs go (made once the endpoint answers) and the inputs already answered there: a new or
    empty folder, or one an interrupted run over the same DATA left (it goes on); anything else is refused."""
    folder = Path(out) if out else OUT_DIR / f"{data.resolve().name}-{orchestration.timestamp()}"
    marker = folder / RUN_RECORD
    if not marker.is_file():
        return batch_output.fresh_folder(folder), set()
    try:
        started = json.loads(marker.read_text())["data"]
    except (OSError, ValueError, KeyError, TypeError):
        raise BatchError(f"OUT={folder} holds an unreadable {RUN_RECORD}: give a new or empty folder") from None
    if (folder / batch_output.SUMMARY_FILE).exists():
        raise BatchError(f"OUT={folder} holds a finished run ({batch_output.SUMMARY_FILE}): give a new or empty "
                         "folder (nothing is overwritten)")
    if started != str(data.resolve()):
        raise BatchError(f"OUT={folder} holds an interrupted run over DATA={started}: give that DATA= to finish it, "
                         "or a new or empty OUT=")
    outputs = batch_output.Outputs(folder)
    done = set()
    for relative in inputs:
        found = outputs.find(relative)
        try:
            if found is not None and batch_output.read_output(found):
                done.add(relative)
        except BatchError:
            pass  # sent again
    return folder, done


def start_record(out_dir: Path, data: Path, source: str) -> None:
    """What an interrupted run needs to go on: its DATA (and, for the record, what classified)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if not (out_dir / RUN_RECORD).is_file():
        atomic_write_json(out_dir / RUN_RECORD, {"data": str(data.resolve()), "source": source})


@contextmanager
def endpoint(directory: Path | None, port: int):
    """The URL of an endpoint serving the model `directory` (started here, stopped at the end), or of the one
    on `port`."""
    if directory is None:
        url = f"http://127.0.0.1:{port}"
        if not endpoint_process.answers_ping(url):
            raise BatchError(f"no endpoint answers {url}/ping: give MODEL=<model or job dir> (batch-local starts "
                             f"one), or start one with `make serve-local MODEL=... PORT={port}`")
        yield url
        return
    from classifier.serving.local import free_port

    port = free_port()
    url, work = f"http://127.0.0.1:{port}", Path(tempfile.mkdtemp(prefix="batch-local-"))
    log = work / "endpoint.log"
    print(f"starting the local endpoint for {directory} on {url} (log: {log})", file=sys.stderr, flush=True)
    process = endpoint_process.start(directory, port, work / "base", log)
    try:
        endpoint_process.wait_until_healthy(url, process, log)
        yield url
    finally:
        endpoint_process.stop(process)
    shutil.rmtree(work, ignore_errors=True)  # only after a run without error: otherwise its log stays


def send(url: str, data: Path, relative: str, out_dir: Path) -> str | None:
    """One image, one request; the answer to its .out file. Returns why the endpoint refused it, or None."""
    path = data / relative
    try:
        answer = invoke_url(url, path.read_bytes(), CONTENT_TYPES[path.suffix.lower()],
                            f"top_k={batch_output.EVERY_CLASS}")
    except (urllib.error.URLError, OSError) as error:
        raise BatchError(f"the endpoint {url} stopped answering at {relative}: {error}") from None
    if answer.status != 200:
        return f"HTTP {answer.status}: {message(answer.body)}"
    target = out_dir / batch_output.output_name(relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, lambda handle: handle.write(answer.body))  # whole or absent: a resumed run trusts it
    return None


def classify(url: str, data: Path, inputs: list[str], out_dir: Path, concurrency: int) -> dict[str, str]:
    """`concurrency` requests in flight (a transform job's MaxConcurrentTransforms). Returns why each refused
    image failed."""
    reasons = {}
    with ThreadPoolExecutor(max_workers=concurrency) as pool, Progress("batch-local", len(inputs)) as progress:
        futures = {pool.submit(send, url, data, relative, out_dir): relative for relative in inputs}
        try:
            for future in as_completed(futures):
                reason = future.result()
                if reason:
                    reasons[futures[future]] = reason
                progress.add()
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return reasons


def message(body: bytes) -> str:
    try:
        return json.loads(body).get("message") or body.decode(errors="replace")
    except (ValueError, AttributeError):
        return body.decode(errors="replace")[:300]


def run(data: str, model: str = "", port: int = DEFAULT_PORT, out: str = "", concurrency: int = CONCURRENCY
        ) -> batch_output.Summary:
    inputs = batch_output.local_inputs(data)
    folder = Path(data)
    lost = batch_output.broken_links(folder)
    if lost:
        print(f"batch-local: ignored {len(lost)} link(s) that lead to no file or folder (missing target or a loop): "
              f"{', '.join(lost[:10])}{f' and {len(lost) - 10} more' if len(lost) > 10 else ''}", file=sys.stderr)
    out_dir, done = output_dir(out, folder, inputs)
    todo = [relative for relative in inputs if relative not in done]
    with ExitStack() as stack:
        directory = stack.enter_context(jobs.opened_model(model)) if model else None
        url = stack.enter_context(endpoint(directory, port))
        source = f"the local endpoint ({model})" if model else f"the local endpoint {url}"
        start_record(out_dir, folder, source)
        print(f"batch-local: {len(todo)} images of {folder} to {url}, one request each, {concurrency} at a time"
              + (f" ({len(done)} answered by an earlier, interrupted run)" if done else ""), file=sys.stderr)
        try:
            reasons = classify(url, folder, todo, out_dir, concurrency)
        except KeyboardInterrupt:
            outputs = batch_output.Outputs(out_dir)
            answered = sum(1 for relative in inputs if outputs.find(relative) is not None)
            raise Interrupted(f"interrupted: {answered} of {len(inputs)} images are answered in {out_dir}; the same "
                              f"command (DATA={data} OUT={out_dir}) goes on from there") from None
    summary = batch_output.summarize(out_dir, inputs, source, str(out_dir), reasons)
    batch_output.write_summary(summary, out_dir)
    return summary


class Interrupted(Exception):
    """Ctrl-C or SIGTERM: the outputs so far are kept, and how to go on is said."""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="", help="folder of JPEG/PNG images (sub-folders included)")
    parser.add_argument("--model", default="", help="model dir, job dir or local job name (started here)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="without --model: the running endpoint's port")
    parser.add_argument("--out", default="", help="output folder (default build/batch-local/<data>-<time>)")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="requests in flight")
    args = parser.parse_args(argv)
    if not 1 <= args.concurrency <= 64:
        parser.error(f"--concurrency {args.concurrency} must be 1 to 64")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # as Ctrl-C: the endpoint stopped, how to go on said
    try:
        summary = run(args.data, args.model, args.port, args.out, args.concurrency)
    except (BatchError, jobs.JobError, endpoint_process.EndpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except Interrupted as stopped:
        print(stopped, file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted before any image was sent", file=sys.stderr)
        return 130
    print(summary.text() + f"\nsummary: {Path(summary.output) / batch_output.SUMMARY_FILE}")
    return 0 if not summary.failures else 1


if __name__ == "__main__":
    sys.exit(main())
