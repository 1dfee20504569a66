"""Where the Delta tables live, and reading / writing them.

Two modes (``tables.mode`` in ``conf/pipeline.yaml``):

- ``path`` (default): ``WH/<layer>/<name>`` Delta folders under the warehouse
  (any Hadoop URI: ``file:``, ``s3a:``, ``abfss:``, ``dbfs:``);
- ``catalog``: ``<catalog>.<schema>.<layer>_<name>`` managed tables (Unity
  Catalog / Hive metastore), for Databricks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from faerslake.config import TableSettings

# Independent Delta writes (the bronze tables of a batch, the silver child
# tables, the gold results) run side by side in this many threads.
WRITE_THREADS = 4

# Delta data-skipping statistics: only where a reader can use them (a case's
# rows by report key); Delta's default, the first 32 columns, makes every
# write much slower.
BRONZE_ROW_STATS = {"delta.dataSkippingStatsColumns": "line_number,report_key"}
BRONZE_OTHER_STATS = {"delta.dataSkippingNumIndexedCols": "5"}
# Silver: the two leading columns (report key and quarter, or quarter and key
# text), which readers join on and filter by; and deletion vectors on, since an
# incremental build (faerslake.silver.update) MERGEs a few rows of every file,
# which a deletion vector marks instead of rewriting the file.
SILVER_STATS = {"delta.dataSkippingNumIndexedCols": "2", "delta.enableDeletionVectors": "true"}


@dataclass(frozen=True)
class Warehouse:
    root: str
    settings: TableSettings = TableSettings()

    def path(self, layer: str, name: str) -> str:
        return f"{self.root.rstrip('/')}/{layer}/{name}"

    def name(self, layer: str, name: str) -> str:
        parts = [p for p in (self.settings.catalog, self.settings.schema) if p]
        return ".".join(parts + [f"{layer}_{name.replace('/', '_')}"])

    def where(self, layer: str, name: str) -> str:
        """Where the table is, as a user names it: the catalog table name in
        catalog mode, else its Delta path (for messages and logs)."""
        return self.name(layer, name) if self.by_catalog else self.path(layer, name)

    @property
    def by_catalog(self) -> bool:
        return self.settings.mode == "catalog"

    def exists(self, spark, layer: str, name: str) -> bool:
        """Whether the table exists now. In path mode its ``_delta_log`` is
        listed (a commit file means a table): Delta's own check answers from
        the session's cached log, which a long-lived session (a notebook, the
        test suite) keeps stale when another process creates the table."""
        if self.by_catalog:
            return spark.catalog.tableExists(self.name(layer, name))
        listed = _log_version(spark, self.path(layer, name))
        if listed is not _UNKNOWN:
            return listed is not None
        from delta.tables import DeltaTable

        return DeltaTable.isDeltaTable(spark, self.path(layer, name))

    def read(self, spark, layer: str, name: str):
        if self.by_catalog:
            return spark.read.table(self.name(layer, name))
        return spark.read.format("delta").load(self.path(layer, name))

    def read_pinned(self, spark, layer: str, name: str):
        """(the table at its current version, that version), or (None, None)
        when it does not exist: every later read of the frame sees that version."""
        version = self.version(spark, layer, name)
        if version is None:
            return None, None
        return self.read_at(spark, layer, name, version), version

    def read_at(self, spark, layer: str, name: str, version: int):
        """The table as of Delta ``version`` (time travel): every read of the
        frame sees that version, whatever is committed meanwhile."""
        if self.by_catalog:
            ident = ".".join("`" + p.replace("`", "``") + "`" for p in self.name(layer, name).split("."))
            return spark.sql(f"SELECT * FROM {ident} VERSION AS OF {int(version)}")
        return spark.read.format("delta").option("versionAsOf", int(version)).load(self.path(layer, name))

    def writer(self, df, mode: str = "overwrite", partition_by: list[str] | None = None, **options):
        w = df.write.format("delta").mode(mode)
        if partition_by:
            w = w.partitionBy(*partition_by)
        for k, v in options.items():
            w = w.option(k, v)
        return w

    def write(self, df, layer: str, name: str, mode: str = "overwrite",
              partition_by: list[str] | None = None, **options) -> None:
        w = self.writer(df, mode, partition_by, **options)
        if self.by_catalog:
            w.saveAsTable(self.name(layer, name))
        else:
            w.save(self.path(layer, name))

    def write_counted(self, spark, df, layer: str, name: str,
                      write: Callable[[Any], None] | None = None, options: dict[str, str] | None = None,
                      recount: Callable[[], int] | None = None) -> int:
        """Write ``df`` to ``layer/name`` and return the rows written.

        ``write(df)`` does the write when given (e.g. bronze's replaceWhere with
        retries); otherwise :meth:`write` with ``options``. Path mode counts on
        the way (an ``Observation``: no second scan); a catalog write runs inside
        a command that reports no observed metrics, so there ``recount()``
        gives the count when given (a table other writers may commit to at the
        same time), else the commit's ``numOutputRows`` in the Delta log."""
        from pyspark.sql import Observation
        from pyspark.sql import functions as F

        do = write or (lambda d: self.write(d, layer, name, "overwrite", None, **(options or {})))
        if self.by_catalog:
            do(df)
            return recount() if recount is not None else self.rows_last_written(spark, layer, name)
        obs = Observation(f"{layer}_{name}".replace("/", "_"))
        do(df.observe(obs, F.count(F.lit(1)).alias("rows")))
        return int(obs.get["rows"])

    def rows_last_written(self, spark, layer: str, name: str) -> int:
        """Rows written by the table's latest commit, from the Delta log."""
        row = self.delta_table(spark, layer, name).history(1).select("operationMetrics").first()
        metrics = (row[0] if row else None) or {}
        return int(metrics.get("numOutputRows", 0))

    def delta_table(self, spark, layer: str, name: str):
        from delta.tables import DeltaTable

        if self.by_catalog:
            return DeltaTable.forName(spark, self.name(layer, name))
        return DeltaTable.forPath(spark, self.path(layer, name))

    def data_unchanged_since(self, spark, layer: str, name: str, version: int) -> bool:
        """True when every commit after ``version`` left the table's rows as
        they were (OPTIMIZE, VACUUM, ANALYZE, property changes: a user's or the
        platform's maintenance, not a writer's data)."""
        from pyspark.sql import functions as F

        ops = [r[0] for r in self.delta_table(spark, layer, name).history()
               .where(F.col("version") > int(version)).select("operation").collect()]  # commits since: few
        return bool(ops) and all(op in _DATA_NEUTRAL for op in ops)

    def version(self, spark, layer: str, name: str) -> int | None:
        """Current Delta version of a table (for provenance), None if absent.

        In path mode the newest commit file of ``_delta_log`` gives it (one
        listing, no Spark job); otherwise, or when that is not possible (a
        Spark Connect session), the table's history."""
        if not self.by_catalog:
            listed = _log_version(spark, self.path(layer, name))
            if listed is not _UNKNOWN:
                return listed
        if not self.exists(spark, layer, name):
            return None
        row = self.delta_table(spark, layer, name).history(1).select("version").first()
        return int(row[0]) if row else None


# Delta operations that do not change a table's rows
_DATA_NEUTRAL = frozenset({"OPTIMIZE", "VACUUM START", "VACUUM END", "ANALYZE", "SET TBLPROPERTIES",
                           "UNSET TBLPROPERTIES", "CHANGE COLUMN", "ADD CONSTRAINT", "SET TAGS",
                           "CLUSTER BY", "UPGRADE PROTOCOL", "REORG"})
_UNKNOWN = object()
_COMMIT_FILE = re.compile(r"^(\d{20})\.json$")


def _log_version(spark, path: str):
    """The newest version among ``path/_delta_log/<20 digits>.json`` through
    Hadoop's file system (any URI Spark can read); None when there is no Delta
    log, ``_UNKNOWN`` when the JVM cannot be reached or the log holds no
    plain commit file (managed commits: the caller asks Delta instead).

    The newest commit file is never removed by log clean-up (only files older
    than the last checkpoint are), so its number is the table's version."""
    try:
        jvm = spark._jvm
        conf = spark._jsc.hadoopConfiguration()
    except Exception:  # noqa: BLE001 - Spark Connect has no JVM gateway
        return _UNKNOWN
    if jvm is None:
        return _UNKNOWN
    log_dir = jvm.org.apache.hadoop.fs.Path(path.rstrip("/") + "/_delta_log")
    fs = log_dir.getFileSystem(conf)
    if not fs.exists(log_dir):
        return None
    best = None
    for status in fs.listStatus(log_dir):
        m = _COMMIT_FILE.match(status.getPath().getName())
        if m:
            v = int(m.group(1))
            best = v if best is None or v > best else best
    return _UNKNOWN if best is None else best


def to_spark(spark, pdf, schema):
    """A small pandas frame -> Spark with an explicit schema (StructType or DDL);
    NaN becomes null, numpy scalars Python values."""
    from faerslake.report.format import is_null

    names = ([f.name for f in schema.fields] if hasattr(schema, "fields")
             else [f.split()[0] for f in schema.split(", ")])
    rows = [tuple(None if is_null(v) else v.item() if hasattr(v, "item") else v for v in rec)
            for rec in pdf[names].itertuples(index=False)]
    return spark.createDataFrame(rows, schema)
