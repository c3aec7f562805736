"""Fixtures for the AWS scripts' tests. Nothing here can reach a real AWS account: fake credentials, no
config files, no instance metadata, and every endpoint on 127.0.0.1 (a moto server started by the tests,
or a closed port where botocore's Stubber answers before anything is sent)."""
from __future__ import annotations

import os
import types
import urllib.request
from pathlib import Path

import pytest

from aws_support import BUCKET, CLOSED_PORT_URL, TAG, Stubs, make_aws, write_settings
from scripts.aws import settings as settings_module

AWS_VARIABLES = [
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "SETTINGS", *(name for spec in settings_module.SPECS for name in spec.env),
]


@pytest.fixture(autouse=True)
def isolated_aws(monkeypatch, tmp_path):
    """Fake credentials, no AWS config files, no metadata service, endpoints on localhost."""
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", CLOSED_PORT_URL)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("IMAGE_TAG", TAG)


@pytest.fixture
def settings_path(tmp_path) -> Path:
    return write_settings(tmp_path / "settings.yaml")


@pytest.fixture
def settings(settings_path):
    return settings_module.load(settings_path)


@pytest.fixture
def stubbed(settings):
    aws = make_aws(settings)
    stubs = Stubs(aws)
    yield aws, stubs
    stubs.verify()


# --- a local moto server ---------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def moto_server():
    """moto's server on a free 127.0.0.1 port for the whole session; stopped at the end."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def moto(moto_server, monkeypatch, settings):
    """A clean moto (reset before each test), the scripts pointed at it, the test bucket made."""
    request = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).read()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    aws = make_aws(settings)
    aws.client("s3").create_bucket(Bucket=BUCKET)
    return aws


@pytest.fixture
def use(monkeypatch):
    """Make the scripts' main() use this (stubbed or moto-backed) Aws."""
    def install(aws, *modules):
        for module in modules:
            monkeypatch.setattr(module, "open_aws", lambda args, *required: aws)
    return install


# --- the SageMaker Python SDK, offline ---------------------------------------------------------------------

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture
def sdk(monkeypatch, tmp_path):
    """The SageMaker Python SDK (pinned in requirements-dev.txt) with nothing able to leave the machine: its
    telemetry request replaced (the calls are counted in `sdk.telemetry`), fake credentials and endpoints on
    127.0.0.1 (isolated_aws), and every proxy on a closed 127.0.0.1 port, so a client the SDK makes on its own
    fails at once instead of reaching the internet."""
    for name in PROXY_VARIABLES:
        monkeypatch.setenv(name, CLOSED_PORT_URL)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.config/sagemaker/config.yaml, no ~/.aws
    from sagemaker.telemetry import telemetry_logging

    blocked: list[tuple] = []
    monkeypatch.setattr(telemetry_logging, "_send_telemetry_request", lambda *args, **kwargs: blocked.append(args))
    return types.SimpleNamespace(telemetry=blocked)
