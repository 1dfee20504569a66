# Databricks notebook source
# MAGIC %md
# MAGIC # 05 · Screen: every drug against every reaction term
# MAGIC
# MAGIC After `build` (and beside the study): the signal screen of the whole lake. For every drug
# MAGIC (by active ingredient when the build resolved them) and every reaction PT reported together,
# MAGIC the 2×2 counts of distinct reports, ROR and PRR with their CIs, Yates' χ², the IC with its
# MAGIC interval and DuMouchel's EBGM with EB05 / EB95 from a prior fitted to the whole screen.
# MAGIC Results: the Delta table `gold.screen_<name>/signals` (catalog mode
# MAGIC `gold_screen_<name>_signals`) and, under **output**`/screen_<name>/`, `signals.csv`
# MAGIC (pairs with at least 3 reports, by EB05), `prior.json` and the report.
# MAGIC
# MAGIC **screen** is the path of a screen YAML (empty: the packaged `all_drugs` screen); **roles**
# MAGIC (e.g. `PS,SS`), **period** (e.g. `2004Q1:2019Q4`) and **stratify** (any of
# MAGIC `sex,age_band,year`) override it when given.

# COMMAND ----------

dbutils.widgets.text("warehouse", "/Volumes/main/faers/work", "Warehouse root (path mode) / staging")
dbutils.widgets.text("output", "/Volumes/main/faers/output", "Output folder for the screen")
dbutils.widgets.text("screen", "", "Screen YAML (empty: all_drugs)")
dbutils.widgets.text("roles", "", "Role codes counted, e.g. PS,SS (empty: the screen's)")
dbutils.widgets.text("period", "", "Quarters, e.g. 2004Q1:2019Q4 (empty: the screen's)")
dbutils.widgets.text("stratify", "", "Strata of E: sex,age_band,year (empty: the screen's)")
dbutils.widgets.text("top_n", "20", "Signals shown")
dbutils.widgets.dropdown("table_mode", "catalog", ["path", "catalog"], "Tables: Delta paths or catalog")
dbutils.widgets.text("catalog", "main", "Catalog (catalog mode)")
dbutils.widgets.text("schema", "faers", "Schema (catalog mode)")

# COMMAND ----------

from faerslake.config import load_pipeline_config, load_screen, load_study, override_screen, table_overrides
from faerslake.logs import configure
from faerslake.screen import run_screen

warehouse = dbutils.widgets.get("warehouse").strip()
output = dbutils.widgets.get("output").strip()
table_mode = dbutils.widgets.get("table_mode")
catalog = dbutils.widgets.get("catalog").strip()
schema = dbutils.widgets.get("schema").strip()
top_n = max(1, int(dbutils.widgets.get("top_n").strip() or "20"))

cfg = load_pipeline_config(None, table_overrides(table_mode, catalog, schema))
screen = load_screen(dbutils.widgets.get("screen").strip() or None, tables=cfg.tables)
screen = override_screen(screen, cfg.tables,
                         roles=dbutils.widgets.get("roles").strip() or None,
                         period=dbutils.widgets.get("period").strip() or None,
                         stratify=dbutils.widgets.get("stratify").strip() or None)
configure()  # progress lines on stderr

# COMMAND ----------

result = run_screen(spark, warehouse, screen, output, cfg=cfg, study=load_study(), top=top_n)

# COMMAND ----------

# MAGIC %md
# MAGIC The top signals by EB05 (the lower 5 % limit of the shrunk reporting ratio): a pair with
# MAGIC few reports is pulled towards the screen's prior, so it does not outrank a solid signal.
# MAGIC The prior's parameters, and whether its fit converged, are in `prior.json`.

# COMMAND ----------

print(f"{result.n_reports:,} reports, {result.pairs:,} pairs; prior converged: {result.prior.converged}")
display(result.top.head(top_n))

# COMMAND ----------

# MAGIC %md
# MAGIC The whole screen, as a picture (EB05 against a; the study's exposure in red).

# COMMAND ----------

displayHTML((result.paths["html"]).read_text())
