"""The analyst sections of the study report: what the terms matched, the
trend, the demographics and the case listing. Each returns ``None`` when its
table is not in the context (a report built from results alone)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from faerslake.report.context import ReportContext
from faerslake.report.document import Section, Table
from faerslake.report.format import fmt_int, is_null

TERMS_TITLE = "What the terms matched"
# names shown per exclusion drug token (the study's exclusions.drug_tokens are many)
EXCLUSION_DRUG_NAMES = 5


def _text(v: Any) -> str:
    return "–" if is_null(v) or v == "" else str(v)


def _token_groups(top: pd.DataFrame, name: str, kept: bool | None) -> dict[str, list[dict[str, Any]]]:
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
        kept = _token_groups(top, "exposure.tokens", True)
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
        removed = _token_groups(top, "exposure.exclude_tokens", None)
        for token, rs in removed.items():
            sec.blocks.append(f"Removed by exclusion token {token} ({fmt_int(rs[0]['token_names'])} names, "
                              f"{fmt_int(rs[0]['token_rows'])} drug rows): an exposure token found them, so "
                              "without the exclusion token they would be exposure drugs.")
            sec.blocks.append(Table(["drugname", "prod_ai", "found in", "reports", "drug rows", "exclusion tokens"],
                                    [[_text(r["drugname"]), _text(r["prod_ai"]), str(r["field"]),
                                      fmt_int(r["reports"]), fmt_int(r["drug_rows"]), _text(r["removed_by"])]
                                     for r in rs]))
        excl = _token_groups(top, "exclusions.drug_tokens", None)
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


def trend_section(ctx: ReportContext) -> Section | None:
    return None


def demographics_section(ctx: ReportContext) -> Section | None:
    return None


def cases_section(ctx: ReportContext) -> Section | None:
    return None
