"""The ``faerslake study`` job: pinned silver -> cohort members -> counts and
strata -> statistics -> gold tables, CSVs and the report."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from faerslake import __version__, stats
from faerslake.config import PipelineConfig, Study, TableSettings, check_catalog_name
from faerslake.contracts import GOLD
from faerslake.errors import InputError
from faerslake.faults import checkpoint
from faerslake.files import atomic_folder, atomic_write_csv, clean_stale_folders
from faerslake.gold.cohorts import MEMBER_COLUMNS, SILVER_COLUMNS, cohort_members, in_period, require_columns
from faerslake.gold.io import to_spark
from faerslake.gold.strata import mantel_haenszel_table, strata_counts
from faerslake.lock import writer_lock
from faerslake.logs import sink
from faerslake.quarters import format_ranges
from faerslake.report import ReportContext, Upstream, quarter_sort_key, read_upstream, write_report
from faerslake.silver.job import SilverCut, _bronze_versions, completed_build
from faerslake.tables import WRITE_THREADS, Warehouse

RESULT_SCHEMA = GOLD["cohort_results"]
MH_SCHEMA = GOLD["mantel_haenszel"]
_LOGGER = "faerslake.gold"


def gold_tables(study: Study) -> list[str]:
    """The gold tables a study writes, as ``<study>/<table>`` names."""
    return [f"{study.name}/{t}" for t in ("cohort_members", "cohort_results", "mantel_haenszel")]


def cohort_counts(members: DataFrame, study: Study) -> pd.DataFrame:
    """Per-cohort report and event counts, in study order, zeros included.

    Only 2 rows per cohort come to the driver."""
    rows = (
        members.groupBy("cohort", "exposed")
        .agg(F.count(F.lit(1)).alias("reports"), F.sum(F.col("event").cast("long")).alias("events"))
        .collect()
    )
    got = {(r["cohort"], bool(r["exposed"])): (int(r["reports"]), int(r["events"] or 0)) for r in rows}
    out = []
    for c in study.cohorts:
        er, ee = got.get((c.name, True), (0, 0))
        cr, ce = got.get((c.name, False), (0, 0))
        out.append({"study": study.name, "cohort": c.name, "exposed_reports": er, "exposed_events": ee,
                    "control_reports": cr, "control_events": ce})
    return pd.DataFrame(out, columns=["study", "cohort", *stats.COUNT_COLUMNS])


def read_silver(spark: SparkSession, wh: Warehouse,
                cut: SilverCut | None = None) -> tuple[dict[str, DataFrame], dict[str, int | None]]:
    """The silver tables this stage reads, each at the version the last
    completed build left it (``cut``, default :func:`completed_build`), and
    those versions: one build's tables, never a mix of two."""
    cut = cut if cut is not None else completed_build(spark, wh, wh.root)
    silver: dict[str, DataFrame] = {}
    versions: dict[str, int | None] = {}
    for name in SILVER_COLUMNS:
        v = cut.silver.get(name)
        if v is None:
            where = wh.name("silver", name) if wh.by_catalog else wh.path("silver", name)
            raise InputError(f"silver table '{name}' not found at {where}; run 'faerslake ingest' and "
                             f"'faerslake build' first (or 'faerslake run').")
        df = wh.read_at(spark, "silver", name, v)
        require_columns(df, name, SILVER_COLUMNS[name])
        silver[name] = df
        versions[f"silver/{name}"] = v
    return silver, versions


def _warn_if_stale(spark: SparkSession, wh: Warehouse, cut: SilverCut, study: Study,
                   log: Callable[[str], None]) -> None:
    """Say so when bronze changed after the build the study reads (an ingest ran since)."""
    if not cut.bronze:
        return
    now = _bronze_versions(spark, wh)
    moved = sorted(t for t in cut.bronze if t in now and now[t] != cut.bronze[t])
    if moved:
        log(f"warning: study {study.name}: bronze ({', '.join(moved)}) changed after the last build; these "
            "results are from that build: run 'faerslake build' to include the new data")


def _upstream_versions(cut: SilverCut | None) -> dict[str, int | None] | None:
    """The versions the report's upstream tables are read at: those of the build's cut."""
    if cut is None or not cut.checked:
        return None
    return {"silver/dedup_summary": cut.silver.get("dedup_summary"),
            **{f"bronze/{t}": cut.bronze[t] for t in ("ingest_audit", "source_manifest") if t in cut.bronze}}


def write_members(spark: SparkSession, wh: Warehouse, study: Study, members: DataFrame) -> DataFrame:
    """Write ``<study>/cohort_members`` and return it read back, so later counts
    read the table instead of running the joins again."""
    check_catalog_name(study, wh.settings)  # before the first gold table is named
    name = f"{study.name}/cohort_members"
    wh.write(members.select(*MEMBER_COLUMNS), "gold", name, mode="overwrite", overwriteSchema="true")
    checkpoint("study.after_members")  # crash tests: members written, results not
    return wh.read(spark, "gold", name)


def summarise(spark: SparkSession, wh: Warehouse, study: Study, members: DataFrame, reports: DataFrame,
              cut: SilverCut | None = None) -> tuple[pd.DataFrame, pd.DataFrame, list[str], Upstream]:
    """(cohort results, MH table, quarters covered, upstream tables for the report)."""
    # the four small reads are independent Spark jobs: run them side by side
    with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
        f_counts = pool.submit(cohort_counts, members, study)
        f_strata = pool.submit(strata_counts, members, reports)
        f_quarters = pool.submit(lambda: [r[0] for r in reports.select("quarter").distinct().collect()])
        f_upstream = pool.submit(read_upstream, spark, wh, _upstream_versions(cut))
        results = stats.cohort_statistics(f_counts.result())
        mh = mantel_haenszel_table(members, reports, study, results, rows=f_strata.result())
        quarters = sorted(f_quarters.result(), key=quarter_sort_key)
        upstream = f_upstream.result()
    return results, mh, quarters, upstream


def write_results(spark: SparkSession, wh: Warehouse, study: Study,
                  results: pd.DataFrame, mh: pd.DataFrame, log: Callable[[str], None]) -> None:
    """The Delta tables ``<study>/cohort_results`` and ``<study>/mantel_haenszel``
    (their CSVs go in the study folder, :func:`write_study_folder`)."""
    tables = [(results, RESULT_SCHEMA, "cohort_results"), (mh, MH_SCHEMA, "mantel_haenszel")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        for f in [pool.submit(wh.write, to_spark(spark, pdf, schema), "gold", f"{study.name}/{table}",
                              mode="overwrite", overwriteSchema="true") for pdf, schema, table in tables]:
            f.result()
    log(f"study {study.name}: cohort_results -> {wh.path('gold', study.name + '/cohort_results')}")


STUDY_FILES = ("cohort_results.csv", "mantel_haenszel.csv", "forest_plot.png", "report.md", "report.html")


def write_study_folder(out_dir: Path, results: pd.DataFrame, mh: pd.DataFrame,
                       ctx: ReportContext) -> dict[str, Path]:
    """``OUT/<study>/`` as one unit: the two CSVs and the report (:data:`STUDY_FILES`)
    are written into a temp sibling ``OUT/.<study>.tmp-<uuid>/`` and switched
    into place only once all of them, the report included, are rendered
    (:func:`faerslake.files.atomic_folder`). A failure anywhere leaves the
    previous run's folder as it was and no temp folder; a killed run's temp
    folder is removed by the next run. Returns the report's final paths
    (``{"md", "html", "png"}``)."""

    def write(tmp: Path) -> dict[str, Path]:
        atomic_write_csv(tmp / "cohort_results.csv", results)
        checkpoint("study.output_written")  # crash tests: one file in the temp folder, not switched in
        atomic_write_csv(tmp / "mantel_haenszel.csv", mh)
        return write_report(tmp, results, ctx)

    return {k: Path(out_dir) / p.name for k, p in atomic_folder(out_dir, write).items()}


def run_study(
    spark: SparkSession,
    warehouse: str,
    study: Study,
    output: str,
    cfg: PipelineConfig | None = None,
    log: Callable[[str], None] | None = None,
    failed_quarters: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Silver -> gold for one study; returns the cohort results (pandas, one
    row per cohort in study order) and writes the tables, CSVs and report.

    ``failed_quarters`` (quarter -> reason: what this run's ingest could not
    use) is listed in the report."""
    log = sink(log, _LOGGER)
    settings = cfg.tables if cfg is not None else TableSettings()
    wh = Warehouse(warehouse, settings)
    with writer_lock(warehouse, "study", settings.lock_timeout_seconds, wh.by_catalog):
        return _run_study(spark, wh, warehouse, study, output, log, failed_quarters)


def _run_study(spark: SparkSession, wh: Warehouse, warehouse: str, study: Study, output: str,
               log: Callable[[str], None], failed_quarters: dict[str, str] | None) -> pd.DataFrame:
    out_dir = Path(output) / study.name
    clean_stale_folders(out_dir)  # a run killed between its two renames: its previous folder back first

    cut = completed_build(spark, wh, warehouse)
    _warn_if_stale(spark, wh, cut, study, log)
    silver, versions = read_silver(spark, wh, cut)
    log(f"study {study.name}: {len(study.cohorts)} cohorts; silver versions "
        + ", ".join(f"{k.split('/')[1]}@{v}" for k, v in versions.items()))
    members = write_members(spark, wh, study, cohort_members(
        spark, silver["reports"], silver["drugs"], silver["indications"], silver["reactions"], study))
    reports = in_period(silver["reports"], study)
    results, mh, quarters, upstream = summarise(spark, wh, study, members, reports, cut)
    write_results(spark, wh, study, results, mh, log)

    gold_versions = {f"gold/{name}": wh.version(spark, "gold", name) for name in gold_tables(study)}
    ctx = ReportContext(
        study=study, warehouse=warehouse, quarters=quarters, quarters_text=format_ranges(quarters),
        failed_quarters=dict(failed_quarters or {}),
        dedup_summary=upstream.dedup_summary, audit_totals=upstream.audit_totals,
        source_manifest=upstream.source_manifest,
        table_versions={**versions, **upstream.versions, **gold_versions},
        mantel_haenszel=mh, faerslake_version=__version__,
        generated_at=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
    )
    paths = write_study_folder(out_dir, results, mh, ctx)
    log(f"study {study.name}: report -> {paths.get('md')}")
    return results
