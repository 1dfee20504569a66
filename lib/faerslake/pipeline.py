"""``faerslake run``: ingest -> build -> study in one command.

Writes, beside the study folder ``OUT/<study>/``, ``OUT/ingest_audit.csv``
(one row per table file of the quarters this run covers) and
``OUT/dedup_summary.csv`` and ``OUT/drug_identity.csv`` (drug rows resolved
per method: docs/drug-identity.md); ``OUT/ingest_failures.csv`` lists the quarters
whose source could not be used (unreadable or refused zip) and why. Each
stage logs a progress line; ingest logs one per quarter.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from faerslake.config import PipelineConfig, Study, load_pipeline_config, resolve_strict_dedup
from faerslake.contracts import FDA_TABLES
from faerslake.files import atomic_write_csv
from faerslake.logs import sink
from faerslake.runrecord import RunRecord
from faerslake.tables import Warehouse

AUDIT_COLUMNS = ["quarter", "table", "source_file", "lines_read", "rows_loaded",
                 "rows_repaired", "lines_repaired", "rows_quarantined"]


def audit_frame(spark, wh: Warehouse, quarters: list[str] | None) -> pd.DataFrame:
    """The audit rows of the warehouse (restricted to ``quarters``), sorted.

    One row per table file: a few hundred rows for the whole archive, so it
    is safe to bring to the driver.
    """
    from faerslake.quarters import quarter_index

    if not wh.exists(spark, "bronze", "ingest_audit"):
        return pd.DataFrame(columns=AUDIT_COLUMNS)
    df = wh.read(spark, "bronze", "ingest_audit").select(*AUDIT_COLUMNS)
    if quarters:
        df = df.where(df.quarter.isin(quarters))
    pdf = pd.DataFrame([r.asDict() for r in df.collect()], columns=AUDIT_COLUMNS)
    pdf["_q"] = pdf["quarter"].map(quarter_index)
    pdf["_t"] = pdf["table"].map(lambda t: FDA_TABLES.index(t) if t in FDA_TABLES else 99)
    return pdf.sort_values(["_q", "_t", "source_file"]).drop(columns=["_q", "_t"]).reset_index(drop=True)


def run(
    spark,
    source: str,
    warehouse: str,
    output: str,
    study: Study,
    quarters: list[str] | None = None,
    force: bool = False,
    strict_dedup: bool | None = None,
    cfg: PipelineConfig | None = None,
    log: Callable[[str], None] | None = None,
    record: RunRecord | None = None,
    full: bool = False,
) -> pd.DataFrame:
    """Run the whole pipeline; return the cohort results (one row per cohort).

    Quarters that could not be ingested do not stop the run: they are in
    ``OUT/ingest_failures.csv``, the report and ``record.failed_quarters``
    (the CLI exits with :data:`~faerslake.runrecord.EXIT_PARTIAL` then).
    ``record``, when given, receives each stage's seconds, row counts and
    table versions (``OUT/run.json``). ``full``: the build rebuilds all of
    silver instead of updating what changed quarters touch."""
    from faerslake.lock import writer_lock

    record = record if record is not None else RunRecord("run")
    cfg = cfg or load_pipeline_config()
    # one writer lock across the three stages: no other run writes in between
    with writer_lock(warehouse, "run", cfg.tables.lock_timeout_seconds, cfg.tables.mode == "catalog"):
        return _run(spark, source, warehouse, output, study, quarters, force, strict_dedup, cfg, log, record,
                    full)


def _run(spark, source: str, warehouse: str, output: str, study: Study, quarters: list[str] | None, force: bool,
         strict_dedup: bool | None, cfg: PipelineConfig, log: Callable[[str], None] | None,
         record: RunRecord, full: bool = False) -> pd.DataFrame:
    from faerslake.ingest import ingest
    from faerslake.ingest.bronze import ALL_TABLES
    from faerslake.silver import SILVER_TABLES, build

    say = sink(log, __name__)
    strict_dedup = resolve_strict_dedup(strict_dedup, study, cfg)
    wh = Warehouse(warehouse, cfg.tables)
    out = Path(output)
    t0 = time.time()

    say(f"[1/3] ingest {source} -> {wh.path('bronze', '')}")
    ingested = ingest(spark, source, warehouse, quarters=quarters, force=force, cfg=cfg, log=log)
    audit = audit_frame(spark, wh, quarters)
    atomic_write_csv(out / "ingest_audit.csv", audit)
    # quarters whose zip could not be used have no audit row: say so beside it
    failed = pd.DataFrame(sorted(ingested.quarters_failed.items()), columns=["quarter", "reason"])
    atomic_write_csv(out / "ingest_failures.csv", failed)
    record.failed_quarters.update(ingested.quarters_failed)
    if len(failed):
        say(f"warning: [1/3] {len(failed)} quarters could not be ingested (see {out / 'ingest_failures.csv'}): "
            + ", ".join(failed["quarter"]))
    loaded = int(audit["rows_loaded"].sum()) if len(audit) else 0
    quarantined = int(audit["rows_quarantined"].sum()) if len(audit) else 0
    say(f"[1/3] ingest done: {len(audit)} table files, {loaded} rows "
        f"loaded, {quarantined} quarantined ({time.time() - t0:.0f}s)")
    record.stage("ingest", time.time() - t0, table_files=len(audit), rows_loaded=loaded,
                 rows_quarantined=quarantined, quarters_ingested=len(ingested.quarters_ingested),
                 quarters_skipped=len(ingested.quarters_skipped), quarters_failed=len(failed))
    record.versions("bronze", ALL_TABLES, spark, wh)

    t1 = time.time()
    say(f"[2/3] build silver (strict de-duplication {'on' if strict_dedup else 'off'})")
    result = build(spark, warehouse, strict_dedup=strict_dedup, cfg=cfg, log=log, output=output, full=full)
    summary = result.dedup_summary
    atomic_write_csv(out / "dedup_summary.csv", summary)
    kept = int(summary.loc[summary["scope"] == "all", "reports_kept"].iloc[0]) if len(summary) else 0
    say(f"[2/3] build done: {kept} reports kept ({time.time() - t1:.0f}s)")
    record.stage("build", time.time() - t1, skipped=result.skipped, mode=result.mode, reports_kept=kept,
                 rows={k: int(v) for k, v in result.rows.items()})
    record.versions("silver", [*SILVER_TABLES, "build_state"], spark, wh)

    t2 = time.time()
    say(f"[3/3] study {study.name}")
    results = study_stage(spark, warehouse, study, output, cfg, record, log=log,
                          failed_quarters=ingested.quarters_failed, strict_dedup=strict_dedup)
    say(f"[3/3] study done ({time.time() - t2:.0f}s); outputs in {out / study.name}; "
        f"total {time.time() - t0:.0f}s")
    return results


def study_stage(spark, warehouse: str, study: Study, output: str, cfg: PipelineConfig, record: RunRecord,
                log: Callable[[str], None] | None = None,
                failed_quarters: dict[str, str] | None = None,
                strict_dedup: bool | None = None) -> pd.DataFrame:
    """``run_study`` with its seconds, counts and gold table versions put in ``record``
    (``faerslake study`` and the last stage of ``faerslake run``, which passes
    the ``strict_dedup`` it built with)."""
    from faerslake.gold import gold_tables, run_study

    t = time.time()
    results = run_study(spark, warehouse, study, output, cfg=cfg, log=log, failed_quarters=failed_quarters,
                        strict_dedup=strict_dedup)
    record.stage("study", time.time() - t, cohorts=len(results),
                 exposed_reports=int(results["exposed_reports"].sum()) if len(results) else 0,
                 control_reports=int(results["control_reports"].sum()) if len(results) else 0)
    record.versions("gold", gold_tables(study), spark, Warehouse(warehouse, cfg.tables))
    return results
