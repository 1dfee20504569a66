"""Ingest step 4: the bronze Delta tables, their explicit schemas and writes.

Place in the pipeline: discover -> decode/stage -> parse -> **bronze**;
``silver.build`` reads these tables.

Every table is partitioned by ``quarter``; a run replaces exactly the quarters
it ingests (Delta ``replaceWhere``), one atomic commit per table, so a re-run
never duplicates rows. ``source_manifest`` is written last: a run killed
half-way leaves its quarters without manifest rows, and the next run redoes
them.
"""

from __future__ import annotations

import random
import time

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from faerslake.errors import FaerslakeError
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
    ]),
}

ROW_TABLES = TABLES
ALL_TABLES = (*TABLES, DELETED, "quarantine", "ingest_audit", "source_manifest")
AUDIT_COLUMNS = [f.name for f in _OTHER["ingest_audit"].fields]


def conform(df: DataFrame, table: str) -> DataFrame:
    """``df`` with exactly the bronze schema's columns, in order, with its types."""
    schema = table_schema(table)
    return df.select(*[df[f.name].cast(f.dataType).alias(f.name) for f in schema.fields])


# Delta's optimistic-concurrency conflicts: retrying the same replaceWhere is safe
_CONFLICTS = ("ConcurrentAppendException", "ConcurrentDeleteReadException", "ConcurrentDeleteDeleteException",
              "ConcurrentWriteException", "ConcurrentTransactionException", "MetadataChangedException",
              "ProtocolChangedException")
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
    for attempt in range(WRITE_ATTEMPTS):
        try:
            wh.write(df, "bronze", table, mode="overwrite", partition_by=["quarter"],
                     replaceWhere=f"quarter IN ({quoted})", **props)
            break
        except Exception as e:  # noqa: BLE001 - Py4J wraps Delta's exceptions
            if not is_write_conflict(e):
                raise
            if attempt + 1 == WRITE_ATTEMPTS:
                raise FaerslakeError(
                    f"bronze.{table}: another run kept writing the same table ({WRITE_ATTEMPTS} attempts, last: "
                    f"{_conflict_name(e)}); run one ingest at a time for quarters {', '.join(sorted(quarters))}."
                ) from None
            # two runs creating the table at once (ProtocolChanged) or writing
            # the same quarters: the loser redoes its whole, idempotent commit
            time.sleep(min(0.5 * 2**attempt, 8.0) + random.random())
    checkpoint("ingest.table_committed")  # crash tests: a quarter half-written


def read_manifest(spark: SparkSession, wh: Warehouse) -> dict[str, set[tuple[str, str]]]:
    """quarter -> {(source, sha256)} of the quarters ingested before."""
    if not wh.exists(spark, "bronze", "source_manifest"):
        return {}
    rows = wh.read(spark, "bronze", "source_manifest").select("quarter", "source", "sha256").collect()
    out: dict[str, set[tuple[str, str]]] = {}
    for r in rows:
        out.setdefault(r["quarter"], set()).add((r["source"], r["sha256"]))
    return out
