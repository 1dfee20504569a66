"""The report's forest plot: ROR and 95 % CI per cohort."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import pandas as pd

from faerslake.report.format import fmt_ci, fmt_num, is_null

# the PNG's resolution (the SVG is resolution-free)
PNG_DPI = 200
# a cohort's estimate is marked when its BH q is below this (as the report's Summary)
Q_MARK = 0.05
# the SVG's element ids are salted with this and it carries no date, so that
# the same results give the same bytes
SVG_HASHSALT = "faerslake"


def _ror_text(r: Mapping[Any, Any]) -> str:
    """The right-hand column: ``ROR [lo–hi]`` and ``*`` when q < :data:`Q_MARK`."""
    if is_null(r["ror"]):
        return "–"
    q = r.get("fisher_q")
    mark = " *" if q is not None and float(q) < Q_MARK else ""  # NaN < Q_MARK is False
    return f"{fmt_num(r['ror'])} [{fmt_ci(r['ror_ci_lower'], r['ror_ci_upper'])}]{mark}"


def forest_plot_figure(results: pd.DataFrame, title: str = ""):
    """Forest plot of ROR and 95 % CI per cohort (log x axis, line at 1), with
    each cohort's ``ROR [95 % CI]`` as text in a column right of the axes and
    ``*`` where its BH q < 0.05 (explained in the axis caption).

    Uses matplotlib's Agg canvas directly (no global backend switch, no
    display). Cohorts without an ROR are listed with 'not estimable'; Haldane
    corrected estimates get an open marker. Cohort names and the title are
    drawn as plain text (``parse_math=False``): a ``$`` in a study file is a
    dollar sign, not matplotlib mathtext that could fail to parse. The layout
    keeps every text inside the figure (``tight_layout`` counts the column).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    recs = results.to_dict("records")
    n = max(len(recs), 1)
    fig = Figure(figsize=(9.5, 1.5 + 0.45 * n), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ys = list(range(len(recs)))[::-1]
    labels, finite = [], []
    for y, r in zip(ys, recs, strict=True):
        labels.append(f"{r['cohort']} (n={int(r['exposed_reports']):,} / {int(r['control_reports']):,})")
        if is_null(r["ror"]):
            continue
        finite += [r["ror_ci_lower"], r["ror_ci_upper"], r["ror"]]
        lo, hi = r["ror"] - r["ror_ci_lower"], r["ror_ci_upper"] - r["ror"]
        ax.errorbar([r["ror"]], [y], xerr=[[lo], [hi]], fmt="o", color="black", ecolor="black",
                    capsize=3, markerfacecolor="white" if r["haldane_corrected"] else "black")
    ax.set_xscale("log")
    if finite:
        lo, hi = min(min(finite), 1.0), max(max(finite), 1.0)
        ax.set_xlim(lo / 1.6, hi * 1.6)
    else:
        ax.set_xlim(0.1, 10)
    xmin = ax.get_xlim()[0]
    # the text column: x in axes coordinates (just right of the axes), y in data
    column = ax.get_yaxis_transform()
    for y, r in zip(ys, recs, strict=True):
        if is_null(r["ror"]):
            ax.text(xmin * 1.05, y, "not estimable", va="center", fontsize=8, color="grey")
        ax.text(1.02, y, _ror_text(r), transform=column, va="center", ha="left", fontsize=8.5)
    ax.text(1.02, 1.0, "ROR [95 % CI]", transform=ax.transAxes, va="bottom", ha="left", fontsize=8.5,
            fontweight="bold")
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=9, parse_math=False)
    ax.set_ylim(-0.7, len(recs) - 0.3)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    notes = ["* BH q < 0.05"]
    if any(r["haldane_corrected"] for r in recs):
        notes.append("open marker: Haldane-corrected")
    ax.set_xlabel("reporting odds ratio (95 % CI), log scale; n = exposed / control reports\n"
                  + "; ".join(notes), fontsize=9)
    if title:
        ax.set_title(title, fontsize=10, parse_math=False)
    fig.tight_layout()
    return fig


def forest_plot_png(results: pd.DataFrame, title: str = "") -> bytes:
    """:func:`forest_plot_figure` as PNG bytes at :data:`PNG_DPI`."""
    buf = io.BytesIO()
    forest_plot_figure(results, title).savefig(buf, format="png", dpi=PNG_DPI, bbox_inches="tight",
                                               pad_inches=0.1)
    return buf.getvalue()


def forest_plot_svg(results: pd.DataFrame, title: str = "") -> bytes:
    """:func:`forest_plot_figure` as SVG bytes, the same for the same results
    (salted ids, no date)."""
    import matplotlib

    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": SVG_HASHSALT, "svg.fonttype": "path"}):
        forest_plot_figure(results, title).savefig(buf, format="svg", bbox_inches="tight", pad_inches=0.1,
                                                   metadata={"Date": None})
    return buf.getvalue()
