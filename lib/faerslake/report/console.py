"""The cohort results as a fixed-width console table (``faerslake study`` / ``run``).

Its own compact number format (``.3g``, ``-`` for a missing value), which
scripts and users read; only the null test is shared with the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from faerslake.report.format import is_null


def _fmt_g(v: Any, spec: str = ".3g") -> str:
    return "-" if is_null(v) else format(v, spec)


def _cells(r: Mapping[Any, Any]) -> list[str]:
    ci = "-" if is_null(r["ror"]) else f"{_fmt_g(r['ror_ci_lower'])}–{_fmt_g(r['ror_ci_upper'])}"
    ror = _fmt_g(r["ror"]) + ("*" if r.get("haldane_corrected") else "")
    return [str(r["cohort"]), str(r["exposed_reports"]), str(r["exposed_events"]),
            str(r["control_reports"]), str(r["control_events"]), ror, ci,
            _fmt_g(r["fisher_p"], ".2g"), _fmt_g(r["fisher_q"], ".2g")]


def format_cohort_table(df: pd.DataFrame) -> str:
    """The cohort results as a fixed-width text table."""
    head = ["cohort", "exposed", "events", "control", "events", "ROR", "95% CI", "fisher_p", "q"]
    records = df.to_dict("records")
    lines = [_cells(r) for r in records]
    widths = [max(len(head[i]), *(len(row[i]) for row in lines)) if lines else len(head[i])
              for i in range(len(head))]

    def fmt_row(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    study = df["study"].iloc[0] if len(df) else ""
    out = [f"study: {study}", fmt_row(head), "  ".join("-" * w for w in widths)]
    out += [fmt_row(row) for row in lines]
    if any(r.get("haldane_corrected") for r in records):
        out.append("* Haldane-corrected (0.5 added to every cell: a cell was 0)")
    return "\n".join(out)


def print_cohort_table(df: pd.DataFrame) -> None:
    """Print :func:`format_cohort_table` to stdout (``faerslake study`` / ``run``)."""
    print(format_cohort_table(df), flush=True)
