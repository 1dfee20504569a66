"""The analyst sections of the study report: what the terms matched, the
trend, the demographics and the case listing. Each returns ``None`` when its
table is not in the context (a report built from results alone)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from faerslake.report.context import ReportContext
from faerslake.report.document import Image, Section, Table
from faerslake.report.format import fmt_ci, fmt_int, fmt_num, is_null

TERMS_TITLE = "What the terms matched"
# names shown per exclusion drug token (the study's exclusions.drug_tokens are many)
EXCLUSION_DRUG_NAMES = 5


def _text(v: Any) -> str:
    return "–" if is_null(v) or v == "" else str(v)


def token_groups(top: pd.DataFrame, name: str, kept: bool | None) -> dict[str, list[dict[str, Any]]]:
    """token -> its rows of list ``name`` (and ``kept``) in the summary's order."""
    part = top[top["list"] == name]
    if kept is not None:
        part = part[part["kept"] == kept]
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in part.to_dict("records"):
        groups.setdefault(str(r["token"]), []).append(r)
    return groups


def _more(groups: dict[str, list[dict[str, Any]]], limit: int | None = None) -> str | None:
    """'Not shown here (terms.csv has them): TOKEN n more names; ...', or None."""
    extra = []
    for token, rows in groups.items():
        shown = len(rows) if limit is None else min(limit, len(rows))
        left = int(rows[0]["token_names"]) - shown
        if left > 0:
            extra.append(f"{token} {left:,} more name{'s' if left != 1 else ''}")
    return f"Not shown here (`terms.csv` has them): {'; '.join(extra)}." if extra else None


TREND_PLOT = "trend_plot.png"
# cases.csv's columns (faerslake.gold.cases.CASE_COLUMNS; not imported: the
# report does not import Spark code)
CASE_COLUMNS_TEXT = ("study, cohort, caseid, report_key, quarter, age_years, sex, reporter_country, "
                     "reporter_type, suspect_drugs, reaction_pts, outcomes")


def terms_section(ctx: ReportContext) -> Section | None:
    """Per exposure token the drugname / prod_ai pairs it found (most reports
    first), per exclusion token the pairs it removed, per exclusion drug token
    its first names, and per cohort the indication PTs' reports
    (``ctx.term_matches``: :func:`faerslake.gold.terms.top_terms`;
    ``ctx.cohort_indications``); the full lists are in ``terms.csv``."""
    top, ind = ctx.term_matches, ctx.cohort_indications
    if top is None and ind is None:
        return None
    sec = Section(TERMS_TITLE)
    study = ctx.study
    if top is not None:
        kept = token_groups(top, "exposure.tokens", True)
        first = next(iter(kept.values()), [])
        roles = getattr(study, "exposure_role_codes", None)
        sec.blocks.append(
            "Each exposure token is a substring test on the normalised drugname and prod_ai; below, the distinct "
            "(drugname, prod_ai) pairs each found, with their reports and drug rows, in the study's period"
            + (f" and role codes {', '.join(roles)}" if roles else "") + ". A pair found by several tokens is "
            "listed under each. Exposure drug rows by tokens: "
            f"{fmt_int(first[0]['list_rows']) if first else '0'} (each counted once, under the first token it "
            "contains); every match is in `terms.csv`.")
        header = ["token", "drugname", "prod_ai", "found in", "reports", "drug rows"]
        rows = [[token, _text(r["drugname"]), _text(r["prod_ai"]), str(r["field"]), fmt_int(r["reports"]),
                 fmt_int(r["drug_rows"])] for token, rs in kept.items() for r in rs]
        sec.blocks.append(Table(header, rows) if rows else "No drug row contains an exposure token.")
        tokens = list(dict.fromkeys(getattr(getattr(study, "exposure", None), "tokens", []) or []))
        silent = [t for t in tokens if t not in kept]
        if silent:
            sec.blocks.append(f"Tokens that find no exposure drug row (none, or only pairs an exclusion token "
                              f"removed): {', '.join(silent)}.")
        note = _more(kept)
        if note:
            sec.blocks.append(note)
        removed = token_groups(top, "exposure.exclude_tokens", None)
        matcher = getattr(getattr(study, "exposure", None), "matcher", None) or "tokens"
        for token, rs in removed.items():
            names, drug_rows = int(rs[0]["token_names"]), int(rs[0]["token_rows"])
            sec.blocks.append(f"Removed by exclusion token {token} ({names:,} name{'s' if names != 1 else ''}, "
                              f"{drug_rows:,} drug row{'s' if drug_rows != 1 else ''}): an exposure token found "
                              "them, so without the exclusion token they would be exposure drugs by token"
                              + (" (under the `either` matcher an ingredient match can still make such a row "
                                 "exposed)." if matcher == "either" else "."))
            sec.blocks.append(Table(["drugname", "prod_ai", "found in", "reports", "drug rows", "exclusion tokens"],
                                    [[_text(r["drugname"]), _text(r["prod_ai"]), str(r["field"]),
                                      fmt_int(r["reports"]), fmt_int(r["drug_rows"]), _text(r["removed_by"])]
                                     for r in rs]))
        note = _more(removed)
        if note:
            sec.blocks.append(note)
        excl = token_groups(top, "exclusions.drug_tokens", None)
        if excl:
            sec.blocks.append(f"Exclusion drug tokens (a report with such a drug row leaves every cohort), at "
                              f"most {EXCLUSION_DRUG_NAMES} names each:")
            sec.blocks.append(Table(["token", "drugname", "prod_ai", "found in", "reports", "drug rows"],
                                    [[token, _text(r["drugname"]), _text(r["prod_ai"]), str(r["field"]),
                                      fmt_int(r["reports"]), fmt_int(r["drug_rows"])]
                                     for token, rs in excl.items() for r in rs[:EXCLUSION_DRUG_NAMES]]))
            note = _more(excl, EXCLUSION_DRUG_NAMES)
            if note:
                sec.blocks.append(note)
    if ind is not None and len(ind):
        sec.blocks.append("Indication PTs per cohort: the cohort's exposed and control reports with that INDI PT "
                          "(a report with two of the PTs counts under both; `indications.csv`).")
        sec.blocks.append(Table(["cohort", "indication PT", "exposed", "control"],
                                [[str(r["cohort"]), str(r["indication_pt"]), fmt_int(r["exposed_reports"]),
                                  fmt_int(r["control_reports"])] for r in ind.to_dict("records")]))
    return sec


def _ror_ci(r: dict[str, Any]) -> str:
    if is_null(r.get("ror")):
        return "–"
    return f"{fmt_num(r['ror'])} [{fmt_ci(r['ror_ci_lower'], r['ror_ci_upper'])}]"


def _first_signal(cum: pd.DataFrame, above: bool) -> str:
    """The first quarter whose cumulative CI lies wholly above 1 (``above``)
    or wholly below it, or ``never``. A study of a lower reporting rate (the
    default one) is seen when its CI first lies below 1; one of a higher rate
    when it lies above."""
    if above:
        hit = cum[cum["ror_ci_lower"].notna() & (cum["ror_ci_lower"] > 1)]
    else:
        hit = cum[cum["ror_ci_upper"].notna() & (cum["ror_ci_upper"] < 1)]
    return str(hit["period"].iloc[0]) if len(hit) else "never"


def trend_section(ctx: ReportContext) -> Section | None:
    """Per cohort and year: a, b, c, d and the ROR [95 % CI] (years without
    any report of the cohort left out); per cohort, the first quarter the
    cumulative ROR's CI lay wholly below 1 and wholly above it; and the
    cumulative ROR plot."""
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
                          "CI lay wholly below 1 (a lower reporting rate among the exposed) and wholly above 1 (a "
                          "higher one), counting all reports up to and including that quarter, and the "
                          "cumulative ROR at the last quarter.")
        rows = []
        for c in cohorts:
            d = cum[cum["cohort"] == c]
            rows.append([str(c), _first_signal(d, above=False), _first_signal(d, above=True),
                         _ror_ci(d.iloc[-1].to_dict())])
        sec.blocks.append(Table(["cohort", "first quarter CI < 1", "first quarter CI > 1",
                                 "cumulative ROR [95 % CI], last quarter"], rows))
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
