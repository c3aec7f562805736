"""Build the MMS endpoint plugin `ReadyPing.java` (a truthful GET /ping) into a jar, once per source version.

MMS's own /ping answers 200 {"status": "Healthy"} from the moment its port is bound, while the workers
are still loading the model (and with "Unhealthy" in the body, still 200, when they have all failed).
The plugin answers 503 until every model has a worker that has loaded it.

The jar is compiled with the JRE's own `jdk.compiler` module (`java -m jdk.compiler/...`), so the
serving image needs no JDK, and cached under `<cache>/<hash of source, MMS jar and java>/`: a directory
holding only this jar, which is what MMS's `plugins_path` wants (it puts `<plugins_path>/*` on the class path).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

SOURCE = Path(__file__).with_name("ReadyPing.java")
CLASS_NAME = "classifier.serving.ReadyPing"
SERVICE_FILE = "META-INF/services/software.amazon.ai.mms.servingsdk.ModelServerEndpoint"
JAR_NAME = "classifier-ready-ping.jar"


class PluginBuildError(RuntimeError):
    pass


def java_executable() -> str:
    java_home = os.environ.get("JAVA_HOME")
    return str(Path(java_home) / "bin" / "java") if java_home else "java"


def mms_jar() -> Path:
    import mms

    return Path(mms.__file__).resolve().parent / "frontend" / "model-server.jar"


def default_cache_dir() -> Path:
    return Path(os.environ.get("CLASSIFIER_MMS_PLUGIN_CACHE") or Path(tempfile.gettempdir()) / "classifier-mms-plugin")


def plugin_dir(cache_dir: Path | None = None) -> Path:
    """The directory to give MMS as `plugins_path`, building the jar there if it is not built yet."""
    cache_dir = Path(cache_dir or default_cache_dir())
    server_jar = mms_jar()
    java = shutil.which(java_executable()) or java_executable()
    digest = hashlib.sha256()
    digest.update(SOURCE.read_bytes())
    digest.update(str(server_jar.stat().st_size).encode())
    digest.update(os.path.realpath(java).encode())
    target = cache_dir / digest.hexdigest()[:16]
    if (target / JAR_NAME).is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_dir))
    try:
        classes = work / "classes"
        command = [java, "-m", "jdk.compiler/com.sun.tools.javac.Main", "--release", "11", "-nowarn",
                   "-cp", str(server_jar), "-d", str(classes), str(SOURCE)]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise PluginBuildError(f"cannot run {java} to compile {SOURCE.name}: {error}") from error
        if result.returncode != 0:
            raise PluginBuildError(f"compiling {SOURCE.name} failed:\n{result.stdout}{result.stderr}")
        output = work / "out"
        output.mkdir()
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
