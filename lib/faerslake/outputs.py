"""Files written outside Delta (CSV, reports): always atomically.

Delta commits are atomic; a CSV or report written in place is not. Every file
a user reads is written to a temp file in the same folder and renamed over
the target, so a killed run leaves either the old file or the new one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_csv(path: str | Path, df) -> Path:
    """Write a (small) pandas DataFrame as CSV atomically, without the index."""
    return atomic_write_text(path, df.to_csv(index=False, lineterminator="\n"))
