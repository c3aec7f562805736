"""The local data capture writes what SageMaker's data capture writes: the record field by field as AWS documents
it (captureData.endpointInput/endpointOutput {observedContentType, mode, data, encoding}, eventMetadata {eventId,
inferenceTime}, eventVersion), the JSON content types of make deploy's capture config stored as text, anything
else as base64, the <endpoint>/<variant>/yyyy/mm/dd/hh/<mm>-<ss>-<mmm>-<uuid>.jsonl layout, and the same sampling
percentage; and the monitor's reader reads it back."""
from __future__ import annotations

import base64
import json
import random
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from classifier.serving import capture
from classifier.serving.settings import Settings, SettingsError
from scripts.aws import api_requests, settings as aws_settings
from scripts.monitor import capture_data

# A record from AWS's documentation ("Capture data from real-time endpoint", View captured data): the shape
# every record has, whatever the content types.
DOCUMENTED = json.loads("""{"captureData":{"endpointInput":{"observedContentType":"text/csv","mode":"INPUT",
"data":"69,0,153.7,109,194.0,105,256.1,114,14.1,6,1\\n","encoding":"CSV"},"endpointOutput":{
"observedContentType":"text/csv; charset=utf-8","mode":"OUTPUT","data":"0.0254181120544672","encoding":"CSV"}},
"eventMetadata":{"eventId":"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee","inferenceTime":"2022-02-14T17:25:49Z"},
"eventVersion":"0"}""")
MOMENT = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc).timestamp()
JPEG = bytes.fromhex("ffd8ffe000104a464946") + bytes(range(256))  # bytes that are not UTF-8 text
ANSWER = json.dumps({"predictions": [{"classes": [{"name": "Bag", "index": 2, "probability": 0.9}]}]})


def shape(value):
    """The keys of a record at every level (the values' types where they are not objects)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    return type(value).__name__


def written(root: Path) -> list[tuple[Path, list[dict]]]:
    return [(path, [json.loads(line) for line in path.read_text().splitlines()])
            for path in sorted(root.rglob("*.jsonl"))]


def test_the_record_is_sagemakers_field_by_field(tmp_path):
    writer = capture.CaptureWriter(tmp_path, "img-clf", 100)
    request_id = str(uuid.uuid4())
    assert writer.offer(JPEG, "image/jpeg", ANSWER, "application/json", MOMENT, request_id)
    writer.close()
    [(path, [record])] = written(tmp_path)
    assert shape(record) == shape(DOCUMENTED)
    entry, answer = record["captureData"]["endpointInput"], record["captureData"]["endpointOutput"]
    assert (entry["mode"], answer["mode"]) == ("INPUT", "OUTPUT")
    assert entry["observedContentType"] == "image/jpeg" and entry["encoding"] == "BASE64"
    assert base64.b64decode(entry["data"]) == JPEG
    assert answer["observedContentType"] == "application/json" and answer["encoding"] == "JSON"
    assert answer["data"] == ANSWER  # a JSON content type of the capture config: the body as text
    assert record["eventMetadata"] == {"eventId": request_id, "inferenceTime": "2026-01-02T03:04:05Z"}
    assert record["eventVersion"] == "0"
    # SageMaker's layout and file name: <endpoint>/<variant>/yyyy/mm/dd/hh/<mm>-<ss>-<mmm>-<uuid>.jsonl
    relative = path.relative_to(tmp_path).as_posix()
    assert re.fullmatch(r"img-clf/AllTraffic/2026/01/02/03/04-05-678-[0-9a-f-]{36}\.jsonl", relative), relative
    assert path.read_text() == json.dumps(record, separators=(",", ":")) + "\n"  # one compact line a record


def test_the_json_content_types_are_make_deploys(tmp_path):
    """What the local capture stores as text is what make deploy's DataCaptureConfig tells SageMaker to."""
    raw = yaml.safe_load(aws_settings.DEFAULT_PATH.read_text())
    raw["s3"]["bucket"], raw["endpoint"]["data_capture"] = "test-bucket", True
    (tmp_path / "settings.yaml").write_text(yaml.safe_dump(raw))
    settings = aws_settings.load(tmp_path / "settings.yaml", environ={})
    config = api_requests.endpoint_config(settings, "c", "m")["DataCaptureConfig"]
    assert config["CaptureContentTypeHeader"] == {"JsonContentTypes": list(capture.JSON_CONTENT_TYPES)}
    assert config["CaptureOptions"] == [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]
    assert config["InitialSamplingPercentage"] == settings.capture_percent


def test_bodies_as_json_text_base64_otherwise():
    request = json.dumps({"instances": [{"b64": base64.b64encode(JPEG).decode()}]}).encode()
    assert capture.encode(request, "application/json; charset=utf-8", "INPUT")["encoding"] == "JSON"
    assert capture.encode(b"\xff\xfe not text", "application/json", "INPUT")["encoding"] == "BASE64"
    assert capture.encode(b"a,b", "text/csv", "INPUT")["encoding"] == "BASE64"  # make deploy names no CSV types
    assert capture.encode(b"", "application/octet-stream", "INPUT") == {
        "observedContentType": "application/octet-stream", "mode": "INPUT", "data": "", "encoding": "BASE64"}


def test_sampling_by_percentage(tmp_path):
    draws = random.Random(0)
    writer = capture.CaptureWriter(tmp_path, percent=30, draw=draws.random)
    kept = sum(writer.offer(b"x", "image/jpeg", "{}", "application/json", MOMENT) for _ in range(2000))
    writer.close()
    assert 540 <= kept <= 660  # 30 % of 2000, within 4 standard deviations
    assert sum(len(records) for _, records in written(tmp_path)) == kept == writer.written
    for percent, expected in ((0, 0), (100, 50)):
        writer = capture.CaptureWriter(tmp_path / str(percent), percent=percent)
        assert sum(writer.offer(b"x", "image/jpeg", "{}", "application/json", MOMENT) for _ in range(50)) == expected
        writer.close()


def test_a_file_per_hour_and_request_ids_that_are_not_uuids(tmp_path):
    writer = capture.CaptureWriter(tmp_path)
    for offset in (0, 10, 3600, 7300):
        writer.offer(JPEG, "image/jpeg", ANSWER, "application/json", MOMENT + offset, request_id="not-a-uuid")
    writer.close()
    files = written(tmp_path)
    assert [path.parent.name for path, _ in files] == ["03", "04", "05"]
    assert [len(records) for _, records in files] == [2, 1, 1]
    for _, records in files:
        for record in records:
            uuid.UUID(record["eventMetadata"]["eventId"])  # a UUID all the same


def test_the_writer_drops_instead_of_holding_the_handler(tmp_path):
    writer = capture.CaptureWriter(tmp_path, max_pending_bytes=len(JPEG) + len(ANSWER) - 1)
    assert not writer.offer(JPEG, "image/jpeg", ANSWER, "application/json", MOMENT)
    assert writer.dropped == 1 and writer.written == 0
    writer.close()
    assert not writer.offer(JPEG, "image/jpeg", ANSWER, "application/json", MOMENT)  # closed: nothing more


def test_a_write_failure_is_counted_not_raised(tmp_path):
    (tmp_path / "blocked").write_text("a file where the endpoint's folder should be")
    writer = capture.CaptureWriter(tmp_path, "blocked")
    assert writer.offer(JPEG, "image/jpeg", ANSWER, "application/json", MOMENT)
    writer.drain()
    writer.close()
    assert writer.failed == 1 and writer.written == 0


def test_the_reader_reads_what_the_writer_wrote(tmp_path):
    writer = capture.CaptureWriter(tmp_path, "img-clf")
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for index, request_id in enumerate(ids):
        writer.offer(JPEG + bytes([index]), "image/jpeg", ANSWER, "application/json", MOMENT + index, request_id)
    writer.close()
    found = capture_data.read(tmp_path)
    assert (found.endpoint, found.variant, found.files, found.problems) == ("img-clf", "AllTraffic", 1, [])
    assert [r.event_id for r in found.requests] == ids
    assert [r.request for r in found.requests] == [JPEG + bytes([i]) for i in range(3)]
    assert {r.response for r in found.requests} == {ANSWER.encode()}
    assert found.requests[0].time == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    # the same from the endpoint's folder and from its variant's
    assert len(capture_data.read(tmp_path / "img-clf").requests) == 3
    assert capture_data.read(tmp_path / "img-clf" / "AllTraffic").endpoint is None  # above the layout: unknown


def test_capture_settings_from_the_environment():
    settings = Settings.from_env({"CLASSIFIER_CAPTURE_DIR": "/tmp/x", "CLASSIFIER_CAPTURE_PERCENT": "20",
                                  "CLASSIFIER_CAPTURE_ENDPOINT": "img-clf"})
    assert (settings.capture_dir, settings.capture_percent, settings.capture_endpoint) == ("/tmp/x", 20, "img-clf")
    assert Settings.from_env({}).capture_dir == ""
    with pytest.raises(SettingsError, match="CLASSIFIER_CAPTURE_PERCENT=101 is not a percentage"):
        Settings.from_env({"CLASSIFIER_CAPTURE_PERCENT": "101"})
    with pytest.raises(SettingsError, match="not an endpoint name"):
        Settings.from_env({"CLASSIFIER_CAPTURE_ENDPOINT": "../up"})


def test_an_unwritable_capture_folder_is_named(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(capture.CaptureError, match="cannot write the data capture to .*file/sub"):
        capture.check_directory(tmp_path / "file" / "sub")
