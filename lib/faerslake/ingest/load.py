"""Ingest: staged parts -> the bronze Delta tables and the quarantine of one batch.

Place in the pipeline: stage -> **load** -> audit. One Spark job sets aside
every line that does not fit its header; the few damaged ones are repaired on
the driver (bounded), the rest quarantined with a reason; then one Spark job
per bronze table writes all quarters of the batch (Delta ``replaceWhere`` on
those quarters: atomic, never duplicated).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import reduce
from pathlib import Path

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from faerslake.errors import FaerslakeError
from faerslake.ingest import bronze
from faerslake.ingest.audit import check_numbering
from faerslake.ingest.discover import DELETED, TABLES
from faerslake.ingest.parse import (
    CANONICAL,
    MAX_REPAIR_LINES_PER_FILE,
    RAW_LINE_CHARS,
    REPAIR_MAX_CHARS,
    Layout,
    numbering_metrics,
    one_partition_per_part,
    per_file,
    project_rows,
    quarantine_reason,
    read_parts,
    repair_lines,
    repaired_row,
    set_aside,
)
from faerslake.ingest.stage import FileJob
from faerslake.quarters import era_of
from faerslake.tables import WRITE_THREADS, Warehouse

BROADCAST_ASIDE_ROWS = 2_000_000
_ASIDE_SCHEMA = "file_idx INT, line_number LONG, status STRING, nfields INT, length INT, raw STRING"

AsideCounts = dict[int, dict[str, int]]  # file_idx -> status -> lines set aside
PartGroups = dict[tuple[str, Layout], list[str]]  # (table, layout) -> part files


def load_bronze(spark: SparkSession, wh: Warehouse, jobs: list[FileJob], quarters: list[str], run_dir: Path,
                max_line_chars: int, log: Callable[[str], None]) -> tuple[AsideCounts, dict[str, int]]:
    """Write the bronze tables and the quarantine of ``quarters`` from the staged
    files ``jobs`` (their repairs are kept in ``FileJob.repairs``); returns the
    lines set aside per file and status, and the rows written per table."""
    _check_file_indices(jobs)
    groups = _part_groups(jobs)
    with one_partition_per_part(spark):
        t = time.time()
        aside, counts = set_aside_lines(spark, jobs, groups, run_dir, max_line_chars)
        for i, lines in repair_candidates(aside, counts, jobs, log).items():
            jobs[i].repairs = repair_lines(lines, jobs[i].layout.n, jobs[i].layout.key_pos)
        log(f"checked every line in {time.time() - t:.1f}s: "
            f"{sum(c for d in counts.values() for s, c in d.items() if s != 'blank'):,} do not fit their header, "
            f"{sum(len(j.repairs) for j in jobs)} records repaired")
        writes = [(table, bronze_frame(spark, table, jobs, groups, aside, counts)) for table in (*TABLES, DELETED)]
        writes.append(("quarantine", quarantine_frame(spark, aside, jobs, max_line_chars)))
        written = write_tables(spark, wh, writes, quarters, log)
    return counts, written


def _check_file_indices(jobs: list[FileJob]) -> None:
    for pos, j in enumerate(jobs):
        if j.idx != pos:  # a failed quarter in between: part names carry the old index
            raise FaerslakeError("internal error: file index out of step")  # pragma: no cover


def _part_groups(jobs: list[FileJob]) -> PartGroups:
    groups: PartGroups = {}
    for j in jobs:
        if j.staged.parts:
            groups.setdefault((j.tf.table, j.layout), []).extend("file://" + str(p.path) for p in j.staged.parts)
    return groups


def set_aside_lines(spark: SparkSession, jobs: list[FileJob], groups: PartGroups, run_dir: Path,
                    max_line_chars: int) -> tuple[DataFrame, AsideCounts]:
    """The lines that do not fit their file's header (``parse.set_aside``), found by
    one scan of every part and written once under ``run_dir``, and their counts."""
    aside_path = "file://" + str(run_dir / "aside")
    all_paths = [p for paths in groups.values() for p in paths]
    n_aside = 0
    if all_paths:
        numbering = Observation("numbering")
        aside_obs = Observation("aside")
        df = set_aside(read_parts(spark, all_paths).observe(numbering, *numbering_metrics()),
                       [j.layout for j in jobs], max_line_chars)
        df.observe(aside_obs, F.count(F.lit(1)).alias("rows")).write.mode("overwrite").parquet(aside_path)
        n_aside = int(aside_obs.get["rows"])
        check_numbering([numbering], sum(j.staged.data_lines for j in jobs))
    if not n_aside:  # the usual case: every line fits, no further job over the set-aside lines
        return spark.createDataFrame([], _ASIDE_SCHEMA), {}
    aside = spark.read.parquet(aside_path)
    counts: AsideCounts = {}
    for r in aside.groupBy("file_idx", "status").count().collect():
        counts.setdefault(r["file_idx"], {})[r["status"]] = r["count"]
    return aside, counts


def repair_candidates(aside: DataFrame, counts: AsideCounts, jobs: list[FileJob],
                      log: Callable[[str], None]) -> dict[int, list[tuple[int, str]]]:
    """The damaged lines (wrong field count or key) worth a repair, by file, sorted by
    line number: only files with at most ``MAX_REPAIR_LINES_PER_FILE`` of them, only
    lines of at most ``REPAIR_MAX_CHARS``. A file with more is quarantined as is."""
    def damaged(c: dict[str, int]) -> int:
        return c.get("fields", 0) + c.get("key", 0)

    eligible = [i for i, c in counts.items()
                if 0 < damaged(c) <= MAX_REPAIR_LINES_PER_FILE and jobs[i].tf.table != DELETED]
    for i, c in counts.items():
        if damaged(c) > MAX_REPAIR_LINES_PER_FILE:
            log(f"warning: {jobs[i].tf.source_file}: {damaged(c):,} lines do not fit the "
                f"header; too many to repair, all quarantined")
    by_file: dict[int, list[tuple[int, str]]] = {}
    if not eligible:
        return by_file
    cand = (aside.where(F.col("file_idx").isin(eligible) & F.col("status").isin("fields", "key")
                        & (F.col("length") <= REPAIR_MAX_CHARS))
            .select("file_idx", "line_number", "raw").collect())
    for r in cand:
        by_file.setdefault(r["file_idx"], []).append((r["line_number"], r["raw"]))
    for lines in by_file.values():
        lines.sort()
    return by_file


def bronze_frame(spark: SparkSession, table: str, jobs: list[FileJob], groups: PartGroups, aside: DataFrame,
                 counts: AsideCounts) -> DataFrame:
    """Bronze ``table``'s rows of the batch: the fitting lines of its files projected by
    their layouts, and the repaired records."""
    schema = bronze.table_schema(table)
    files = [j.idx for j in jobs if j.tf.table == table]
    table_aside = sum(sum(counts.get(i, {}).values()) for i in files)
    frames = [project_rows(_fitting_lines(spark, paths, aside, files, table_aside), layout)
              for (tb, layout), paths in groups.items() if tb == table]
    repaired = _repaired_frame(spark, table, jobs)
    if repaired is not None:
        frames.append(repaired)
    if not frames:
        return spark.createDataFrame([], schema)
    row_cols = [f.name for f in schema.fields if f.name not in ("quarter", "era", "source_file")]
    return reduce(DataFrame.unionByName, frames).select(
        per_file([j.tf.quarter for j in jobs]).alias("quarter"),
        per_file([era_of(j.tf.quarter) for j in jobs]).alias("era"),
        per_file([j.tf.source_file for j in jobs]).alias("source_file"),
        *row_cols,
    )


def _fitting_lines(spark: SparkSession, paths: list[str], aside: DataFrame, files: list[int],
                   table_aside: int) -> DataFrame:
    lines = read_parts(spark, paths)
    if not table_aside:
        return lines
    # the set-aside lines (found once, by set_aside_lines) are all the lines
    # that do not fit: no second evaluation of the checks
    keys = aside.where(F.col("file_idx").isin(files)).select("file_idx", "line_number")
    if table_aside <= BROADCAST_ASIDE_ROWS:
        keys = F.broadcast(keys)
    return lines.join(keys, ["file_idx", "line_number"], "left_anti")


def _repaired_frame(spark: SparkSession, table: str, jobs: list[FileJob]) -> DataFrame | None:
    fixed = [(j.idx, r.line_number, *repaired_row(j.layout, r)) for j in jobs
             if j.tf.table == table for r in j.repairs]
    if not fixed:
        return None
    schema = "file_idx INT, line_number LONG, report_key STRING, " + ", ".join(
        f"{c} STRING" for c in CANONICAL[table]) + ", extra_fields MAP<STRING,STRING>"
    return spark.createDataFrame(fixed, schema)


def quarantine_frame(spark: SparkSession, aside: DataFrame, jobs: list[FileJob], max_line_chars: int) -> DataFrame:
    """The set-aside lines that are neither blank nor used by a repair, with the reason."""
    bad = aside.where(F.col("status") != "blank")
    consumed = sorted({(j.idx, ln) for j in jobs for r in j.repairs for ln in r.lines})
    if consumed:
        used = spark.createDataFrame(consumed, "file_idx INT, line_number LONG")
        bad = bad.join(F.broadcast(used), ["file_idx", "line_number"], "left_anti")
    return bad.select(
        per_file([j.tf.quarter for j in jobs]).alias("quarter"),
        per_file([j.tf.table for j in jobs]).alias("table"),
        per_file([j.tf.source_file for j in jobs]).alias("source_file"),
        "line_number",
        F.substring("raw", 1, RAW_LINE_CHARS).alias("raw_line"),
        quarantine_reason([j.layout for j in jobs], max_line_chars).alias("reason"),
    )


def write_tables(spark: SparkSession, wh: Warehouse, writes: list[tuple[str, DataFrame]], quarters: list[str],
                 log: Callable[[str], None]) -> dict[str, int]:
    """Replace ``quarters`` of each bronze table by its frame; returns the rows written per table."""
    # the tables are independent: overlapping their jobs keeps the cores
    # busy through each job's small tail and its Delta commit
    with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
        rows = list(pool.map(lambda w: _write_counted(spark, wh, w[0], w[1], quarters, log), writes))
    return {table: n for (table, _), n in zip(writes, rows, strict=True)}


def _write_counted(spark: SparkSession, wh: Warehouse, table: str, df: DataFrame, quarters: list[str],
                   log: Callable[[str], None]) -> int:
    t = time.time()
    n = wh.write_counted(
        spark, df, "bronze", table,
        write=lambda d: bronze.replace_quarters(spark, wh, d, table, quarters),
        # other ingests may commit to the same table: count this run's quarters
        recount=lambda: wh.read(spark, "bronze", table).where(F.col("quarter").isin(quarters)).count())
    log(f"bronze.{table}: {n:,} rows written in {time.time() - t:.1f}s")
    return n
