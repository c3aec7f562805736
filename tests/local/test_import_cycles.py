"""No import circle among the modules of scripts/ and of the containers' package classifier/, counting the
imports inside functions too (an import moved into a function hides a circle from Python, not from a reader):
the tuner writes its report through the report, which reads the tuning job's files
(scripts/local/tuning_jobs.py), never the tuner; make tune's feature job and make train wait for a training job
through scripts/aws/training_job.py; the feature job takes the training job's pieces from
training/setup.py, not from main.py; the debugger's rules take their results from rules/results.py."""
from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"scripts": ROOT, "classifier": ROOT / "container"}  # a package and the folder its names start in


def module_name(path: Path) -> str:
    base = ROOT / "container" if ROOT / "container" in path.parents else ROOT
    parts = list(path.relative_to(base).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The modules of `known` that a file imports anywhere in it (relative imports resolved)."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            # `from package import submodule` imports the submodule; `from module import name`, the module
            candidates = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module
                          for alias in node.names]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in known:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:  # `from . import Name` of a name in the package's __init__ counts
                found.add(candidate)
    return found


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One circle of imports (its modules, the first again at the end), or [] when there is none."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        return list(error.args[1])
    return []


def test_the_cycle_finder_finds_a_circle():
    assert sorted(cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})[:-1]) == ["a", "b", "c"]
    assert cycle({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_import_circle(package):
    files = sorted((PACKAGES[package] / package).rglob("*.py"))
    known = {module_name(path) for path in files}
    graph = {module_name(path): imports_of(path, known) for path in files}
    if package == "scripts":
        assert graph["scripts.reports.tuning_local"] >= {"scripts.local.tuning_jobs"}  # the reader sees the files
    else:
        assert graph["classifier.training.feature_job"] >= {"classifier.training.setup"}
    assert cycle(graph) == []
