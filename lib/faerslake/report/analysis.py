"""The analyst sections of the study report: what the terms matched, the
trend, the demographics and the case listing. Each returns ``None`` when its
table is not in the context (a report built from results alone)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from faerslake.report.context import ReportContext
from faerslake.report.document import Image, Section, Table
from faerslake.report.format import fmt_ci, fmt_int, fmt_num, is_null

TREND_PLOT = "trend_plot.png"
# cases.csv's columns (faerslake.gold.cases.CASE_COLUMNS; not imported: the
# report does not import Spark code)
CASE_COLUMNS_TEXT = ("study, cohort, caseid, report_key, quarter, age_years, sex, reporter_country, "
                     "reporter_type, suspect_drugs, reaction_pts, outcomes")


def terms_section(ctx: ReportContext) -> Section | None:
    return None


def _ror_ci(r: dict[str, Any]) -> str:
    if is_null(r.get("ror")):
        return "–"
    return f"{fmt_num(r['ror'])} [{fmt_ci(r['ror_ci_lower'], r['ror_ci_upper'])}]"


def _first_signal(cum: pd.DataFrame) -> str:
    """The first quarter whose cumulative CI lies wholly above 1, or ``never``."""
    hit = cum[cum["ror_ci_lower"].notna() & (cum["ror_ci_lower"] > 1)]
    return str(hit["period"].iloc[0]) if len(hit) else "never"


def trend_section(ctx: ReportContext) -> Section | None:
    """Per cohort and year: a, b, c, d and the ROR [95 % CI] (years without
    any report of the cohort left out); per cohort, the first quarter the
    cumulative ROR's CI lay above 1; and the cumulative ROR plot."""
    trend = ctx.trend
    if trend is None:
        return None
    sec = Section("Trend by year", [
        "Per cohort and year of the report's quarter: a, b, c, d and the ROR [95 % CI] of that year's reports "
        "alone (Haldane-corrected when a cell is 0, as above); years in which the cohort has no report are left "
        "out. `trend.csv` has these rows (level `year`, every year) and the cumulative table at every quarter "
        "(level `cumulative_quarter`); per cohort the years sum to its row above."])
    years = trend[(trend["level"] == "year") & ((trend[["a", "b", "c", "d"]].sum(axis=1)) > 0)]
    if not len(years):
        sec.blocks.append("No cohort has a report in any year.")
    else:
        sec.blocks.append(Table(
            ["cohort", "year", "a", "b", "c", "d", "ROR [95 % CI]"],
            [[str(r["cohort"]), str(r["period"]), *(fmt_int(r[k]) for k in "abcd"), _ror_ci(r)]
             for r in years.to_dict("records")]))
    cum = trend[trend["level"] == "cumulative_quarter"]
    cohorts = list(dict.fromkeys(cum["cohort"]))
    if cohorts:
        sec.blocks.append("The signal over time: per cohort, the first quarter at which the cumulative ROR's 95 % "
                          "CI lay wholly above 1 (all reports up to and including that quarter), and the "
                          "cumulative ROR at the last quarter.")
        rows = []
        for c in cohorts:
            d = cum[cum["cohort"] == c]
            rows.append([str(c), _first_signal(d), _ror_ci(d.iloc[-1].to_dict())])
        sec.blocks.append(Table(["cohort", "first quarter CI > 1", "cumulative ROR [95 % CI], last quarter"],
                                rows))
    data = (ctx.images or {}).get(TREND_PLOT)
    if data is not None:
        sec.blocks.append(Image(TREND_PLOT, "cumulative ROR by quarter per cohort, with 95 % CI band", data=data))
    return sec


def _n_pct(n: Any, pct: Any) -> str:
    return fmt_int(n) + ("" if is_null(pct) else f" ({float(pct):.1f} %)")


def demographics_section(ctx: ReportContext) -> Section | None:
    """Exposed against controls per cohort: sex, age band, reporter type and
    era, n (% of the group); levels no report of the cohort has are left out."""
    demo = ctx.demographics
    if demo is None:
        return None
    sec = Section("Demographics: exposed against controls", [
        "Per cohort, the exposed and the control reports by sex (F, M, U = anything else), age band (years at "
        "the event; unknown when missing), reporter type (the reporter's occupation code: MD physician, PH "
        "pharmacist, OT other health professional, LW lawyer, CN consumer, HP health professional) and era "
        "(legacy AERS before 2012Q4, faers after): n (% of the cohort's exposed or control reports). The "
        "Mantel–Haenszel strata above are sex × age band × era. `demographics.csv` has every level."])
    shown = demo[(demo["exposed_n"] > 0) | (demo["control_n"] > 0)]
    if not len(shown):
        sec.blocks.append("No cohort has a report.")
        return sec
    sec.blocks.append(Table(
        ["cohort", "variable", "level", "exposed n (%)", "control n (%)"],
        [[str(r["cohort"]), str(r["variable"]).replace("_", " "), str(r["level"]),
          _n_pct(r["exposed_n"], r["exposed_pct"]), _n_pct(r["control_n"], r["control_pct"])]
         for r in shown.to_dict("records")]))
    return sec


def cases_section(ctx: ReportContext) -> Section | None:
    """How many rows ``cases.csv`` has per cohort, and its columns."""
    if ctx.cases_file is None:
        return None
    per = ctx.cases_per_cohort or {}
    sec = Section("Case listing", [
        f"`{ctx.cases_file}` lists every cohort's exposed reports with the event (cell a), "
        f"{fmt_int(ctx.cases_rows)} rows in all, sorted by cohort, quarter and caseid: what to read next. "
        f"Columns: {CASE_COLUMNS_TEXT}. Suspect drugs are the report's drug names with role PS or SS; "
        "reaction PTs are all its reaction terms; lists are distinct, sorted and joined with \"; \". "
        "FAERS has no public page per case: look a case up by its caseid."])
    if "silver/outcomes" not in (ctx.table_versions or {}):
        sec.blocks.append("The warehouse has no `silver/outcomes` table: the outcomes column is empty.")
    else:
        sec.blocks.append("Outcomes are FDA's codes: DE death, LT life-threatening, HO hospitalisation, "
                          "DS disability, CA congenital anomaly, RI required intervention, OT other serious.")
    if per:
        sec.blocks.append(Table(["cohort", "rows (= exposed events)"], [[str(c), fmt_int(n)] for c, n in per.items()]))
    return sec
