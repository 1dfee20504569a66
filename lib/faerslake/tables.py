"""Where the Delta tables live, and reading / writing them.

Two modes (``tables.mode`` in ``conf/pipeline.yaml``):

- ``path`` (default): ``WH/<layer>/<name>`` Delta folders under the warehouse
  (any Hadoop URI: ``file:``, ``s3a:``, ``abfss:``, ``dbfs:``);
- ``catalog``: ``<catalog>.<schema>.<layer>_<name>`` managed tables (Unity
  Catalog / Hive metastore), for Databricks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from faerslake.config import TableSettings


@dataclass(frozen=True)
class Warehouse:
    root: str
    settings: TableSettings = TableSettings()

    def path(self, layer: str, name: str) -> str:
        return f"{self.root.rstrip('/')}/{layer}/{name}"

    def name(self, layer: str, name: str) -> str:
        parts = [p for p in (self.settings.catalog, self.settings.schema) if p]
        return ".".join(parts + [f"{layer}_{name.replace('/', '_')}"])

    @property
    def by_catalog(self) -> bool:
        return self.settings.mode == "catalog"

    def exists(self, spark, layer: str, name: str) -> bool:
        if self.by_catalog:
            return spark.catalog.tableExists(self.name(layer, name))
        from delta.tables import DeltaTable

        return DeltaTable.isDeltaTable(spark, self.path(layer, name))

    def read(self, spark, layer: str, name: str):
        if self.by_catalog:
            return spark.read.table(self.name(layer, name))
        return spark.read.format("delta").load(self.path(layer, name))

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

    def delta_table(self, spark, layer: str, name: str):
        from delta.tables import DeltaTable

        if self.by_catalog:
            return DeltaTable.forName(spark, self.name(layer, name))
        return DeltaTable.forPath(spark, self.path(layer, name))

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
