# Databricks notebook source
# MAGIC %md
# MAGIC # 02 · Build: bronze → silver
# MAGIC
# MAGIC Second stage (`ingest` → **`build`** → `study`). Brings both eras (legacy AERS and FAERS)
# MAGIC to one schema and de-duplicates cases (study-spec §2): reports of deleted cases are dropped,
# MAGIC then one report per case is kept (the latest version). **strict_dedup** also merges
# MAGIC look-alike reports of different cases. Writes the silver tables and `silver.dedup_summary`.
# MAGIC
# MAGIC Use the same **warehouse** / table settings as `01_ingest`.

# COMMAND ----------

dbutils.widgets.text("warehouse", "/Volumes/main/faers/work", "Warehouse root (path mode) / staging")
dbutils.widgets.dropdown("strict_dedup", "false", ["false", "true"], "Strict de-duplication")
dbutils.widgets.dropdown("table_mode", "catalog", ["path", "catalog"], "Tables: Delta paths or catalog")
dbutils.widgets.text("catalog", "main", "Catalog (catalog mode)")
dbutils.widgets.text("schema", "faers", "Schema (catalog mode)")

# COMMAND ----------

from faerslake.config import load_pipeline_config, table_overrides
from faerslake.logs import configure
from faerslake.silver import build
from faerslake.tables import Warehouse

warehouse = dbutils.widgets.get("warehouse").strip()
strict_dedup = dbutils.widgets.get("strict_dedup") == "true"
table_mode = dbutils.widgets.get("table_mode")
catalog = dbutils.widgets.get("catalog").strip()
schema = dbutils.widgets.get("schema").strip()

cfg = load_pipeline_config(None, table_overrides(table_mode, catalog, schema))
configure()  # progress lines on stderr; logging.getLogger("faerslake").setLevel(...) to quieten
wh = Warehouse(warehouse, cfg.tables)

# COMMAND ----------

result = build(spark, warehouse, strict_dedup=strict_dedup, cfg=cfg)

# COMMAND ----------

# MAGIC %md
# MAGIC Reports read, removed and kept: one row for the whole archive (`scope = all`), then one
# MAGIC per quarter; `reports_read = removed_deleted + removed_older_versions + reports_kept`
# MAGIC (+ `removed_strict_duplicates` with strict de-duplication).

# COMMAND ----------

display(result.dedup_summary)

# COMMAND ----------

silver_rows = {t: wh.read(spark, "silver", t).count()
               for t in ("reports", "drugs", "indications", "reactions", "outcomes", "therapies",
                         "report_sources")}
for table, rows in silver_rows.items():
    print(f"silver.{table:<15} {rows:>12,} rows")

# COMMAND ----------

# MAGIC %md
# MAGIC Drug identity (`silver/drug_ingredients`, docs/drug-identity.md): drug rows resolved to an
# MAGIC active ingredient per method, for the whole archive and per era (the CSV `faerslake build
# MAGIC --output OUT` writes also has every quarter and the 100 most frequent unresolved names).

# COMMAND ----------

if result.identity is not None:
    display(result.identity[result.identity["level"].isin(["all", "era"])])
