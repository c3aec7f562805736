"""Classify images with the endpoint: a local one (`make serve-local`) or a SageMaker endpoint; same output.

    python scripts/invoke.py IMAGE [IMAGE ...] [--url http://127.0.0.1:8080]   # local endpoint
    python scripts/invoke.py IMAGE [IMAGE ...] --endpoint NAME [--region R]     # SageMaker (boto3)
    options: --top-k K (custom attribute top_k=K), --json (print the response as it came)

One image is sent as its own bytes (image/jpeg or image/png); several go in one JSON request,
{"instances": [{"b64": ...}, ...]}, and are classified as one batch. Exit status: 0, or 1 when the
endpoint answered an error (its JSON message is printed) or could not be reached, 2 for bad arguments.
"""
from __future__ import annotations

import argparse
import base64
import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8080"
CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}


@dataclass
class Answer:
    status: int
    body: bytes


def build_request(paths: list[Path]) -> tuple[bytes, str]:
    if len(paths) == 1:
        return paths[0].read_bytes(), CONTENT_TYPES.get(paths[0].suffix.lower(), "application/x-image")
    instances = [{"b64": base64.b64encode(path.read_bytes()).decode("ascii")} for path in paths]
    return json.dumps({"instances": instances}).encode(), "application/json"


def invoke_url(url: str, body: bytes, content_type: str, custom_attributes: str | None, timeout: float = 65) -> Answer:
    headers = {"Content-Type": content_type, "Accept": "application/json"}
    if custom_attributes:
        headers["X-Amzn-SageMaker-Custom-Attributes"] = custom_attributes
    request = urllib.request.Request(url.rstrip("/") + "/invocations", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(response.status, response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.read())


def invoke_sagemaker(endpoint: str, body: bytes, content_type: str, custom_attributes: str | None,
                     region: str | None = None, client=None) -> Answer:
    """InvokeEndpoint; the container's own status and body also when it answered an error."""
    if client is None:
        import boto3

        client = boto3.client("sagemaker-runtime", region_name=region)
    from botocore.exceptions import ClientError

    arguments = {"EndpointName": endpoint, "Body": body, "ContentType": content_type, "Accept": "application/json"}
    if custom_attributes:
        arguments["CustomAttributes"] = custom_attributes
    try:
        response = client.invoke_endpoint(**arguments)
    except ClientError as error:
        # ModelError: the container answered 4xx/5xx; SageMaker passes its status and body on.
        details = error.response.get("Error", {})
        status = (error.response.get("OriginalStatusCode")
                  or error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500))
        message = error.response.get("OriginalMessage") or details.get("Message") or str(error)
        return Answer(int(status), message.encode() if isinstance(message, str) else message)
    return Answer(200, response["Body"].read())


def format_answer(answer: Answer, names: list[str]) -> tuple[str, bool]:
    """The text to print and whether it is a success; identical for local and SageMaker endpoints."""
    try:
        document = json.loads(answer.body)
    except ValueError:
        document = None
    if answer.status != 200 or not isinstance(document, dict) or "predictions" not in document:
        message = document.get("message") if isinstance(document, dict) else None
        text = message or answer.body.decode("utf-8", "replace").strip() or "(empty body)"
        return f"error {answer.status}: {text}", False
    lines = []
    for name, prediction in zip(names, document["predictions"], strict=True):
        lines.append(name)
        for rank, entry in enumerate(prediction["classes"], start=1):
            lines.append(f"  {rank}. {entry['name']:<24} {entry['probability']:.4f}  (class {entry['index']})")
    return "\n".join(lines), True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Classify images with a local or SageMaker endpoint.")
    parser.add_argument("images", nargs="+", type=Path, help="JPEG or PNG files")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--url", default=None, help=f"local endpoint (default {DEFAULT_URL})")
    target.add_argument("--endpoint", help="SageMaker endpoint name (boto3 sagemaker-runtime)")
    parser.add_argument("--region", default=None, help="AWS region of the endpoint")
    parser.add_argument("--top-k", type=int, default=None, help="classes per image (custom attribute top_k)")
    parser.add_argument("--json", action="store_true", help="print the response body as it came")
    args = parser.parse_args(argv)
    missing = [str(path) for path in args.images if not path.is_file()]
    if missing:
        parser.error(f"no such file: {', '.join(missing)}")
    body, content_type = build_request(args.images)
    attributes = f"top_k={args.top_k}" if args.top_k is not None else None
    try:
        if args.endpoint:
            answer = invoke_sagemaker(args.endpoint, body, content_type, attributes, region=args.region)
        else:
            answer = invoke_url(args.url or DEFAULT_URL, body, content_type, attributes)
    except (urllib.error.URLError, OSError) as error:
        print(f"error: cannot reach {args.url or DEFAULT_URL}: {error}", file=sys.stderr)
        return 1
    text, ok = format_answer(answer, [str(path) for path in args.images])
    if args.json:
        print(answer.body.decode("utf-8", "replace"))
    else:
        print(text, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
