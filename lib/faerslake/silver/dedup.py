"""Silver de-duplication (study-spec §2): which DEMO rows are reports, and
which report of a case is kept.

1. a report is one DEMO row of one quarter; child rows belong to it through
   (report key, quarter); child rows without a DEMO row are not used;
2. reports whose caseid is in the distinct union of all deleted-case lists
   are dropped;
3. one report per caseid is kept: :func:`keep_order`;
4. the kept reports with their own quarter's child rows are the analysis set.

Decisions the spec leaves open (documented and tested):

- A DEMO row whose report key or caseid is not a whole number (``"61.0"`` is
  accepted as 61), or whose report key occurs in more than one DEMO row of
  its quarter with *different* caseids (its child rows cannot be attributed),
  is not a report that can be de-duplicated: it gets status ``rejected`` with
  a reason in ``silver/report_status``, is not counted in ``reports_read``
  (like a quarantined row) and is counted in the extra ``dedup_summary``
  column ``rejected_invalid``; so bronze DEMO rows = ``reports_read`` +
  ``rejected_invalid`` and ``reports_read`` = ``removed_deleted`` +
  ``removed_older_versions`` + ``removed_strict_duplicates`` + ``reports_kept``.
- Two copies of the same DEMO row (same quarter, report key and caseid) are
  one case's two candidates: one is kept (last source_file / line_number
  wins the final tie) and the other counts as an older version.
- Every DEMO row's fate is in ``silver/report_status`` (quarter, report key and
  caseid as written, source_file, line_number, status, reason), so no report
  disappears without a trace.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from faerslake.contracts import SILVER, columns
from faerslake.errors import FaerslakeError
from faerslake.normalise import (
    age_years,
    clean_code,
    country_iso2,
    date_text,
    plausible_date,
    quarter_order,
    whole_number,
)
from faerslake.quarters import scope_sort_key

KEPT, DELETED, OLDER, STRICT, REJECTED = (
    "kept",
    "deleted",
    "older_version",
    "strict_duplicate",
    "rejected",
)

# the silver contract (faerslake.contracts) names the columns
SUMMARY_COLUMNS = columns(SILVER["dedup_summary"])
REPORT_COLUMNS = columns(SILVER["reports"])
STATUS_COLUMNS = columns(SILVER["report_status"])

DEMO_NEEDS = [
    "quarter", "era", "source_file", "line_number", "report_key", "caseid", "caseversion",
    "fda_dt", "event_dt", "age", "age_cod", "sex", "reporter_country", "occp_cod",
    "rept_cod", "i_f_code",
]


def _require(df: DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise FaerslakeError(
            f"{what} lacks column(s) {', '.join(missing)}: re-run 'faerslake ingest --force' "
            f"so bronze has the documented columns."
        )


def _report_fields(demo: DataFrame) -> DataFrame:
    """Bronze DEMO rows -> silver report columns plus what ranking and the
    status table need."""
    fda = date_text("fda_dt")
    event = date_text("event_dt")
    legacy = F.col("era") == F.lit("legacy")
    return demo.select(
        whole_number("report_key").alias("report_key"),
        whole_number("caseid").alias("caseid"),
        # Legacy AERS has no caseversion: null sorts lowest (spec §2.3).
        F.when(~legacy, whole_number("caseversion").try_cast("int")).alias("caseversion"),
        "era",
        "quarter",
        fda.alias("fda_dt"),
        event.alias("event_dt"),
        plausible_date(event, F.try_to_date(fda, "yyyyMMdd")).alias("event_date"),
        age_years("age", "age_cod").alias("age_years"),
        clean_code("sex").alias("sex"),
        country_iso2("reporter_country").alias("reporter_country"),
        clean_code("occp_cod").alias("occp_cod"),
        clean_code("rept_cod").alias("rept_cod"),
        clean_code("i_f_code").alias("i_f_code"),
        F.col("report_key").alias("report_key_text"),
        F.col("caseid").alias("caseid_text"),
        "source_file",
        F.col("line_number").cast("bigint").alias("line_number"),
    )


def _deleted_ids(deleted: DataFrame) -> DataFrame:
    _require(deleted, ["caseid"], "bronze deleted_cases")
    return (
        deleted.select(whole_number("caseid").alias("caseid"))
        .where(F.col("caseid").isNotNull())
        .distinct()
        .withColumn("_deleted", F.lit(True))
    )


def _with_reject_reason(d: DataFrame) -> DataFrame:
    """Add ``_reject``: why a DEMO row is not a report (null when it is one)."""
    # A report key that two different cases claim in one quarter cannot own
    # its child rows: both claims are rejected. An aggregate over the two
    # narrow keys finds the few conflicting keys without shuffling wide rows.
    conflicts = (
        d.where(F.col("report_key").isNotNull())
        .groupBy("quarter", "report_key")
        .agg((F.min("caseid") != F.max("caseid")).alias("_conflict"))
        .where(F.col("_conflict"))
    )
    d = d.join(conflicts, ["quarter", "report_key"], "left").withColumn(
        "_conflict", F.coalesce(F.col("_conflict"), F.lit(False)))
    reason = (
        F.when(
            F.col("report_key").isNull(),
            F.format_string("report key '%s' is not a whole number", F.col("report_key_text")),
        )
        .when(
            F.col("caseid").isNull(),
            F.format_string("caseid '%s' is not a whole number", F.col("caseid_text")),
        )
        .when(
            F.col("_conflict"),
            F.format_string(
                "report key %s occurs in %s with different caseids", F.col("report_key"), F.col("quarter")
            ),
        )
    )
    return d.withColumn("_reject", reason)


def _with_keep_keys(d: DataFrame) -> DataFrame:
    """Add the computed columns :func:`keep_order` sorts by."""
    # Columns first: written inside orderBy, each window function would get
    # its own copy of them and Spark would sort every DEMO row once per copy.
    return d.select(
        "*",
        (F.col("_reject").isNull() & F.col("_deleted").isNull()).alias("_eligible"),
        (F.col("era") == F.lit("faers")).alias("_faers"),
        quarter_order("quarter").alias("_qorder"),
    )


def keep_order() -> list[Column]:
    """Which report of a case is kept (spec §2.3): the first in this order.

    Eligible rows (neither rejected nor deleted) first, then era (FAERS
    first), caseversion (legacy: none = lowest), fda_dt (as ``YYYYMMDD``
    text), quarter (time order), report key (as a number), all descending;
    source_file and line_number break the tie between copies of one row.
    Needs the columns of :func:`_with_keep_keys`."""
    return [
        F.col("_eligible").desc(),
        F.col("_faers").desc(),
        F.col("caseversion").desc_nulls_last(),
        F.col("fda_dt").desc_nulls_last(),
        F.col("_qorder").desc_nulls_last(),
        F.col("report_key").desc_nulls_last(),
        F.col("source_file").desc_nulls_last(),
        F.col("line_number").desc_nulls_last(),
    ]


def _with_fate(d: DataFrame) -> DataFrame:
    """Add ``status`` and ``reason`` to rows with ``_reject`` and ``_deleted``."""
    rank = Window.partitionBy("caseid").orderBy(*keep_order())
    d = _with_keep_keys(d).withColumn("_rn", F.row_number().over(rank))
    first_key = F.first("report_key").over(rank)
    first_q = F.first("quarter").over(rank)
    status = (
        F.when(F.col("_reject").isNotNull(), F.lit(REJECTED))
        .when(F.col("_deleted"), F.lit(DELETED))
        .when(F.col("_rn") == 1, F.lit(KEPT))
        .otherwise(F.lit(OLDER))
    )
    reason = (
        F.when(F.col("_reject").isNotNull(), F.col("_reject"))
        .when(F.col("_deleted"), F.format_string("caseid %s is on a deleted-cases list", F.col("caseid")))
        .when(F.col("_rn") > 1, F.format_string("case %s is kept as report %s of %s",
                                                 F.col("caseid"), first_key, first_q))
    )
    return d.withColumn("status", status).withColumn("reason", reason)


def classify_reports(demo_df: DataFrame, deleted_df: DataFrame) -> DataFrame:
    """Every bronze DEMO row with its silver report columns and its fate:
    ``status`` in kept / deleted / older_version / rejected and a ``reason``
    (spec §2 steps 1-3, window functions only)."""
    _require(demo_df, DEMO_NEEDS, "bronze demo")
    d = _with_reject_reason(_report_fields(demo_df))
    d = d.join(F.broadcast(_deleted_ids(deleted_df)), "caseid", "left")
    return _with_fate(d).drop(
        "_conflict", "_reject", "_deleted", "_rn", "_eligible", "_faers", "_qorder"
    )


def deduplicate(demo_df: DataFrame, deleted_df: DataFrame) -> DataFrame:
    """Bronze DEMO + deleted-case lists -> the kept reports, in silver
    ``reports`` shape (spec §2, without the optional stricter pass)."""
    return classify_reports(demo_df, deleted_df).where(F.col("status") == KEPT).select(*REPORT_COLUMNS)


def order_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """A dedup_summary frame in its order: ``all`` first, then quarters in
    time order, columns as :data:`SUMMARY_COLUMNS`."""
    out = summary.sort_values("scope", key=lambda s: s.map(scope_sort_key)).reset_index(drop=True)
    return out[[c for c in SUMMARY_COLUMNS if c in out.columns]]


def summarise(counts: list[tuple[str, str, int]]) -> pd.DataFrame:
    """(quarter, status, count) triples -> the dedup_summary frame: ``all``
    first, then quarters in time order."""
    col_of = {
        DELETED: "removed_deleted",
        OLDER: "removed_older_versions",
        STRICT: "removed_strict_duplicates",
        KEPT: "reports_kept",
        REJECTED: "rejected_invalid",
    }
    per_q: dict[str, dict[str, int]] = {}
    for quarter, status, n in counts:
        row = per_q.setdefault(quarter, {c: 0 for c in SUMMARY_COLUMNS[1:]})
        row[col_of[status]] += int(n)
    rows: list[dict[str, Any]] = []
    for q, r in per_q.items():
        r["reports_read"] = sum(r[c] for c in col_of.values() if c != "rejected_invalid")
        rows.append({"scope": q, **r})
    total = {"scope": "all", **{c: sum(r[c] for r in rows) for c in SUMMARY_COLUMNS[1:]}}
    frame = pd.DataFrame([total, *rows], columns=SUMMARY_COLUMNS)
    return order_summary(frame.astype({c: "int64" for c in SUMMARY_COLUMNS[1:]}))
