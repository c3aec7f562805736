"""The MMS endpoint plugin `ReadyPing.java` (a truthful GET /ping), compiled into a jar.

MMS's own /ping answers 200 {"status": "Healthy"} from the moment its port is bound, while the workers
are still loading the model (and with "Unhealthy" in the body, still 200, when they have all failed).
The plugin answers 503 until every model has a worker that has loaded it.

The jar is compiled with the JRE's own `jdk.compiler` module (`java -m jdk.compiler/...`), so no JDK is
needed, into `<plugins dir>/<hash of source, MMS jar and java>/`: a directory holding only this jar, which
is what MMS's `plugins_path` wants (it puts `<plugins_path>/*` on the Java class path). Where it comes from:

- the serving image compiles it when the image is built (`python -m classifier.serving.mms_plugin DIR` in
  docker/serving.Dockerfile) and names DIR in `CLASSIFIER_MMS_PLUGIN_DIR`; `serve` then only checks it
  (built from this code, not writable by anyone but root) and never compiles;
- anywhere else (`make serve-local`, the tests) it is compiled once into the user's own cache,
  `${XDG_CACHE_HOME:-~/.cache}/classifier-mms-plugin/`, which must be the user's, mode 0700: whatever is
  found there is checked before it is put on the class path, and refused if anyone else could have written it.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

SOURCE = Path(__file__).with_name("ReadyPing.java")
CLASS_NAME = "classifier.serving.ReadyPing"
SERVICE_FILE = "META-INF/services/software.amazon.ai.mms.servingsdk.ModelServerEndpoint"
JAR_NAME = "classifier-ready-ping.jar"
PREBUILT_ENV = "CLASSIFIER_MMS_PLUGIN_DIR"


class PluginBuildError(RuntimeError):
    pass


def java_executable() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else "java"
    return shutil.which(java) or java


def mms_jar() -> Path:
    import mms

    return Path(mms.__file__).resolve().parent / "frontend" / "model-server.jar"


def build_id() -> str:
    """Changes with the plugin's source, the MMS version it is compiled against and the Java runtime."""
    digest = hashlib.sha256()
    digest.update(SOURCE.read_bytes())
    digest.update(str(mms_jar().stat().st_size).encode())
    digest.update(os.path.realpath(java_executable()).encode())
    return digest.hexdigest()[:16]


def plugin_dir(env=None) -> Path:
    """The directory to give MMS as `plugins_path`: the image's pre-built one, else the user's private cache."""
    env = os.environ if env is None else env
    if env.get(PREBUILT_ENV):
        return prebuilt_dir(Path(env[PREBUILT_ENV]))
    root = private_cache_dir(env)
    target = root / build_id()
    if (target / JAR_NAME).is_file():
        _check(target, private=True)
        _check(target / JAR_NAME, private=False)
        return target
    return build(root)


def prebuilt_dir(plugins: Path) -> Path:
    target = plugins / build_id()
    if not (target / JAR_NAME).is_file():
        raise PluginBuildError(f"{PREBUILT_ENV}={plugins} holds no {JAR_NAME} built from this code "
                               f"({target} is missing); build it with `python -m {__spec__.name} {plugins}`, "
                               "as docker/serving.Dockerfile does")
    for path in (plugins, target, target / JAR_NAME):
        _check(path, private=False)
    return target


def private_cache_dir(env=None) -> Path:
    """`${XDG_CACHE_HOME:-~/.cache}/classifier-mms-plugin`, created mode 0700 and checked to be the user's."""
    env = os.environ if env is None else env
    base = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    base.mkdir(parents=True, exist_ok=True)
    path = base / "classifier-mms-plugin"
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    _check(path, private=True)
    return path


def _check(path: Path, private: bool) -> None:
    """Refuse what someone else could have written: a link, another owner, group/other write (private: any access)."""
    try:
        info = os.lstat(path)
    except OSError as error:
        raise PluginBuildError(f"cannot check {path}: {error}") from error
    owners = {os.geteuid()} if private else {os.geteuid(), 0}
    mode = stat.S_IMODE(info.st_mode)
    problem = None
    if stat.S_ISLNK(info.st_mode):
        problem = "is a symbolic link"
    elif info.st_uid not in owners:
        problem = f"belongs to uid {info.st_uid}, not to uid {os.geteuid()}"
    elif mode & (0o077 if private else 0o022):
        problem = f"has mode {mode:04o}"
    if problem and private:
        raise PluginBuildError(f"{path} {problem}; the MMS plugin is only built and loaded in a directory of "
                               f"your own with mode 0700: remove {path} (it is rebuilt) or set XDG_CACHE_HOME")
    if problem:
        raise PluginBuildError(f"{path} {problem}; a pre-built MMS plugin must belong to root or to you and be "
                               "writable by no one else")


def build(parent: Path) -> Path:
    """Compile the plugin into `parent/<build id>/` (atomically) and return that directory."""
    target = parent / build_id()
    java = java_executable()
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=parent))  # mode 0700
    try:
        classes = work / "classes"
        command = [java, "-m", "jdk.compiler/com.sun.tools.javac.Main", "--release", "11", "-nowarn",
                   "-cp", str(mms_jar()), "-d", str(classes), str(SOURCE)]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise PluginBuildError(f"cannot run {java} to compile {SOURCE.name}: {error}") from error
        if result.returncode != 0:
            raise PluginBuildError(f"compiling {SOURCE.name} failed:\n{result.stdout}{result.stderr}")
        output = work / "out"
        output.mkdir(mode=0o700)
        with zipfile.ZipFile(output / JAR_NAME, "w") as jar:
            for path in sorted(classes.rglob("*.class")):
                jar.write(path, path.relative_to(classes).as_posix())
            jar.writestr(SERVICE_FILE, CLASS_NAME + "\n")
        try:
            output.rename(target)  # atomic; another server starting at the same time may have won
        except OSError:
            if not (target / JAR_NAME).is_file():
                raise
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """`python -m classifier.serving.mms_plugin DIR`: build the jar into DIR for an image (readable by all)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(f"usage: python -m {__spec__.name} DIR", file=sys.stderr)
        return 64
    parent = Path(args[0]).resolve()
    parent.mkdir(parents=True, exist_ok=True)
    try:
        target = build(parent)
    except PluginBuildError as error:
        print(error, file=sys.stderr)
        return 1
    os.chmod(target, 0o755)  # the image's: anyone may read it, only root (its owner) may change it
    os.chmod(target / JAR_NAME, 0o644)
    print(target / JAR_NAME)
    return 0


if __name__ == "__main__":
    sys.exit(main())
