"""Every variable of every make fragment reaches its command as one shell word: each target is run with each of
its variables set to a value full of shell metacharacters, and nothing but the target's own commands runs.

The targets and their variables are read from the make files themselves (a new target or variable is covered
without touching this test). The targets run for real, in a copy of the make files in a scratch folder where
every program they call is a recorder: PYTHON, the scripts they name by path, and on PATH the container
engines, apt-get and the like. A value that escaped its quotes would run `touch` on a marker file; a value
that stayed one word is found whole in an argument (or an environment variable) of a recorded command.
"""
from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
MAKE_FILES = [REPO_ROOT / "Makefile", *sorted((REPO_ROOT / "mk").glob("*.mk"))]
DEFINITION = re.compile(r"^([A-Z][A-Za-z0-9_]*)\s*(?:\?=|:=|=)(.*)$")
RULE = re.compile(r"^([A-Za-z0-9_./-]+)\s*:(?!=)\s*([^#]*)")
NAME = re.compile(r"[A-Z][A-Za-z0-9_]*")
SCRIPT_PATH = re.compile(r"(?<![\w/.])((?:scripts|docker|tests|benchmarks)/[\w/.-]+\.sh)")
# Programs the recipes call by name that must not run here (the rest, grep or sed, are harmless).
STUBBED = ("docker", "podman", "buildah", "apt-get", "debootstrap", "sudo", "systemctl")
SENTINEL = "INJECT"


def logical_lines(text: str) -> list[str]:
    return text.replace("\\\n", " ").splitlines()


def parse() -> tuple[dict[str, str], dict[str, tuple[list[str], str]], set[str]]:
    """(variable definitions, target -> (prerequisites, recipe), variables a user sets with ?=)."""
    definitions, rules, settable = {}, {}, set()
    for path in MAKE_FILES:
        current = None
        for line in logical_lines(path.read_text()):
            if line.startswith("\t") and current:
                rules[current][1].append(line)
                continue
            current = None
            found = DEFINITION.match(line)
            if found:
                definitions[found.group(1)] = definitions.get(found.group(1), "") + " " + found.group(2)
                if re.match(r"^[A-Z][A-Z0-9_]*\s*\?=", line):
                    settable.add(found.group(1))
                continue
            rule = RULE.match(line)
            if rule and not (rule.group(1).startswith(".") and "/" not in rule.group(1)):  # not .PHONY
                current = rule.group(1)
                rules[current] = (rule.group(2).split(), [])
    return definitions, {t: (p, "\n".join(r)) for t, (p, r) in rules.items()}, settable


def variables_of(target: str, definitions: dict, rules: dict, settable: set) -> set[str]:
    """The settable variables a target's recipe (and its prerequisites') depends on, through other variables."""
    seen, names, todo = set(), set(), [target]
    while todo:
        rule = todo.pop()
        if rule in seen or rule not in rules:
            continue
        seen.add(rule)
        prerequisites, recipe = rules[rule]
        todo += [p for p in prerequisites if p in rules]
        pending = set(NAME.findall(recipe + " " + " ".join(prerequisites)))
        while pending:
            name = pending.pop()
            if name.endswith("_"):  # $(IMG_BUILD_$(CONTAINER_ENGINE)): any of IMG_BUILD_docker, IMG_BUILD_podman...
                pending |= {d for d in definitions if d.startswith(name)} - names
            if name in names or name not in definitions and name not in settable:
                continue
            names.add(name)
            pending |= set(NAME.findall(definitions.get(name, "")))
    return names & settable


def payloads(marker: Path) -> list[str]:
    """Every way a shell runs a command (; $( ) ` | && and a comment), bare, and after the quote that would close
    a value written inside '...' or "..." in a recipe: each a value that runs `touch` if it is not one word."""
    touch = f"touch {marker}"
    commands = f"; {touch}; $$({touch}) `{touch}` | {touch} && {touch} #"
    return [f"{SENTINEL}1{commands}", f"{SENTINEL}2'; {touch}; '", f'{SENTINEL}3"; {touch}; "']


RECORDER = """import json, os, sys
with open(os.environ["RECORD_LOG"], "a") as log:
    env = [value for key, value in os.environ.items() if "{sentinel}" in value and key not in ("MAKEFLAGS", "MFLAGS")]
    log.write(json.dumps({{"argv": sys.argv[1:], "env": env}}) + "\\n")
sys.exit(1 if sys.argv[2:3] == ["info"] else 0)  # `docker info`: no daemon, so the engine is podman (the CA mount)
"""
STUB = """#!/bin/sh
exec {python} -I -S {recorder} "$0" "$@"
"""


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    """The make files in a scratch folder, every program they run a recorder."""
    root = tmp_path_factory.mktemp("make-sandbox")
    (root / "mk").mkdir()
    for path in MAKE_FILES:
        (root / path.relative_to(REPO_ROOT)).write_text(path.read_text())
    recorder = root / "recorder.py"
    recorder.write_text(RECORDER.format(sentinel=SENTINEL))
    text = "\n".join(path.read_text() for path in MAKE_FILES)
    programs = [".venv/bin/python", *sorted(set(SCRIPT_PATH.findall(text))), *(f"stubs/{name}" for name in STUBBED)]
    for program in programs:  # shell scripts: also right where a recipe runs one as `bash FILE`
        path = root / program
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(STUB.format(python=sys.executable, recorder=recorder))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    _, rules, _ = parse()
    for target, (prerequisites, _) in rules.items():  # file targets (the virtualenvs' markers) are up to date
        if "/" in target:
            for prerequisite in prerequisites:
                if "." in prerequisite and prerequisite != "|":
                    (root / prerequisite).parent.mkdir(parents=True, exist_ok=True)
                    (root / prerequisite).touch()
    for target in rules:
        if "/" in target:
            (root / target).parent.mkdir(parents=True, exist_ok=True)
            (root / target).touch()
    return root


def cases() -> list[tuple[str, str]]:
    definitions, rules, settable = parse()
    targets = [t for t in rules if "/" not in t]
    return [(target, name) for target in targets for name in sorted(variables_of(target, definitions, rules,
                                                                                   settable))]


CASES = cases()


MAKE_OWN = {"MAKE", "MAKECMDGOALS", "MAKEFILE_LIST", "CURDIR", "SHELL"}


def test_every_variable_a_recipe_reads_is_declared():
    """A variable a recipe reads is defined in a make file (`NAME ?=` when a user may set it), so the cases
    below find it."""
    definitions, rules, _ = parse()
    used = {name for _, recipe in rules.values() for name in re.findall(r"\$\(([A-Z][A-Z0-9_]*)\)", recipe)}
    used |= {name for _, recipe in rules.values() for name in re.findall(r"call quote,([A-Z][A-Z0-9_]*)", recipe)}
    assert used - set(definitions) - MAKE_OWN == set()


def test_the_cases_cover_the_make_files():
    targets = {target for target, _ in CASES}
    assert {"train-local", "tune-local", "report", "rules", "serve-local", "batch-local", "evaluate", "deploy",
            "build", "container-test", "invoke-local", "endpoint-stats"} <= targets
    assert {("report", "JOB"), ("rules", "PARAMS"), ("serve-local", "PORT"), ("build", "EXTRA_BUILD_ARGS"),
            ("images-engine", "CONTAINER_ENGINE"), ("train-local", "PYTHON")} <= set(CASES)


def required(target: str) -> set[str]:
    """The variables a target's recipe insists on (`test -n $(call quote,X)`, `test "$(origin X)" != file`)."""
    recipe = parse()[1][target][1]
    return (set(re.findall(r"test -n \$\(call quote,([A-Z0-9_]+)\)", recipe))
            | set(re.findall(r"\$\(origin ([A-Z0-9_]+)\)", recipe)))


def run_case(sandbox: Path, target: str, name: str, value: str, index: int) -> list[dict]:
    """The target with `name` set to `value` (and what it insists on set to a plain value): what it ran."""
    log = sandbox / f"record-{index}.jsonl"
    others = [f"{other}=given" for other in sorted(required(target) - {name})]
    env = {**os.environ, "RECORD_LOG": str(log), "PATH": f"{sandbox / 'stubs'}{os.pathsep}{os.environ['PATH']}"}
    for inherited in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS"):
        env.pop(inherited, None)
    subprocess.run(["make", "--no-print-directory", "-k", target, f"{name}={value}", *others], cwd=sandbox, env=env,
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.mark.slow  # a make run per target, variable and value (a minute or two)
def test_every_variable_of_every_target_is_one_word(sandbox):
    lists = {"IMAGE", "PARENT_TUNING", "EXTRA_BUILD_ARGS"}  # one word per item (quote_each)
    runs = []  # (target, variable, value, the file it touches if it escapes)
    for number, (target, name) in enumerate(CASES):
        for kind, value in enumerate(payloads(sandbox / f"ran-{number}-{{kind}}")):
            runs.append((target, name, value.replace("{kind}", str(kind)), sandbox / f"ran-{number}-{kind}"))
    with ThreadPoolExecutor(4) as pool:
        records = list(pool.map(lambda item: run_case(sandbox, *item[1][:3], index=item[0]), enumerate(runs)))
    escaped = [(target, name, value) for target, name, value, marker in runs if marker.exists()]
    assert escaped == [], f"a value ran as a command: {escaped}"
    split, reached = [], set()
    for (target, name, value, _), recorded in zip(runs, records, strict=True):
        value = value.replace("$$", "$")
        words = value.split() if name in lists else [value]
        for record in recorded:
            arguments = record["argv"][1:] + record["env"]  # argv[0]: the program
            if all(any(word in argument for argument in arguments) for word in words):
                reached.add(name)
            for argument in arguments:  # a value that arrived split shows its pieces in separate arguments
                if SENTINEL in argument and not any(word in argument for word in words):
                    split.append((target, name, argument))
    assert split == [], f"a value arrived in pieces: {split}"
    # Not vacuous: every variable that some target passes on arrived whole in at least one command.
    flags = {"DRY_RUN", "NO_WAIT", "DELETE", "APPROVE", "REJECT", "FORCE", "FOLLOW", "DRY_RUN_UPDATE", "NO_CACHE",
             "RERUN"}  # 1/true/yes turn an option on: their value never reaches a command
    assert {name for _, name in CASES} - flags - reached == set()
