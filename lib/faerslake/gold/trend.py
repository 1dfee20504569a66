"""Gold extra (issue #18): the 2×2 of every cohort over time.

One Spark aggregate over ``cohort_members`` (rows: cohorts × quarters ×
exposed, a few thousand at most) comes to the driver; the yearly tables and
the cumulative ROR by quarter (when the signal would first have been seen)
are computed from it in pandas with :func:`faerslake.stats.ror_ci`, the
function of ``cohort_results``. Per cohort, the yearly a, b, c, d sum to its
``cohort_results`` row and the last cumulative quarter equals it.
"""

from __future__ import annotations

import io

import pandas as pd
from pyspark.sql import DataFrame, Row
from pyspark.sql import functions as F

from faerslake import stats
from faerslake.config import Study
from faerslake.quarters import quarter_index, quarter_sort_key

# level "year": one row per cohort and year (period "2015"); level
# "cumulative_quarter": one row per cohort and quarter (period "2015Q1") with
# the counts of every quarter up to and including it
TREND_COLUMNS = ["study", "cohort", "level", "period", "a", "b", "c", "d",
                 "ror", "ror_ci_lower", "ror_ci_upper", "haldane_corrected"]
TREND_LEVELS = ("year", "cumulative_quarter")
_FLOATS = ["ror", "ror_ci_lower", "ror_ci_upper"]


def trend_counts(members: DataFrame) -> list[Row]:
    """Reports and events per (cohort, quarter, exposed): one small aggregate, collected."""
    return (members.groupBy("cohort", "quarter", "exposed")
            .agg(F.count(F.lit(1)).alias("n"), F.sum(F.col("event").cast("long")).alias("events"))
            .collect())


def _cells(rows: list[Row]) -> dict[tuple[str, str], list[int]]:
    """(cohort, quarter) -> [a, b, c, d] from :func:`trend_counts` rows."""
    cells: dict[tuple[str, str], list[int]] = {}
    for r in rows:
        t = cells.setdefault((r["cohort"], r["quarter"]), [0, 0, 0, 0])
        n, e = int(r["n"]), int(r["events"] or 0)
        i = 0 if r["exposed"] else 2
        t[i] += e
        t[i + 1] += n - e
    return cells


def _row(study: str, cohort: str, level: str, period: str, abcd: list[int]) -> dict:
    r = stats.ror_ci(*abcd)
    return {"study": study, "cohort": cohort, "level": level, "period": period,
            "a": abcd[0], "b": abcd[1], "c": abcd[2], "d": abcd[3], "ror": r.ror,
            "ror_ci_lower": r.ci_lower, "ror_ci_upper": r.ci_upper, "haldane_corrected": r.haldane_corrected}


def trend_table(members: DataFrame | None, study: Study, quarters: list[str] | None = None,
                rows: list[Row] | None = None) -> pd.DataFrame:
    """The trend table (:data:`TREND_COLUMNS`): per cohort in study order, its
    ``year`` rows (a, b, c, d of the reports of that year, ROR and 95 % CI,
    Haldane-corrected when a cell is 0), then its ``cumulative_quarter`` rows
    (the same of every quarter up to and including that one).

    ``quarters``: the quarters the study covers (default: those of the
    members); every cohort gets a row for each of them and for each of their
    years, zeros included, so the tables of two cohorts line up. ``rows``:
    :func:`trend_counts` already collected."""
    if rows is None:
        assert members is not None, "trend_table needs the members or their trend_counts rows"
        rows = trend_counts(members)
    cells = _cells(rows)
    qs = sorted(set(quarters or []) | {q for _, q in cells}, key=quarter_sort_key)
    years = list(dict.fromkeys(q[:4] for q in qs))
    out = []
    for c in study.cohorts:
        per_year = {y: [0, 0, 0, 0] for y in years}
        for q in qs:
            per_year[q[:4]] = [x + y for x, y in zip(per_year[q[:4]], cells.get((c.name, q), [0, 0, 0, 0]),
                                                       strict=True)]
        out += [_row(study.name, c.name, "year", y, per_year[y]) for y in years]
        total = [0, 0, 0, 0]
        for q in qs:
            total = [x + y for x, y in zip(total, cells.get((c.name, q), [0, 0, 0, 0]), strict=True)]
            out.append(_row(study.name, c.name, "cumulative_quarter", q, total))
    df = pd.DataFrame(out, columns=TREND_COLUMNS)
    for col in _FLOATS:
        df[col] = df[col].astype("float64")
    for col in ["a", "b", "c", "d"]:
        df[col] = df[col].astype("int64")
    df["haldane_corrected"] = df["haldane_corrected"].astype(bool)
    return df


def trend_plot_figure(trend: pd.DataFrame, title: str = ""):
    """Small multiples, one panel per cohort: the cumulative ROR by quarter
    (x: the quarter's time, log y axis, line at 1) with its 95 % CI as a grey
    band and bars; a quarter whose cumulative table is not estimable has no
    point. Agg canvas, no display; text drawn plain (``parse_math=False``),
    as in the forest plot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    cum = trend[trend["level"] == "cumulative_quarter"]
    cohorts = list(dict.fromkeys(cum["cohort"]))
    ncols = 2 if len(cohorts) > 1 else 1
    nrows = max((len(cohorts) + ncols - 1) // ncols, 1)
    fig = Figure(figsize=(4.6 * ncols, 0.7 + 2.2 * nrows), dpi=110)
    FigureCanvasAgg(fig)
    times = [quarter_index(q) / 4 for q in cum["period"]]  # 2015Q1 -> 2015.0, 2015Q2 -> 2015.25
    lo_t, hi_t = (min(times), max(times)) if times else (0.0, 1.0)
    for k, cohort in enumerate(cohorts):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        d = cum[(cum["cohort"] == cohort) & cum["ror"].notna()]
        x = [quarter_index(q) / 4 for q in d["period"]]
        if len(d):
            ax.fill_between(x, d["ror_ci_lower"], d["ror_ci_upper"], color="0.88", linewidth=0)
            ax.vlines(x, d["ror_ci_lower"], d["ror_ci_upper"], color="0.55", linewidth=0.8)
            ax.plot(x, d["ror"], "-o", color="black", linewidth=1.2, markersize=2.5)
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        else:
            ax.text(0.5, 0.5, "not estimable", transform=ax.transAxes, ha="center", va="center",
                    fontsize=8, color="grey")
            ax.set_yticks([])
        ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
        ax.set_xlim(lo_t - 0.5, hi_t + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.0f}"))
        ax.tick_params(labelsize=7)
        last = cum[cum["cohort"] == cohort].tail(1)
        a = int(last["a"].iloc[0]) if len(last) else 0
        ax.set_title(f"{cohort} (a = {a:,})", fontsize=9, parse_math=False)
    fig.supylabel("cumulative ROR (95 % CI), log scale", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10, parse_math=False)
    # fixed margins (inches) instead of tight_layout, which draws the figure once more to measure it
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=0.75 / w, right=1 - 0.2 / w, bottom=0.35 / h, top=1 - (0.65 if title else 0.4) / h,
                        wspace=0.25, hspace=0.55 * 2.2 / (2.2 - 0.55) / 2)
    return fig


def trend_plot_png(trend: pd.DataFrame, title: str = "") -> bytes:
    """:func:`trend_plot_figure` as PNG bytes, the same bytes for the same
    table (no software or date metadata)."""
    buf = io.BytesIO()
    trend_plot_figure(trend, title).savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()
