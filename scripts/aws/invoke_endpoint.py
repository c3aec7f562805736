"""make invoke IMAGE=...: call the deployed endpoint with the project's one invoke client, scripts/invoke.py.

    python -m scripts.aws.invoke_endpoint IMAGE [IMAGE ...] [--top-k K] [--json] [--dry-run]

This only wires the settings (endpoint name, region, profile) to scripts/invoke.py, which builds the
request (one image as image/jpeg or image/png, several as application/json) and prints the answer the same
way as for a local endpoint. A dry run prints the InvokeEndpoint request instead.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from scripts import invoke

from .common import base_parser, open_aws, run


def main(argv=None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", type=Path, help="JPEG or PNG files")
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not args.images:
        parser.error("give one or more images: make invoke IMAGE=path/to/image.jpg")

    def go() -> int:
        aws = open_aws(args)
        settings = aws.settings
        if aws.dry_run:
            missing = [str(p) for p in args.images if not p.is_file()]
            if missing:
                raise ValueError(f"no such file: {', '.join(missing)}")
            body, content_type = invoke.build_request(args.images)
            request = {"EndpointName": settings.endpoint_name, "Body": body, "ContentType": content_type,
                       "Accept": "application/json"}
            if args.top_k is not None:
                request["CustomAttributes"] = f"top_k={args.top_k}"
            aws.call("sagemaker-runtime", "invoke_endpoint", **request)
            return 0
        if settings.profile:  # scripts/invoke.py makes a plain boto3 client: hand it the profile
            os.environ["AWS_PROFILE"] = settings.profile
        forwarded = [str(p) for p in args.images] + ["--endpoint", settings.endpoint_name, "--region", settings.region]
        if args.top_k is not None:
            forwarded += ["--top-k", str(args.top_k)]
        if args.json:
            forwarded.append("--json")
        return invoke.main(forwarded)

    return run(go)


if __name__ == "__main__":
    sys.exit(main())
