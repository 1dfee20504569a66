"""The ``ingest`` step: sources -> bronze Delta tables, with repair, quarantine and an audit.

Place in the pipeline: first step (``faerslake ingest`` / ``pipeline.run``);
``silver.build`` reads what it writes. The plan of one run:

1. discover the quarters of the source; skip those whose source files
   (SHA-256) are unchanged since they were ingested (unless ``force``);
2. stage: stream every table file once into UTF-8 part files (``decode``); a
   damaged zip fails its quarter only;
3. one Spark job sets aside every line that does not fit its header; the few
   damaged ones are repaired on the driver (bounded), the rest quarantined;
4. one Spark job per bronze table writes all quarters of the run (Delta
   ``replaceWhere`` on those quarters: atomic, never duplicated);
5. the audit (one row per table file, lines_read = (rows_loaded -
   rows_repaired) + lines_repaired + rows_quarantined), then the manifest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import multiprocessing
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from faerslake.config import PipelineConfig
from faerslake.errors import FaerslakeError, InputError
from faerslake.ingest import bronze
from faerslake.ingest.decode import StagedFile, StageSpec, renumber, stage_files
from faerslake.ingest.discover import DELETED, TABLES, QuarterFiles, Source, TableFile, discover
from faerslake.ingest.parse import (
    CANONICAL,
    RAW_LINE_CHARS,
    REPAIR_MAX_CHARS,
    Layout,
    Repaired,
    layout_from_header,
    numbering_metrics,
    one_partition_per_part,
    per_file,
    project_rows,
    read_parts,
    repair_lines,
    set_aside,
)
from faerslake.logs import sink
from faerslake.quarters import era_of
from faerslake.tables import Warehouse

# At most this many damaged lines of one file are brought to the driver for
# repair; a file with more (binary junk, a wrong delimiter) is quarantined as is.
MAX_REPAIR_LINES_PER_FILE = 10_000
WRITE_THREADS = 4
# Quarters are staged and written in batches of about this much text, so the
# staging folder holds at most one batch (the whole archive is ~35 GB of text).
BATCH_BYTES = 8 * 1024**3
BROADCAST_ASIDE_ROWS = 2_000_000
# Batches with more text than this are staged by a pool of processes, a
# quarter per task (below it, starting the processes costs more than it saves).
STAGE_POOL_MIN_BYTES = 256 * 1024**2
STAGE_MAX_WORKERS = 8


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


@dataclass
class _FileJob:
    idx: int
    tf: TableFile
    staged: StagedFile
    layout: Layout
    repairs: list[Repaired] = field(default_factory=list)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for b in iter(lambda: fh.read(4 * 1024 * 1024), b""):
            h.update(b)
    return h.hexdigest()


def _local_dir(uri: str, what: str) -> Path:
    if uri.startswith("file:"):
        uri = re.sub(r"^file:(//)?", "", uri)
        uri = uri if uri.startswith("/") else "/" + uri
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]+:", uri):
        raise InputError(
            f"{what} {uri} is not a local folder: set ingest.staging_dir (--set ingest.staging_dir=/local/dir) "
            f"to a folder on a disk every Spark executor can read."
        )
    return Path(uri).expanduser().resolve()


def _claim_staging(run_dir: Path, log: Callable[[str], None]):
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


def _empty_audit() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in bronze.AUDIT_COLUMNS})


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
    settings = cfg.ingest
    wh = Warehouse(warehouse, cfg.tables)
    disc = discover(source, settings, quarters)
    result = IngestResult(_empty_audit(), ignored_files=list(disc.ignored), warnings=list(disc.warnings))
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

    # ---- 1. which quarters changed --------------------------------------- #
    sha: dict[str, str] = {}
    todo: list[QuarterFiles] = []
    manifest = {} if force else bronze.read_manifest(spark, wh)
    for q, qf in disc.quarters.items():
        if qf.problem:
            continue
        for s in qf.sources:
            if s.rel not in sha:
                sha[s.rel] = _sha256_file(s.path)
        current = {(s.rel, sha[s.rel]) for s in qf.sources}
        if not force and manifest.get(q) == current:
            result.quarters_skipped.append(q)
            continue
        todo.append(qf)
    if result.quarters_skipped:
        log(f"unchanged since last ingest, skipped (use --force to redo): {', '.join(result.quarters_skipped)}")
    if not todo:
        result.seconds = time.time() - t0
        log("nothing to ingest")
        return result

    staging_root = _local_dir(settings.staging_dir or f"{warehouse.rstrip('/')}/_staging", "staging folder")
    run_dir = staging_root / f"ingest-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    lock = _claim_staging(run_dir, log)
    audit: list[dict] = []
    ingested: list[str] = []
    batches = _batches(todo, BATCH_BYTES)
    try:
        for bi, batch in enumerate(batches):
            if len(batches) > 1:
                log(f"batch {bi + 1}/{len(batches)}: {batch[0].quarter}..{batch[-1].quarter}")
            b_audit, b_quarters = _ingest_batch(spark, wh, batch, sha, run_dir, settings.max_line_chars,
                                                result, log)
            audit.extend(b_audit)
            ingested.extend(b_quarters)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        lock.close()

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


def _text_bytes(qf: QuarterFiles) -> int:
    """Bytes of table text of a quarter (inflated size of zip members)."""
    return sum(tf.member_size if tf.member_size is not None else tf.source.size for tf in qf.files)


def _batches(todo: list[QuarterFiles], limit: int) -> list[list[QuarterFiles]]:
    """Consecutive quarters whose text (inflated) stays under ``limit`` bytes per batch,
    so the staging folder never holds more than about one batch."""
    out: list[list[QuarterFiles]] = []
    size = 0
    for qf in todo:
        q_size = _text_bytes(qf)
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
    """Stage, parse and write one batch of quarters; returns (audit rows, quarters written)."""
    for sub in ("parts", "aside"):
        shutil.rmtree(run_dir / sub, ignore_errors=True)
    jobs = _stage(batch, run_dir, max_line_chars, result, log)
    ingested = [qf.quarter for qf in batch if qf.quarter not in result.quarters_failed]
    if not ingested:
        return [], []
    jobs = [j for j in jobs if j.tf.quarter in ingested]
    audit = _spark_phase(spark, wh, jobs, ingested, run_dir, max_line_chars, log)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    audit = [{**r, "ingested_at": now} for r in audit]
    bronze.replace_quarters(spark, wh, spark.createDataFrame(
        [tuple(r[c] for c in bronze.AUDIT_COLUMNS) for r in audit],
        bronze.table_schema("ingest_audit")), "ingest_audit", ingested)
    # manifest last: a run killed before this line redoes its quarters
    rows = [(s.rel, qf.quarter, sha[s.rel], int(s.size), now)
            for qf in batch if qf.quarter in ingested for s in qf.sources]
    bronze.replace_quarters(spark, wh, spark.createDataFrame(rows, bronze.table_schema("source_manifest")),
                            "source_manifest", ingested)
    for q in ingested:
        a = [r for r in audit if r["quarter"] == q]
        log(f"{q}: {len(a)} files, {sum(r['rows_loaded'] for r in a):,} rows loaded "
            f"({sum(r['rows_repaired'] for r in a)} repaired), "
            f"{sum(r['rows_quarantined'] for r in a)} lines quarantined")
    return audit, ingested


def _stage_workers(todo: list[QuarterFiles]) -> int:
    """Worker processes for staging: one per core (at most STAGE_MAX_WORKERS),
    none (stage in this process) for a small batch or a single quarter."""
    text = sum(_text_bytes(qf) for qf in todo)
    if len(todo) < 2 or text < STAGE_POOL_MIN_BYTES:
        return 0
    return min(os.cpu_count() or 1, len(todo), STAGE_MAX_WORKERS)


def _stage(todo: list[QuarterFiles], run_dir: Path, max_line_chars: int, result: IngestResult,
           log: Callable[[str], None]) -> list[_FileJob]:
    """Stage every table file of ``todo`` (quarters side by side in worker
    processes when the batch is large); a quarter whose source cannot be read
    is recorded in ``result.quarters_failed`` and left out."""
    plans: list[tuple[QuarterFiles, list[TableFile], list[StageSpec]]] = []
    idx = 0
    for qf in todo:
        files = sorted(qf.files, key=lambda f: (f.table, f.source_file))
        specs = [StageSpec(str(tf.source.path), tf.member, tf.source_file, str(run_dir / "parts" / tf.table),
                           idx + k, header_is_optional=tf.table == DELETED) for k, tf in enumerate(files)]
        idx += len(files)
        plans.append((qf, files, specs))
    workers = _stage_workers(todo)
    if workers > 1:
        # zlib, SHA-256 and the byte decoding are CPU work: one process per
        # core; "spawn" because this process holds the Spark gateway's threads
        ctx = multiprocessing.get_context("spawn")
        t = time.time()
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = [pool.submit(stage_files, specs, max_line_chars) for _, _, specs in plans]
            outcomes = [f.result() for f in futures]
        log(f"staged {len(plans)} quarters in {time.time() - t:.1f}s with {workers} processes")
    else:
        outcomes = [stage_files(specs, max_line_chars) for _, _, specs in plans]

    jobs: list[_FileJob] = []
    for (qf, files, _), (staged, error, seconds) in zip(plans, outcomes, strict=True):
        if error is not None:
            result.quarters_failed[qf.quarter] = error
            log(f"{qf.quarter}: SKIPPED, {error}")
            continue
        q_jobs: list[_FileJob] = []
        nbytes = 0
        for tf, st in zip(files, staged, strict=True):
            # failed quarters leave no gap in the global index
            renumber(st, len(jobs) + len(q_jobs))
            layout, warns = layout_from_header(tf.table, st.header)
            for w in warns:
                msg = f"{tf.source_file}: {w}"
                result.warnings.append(msg)
                log(f"warning: {msg}")
            if layout.problem and st.data_lines:
                msg = f"{tf.source_file}: {layout.problem}; all its lines are quarantined"
                result.warnings.append(msg)
                log(f"warning: {msg}")
            if st.header is None and tf.table != DELETED:
                msg = f"{tf.source_file} is empty (no header line)"
                result.warnings.append(msg)
                log(f"warning: {msg}")
            nbytes += st.size_bytes
            q_jobs.append(_FileJob(st.file_idx, tf, st, layout))
        jobs.extend(q_jobs)
        log(f"{qf.quarter}: staged {len(q_jobs)} files ({nbytes / 1e6:,.1f} MB) in {seconds:.1f}s")
    return jobs


def _spark_phase(spark: SparkSession, wh: Warehouse, jobs: list[_FileJob], quarters: list[str],
                 run_dir: Path, max_line_chars: int, log: Callable[[str], None]) -> list[dict]:
    for pos, j in enumerate(jobs):
        if j.idx != pos:  # a failed quarter in between: part names carry the old index
            raise FaerslakeError("internal error: file index out of step")  # pragma: no cover
    quarter_of = per_file([j.tf.quarter for j in jobs])
    era_of_file = per_file([era_of(j.tf.quarter) for j in jobs])
    source_of = per_file([j.tf.source_file for j in jobs])

    groups: dict[tuple[str, Layout], list[str]] = {}
    for j in jobs:
        if j.staged.parts:
            groups.setdefault((j.tf.table, j.layout), []).extend("file://" + str(p.path) for p in j.staged.parts)

    aside_path = "file://" + str(run_dir / "aside")
    with one_partition_per_part(spark):
        # ---- set aside every line that does not fit (one job) ------------ #
        # one scan of every part, each line checked against its own file's
        # layout (looked up by file_idx): one plan and one generated program
        # for all layouts, where a union of one scan per layout took one each
        t = time.time()
        all_paths = [p for paths in groups.values() for p in paths]
        n_aside = 0
        if all_paths:
            numbering = Observation("numbering")
            aside_obs = Observation("aside")
            df = set_aside(read_parts(spark, all_paths).observe(numbering, *numbering_metrics()),
                           [j.layout for j in jobs], max_line_chars)
            df.observe(aside_obs, F.count(F.lit(1)).alias("rows")).write.mode("overwrite").parquet(aside_path)
            n_aside = int(aside_obs.get["rows"])
            _check_numbering([numbering], sum(j.staged.data_lines for j in jobs))
        counts: dict[int, dict[str, int]] = {}
        if n_aside:
            aside = spark.read.parquet(aside_path)
            for r in aside.groupBy("file_idx", "status").count().collect():
                counts.setdefault(r["file_idx"], {})[r["status"]] = r["count"]
        else:  # the usual case: every line fits, no further job over the set-aside lines
            aside = spark.createDataFrame([], "file_idx INT, line_number LONG, status STRING, nfields INT, "
                                              "length INT, raw STRING")
        # ---- repairs (driver, bounded) ----------------------------------- #
        eligible = [i for i, c in counts.items()
                    if 0 < c.get("fields", 0) + c.get("key", 0) <= MAX_REPAIR_LINES_PER_FILE
                    and jobs[i].tf.table != DELETED]
        for i, c in counts.items():
            if c.get("fields", 0) + c.get("key", 0) > MAX_REPAIR_LINES_PER_FILE:
                log(f"warning: {jobs[i].tf.source_file}: {c['fields'] + c.get('key', 0):,} lines do not fit the "
                    f"header; too many to repair, all quarantined")
        if eligible:
            cand = (aside.where(F.col("file_idx").isin(eligible) & F.col("status").isin("fields", "key")
                                & (F.col("length") <= REPAIR_MAX_CHARS))
                    .select("file_idx", "line_number", "raw").collect())
            by_file: dict[int, list[tuple[int, str]]] = {}
            for r in cand:
                by_file.setdefault(r["file_idx"], []).append((r["line_number"], r["raw"]))
            for i, lines in by_file.items():
                lines.sort()
                jobs[i].repairs = repair_lines(lines, jobs[i].layout.n, jobs[i].layout.key_pos)
        consumed = sorted({(j.idx, ln) for j in jobs for r in j.repairs for ln in r.lines})
        log(f"checked every line in {time.time() - t:.1f}s: "
            f"{sum(c for d in counts.values() for s, c in d.items() if s != 'blank'):,} do not fit their header, "
            f"{sum(len(j.repairs) for j in jobs)} records repaired")

        # ---- bronze tables: one job per table over all quarters ---------- #
        written: dict[str, int] = {}
        writes: list[tuple[str, DataFrame]] = []
        for table in (*TABLES, DELETED):
            schema = bronze.table_schema(table)
            row_cols = [f.name for f in schema.fields if f.name not in ("quarter", "era", "source_file")]
            files = [j.idx for j in jobs if j.tf.table == table]
            table_aside = sum(sum(counts.get(i, {}).values()) for i in files)
            frames = []
            for (tb, layout), paths in groups.items():
                if tb != table:
                    continue
                lines = read_parts(spark, paths)
                if table_aside:
                    # the set-aside lines (found once, above) are all the lines
                    # that do not fit: no second evaluation of the checks
                    keys = aside.where(F.col("file_idx").isin(files)).select("file_idx", "line_number")
                    if table_aside <= BROADCAST_ASIDE_ROWS:
                        keys = F.broadcast(keys)
                    lines = lines.join(keys, ["file_idx", "line_number"], "left_anti")
                frames.append(project_rows(lines, layout))
            fixed = [(j.idx, r.line_number, *_repaired_values(j.layout, r)) for j in jobs
                     if j.tf.table == table for r in j.repairs]
            if fixed:
                fschema = "file_idx INT, line_number LONG, report_key STRING, " + ", ".join(
                    f"{c} STRING" for c in CANONICAL[table]) + ", extra_fields MAP<STRING,STRING>"
                frames.append(spark.createDataFrame(fixed, fschema))
            if frames:
                df = frames[0]
                for f in frames[1:]:
                    df = df.unionByName(f)
                df = df.select(
                    quarter_of.alias("quarter"), era_of_file.alias("era"), source_of.alias("source_file"),
                    *[c for c in row_cols if c not in ("era",)],
                )
            else:
                df = spark.createDataFrame([], schema)
            writes.append((table, df))

        # ---- quarantine --------------------------------------------------- #
        bad = aside.where(F.col("status") != "blank")
        if consumed:
            used = spark.createDataFrame(consumed, "file_idx INT, line_number LONG")
            bad = bad.join(F.broadcast(used), ["file_idx", "line_number"], "left_anti")
        control = F.when(F.col("raw").rlike("[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f]"),
                         F.lit(" (the line holds control bytes: binary data?)")).otherwise(F.lit(""))
        reason = (
            F.when(F.col("status") == "too_long",
                   F.concat(F.lit("line of "), F.col("length").cast("string"),
                            F.lit(f"+ characters, longer than ingest.max_line_chars={max_line_chars}")))
            .when(F.col("status") == "no_key", per_file([j.layout.problem or "" for j in jobs]))
            .when(F.col("status") == "fields",
                  F.concat(F.col("nfields").cast("string"), F.lit(" $-separated fields where the header has "),
                           per_file([j.layout.n for j in jobs]).cast("string"), control))
            .when(F.col("status") == "key", F.concat(F.lit("report key is not a whole number"), control))
            .when(F.col("status") == "not_number", F.lit("not a case number"))
            .otherwise(F.col("status"))
        )
        q = bad.select(
            quarter_of.alias("quarter"),
            per_file([j.tf.table for j in jobs]).alias("table"),
            source_of.alias("source_file"),
            "line_number",
            F.substring("raw", 1, RAW_LINE_CHARS).alias("raw_line"),
            reason.alias("reason"),
        )
        writes.append(("quarantine", q))

        def write(item: tuple[str, DataFrame]) -> None:
            table, df = item
            t = time.time()
            if wh.by_catalog:
                # saveAsTable runs the plan inside a command that reports no
                # observed metrics (Observation.get fails): count the commit instead
                bronze.replace_quarters(spark, wh, df, table, quarters)
                written[table] = (wh.read(spark, "bronze", table)
                                  .where(F.col("quarter").isin(quarters)).count())
            else:
                obs = Observation(f"bronze_{table}")
                bronze.replace_quarters(spark, wh, df.observe(obs, F.count(F.lit(1)).alias("rows")), table,
                                        quarters)
                written[table] = int(obs.get["rows"])
            log(f"bronze.{table}: {written[table]:,} rows written in {time.time() - t:.1f}s")

        # the tables are independent: overlapping their jobs keeps the cores
        # busy through each job's small tail and its Delta commit
        with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
            list(pool.map(write, writes))
        quarantined = written.pop("quarantine")

    # ---- audit ----------------------------------------------------------- #
    rows = []
    derived: dict[str, int] = {}
    for j in jobs:
        c = counts.get(j.idx, {})
        aside_n = sum(v for s, v in c.items() if s != "blank")
        lines_repaired = len({ln for r in j.repairs for ln in r.lines})
        # every data line is a loaded row, set aside (blank or not), or both
        # never: so loaded = data lines - set aside + records made by repairs
        rec = {
            "quarter": j.tf.quarter,
            "table": j.tf.table,
            "source_file": j.tf.source_file,
            "lines_read": j.staged.data_lines - c.get("blank", 0),
            "rows_loaded": j.staged.data_lines - sum(c.values()) + len(j.repairs),
            "rows_repaired": len(j.repairs),
            "lines_repaired": lines_repaired,
            "rows_quarantined": aside_n - lines_repaired,
            "sha256": j.staged.sha256,
        }
        derived[j.tf.table] = derived.get(j.tf.table, 0) + rec["rows_loaded"]
        balance = rec["rows_loaded"] - rec["rows_repaired"] + rec["lines_repaired"] + rec["rows_quarantined"]
        if balance != rec["lines_read"]:  # pragma: no cover - a bug, not bad input
            raise FaerslakeError(f"internal error: the audit of {j.tf.source_file} does not balance: {rec}")
        rows.append(rec)
    q_total = sum(r["rows_quarantined"] for r in rows)
    if quarantined != q_total:  # pragma: no cover - a bug, not bad input
        raise FaerslakeError(f"internal error: {quarantined} lines quarantined but the audit says {q_total}")
    for table, n in written.items():
        if n != derived.get(table, 0):  # pragma: no cover - a bug, not bad input
            raise FaerslakeError(
                f"internal error: bronze.{table} received {n} rows but the line counts say {derived.get(table, 0)}")
    return rows


def _check_numbering(observed: list[Observation], expected_lines: int) -> None:
    lines = sum(int(o.get["lines"] or 0) for o in observed)
    wrong = sum(int(o.get["misnumbered"] or 0) for o in observed)
    if wrong:
        raise FaerslakeError(
            f"Spark read several staged parts as one partition ({wrong:,} lines would get wrong line numbers): "
            f"this Spark does not honour spark.sql.files.openCostInBytes; please report it with your Spark version."
        )
    if lines != expected_lines:  # pragma: no cover - Spark and staging disagree on line ends: a bug
        raise FaerslakeError(f"internal error: Spark read {lines:,} lines where staging wrote {expected_lines:,}")


def _repaired_values(layout: Layout, r: Repaired) -> list:
    cols = dict(layout.columns)
    f = r.fields
    extra = {name: f[i] for name, i in layout.extras}
    return [f[layout.key_pos], *[f[cols[c]] if c in cols else None for c in CANONICAL[layout.table]], extra]


__all__ = ["IngestResult", "ingest", "Source"]
