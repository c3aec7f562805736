"""How numbers, durations and times read on every report page (the templates' filters)."""
from __future__ import annotations

import math
import numbers
from datetime import datetime, timezone

MISSING = "–"


def number(value) -> str:
    """An int as it is, a float to 4 significant digits, a list as its first ten values, None as a dash."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        value = float(value)
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        shown = ", ".join(number(v) for v in value[:10])
        return shown + (", …" if len(value) > 10 else "")
    return str(value)


def seconds(value) -> str:
    """A duration in the unit that reads best: 12.3 s, 4.5 min, 1.25 h."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.2f} h"


def utc(moment: datetime | float | None) -> str:
    """A datetime or a Unix time, in UTC to the second."""
    if moment is None:
        return MISSING
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def percent(value: float, digits: int = 1) -> str:
    """A share (0.875) as a percentage (87.5%)."""
    return f"{value:.{digits}%}"


def fixed(value: float | None, digits: int) -> str:
    """A number with a fixed count of decimals; None or NaN as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return f"{value:.{digits}f}"


FILTERS = {"number": number, "seconds": seconds, "utc": utc, "percent": percent, "fixed": fixed}
