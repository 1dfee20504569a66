"""Gold extra (not spec §5): the ROR pooled over strata of sex, age band and era.

The strata counts are a few hundred rows at most; they come to the driver and
:func:`faerslake.stats.mantel_haenszel` pools them per cohort.
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


def with_strata(members: DataFrame, reports: DataFrame) -> DataFrame:
    """Members with the MH strata: sex (M/F/U), age band, era."""
    return members.join(
        reports.select(
            *KEYS,
            sex_stratum().alias("sex_stratum"),
            age_band().alias("age_band"),
            F.coalesce(F.col("era"), F.lit("unknown")).alias("era_stratum"),
        ),
        KEYS,
        "left",
    )


def strata_counts(members: DataFrame, reports: DataFrame) -> list[Row]:
    """Reports and events per (cohort, sex, age band, era, exposed): a few
    hundred rows at most, collected."""
    return (
        with_strata(members, reports)
        .groupBy("cohort", "sex_stratum", "age_band", "era_stratum", "exposed")
        .agg(F.count(F.lit(1)).alias("n"), F.sum(F.col("event").cast("long")).alias("events"))
        .collect()
    )


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
