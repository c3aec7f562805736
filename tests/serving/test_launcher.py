"""The configs `serve` writes for nginx and multi-model-server (the servers themselves: test_endpoint.py)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from classifier.serving import launcher
from mms_server import mms_missing


def config(**changes) -> launcher.ServerConfig:
    values = dict(model_dir=Path("/opt/ml/model"), host="0.0.0.0", port=8080, workers=3,
                  max_request_size=4 * 6 * 1024 * 1024, response_timeout_s=3600,
                  handler_service="classifier.serving.handler_service", plugins_path=Path("/opt/plugins/abc"),
                  vmargs="-XX:-UseContainerSupport")
    values.update(changes)
    return launcher.ServerConfig(**values)


def properties(text: str) -> dict:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_mms_gets_a_private_management_socket_and_a_loopback_inference_port(tmp_path):
    props = properties(launcher.mms_properties(config(), 21000, tmp_path / "management.sock"))
    assert props["management_address"] == f"unix:{tmp_path / 'management.sock'}"
    assert props["inference_address"] == "http://127.0.0.1:21000"
    assert props["enable_envvars_config"] == "false"  # no MMS_MANAGEMENT_ADDRESS from the environment
    assert props["default_workers_per_model"] == "3"
    assert props["default_response_timeout_seconds"] == "3600" and props["default_response_timeout"] == "60"
    assert props["max_request_size"] == str(24 * 1024 * 1024)
    assert props["plugins_path"] == "/opt/plugins/abc"
    assert props["default_service_handler"] == "classifier.serving.handler_service"


@pytest.mark.skipif("nginx" in mms_missing(), reason="nginx is not installed")
@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
def test_nginx_accepts_the_config(tmp_path, host):
    nginx = launcher.find_program("nginx")
    conf = tmp_path / "nginx.conf"
    conf.write_text(launcher.nginx_conf(config(host=host, port=28080), 21000, tmp_path))
    result = subprocess.run([nginx, "-t", "-e", "stderr", "-p", str(tmp_path), "-c", str(conf)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


def test_nginx_serves_only_ping_and_invocations():
    text = launcher.nginx_conf(config(), 21000, Path("/run/x"))
    locations = [line.split("location", 1)[1].strip(" {") for line in text.splitlines() if "location " in line]
    assert locations == ["= /ping", "= /invocations", "/", "@too_large", "@not_running", "@timed_out"]
    assert text.count("proxy_pass http://mms;") == 2
    assert "listen 0.0.0.0:8080 default_server;" in text
