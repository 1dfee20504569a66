# Databricks notebook source
# MAGIC %md
# MAGIC # 04 · Explore one cohort
# MAGIC
# MAGIC An interactive look at one cohort of a study that `03_study` has run: its 2×2 table
# MAGIC (exposed / control × event), the preferred terms most often co-reported in its reports, and
# MAGIC the forest plot of all the study's cohorts. Reads the gold and silver tables only.

# COMMAND ----------

dbutils.widgets.text("warehouse", "/Volumes/main/faers/work", "Warehouse root (path mode) / staging")
dbutils.widgets.text("study", "", "Study YAML (empty: botox_depression)")
dbutils.widgets.text("cohort", "migraine", "Cohort")
dbutils.widgets.text("top_n", "20", "How many co-reported PTs")
dbutils.widgets.dropdown("table_mode", "catalog", ["path", "catalog"], "Tables: Delta paths or catalog")
dbutils.widgets.text("catalog", "main", "Catalog (catalog mode)")
dbutils.widgets.text("schema", "faers", "Schema (catalog mode)")

# COMMAND ----------

import io

from matplotlib.figure import Figure
from matplotlib.image import imread
from pyspark.sql import functions as F

from faerslake.config import load_pipeline_config, load_study, table_overrides
from faerslake.errors import ConfigError
from faerslake.report import forest_plot_png
from faerslake.tables import Warehouse

warehouse = dbutils.widgets.get("warehouse").strip()
study = load_study(dbutils.widgets.get("study").strip() or None)
cohort = dbutils.widgets.get("cohort").strip()
top_n = int(dbutils.widgets.get("top_n"))
table_mode = dbutils.widgets.get("table_mode")
catalog = dbutils.widgets.get("catalog").strip()
schema = dbutils.widgets.get("schema").strip()

cfg = load_pipeline_config(None, table_overrides(table_mode, catalog, schema))
wh = Warehouse(warehouse, cfg.tables)

cohort_names = [c.name for c in study.cohorts]
if cohort not in cohort_names:
    raise ConfigError(f"cohort '{cohort}' is not in study '{study.name}'; choose one of: {', '.join(cohort_names)}")
indications = next(c.indications for c in study.cohorts if c.name == cohort)
print(f"study {study.name}, cohort {cohort}: indications {', '.join(indications)}")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Counts
# MAGIC Reports of the cohort after exclusions, exposed (the study drug for one of the cohort's
# MAGIC indications) or control (the indication, no study drug), with and without the event.

# COMMAND ----------

members = wh.read(spark, "gold", f"{study.name}/cohort_members").where(F.col("cohort") == cohort)
# four numbers: safe to bring to the driver
cells = {(r["exposed"], r["event"]): r["reports"]
         for r in members.groupBy("exposed", "event").agg(F.count(F.lit(1)).alias("reports")).collect()}
two_by_two = [
    {"group": "exposed", "event": cells.get((True, True), 0), "no_event": cells.get((True, False), 0)},
    {"group": "control", "event": cells.get((False, True), 0), "no_event": cells.get((False, False), 0)},
]
for row in two_by_two:
    row["reports"] = row["event"] + row["no_event"]
    row["event_pct"] = round(100.0 * row["event"] / row["reports"], 2) if row["reports"] else None
two_by_two_df = spark.createDataFrame(
    two_by_two, "group STRING, event BIGINT, no_event BIGINT, reports BIGINT, event_pct DOUBLE"
)
display(two_by_two_df)

# COMMAND ----------

results = wh.read(spark, "gold", f"{study.name}/cohort_results").toPandas()  # one row per cohort
display(results[results["cohort"] == cohort])

# COMMAND ----------

# MAGIC %md
# MAGIC ## Top co-reported preferred terms
# MAGIC Reaction PTs most often reported in the cohort's reports, counted once per report, for
# MAGIC exposed and control reports separately (share = % of that group's reports).

# COMMAND ----------

reactions = wh.read(spark, "silver", "reactions").select("report_key", "quarter", "pt_norm")
exposed_n = max(two_by_two[0]["reports"], 1)
control_n = max(two_by_two[1]["reports"], 1)
top_pts = (
    members.join(reactions, ["report_key", "quarter"])
    .select("report_key", "quarter", "exposed", "pt_norm").distinct()
    .groupBy("pt_norm")
    .agg(F.sum(F.col("exposed").cast("int")).alias("exposed_reports"),
         F.sum((~F.col("exposed")).cast("int")).alias("control_reports"))
    .withColumn("reports", F.col("exposed_reports") + F.col("control_reports"))
    .withColumn("exposed_share_pct", F.round(100.0 * F.col("exposed_reports") / exposed_n, 2))
    .withColumn("control_share_pct", F.round(100.0 * F.col("control_reports") / control_n, 2))
    .orderBy(F.desc("reports"), F.asc("pt_norm"))
    .limit(top_n)
)
display(top_pts)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Forest plot
# MAGIC ROR and 95 % CI of every cohort of the study (log scale; open markers are
# MAGIC Haldane-corrected estimates) — the same figure as `forest_plot.png` in the report.

# COMMAND ----------

png = forest_plot_png(results, title=study.name)
forest = Figure(figsize=(9, 1.2 + 0.5 * len(results)))
ax = forest.add_subplot(1, 1, 1)
ax.imshow(imread(io.BytesIO(png), format="png"))
ax.set_axis_off()
display(forest)
