"""Errors a user can act on.

Every failure a user can fix (a missing Java, a bad config key, an unreadable
source) is raised as :class:`FaerslakeError` with one sentence saying what to
do; the CLI prints that sentence and exits non-zero instead of a stack trace.
"""


class FaerslakeError(Exception):
    """An error whose message tells the user what to fix."""

    exit_code = 2


class ConfigError(FaerslakeError):
    """A configuration or study file is missing, unreadable or invalid."""


class EnvironmentProblem(FaerslakeError):
    """Java, Spark or the Delta jars are missing or of the wrong version."""

    exit_code = 3


class InputError(FaerslakeError):
    """A source file or folder cannot be used at all."""


class WriteConflict(FaerslakeError):
    """Another writer committed to the same Delta table at the same time."""

    exit_code = 6


# Delta's optimistic-concurrency conflicts (their class names appear in the Py4J text)
DELTA_CONFLICTS = ("ConcurrentAppendException", "ConcurrentDeleteReadException", "ConcurrentDeleteDeleteException",
                   "ConcurrentWriteException", "ConcurrentTransactionException", "MetadataChangedException",
                   "ProtocolChangedException")
_DISK_FULL = ("No space left on device", "Disk quota exceeded")
# said by Py4J or Spark when the JVM itself is gone (not a Java error the JVM reported)
_PY4J_GONE = ("Answer from Java side is empty", "Error while sending or receiving", "Java gateway process exited")
_SPARK_STOPPED = ("SparkContext was shut down", "Cannot call methods on a stopped SparkContext")


def _chain(e: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    while e is not None and e not in out and len(out) < 20:
        out.append(e)
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    return out


def _jvm_gone(e: BaseException) -> bool:
    """The Python side lost its gateway: a Py4J network error, or a refused /
    reset connection on the way to the JVM. A ``Py4JJavaError`` is an answer
    from a live JVM (its text may say "Connection refused" about HDFS or S3):
    never this."""
    chain = _chain(e)
    if any(type(x).__name__ == "Py4JJavaError" for x in chain):
        return any(g in str(x) for x in chain for g in _SPARK_STOPPED)  # the JVM says its context stopped
    return any(type(x).__name__ == "Py4JNetworkError" or isinstance(x, (ConnectionRefusedError, ConnectionResetError))
               or any(g in str(x) for g in (*_PY4J_GONE, *_SPARK_STOPPED)) for x in chain)


def explain(e: BaseException) -> FaerslakeError | None:
    """The one sentence for a failure that comes from Spark, Delta or the
    machine rather than from faerslake's own checks (a Py4J error carries the
    Java exception's text); None when it is not one of these."""
    import errno

    text = f"{type(e).__name__}: {e}"
    conflict = next((c for c in DELTA_CONFLICTS if c in text), None)
    if conflict:
        return WriteConflict(
            f"a Delta commit lost to another writer of the same table ({conflict}): another run wrote the warehouse "
            "at the same time; run one writer at a time (on a local warehouse faerslake waits for the other "
            "run's lock; on an object store that is up to you) and run the command again: every table is at "
            "its last complete commit, and a rerun redoes only what is missing."
        )
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT) or any(d in text for d in _DISK_FULL):
        return EnvironmentProblem(
            "a write failed: no space left on device: free space where the warehouse, its _staging folder and "
            "Spark's scratch folder (spark.local.dir, default /tmp) live, and run the command again: every "
            "table is at its last complete commit, and a rerun redoes only what is missing."
        )
    if _jvm_gone(e):
        return EnvironmentProblem(
            "the Spark JVM stopped in the middle of the run (killed, or out of memory: see the lines above): "
            "raise spark.driver_memory (--set spark.driver_memory=8g) or give the machine more memory, and "
            "run the command again: every table is at its last complete commit, and a rerun redoes only what "
            "is missing."
        )
    return None
