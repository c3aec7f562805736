"""Pages from templates: Jinja2 with autoescaping over a report's own templates and the shared frame
(templates/: base.html, report.css, macros.html), and the page written atomically."""
from __future__ import annotations

import functools
from datetime import datetime, timezone
from pathlib import Path

import jinja2

from ..artifact import atomic_write_bytes
from . import formats

FRAME = Path(__file__).resolve().parent / "templates"


@functools.lru_cache(maxsize=None)
def environment(templates: Path) -> jinja2.Environment:
    """A report's templates (`templates`, a folder) over the frame's. StrictUndefined: a name the Python
    side forgot to pass fails the render instead of showing as nothing."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader([str(templates), str(FRAME)]), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(formats.FILTERS)
    return env


def render(templates: Path, template: str, /, **context) -> str:
    """The page: `template` of the folder `templates`, given `context` and the time it is generated."""
    generated = formats.utc(datetime.now(timezone.utc))
    return environment(Path(templates)).get_template(template).render(generated=generated, **context)


def write(path: Path, text: str) -> Path:
    """Write the page whole or not at all (a reader never sees half a page)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, lambda handle: handle.write(text.encode("utf-8")))
    return path
