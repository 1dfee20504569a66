"""The ``ingest`` step: sources -> bronze Delta tables, with repair, quarantine and an audit.

Place in the pipeline: first step (``faerslake ingest`` / ``pipeline.run``);
``silver.build`` reads what it writes. The plan of one run:

1. discover the quarters of the source; skip those whose source files
   (SHA-256) are unchanged since they were ingested (unless ``force``);
2. cut the rest into batches of about ``BATCH_BYTES`` of text;
3. stage every table file once into UTF-8 part files (``stage``); a damaged
   zip fails its quarter only;
4. load: set aside and repair the lines that do not fit, write every bronze
   table and the quarantine (``load``);
5. the audit, one row per table file (``audit``), then the manifest.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pandas as pd
from pyspark.sql import SparkSession

from faerslake.config import PipelineConfig
from faerslake.errors import InputError
from faerslake.files import has_scheme, sha256_file, strip_file_scheme
from faerslake.ingest import bronze
from faerslake.ingest.audit import audit_rows
from faerslake.ingest.discover import Discovery, QuarterFiles, discover
from faerslake.ingest.load import load_bronze
from faerslake.ingest.stage import stage_batch
from faerslake.lock import writer_lock
from faerslake.logs import sink
from faerslake.tables import Warehouse

# Quarters are staged and written in batches of about this much text, so the
# staging folder holds at most one batch (the whole archive is ~35 GB of text).
BATCH_BYTES = 8 * 1024**3


@dataclass
class IngestResult:
    audit: pd.DataFrame  # one row per table file of this run (bronze.AUDIT_COLUMNS)
    quarters_ingested: list[str] = field(default_factory=list)
    quarters_skipped: list[str] = field(default_factory=list)  # unchanged since last ingest
    quarters_failed: dict[str, str] = field(default_factory=dict)  # quarter -> why
    ignored_files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows_loaded(self) -> int:
        return int(self.audit["rows_loaded"].sum()) if len(self.audit) else 0


def ingest(
    spark: SparkSession,
    source: str,
    warehouse: str,
    quarters: list[str] | None = None,
    force: bool = False,
    cfg: PipelineConfig | None = None,
    log: Callable[[str], None] | None = None,
) -> IngestResult:
    """Ingest the FDA quarterly files under ``source`` into ``warehouse``'s bronze tables."""
    log = sink(log, __name__)
    t0 = time.time()
    cfg = cfg or PipelineConfig()
    wh = Warehouse(warehouse, cfg.tables)
    disc = discover(source, cfg.ingest, quarters)
    result = IngestResult(_empty_audit(), ignored_files=list(disc.ignored), warnings=list(disc.warnings))
    _report_discovery(disc, source, quarters, result, log)
    with writer_lock(warehouse, "ingest", cfg.tables.lock_timeout_seconds, wh.by_catalog):
        return _ingest(spark, warehouse, wh, disc, force, cfg, result, log, t0)


def _ingest(spark: SparkSession, warehouse: str, wh: Warehouse, disc: Discovery, force: bool,
            cfg: PipelineConfig, result: IngestResult, log: Callable[[str], None], t0: float) -> IngestResult:
    todo, sha = _changed_quarters(spark, wh, disc, force, result, log)
    if not todo:
        result.seconds = time.time() - t0
        log("nothing to ingest")
        return result
    staging_root = _local_dir(cfg.ingest.staging_dir or f"{warehouse.rstrip('/')}/_staging", "staging folder")
    audit, ingested = _ingest_batches(spark, wh, todo, sha, staging_root, cfg.ingest.max_line_chars, result, log)
    result.audit = pd.DataFrame(audit, columns=bronze.AUDIT_COLUMNS)
    result.quarters_ingested = ingested
    result.seconds = time.time() - t0
    if not ingested:
        log("no quarter could be staged; nothing written")
        return result
    total = result.rows_loaded
    log(f"ingest done: {len(ingested)} quarters, {total:,} rows in {result.seconds:.1f}s "
        f"({total / max(result.seconds, 1e-9):,.0f} rows/s)")
    return result


def _empty_audit() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in bronze.AUDIT_COLUMNS})


def _report_discovery(disc: Discovery, source: str, quarters: list[str] | None, result: IngestResult,
                      log: Callable[[str], None]) -> None:
    """Say what discovery found besides table files; no quarter at all is an :class:`InputError`."""
    for w in disc.warnings:
        log(f"warning: {w}")
    if disc.ignored:
        shown = ", ".join(disc.ignored[:12]) + (f", ... ({len(disc.ignored) - 12} more)" if len(disc.ignored) > 12 else "")
        log(f"ignoring {len(disc.ignored)} files that are not FAERS tables: {shown}")
    if not disc.quarters:
        wanted = f" for quarters {', '.join(quarters)}" if quarters else ""
        raise InputError(
            f"no FAERS / AERS table files{wanted} found in {source}: pass the folder holding the FDA zips "
            f"(aers_ascii_2004q1.zip, faers_ascii_2019Q1.zip) or the extracted DEMO/DRUG/... files."
        )
    for q, qf in disc.quarters.items():
        if qf.problem:
            result.quarters_failed[q] = qf.problem
            log(f"{q}: SKIPPED, {qf.problem}")


def _changed_quarters(spark: SparkSession, wh: Warehouse, disc: Discovery, force: bool, result: IngestResult,
                      log: Callable[[str], None]) -> tuple[list[QuarterFiles], dict[str, str]]:
    """The quarters to ingest (their sources changed since the manifest, or ``force``),
    and the SHA-256 of every source file read."""
    sha: dict[str, str] = {}
    todo: list[QuarterFiles] = []
    manifest = {} if force else bronze.read_manifest(spark, wh)
    for q, qf in disc.quarters.items():
        if qf.problem:
            continue
        try:
            for s in qf.sources:
                if s.rel not in sha:
                    sha[s.rel] = sha256_file(s.path)
        except OSError as e:  # changed since discovery checked it: that quarter fails
            result.quarters_failed[q] = f"{s.rel} cannot be read ({e.strerror or e}): fix or remove it"
            log(f"{q}: SKIPPED, {result.quarters_failed[q]}")
            continue
        current = {(s.rel, sha[s.rel]) for s in qf.sources}
        if not force and manifest.get(q) == current:
            result.quarters_skipped.append(q)
            continue
        todo.append(qf)
    if result.quarters_skipped:
        log(f"unchanged since last ingest, skipped (use --force to redo): {', '.join(result.quarters_skipped)}")
    return todo, sha


def _ingest_batches(spark: SparkSession, wh: Warehouse, todo: list[QuarterFiles], sha: dict[str, str],
                    staging_root: Path, max_line_chars: int, result: IngestResult,
                    log: Callable[[str], None]) -> tuple[list[dict], list[str]]:
    """Ingest ``todo`` batch by batch in a staging folder of this run; returns (audit rows, quarters written)."""
    run_dir = staging_root / f"ingest-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    lock = _claim_staging(run_dir, log)
    audit: list[dict] = []
    ingested: list[str] = []
    batches = _batches(todo, BATCH_BYTES)
    try:
        for bi, batch in enumerate(batches):
            if len(batches) > 1:
                log(f"batch {bi + 1}/{len(batches)}: {batch[0].quarter}..{batch[-1].quarter}")
            b_audit, b_quarters = _ingest_batch(spark, wh, batch, sha, run_dir, max_line_chars, result, log)
            audit.extend(b_audit)
            ingested.extend(b_quarters)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        lock.close()
    return audit, ingested


def _batches(todo: list[QuarterFiles], limit: int) -> list[list[QuarterFiles]]:
    """Consecutive quarters whose text (inflated) stays under ``limit`` bytes per batch,
    so the staging folder never holds more than about one batch."""
    out: list[list[QuarterFiles]] = []
    size = 0
    for qf in todo:
        q_size = qf.text_bytes
        if out and size + q_size <= limit:
            out[-1].append(qf)
            size += q_size
        else:
            out.append([qf])
            size = q_size
    return out


def _ingest_batch(spark: SparkSession, wh: Warehouse, batch: list[QuarterFiles], sha: dict[str, str],
                  run_dir: Path, max_line_chars: int, result: IngestResult,
                  log: Callable[[str], None]) -> tuple[list[dict], list[str]]:
    """Stage, load and audit one batch of quarters; returns (audit rows, quarters written)."""
    for sub in ("parts", "aside"):
        shutil.rmtree(run_dir / sub, ignore_errors=True)
    jobs = stage_batch(batch, run_dir, max_line_chars, result.quarters_failed, result.warnings, log)
    ingested = [qf.quarter for qf in batch if qf.quarter not in result.quarters_failed]
    if not ingested:
        return [], []
    jobs = [j for j in jobs if j.tf.quarter in ingested]
    bronze.forget_quarters(spark, wh, ingested)  # not ingested until this batch's manifest commit
    counts, written = load_bronze(spark, wh, jobs, ingested, run_dir, max_line_chars, log)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    audit = [{**r, "ingested_at": now} for r in audit_rows(jobs, counts, written)]
    bronze.replace_quarters(spark, wh, spark.createDataFrame(
        [tuple(r[c] for c in bronze.AUDIT_COLUMNS) for r in audit],
        bronze.table_schema("ingest_audit")), "ingest_audit", ingested)
    # manifest last, with the versions it completes: a run killed before this
    # line redoes its quarters, and builds refuse the half-written tables
    marked = bronze.marked_versions(spark, wh)
    rows = [(s.rel, qf.quarter, sha[s.rel], int(s.size), now, marked)
            for qf in batch if qf.quarter in ingested for s in qf.sources]
    bronze.replace_quarters(spark, wh, spark.createDataFrame(rows, bronze.table_schema("source_manifest")),
                            "source_manifest", ingested)
    for q in ingested:
        a = [r for r in audit if r["quarter"] == q]
        log(f"{q}: {len(a)} files, {sum(r['rows_loaded'] for r in a):,} rows loaded "
            f"({sum(r['rows_repaired'] for r in a)} repaired), "
            f"{sum(r['rows_quarantined'] for r in a)} lines quarantined")
    return audit, ingested


def _claim_staging(run_dir: Path, log: Callable[[str], None]) -> IO[str]:
    """Create ``run_dir`` holding an exclusive lock for this run's lifetime; remove
    the staging folders of earlier runs that died (SIGKILL, power cut) without
    their ``finally``. A folder is removed only when its lock can be taken: its
    run is gone (the kernel drops a dead process's locks); folders without a lock
    file, or on a file system without locks, are left alone."""
    import fcntl

    run_dir.mkdir(parents=True)
    lock = open(run_dir / ".lock", "w")  # noqa: SIM115 - held open until the run ends
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return lock  # no locks here: keep what others left, it is only disk space
    for d in sorted(run_dir.parent.glob("ingest-*")):
        if d == run_dir or not (d / ".lock").is_file():
            continue
        try:
            with open(d / ".lock") as other:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(d, ignore_errors=True)
            log(f"removed the staging folder of an interrupted ingest: {d}")
        except OSError:
            continue  # a live run's folder (or already gone)
    return lock


def _local_dir(uri: str, what: str) -> Path:
    uri = strip_file_scheme(uri)
    if has_scheme(uri):
        raise InputError(
            f"{what} {uri} is not a local folder: set ingest.staging_dir (--set ingest.staging_dir=/local/dir) "
            f"to a folder on a disk every Spark executor can read."
        )
    return Path(uri).expanduser().resolve()


__all__ = ["IngestResult", "ingest"]
