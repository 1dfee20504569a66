"""The report's forest plot: ROR and 95 % CI per cohort."""

from __future__ import annotations

import io

import pandas as pd

from faerslake.report.format import is_null


def forest_plot_figure(results: pd.DataFrame, title: str = ""):
    """Forest plot of ROR and 95 % CI per cohort (log x axis, line at 1).

    Uses matplotlib's Agg canvas directly (no global backend switch, no
    display). Cohorts without an ROR are listed with 'not estimable'; Haldane
    corrected estimates get an open marker. Cohort names and the title are
    drawn as plain text (``parse_math=False``): a ``$`` in a study file is a
    dollar sign, not matplotlib mathtext that could fail to parse.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    recs = results.to_dict("records")
    n = max(len(recs), 1)
    fig = Figure(figsize=(8.5, 1.2 + 0.45 * n), dpi=110)
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
    for y, r in zip(ys, recs, strict=True):
        if is_null(r["ror"]):
            ax.text(xmin * 1.05, y, "not estimable", va="center", fontsize=8, color="grey")
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=9, parse_math=False)
    ax.set_ylim(-0.7, len(recs) - 0.3)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.set_xlabel("reporting odds ratio (95 % CI), log scale; n = exposed / control reports"
                  + ("; open marker: Haldane-corrected" if any(r["haldane_corrected"] for r in recs) else ""))
    if title:
        ax.set_title(title, fontsize=10, parse_math=False)
    fig.tight_layout()
    return fig


def forest_plot_png(results: pd.DataFrame, title: str = "") -> bytes:
    """:func:`forest_plot_figure` as PNG bytes."""
    buf = io.BytesIO()
    forest_plot_figure(results, title).savefig(buf, format="png")
    return buf.getvalue()
