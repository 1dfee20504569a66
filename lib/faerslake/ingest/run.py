"""Old home of the ``ingest`` plan, kept so existing imports keep working.

The plan is :mod:`faerslake.ingest.job`; staging is :mod:`~faerslake.ingest.stage`
(patch ``STAGE_POOL_MIN_BYTES`` there), loading :mod:`~faerslake.ingest.load`,
the audit :mod:`~faerslake.ingest.audit`.
"""

from faerslake.ingest.discover import Source
from faerslake.ingest.job import BATCH_BYTES, IngestResult, ingest
from faerslake.ingest.load import BROADCAST_ASIDE_ROWS, WRITE_THREADS
from faerslake.ingest.parse import MAX_REPAIR_LINES_PER_FILE
from faerslake.ingest.stage import STAGE_MAX_WORKERS, STAGE_POOL_MIN_BYTES

__all__ = [
    "BATCH_BYTES",
    "BROADCAST_ASIDE_ROWS",
    "MAX_REPAIR_LINES_PER_FILE",
    "STAGE_MAX_WORKERS",
    "STAGE_POOL_MIN_BYTES",
    "WRITE_THREADS",
    "IngestResult",
    "Source",
    "ingest",
]
