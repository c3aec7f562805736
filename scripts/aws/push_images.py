"""make push: push the images `make build` made to private ECR repositories.

    python -m scripts.aws.push_images --tag <git short commit> [--engine docker|podman|buildah] [--dry-run]

Logs in to ECR (GetAuthorizationToken; the password goes to the engine on stdin, never on a command line
or in a log), creates the repositories when missing (scan on push, mutable tags: `latest` moves), then
pushes <local image>:<tag> as <registry>/<repository>:<tag> and :latest.
"""
from __future__ import annotations

import base64
import shutil
import subprocess
import sys
from typing import Callable

import botocore.exceptions

from . import api_requests
from .client import Aws, AwsError, error_code
from .common import base_parser, open_aws, run

ENGINES = ("docker", "podman", "buildah")
# What a container engine's push of an image sends to ECR (ECR's "pushing an image" permissions). The engine,
# not boto3, sends them: each push is recorded as one ENGINE_PUSH request (iam_policy.py grants these actions).
ENGINE_PUSH = "PushImage"
ENGINE_PUSH_ACTIONS = ("BatchCheckLayerAvailability", "InitiateLayerUpload", "UploadLayerPart", "CompleteLayerUpload",
                       "PutImage")


def detect_engine() -> str:
    """The first of docker (with a daemon that answers), podman, buildah; as mk/images.mk picks it."""
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        return "docker"
    for engine in ("podman", "buildah"):
        if shutil.which(engine):
            return engine
    raise AwsError("no container engine: install docker, podman or buildah (apt-get install -y podman buildah)")


def ensure_repository(aws: Aws, name: str) -> str:
    """The repository's URI; created (private, scan on push) when it does not exist."""
    try:
        found = aws.call("ecr", "describe_repositories", repositoryNames=[name], dry={"repositories": []})
        if found.get("repositories"):
            return found["repositories"][0]["repositoryUri"]
    except botocore.exceptions.ClientError as error:
        if error_code(error) != "RepositoryNotFoundException":
            raise
    if aws.dry_run:
        print(f"# CreateRepository is sent only when {name} does not exist yet", file=aws.out)
    created = aws.call("ecr", "create_repository", dry={"repository": {"repositoryUri": f"<registry>/{name}"}},
                       **api_requests.create_repository(aws.settings, name))
    if not aws.dry_run:
        print(f"created ECR repository {name} (private, scan on push)")
    return created["repository"]["repositoryUri"]


def login(aws: Aws, engine: str, runner: Callable) -> str:
    """Log the engine in to the account's registry; returns the registry host."""
    token = aws.call("ecr", "get_authorization_token", dry={"authorizationData": [{
        "authorizationToken": base64.b64encode(b"AWS:<token>").decode(),
        "proxyEndpoint": f"https://{api_requests.ecr_registry('<account-id>', aws.settings.region)}"}]})
    data = token["authorizationData"][0]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    registry = data["proxyEndpoint"].removeprefix("https://").removeprefix("http://").rstrip("/")
    runner([engine, "login", "--username", user, "--password-stdin", registry], stdin=password)
    return registry


def push_commands(engine: str, local: str, remote: str) -> list[list[str]]:
    if engine == "docker":
        return [["docker", "tag", local, remote], ["docker", "push", remote]]
    # podman and buildah push a local image straight to a destination (localhost/<name> is local)
    return [[engine, "push", local, f"docker://{remote}"]]


def subprocess_runner(dry_run: bool, out=None) -> Callable:
    out = out or sys.stdout

    def runner(command: list[str], stdin: str | None = None) -> None:
        shown = " ".join(command) + (" < (password from GetAuthorizationToken)" if stdin is not None else "")
        print(f"{'[dry run] ' if dry_run else '+ '}{shown}", file=out, flush=True)
        if dry_run:
            return
        result = subprocess.run(command, input=stdin, text=True)
        if result.returncode != 0:
            raise AwsError(f"`{command[0]} {command[1]}` failed (exit {result.returncode})")
    return runner


def push(aws: Aws, engine: str, images: list[tuple[str, str]], tag: str, runner: Callable) -> list[str]:
    """images: (local image name, ECR repository). Returns the pushed URIs."""
    if engine not in ENGINES:
        raise AwsError(f"unknown container engine {engine!r}; one of {', '.join(ENGINES)}")
    registry = login(aws, engine, runner)
    pushed = []
    for local, repository in images:
        ensure_repository(aws, repository)
        for remote_tag in dict.fromkeys([tag, "latest"]):
            remote = f"{registry}/{repository}:{remote_tag}"
            aws.record("ecr", ENGINE_PUSH, {"repositoryName": repository, "imageTag": remote_tag})
            for command in push_commands(engine, f"{local}:{tag}", remote):
                runner(command)
            pushed.append(remote)
    return pushed


def main(argv=None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--tag", default="", help="the local images' tag (default: git short commit)")
    parser.add_argument("--engine", default="", help="docker | podman | buildah (default: the first found)")
    parser.add_argument("--training-image", default="byoc-classifier-training", help="local training image name")
    parser.add_argument("--serving-image", default="byoc-classifier-serving", help="local serving image name")
    parser.add_argument("--only", choices=["training", "serving"], help="push one image only")
    args = parser.parse_args(argv)

    def go() -> int:
        aws = open_aws(args)
        if args.engine and args.engine != "none":
            engine = args.engine
        else:
            engine = "docker" if aws.dry_run else detect_engine()
        tag = args.tag or aws.settings.effective_image_tag()
        images = [(args.training_image, aws.settings.training_repository),
                  (args.serving_image, aws.settings.serving_repository)]
        if args.only:
            images = [images[0 if args.only == "training" else 1]]
        for uri in push(aws, engine, images, tag, subprocess_runner(aws.dry_run)):
            print(f"{'would push' if aws.dry_run else 'pushed'} {uri}")
        return 0

    return run(go)


if __name__ == "__main__":
    sys.exit(main())
