"""Silver layer: bronze -> one schema across both eras, one report per case.

Place in the pipeline: ``ingest`` writes bronze (all STRING, as FDA wrote it);
``build`` (this module) writes ``WH/silver/<table>``; ``study`` (gold) reads
silver only. The table contracts are in ``docs/architecture.md``; the rules
are study-spec §1 (normalisation) and §2 (de-duplication), followed literally:

1. a report is one DEMO row of one quarter; child rows belong to it through
   (report key, quarter); child rows without a DEMO row are not used;
2. reports whose caseid is in the distinct union of all deleted-case lists
   are dropped;
3. one report per caseid is kept: era (FAERS first), caseversion (legacy: none
   = lowest), fda_dt (as ``YYYYMMDD`` text), quarter (time order), report key
   (as a number), all descending; the first is kept;
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
- Child rows that are identical in every silver column (the 2025Q4 sample has
  duplicated DRUG / REAC / INDI / THER rows) are written once: they carry no
  information and would inflate per-row counts.
- Every DEMO row's fate is in ``silver/report_status`` (quarter, report key and
  caseid as written, source_file, line_number, status, reason), so no report
  disappears without a trace.
- Build is a full rebuild: de-duplication is global (a new quarter's version
  or deletion list changes which report of an old quarter is kept), and a
  rebuild is one scan plus one shuffle per table. When no bronze table has
  changed since the last build (same Delta versions, same strict setting) the
  build is skipped.
- Silver tables are not partitioned: every reader joins whole tables on
  (report_key, quarter), and 90 quarters x shuffle partitions would only make
  small files; a period filter on ``quarter`` is a cheap scan filter.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Observation, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from faerslake.config import PipelineConfig
from faerslake.errors import FaerslakeError, InputError
from faerslake.faults import checkpoint
from faerslake.logs import sink
from faerslake.normalise import (
    age_years,
    clean_code,
    clean_text,
    country_iso2,
    date_text,
    norm_drug,
    norm_pt,
    plausible_date,
    quarter_order,
    whole_number,
)
from faerslake.quarters import quarter_index
from faerslake.tables import Warehouse

__all__ = [
    "BuildResult",
    "build",
    "classify_reports",
    "deduplicate",
    "mark_strict_duplicates",
    "norm_drug",
    "norm_pt",
    "silver_child",
    "summarise",
    "with_normalised_drug",
]

KEPT, DELETED, OLDER, STRICT, REJECTED = (
    "kept",
    "deleted",
    "older_version",
    "strict_duplicate",
    "rejected",
)

SUMMARY_COLUMNS = [
    "scope",
    "reports_read",
    "removed_deleted",
    "removed_older_versions",
    "removed_strict_duplicates",
    "reports_kept",
    "rejected_invalid",
]

REPORT_COLUMNS = [
    "report_key", "caseid", "caseversion", "era", "quarter", "fda_dt", "event_dt",
    "event_date", "age_years", "sex", "reporter_country", "occp_cod", "rept_cod", "i_f_code",
]
STATUS_COLUMNS = [
    "quarter", "report_key_text", "caseid_text", "report_key", "caseid", "source_file",
    "line_number", "status", "reason",
]

DEMO_NEEDS = [
    "quarter", "era", "source_file", "line_number", "report_key", "caseid", "caseversion",
    "fda_dt", "event_dt", "age", "age_cod", "sex", "reporter_country", "occp_cod",
    "rept_cod", "i_f_code",
]

# silver child table -> (bronze table, bronze columns it needs, silver projection)
_CHILD_BRONZE: dict[str, tuple[str, list[str]]] = {
    "drugs": ("drug", ["drug_seq", "role_cod", "drugname", "prod_ai"]),
    "indications": ("indi", ["indi_drug_seq", "indi_pt"]),
    "reactions": ("reac", ["pt"]),
    "outcomes": ("outc", ["outc_cod"]),
    "therapies": ("ther", ["dsg_drug_seq", "start_dt", "end_dt", "dur", "dur_cod"]),
    "report_sources": ("rpsr", ["rpsr_cod"]),
}
CHILD_TABLES = list(_CHILD_BRONZE)
SILVER_TABLES = ["reports", *CHILD_TABLES, "report_status", "dedup_summary"]
_BRONZE_INPUTS = ["demo", "deleted_cases", *(b for b, _ in _CHILD_BRONZE.values())]


@dataclass
class BuildResult:
    """What ``build`` did: the de-duplication summary (small pandas frame, first
    row ``scope='all'``, then one per quarter in time order), rows written per
    silver table, wall time, and whether it was skipped as up to date."""

    dedup_summary: pd.DataFrame
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    skipped: bool = False
    strict_dedup: bool = False


# --------------------------------------------------------------------------- #
# boundary checks
# --------------------------------------------------------------------------- #
def _require(df: DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise FaerslakeError(
            f"{what} lacks column(s) {', '.join(missing)}: re-run 'faerslake ingest --force' "
            f"so bronze has the documented columns."
        )


# --------------------------------------------------------------------------- #
# pure transforms
# --------------------------------------------------------------------------- #
def with_normalised_drug(df: DataFrame) -> DataFrame:
    """Add ``drugname_norm`` and ``prod_ai_norm`` (spec §1) to a frame with
    ``drugname`` and ``prod_ai``."""
    _require(df, ["drugname", "prod_ai"], "drug rows")
    return df.withColumn("drugname_norm", norm_drug("drugname")).withColumn(
        "prod_ai_norm", norm_drug("prod_ai")
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


def classify_reports(demo_df: DataFrame, deleted_df: DataFrame) -> DataFrame:
    """Every bronze DEMO row with its silver report columns and its fate:
    ``status`` in kept / deleted / older_version / rejected and a ``reason``
    (spec §2 steps 1-3, window functions only)."""
    _require(demo_df, DEMO_NEEDS, "bronze demo")
    d = _report_fields(demo_df)

    # A report key that two different cases claim in one quarter cannot own
    # its child rows: both claims are rejected.
    # (An aggregate over the two narrow keys finds the few conflicting keys:
    # far cheaper than a window, which would shuffle and sort every wide row.)
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
    d = d.withColumn("_reject", reason)
    d = d.join(F.broadcast(_deleted_ids(deleted_df)), "caseid", "left")

    # The computed sort keys are columns first: written inside orderBy, each
    # window function below would get its own copy of them, and Spark would
    # sort every DEMO row once per copy (measured: two sorts instead of one).
    d = d.select(
        "*",
        (F.col("_reject").isNull() & F.col("_deleted").isNull()).alias("_eligible"),
        (F.col("era") == F.lit("faers")).alias("_faers"),
        quarter_order("quarter").alias("_qorder"),
    )
    # Eligible rows first, so row 1 of a case is an eligible row when there is one.
    rank = Window.partitionBy("caseid").orderBy(
        F.col("_eligible").desc(),
        F.col("_faers").desc(),
        F.col("caseversion").desc_nulls_last(),
        F.col("fda_dt").desc_nulls_last(),
        F.col("_qorder").desc_nulls_last(),
        F.col("report_key").desc_nulls_last(),
        F.col("source_file").desc_nulls_last(),
        F.col("line_number").desc_nulls_last(),
    )
    d = d.withColumn("_rn", F.row_number().over(rank))
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
    return d.withColumn("status", status).withColumn("reason", reason).drop(
        "_conflict", "_reject", "_deleted", "_rn", "_eligible", "_faers", "_qorder"
    )


def deduplicate(demo_df: DataFrame, deleted_df: DataFrame) -> DataFrame:
    """Bronze DEMO + deleted-case lists -> the kept reports, in silver
    ``reports`` shape (spec §2, without the optional stricter pass)."""
    return classify_reports(demo_df, deleted_df).where(F.col("status") == KEPT).select(*REPORT_COLUMNS)


def _child_keys(bronze: DataFrame) -> DataFrame:
    return bronze.withColumn("report_key", whole_number("report_key"))


def mark_strict_duplicates(
    status_df: DataFrame, drug_df: DataFrame, reac_df: DataFrame
) -> DataFrame:
    """The optional stricter pass (spec §2): among kept reports of different
    cases that agree on event date, age, sex, reporter country, the sorted set
    of normalised drug names and the sorted set of normalised PTs, keep the
    highest report key; the others become ``strict_duplicate``.

    Agreement is SQL equality: a report lacking any of these (no whole event
    date, no age, sex not M/F, no country, no drug or no PT) is never merged,
    because two unknowns are not evidence of one patient.
    """
    kept = status_df.where(F.col("status") == KEPT).select(
        "report_key", "quarter", "event_date",
        F.round("age_years", 4).alias("_age"), "sex", "reporter_country",
    )
    keys = kept.select("report_key", "quarter")
    drugs = (
        _child_keys(drug_df)
        .join(keys, ["report_key", "quarter"], "left_semi")
        .select("report_key", "quarter", norm_drug("drugname").alias("_d"))
        .where(F.col("_d").isNotNull())
        .groupBy("report_key", "quarter")
        .agg(F.array_sort(F.collect_set("_d")).alias("_drugs"))
    )
    pts = (
        _child_keys(reac_df)
        .join(keys, ["report_key", "quarter"], "left_semi")
        .select("report_key", "quarter", norm_pt("pt").alias("_p"))
        .where(F.col("_p").isNotNull())
        .groupBy("report_key", "quarter")
        .agg(F.array_sort(F.collect_set("_p")).alias("_pts"))
    )
    cand = (
        kept.where(
            F.col("event_date").isNotNull() & F.col("_age").isNotNull()
            & F.col("sex").isin("M", "F") & F.col("reporter_country").isNotNull()
        )
        .join(drugs, ["report_key", "quarter"])
        .join(pts, ["report_key", "quarter"])
    )
    w = Window.partitionBy("event_date", "_age", "sex", "reporter_country", "_drugs", "_pts").orderBy(
        F.col("report_key").desc(), quarter_order("quarter").desc()
    )
    dups = (
        cand.withColumn("_rn", F.row_number().over(w))
        .withColumn("_winner", F.first("report_key").over(w))
        .withColumn("_winner_q", F.first("quarter").over(w))
        .where(F.col("_rn") > 1)
        .select("report_key", "quarter", "_winner", "_winner_q")
    )
    is_dup = (F.col("status") == KEPT) & F.col("_winner").isNotNull()
    return (
        status_df.join(dups, ["report_key", "quarter"], "left")
        .withColumn(
            "reason",
            F.when(is_dup, F.format_string(
                "same event date, age, sex, country, drugs and PTs as report %s of %s",
                F.col("_winner"), F.col("_winner_q"),
            )).otherwise(F.col("reason")),
        )
        .withColumn("status", F.when(is_dup, F.lit(STRICT)).otherwise(F.col("status")))
        .drop("_winner", "_winner_q")
    )


def _child_columns(name: str) -> tuple[list[tuple[str, Column]], list[tuple[str, Column]]]:
    """(base, derived) silver columns of child table ``name`` after its keys, as
    (name, expression) pairs. Base columns come from bronze; derived ones are
    functions of base columns (``norm_drug(clean_text(x)) == norm_drug(x)``,
    and likewise for ``norm_pt``), so they are computed after the
    de-duplication, which then hashes and shuffles half the text."""
    if name == "drugs":
        return ([("drug_seq", whole_number("drug_seq")),
                 ("role_cod", clean_code("role_cod")),
                 ("drugname", clean_text("drugname")),
                 ("prod_ai", clean_text("prod_ai"))],
                [("drugname_norm", norm_drug("drugname")),
                 ("prod_ai_norm", norm_drug("prod_ai"))])
    if name == "indications":
        # FAERS drug_seq is per report, legacy DRUG_SEQ global; either way it
        # joins DRUG's drug_seq inside one report.
        return ([("drug_seq", whole_number("indi_drug_seq")), ("indi_pt", clean_text("indi_pt"))],
                [("indi_pt_norm", norm_pt("indi_pt"))])
    if name == "reactions":
        return [("pt", clean_text("pt"))], [("pt_norm", norm_pt("pt"))]
    if name == "outcomes":
        return [("outc_cod", clean_code("outc_cod"))], []
    if name == "therapies":
        return ([("drug_seq", whole_number("dsg_drug_seq")),
                 ("start_dt", date_text("start_dt")),
                 ("end_dt", date_text("end_dt")),
                 ("dur", clean_text("dur")),
                 ("dur_cod", clean_code("dur_cod"))], [])
    if name == "report_sources":
        return [("rpsr_cod", clean_code("rpsr_cod"))], []
    raise ValueError(f"unknown silver child table {name!r}")


def silver_child(name: str, bronze_df: DataFrame, reports_df: DataFrame) -> DataFrame:
    """Bronze child rows -> silver table ``name``: only rows of a kept report of
    the same quarter (spec §2.1 and §2.4), exact duplicates written once."""
    table, needs = _CHILD_BRONZE[name]
    _require(bronze_df, ["quarter", "report_key", *needs], f"bronze {table}")
    keys = reports_df.select("report_key", "quarter")
    base, derived = _child_columns(name)
    out = (
        _child_keys(bronze_df)
        .join(keys, ["report_key", "quarter"], "inner")
        .select("report_key", "quarter", *[e.alias(n) for n, e in base])
        .distinct()
    )
    return out.select("*", *[e.alias(n) for n, e in derived])


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
    rows = []
    for q in sorted(per_q, key=quarter_index):
        r = per_q[q]
        r["reports_read"] = sum(r[c] for c in col_of.values() if c != "rejected_invalid")
        rows.append({"scope": q, **r})
    total = {"scope": "all", **{c: sum(r[c] for r in rows) for c in SUMMARY_COLUMNS[1:]}}
    frame = pd.DataFrame([total, *rows], columns=SUMMARY_COLUMNS)
    return frame.astype({c: "int64" for c in SUMMARY_COLUMNS[1:]})


# --------------------------------------------------------------------------- #
# the job
# --------------------------------------------------------------------------- #
_SUMMARY_SCHEMA = T.StructType(
    [T.StructField("scope", T.StringType(), False)]
    + [T.StructField(c, T.LongType(), False) for c in SUMMARY_COLUMNS[1:]]
)
_STATE_SCHEMA = T.StructType([
    T.StructField("built_at", T.TimestampType(), False),
    T.StructField("strict_dedup", T.BooleanType(), False),
    T.StructField("bronze_versions", T.StringType(), False),
    T.StructField("silver_versions", T.StringType(), False),
    T.StructField("seconds", T.DoubleType(), False),
])


def _empty_bronze(spark: SparkSession, columns: list[str]) -> DataFrame:
    schema = T.StructType([T.StructField(c, T.StringType(), True) for c in columns])
    return spark.createDataFrame([], schema)


def _rows_written(spark: SparkSession, wh: Warehouse, name: str) -> int:
    """Rows of the last write, from the Delta log (no second scan)."""
    row = wh.delta_table(spark, "silver", name).history(1).select("operationMetrics").first()
    metrics = (row[0] if row else None) or {}
    return int(metrics.get("numOutputRows", 0))


def _write_counted(spark: SparkSession, wh: Warehouse, df: DataFrame, name: str) -> int:
    """Overwrite silver ``name`` with ``df``; the rows written. Path mode counts
    them on the way (an Observation: no second scan, no history query); a
    catalog write runs inside a command that reports no observed metrics, so
    there the Delta log's operation metrics give the count."""
    if wh.by_catalog:
        wh.write(df, "silver", name, overwriteSchema="true", **_STATS)
        return _rows_written(spark, wh, name)
    obs = Observation(f"silver_{name}")
    wh.write(df.observe(obs, F.count(F.lit(1)).alias("rows")), "silver", name, overwriteSchema="true",
             **_STATS)
    return int(obs.get["rows"])


# Data-skipping statistics only on the two leading columns (the report key and
# quarter, or quarter and key text): readers join on them and filter by
# quarter; Delta's default of 32 columns cost ~10 % of the build's CPU
# (min/max of every text column of every row) and no reader used them.
_STATS = {"delta.dataSkippingNumIndexedCols": "2"}


# Independent silver tables are written by this many threads at once: a
# table's job leaves cores idle in its small tail and its Delta commit.
WRITE_THREADS = 4


def _bronze_versions(spark: SparkSession, wh: Warehouse) -> dict[str, int | None]:
    return {t: wh.version(spark, "bronze", t) for t in _BRONZE_INPUTS}


def _silver_versions(spark: SparkSession, wh: Warehouse) -> dict[str, int | None]:
    return {t: wh.version(spark, "silver", t) for t in SILVER_TABLES}


def _up_to_date(spark: SparkSession, wh: Warehouse, versions: dict, strict: bool) -> bool:
    """True when the last finished build saw these bronze versions with this
    strict setting, and no silver table has changed since (a build that died
    half-way leaves some silver tables newer than the record: not up to date)."""
    if not wh.exists(spark, "silver", "build_state"):
        return False
    state = wh.read(spark, "silver", "build_state")
    if "silver_versions" not in state.columns:  # written by an earlier faerslake
        return False
    last = (
        state
        .orderBy(F.col("built_at").desc())
        .select("strict_dedup", "bronze_versions", "silver_versions")
        .first()
    )
    return (
        bool(last)
        and last[0] == strict
        and json.loads(last[1]) == versions
        and json.loads(last[2]) == _silver_versions(spark, wh)
    )


def build(
    spark: SparkSession,
    warehouse: str,
    strict_dedup: bool = False,
    cfg: PipelineConfig | None = None,
    log: Callable[[str], None] | None = None,
    force: bool = False,
) -> BuildResult:
    """Bronze -> ``WH/silver/*`` (reports, drugs, indications, reactions,
    outcomes, therapies, report_sources, report_status, dedup_summary).

    A full rebuild each time bronze changed (de-duplication is global); a
    no-op when no bronze table changed since the last build with the same
    ``strict_dedup`` (``force=True`` rebuilds anyway)."""
    log = sink(log, __name__)
    t0 = time.monotonic()
    cfg = cfg or PipelineConfig()
    wh = Warehouse(warehouse, cfg.tables)
    if not wh.exists(spark, "bronze", "demo"):
        raise InputError(
            f"no bronze DEMO table under {warehouse}: run 'faerslake ingest --warehouse {warehouse}' first."
        )
    versions = _bronze_versions(spark, wh)
    if not force and _up_to_date(spark, wh, versions, strict_dedup):
        log("silver: bronze unchanged since the last build; silver is up to date")
        stored = wh.read(spark, "silver", "dedup_summary").collect()
        summary = _order_summary(pd.DataFrame([r.asDict() for r in stored]))
        return BuildResult(summary, {}, time.monotonic() - t0, skipped=True, strict_dedup=strict_dedup)

    log(f"silver: reading bronze (Delta versions {versions})")
    demo = wh.read(spark, "bronze", "demo")
    if wh.exists(spark, "bronze", "deleted_cases"):
        deleted = wh.read(spark, "bronze", "deleted_cases")
    else:
        log("silver: no bronze deleted_cases table; no case is deleted")
        deleted = _empty_bronze(spark, ["caseid", "quarter"])
    bronze: dict[str, DataFrame] = {}
    for name, (table, needs) in _CHILD_BRONZE.items():
        if wh.exists(spark, "bronze", table):
            bronze[name] = wh.read(spark, "bronze", table)
        else:
            log(f"silver: no bronze {table} table; silver {name} will be empty")
            bronze[name] = _empty_bronze(spark, ["quarter", "report_key", *needs])

    log("silver: de-duplicating reports (deleted cases, latest version per case)")
    status = classify_reports(demo, deleted)
    if strict_dedup:
        log("silver: stricter pass: merging look-alike reports of different cases")
        status = mark_strict_duplicates(status, bronze["drugs"], bronze["reactions"])
    status = status.persist(StorageLevel.MEMORY_AND_DISK)
    rows: dict[str, int] = {}
    lap = time.monotonic()

    def took() -> str:
        nonlocal lap
        now = time.monotonic()
        text, lap = f"{now - lap:.1f} s", now
        return text

    try:
        # report_status and reports both come from the persisted status: one
        # evaluation of the ranking, two writes side by side
        first = {
            "report_status": status.select(*STATUS_COLUMNS),
            "reports": status.where(F.col("status") == KEPT).select(*REPORT_COLUMNS),
        }
        with ThreadPoolExecutor(max_workers=2) as pool:
            done = dict(zip(first, pool.map(lambda kv: _write_counted(spark, wh, kv[1], kv[0]),
                                            first.items()), strict=True))
        rows.update(done)
        log(f"silver: report_status: {rows['report_status']:,} DEMO rows with their fate; "
            f"reports: {rows['reports']:,} kept reports ({took()})")
        counts = [
            (r["quarter"], r["status"], r["count"])
            for r in status.groupBy("quarter", "status").count().collect()
        ]
    finally:
        status.unpersist()

    summary = summarise(counts)
    wh.write(spark.createDataFrame(summary.to_dict("records"), _SUMMARY_SCHEMA),
             "silver", "dedup_summary", overwriteSchema="true")
    rows["dedup_summary"] = len(summary)
    total = summary.iloc[0]
    log(
        f"silver: dedup: read {total.reports_read:,}, deleted {total.removed_deleted:,}, "
        f"older versions {total.removed_older_versions:,}, strict duplicates "
        f"{total.removed_strict_duplicates:,}, kept {total.reports_kept:,}"
        + (f"; {total.rejected_invalid:,} DEMO rows rejected (see silver/report_status)"
           if total.rejected_invalid else "")
    )

    checkpoint("build.after_reports")  # crash tests: reports written, children not
    # Children join the reports just written, not the (costly) status plan.
    reports = wh.read(spark, "silver", "reports")

    def write_child(name: str) -> None:
        t = time.monotonic()
        rows[name] = _write_counted(spark, wh, silver_child(name, bronze[name], reports), name)
        log(f"silver: {name}: {rows[name]:,} rows ({time.monotonic() - t:.1f} s)")

    # the child tables are independent of each other
    with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
        list(pool.map(write_child, CHILD_TABLES))
    log(f"silver: child tables written ({took()})")

    seconds = time.monotonic() - t0
    state = [(datetime.now(timezone.utc), bool(strict_dedup), json.dumps(versions, sort_keys=True),
              json.dumps(_silver_versions(spark, wh), sort_keys=True), seconds)]
    wh.write(spark.createDataFrame(state, _STATE_SCHEMA), "silver", "build_state", mode="append",
             mergeSchema="true")
    log(f"silver: done in {seconds:.1f} s")
    return BuildResult(summary, rows, seconds, skipped=False, strict_dedup=strict_dedup)


def _order_summary(summary: pd.DataFrame) -> pd.DataFrame:
    def key(scope: str) -> int:
        return -1 if scope == "all" else quarter_index(scope)

    out = summary.sort_values("scope", key=lambda s: s.map(key)).reset_index(drop=True)
    return out[[c for c in SUMMARY_COLUMNS if c in out.columns]]
