"""Quarters: parsing, ordering, eras.

A quarter is written ``2012Q4``. Legacy AERS covers 2004Q1–2012Q3, FAERS
2012Q4 onward; both share one number space for cases.
"""

from __future__ import annotations

import re

from faerslake.errors import ConfigError

FIRST_FAERS = "2012Q4"
_Q = re.compile(r"^(\d{4})Q([1-4])$")


def parse_quarter(text: str) -> str:
    """Normalise ``2012q4`` / ``2012Q4`` to ``2012Q4``; raise on anything else."""
    q = text.strip().upper()
    if not _Q.match(q):
        raise ConfigError(f"'{text}' is not a quarter; write it like 2012Q4")
    return q


def quarter_index(q: str) -> int:
    """Sortable integer: 2012Q4 -> 2012*4 + 3."""
    m = _Q.match(q)
    if not m:
        raise ConfigError(f"'{q}' is not a quarter; write it like 2012Q4")
    return int(m.group(1)) * 4 + int(m.group(2)) - 1


def quarter_from_index(i: int) -> str:
    return f"{i // 4}Q{i % 4 + 1}"


def era_of(q: str) -> str:
    """``legacy`` (AERS, up to 2012Q3) or ``faers`` (2012Q4 on)."""
    return "faers" if quarter_index(q) >= quarter_index(FIRST_FAERS) else "legacy"


def quarter_range(spec: str | None) -> list[str] | None:
    """``2004Q1:2019Q2`` -> every quarter in between (inclusive); ``2012Q4`` -> one;
    a comma list ``2004Q1,2012Q4`` -> those; ``None`` -> ``None`` (all)."""
    if spec is None or not str(spec).strip():
        return None
    out: list[str] = []
    for part in str(spec).split(","):
        part = part.strip()
        if ":" in part:
            a, b = (parse_quarter(x) for x in part.split(":", 1))
            ia, ib = quarter_index(a), quarter_index(b)
            if ia > ib:
                raise ConfigError(f"quarter range '{part}' runs backwards; write the earlier quarter first")
            out.extend(quarter_from_index(i) for i in range(ia, ib + 1))
        else:
            out.append(parse_quarter(part))
    return sorted(set(out), key=quarter_index)


def format_ranges(quarters: list[str]) -> str:
    """``2004Q1–2004Q4, 2012Q4`` from a list of quarters; ``none`` when empty."""
    if not quarters:
        return "none"
    idx = sorted({quarter_index(q) for q in quarters})
    parts, start, prev = [], idx[0], idx[0]
    for i in idx[1:] + [None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        a, b = quarter_from_index(start), quarter_from_index(prev)
        parts.append(a if start == prev else f"{a}–{b}")
        if i is not None:
            start = prev = i
    return ", ".join(parts)


def quarter_sort_key(q: object) -> int:
    """Time order of quarters; anything that is not a quarter sorts last (never raises)."""
    try:
        return quarter_index(str(q))
    except Exception:  # noqa: BLE001 - a sort key of untrusted table values
        return 10**9


def scope_sort_key(scope: object) -> int:
    """The order of a ``dedup_summary``: ``all`` first, then quarters in time order."""
    return -1 if scope == "all" else quarter_sort_key(scope)
