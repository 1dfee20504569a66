"""Ingest step 4: the bronze Delta tables, their explicit schemas and writes.

Place in the pipeline: discover -> decode/stage -> parse -> **bronze**;
``silver.build`` reads these tables.

Every table is partitioned by ``quarter``; a run replaces exactly the quarters
it ingests (Delta ``replaceWhere``), one atomic commit per table, so a re-run
never duplicates rows. ``source_manifest`` is written last: a run killed
half-way leaves its quarters without manifest rows, and the next run redoes
them.

The manifest is also the marker of a *completed* ingest: before a batch
writes anything, its quarters' manifest rows are removed; the batch's new
rows, committed last, carry ``bronze_versions``, the Delta version of every
other bronze table at that moment. A reader (``silver.build``) pins bronze to
the versions of the newest manifest commit and refuses when a table is newer
or a quarter has no manifest row: an ingest is running or was interrupted
(:func:`completed_cut`).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from faerslake.errors import DELTA_CONFLICTS, FaerslakeError, InputError
from faerslake.faults import checkpoint
from faerslake.ingest.discover import DELETED, TABLES
from faerslake.ingest.parse import CANONICAL
from faerslake.tables import BRONZE_OTHER_STATS, BRONZE_ROW_STATS, Warehouse

S = T.StringType()

_ROW_HEAD = [
    T.StructField("quarter", S, False),
    T.StructField("era", S, False),
    T.StructField("source_file", S, False),
    T.StructField("line_number", T.LongType(), False),
    T.StructField("report_key", S, False),
]


def table_schema(table: str) -> T.StructType:
    """The explicit schema of a bronze table."""
    if table in CANONICAL:
        return T.StructType(
            _ROW_HEAD
            + [T.StructField(c, S, True) for c in CANONICAL[table]]
            + [T.StructField("extra_fields", T.MapType(S, S, True), True)]
        )
    return _OTHER[table]


_OTHER = {
    DELETED: T.StructType([
        T.StructField("caseid", S, False),
        T.StructField("quarter", S, False),
        T.StructField("source_file", S, False),
        T.StructField("line_number", T.LongType(), False),
    ]),
    "quarantine": T.StructType([
        T.StructField("quarter", S, False),
        T.StructField("table", S, False),
        T.StructField("source_file", S, False),
        T.StructField("line_number", T.LongType(), True),
        T.StructField("raw_line", S, True),
        T.StructField("reason", S, False),
    ]),
    "ingest_audit": T.StructType([
        T.StructField("quarter", S, False),
        T.StructField("table", S, False),
        T.StructField("source_file", S, False),
        T.StructField("lines_read", T.LongType(), False),
        T.StructField("rows_loaded", T.LongType(), False),
        T.StructField("rows_repaired", T.LongType(), False),
        T.StructField("lines_repaired", T.LongType(), False),
        T.StructField("rows_quarantined", T.LongType(), False),
        T.StructField("sha256", S, False),
        T.StructField("ingested_at", T.TimestampType(), False),
    ]),
    "source_manifest": T.StructType([
        T.StructField("source", S, False),
        T.StructField("quarter", S, False),
        T.StructField("sha256", S, False),
        T.StructField("size_bytes", T.LongType(), False),
        T.StructField("ingested_at", T.TimestampType(), False),
        # JSON {table: Delta version} of every other bronze table when this
        # batch's manifest was written (null in warehouses of faerslake <= 0.1.0)
        T.StructField("bronze_versions", S, True),
    ]),
}

ROW_TABLES = TABLES
ALL_TABLES = (*TABLES, DELETED, "quarantine", "ingest_audit", "source_manifest")
# the tables a completed ingest's manifest row records the versions of
MARKED_TABLES = tuple(t for t in ALL_TABLES if t != "source_manifest")
AUDIT_COLUMNS = [f.name for f in _OTHER["ingest_audit"].fields]


def conform(df: DataFrame, table: str) -> DataFrame:
    """``df`` with exactly the bronze schema's columns, in order, with its types."""
    schema = table_schema(table)
    return df.select(*[df[f.name].cast(f.dataType).alias(f.name) for f in schema.fields])


# Delta's optimistic-concurrency conflicts: retrying the same replaceWhere is safe
_CONFLICTS = DELTA_CONFLICTS
WRITE_ATTEMPTS = 6


def _conflict_name(e: BaseException) -> str | None:
    text = f"{type(e).__name__}: {e}"
    return next((c for c in _CONFLICTS if c in text), None)


def is_write_conflict(e: BaseException) -> bool:
    """True when ``e`` is a Delta concurrent-write conflict (the commit can simply be retried)."""
    return _conflict_name(e) is not None


def _stats_props(table: str) -> dict[str, str]:
    return BRONZE_ROW_STATS if table in CANONICAL else BRONZE_OTHER_STATS


def replace_quarters(spark: SparkSession, wh: Warehouse, df: DataFrame, table: str, quarters: list[str]) -> None:
    """Replace ``quarters`` of bronze ``table`` by ``df`` in one Delta commit."""
    if table == "source_manifest":
        checkpoint("ingest.before_manifest")  # crash tests: all but the manifest committed
    df = conform(df, table)
    quoted = ", ".join("'" + q + "'" for q in sorted(quarters))
    props = {} if wh.exists(spark, "bronze", table) else _stats_props(table)
    if table == "source_manifest":
        props = {**props, "mergeSchema": "true"}  # bronze_versions, new in 0.2.0
    # two runs creating the table at once (ProtocolChanged) or writing the
    # same quarters: the loser redoes its whole, idempotent commit
    _retrying(lambda: wh.write(df, "bronze", table, mode="overwrite", partition_by=["quarter"],
                               replaceWhere=f"quarter IN ({quoted})", **props), table, quarters)
    checkpoint("ingest.table_committed")  # crash tests: a quarter half-written


def forget_quarters(spark: SparkSession, wh: Warehouse, quarters: list[str]) -> None:
    """Remove ``quarters``' manifest rows before a batch rewrites them: until the
    batch's own manifest commit, they count as not ingested (a run killed in
    between redoes them, even with unchanged sources)."""
    if not wh.exists(spark, "bronze", "source_manifest"):
        return
    empty = spark.createDataFrame([], table_schema("source_manifest"))
    quoted = ", ".join("'" + q + "'" for q in sorted(quarters))
    _retrying(lambda: wh.write(conform(empty, "source_manifest"), "bronze", "source_manifest", mode="overwrite",
                               partition_by=["quarter"], replaceWhere=f"quarter IN ({quoted})",
                               mergeSchema="true"),
              "source_manifest", quarters)


def _retrying(write, table: str, quarters: list[str]) -> None:
    for attempt in range(WRITE_ATTEMPTS):
        try:
            write()
            return
        except Exception as e:  # noqa: BLE001 - Py4J wraps Delta's exceptions
            if not is_write_conflict(e):
                raise
            if attempt + 1 == WRITE_ATTEMPTS:
                raise FaerslakeError(
                    f"bronze.{table}: another run kept writing the same table ({WRITE_ATTEMPTS} attempts, last: "
                    f"{_conflict_name(e)}); run one ingest at a time for quarters {', '.join(sorted(quarters))}."
                ) from None
            time.sleep(min(0.5 * 2**attempt, 8.0) + random.random())


def marked_versions(spark: SparkSession, wh: Warehouse) -> str:
    """The ``bronze_versions`` JSON a batch's manifest rows carry (every other bronze table, now)."""
    return json.dumps({t: wh.version(spark, "bronze", t) for t in MARKED_TABLES}, sort_keys=True)


@dataclass(frozen=True)
class BronzeCut:
    """The bronze tables as the last completed ingest left them: ``versions``
    (table -> Delta version, ``source_manifest`` included; None: no such table)
    and ``checked`` (False for a manifest written before faerslake recorded
    versions in it: the tables' current versions are used, unchecked)."""

    versions: dict[str, int | None]
    checked: bool = True


def _newest_marker(manifest: DataFrame) -> dict[str, int | None] | None:
    """The ``bronze_versions`` of the newest completed batch among the manifest
    rows: the highest recorded ``ingest_audit`` version (every batch commits the
    audit just before its manifest; versions only grow, clocks may not)."""
    texts = [r[0] for r in manifest.where(F.col("bronze_versions").isNotNull())
             .select("bronze_versions").distinct().collect()]  # one per batch still in the manifest
    marks = [json.loads(t) for t in texts]
    return max(marks, key=lambda m: m.get("ingest_audit") or -1) if marks else None


def completed_cut(spark: SparkSession, wh: Warehouse, tables: list[str], warehouse: str) -> BronzeCut:
    """The versions of bronze ``tables`` written by the last *completed* ingest.

    The manifest is read first, and every table is pinned to the version its
    newest batch recorded, so an ingest committing meanwhile cannot slip in.
    Refuses (:class:`InputError`, one sentence saying what to run) when no
    ingest completed, when a table holds data commits after that batch (an
    ingest is running or died after writing it; maintenance commits such as
    OPTIMIZE do not count), or when bronze DEMO holds a quarter without a
    manifest row (an ingest of that quarter did not finish)."""
    rerun = (f"an ingest is running or was interrupted: wait for it to finish, or run "
             f"'faerslake ingest --source <the same source> --warehouse {warehouse}' again (it redoes "
             f"the unfinished quarters; if their files are gone, put them back or ingest them with "
             f"--force --quarters), then build")
    manifest_v = wh.version(spark, "bronze", "source_manifest")
    if manifest_v is None:
        raise InputError(f"bronze under {warehouse} has tables but no completed ingest (no source_manifest): {rerun}.")
    manifest = wh.read_at(spark, "bronze", "source_manifest", manifest_v)
    marked = _newest_marker(manifest) if "bronze_versions" in manifest.columns else None
    current = {t: wh.version(spark, "bronze", t) for t in tables}
    pinned: dict[str, int | None] = {**current, "source_manifest": manifest_v}
    # first the most specific refusal: the quarters an ingest did not finish
    quarters = {r[0] for r in manifest.select("quarter").distinct().collect()}
    demo_v = current.get("demo")
    if demo_v is not None:
        demo_q = {r[0] for r in wh.read_at(spark, "bronze", "demo", demo_v).select("quarter").distinct().collect()}
        missing = sorted(demo_q - quarters)
        if missing:
            raise InputError(f"bronze holds quarters {', '.join(missing)} without a source_manifest row: {rerun}.")
    if marked is not None:
        newer = []
        for t in tables:
            was, now = marked.get(t), current[t]
            if t not in marked or now is None or now == was:
                continue
            if was is not None and now > was and wh.data_unchanged_since(spark, "bronze", t, was):
                continue  # OPTIMIZE / VACUUM since: the same rows, read at the current version
            newer.append(f"{t} (version {now}, the last completed ingest left {was})")
        if newer:
            raise InputError(f"bronze {', '.join(newer)} changed after the last completed ingest: {rerun}.")
    return BronzeCut(pinned, checked=marked is not None)


def read_manifest(spark: SparkSession, wh: Warehouse) -> dict[str, set[tuple[str, str]]]:
    """quarter -> {(source, sha256)} of the quarters ingested before."""
    if not wh.exists(spark, "bronze", "source_manifest"):
        return {}
    rows = wh.read(spark, "bronze", "source_manifest").select("quarter", "source", "sha256").collect()
    out: dict[str, set[tuple[str, str]]] = {}
    for r in rows:
        out.setdefault(r["quarter"], set()).add((r["source"], r["sha256"]))
    return out
