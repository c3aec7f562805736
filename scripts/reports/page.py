"""The reports' pages: a template each (templates/), rendered in the frame and with the stylesheet every report
shares, the debugger's too (classifier.pages), and written atomically."""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from classifier.pages import render

TEMPLATES = Path(__file__).resolve().parent / "templates"


def write_page(path: Path, template: str, **context) -> Path:
    """Render templates/`template` with `context` and write it to `path`."""
    return render.write(path, render.render(TEMPLATES, template, **context))


def href(target: str, page_dir: Path) -> str:
    """A link's target: a URL as it is, a local file relative to the page's folder and URL-quoted (a name
    with `#`, `?` or `:` in it stays a path, never a fragment, a query or a scheme)."""
    if target.startswith(("https://", "http://")):
        return target
    return quote(os.path.relpath(target, page_dir))
