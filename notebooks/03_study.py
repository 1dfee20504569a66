# Databricks notebook source
# MAGIC %md
# MAGIC # 03 · Study: silver → gold cohorts and statistics
# MAGIC
# MAGIC Last stage (`ingest` → `build` → **`study`**). Runs one study file (default: the packaged
# MAGIC `botox_depression` study, botulinum toxin and depression in eight indication-matched
# MAGIC cohorts): cohort members and per-cohort ROR / Fisher / BH q-values into
# MAGIC `gold.<study>/cohort_members` and `gold.<study>/cohort_results`, and the report
# MAGIC (`cohort_results.csv`, `report.md`, `report.html`, `forest_plot.png`) under
# MAGIC **output**`/<study>/` — a folder Python can write, such as a volume.
# MAGIC
# MAGIC **study** is the path of a study YAML (a workspace file or a volume); empty means the default.

# COMMAND ----------

dbutils.widgets.text("warehouse", "/Volumes/main/faers/work", "Warehouse root (path mode) / staging")
dbutils.widgets.text("output", "/Volumes/main/faers/output", "Output folder for the report")
dbutils.widgets.text("study", "", "Study YAML (empty: botox_depression)")
dbutils.widgets.dropdown("table_mode", "catalog", ["path", "catalog"], "Tables: Delta paths or catalog")
dbutils.widgets.text("catalog", "main", "Catalog (catalog mode)")
dbutils.widgets.text("schema", "faers", "Schema (catalog mode)")

# COMMAND ----------

from faerslake.config import load_pipeline_config, load_study, table_overrides
from faerslake.logs import configure
from faerslake.gold import format_cohort_table, run_study

warehouse = dbutils.widgets.get("warehouse").strip()
output = dbutils.widgets.get("output").strip()
study = load_study(dbutils.widgets.get("study").strip() or None)
table_mode = dbutils.widgets.get("table_mode")
catalog = dbutils.widgets.get("catalog").strip()
schema = dbutils.widgets.get("schema").strip()

cfg = load_pipeline_config(None, table_overrides(table_mode, catalog, schema))
configure()  # progress lines on stderr; logging.getLogger("faerslake").setLevel(...) to quieten

# COMMAND ----------

results = run_study(spark, warehouse, study, output, cfg=cfg)

# COMMAND ----------

# MAGIC %md
# MAGIC One row per cohort: a = exposed with the event, b = exposed without, c / d the same for
# MAGIC controls; ROR with its 95 % CI (Haldane-corrected when a cell is 0), Fisher's exact p and
# MAGIC the Benjamini–Hochberg q over the study's cohorts.

# COMMAND ----------

print(format_cohort_table(results))
display(results)

# COMMAND ----------

# MAGIC %md
# MAGIC The report itself: tables, forest plot (embedded) and provenance, as in `report.html`.

# COMMAND ----------

from pathlib import Path

displayHTML((Path(output) / study.name / "report.html").read_text(encoding="utf-8"))
