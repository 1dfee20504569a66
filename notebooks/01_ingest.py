# Databricks notebook source
# MAGIC %md
# MAGIC # 01 · Ingest: FDA quarterly releases → bronze Delta tables
# MAGIC
# MAGIC First stage of the faerslake pipeline (`ingest` → `build` → `study`). Reads FDA's quarterly
# MAGIC zips and/or extracted quarter folders from **source** (a Unity Catalog volume such as
# MAGIC `/Volumes/main/faers/raw`, or any folder Spark and Python can both read), repairs what can be
# MAGIC repaired, quarantines what cannot (with the reason), and writes the bronze tables, the
# MAGIC quarantine and the audit. Unchanged sources are skipped unless **force** is `true`.
# MAGIC
# MAGIC Tables are either Delta folders under **warehouse** (`table_mode = path`) or catalog tables
# MAGIC `<catalog>.<schema>.bronze_<table>` (`table_mode = catalog`). In both modes zips are extracted
# MAGIC under `<warehouse>/_staging`, so **warehouse** must be a folder Python can write (a volume).
# MAGIC
# MAGIC Needs the `faerslake` wheel on the cluster (`make dist`, then install `dist/faerslake-*.whl`
# MAGIC as a cluster or job library; the bundle in `databricks.yml` does this for you).

# COMMAND ----------

dbutils.widgets.text("source", "/Volumes/main/faers/raw", "Source: FDA zips / quarter folders")
dbutils.widgets.text("warehouse", "/Volumes/main/faers/work", "Warehouse root (path mode) / staging")
dbutils.widgets.text("quarters", "", "Quarters, e.g. 2004Q1:2019Q2 (empty: all)")
dbutils.widgets.dropdown("force", "false", ["false", "true"], "Re-ingest unchanged sources")
dbutils.widgets.dropdown("table_mode", "catalog", ["path", "catalog"], "Tables: Delta paths or catalog")
dbutils.widgets.text("catalog", "main", "Catalog (catalog mode)")
dbutils.widgets.text("schema", "faers", "Schema (catalog mode)")

# COMMAND ----------

from faerslake.config import load_pipeline_config, table_overrides
from faerslake.logs import configure
from faerslake.ingest import ingest
from faerslake.quarters import quarter_range
from faerslake.tables import Warehouse

source = dbutils.widgets.get("source").strip()
warehouse = dbutils.widgets.get("warehouse").strip()
quarters = quarter_range(dbutils.widgets.get("quarters"))
force = dbutils.widgets.get("force") == "true"
table_mode = dbutils.widgets.get("table_mode")
catalog = dbutils.widgets.get("catalog").strip()
schema = dbutils.widgets.get("schema").strip()

# The same settings as `faerslake ... --set tables.mode=... --set tables.schema=...`.
cfg = load_pipeline_config(None, table_overrides(table_mode, catalog, schema))
configure()  # progress lines on stderr; logging.getLogger("faerslake").setLevel(...) to quieten
wh = Warehouse(warehouse, cfg.tables)
if wh.by_catalog:
    # identifiers quoted: widget text is never pasted into SQL as it stands
    quoted = ".".join("`" + p.replace("`", "``") + "`" for p in (catalog, schema) if p)
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS {quoted}")

# COMMAND ----------

result = ingest(spark, source, warehouse, quarters=quarters, force=force, cfg=cfg)

# COMMAND ----------

# MAGIC %md
# MAGIC One audit row per table file read in this run: for every file
# MAGIC `lines_read = (rows_loaded − rows_repaired) + lines_repaired + rows_quarantined`.

# COMMAND ----------

display(result.audit)

# COMMAND ----------

# MAGIC %md
# MAGIC Quarantined lines, by quarter, table and reason (empty when every line loaded).

# COMMAND ----------

quarantine_summary = (
    wh.read(spark, "bronze", "quarantine").groupBy("quarter", "table", "reason").count()
    .orderBy("quarter", "table", "reason")
)
display(quarantine_summary)
