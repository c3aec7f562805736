"""The endpoint report of a short real local endpoint session: its requests, errors by status, latency
percentiles and slowest requests, from MMS's log as `make endpoint-stats` reads it."""
from __future__ import annotations

import subprocess

import pytest

import browser
from scripts.endpoint_stats import parse_records
from scripts.invoke import invoke_url
from scripts.reports import endpoint_cli, endpoint_report
from scripts.reports.endpoint_data import from_records


def test_local_endpoint_session_report(endpoint, image_set, tmp_path):
    sent = {200: 0, 400: 0, 415: 0}
    for path in sorted((image_set / "test").rglob("*.jpg"))[:12]:
        sent[invoke_url(endpoint.url, path.read_bytes(), "image/jpeg", None).status] += 1
    for body, kind in ((b"not an image", "image/jpeg"), (b"\xff\xd8\xff", "image/jpeg"), (b"x", "text/plain")):
        sent[invoke_url(endpoint.url, body, kind, None).status] += 1
    assert sent == {200: 12, 400: 2, 415: 1}
    log = endpoint.work_dir / "base" / "logs" / "mms_log.log"  # SAGEMAKER_BASE_DIR/logs
    records = parse_records(log.read_text().splitlines())
    traffic = from_records(records, "test", str(log))
    assert traffic.total_requests == len(records) >= 15  # other tests may have used the endpoint first
    assert traffic.total_errors["400"] >= 2 and traffic.total_errors["415"] >= 1
    assert sum(traffic.requests) == len(records) and len(traffic.times) <= 60
    assert 0 < traffic.overall_ms["ModelLatency"][50] <= traffic.overall_ms["ModelLatency"][99]
    out = tmp_path / "endpoint-report.html"
    assert endpoint_cli.main(["--log", str(log), "--out", str(out)]) == 0
    text = out.read_text()
    assert f"<td>Requests</td><td>{len(records)}</td>" in text
    slowest = text[text.index('<section id="slowest">'):]
    assert slowest.count("<tr>") == 1 + 15  # the header and the 15 slowest
    browser.check_page(out, tmp_path, plots=3)  # requests and errors, latency over time, latency distribution


@pytest.mark.slow
def test_make_endpoint_report_reads_a_ports_log(tmp_path):
    """`make endpoint-report PORT=...` without a log says how to get one."""
    done = subprocess.run(["make", "-s", "endpoint-report", "PORT=1"], cwd=endpoint_cli.REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "no endpoint log" in done.stderr and "build/serve-local/1/logs/mms_log.log" in done.stderr


@pytest.mark.slow
def test_markup_in_the_log_shows_as_text(tmp_path):
    """The endpoint's name and what a client sent (its content type, logged per request) are user data:
    `<img src=x onerror=alert(1)>` in them shows as text, and no script runs."""
    records = [{"time": f"2026-01-02T03:04:{second:02d}.000+00:00", "request_id": f"r{second}",
                "content_type": browser.MARKUP if second % 3 == 0 else "image/jpeg", "bytes": 900, "images": 1,
                "status": 415 if second % 3 == 0 else 200, "ModelLatency": 9000 + 100 * second,
                "OverheadLatency": 300} for second in range(12)]
    traffic = from_records(records, browser.MARKUP, f"/logs/{browser.MARKUP}.log")
    out = endpoint_report.write(traffic, tmp_path / "markup.html")
    assert browser.MARKUP not in out.read_text()
    rendered = browser.check_page(out, tmp_path, plots=3)
    browser.shows_as_text(rendered, f"Endpoint report: {browser.MARKUP}", f"/logs/{browser.MARKUP}.log")
    assert rendered.text.count(browser.MARKUP) >= 2 + 4  # title, name, source and the 415 requests' content type
