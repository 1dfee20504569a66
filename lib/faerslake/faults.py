"""Deterministic kill points for the crash-consistency tests.

Place in the pipeline: a no-op hook called at a few named points of ``ingest``,
``build`` and ``study`` (see :data:`POINTS`). When the environment variable
``FAERSLAKE_FAULT`` names the point (a comma-separated list may name several),
the process sends itself SIGKILL there: no ``finally`` block, no ``atexit``, no
flush of Spark or Delta runs, exactly like an OOM kill or a pulled plug. The
tests then re-run the command and check that every table equals an
uninterrupted run's.

The Spark JVM is a child of this process that exits when its stdin (a pipe
from Python) closes, so it dies with us; ``tests/test_faults.py`` checks that
no java process of the killed run is left behind.
"""

from __future__ import annotations

import os
import signal
import sys

ENV = "FAERSLAKE_FAULT"

# name -> where it sits (the tests iterate over these)
POINTS: dict[str, str] = {
    "ingest.table_committed": "ingest: right after the first bronze table of the run is committed",
    "ingest.before_manifest": "ingest: bronze tables and audit written, source_manifest not yet",
    "build.after_reports": "build: silver report_status and reports written, child tables not yet",
    "study.after_members": "study: gold cohort_members written, cohort_results and CSVs not yet",
}


def armed() -> set[str]:
    """The kill points named in ``FAERSLAKE_FAULT`` (empty when unset)."""
    raw = os.environ.get(ENV, "")
    return {p.strip() for p in raw.split(",") if p.strip()}


def checkpoint(name: str) -> None:
    """Die here (SIGKILL) when ``FAERSLAKE_FAULT`` names ``name``; otherwise do nothing."""
    if name not in armed():
        return
    # a line in the log proves the kill happened where the test asked
    try:
        sys.stdout.flush()
        sys.stderr.write(f"[faerslake fault] {name}: SIGKILL\n")
        sys.stderr.flush()
    finally:
        os.kill(os.getpid(), signal.SIGKILL)
