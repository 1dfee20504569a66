"""Ingest: stage a batch of quarters into UTF-8 part files, a pool of processes for a large batch.

Place in the pipeline: discover -> **stage** (``decode`` in this process or in
worker processes) -> load -> audit. Each staged file gets the layout of its
header; header problems become warnings of the run. A source that cannot be
read fails its quarter; a staging folder that cannot be written (full disk,
quota) stops the run with an :class:`~faerslake.errors.EnvironmentProblem`.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from faerslake.errors import EnvironmentProblem
from faerslake.faults import checkpoint
from faerslake.ingest.decode import (
    StagedFile,
    StageSpec,
    StagingWriteError,
    die_with_parent,
    renumber,
    stage_files,
)
from faerslake.ingest.discover import DELETED, QuarterFiles, TableFile
from faerslake.ingest.parse import Layout, Repaired, layout_from_header

# Batches with more text than this are staged by a pool of processes, a
# quarter per task (below it, starting the processes costs more than it saves).
STAGE_POOL_MIN_BYTES = 256 * 1024**2
STAGE_MAX_WORKERS = 8

_Outcome = tuple[list[StagedFile] | None, str | None, float]  # what decode.stage_files returns


@dataclass
class FileJob:
    """One staged table file of the run: ``idx`` is its ``file_idx`` in Spark."""

    idx: int
    tf: TableFile
    staged: StagedFile
    layout: Layout
    repairs: list[Repaired] = field(default_factory=list)


def stage_batch(todo: list[QuarterFiles], run_dir: Path, max_line_chars: int, failed: dict[str, str],
                warnings: list[str], log: Callable[[str], None]) -> list[FileJob]:
    """Stage every table file of ``todo`` (quarters side by side in worker
    processes when the batch is large); a quarter whose source cannot be read
    is recorded in ``failed`` and left out. Header warnings go to ``warnings``."""
    plans = _plans(todo, run_dir)
    try:
        outcomes = _run_staging([specs for _, _, specs in plans], _stage_workers(todo), max_line_chars, log)
    except StagingWriteError as e:
        raise EnvironmentProblem(_staging_full(run_dir.parent, e, sum(qf.text_bytes for qf in todo))) from None
    jobs: list[FileJob] = []
    for (qf, files, _), (staged, error, seconds) in zip(plans, outcomes, strict=True):
        if error is not None:
            failed[qf.quarter] = error
            log(f"{qf.quarter}: SKIPPED, {error}")
            continue
        q_jobs: list[FileJob] = []
        for tf, st in zip(files, staged, strict=True):
            # failed quarters leave no gap in the global index
            renumber(st, len(jobs) + len(q_jobs))
            layout, warns = layout_from_header(tf.table, st.header)
            for msg in _header_warnings(tf, st, layout, warns):
                warnings.append(msg)
                log(f"warning: {msg}")
            q_jobs.append(FileJob(st.file_idx, tf, st, layout))
        jobs.extend(q_jobs)
        nbytes = sum(j.staged.size_bytes for j in q_jobs)
        log(f"{qf.quarter}: staged {len(q_jobs)} files ({nbytes / 1e6:,.1f} MB) in {seconds:.1f}s")
    return jobs


def _plans(todo: list[QuarterFiles], run_dir: Path) -> list[tuple[QuarterFiles, list[TableFile], list[StageSpec]]]:
    """Per quarter: its table files in a stable order, and what to stage of each (indices run on)."""
    plans = []
    idx = 0
    for qf in todo:
        files = sorted(qf.files, key=lambda f: (f.table, f.source_file))
        specs = [StageSpec(str(tf.source.path), tf.member, tf.source_file, str(run_dir / "parts" / tf.table),
                           idx + k, header_is_optional=tf.table == DELETED) for k, tf in enumerate(files)]
        idx += len(files)
        plans.append((qf, files, specs))
    return plans


def _stage_workers(todo: list[QuarterFiles]) -> int:
    """Worker processes for staging: one per core (at most STAGE_MAX_WORKERS),
    none (stage in this process) for a small batch or a single quarter."""
    text = sum(qf.text_bytes for qf in todo)
    # the crash tests lower the threshold to put a kill inside the pool
    threshold = int(os.environ.get("FAERSLAKE_STAGE_POOL_MIN_BYTES", STAGE_POOL_MIN_BYTES))
    if len(todo) < 2 or text < threshold:
        return 0
    return min(os.cpu_count() or 1, len(todo), STAGE_MAX_WORKERS)


def _run_staging(quarters: list[list[StageSpec]], workers: int, max_line_chars: int,
                 log: Callable[[str], None]) -> list[_Outcome]:
    """``decode.stage_files`` of each quarter, in this process or in ``workers`` processes."""
    if workers <= 1:
        return [stage_files(specs, max_line_chars) for specs in quarters]
    # zlib, SHA-256 and the byte decoding are CPU work: one process per
    # core; "spawn" because this process holds the Spark gateway's threads
    ctx = multiprocessing.get_context("spawn")
    t = time.time()
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=die_with_parent,
                             initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(stage_files, specs, max_line_chars) for specs in quarters]
        try:
            outcomes = [futures[0].result()]
            checkpoint("ingest.staging")  # crash tests: a quarter staged, others in the workers
            outcomes += [f.result() for f in futures[1:]]
        except BaseException:
            for f in futures:  # a full staging disk: do not start the quarters still waiting
                f.cancel()
            raise
    log(f"staged {len(quarters)} quarters in {time.time() - t:.1f}s with {workers} processes")
    return outcomes


def _staging_full(folder: Path, e: StagingWriteError, batch_bytes: int) -> str:
    """One sentence for a staging folder that cannot be written."""
    def size(n: float) -> str:
        return f"{n / 1e9:,.1f} GB" if n >= 1e9 else f"{n / 1e6:,.1f} MB"

    try:
        free = f"{size(shutil.disk_usage(folder).free)} free there"
    except OSError:
        free = "free space unknown"
    need = f"this batch stages about {size(batch_bytes)}"
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "is full" if e.errno == errno.ENOSPC else "is over its disk quota"
        return (f"the staging folder {folder} {what} ({e}; {free}, {need}): free space there or set "
                f"ingest.staging_dir (--set ingest.staging_dir=/path/with/space) to a folder on a bigger disk")
    return (f"the staging folder {folder} cannot be written ({e}): set ingest.staging_dir "
            f"(--set ingest.staging_dir=/writable/dir) to a folder this user can write")


def _header_warnings(tf: TableFile, st: StagedFile, layout: Layout, warns: list[str]) -> list[str]:
    """What the run says about a staged file's header (unknown columns, no key, none at all)."""
    out = [f"{tf.source_file}: {w}" for w in warns]
    if layout.problem and st.data_lines:
        out.append(f"{tf.source_file}: {layout.problem}; all its lines are quarantined")
    if st.header is None and tf.table != DELETED:
        out.append(f"{tf.source_file} is empty (no header line)")
    return out
