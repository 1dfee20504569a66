"""One writer at a time per warehouse: an advisory lock around ingest, build and study.

Place in the pipeline: taken by :func:`faerslake.ingest.ingest`,
:func:`faerslake.silver.build` and :func:`faerslake.gold.run_study` for the
whole of their work (reads included: what a writer reads decides what it
writes), and by ``faerslake run`` once around all three.

Why: Delta commits one table at a time. Two ingests of one quarter from
different sources could otherwise leave DEMO from one and DRUG from the
other; two builds could leave ``reports`` of one and ``drugs`` of the other;
and on a local file system Delta does not even keep two JVMs from committing
the same log version (delta-io/delta#683: the local ``rename`` overwrites).

How: ``fcntl.flock`` on ``WH/_faerslake.lock`` (path mode, a local or NFS
folder). The kernel drops the lock of a process that dies, so a killed run
never leaves a stale lock. A second writer waits, saying who holds the lock,
for up to ``tables.lock_timeout_seconds`` (0: do not wait), then fails with
one sentence (:class:`WarehouseBusy`, exit 6). The lock is re-entrant within
one process (``faerslake run`` holds it across its three stages).

Where it does not apply: warehouses on object stores (``s3a://``,
``abfss://``, ``gs://``, ``dbfs:``) and catalog mode have no shared file to
lock. There the tables' own Delta guarantees hold (on S3 only with a
LogStore that provides mutual exclusion, e.g. ``S3DynamoDBLogStore``;
Databricks provides it) and the readers' pinning to completed writes (see
``docs/architecture.md``) keeps results consistent, but two runs writing
the same quarters at once are the user's to prevent (a Databricks job with
``max_concurrent_runs: 1``). A file system whose ``flock`` fails (some FUSE
mounts) is logged and run without the lock.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from faerslake.errors import FaerslakeError
from faerslake.files import has_scheme, strip_file_scheme

LOCK_NAME = "_faerslake.lock"
_POLL_SECONDS = 0.2

logger = logging.getLogger(__name__)


class WarehouseBusy(FaerslakeError):
    """Another faerslake run holds the warehouse's writer lock (and kept it past the timeout)."""

    exit_code = 6


# path -> [open lock file or None, depth]; the per-path RLock below makes the
# file lock re-entrant for the thread that holds it and keeps other threads of
# this process waiting, like other processes
_held: dict[str, list] = {}
_thread_locks: dict[str, threading.RLock] = {}
_guard = threading.Lock()


def lock_path(warehouse: str) -> Path | None:
    """The lock file of a local path-mode warehouse; None where there is none (object stores)."""
    root = strip_file_scheme(warehouse)
    if has_scheme(root):
        return None
    return Path(root).expanduser().resolve() / LOCK_NAME


def _holder(fh: IO[str]) -> str:
    """Who holds the lock, as its holder wrote it ('pid 123, faerslake ingest, since 10:02:03 UTC')."""
    try:
        fh.seek(0)
        info = json.loads(fh.read() or "{}")
        return f"pid {info['pid']}, faerslake {info['command']}, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another faerslake run"


@contextmanager
def writer_lock(warehouse: str, command: str, timeout: float, by_catalog: bool = False) -> Iterator[None]:
    """Hold the warehouse's writer lock for the ``with`` block (see the module doc).

    ``command`` (``ingest``, ``build``, ``study``, ``run``) is written into the
    lock file for whoever waits; ``timeout`` is how long to wait for another
    holder before :class:`WarehouseBusy`. Only ``ingest`` and ``run`` create
    a missing warehouse folder for the lock; ``build`` and ``study`` on a
    folder that does not exist run unlocked (they refuse: nothing to read)."""
    path = None if by_catalog else lock_path(warehouse)
    if path is None:
        logger.debug(f"no writer lock for {warehouse}: not a local folder (one writer at a time is up to you)")
        yield
        return
    if not path.parent.is_dir() and command not in ("ingest", "run"):
        yield
        return
    key = str(path)
    with _guard:
        tlock = _thread_locks.setdefault(key, threading.RLock())
    if not tlock.acquire(timeout=max(timeout, 0.0)):
        raise WarehouseBusy(
            f"the warehouse {path.parent} is being written by another thread of this process; it still held "
            f"the lock after {timeout:g} s: run one writer at a time."
        )
    try:
        entry = _held.get(key)
        if entry is not None:  # this thread holds it already
            entry[1] += 1
        else:
            _held[key] = [_acquire(path, command, timeout), 1]
        try:
            yield
        finally:
            _release(key)
    finally:
        tlock.release()


def _acquire(path: Path, command: str, timeout: float) -> IO[str] | None:
    import fcntl

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a+")  # noqa: SIM115 - held until _release
    except OSError as e:
        logger.warning(f"warning: cannot create the lock file {path} ({e.strerror}); running without the writer "
                       "lock: make sure no other faerslake run writes this warehouse at the same time")
        return None
    deadline = time.monotonic() + max(timeout, 0.0)
    said = False
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                logger.warning(f"warning: cannot lock {path} ({e.strerror}); running without the writer lock: "
                               "make sure no other faerslake run writes this warehouse at the same time")
                fh.close()
                return None
            holder = _holder(fh)
            if time.monotonic() >= deadline:
                fh.close()
                raise WarehouseBusy(
                    f"the warehouse {path.parent} is being written by {holder}; it still held the lock "
                    f"after {timeout:g} s: wait for it to finish, or raise the wait with "
                    f"--set tables.lock_timeout_seconds=N."
                ) from None
            if not said:
                logger.info(f"the warehouse {path.parent} is being written by {holder}; waiting up to "
                            f"{timeout:g} s for it to finish (tables.lock_timeout_seconds)")
                said = True
            time.sleep(_POLL_SECONDS)
    fh.seek(0)
    fh.truncate()
    fh.write(json.dumps({"pid": os.getpid(), "command": command,
                         "since": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")}))
    fh.flush()
    if said:
        logger.info(f"the warehouse {path.parent} is free; {command} goes on")
    return fh


def _release(key: str) -> None:
    """Called by the thread holding the per-path RLock."""
    entry = _held[key]
    entry[1] -= 1
    if entry[1] > 0:
        return
    del _held[key]
    fh = entry[0]
    if fh is None:
        return
    try:
        fh.seek(0)
        fh.truncate()
    except OSError:
        pass
    fh.close()  # closing the file drops the flock


__all__ = ["LOCK_NAME", "WarehouseBusy", "lock_path", "writer_lock"]
