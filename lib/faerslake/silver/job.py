"""The silver build job: bronze -> ``WH/silver/*``.

Two paths, one result. The full rebuild is the reference: de-duplication is
global (a new quarter's version or deletion list changes which report of an
old quarter is kept), and a rebuild is one scan plus one shuffle per table.
When bronze changed by whole quarters since the last completed build, the
build updates silver instead (:mod:`faerslake.silver.update`: only the cases
the changed quarters and deleted-case lists touch are re-decided and merged),
which must give the same tables; whatever it cannot bound falls back to the
full rebuild and the log line says why. When no bronze table has changed since
the last build (same Delta versions, same strict setting) the build is skipped.
Silver tables are not partitioned: every reader joins whole tables on
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
from typing import NamedTuple

import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from faerslake import __version__
from faerslake.config import IdentitySettings, PipelineConfig
from faerslake.contracts import SILVER, conform
from faerslake.errors import InputError
from faerslake.faults import checkpoint
from faerslake.ingest.bronze import completed_cut
from faerslake.lock import writer_lock
from faerslake.logs import sink
from faerslake.silver import identity, update
from faerslake.silver.children import CHILD_SPECS, CHILD_TABLES, silver_child
from faerslake.silver.dedup import (
    KEPT,
    REPORT_COLUMNS,
    STATUS_COLUMNS,
    classify_reports,
    order_summary,
    summarise,
)
from faerslake.silver.strict import mark_strict_duplicates
from faerslake.tables import SILVER_STATS, WRITE_THREADS, Warehouse

Log = Callable[[str], None]

SILVER_TABLES = ["reports", *CHILD_TABLES, "report_status", "dedup_summary", *identity.IDENTITY_TABLES]
_BRONZE_INPUTS = ["demo", "deleted_cases", *(s.bronze_table for s in CHILD_SPECS.values())]
# the bronze cut a build records: its inputs, and what the study's report
# shows beside them (the audit; the manifest is added by completed_cut)
_BRONZE_CUT = [*_BRONZE_INPUTS, "ingest_audit"]

_SUMMARY_SCHEMA = SILVER["dedup_summary"]
_STATE_SCHEMA = SILVER["build_state"]


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
    # the drug identity summary (OUT/drug_identity.csv's rows; identity.SUMMARY_COLUMNS)
    identity: pd.DataFrame | None = None
    # what the build did: "full" (with ``reason``, why not an update), "update", or "skipped"
    mode: str = "full"
    reason: str = ""


class Bronze(NamedTuple):
    """The bronze inputs of a build; ``children`` by silver table name."""

    demo: DataFrame
    deleted: DataFrame
    children: dict[str, DataFrame]


def _empty_bronze(spark: SparkSession, columns: list[str]) -> DataFrame:
    schema = T.StructType([T.StructField(c, T.StringType(), True) for c in columns])
    return spark.createDataFrame([], schema)


def _write_counted(spark: SparkSession, wh: Warehouse, df: DataFrame, name: str) -> int:
    """Overwrite silver ``name`` with ``df``; the rows written."""
    return wh.write_counted(spark, conform(df, SILVER[name]), "silver", name,
                            options={"overwriteSchema": "true", **SILVER_STATS})


def _bronze_versions(spark: SparkSession, wh: Warehouse) -> dict[str, int | None]:
    """The current versions of the bronze tables a build records (unchecked: see :func:`completed_cut`)."""
    return {**{t: wh.version(spark, "bronze", t) for t in _BRONZE_CUT},
            "source_manifest": wh.version(spark, "bronze", "source_manifest")}


def _silver_versions(spark: SparkSession, wh: Warehouse) -> dict[str, int | None]:
    return {t: wh.version(spark, "silver", t) for t in SILVER_TABLES}


def _newest(silver_versions: str | None) -> tuple[int, int]:
    """The order of ``build_state`` rows: the sum of the silver versions they
    recorded (versions only grow, clocks may not; every build writes
    dedup_summary and the identity tables, so the sum grows with each, also
    with an update that re-decided no case and left ``reports`` as it was),
    then the ``reports`` version (records of faerslake <= 0.3 name fewer tables)."""
    v = json.loads(silver_versions or "{}")
    return sum(int(x) for x in v.values() if x is not None), int(v.get("reports") or -1)


def _last_build(state: DataFrame):
    """The newest ``build_state`` row (strict_dedup, bronze_versions,
    silver_versions, identity_settings), by :func:`_newest`. One row per build: few."""
    settings = F.col("identity_settings") if "identity_settings" in state.columns else F.lit(None).cast("string")
    rows = state.select("strict_dedup", "bronze_versions", "silver_versions", settings).collect()
    return max(rows, key=lambda r: _newest(r[2])) if rows else None


def _last_record(spark: SparkSession, wh: Warehouse) -> dict | None:
    """The newest ``build_state`` row as a dict (every column it has; see
    :func:`_last_build` for which is newest), None when there is none."""
    if not wh.exists(spark, "silver", "build_state"):
        return None
    state = wh.read(spark, "silver", "build_state")
    if "silver_versions" not in state.columns:  # written by an earlier faerslake
        return None
    rows = state.collect()  # one row per build: few
    if not rows:
        return None
    return max(rows, key=lambda r: _newest(r["silver_versions"])).asDict()


def _up_to_date(spark: SparkSession, wh: Warehouse, versions: dict, strict: bool,
                identity_settings: str | None = None) -> bool:
    """True when the last finished build saw these bronze versions with this
    strict setting (and, when given, these identity settings), and no silver
    table has changed since (a build that died half-way leaves some silver
    tables newer than the record: not up to date; a silver table of
    SILVER_TABLES missing, e.g. silver/drug_ingredients in a lake built by an
    earlier faerslake, is such a change). Only the bronze tables the record
    names are compared (a record of an earlier faerslake names fewer)."""
    if not wh.exists(spark, "silver", "build_state"):
        return False
    state = wh.read(spark, "silver", "build_state")
    if "silver_versions" not in state.columns:  # written by an earlier faerslake
        return False
    last = _last_build(state)
    if last is None or last[0] != strict:
        return False
    if identity_settings is not None and last[3] != identity_settings:
        return False
    silver_now = _silver_versions(spark, wh)
    seen = json.loads(last[1])
    return (
        all(versions.get(t) == v for t, v in seen.items())
        and json.loads(last[2]) == silver_now
    )


@dataclass(frozen=True)
class SilverCut:
    """The warehouse as the last *completed* build left it: the silver tables'
    versions and the bronze versions that build read (empty for a build of
    faerslake <= 0.1.0); ``checked`` False when the record has no silver
    versions to check against (the current versions are used)."""

    silver: dict[str, int | None]
    bronze: dict[str, int | None]
    checked: bool = True
    # whether that build ran the strict de-duplication pass (None: not recorded)
    strict_dedup: bool | None = None


def completed_build(spark: SparkSession, wh: Warehouse, warehouse: str) -> SilverCut:
    """The versions of the last completed build (``silver/build_state``).

    Refuses (:class:`InputError`, one sentence saying what to run) when no
    build completed, or when a silver table is newer than that build left it
    (a build is running or died half-way): reading it would mix two builds."""
    run_build = f"run 'faerslake build --warehouse {warehouse}' (or 'faerslake run') first"
    current = _silver_versions(spark, wh)
    if not wh.exists(spark, "silver", "build_state"):
        if not any(v is not None for v in current.values()):
            raise InputError(f"no silver tables under {warehouse} (no silver/build_state): run 'faerslake ingest' "
                             f"and 'faerslake build --warehouse {warehouse}' first (or 'faerslake run').")
        raise InputError(f"no build has completed under {warehouse} (no silver/build_state): {run_build}.")
    state, _ = wh.read_pinned(spark, "silver", "build_state")
    if "silver_versions" not in state.columns:  # written before builds recorded their silver versions
        return SilverCut(current, {}, checked=False)
    last = _last_build(state)
    if last is None:
        raise InputError(f"no build has completed under {warehouse} (silver/build_state is empty): {run_build}.")
    recorded = json.loads(last[2])
    bronze = json.loads(last[1]) if last[1] else {}
    pinned: dict[str, int | None] = {}
    changed = []
    for t in SILVER_TABLES:
        was, now = recorded.get(t), current.get(t)
        if now == was:
            pinned[t] = was
        elif was is not None and now is not None and now > was and wh.data_unchanged_since(spark, "silver", t, was):
            pinned[t] = now  # OPTIMIZE / VACUUM since: the same rows
        else:
            changed.append(f"{t} (version {now}, the last completed build left {was})")
    if changed:
        raise InputError(f"silver {', '.join(changed)} changed after the last completed build: a build is "
                         f"running or was interrupted; wait for it to finish, or {run_build}.")
    return SilverCut(pinned, bronze, strict_dedup=None if last[0] is None else bool(last[0]))


def _stored_summary(spark: SparkSession, wh: Warehouse) -> pd.DataFrame:
    stored = wh.read(spark, "silver", "dedup_summary").collect()
    return order_summary(pd.DataFrame([r.asDict() for r in stored]))


def read_bronze(spark: SparkSession, wh: Warehouse, log: Log,
                versions: dict[str, int | None] | None = None) -> Bronze:
    """The bronze tables a build reads, each at its version in ``versions``
    (the recorded cut: every job of the build sees the same bronze, whatever
    is committed meanwhile; default: the current versions); a missing table
    reads as empty."""
    versions = versions if versions is not None else _bronze_versions(spark, wh)

    def pinned(table: str) -> DataFrame | None:
        v = versions.get(table)
        return None if v is None else wh.read_at(spark, "bronze", table, v)

    demo = pinned("demo")
    if demo is None:
        raise InputError(f"no bronze DEMO table under {wh.root}: run 'faerslake ingest' first.")
    deleted = pinned("deleted_cases")
    if deleted is None:
        log("silver: no bronze deleted_cases table; no case is deleted")
        deleted = _empty_bronze(spark, ["caseid", "quarter"])
    children: dict[str, DataFrame] = {}
    for name, spec in CHILD_SPECS.items():
        df = pinned(spec.bronze_table)
        if df is not None:
            children[name] = df
        else:
            log(f"silver: no bronze {spec.bronze_table} table; silver {name} will be empty")
            children[name] = _empty_bronze(spark, spec.bronze_columns)
    return Bronze(demo, deleted, children)


def report_fates(bronze: Bronze, strict_dedup: bool, log: Log) -> DataFrame:
    """Every DEMO row with its status (spec §2, plus the strict pass if on)."""
    log("silver: de-duplicating reports (deleted cases, latest version per case)")
    status = classify_reports(bronze.demo, bronze.deleted)
    if strict_dedup:
        log("silver: stricter pass: merging look-alike reports of different cases")
        status = mark_strict_duplicates(status, bronze.children["drugs"], bronze.children["reactions"])
    return status


def _log_dedup(summary: pd.DataFrame, log: Log) -> None:
    total = summary.iloc[0]
    log(
        f"silver: dedup: read {total.reports_read:,}, deleted {total.removed_deleted:,}, "
        f"older versions {total.removed_older_versions:,}, strict duplicates "
        f"{total.removed_strict_duplicates:,}, kept {total.reports_kept:,}"
        + (f"; {total.rejected_invalid:,} DEMO rows rejected (see silver/report_status)"
           if total.rejected_invalid else "")
    )


def write_reports_and_status(
    spark: SparkSession, wh: Warehouse, status: DataFrame, log: Log
) -> tuple[dict[str, int], pd.DataFrame]:
    """Write ``report_status``, ``reports`` and ``dedup_summary`` from one
    evaluation of the ranking; the rows written and the summary."""
    status = status.persist(StorageLevel.MEMORY_AND_DISK)
    t = time.monotonic()
    try:
        tables = {
            "report_status": status.select(*STATUS_COLUMNS),
            "reports": status.where(F.col("status") == KEPT).select(*REPORT_COLUMNS),
        }
        with ThreadPoolExecutor(max_workers=2) as pool:
            counted = pool.map(lambda kv: _write_counted(spark, wh, kv[1], kv[0]), tables.items())
            rows = dict(zip(tables, counted, strict=True))
        log(f"silver: report_status: {rows['report_status']:,} DEMO rows with their fate; "
            f"reports: {rows['reports']:,} kept reports ({time.monotonic() - t:.1f} s)")
        counts = [
            (r["quarter"], r["status"], r["count"])
            for r in status.groupBy("quarter", "status").count().collect()
        ]
    finally:
        status.unpersist()

    summary = write_summary(spark, wh, counts, log)
    rows["dedup_summary"] = len(summary)
    return rows, summary


def write_summary(spark: SparkSession, wh: Warehouse, counts: list[tuple[str, str, int]], log: Log) -> pd.DataFrame:
    """Write ``dedup_summary`` from (quarter, status, count) triples; the summary."""
    summary = summarise(counts)
    wh.write(spark.createDataFrame(summary.to_dict("records"), _SUMMARY_SCHEMA),
             "silver", "dedup_summary", overwriteSchema="true")
    _log_dedup(summary, log)
    return summary


def write_children(spark: SparkSession, wh: Warehouse, bronze: Bronze, log: Log) -> dict[str, int]:
    """Write the child tables (independent of each other, so side by side);
    the rows written per table."""
    t0 = time.monotonic()
    # Children join the reports just written (that version), not the (costly) status plan.
    reports, _ = wh.read_pinned(spark, "silver", "reports")

    def write_child(name: str) -> int:
        t = time.monotonic()
        n = _write_counted(spark, wh, silver_child(name, bronze.children[name], reports), name)
        checkpoint("build.child_committed")  # crash tests: some child tables written, not all
        log(f"silver: {name}: {n:,} rows ({time.monotonic() - t:.1f} s)")
        return n

    with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
        rows = dict(zip(CHILD_TABLES, pool.map(write_child, CHILD_TABLES), strict=True))
    log(f"silver: child tables written ({time.monotonic() - t0:.1f} s)")
    return rows


# the name-level frames of the drug identity step in partitions of this many rows: one partition for
# a lake of a few hundred thousand distinct names, where every aggregate and window of the rules then
# runs without a shuffle (a single partition satisfies any clustering)
NAME_ROWS_PER_PARTITION = 200_000


def write_drug_identity(spark: SparkSession, wh: Warehouse, settings: IdentitySettings,
                        log: Log) -> tuple[dict[str, int], pd.DataFrame]:
    """Write ``drug_ingredients``, ``drug_dictionary`` and ``drug_identity``
    from the silver/drugs just written (that version); the rows written and
    the summary (:func:`identity.summary_frame`)."""
    t = time.monotonic()
    drugs, _ = wh.read_pinned(spark, "silver", "drugs")
    kept: list[DataFrame] = []

    def keep(df: DataFrame) -> DataFrame:  # the small name-level frames: computed once, read by every rule
        df = df.persist(StorageLevel.MEMORY_AND_DISK)
        n = df.count()
        kept.append(df)
        return df.coalesce(max(1, -(-n // NAME_ROWS_PER_PARTITION)))

    try:
        ident = identity.resolve(spark, drugs, settings.min_support, settings.min_agreement, settings.curated,
                                 keep)
        # on disk only: the rows are the size of silver/drugs and a 1g driver (make bench) has no room
        # for them beside the join that makes them (GC overhead limit at 4·S, 2026-12-03)
        resolved = ident.rows.persist(StorageLevel.DISK_ONLY)
        kept.append(resolved)
        dictionary = ident.dictionary.withColumn("ingredients", F.array_join("ingredients", "\\"))
        # the two tables are independent: written side by side (each commit has a fixed cost)
        with ThreadPoolExecutor(max_workers=2) as pool:
            ing = pool.submit(_write_counted, spark, wh, identity.explode_ingredients(resolved), "drug_ingredients")
            dic = pool.submit(_write_counted, spark, wh, dictionary, "drug_dictionary")
            rows = {"drug_ingredients": ing.result(), "drug_dictionary": dic.result()}
        per_quarter, top = identity.summary_counts(resolved)
    finally:
        for df in kept:
            df.unpersist()
    summary = identity.summary_frame(per_quarter, top)
    wh.write(spark.createDataFrame(summary.to_dict("records"), SILVER["drug_identity"]),
             "silver", "drug_identity", overwriteSchema="true")
    rows["drug_identity"] = len(summary)
    log(f"silver: drug_ingredients: {rows['drug_ingredients']:,} rows, dictionary {rows['drug_dictionary']:,} "
        f"names ({time.monotonic() - t:.1f} s)")
    log(identity.resolved_line(summary))
    return rows, summary


def stored_identity(spark: SparkSession, wh: Warehouse) -> pd.DataFrame | None:
    """The summary the last build stored (silver/drug_identity), in its order; None if absent."""
    if not wh.exists(spark, "silver", "drug_identity"):
        return None
    stored = wh.read(spark, "silver", "drug_identity").collect()  # one row per quarter x method: small
    per_quarter = [(r["key"], r["method"], int(r["drug_rows"])) for r in stored
                   if r["level"] == "quarter" and r["drug_rows"]]
    top = sorted(((r["key"], int(r["drug_rows"])) for r in stored if r["level"] == "unresolved_name"),
                 key=lambda kv: (-kv[1], kv[0]))
    return identity.summary_frame(per_quarter, top)


def record_build_state(
    spark: SparkSession, wh: Warehouse, versions: dict, strict_dedup: bool, seconds: float,
    identity_settings: str | None = None, mode: str = "full",
) -> None:
    """Append this build to ``silver/build_state`` (what ``_up_to_date`` checks,
    and what the next build updates from: the bronze versions it read, the
    silver versions it left, this faerslake's version, ``mode`` full / update)."""
    state = [(datetime.now(timezone.utc), bool(strict_dedup), json.dumps(versions, sort_keys=True),
              json.dumps(_silver_versions(spark, wh), sort_keys=True), seconds,
              identity_settings if identity_settings is not None else IdentitySettings().fingerprint(),
              __version__, mode)]
    wh.write(spark.createDataFrame(state, _STATE_SCHEMA), "silver", "build_state", mode="append",
             mergeSchema="true")


def build(
    spark: SparkSession,
    warehouse: str,
    strict_dedup: bool = False,
    cfg: PipelineConfig | None = None,
    log: Log | None = None,
    force: bool = False,
    output: str | None = None,
    full: bool = False,
) -> BuildResult:
    """Bronze -> ``WH/silver/*`` (reports, drugs, indications, reactions,
    outcomes, therapies, report_sources, report_status, dedup_summary,
    drug_ingredients, drug_dictionary, drug_identity).

    ``output``: also write ``OUTPUT/drug_identity.csv`` (the stored summary
    when the build is skipped).

    An update of the cases that changed bronze quarters touch when it can be
    bounded (:mod:`faerslake.silver.update`), else a full rebuild, the log
    saying why; a no-op when no bronze table changed since the last build with
    the same ``strict_dedup``. ``force=True`` or ``full=True`` rebuild all of
    silver anyway (``--force`` / ``--full``)."""
    log = sink(log, __name__)
    t0 = time.monotonic()
    cfg = cfg or PipelineConfig()
    settings = cfg.tables
    wh = Warehouse(warehouse, settings)
    with writer_lock(warehouse, "build", settings.lock_timeout_seconds, wh.by_catalog):
        result = _build(spark, wh, warehouse, strict_dedup, force, log, t0, cfg.identity, full)
    if output is not None and result.identity is not None:
        path = identity.write_identity_csv(output, result.identity)
        log(f"silver: drug identity summary written to {path}")
    return result


def _build(spark: SparkSession, wh: Warehouse, warehouse: str, strict_dedup: bool, force: bool, log: Log,
           t0: float, ident: IdentitySettings | None = None, full: bool = False) -> BuildResult:
    ident = ident or IdentitySettings()
    if not wh.exists(spark, "bronze", "demo"):
        raise InputError(
            f"no bronze DEMO table under {warehouse}: run 'faerslake ingest --warehouse {warehouse}' first."
        )
    cut = completed_cut(spark, wh, _BRONZE_CUT, warehouse)
    versions = cut.versions
    if not cut.checked:
        log(f"warning: silver: the bronze manifest under {warehouse} was written before faerslake recorded table "
            "versions in it, so an interrupted ingest cannot be told apart; building from the tables as they "
            "are (any ingest, e.g. 'faerslake ingest --force --quarters <one quarter>', records them)")
    if not force and not full and _up_to_date(spark, wh, versions, strict_dedup, ident.fingerprint()):
        log("silver: bronze unchanged since the last build; silver is up to date")
        summary = _stored_summary(spark, wh)
        stored = stored_identity(spark, wh)
        if stored is not None:
            log(identity.resolved_line(stored))
        return BuildResult(summary, {}, time.monotonic() - t0, skipped=True, strict_dedup=strict_dedup,
                           identity=stored, mode="skipped")

    asked = "asked for (--full)" if full else "asked for (--force)" if force else None
    p = update.plan(spark, wh, _last_record(spark, wh), versions, strict_dedup, asked,
                    lambda: _quarters_of(spark, wh, versions))
    if p.update:
        return _update(spark, wh, p, versions, strict_dedup, log, t0, ident)
    log(f"silver: full rebuild: {p.reason}")
    log(f"silver: reading bronze (Delta versions {versions})")
    bronze = read_bronze(spark, wh, log, versions)
    status = report_fates(bronze, strict_dedup, log)
    rows, summary = write_reports_and_status(spark, wh, status, log)
    checkpoint("build.after_reports")  # crash tests: reports written, children not
    rows.update(write_children(spark, wh, bronze, log))
    identity_rows, identity_summary = write_drug_identity(spark, wh, ident, log)
    rows.update(identity_rows)

    seconds = time.monotonic() - t0
    record_build_state(spark, wh, versions, strict_dedup, seconds, ident.fingerprint())
    log(f"silver: done in {seconds:.1f} s")
    return BuildResult(summary, rows, seconds, skipped=False, strict_dedup=strict_dedup,
                       identity=identity_summary, mode="full", reason=p.reason)


def _quarters_of(spark: SparkSession, wh: Warehouse, versions: dict) -> set[str]:
    """The quarters of bronze DEMO at the cut (a partition column: one per quarter)."""
    demo = wh.read_at(spark, "bronze", "demo", int(versions["demo"]))
    return {r[0] for r in demo.select("quarter").distinct().collect()}


def _update(spark: SparkSession, wh: Warehouse, p: update.Plan, versions: dict, strict_dedup: bool, log: Log,
            t0: float, ident: IdentitySettings) -> BuildResult:
    """The incremental path: MERGE the affected cases' rows, recount
    dedup_summary from report_status, recompute the drug identity from the
    whole updated drugs, then record the build."""
    log(f"silver: updating (bronze Delta versions {versions})")
    bronze = read_bronze(spark, wh, log, versions)
    update.apply(spark, wh, p, versions, bronze.demo, bronze.deleted, bronze.children, log)
    summary = write_summary(spark, wh, update.summary_counts(spark, wh), log)
    rows = {t: wh.read(spark, "silver", t).count() for t in update.MERGED_TABLES}  # from Delta's file statistics
    rows["dedup_summary"] = len(summary)
    identity_rows, identity_summary = write_drug_identity(spark, wh, ident, log)
    rows.update(identity_rows)
    checkpoint("build.update_before_state")
    seconds = time.monotonic() - t0
    record_build_state(spark, wh, versions, strict_dedup, seconds, ident.fingerprint(), mode="update")
    log(f"silver: updated in {seconds:.1f} s")
    return BuildResult(summary, rows, seconds, skipped=False, strict_dedup=strict_dedup,
                       identity=identity_summary, mode="update")
