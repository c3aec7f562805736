"""The /ping plugin jar: built into the image ahead of time, and elsewhere only built into and loaded from
a private directory of the user's (never from a predictable /tmp path that anyone could have filled)."""
from __future__ import annotations

import os
import shutil
import stat
import zipfile

import pytest

from classifier.serving import mms_plugin
from mms_server import mms_missing

pytestmark = pytest.mark.skipif("java" in mms_missing(), reason="needs a Java runtime")


@pytest.fixture(scope="module")
def prebuilt(tmp_path_factory):
    """A plugins dir made the way docker/serving.Dockerfile makes it (one compile for the module)."""
    plugins = tmp_path_factory.mktemp("image") / "mms-plugin"
    assert mms_plugin.main([str(plugins)]) == 0
    return plugins


@pytest.fixture
def no_compiling(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"the plugin was compiled: {args}")

    monkeypatch.setattr(mms_plugin.subprocess, "run", refuse)


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.mark.slow
def test_the_image_build_makes_a_jar_mms_can_load(prebuilt):
    target = prebuilt / mms_plugin.build_id()
    with zipfile.ZipFile(target / mms_plugin.JAR_NAME) as jar:
        assert jar.read(mms_plugin.SERVICE_FILE).decode().strip() == mms_plugin.CLASS_NAME
        assert "classifier/serving/ReadyPing.class" in jar.namelist()
    assert os.listdir(target) == [mms_plugin.JAR_NAME]  # MMS puts <plugins_path>/* on its class path
    assert mode(target) == 0o755 and mode(target / mms_plugin.JAR_NAME) == 0o644  # readable, written by root only


@pytest.mark.slow
def test_serve_uses_the_prebuilt_jar_without_compiling(prebuilt, no_compiling):
    found = mms_plugin.plugin_dir({mms_plugin.PREBUILT_ENV: str(prebuilt)})
    assert found == prebuilt / mms_plugin.build_id()


def test_a_prebuilt_dir_without_this_build_is_refused(tmp_path, no_compiling):
    with pytest.raises(mms_plugin.PluginBuildError, match="python -m classifier.serving.mms_plugin"):
        mms_plugin.plugin_dir({mms_plugin.PREBUILT_ENV: str(tmp_path)})


@pytest.mark.slow
def test_a_prebuilt_jar_others_can_write_is_refused(prebuilt, tmp_path, no_compiling):
    copy = tmp_path / "plugins"
    shutil.copytree(prebuilt, copy)
    jar = copy / mms_plugin.build_id() / mms_plugin.JAR_NAME
    os.chmod(jar, 0o666)
    with pytest.raises(mms_plugin.PluginBuildError, match="has mode 0666"):
        mms_plugin.plugin_dir({mms_plugin.PREBUILT_ENV: str(copy)})


@pytest.mark.slow
def test_locally_the_jar_lives_in_a_private_cache_of_the_user(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    found = mms_plugin.plugin_dir(env)
    cache = tmp_path / "cache" / "classifier-mms-plugin"
    assert found == cache / mms_plugin.build_id() and (found / mms_plugin.JAR_NAME).is_file()
    for path in (cache, found):
        assert mode(path) == 0o700 and os.lstat(path).st_uid == os.geteuid(), path


def test_the_default_cache_is_under_the_home_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert mms_plugin.private_cache_dir() == tmp_path / ".cache" / "classifier-mms-plugin"


def install_build(prebuilt, cache):
    """Put an already compiled jar where plugin_dir() looks, as an earlier server start would have."""
    target = cache / mms_plugin.build_id()
    shutil.copytree(prebuilt / mms_plugin.build_id(), target)
    os.chmod(target, 0o700)
    return target


@pytest.mark.slow
def test_a_cached_jar_is_checked_then_reused(prebuilt, tmp_path, no_compiling):
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    target = install_build(prebuilt, mms_plugin.private_cache_dir(env))
    assert mms_plugin.plugin_dir(env) == target
    os.chmod(target, 0o777)  # someone else could have replaced the jar
    with pytest.raises(mms_plugin.PluginBuildError, match="has mode 0777"):
        mms_plugin.plugin_dir(env)


@pytest.mark.parametrize("prepare, message", [
    (lambda cache: (cache.mkdir(), os.chmod(cache, 0o777)), "has mode 0777"),
    (lambda cache: (cache.mkdir(), os.chmod(cache, 0o755)), "has mode 0755"),
    (lambda cache: (cache.with_name("elsewhere").mkdir(mode=0o700), cache.symlink_to(cache.with_name("elsewhere"))),
     "is a symbolic link"),
])
def test_a_cache_dir_others_could_fill_is_refused(tmp_path, no_compiling, prepare, message):
    cache = tmp_path / "classifier-mms-plugin"
    prepare(cache)
    with pytest.raises(mms_plugin.PluginBuildError, match=message) as caught:
        mms_plugin.plugin_dir({"XDG_CACHE_HOME": str(tmp_path)})
    assert str(cache) in str(caught.value)
