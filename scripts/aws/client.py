"""One place where requests go out: boto3 clients from the settings, a dry run that prints, and errors
turned into messages.

`Aws.call(service, operation, **params)` sends one request. With `dry_run=True` nothing is sent, no
credentials are needed: each request is checked against the service model (as botocore would) and printed
as `<service>.<Operation> {json}`, and the caller's `dry` value stands in for the response.
Endpoints: boto3's own `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` (the tests point them at moto).
"""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Any, Iterator

import boto3
import botocore
import botocore.config
import botocore.exceptions
import botocore.session
from botocore.validate import validate_parameters

from .settings import Settings, SettingsError


class AwsError(RuntimeError):
    """A failed step, with a message meant for the user."""


_RECORDERS: list[list[tuple[str, str, dict]]] = []


@contextmanager
def recording(alone: bool = False) -> Iterator[list[tuple[str, str, dict]]]:
    """Every request any Aws makes while the block runs, sent or (dry run) printed: (service, API name,
    parameters). `make iam-policy` derives the policies from the dry runs' records (iam_policy.py). `alone`:
    not also into the recordings around this one (a dry run that runs the others, as make bootstrap does)."""
    calls: list[tuple[str, str, dict]] = []
    outer = _RECORDERS[:] if alone else []
    for recorder in outer:
        _RECORDERS.remove(recorder)
    _RECORDERS.append(calls)
    try:
        yield calls
    finally:
        _RECORDERS.remove(calls)
        _RECORDERS.extend(outer)


def _jsonable(value):
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if hasattr(value, "read"):
        return "<stream>"
    return str(value)


def format_request(service: str, api_name: str, params: dict, compact: bool = False) -> str:
    return f"{service}.{api_name} " + json.dumps(params, indent=None if compact else 2, default=_jsonable)


class Aws:
    def __init__(self, settings: Settings, dry_run: bool = False, out=None, session: boto3.Session | None = None):
        self.settings = settings
        self.dry_run = dry_run
        self.out = out or sys.stdout
        self.sent: list[tuple[str, str, dict]] = []  # every request, in order (dry runs and tests read it)
        if session is None and dry_run:
            session = _dry_run_session(settings.region)
        elif session is None:
            try:
                session = boto3.Session(profile_name=settings.profile or None, region_name=settings.region)
            except botocore.exceptions.ProfileNotFound:
                raise SettingsError(f"AWS profile {settings.profile!r} (aws.profile / AWS_PROFILE) is not in "
                                    f"~/.aws/config or ~/.aws/credentials: run `aws configure --profile "
                                    f"{settings.profile}` or `aws sso login --profile {settings.profile}`, or "
                                    f"clear the setting to use the default credentials") from None
        self.session = session
        self._clients: dict[str, Any] = {}

    def client(self, service: str):
        if service not in self._clients:
            config = botocore.config.Config(retries={"mode": "standard"}, user_agent_extra="byoc-classifier")
            if self.dry_run:  # never signs (no credentials looked up), never sends
                config = config.merge(botocore.config.Config(signature_version=botocore.UNSIGNED))
            client = self.session.client(service, region_name=self.settings.region, config=config)
            if self.dry_run:
                client.meta.events.register("before-send", _refuse_to_send)
            self._clients[service] = client
        return self._clients[service]

    def call(self, service: str, operation: str, dry: Any = None, compact: bool = False, **params) -> dict:
        """client.<operation>(**params); in a dry run: validate, print (on one line when `compact`),
        return `dry` (or {})."""
        client = self.client(service)
        api_name = client.meta.method_to_api_mapping[operation]
        self.record(service, api_name, params)
        if self.dry_run:
            validate_parameters(params, client.meta.service_model.operation_model(api_name).input_shape)
            print(format_request(service, api_name, params, compact), file=self.out)
            return {} if dry is None else dry
        try:
            return getattr(client, operation)(**params)
        except botocore.exceptions.NoCredentialsError:
            raise AwsError(_NO_CREDENTIALS) from None
        except botocore.exceptions.EndpointConnectionError as error:
            raise AwsError(f"{service}.{api_name}: cannot reach {error.kwargs.get('endpoint_url')}: check the "
                           f"network and the region ({self.settings.region})") from None

    def record(self, service: str, api_name: str, params: dict) -> None:
        """Note a request: what `call` sends, or one a tool makes for us (a container engine's image push,
        s3transfer's uploads and downloads), so that the records hold every request a target makes."""
        self.sent.append((service, api_name, params))
        for calls in _RECORDERS:
            calls.append((service, api_name, params))

    def paginate(self, service: str, operation: str, dry: dict | None = None, input_token: str = "NextToken",
                 output_token: str | None = None, **params) -> Iterator[dict]:
        """Pages of a listing: each page's request goes through `call`. A dry run prints the first
        request and yields `dry` as its only page."""
        output_token = output_token or input_token
        if self.dry_run:
            yield self.call(service, operation, dry=dry or {}, **params)
            return
        request = dict(params)
        while True:
            page = self.call(service, operation, **request)
            yield page
            token = page.get(output_token)
            if not token:
                return
            request[input_token] = token


_DRY_RUN_SESSIONS: dict[str, boto3.Session] = {}


def _dry_run_session(region: str) -> boto3.Session:
    """A dry run signs nothing, so it reads no profile at all (not even AWS_PROFILE's): a missing or expired one
    does not matter. One session per region for every dry run of a process: the service models load once
    (make iam-policy and make bootstrap run every target's)."""
    if region not in _DRY_RUN_SESSIONS:
        core = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
        _DRY_RUN_SESSIONS[region] = boto3.Session(botocore_session=core, region_name=region)
    return _DRY_RUN_SESSIONS[region]


def _refuse_to_send(request, **kwargs):
    raise RuntimeError(f"dry run: refusing to send {request.method} {request.url}")


_NO_CREDENTIALS = ("no AWS credentials found: set aws.profile in config/settings.yaml or AWS_PROFILE (after "
                   "`aws configure` or `aws sso login`), or run where an instance/container role applies. "
                   "DRY_RUN=1 prints the requests without credentials")


def error_code(error: BaseException) -> str:
    if isinstance(error, botocore.exceptions.ClientError):
        return error.response.get("Error", {}).get("Code", "")
    return ""


def describe_client_error(error: botocore.exceptions.ClientError) -> str:
    info = error.response.get("Error", {})
    operation = getattr(error, "operation_name", "request")
    code, message = info.get("Code", "Error"), info.get("Message", str(error))
    hint = ""
    if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
        hint = " (the credentials in use lack this permission)"
    elif code in ("ExpiredToken", "ExpiredTokenException", "RequestExpired"):
        hint = " (credentials expired: `aws sso login` or refresh them)"
    elif code in ("ResourceLimitExceeded",):
        hint = " (a service quota: ask for an increase in Service Quotas, or use another instance type)"
    return f"{operation} failed: {code}: {message}{hint}"
