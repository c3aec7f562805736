"""Settings: the file, environment overrides, and a message for each missing or malformed value."""
from __future__ import annotations

import re

import pytest

from aws_support import ROLE, write_settings
from scripts.aws import settings as S
from scripts.aws.settings import SettingsError


def test_repository_file_loads_with_documented_defaults(monkeypatch):
    monkeypatch.delenv("IMAGE_TAG")
    loaded = S.load()
    assert loaded.region == "us-east-1"
    assert loaded.training_instance_type == "ml.g4dn.xlarge"
    assert loaded.endpoint_instance_type == "ml.m5.2xlarge"
    assert loaded.spot is True and loaded.max_wait_seconds >= 7200
    assert loaded.role_arn == "" and loaded.bucket == ""  # each user sets their own
    assert all(source == "config/settings.yaml" for source in loaded.sources.values())


def test_repository_file_holds_no_credentials():
    text = S.DEFAULT_PATH.read_text()
    assert not re.search(r"AKIA[0-9A-Z]{16}|aws_secret_access_key|aws_session_token", text, re.I)
    assert not re.search(r"\d{12}", text), "no account ids in the shared settings"


def test_every_setting_is_documented_in_the_file_its_one_home(tmp_path):
    raw = S.yaml.safe_load(S.DEFAULT_PATH.read_text())
    for spec in S.SPECS:
        found, _ = S._lookup(raw, spec.key)
        assert found, f"{spec.key} is not documented in config/settings.yaml"
        assert not hasattr(spec, "default"), "defaults live in config/settings.yaml only"
    # a settings file of one's own that leaves a key out gets the repository file's value
    own = tmp_path / "mine.yaml"
    own.write_text("endpoint:\n  name: mine\n")
    loaded = S.load(own, environ={})
    assert loaded.endpoint_name == "mine" and loaded.sources["endpoint_name"] == str(own)
    assert loaded.deployment == raw["deployment"]["strategy"]
    assert loaded.sources["deployment"] == "default (config/settings.yaml)"


def test_environment_overrides_the_file(settings_path):
    env = {"AWS_REGION": "eu-west-1", "S3_BUCKET": "other-bucket", "SPOT_TRAINING": "false",
           "TRAINING_INSTANCE_TYPE": "ml.p3.2xlarge", "ENDPOINT_NAME": "clf-2", "AUTOSCALING": "yes"}
    loaded = S.load(settings_path, environ=env)
    assert (loaded.region, loaded.bucket, loaded.spot) == ("eu-west-1", "other-bucket", False)
    assert loaded.training_instance_type == "ml.p3.2xlarge" and loaded.endpoint_name == "clf-2"
    assert loaded.autoscaling is True
    assert loaded.sources["region"] == "environment AWS_REGION"
    assert S.load(settings_path, environ={"AWS_DEFAULT_REGION": "ap-south-1"}).region == "ap-south-1"
    both = {"AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "ap-south-1"}
    assert S.load(settings_path, environ=both).region == "us-west-2"


def test_settings_path_from_environment(tmp_path):
    path = write_settings(tmp_path / "mine.yaml", **{"endpoint.name": "from-file"})
    assert S.load(environ={"SETTINGS": str(path)}).endpoint_name == "from-file"


@pytest.mark.parametrize("env, setting, words", [
    ({"AWS_REGION": "useast1"}, "aws.region", "AWS_REGION"),
    ({"AWS_REGION": "US-EAST-1"}, "aws.region", "region name"),
    ({"SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:user/alice"}, "aws.role_arn", "that is a user, not a role"),
    ({"SAGEMAKER_ROLE_ARN": "SageMakerRole"}, "aws.role_arn", "arn:aws:iam::<12-digit account id>:role/<role name>"),
    ({"SAGEMAKER_ROLE_ARN": "arn:aws:iam::1234:role/x"}, "aws.role_arn", "SAGEMAKER_ROLE_ARN"),
    ({"S3_BUCKET": "s3://my-bucket/data"}, "s3.bucket", "without s3://"),
    ({"S3_BUCKET": "My_Bucket"}, "s3.bucket", "lowercase letters"),
    ({"S3_BUCKET": "ab"}, "s3.bucket", "3 to 63 characters"),
    ({"S3_BUCKET": "192.168.1.10"}, "s3.bucket", "IP address"),
    ({"S3_BUCKET": "bucket-"}, "s3.bucket", "begin and end"),
    ({"S3_BUCKET": "a..b"}, "s3.bucket", "adjacent dots"),
    ({"S3_BUCKET": "xn--bucket"}, "s3.bucket", "reserved"),
    ({"S3_DATA_PREFIX": "a//b"}, "s3.data_prefix", "single slashes"),
    ({"ECR_TRAINING_REPOSITORY": "My Repo"}, "ecr.training_repository", "ECR repository name"),
    ({"IMAGE_TAG": "-bad"}, "ecr.image_tag", "image tag"),
    ({"TRAINING_INSTANCE_TYPE": "ml.g4dn.xlarg"}, "training.instance_type", "ml.g4dn.xlarge"),
    ({"TRAINING_INSTANCE_TYPE": "g4dn.xlarge"}, "training.instance_type", "TrainingInstanceType"),
    ({"ENDPOINT_INSTANCE_TYPE": "ml.m5.huge"}, "endpoint.instance_type", "ProductionVariantInstanceType"),
    ({"TRAINING_INSTANCE_COUNT": "0"}, "training.instance_count", "between 1 and 100"),
    ({"SPOT_TRAINING": "maybe"}, "training.spot", "true or false"),
    ({"MAX_WAIT_SECONDS": "soon"}, "training.max_wait_seconds", "whole number"),
    ({"TRAINING_INPUT_MODE": "Pipe"}, "training.input_mode", "File, FastFile"),
    ({"ENDPOINT_NAME": "my_endpoint"}, "endpoint.name", "letters, digits and hyphens"),
    ({"ENDPOINT_NAME": "e" * 48}, "endpoint.name", "1-47"),
    ({"DATA_CAPTURE_PERCENT": "101"}, "endpoint.capture_percent", "between 1 and 100"),
    ({"AUTOSCALING": "true", "AUTOSCALING_MIN": "3", "AUTOSCALING_MAX": "2"}, "endpoint.max_instances", "below"),
])
def test_bad_values_name_the_setting_and_how_to_fix_it(settings_path, env, setting, words):
    with pytest.raises(SettingsError) as caught:
        S.load(settings_path, environ=env)
    message = str(caught.value)
    assert setting in message and words in message, message


def test_bad_value_in_the_file_names_the_file(tmp_path):
    path = write_settings(tmp_path / "s.yaml", **{"aws.region": "mars-1"})
    with pytest.raises(SettingsError,
                       match=r"aws.region = 'mars-1' \(from .*s.yaml\).*Fix it in .*s.yaml or with AWS_REGION"):
        S.load(path)


@pytest.mark.parametrize("attr, words", [
    ("role_arn", ["aws.role_arn is not set", "SAGEMAKER_ROLE_ARN=arn:aws:iam::123456789012:role/"]),
    ("bucket", ["s3.bucket is not set", "S3_BUCKET=my-sagemaker-bucket"]),
])
def test_missing_required_setting_says_how_to_set_it(tmp_path, attr, words):
    path = write_settings(tmp_path / "s.yaml", **{"aws.role_arn": "", "s3.bucket": ""})
    with pytest.raises(SettingsError) as caught:
        S.load(path).require(attr)
    assert all(w in str(caught.value) for w in words), str(caught.value)


def test_unknown_key_and_bad_yaml(tmp_path):
    path = write_settings(tmp_path / "s.yaml", **{"s3.bukcet": "x"})
    with pytest.raises(SettingsError, match="unknown setting.*s3.bukcet"):
        S.load(path)
    (tmp_path / "bad.yaml").write_text("aws: [unclosed")
    with pytest.raises(SettingsError, match="not valid YAML"):
        S.load(tmp_path / "bad.yaml")
    with pytest.raises(SettingsError, match="not found"):
        S.load(tmp_path / "missing.yaml")


def test_account_and_uris(settings):
    assert settings.role_arn == ROLE and settings.account_id == "123456789012"
    assert settings.s3_uri("data_prefix", "fashion-mnist") == "s3://test-bucket/byoc-classifier/data/fashion-mnist/"
    assert settings.effective_image_tag() == "abc1234"  # IMAGE_TAG from the test environment


def test_image_tag_defaults_to_git_commit(settings_path, monkeypatch):
    monkeypatch.delenv("IMAGE_TAG")
    tag = S.load(settings_path).effective_image_tag()
    assert re.fullmatch(r"[0-9a-f]{4,40}", tag)


def test_aws_settings_command_prints_sources(settings_path, capsys, monkeypatch):
    monkeypatch.setenv("S3_BUCKET", "env-bucket")
    assert S.main(["--settings", str(settings_path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"s3.bucket\s+env-bucket\s+environment S3_BUCKET", out)
    monkeypatch.setenv("AWS_REGION", "nowhere")
    assert S.main(["--settings", str(settings_path)]) == 1
    assert "aws.region" in capsys.readouterr().err
