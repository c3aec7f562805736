"""The debugger and the training job do not import each other: the loop's observer interface lives in
classifier/observers.py, the training job asks classifier.debugger for its observers, and the
hyperparameter table (read by scripts/ without torch) stays free of torch and smdebug."""
import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "container" / "classifier"


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the modules a file imports (relative imports resolved)."""
    package = ["classifier", *path.relative_to(PACKAGE).parent.parts]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_the_debugger_never_imports_the_training_package():
    offenders = {str(path.relative_to(PACKAGE)): sorted(n for n in imported_modules(path)
                                                        if n.startswith("classifier.training"))
                 for path in (PACKAGE / "debugger").rglob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}


def test_the_observer_interface_depends_on_nothing_of_the_package():
    assert not [n for n in imported_modules(PACKAGE / "observers.py") if n.startswith("classifier")]


def test_the_hyperparameter_table_imports_neither_torch_nor_smdebug():
    code = ("import sys; from classifier.training import hyperparameters as h; "
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'smdebug', 'numpy', 'matplotlib'}); "
            "print(heavy, sum(n.startswith(('debugger', 'profiler')) for n in h.SPECS))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "13"]
