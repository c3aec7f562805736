"""The page every report is: the debugger report's stylesheet and helpers (imported, one look for all
reports), plots as embedded PNGs, no script and nothing from the network, written atomically."""
from __future__ import annotations

import base64
import io
from datetime import datetime, timezone
from pathlib import Path

from classifier.artifact import atomic_write_bytes
from classifier.debugger.report import (  # noqa: F401 - the reports' helpers, re-exported
    CSS,
    _plt as pyplot,
    esc,
    fmt_number,
    fmt_seconds,
    html_page as debugger_page,
    note,
    section,
    table,
)

EXTRA_CSS = """
.Completed{background:#dcffe4;color:#176f2c}.Failed{background:#ffd7d5;color:#a40e26}
.Stopped{background:#fff1c2;color:#735c0f}.Pruned{background:#fff1c2;color:#735c0f}
tr.best td{background:#f0fff4}code,pre.cmd{font-family:SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
pre.cmd{background:#f6f8fa;border:1px solid #e1e4e8;border-radius:4px;padding:6px 10px;overflow-x:auto}
.figures{display:flex;flex-wrap:wrap;gap:10px}.figures img.plot{max-width:49%}
.scroll{max-height:480px;overflow-y:auto}.wide{overflow:auto;max-height:900px;border:1px solid #e1e4e8}
.wide img.plot{max-width:none;margin:0}td.num{text-align:right;font-variant-numeric:tabular-nums}
"""


def png(fig, alt: str = "plot", natural_size: bool = False) -> str:
    """A matplotlib figure as an embedded PNG, then closed. Cropped to what was drawn (bbox_inches) rather
    than re-laid out like the debugger's plots: Optuna's figures place their own colour bars.
    `natural_size`: shown at its own size in a scrolling box, not shrunk to the page's width."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", pad_inches=0.08)
    pyplot().close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    image = f'<img class="plot" alt="{esc(alt)}" src="data:image/png;base64,{data}">'
    return f'<div class="wide">{image}</div>' if natural_size else image


def badge(status: str, label: str | None = None) -> str:
    return f'<span class="badge {esc(status)}">{esc(label or status)}</span>'


def command(text: str) -> str:
    return f'<pre class="cmd">{esc(text)}</pre>'


def html_page(title: str, subtitle: str, nav: list[tuple[str, str]], sections: list[str]) -> str:
    return debugger_page(title, title, subtitle, nav, sections, CSS + EXTRA_CSS)


def write_page(path: Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, lambda handle: handle.write(text.encode("utf-8")))
    return path


def utc_text(moment: datetime | None) -> str:
    if moment is None:
        return "–"
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
