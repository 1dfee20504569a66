"""Gold extra (not spec §5): the ROR pooled over strata of sex, age band and
era, and the demographics of exposed and controls (issue #18's "Table 1").

The strata counts (sex × age band × era × reporter type per cohort and
exposed) are a few thousand rows at most; they come to the driver once.
:func:`faerslake.stats.mantel_haenszel` pools them per cohort over sex × age
band × era (summed over reporter type), and :func:`demographics_table` shows
each variable's distribution, with no Spark job of its own.
"""

from __future__ import annotations

import pandas as pd
from pyspark.sql import Column, DataFrame, Row
from pyspark.sql import functions as F

from faerslake import stats
from faerslake.config import Study
from faerslake.gold.cohorts import KEYS
from faerslake.normalise import clean_code

MH_COLUMNS = ["study", "cohort", "strata", "strata_used", "crude_ror", "mh_ror",
              "mh_ci_lower", "mh_ci_upper"]
MH_STRATA = "sex, age band, era"
# (upper bound exclusive, label); the last band is open
AGE_BANDS = [(18, "0-17"), (45, "18-44"), (65, "45-64"), (None, "65+")]
# demographics_table: its columns, and the variables in their row order
DEMOGRAPHICS_COLUMNS = ["study", "cohort", "variable", "level", "exposed_n", "exposed_pct",
                        "control_n", "control_pct"]
DEMOGRAPHIC_VARIABLES = {"sex": "sex_stratum", "age_band": "age_band", "reporter_type": "reporter_type",
                         "era": "era_stratum"}
# levels always listed, in this order (others follow sorted, "unknown" last)
_FIXED_LEVELS = {"sex": ["F", "M", "U"], "age_band": [label for _, label in AGE_BANDS] + ["unknown"],
                 "era": ["legacy", "faers"]}


def sex_stratum() -> Column:
    """Column: the report's sex as a stratum, M, F or U (anything else)."""
    sex = clean_code("sex")
    return F.when(sex.isin("M", "F"), sex).otherwise(F.lit("U"))


def age_band() -> Column:
    """Column: the report's age band (:data:`AGE_BANDS`, ``unknown`` when age
    is missing or negative)."""
    age = F.col("age_years")
    band = F.when(age.isNull() | (age < 0), F.lit("unknown"))
    for upper, label in AGE_BANDS:
        band = band.otherwise(F.lit(label)) if upper is None else band.when(age < upper, F.lit(label))
    return band


def reporter_type(reports: DataFrame | None = None) -> Column:
    """Column: the report's reporter type, silver's ``occp_cod`` (MD, PH, OT,
    LW, CN, HP, ...; trimmed, upper-case), ``unknown`` when missing. A
    reports frame without the column (a hand-made one with only the MH
    strata) gives ``unknown`` for every report."""
    if reports is not None and "occp_cod" not in reports.columns:
        return F.lit("unknown")
    return F.coalesce(clean_code("occp_cod"), F.lit("unknown"))


def with_strata(members: DataFrame, reports: DataFrame) -> DataFrame:
    """Members with the MH strata: sex (M/F/U), age band, era; and the
    reporter type (:func:`reporter_type`), shown but not stratified on. A
    member without its report (never, on a pinned silver) gets nulls."""
    return members.join(
        reports.select(
            *KEYS,
            sex_stratum().alias("sex_stratum"),
            age_band().alias("age_band"),
            F.coalesce(F.col("era"), F.lit("unknown")).alias("era_stratum"),
            reporter_type(reports).alias("reporter_type"),
        ),
        KEYS,
        "left",
    )


def strata_counts(members: DataFrame, reports: DataFrame) -> list[Row]:
    """Reports and events per (cohort, sex, age band, era, reporter type,
    exposed): a few thousand rows at most, collected."""
    return (
        with_strata(members, reports)
        .groupBy("cohort", "sex_stratum", "age_band", "era_stratum", "reporter_type", "exposed")
        .agg(F.count(F.lit(1)).alias("n"), F.sum(F.col("event").cast("long")).alias("events"))
        .collect()
    )


def _levels(variable: str, seen: set[str]) -> list[str]:
    fixed = _FIXED_LEVELS.get(variable, [])
    rest = sorted(v for v in seen if v not in fixed and v != "unknown")
    return fixed + rest + (["unknown"] if "unknown" in seen and "unknown" not in fixed else [])


def _pct(n: int, total: int) -> float | None:
    return round(100.0 * n / total, 1) if total else None


def demographics_table(rows: list[Row], study: Study) -> pd.DataFrame:
    """Exposed against controls per cohort (:data:`DEMOGRAPHICS_COLUMNS`), from
    :func:`strata_counts` rows: per cohort in study order, per variable (sex,
    age band, reporter type, era: :data:`DEMOGRAPHIC_VARIABLES`), per level,
    the exposed and control reports and their share of the cohort's exposed
    (control) reports in % (one decimal; empty when the group has none).

    Every cohort lists the same levels: sex F, M, U; the age bands and
    ``unknown``; the eras legacy and faers; then any other level some cohort
    has, sorted, ``unknown`` last. Per cohort and variable the counts sum to
    its exposed and control reports."""
    counts: dict[tuple[str, str, str, bool], int] = {}
    seen: dict[str, set[str]] = {v: set() for v in DEMOGRAPHIC_VARIABLES}
    for r in rows:
        for var, col in DEMOGRAPHIC_VARIABLES.items():
            level = "unknown" if r[col] is None else str(r[col])
            seen[var].add(level)
            key = (r["cohort"], var, level, bool(r["exposed"]))
            counts[key] = counts.get(key, 0) + int(r["n"])
    out = []
    for c in study.cohorts:
        for var in DEMOGRAPHIC_VARIABLES:
            levels = _levels(var, seen[var])
            exp = [counts.get((c.name, var, lv, True), 0) for lv in levels]
            ctl = [counts.get((c.name, var, lv, False), 0) for lv in levels]
            for lv, e, k in zip(levels, exp, ctl, strict=True):
                out.append({"study": study.name, "cohort": c.name, "variable": var, "level": lv,
                            "exposed_n": e, "exposed_pct": _pct(e, sum(exp)),
                            "control_n": k, "control_pct": _pct(k, sum(ctl))})
    df = pd.DataFrame(out, columns=DEMOGRAPHICS_COLUMNS)
    for col in ["exposed_pct", "control_pct"]:
        df[col] = df[col].astype("float64")
    for col in ["exposed_n", "control_n"]:
        df[col] = df[col].astype("int64")
    return df


def _strata_tables(rows: list[Row]) -> dict[str, dict[tuple, list[int]]]:
    """cohort -> stratum -> [a, b, c, d] from :func:`strata_counts` rows."""
    cells: dict[str, dict[tuple, list[int]]] = {}
    for r in rows:
        key = (r["sex_stratum"], r["age_band"], r["era_stratum"])
        t = cells.setdefault(r["cohort"], {}).setdefault(key, [0, 0, 0, 0])
        n, e = int(r["n"]), int(r["events"] or 0)
        if r["exposed"]:
            t[0] += e
            t[1] += n - e
        else:
            t[2] += e
            t[3] += n - e
    return cells


def mantel_haenszel_table(members: DataFrame, reports: DataFrame, study: Study, results: pd.DataFrame,
                          rows: list[Row] | None = None) -> pd.DataFrame:
    """Pooled ROR per cohort over sex × age band × era strata (tiny collect;
    ``rows``: :func:`strata_counts` already collected)."""
    if rows is None:
        rows = strata_counts(members, reports)
    cells = _strata_tables(rows)
    crude = dict(zip(results["cohort"], results["ror"], strict=True))
    out = []
    for c in study.cohorts:
        pooled = stats.mantel_haenszel([(v[0], v[1], v[2], v[3]) for v in cells.get(c.name, {}).values()])
        out.append({"study": study.name, "cohort": c.name, "strata": MH_STRATA,
                    "strata_used": pooled.strata_used, "crude_ror": crude.get(c.name),
                    "mh_ror": pooled.ror, "mh_ci_lower": pooled.ci_lower, "mh_ci_upper": pooled.ci_upper})
    df = pd.DataFrame(out, columns=MH_COLUMNS)
    for col in ["crude_ror", "mh_ror", "mh_ci_lower", "mh_ci_upper"]:
        df[col] = df[col].astype("float64")
    return df
