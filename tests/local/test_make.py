"""The Makefile: variables reach commands as single shell words (issue 12 item 13), the local and AWS
targets take the same variables, and an image build on a machine that cannot pull the base image stops at
once with the command to run (issue 11 item 6), checked with a fake container engine on PATH."""
import os
import shlex
import shutil
import subprocess
import time

import pytest

from scripts import REPO_ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def make(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env or os.environ)


def words(*args: str) -> list[str]:
    """The words the shell would pass to the command `make -n` prints (continuation lines joined)."""
    result = make("-n", *args)
    assert result.returncode == 0, result.stderr
    return shlex.split(result.stdout.replace("\\\n", " "))


@pytest.mark.slow
def test_a_job_name_with_shell_syntax_runs_nothing(tmp_path):
    planted = tmp_path / "planted"
    env = {**os.environ, "JOBS_DIR": str(tmp_path)}
    result = make("train-local", f"JOB=x;touch {planted}", env=env)
    assert result.returncode != 0 and not planted.exists()
    assert f"no local job 'x;touch {planted}'" in result.stderr
    result = make("logs", f"JOB=$(touch {planted})", env=env)
    assert not planted.exists()


@pytest.mark.slow
def test_a_data_path_with_a_space_arrives_whole(tmp_path):
    data = tmp_path / "my data"
    (data / "train").mkdir(parents=True)
    result = make("train-local", f"DATA={data}", "HP=epochs=1", env={**os.environ, "JOBS_DIR": str(tmp_path)})
    assert result.returncode == 2, result.stderr
    assert f"DATA={data} lacks the required channel folder(s) valid" in result.stderr


def test_local_and_aws_targets_take_the_same_variables():
    common = ["HP=lr=0.01 epochs=2", "BACKBONE=resnet18", "MAX_JOBS=3", "MAX_PARALLEL=1", "STRATEGY=Random",
              "EARLY_STOPPING=Auto"]
    local, aws = words("tune-local", *common), words("tune", *common, "CONTAINER_ENGINE=docker", "TAG=abc1234")
    for flag in ("--hp", "--max-jobs", "--max-parallel", "--strategy", "--early-stopping"):
        assert local[local.index(flag) + 1] == aws[aws.index(flag) + 1], flag
    assert local[local.index("--hp") + 1] == "model_name=resnet18 lr=0.01 epochs=2"
    train_local = words("train-local", "TUNING=t-1", "HP=best epochs=10")
    train_aws = words("train", "TUNING=t-1", "HP=best epochs=10", "CONTAINER_ENGINE=docker", "TAG=abc1234")
    for flag in ("--tuning", "--hp"):
        assert train_local[train_local.index(flag) + 1] == train_aws[train_aws.index(flag) + 1], flag
    # local mode's backbone sits below the best trial's values; BACKBONE= is a given value everywhere
    assert train_local[train_local.index("--local-backbone") + 1] == "efficientnet_lite0"
    assert "--hp" not in words("train", "TUNING=t-1", "CONTAINER_ENGINE=docker", "TAG=abc1234")


FAKE_ENGINE = """#!/bin/bash
echo "podman $*" >> "$FAKE_LOG"
case "$1" in
  image) [ "$3" = "$FAKE_PRESENT" ] && exit 0; exit 1 ;;
  pull) [ -n "$FAKE_PULL_OK" ] && exit 0; exec sleep 60 ;;  # no registry: the pull hangs
esac
exit 0
"""


@pytest.fixture
def fake_podman(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "podman").write_text(FAKE_ENGINE)
    (bin_dir / "podman").chmod(0o755)
    log = tmp_path / "engine.log"

    def run(target, **env):
        log.unlink(missing_ok=True)
        environment = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_LOG": str(log), **env}
        started = time.monotonic()
        result = make(target, "CONTAINER_ENGINE=podman", "PULL_TIMEOUT=2", "BUILD_CA=", env=environment)
        calls = log.read_text().splitlines() if log.exists() else []
        return result, calls, time.monotonic() - started

    return run


@pytest.mark.slow
def test_build_without_registry_access_stops_at_once_with_the_command(fake_podman):
    result, calls, seconds = fake_podman("build")
    assert result.returncode != 0 and seconds < 30
    assert "cannot pull the base image debian:bookworm-slim" in result.stderr
    assert "make base-image && make build BASE_IMAGE=localhost/debian-bookworm-minbase:latest" in result.stderr
    assert not any(call.startswith("podman build") for call in calls), calls
    # the local base is already there: the command just uses it
    result, _, _ = fake_podman("build", FAKE_PRESENT="localhost/debian-bookworm-minbase:latest")
    assert "\n    make build BASE_IMAGE=localhost/debian-bookworm-minbase:latest" in result.stderr
    # container-test builds through the same check (not run here: it installs the engines first)
    planned = make("-n", "container-test", "CONTAINER_ENGINE=podman").stdout
    assert planned.index("scripts/check_base_image.sh") < planned.index("docker/training.Dockerfile")


def test_build_goes_on_when_the_base_image_is_here_or_pullable(fake_podman):
    for env in ({"FAKE_PRESENT": "debian:bookworm-slim"}, {"FAKE_PULL_OK": "1"}):
        result, calls, _ = fake_podman("build", **env)
        assert result.returncode == 0, result.stderr
        builds = [call for call in calls if call.startswith("podman build")]
        assert len(builds) == 2 and all("--build-arg BASE_IMAGE=debian:bookworm-slim" in b for b in builds)
