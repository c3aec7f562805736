"""matplotlib figures as embedded PNGs: the plots of every report page."""
from __future__ import annotations

import base64
import io


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display), with the reports' look. Imported here, not at
    the top: the training job imports the debugger without drawing anything until its report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 96, "font.size": 9, "axes.grid": True, "grid.alpha": 0.3})
    return plt


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
