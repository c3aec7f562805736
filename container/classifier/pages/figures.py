"""matplotlib figures as embedded PNGs: the plots of every report page."""
from __future__ import annotations

import base64
import functools
import io

from ..preprocessing import DEFAULT_MAX_PIXELS, ImageDecodeError, ImageTooLargeError, open_rgb

# Class names are in any script: each glyph comes from the first of these fonts that has it (matplotlib's font
# fallback). DejaVu Sans (matplotlib's own) draws Latin, Greek, Cyrillic, Arabic...; WenQuanYi Micro Hei
# (Debian's fonts-wqy-microhei, 5 MB) Chinese, Japanese and Korean; Symbola (fonts-symbola, 3 MB) emoji up to
# Unicode 9 in black and white. Those not installed are left out; `undrawable` names what then shows as boxes.
FONTS = ("DejaVu Sans", "WenQuanYi Micro Hei", "Symbola")
FONT_PACKAGES = "fonts-wqy-microhei and fonts-symbola"


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display), with the reports' look. Imported here, not at
    the top: the training job imports the debugger without drawing anything until its report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 96, "font.size": 9, "axes.grid": True, "grid.alpha": 0.3,
                         "font.family": list(_font_files())})
    return plt


@functools.lru_cache(maxsize=1)
def _font_files() -> dict[str, str]:
    """FONTS that are installed: family -> file. matplotlib's font list is cached from its first run: fonts
    installed since are added from the system's list."""
    from matplotlib import font_manager

    manager = font_manager.fontManager
    if not all(family in {font.name for font in manager.ttflist} for family in FONTS):
        known = {font.fname for font in manager.ttflist}
        for path in font_manager.findSystemFonts():
            if path not in known and ("wqy" in path.lower() or "symbola" in path.lower()):
                manager.addfont(path)
    found = {font.name: font.fname for font in manager.ttflist}
    return {family: found[family] for family in FONTS if family in found}


@functools.lru_cache(maxsize=1)
def _drawable() -> frozenset[int]:
    from matplotlib.ft2font import FT2Font

    return frozenset(code for path in _font_files().values() for code in FT2Font(path).get_charmap())


def undrawable(texts) -> str:
    """The characters of `texts` that no installed font of FONTS has (they show as boxes in the figures)."""
    covered = _drawable()
    return "".join(sorted({c for text in texts for c in text if not c.isspace() and ord(c) not in covered}))


def png(fig, crop: bool = False) -> str:
    """The figure as a PNG data URI, then closed. `crop`: cut to what was drawn (bbox_inches) instead of
    laying it out again (tight_layout), for figures that place their own colour bars (Optuna's)."""
    buffer = io.BytesIO()
    if crop:
        fig.savefig(buffer, format="png", bbox_inches="tight", pad_inches=0.08)
    else:
        fig.tight_layout()
        fig.savefig(buffer, format="png")
    pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def thumbnails(sources: list, titles: list[str], colors: list[str], title: str, columns: int = 6, side: int = 160,
               max_pixels: int | None = DEFAULT_MAX_PIXELS):
    """Images (files or encoded bytes) in a grid, each under its title in its colour: a report's pictures.
    `max_pixels`: None only for images known to be of a sane size (a data set the job already read)."""
    import numpy as np

    plt = pyplot()
    rows = max(1, -(-len(sources) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(10, 2.1 * rows), squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, source, text, color in zip(axes.flat, sources, titles, colors, strict=False):
        try:
            image = open_rgb(source, draft_size=side, max_pixels=max_pixels)
            image.thumbnail((side, side))
            ax.imshow(np.asarray(image))
        except (ImageDecodeError, ImageTooLargeError, OSError):
            ax.text(0.5, 0.5, "unreadable", ha="center", va="center")
        ax.set_title(text, fontsize=6.5, color=color)
    fig.suptitle(title, fontsize=9)
    return fig
