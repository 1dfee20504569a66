"""Files outside Delta: atomic writes, checksums, and what a path or URI is.

Delta commits are atomic; a CSV, report, manifest or zip written in place is
not. Every such file is written to a temp file in the same folder and renamed
over the target, so a killed run leaves either the old file or the new one.
A folder of files that belong together (``OUT/<study>/``) is written whole
into a temp sibling and switched into place (:func:`atomic_folder`).

CSV cells are written for spreadsheets too: a text cell starting with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'`` so that it
is not run as a formula (:func:`neutralise_cell`).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from faerslake.errors import InputError

T = TypeVar("T")

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


# What a spreadsheet reads as a formula (OWASP "CSV injection"), and a plain number.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def neutralise_cell(value: Any) -> Any:
    """A text cell starting with ``= + - @``, tab or CR, prefixed with ``'``;
    anything else unchanged: numbers (``-1.5`` as a number, or as the text of
    a plain number) stay numbers."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def atomic_write_csv(path: str | Path, df) -> Path:
    """Write a (small) pandas DataFrame as CSV atomically, without the index.

    Text cells that a spreadsheet would run as a formula are neutralised
    (:func:`neutralise_cell`); numeric columns are written as they are."""
    df = df.copy()
    for col in df.columns:
        if df[col].dtype == object or str(df[col].dtype).startswith("string"):
            df[col] = df[col].map(neutralise_cell)
    return atomic_write_text(path, df.to_csv(index=False, lineterminator="\n"))


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable where the platform allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows, some FUSE mounts
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def clean_stale_folders(final: str | Path) -> None:
    """Leftovers of killed :func:`atomic_folder` runs beside ``final``:
    ``.<name>.tmp-*`` folders are removed; a ``.<name>.old-*`` folder is the
    previous folder of a run killed between its two renames, so it is moved
    back when ``final`` is missing, else removed."""
    final = Path(final)
    if not final.parent.is_dir():
        return
    olds = []
    for p in final.parent.iterdir():
        if p.name.startswith(f".{final.name}.tmp-"):
            _remove(p)
        elif p.name.startswith(f".{final.name}.old-"):
            olds.append(p)
    for p in sorted(olds, key=lambda q: q.stat().st_mtime, reverse=True):
        if not final.exists() and p.is_dir():
            os.rename(p, final)
        else:
            _remove(p)


def atomic_folder(final: str | Path, write: Callable[[Path], T]) -> T:
    """Call ``write(tmp)`` on a new folder ``.<name>.tmp-<uuid>`` beside
    ``final``, then switch it into place as ``final``; return what ``write``
    returned.

    Readers see the previous folder or the new one whole, never a mix of the
    two runs' files. The switch is two renames (``final`` ->
    ``.<name>.old-<uuid>``, then the temp folder -> ``final``), and the old
    folder is removed after. Between the two renames (microseconds, no data
    written) ``final`` is briefly missing; a run killed exactly there leaves
    the previous folder as ``.<name>.old-<uuid>``, and the next call moves it
    back before starting (:func:`clean_stale_folders`). A symlink switch would
    close that window but would make ``final`` a symlink, which ``/dbfs``
    FUSE mounts and Windows do not handle, so the rename switch was chosen.

    When ``write`` (or the switch) fails, the temp folder is removed and the
    previous ``final`` is left as it was. Leftover temp folders of killed runs
    are removed at the start of the next call. One writer per ``final`` at a
    time (two runs of one study into one output folder would remove each
    other's temp folders)."""
    final = Path(final)
    if final.exists() and not final.is_dir():
        raise InputError(f"{final} is a file, where a folder of results goes: move that file away.")
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_folders(final)
    tag = uuid.uuid4().hex
    tmp = final.parent / f".{final.name}.tmp-{tag}"
    old = final.parent / f".{final.name}.old-{tag}"
    tmp.mkdir()
    try:
        result = write(tmp)
        _fsync_dir(tmp)
        moved = False
        if final.exists() or final.is_symlink():
            os.rename(final, old)
            moved = True
        try:
            os.rename(tmp, final)
        except BaseException:
            if moved:
                os.rename(old, final)
            raise
        _fsync_dir(final.parent)
    except BaseException:
        _remove(tmp)
        raise
    _remove(old)
    return result
