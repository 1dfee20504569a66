"""Ingest: the audit of a batch (one row per table file) and the checks that its counts add up.

Place in the pipeline: stage -> load -> **audit** -> manifest. Every data line
of a file is a loaded row or set aside (blank or not), never both, so
rows_loaded = data lines - set aside + records made by repairs, and
lines_read = (rows_loaded - rows_repaired) + lines_repaired + rows_quarantined.
A count that does not add up is a bug, never bad input: it stops the run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faerslake.errors import FaerslakeError

if TYPE_CHECKING:
    from pyspark.sql import Observation

    from faerslake.ingest.stage import FileJob


def audit_rows(jobs: list[FileJob], counts: dict[int, dict[str, int]], written: dict[str, int]) -> list[dict]:
    """The audit rows of ``jobs`` (``bronze.AUDIT_COLUMNS`` but ``ingested_at``), from the
    lines set aside per file and status; checked against the rows ``written`` per table."""
    rows = [_audit_row(j, counts.get(j.idx, {})) for j in jobs]
    _check_totals(rows, written)
    return rows


def _audit_row(j: FileJob, c: dict[str, int]) -> dict:
    aside_n = sum(v for s, v in c.items() if s != "blank")
    lines_repaired = len({ln for r in j.repairs for ln in r.lines})
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
    balance = rec["rows_loaded"] - rec["rows_repaired"] + rec["lines_repaired"] + rec["rows_quarantined"]
    if balance != rec["lines_read"]:  # pragma: no cover - a bug, not bad input
        raise FaerslakeError(f"internal error: the audit of {j.tf.source_file} does not balance: {rec}")
    return rec


def _check_totals(rows: list[dict], written: dict[str, int]) -> None:
    """The quarantine and every bronze table received what the audit rows say."""
    tables = dict(written)
    quarantined = tables.pop("quarantine")
    q_total = sum(r["rows_quarantined"] for r in rows)
    if quarantined != q_total:  # pragma: no cover - a bug, not bad input
        raise FaerslakeError(f"internal error: {quarantined} lines quarantined but the audit says {q_total}")
    derived: dict[str, int] = {}
    for r in rows:
        derived[r["table"]] = derived.get(r["table"], 0) + r["rows_loaded"]
    for table, n in tables.items():
        if n != derived.get(table, 0):  # pragma: no cover - a bug, not bad input
            raise FaerslakeError(
                f"internal error: bronze.{table} received {n} rows but the line counts say {derived.get(table, 0)}")


def check_numbering(observed: list[Observation], expected_lines: int) -> None:
    """Spark numbered every staged line from its part's name, and read as many lines as staging wrote."""
    lines = sum(int(o.get["lines"] or 0) for o in observed)
    wrong = sum(int(o.get["misnumbered"] or 0) for o in observed)
    if wrong:
        raise FaerslakeError(
            f"Spark read several staged parts as one partition ({wrong:,} lines would get wrong line numbers): "
            f"this Spark does not honour spark.sql.files.openCostInBytes; please report it with your Spark version."
        )
    if lines != expected_lines:  # pragma: no cover - Spark and staging disagree on line ends: a bug
        raise FaerslakeError(f"internal error: Spark read {lines:,} lines where staging wrote {expected_lines:,}")
