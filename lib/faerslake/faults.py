"""Deterministic fault points for the crash-consistency and concurrency tests.

Place in the pipeline: a no-op hook called at a few named points of ``ingest``,
``build`` and ``study`` (see :data:`POINTS`). When the environment variable
``FAERSLAKE_FAULT`` names the point (a comma-separated list may name several),
the process does there what the name's suffix says:

- ``point`` or ``point:kill``: the Python process sends itself SIGKILL: no
  ``finally`` block, no ``atexit``, no flush. Its Spark JVM, a child that
  exits when its stdin (a pipe from Python) closes, then stops *gracefully*
  (shutdown hooks run);
- ``point:jvm``: SIGKILL to the Spark JVM (what the kernel's OOM killer picks:
  the largest process), the Python side carries on and meets a dead gateway at
  its next Spark call;
- ``point:pause``: the first time the point is reached, create
  ``$FAERSLAKE_FAULT_DIR/<point>.paused`` and wait until
  ``$FAERSLAKE_FAULT_DIR/<point>.resume`` exists (deterministic interleaving
  of two runs: stop writer A after its first commit, run B, resume A);
- ``point:raise``: raise :class:`InjectedFault` there (an in-process test of
  what the tables look like when a step dies between two commits: every
  commit is atomic, so the tables are as a kill leaves them, provided no
  ``finally`` block writes, which none in faerslake does).

:data:`POINTS` are the points of every run (the kill chain of
``tests/test_faults.py`` covers each); :data:`UPDATE_POINTS` are reached only
by an incremental silver build (``tests/test_incremental.py``).

Neither kill is a pulled plug: nothing here drops the page cache, and Hadoop's
local file system does not fsync Delta commits, so power loss is not covered.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

ENV = "FAERSLAKE_FAULT"
DIR_ENV = "FAERSLAKE_FAULT_DIR"
ACTIONS = ("kill", "jvm", "pause", "raise")
PAUSE_LIMIT_SECONDS = 900.0

# name -> where it sits (the tests iterate over these)
POINTS: dict[str, str] = {
    "ingest.staging": "ingest: the staging process pool has staged its first table file, others still running",
    "ingest.table_committed": "ingest: right after the first bronze table of the run is committed",
    "ingest.before_manifest": "ingest: bronze tables and audit written, source_manifest not yet",
    "build.after_reports": "build: silver report_status and reports written, child tables not yet",
    "build.child_committed": "build: the first silver child table committed, the others not yet",
    "study.after_members": "study: gold cohort_members written, cohort_results and CSVs not yet",
    "study.output_written": "study: the first output file written into the study's temporary folder, "
                            "the folder not yet switched into place",
}

# the steps of an incremental build (faerslake.silver.update), in order
UPDATE_POINTS: dict[str, str] = {
    "build.update_planned": "build (update): affected cases found, no silver table changed yet",
    "build.update_between_delete_and_append": "build (update): report_status's rows in scope deleted, their "
                                              "new rows not yet appended",
    "build.update_after_status": "build (update): report_status merged, reports not yet",
    "build.update_after_reports": "build (update): report_status and reports merged, child tables not yet",
    "build.update_child_merged": "build (update): the first child table merged, the others not yet",
    "build.update_after_children": "build (update): every merged table done, dedup_summary and the drug "
                                   "identity not yet",
    "build.update_before_state": "build (update): every silver table written, build_state not yet",
}


class InjectedFault(RuntimeError):
    """What ``point:raise`` raises."""


_paused: set[str] = set()


def armed() -> dict[str, str]:
    """point -> action for the points named in ``FAERSLAKE_FAULT`` (empty when unset)."""
    out: dict[str, str] = {}
    for item in os.environ.get(ENV, "").split(","):
        name, _, action = item.strip().partition(":")
        if name:
            out[name] = action or "kill"
    return out


def checkpoint(name: str) -> None:
    """Do what ``FAERSLAKE_FAULT`` asks at ``name`` (see the module doc); otherwise nothing."""
    action = armed().get(name)
    if action is None:
        return
    if action == "pause":
        _pause(name)
    elif action == "raise":
        _say(name, "raise")
        raise InjectedFault(f"fault injected at {name}")
    elif action == "jvm":
        _kill_jvm(name)
    else:
        _say(name, "SIGKILL")
        os.kill(os.getpid(), signal.SIGKILL)


def _say(name: str, what: str) -> None:
    # a line in the log proves the fault happened where the test asked
    try:
        sys.stdout.flush()
        sys.stderr.write(f"[faerslake fault] {name}: {what}\n")
        sys.stderr.flush()
    except OSError:
        pass


def _pause(name: str) -> None:
    if name in _paused:
        return
    _paused.add(name)
    folder = Path(os.environ.get(DIR_ENV, "."))
    (folder / f"{name}.paused").write_text(str(os.getpid()))
    _say(name, "paused")
    deadline = time.monotonic() + PAUSE_LIMIT_SECONDS
    while not (folder / f"{name}.resume").exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"fault point {name}: never resumed")
        time.sleep(0.1)
    _say(name, "resumed")


def _kill_jvm(name: str) -> None:
    from pyspark import SparkContext

    # the process's context, not the active session: that one is per thread
    # (fault points also sit in the write threads)
    sc = SparkContext._active_spark_context
    jvm = sc._jvm if sc is not None else None
    if jvm is None:
        _say(name, "no Spark JVM to kill")
        return
    pid = int(jvm.java.lang.ProcessHandle.current().pid())
    _say(name, f"SIGKILL to the Spark JVM (pid {pid})")
    os.kill(pid, signal.SIGKILL)
    for _ in range(100):  # until it is gone, so the next Spark call meets a dead gateway
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        try:
            os.waitpid(pid, os.WNOHANG)  # our child: reap it
        except ChildProcessError:
            pass
        time.sleep(0.05)
