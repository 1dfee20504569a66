"""The report's sections, built from the results and a :class:`ReportContext`:
summary, cohort results (table and forest plot), the 2×2 tables, published
figures, Mantel–Haenszel, the matchers side by side (a study naming tokens and
ingredients), the analyst sections of :mod:`.analysis`, data, methods,
limitations, provenance and the appendix (the long tables)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from faerslake import stats
from faerslake.quarters import format_ranges, quarter_range, quarter_sort_key
from faerslake.report.analysis import cases_section, demographics_section, terms_section, trend_section
from faerslake.report.context import ReportContext
from faerslake.report.document import Bullets, Image, Section, Table
from faerslake.report.format import fmt_ci, fmt_int, fmt_num, fmt_p, is_null

NOT_AVAILABLE = "not available"
# a cohort's result is significant when its Benjamini–Hochberg q is below this
Q_SIGNIFICANT = 0.05


def _cells(r: Mapping[Any, Any]) -> tuple[int, int, int, int]:
    """A cohort's 2×2 cells a, b, c, d from its four counts (spec §5)."""
    a, c = int(r["exposed_events"]), int(r["control_events"])
    return a, int(r["exposed_reports"]) - a, c, int(r["control_reports"]) - c


def _not_estimable_reason(a: int, b: int, c: int, d: int) -> str:
    """Why a cohort has no ROR: which whole row or column of its table is 0."""
    if a + b == 0:
        return "no exposed reports"
    if c + d == 0:
        return "no control reports"
    if a + c == 0:
        return "no report with the event"
    return "every report has the event"


def significant(q: Any) -> bool:
    """The report's significance rule: a BH q below :data:`Q_SIGNIFICANT`."""
    return not is_null(q) and float(q) < Q_SIGNIFICANT


def _summary_sentence(r: Mapping[Any, Any]) -> str:
    """One cohort in a sentence: direction, ROR [95 % CI], BH q, significance."""
    name = str(r["cohort"])
    if is_null(r.get("ror")):
        return f"{name}: not estimable ({_not_estimable_reason(*_cells(r))})."
    ror = float(r["ror"])
    direction = ("reported less often among exposed" if ror < 1 else
                 "reported more often among exposed" if ror > 1 else "reported as often among exposed")
    verdict = "significant" if significant(r.get("fisher_q")) else "not significant"
    lo, hi = r.get("ror_ci_lower"), r.get("ror_ci_upper")
    if verdict == "significant" and lo is not None and hi is not None and float(lo) <= 1 <= float(hi):
        verdict += ", though the 95 % CI includes 1"  # Fisher's exact test and the log-normal CI disagree
    haldane = ", Haldane-corrected" if r.get("haldane_corrected") else ""
    return (f"{name}: {direction} (ROR {fmt_num(ror)} [95 % CI {fmt_ci(r['ror_ci_lower'], r['ror_ci_upper'])}]"
            f"{haldane}, BH q {fmt_p(r.get('fisher_q'))}; {verdict}).")


def _summary_section(results: pd.DataFrame, study: Any) -> Section:
    """The answer first: the significance count, then one sentence per cohort."""
    recs = results.to_dict("records")
    n = len(recs)
    lower = sum(1 for r in recs if not is_null(r.get("ror")) and r["ror"] < 1 and significant(r.get("fisher_q")))
    higher = sum(1 for r in recs if not is_null(r.get("ror")) and r["ror"] > 1 and significant(r.get("fisher_q")))
    missing = sum(1 for r in recs if is_null(r.get("ror")))
    event = "the event"
    pts = list(getattr(study, "outcome_pts", None) or [])
    if pts:
        event += f" ({', '.join(pts[:3]).lower()}{', …' if len(pts) > 3 else ''})"
    count = (f"{lower} of {n} cohort{'s' if n != 1 else ''} show a significantly lower and {higher} a "
             f"significantly higher reporting rate (BH q < {Q_SIGNIFICANT:g})")
    if missing:
        count += f"; {missing} {'is' if missing == 1 else 'are'} not estimable"
    return Section("Summary", [
        count + ".",
        f"ROR < 1 means that {event} was reported less often among the exposed reports than among the "
        "controls of the same cohort, ROR > 1 more often; a cohort is significant when its "
        f"Benjamini–Hochberg q (over all {n} cohorts) is below {Q_SIGNIFICANT:g}. These are reporting rates "
        "in spontaneous reports, not incidences (see Limitations).",
        Bullets([_summary_sentence(r) for r in recs]) if recs else "No cohorts.",
    ])


def _results_table(results: pd.DataFrame) -> Table:
    header = ["cohort", "exposed", "exposed events", "control", "control events", "ROR",
              "95 % CI", "Haldane", "Fisher p", "BH q", "PRR"]
    rows = [[str(r["cohort"]), fmt_int(r["exposed_reports"]), fmt_int(r["exposed_events"]),
             fmt_int(r["control_reports"]), fmt_int(r["control_events"]), fmt_num(r["ror"]),
             fmt_ci(r["ror_ci_lower"], r["ror_ci_upper"]), "yes" if r["haldane_corrected"] else "no",
             fmt_p(r["fisher_p"]), fmt_p(r["fisher_q"]), fmt_num(r.get("prr"))]
            for r in results.to_dict("records")]
    return Table(header, rows)


def _results_section(results: pd.DataFrame, plot_name: str | None, plot_data: bytes | None = None) -> Section:
    sec = Section("Cohort results", [
        "a = exposed with event, b = exposed without, c = controls with event, d = controls without; "
        "ROR = (a/b)/(c/d) with exp(ln ROR ± 1.959964·SE); Haldane: 0.5 added to every cell when one "
        "is 0; – = not estimable (a whole row or column is 0). Fisher p is two-sided on the "
        "uncorrected table (p = 1 for a table with a whole row or column of 0); q is Benjamini–Hochberg over "
        "every cohort of the study.",
        _results_table(results),
    ])
    if plot_name:
        sec.blocks.append(Image(plot_name, "forest plot of ROR per cohort", data=plot_data))
    return sec


def fmt_pct(num: int, den: int) -> str:
    """``num/den`` as a percentage with 2 decimals (``–`` when ``den`` is 0)."""
    return "–" if den == 0 else f"{100 * num / den:.2f} %"


def _two_by_two_section(results: pd.DataFrame) -> Section:
    """Per cohort its 2×2 table, the event rate in each arm, the PRR with its
    CI (:func:`faerslake.stats.prr_ci`) and Yates' χ²."""
    rows = []
    for r in results.to_dict("records"):
        a, b, c, d = _cells(r)
        p = stats.prr_ci(a, b, c, d)
        _, chi2 = stats.prr_chi2(a, b, c, d)
        rows.append([str(r["cohort"]), fmt_int(a), fmt_int(b), fmt_int(c), fmt_int(d), fmt_pct(a, a + b),
                     fmt_pct(c, c + d), fmt_num(p.prr), fmt_ci(p.ci_lower, p.ci_upper),
                     "yes" if p.haldane_corrected else "no", fmt_num(chi2)])
    return Section("2×2 tables and event rates", [
        "Per cohort: a = exposed with event, b = exposed without, c = controls with event, d = controls "
        "without; event % = a/(a+b) among the exposed and c/(c+d) among the controls. PRR = "
        "(a/(a+b))/(c/(c+d)) with exp(ln PRR ± 1.959964·SE), SE = √(1/a − 1/(a+b) + 1/c − 1/(c+d)); "
        "like the ROR, 0.5 is added to every cell when one is 0 (Haldane) and – marks a whole row or column "
        "of 0 (the results table's PRR is the uncorrected `prr` column). χ² is Pearson's with Yates' "
        "correction.",
        Table(["cohort", "a", "b", "c", "d", "event % exposed", "event % control", "PRR", "PRR 95 % CI",
               "Haldane", "χ² (Yates)"], rows),
    ])


# ours against published: a difference beyond this share is flagged
PUBLISHED_TOLERANCE = 0.15


def pct_diff(ours: Any, published: Any) -> float | None:
    """(ours − published) / published as a fraction; None when either is
    missing or the published figure is 0."""
    if is_null(ours) or is_null(published) or float(published) == 0:
        return None
    return (float(ours) - float(published)) / float(published)


def _fmt_diff(d: float | None) -> str:
    return "–" if d is None else f"{100 * d:+.1f} %"


def period_warning(quarters: list[str] | None, published_period: str | None,
                   study_period: str | None = None) -> str | None:
    """A warning when the quarters the results cover differ from the published
    figures' period (None when they agree, or no published period is given).
    ``quarters`` None: not known; empty: the study covers no quarter. The
    advice follows ``study_period``: a study already limited to the published
    period lacks quarters in the warehouse, and setting its period again
    would not help."""
    if not published_period:
        return None
    wanted = quarter_range(published_period) or []
    if quarters is None:
        return (f"Warning: the quarters covered are not known, so they cannot be compared with the published "
                f"period {published_period}.")
    if not quarters:
        return (f"Warning: the results cover no quarter (none of the warehouse's quarters is in the study's "
                f"period), not the published period {published_period}.")
    ours, theirs = set(quarters), set(wanted)
    if ours == theirs:
        return None
    extra, missing = sorted(ours - theirs, key=quarter_sort_key), sorted(theirs - ours, key=quarter_sort_key)
    parts = []
    if extra:
        parts.append(f"{len(extra)} quarter{'s' if len(extra) != 1 else ''} outside it ({format_ranges(extra)})")
    if missing:
        parts.append(f"{len(missing)} of its quarters missing ({format_ranges(missing)})")
    limited = study_period is not None and (quarter_range(study_period) or []) == wanted
    advice = (f"ingest the missing quarters (the study's `period` is already {published_period})" if limited
              else f"set the study's `period` to {published_period}"
              + (" and ingest the missing quarters" if missing else ""))
    return (f"Warning: the results cover {format_ranges(sorted(ours, key=quarter_sort_key))}, not the published "
            f"period {published_period}: {' and '.join(parts)}. Counts are not expected to agree; {advice} to "
            "compare like with like.")


def _published_section(results: pd.DataFrame, study: Any, quarters: list[str] | None) -> Section:
    sec = Section("Published figures beside ours")
    published: dict[str, dict[str, Any]] = getattr(study, "published", {}) or {}
    if not published:
        sec.blocks.append(f"The study file has no `published` section: {NOT_AVAILABLE}.")
        return sec
    source = getattr(study, "published_source", None)
    period = getattr(study, "published_period", None)
    sec.blocks.append(
        "Published: the figures in the study file's `published` section"
        + (f", from {source}" if source else " (the study file names no `published_source`)")
        + (f", covering {period}." if period else "; the study file gives no `published_period`."))
    warning = period_warning(quarters, period, getattr(study, "period", None))
    if warning:
        sec.blocks.append(warning)
    sec.blocks.append(f"Δ % = (ours − published) / published; flag: a difference beyond "
                      f"±{100 * PUBLISHED_TOLERANCE:g} %.")
    header = ["cohort", "exposed (ours)", "exposed (published)", "exposed Δ %", "control (ours)",
              "control (published)", "control Δ %", "ROR (ours)", "ROR (published)", "ROR Δ %", "flag", "note"]
    rows = []
    ours = {r["cohort"]: r for r in results.to_dict("records")}
    for cohort in list(ours) + [c for c in published if c not in ours]:
        r = ours.get(cohort, {})
        p = published.get(cohort) or {}
        pub_ror = fmt_num(p.get("ror")) if "ror" in p else "–"
        if "ror_ci_lower" in p and "ror_ci_upper" in p:
            pub_ror += f" ({fmt_ci(p['ror_ci_lower'], p['ror_ci_upper'])})"
        our_ror = fmt_num(r.get("ror"))
        if r and not is_null(r.get("ror")):
            our_ror += f" ({fmt_ci(r['ror_ci_lower'], r['ror_ci_upper'])})"
        diffs = {"exposed": pct_diff(r.get("exposed_reports"), p.get("exposed_reports")),
                 "control": pct_diff(r.get("control_reports"), p.get("control_reports")),
                 "ROR": pct_diff(r.get("ror"), p.get("ror"))}
        flagged = [k for k, d in diffs.items() if d is not None and abs(d) > PUBLISHED_TOLERANCE]
        rows.append([str(cohort), fmt_int(r.get("exposed_reports")), fmt_int(p.get("exposed_reports")),
                     _fmt_diff(diffs["exposed"]), fmt_int(r.get("control_reports")),
                     fmt_int(p.get("control_reports")), _fmt_diff(diffs["control"]), our_ror, pub_ror,
                     _fmt_diff(diffs["ROR"]), (f"beyond ±{100 * PUBLISHED_TOLERANCE:g} %: " + ", ".join(flagged)) if flagged else "",
                     str(p.get("note", ""))])
    sec.blocks.append(Table(header, rows))
    return sec


def _data_section(ctx: ReportContext) -> Section:
    sec = Section("Data")
    quarters = ctx.quarters
    qt = ctx.quarters_text or (", ".join(quarters) if quarters else None)
    sec.blocks.append(f"Quarters covered: {qt or NOT_AVAILABLE}"
                      + (f" ({len(quarters)} quarter{'s' if len(quarters) != 1 else ''})." if quarters else "."))
    failed = ctx.failed_quarters or {}
    if failed:
        sec.blocks.append(f"Warning: {len(failed)} quarter{'s' if len(failed) != 1 else ''} could not be ingested "
                          "in this run and are missing from every count below (also in "
                          "`ingest_failures.csv`):")
        sec.blocks.append(Table(["quarter", "reason"], [[q, r] for q, r in sorted(failed.items())]))
    audit = ctx.audit_totals
    if audit:
        header = ["table files", "quarters", "lines read", "rows loaded", "rows repaired",
                  "lines repaired", "rows quarantined"]
        keys = ["table_files", "quarters", "lines_read", "rows_loaded", "rows_repaired",
                "lines_repaired", "rows_quarantined"]
        sec.blocks.append("Ingest audit totals (`bronze/ingest_audit`):")
        sec.blocks.append(Table(header, [[fmt_int(audit.get(k)) for k in keys]]))
    else:
        sec.blocks.append(f"Ingest audit totals: {NOT_AVAILABLE}.")
    dedup = ctx.dedup_summary
    if dedup is not None and len(dedup):
        total = dedup[dedup["scope"].astype(str) == "all"] if "scope" in dedup.columns else dedup
        sec.blocks.append("De-duplication (`silver/dedup_summary`; spec §2; per quarter in the Appendix):")
        sec.blocks.append(_dedup_table(total if len(total) else dedup))
    else:
        sec.blocks.append(f"De-duplication summary: {NOT_AVAILABLE}.")
    return sec


def _dedup_table(dedup: pd.DataFrame) -> Table:
    cols = [c for c in ["scope", "reports_read", "removed_deleted", "removed_older_versions",
                        "removed_strict_duplicates", "reports_kept"] if c in dedup.columns]
    return Table([c.replace("_", " ") for c in cols],
                 [[str(r[c]) if c == "scope" else fmt_int(r[c]) for c in cols] for r in dedup.to_dict("records")])


def _appendix_section(ctx: ReportContext) -> Section:
    """The long tables: de-duplication per quarter and the source files with their SHA-256."""
    sec = Section("Appendix")
    dedup = ctx.dedup_summary
    per_quarter = None
    if dedup is not None and len(dedup) and "scope" in dedup.columns:
        per_quarter = dedup[dedup["scope"].astype(str) != "all"]
    if per_quarter is not None and len(per_quarter):
        sec.blocks.append("De-duplication per quarter (`silver/dedup_summary`):")
        sec.blocks.append(_dedup_table(per_quarter))
    else:
        sec.blocks.append(f"De-duplication per quarter: {NOT_AVAILABLE}.")
    manifest = ctx.source_manifest
    if manifest is not None and len(manifest):
        cols = [c for c in ["quarter", "source", "sha256", "size_bytes"] if c in manifest.columns]
        m = manifest.copy()
        if "quarter" in m.columns:
            m = m.sort_values([c for c in ("quarter", "source") if c in m.columns])
        sec.blocks.append("Source files (`bronze/source_manifest`):")
        sec.blocks.append(Table(cols, [[fmt_int(r[c]) if c == "size_bytes" else str(r[c]) for c in cols]
                                       for r in m.to_dict("records")]))
    else:
        sec.blocks.append(f"Source manifest SHA-256s: {NOT_AVAILABLE}.")
    return sec


STRICT_TEXT = {True: "on", False: "off", None: "not known"}


def _exposure_line(study: Any) -> str:
    """The exposure's tokens, exclusion tokens, ingredients, matcher and role codes."""
    expo = study.exposure
    ingredients = list(getattr(expo, "ingredients", []) or [])
    matcher = getattr(expo, "matcher", None) or "tokens"
    return (f"Exposure tokens: {', '.join(expo.tokens) or 'none'}; exclusion tokens: "
            f"{', '.join(expo.exclude_tokens) or 'none'}; "
            + (f"ingredients: {', '.join(ingredients)}; " if ingredients else "")
            + f"matched by {_MATCHER_TEXT.get(matcher, matcher)}; role codes: "
            f"{', '.join(study.exposure_role_codes) if study.exposure_role_codes else 'any'}.")


def _matching_text(matcher: str) -> str:
    """How a drug row becomes an exposure drug row under ``matcher``."""
    tokens = ("its normalised drugname or prod_ai contains an exposure token as a substring and no exclusion "
              "token (substring matching on the reported names, not a mapping to ingredients)")
    ingredients = ("one of its active ingredients (`silver/drug_ingredients`) equals a listed ingredient")
    text = {"tokens": tokens, "ingredients": ingredients}.get(matcher, f"{tokens}, or {ingredients}")
    return f"A drug row is an exposure drug row when {text}."


def _methods_section(ctx: ReportContext, results: pd.DataFrame) -> Section:
    """What a reviewer checks line by line: source and period, de-duplication,
    exposure, cohorts, event, exclusions, statistics, software."""
    sec = Section("Methods")
    study = ctx.study
    quarters = ctx.quarters or []
    qt = ctx.quarters_text or (", ".join(quarters) if quarters else None)
    period = getattr(study, "period", None)
    sec.blocks.append(
        "Source: the FDA Adverse Event Reporting System quarterly ASCII extracts (legacy AERS to 2012Q3, FAERS "
        f"from 2012Q4); quarters covered: {qt or NOT_AVAILABLE}"
        + (f" ({len(quarters)} quarter{'s' if len(quarters) != 1 else ''})." if quarters else "."))
    sec.blocks.append("De-duplication (docs/method.md §3), in this order:")
    sec.blocks.append(Bullets([
        "a report is one DEMO row of one quarter; its DRUG, INDI and REAC rows are those of the same quarter "
        "with the same report key (`primaryid`, legacy `ISR`);",
        "a DEMO row whose report key or case id is not a whole number, or whose report key two case ids share in "
        "one quarter, is rejected (its child rows cannot be attributed);",
        "every report whose case id (`caseid`, legacy `CASE`) is on any quarter's deleted-case list is dropped;",
        "one report per case id is kept: the first by era (FAERS before legacy), `caseversion`, `fda_dt`, "
        "quarter, report key, then source file and line (two copies of one row), all descending;",
        "child rows identical in every column are written once;",
        f"strict de-duplication: {STRICT_TEXT.get(ctx.strict_dedup, 'not known')} (the optional pass that also "
        "merges reports of different cases agreeing on event date, age, sex, country, drug names and PTs).",
    ]))
    if study is None:
        sec.blocks.append(f"Study definition: {NOT_AVAILABLE}.")
    else:
        ex = study.exclusions
        matcher = getattr(study.exposure, "matcher", None) or "tokens"
        if study.description:
            sec.blocks.append(f"Question: {' '.join(study.description.split())}")
        sec.blocks += [
            _exposure_line(study),
            _matching_text(matcher),
            "Cohorts: a report is exposed in a cohort when one of its exposure drug rows has one of the "
            "cohort's indication PTs, and a control when any of its drug rows has one and none of its drug rows "
            "is an exposure drug; a report may be in several cohorts.",
            Table(["cohort", "indication PTs"], [[c.name, ", ".join(c.indications)] for c in study.cohorts]),
            f"Event (any REAC PT): {', '.join(study.outcome_pts)}.",
            "Exclusions (exposed and controls alike): " + (
                ("reports with an outcome PT as indication; " if ex.outcome_indications else "")
                + (f"reports with a drug matching any of these {len(ex.drug_tokens)} tokens: "
                   f"{', '.join(ex.drug_tokens)}" if ex.drug_tokens else "no drug tokens")
                if ex.enabled else "off") + ".",
            f"Period: {period or 'all quarters in the warehouse'}.",
        ]
    n = len(results)
    strata = NOT_AVAILABLE
    mh = ctx.mantel_haenszel
    if mh is not None and len(mh) and "strata" in mh.columns:
        strata = str(mh["strata"].iloc[0])
    sec.blocks.append("Statistics:")
    sec.blocks.append(Bullets([
        "ROR = (a/b)/(c/d) with 95 % CI exp(ln ROR ± 1.959964·SE), SE = √(1/a + 1/b + 1/c + 1/d); when a cell "
        "is 0, 0.5 is added to all four (Haldane); not estimable when a whole row or column is 0;",
        "Fisher's exact test, two-sided, on the uncorrected table (p = 1 when not estimable);",
        f"Benjamini–Hochberg q over every cohort of the study ({n}); significant: q < {Q_SIGNIFICANT:g};",
        "PRR = (a/(a+b))/(c/(c+d)) with the log-normal 95 % CI, SE = √(1/a − 1/(a+b) + 1/c − 1/(c+d)), "
        "Haldane as for the ROR; Pearson's χ² with Yates' correction;",
        f"Mantel–Haenszel pooled ROR over strata ({strata}), Robins–Breslow–Greenland 95 % CI (a sensitivity "
        "analysis).",
    ]))
    soft = dict(ctx.software or {})
    soft.setdefault("faerslake", ctx.faerslake_version)
    sec.blocks.append("Software: " + "; ".join(f"{k} {v}" for k, v in soft.items()) + ".")
    return sec


def _limitations_section(study: Any) -> Section:
    """What these numbers cannot say (spontaneous reports), and the limits of
    this pipeline's matching; the drug-matching line follows the study's matcher."""
    matcher = getattr(getattr(study, "exposure", None), "matcher", None) or "tokens"
    if matcher == "ingredients":
        matching = ("Drug matching: the exposure is found by active ingredient (`silver/drug_ingredients`); a "
                    "drug row whose name could not be resolved to an ingredient is not counted as exposed. The "
                    "exclusion drug tokens are still substrings of the reported names (normalised drugname / "
                    "prod_ai), so a misspelt or unlisted brand of an excluded drug is missed.")
    else:
        matching = ("Drug matching: the exposure and the exclusions are found by substrings of the reported "
                    "drug names (normalised drugname / prod_ai), not by a mapping to ingredients: a misspelt "
                    "or unlisted brand is missed, and a token can match an unrelated name (the exclusion "
                    "tokens remove the known ones).")
    return Section("Limitations", [Bullets([
        "Spontaneous reports: FAERS holds reports, not patients followed over time. There is no denominator "
        "of people exposed, so no incidence or risk can be computed, and a disproportion is a signal, not "
        "evidence of causality.",
        "Under-reporting and stimulated reporting: most adverse events are never reported, and reporting "
        "rises with publicity, litigation and new approvals (notoriety bias), differently for each drug.",
        "Indication bias (confounding by indication): the cohort design compares reports for the same "
        "indication, which controls it only partly; severity, co-morbidity and co-medication still differ "
        "between the exposed and the controls.",
        "Residual duplicates: de-duplication by case id (and the optional strict pass) cannot merge the same "
        "patient reported under different case ids by different reporters.",
        matching,
        "MedDRA version drift: PTs are matched as text, and MedDRA renames, merges and moves terms between "
        "versions over the years covered; FAERS reports carry the version of their own quarter.",
        "MedDRA is licensed by ICH/MSSO; this report lists PT names as written in the public FAERS files.",
    ])])


_MATCHER_TEXT = {"tokens": "tokens", "ingredients": "ingredients",
                 "either": "tokens or ingredients (either)"}
SENSITIVITY_TITLE = "Exposure matched by tokens and by ingredients"


def _sensitivity_section(ctx: ReportContext) -> Section | None:
    """Per cohort, the counts and ROR under the token and the ingredient
    matcher side by side (``matcher_sensitivity``); None when the context has
    neither the table nor a reason it was not computed (a study that names
    only one of them)."""
    expo = getattr(ctx.study, "exposure", None)
    sens = ctx.matcher_sensitivity
    if sens is None and not ctx.matcher_sensitivity_note:
        return None
    sec = Section(SENSITIVITY_TITLE)
    if sens is None or not len(sens):
        sec.blocks.append(f"Matcher sensitivity: {ctx.matcher_sensitivity_note or NOT_AVAILABLE}.")
        return sec
    matcher = getattr(expo, "matcher", None) or "tokens"
    sec.blocks.append(
        "The same cohorts, exclusions, event and period with the exposure found by the drug-name tokens alone "
        "(substrings of drugname / prod_ai, less the exclusion tokens) and by the active ingredients alone "
        "(`silver/drug_ingredients`, exact names); the results above use "
        f"{_MATCHER_TEXT.get(matcher, matcher)}. 'Only' counts the reports exposed under one matcher and not the "
        "other (`matcher_sensitivity.csv` also has the either matcher).")
    by = {(r["cohort"], r["matcher"]): r for r in sens.to_dict("records")}
    cohorts = list(dict.fromkeys(sens["cohort"]))

    def ror(r: Mapping[Any, Any] | None) -> str:
        if not r or is_null(r.get("ror")):
            return "–"
        return f"{fmt_num(r['ror'])} ({fmt_ci(r['ror_ci_lower'], r['ror_ci_upper'])})"

    header = ["cohort"]
    for what in ("exposed", "exposed events", "control", "control events"):
        header += [f"{what}: tokens", f"{what}: ingredients"]
    header += ["ROR: tokens", "ROR: ingredients", "only tokens", "only ingredients"]
    rows = []
    for c in cohorts:
        t, i = by.get((c, "tokens")), by.get((c, "ingredients"))
        row = [str(c)]
        for k in ("exposed_reports", "exposed_events", "control_reports", "control_events"):
            row += [fmt_int((t or {}).get(k)), fmt_int((i or {}).get(k))]
        row += [ror(t), ror(i), fmt_int((t or {}).get("exposed_only")), fmt_int((i or {}).get("exposed_only"))]
        rows.append(row)
    sec.blocks.append(Table(header, rows))
    return sec


def _provenance_section(ctx: ReportContext) -> Section:
    sec = Section("Provenance")
    src = getattr(ctx.study, "source_path", None)
    sha = getattr(ctx.study, "sha256", None)
    sec.blocks.append(f"Study file: `{src or NOT_AVAILABLE}`, sha256 `{sha or NOT_AVAILABLE}`.")
    sec.blocks.append(f"Warehouse: `{ctx.warehouse or NOT_AVAILABLE}`; faerslake "
                      f"{ctx.faerslake_version}; generated {ctx.generated_at}.")
    versions = ctx.table_versions or {}
    if versions:
        sec.blocks.append("Delta table versions (read the same data again with "
                          "`spark.read.format(\"delta\").option(\"versionAsOf\", N).load(WH/<table>)`):")
        sec.blocks.append(Table(["table", "version"],
                                [[k, NOT_AVAILABLE if v is None else str(v)] for k, v in versions.items()]))
    else:
        sec.blocks.append(f"Delta table versions: {NOT_AVAILABLE}.")
    sec.blocks.append("Source files and their SHA-256: in the Appendix.")
    return sec


def _mh_section(mh: pd.DataFrame | None) -> Section:
    sec = Section("Mantel–Haenszel pooled ROR (extra)")
    if mh is None or not len(mh):
        sec.blocks.append(f"Mantel–Haenszel pooled ROR: {NOT_AVAILABLE}.")
        return sec
    sec.blocks.append(f"Strata: {mh['strata'].iloc[0]}; Robins–Breslow–Greenland 95 % CI; "
                      "strata with fewer than 2 reports are skipped.")
    sec.blocks.append(Table(
        ["cohort", "strata used", "crude ROR", "MH ROR", "95 % CI"],
        [[str(r["cohort"]), fmt_int(r["strata_used"]), fmt_num(r["crude_ror"]), fmt_num(r["mh_ror"]),
          fmt_ci(r["mh_ci_lower"], r["mh_ci_upper"])] for r in mh.to_dict("records")],
    ))
    return sec


def build_sections(results: pd.DataFrame, ctx: ReportContext | Mapping[str, Any],
                   plot_name: str | None, plot_data: bytes | None = None) -> list[Section]:
    """The report in order: summary, results, 2×2 tables, published figures,
    MH, the matchers side by side (a study naming tokens and ingredients), the
    analyst sections, data, methods, limitations, provenance, appendix.
    ``plot_data``: the forest plot's PNG bytes, embedded in the HTML page."""
    ctx = ReportContext.of(ctx)
    sensitivity = _sensitivity_section(ctx)
    analyst = [s for s in (trend_section(ctx), demographics_section(ctx), terms_section(ctx),
                           cases_section(ctx)) if s is not None]
    return [_summary_section(results, ctx.study), _results_section(results, plot_name, plot_data),
            _two_by_two_section(results),
            _published_section(results, ctx.study, ctx.quarters),
            _mh_section(ctx.mantel_haenszel), *([sensitivity] if sensitivity else []), *analyst,
            _data_section(ctx), _methods_section(ctx, results), _limitations_section(ctx.study),
            _provenance_section(ctx), _appendix_section(ctx)]
