"""Number formatting for the study report (``–`` marks a missing value)."""

from __future__ import annotations

import math
from typing import Any


def is_null(v: Any) -> bool:
    """None or a float NaN (what pandas puts in a missing numeric cell)."""
    return v is None or (isinstance(v, float) and math.isnan(v))


def fmt_num(v: Any, digits: int = 3) -> str:
    """A ratio for people: 3 significant digits, scientific only when tiny or huge."""
    if is_null(v):
        return "–"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if f != 0 and (abs(f) < 1e-3 or abs(f) >= 1e5):
        return f"{f:.{digits - 1}e}"
    return f"{f:.{digits}g}" if abs(f) < 1 else f"{f:.{digits - 1}f}"


def fmt_p(v: Any) -> str:
    """A p- or q-value: 3 decimals, scientific below 0.001."""
    if is_null(v):
        return "–"
    return f"{float(v):.2e}" if float(v) < 1e-3 else f"{float(v):.3f}"


def fmt_int(v: Any) -> str:
    """A count with thousands separators."""
    if is_null(v):
        return "–"
    return f"{int(v):,}"


def fmt_ci(lo: Any, hi: Any) -> str:
    """``lo–hi`` with :func:`fmt_num`; ``–`` when either end is missing."""
    if is_null(lo) or is_null(hi):
        return "–"
    return f"{fmt_num(lo)}–{fmt_num(hi)}"
