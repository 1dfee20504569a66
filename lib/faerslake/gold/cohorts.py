"""Gold, study-spec §3: which reports are exposed or controls in which cohort.

Pure transforms over the silver tables (``DataFrame -> DataFrame``, column
helpers return a :class:`Column`), testable without I/O. The rule a user asks
about most, "what is an exposure drug", is :func:`is_exposure_drug`.
"""

from __future__ import annotations

from functools import reduce
from operator import or_

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from faerslake.config import DrugMatch, Study
from faerslake.contracts import GOLD, SILVER, columns, require
from faerslake.normalise import clean_code
from faerslake.quarters import quarter_range

KEYS = ["report_key", "quarter"]

# The columns of the silver contract (faerslake.contracts.SILVER) this stage reads.
SILVER_COLUMNS: dict[str, list[str]] = {
    "reports": ["report_key", "quarter", "era", "sex", "age_years"],
    "drugs": ["report_key", "quarter", "drug_seq", "role_cod", "drugname_norm", "prod_ai_norm"],
    "indications": ["report_key", "quarter", "drug_seq", "indi_pt_norm"],
    "reactions": ["report_key", "quarter", "pt_norm"],
}

MEMBER_COLUMNS = columns(GOLD["cohort_members"])


def _col(c: str | Column) -> Column:
    return F.col(c) if isinstance(c, str) else c


def contains_any(cols: list[Column], tokens: list[str]) -> Column:
    """Column: any of ``cols`` contains any token as a substring (nulls never match).

    An OR of ``contains`` over the short literal lists: no UDF, no regex to
    escape, and Spark's codegen keeps it a tight loop.
    """
    if not tokens:
        return F.lit(False)
    safe = [F.coalesce(c, F.lit("")) for c in cols]
    return reduce(or_, [c.contains(t) for c in safe for t in tokens])


def drug_matches(match: DrugMatch, drugname_norm: str | Column = "drugname_norm",
                 prod_ai_norm: str | Column = "prod_ai_norm") -> Column:
    """Column: the token half of :func:`is_exposure_drug` (spec §1): normalised
    drugname or prod_ai contains a token, and neither contains an exclusion token."""
    cols = [_col(drugname_norm), _col(prod_ai_norm)]
    hit = contains_any(cols, match.tokens)
    if match.exclude_tokens:
        hit = hit & ~contains_any(cols, match.exclude_tokens)
    return hit


def is_exposure_drug(study: Study, drugname_norm: str | Column = "drugname_norm",
                     prod_ai_norm: str | Column = "prod_ai_norm",
                     role_cod: str | Column = "role_cod") -> Column:
    """Column: the drug row is an exposure drug row of ``study``.

    Its drugname or prod_ai matches the exposure tokens (:func:`drug_matches`)
    and, when the study sets ``exposure_role_codes``, its role code is one of
    them (a row without a role code then never counts).
    """
    hit = drug_matches(study.exposure, drugname_norm, prod_ai_norm)
    if study.exposure_role_codes is not None:
        hit = hit & F.coalesce(clean_code(role_cod).isin(list(study.exposure_role_codes)), F.lit(False))
    return hit


def require_columns(df: DataFrame, table: str, columns: list[str]) -> None:
    """Raise :class:`InputError` naming the silver columns ``df`` lacks (or has
    of another type than the silver contract)."""
    require(df, SILVER[table], f"silver table '{table}'", needed=columns)


def in_period(df: DataFrame, study: Study) -> DataFrame:
    """Rows of the quarters in ``study.period`` (all rows when it is unset)."""
    period = quarter_range(study.period)
    return df if period is None else df.where(F.col("quarter").isin(period))


def cohort_terms(spark: SparkSession, study: Study) -> DataFrame:
    """Small (cohort, pt) table of the study's cohort indication PTs."""
    rows = [(c.name, pt) for c in study.cohorts for pt in dict.fromkeys(c.indications)]
    return spark.createDataFrame(rows, "cohort STRING, pt STRING")


def flag_drugs(drugs: DataFrame, study: Study) -> DataFrame:
    """``report_key, quarter, drug_seq, is_exposure, is_excluded_drug`` per drug row."""
    excl = study.exclusions
    is_excluded_drug = (contains_any([F.col("drugname_norm"), F.col("prod_ai_norm")], excl.drug_tokens)
                        if excl.enabled else F.lit(False))
    return drugs.select(
        *KEYS, "drug_seq",
        is_exposure_drug(study).alias("is_exposure"),
        is_excluded_drug.alias("is_excluded_drug"),
    )


def drug_cohorts(spark: SparkSession, flagged: DataFrame, indications: DataFrame,
                 study: Study) -> DataFrame:
    """``report_key, quarter, cohort, exposed``: the cohorts a report's drug rows
    are indicated for (INDI rows of the same ``drug_seq``), exposed when one of
    those rows is an exposure drug row."""
    indi_cohort = (
        indications.join(F.broadcast(cohort_terms(spark, study)),
                         F.col("indi_pt_norm") == F.col("pt"))
        .select(*KEYS, "drug_seq", "cohort")
    )
    # no distinct needed: duplicate INDI rows collapse in the groupBy below
    return (
        flagged.join(indi_cohort, [*KEYS, "drug_seq"])
        .groupBy(*KEYS, "cohort")
        .agg(F.max(F.col("is_exposure")).alias("exposed"))
    )


def without_excluded(members: DataFrame, flagged: DataFrame, indications: DataFrame,
                     study: Study) -> DataFrame:
    """Drop reports with an exclusion drug or an outcome PT as indication (when enabled)."""
    excl = study.exclusions
    if not excl.enabled:
        return members
    # anti joins need no distinct: one shuffle less per rule
    if excl.drug_tokens:
        members = members.join(flagged.where("is_excluded_drug").select(*KEYS), KEYS, "left_anti")
    if excl.outcome_indications:
        outcome_pts = list(dict.fromkeys(study.outcome_pts))
        members = members.join(
            indications.where(F.col("indi_pt_norm").isin(outcome_pts)).select(*KEYS), KEYS, "left_anti")
    return members


def cohort_members(spark: SparkSession, reports: DataFrame, drugs: DataFrame,
                   indications: DataFrame, reactions: DataFrame, study: Study) -> DataFrame:
    """Spec §3: one row per (report, cohort) where the report is exposed or a
    control, after exclusions: ``report_key, quarter, cohort, exposed, event``.

    - a drug row's indications are the INDI rows of its report with the same
      ``drug_seq``;
    - exposed in k: an exposure drug row (:func:`is_exposure_drug`) has an
      indication of k;
    - control in k: a drug row has an indication of k and no drug row of the
      report is an exposure drug row (so with a role filter, a report whose
      only matching row has another role can be a control);
    - excluded (when enabled): an INDI PT of the report is an outcome PT, or a
      drug row matches the exclusion tokens;
    - event: a REAC PT of the report is an outcome PT;
    - ``study.period`` keeps only reports of those quarters.
    """
    for name, df in (("reports", reports), ("drugs", drugs),
                     ("indications", indications), ("reactions", reactions)):
        require_columns(df, name, [c for c in SILVER_COLUMNS[name] if name != "reports" or c in KEYS])
    reports, drugs, indications, reactions = (
        in_period(df, study) for df in (reports, drugs, indications, reactions))
    outcome_pts = list(dict.fromkeys(study.outcome_pts))

    flagged = flag_drugs(drugs, study)
    has_exposure = (flagged.where("is_exposure").select(*KEYS).distinct()
                    .withColumn("has_exposure", F.lit(True)))
    events = (reactions.where(F.col("pt_norm").isin(outcome_pts)).select(*KEYS).distinct()
              .withColumn("event", F.lit(True)))

    members = drug_cohorts(spark, flagged, indications, study).join(reports.select(*KEYS), KEYS, "left_semi")
    members = without_excluded(members, flagged, indications, study)
    return (
        members.join(has_exposure, KEYS, "left")
        .where(F.col("exposed") | F.col("has_exposure").isNull())
        .join(events, KEYS, "left")
        .select(
            F.col("report_key"), F.col("quarter"), F.col("cohort"),
            F.col("exposed").cast("boolean").alias("exposed"),
            F.coalesce(F.col("event"), F.lit(False)).alias("event"),
        )
    )
