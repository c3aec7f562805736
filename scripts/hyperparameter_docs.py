"""The hyperparameter tables in docs/, written from the training container's SPECS (`make docs`).

Each table sits between two marker comments in its page; everything outside them is left as it is.
`--check` writes nothing and exits 1 when a page's table differs from what SPECS gives.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from classifier.training.hyperparameters import SPECS, Spec
from scripts import REPO_ROOT

FIX_COMMAND = "make docs"


def is_debugger(name: str) -> bool:
    return name.startswith(("debugger", "profiler"))


# page -> table name -> the hyperparameters it lists, in SPECS' order
TABLES = {
    "docs/training.md": {"training": [name for name in SPECS if not is_debugger(name)]},
    "docs/debugger.md": {"debugger": [name for name in SPECS if is_debugger(name)]},
}


def begin_marker(table: str) -> str:
    return f"<!-- hyperparameters:{table} begin: `{FIX_COMMAND}` writes this table from SPECS -->"


def end_marker(table: str) -> str:
    return f"<!-- hyperparameters:{table} end -->"


def format_default(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return '""' if value == "" else str(value)


def row(name: str, spec: Spec) -> str:
    cells = [f"`{name}`", f"`{format_default(spec.default)}`", spec.rule, spec.help]
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def render(names: list[str]) -> str:
    lines = ["| name | default | valid values | meaning |", "|---|---|---|---|"]
    return "\n".join(lines + [row(name, SPECS[name]) for name in names])


def rewrite(text: str, table: str, names: list[str]) -> str:
    """`text` with the table between its markers replaced; an error names a missing or misplaced marker."""
    begin, end = begin_marker(table), end_marker(table)
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise ValueError(f"expected one line {begin!r} and, after it, one line {end!r}")
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    return f"{head}{begin}\n{render(names)}\n{end}{tail}"


def updated_pages(root: Path = REPO_ROOT) -> dict[Path, tuple[str, str]]:
    """Every page with tables: (its text now, its text with the tables written from SPECS)."""
    pages = {}
    for page, tables in TABLES.items():
        path = root / page
        text = new = path.read_text()
        for table, names in tables.items():
            try:
                new = rewrite(new, table, names)
            except ValueError as error:
                raise ValueError(f"{page}: {error}") from None
        pages[path] = (text, new)
    return pages


def main(argv: list[str] | None = None, root: Path = REPO_ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a table is out of date")
    args = parser.parse_args(argv)
    try:
        pages = updated_pages(root)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    stale = [path for path, (text, new) in pages.items() if text != new]
    for path in stale:
        relative = path.relative_to(root)
        if args.check:
            print(f"{relative}: the hyperparameter table differs from SPECS; run `{FIX_COMMAND}`", file=sys.stderr)
        else:
            path.write_text(pages[path][1])
            print(f"{relative}: hyperparameter table rewritten")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
