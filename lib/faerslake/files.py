"""Files outside Delta: atomic writes, checksums, and what a path or URI is.

Delta commits are atomic; a CSV, report, manifest or zip written in place is
not. Every such file is written to a temp file in the same folder and renamed
over the target, so a killed run leaves either the old file or the new one.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

# A URI scheme (``s3a:``, ``abfss:``, ``dbfs:``, ``file:``); a Windows drive letter is one character.
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]+:")
_FILE_SCHEME = re.compile(r"^file:(//)?")
HASH_CHUNK = 4 * 1024 * 1024


def has_scheme(uri: str) -> bool:
    """True for ``s3a://b/x``, ``dbfs:/x``, ``file:/x``; False for plain paths."""
    return bool(_SCHEME.match(str(uri)))


def strip_file_scheme(uri: str) -> str:
    """``file:///a/b`` and ``file:/a/b`` -> ``/a/b``; anything else unchanged."""
    s = str(uri)
    if not s.startswith("file:"):
        return s
    s = _FILE_SCHEME.sub("", s)
    return s if s.startswith("/") else "/" + s


def sha256_file(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(HASH_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_replace(path: str | Path, write) -> Path:
    """Call ``write(tmp_path)`` on a temp file beside ``path``, then rename it over ``path``.

    The temp file is removed if ``write`` fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    return atomic_replace(path, write)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_csv(path: str | Path, df) -> Path:
    """Write a (small) pandas DataFrame as CSV atomically, without the index."""
    return atomic_write_text(path, df.to_csv(index=False, lineterminator="\n"))
