"""Ingest step 2: decode FDA's bytes once into UTF-8 staging files for Spark.

Place in the pipeline: discover -> **decode/stage** -> parse (Spark) -> bronze.

Each table file (a zip member or a loose file) is streamed once, in chunks,
with C-level operations only (no per-line Python):

- a UTF-8 byte-order mark at the start is dropped;
- CRLF becomes LF (Spark then reads with ``lineSep='\\n'``, so a lone CR stays
  data instead of silently splitting a record);
- bytes are decoded as cp1252, with latin-1 for cp1252's five undefined bytes
  (0x81 0x8D 0x8F 0x90 0x9D), so decoding never fails; pure-ASCII chunks are
  copied as they are;
- a physical line longer than ``max(max_line_chars + 1, CHUNK)`` bytes is cut
  there (Spark must hold a line in memory); parse quarantines it as too long.

The header line (the first non-blank line) is kept on the driver; the data
lines after it go to part files of at most ``PART_BYTES``, named by
:func:`part_name` so Spark can number lines without a shuffle (see
``parse``). The SHA-256 of the original bytes is computed on the way.
"""

from __future__ import annotations

import codecs
import hashlib
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from faerslake.ingest.discover import member_problem

CHUNK = 4 * 1024 * 1024
# Spark reads each part as one partition (see parse.read_parts); keep parts
# well under the 128 MB split size used there.
PART_BYTES = 64 * 1024 * 1024
HEADER_MAX = 1024 * 1024
BOM = b"\xef\xbb\xbf"

# A part's name says where it starts and how many lines it has, so Spark
# numbers lines from it and parse checks the count:
# ``p<file:6><first line:12><lines:12>.txt``. PART_NAME_FIELDS gives each
# number's (0-based offset, digits) for readers of the name (parse.read_parts).
_IDX_DIGITS, _LINE_DIGITS = 6, 12
PART_NAME_FIELDS: dict[str, tuple[int, int]] = {
    "file_idx": (1, _IDX_DIGITS),
    "first_line": (1 + _IDX_DIGITS, _LINE_DIGITS),
    "lines": (1 + _IDX_DIGITS + _LINE_DIGITS, _LINE_DIGITS),
}


def part_name(file_idx: int, first_line: int, lines: int | None = None) -> str:
    """The name of a staged part; without ``lines``, of a part still being written (``.open``)."""
    stem = f"p{file_idx:0{_IDX_DIGITS}d}{first_line:0{_LINE_DIGITS}d}"
    return f"{stem}.open" if lines is None else f"{stem}{lines:0{_LINE_DIGITS}d}.txt"


def parse_part_name(name: str) -> tuple[int, int, int]:
    """``(file_idx, first_line, lines)`` of a finished part's name (see :func:`part_name`)."""
    return tuple(int(name[start:start + n]) for start, n in PART_NAME_FIELDS.values())  # type: ignore[return-value]

# cp1252 with latin-1 in its five holes: a total byte -> char table.
_CP1252_TABLE = "".join(
    bytes([b]).decode("cp1252") if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D) else chr(b) for b in range(256)
)


def decode_bytes(data: bytes) -> str:
    """cp1252 with latin-1 fallback; never raises."""
    if data.isascii():
        return data.decode("ascii")
    return codecs.charmap_decode(data, "strict", _CP1252_TABLE)[0]


def _to_utf8(data: bytes) -> bytes:
    if data.isascii():
        return data
    return codecs.charmap_decode(data, "strict", _CP1252_TABLE)[0].encode("utf-8")


class StagingError(Exception):
    """The bytes of a source file could not be read (corrupt zip, I/O error): its quarter fails."""


class StagingWriteError(Exception):
    """The staging folder could not be written (disk full, over quota, read-only,
    no permission): the environment, not the input; it stops the run.
    ``args``: (source_file, errno, strerror), so it crosses a process pool intact."""

    def __init__(self, source_file: str, errno: int | None, strerror: str):
        super().__init__(source_file, errno, strerror)
        self.source_file, self.errno, self.strerror = source_file, errno, strerror

    def __str__(self) -> str:
        return f"{self.strerror} while writing {self.source_file}"


class _WriteFailed(Exception):
    """An OSError while writing a staged part (becomes :class:`StagingWriteError`)."""

    def __init__(self, error: OSError):
        super().__init__(error)
        self.error = error


@dataclass
class Part:
    path: Path
    first_line: int
    lines: int = 0  # physical lines in the part


@dataclass
class StagedFile:
    file_idx: int
    header: str | None  # decoded header line, None when the file has no non-blank line
    header_line: int  # physical line number of the header (0 when none)
    data_lines: int  # physical lines after the header (blank ones included)
    total_lines: int  # physical lines in the file
    lines_cut: int  # lines cut at the staging cap
    sha256: str
    size_bytes: int
    parts: list[Part] = field(default_factory=list)


class _PartWriter:
    """Writes data lines into part files, cutting only at line ends."""

    def __init__(self, out_dir: Path, file_idx: int, first_line: int, part_bytes: int):
        self.out_dir = out_dir
        self.file_idx = file_idx
        self.part_bytes = part_bytes
        self.next_line = first_line
        self.parts: list[Part] = []
        self.fh = None
        self.size = 0
        self.last_byte = b""
        self.newlines = 0

    def _open(self) -> None:
        p = self.out_dir / part_name(self.file_idx, self.next_line)
        try:
            self.fh = open(p, "wb")  # noqa: SIM115 - closed in _close
        except OSError as e:
            raise _WriteFailed(e) from None
        self.parts.append(Part(p, self.next_line))
        self.size = 0

    def _close(self) -> None:
        if self.fh is not None:
            fh, self.fh = self.fh, None
            part = self.parts[-1]
            part.lines = self.next_line - part.first_line + (1 if self.last_byte not in (b"", b"\n") else 0)
            final = self.out_dir / part_name(self.file_idx, part.first_line, part.lines)
            try:
                fh.close()  # a full disk often shows only here, when the buffer is flushed
                part.path.rename(final)
            except OSError as e:
                raise _WriteFailed(e) from None
            part.path = final

    def _put(self, data: bytes) -> None:
        if not data:
            return
        if self.fh is None:
            self._open()
        try:
            self.fh.write(data)
        except OSError as e:
            raise _WriteFailed(e) from None
        self.size += len(data)
        nl = data.count(b"\n")
        self.newlines += nl
        self.next_line += nl
        self.last_byte = data[-1:]

    def write(self, data: bytes) -> None:
        while data:
            room = self.part_bytes - self.size if self.fh is not None else self.part_bytes
            if len(data) <= room:
                self._put(data)
                return
            cut = data.rfind(b"\n", 0, room)
            if cut < 0:
                if self.fh is not None and self.size and self.last_byte == b"\n":
                    self._close()  # the open part is full and ends at a line end
                    continue
                cut = data.find(b"\n")  # one long line: let this part grow past the limit
                if cut < 0:
                    self._put(data)
                    return
            self._put(data[: cut + 1])
            self._close()
            data = data[cut + 1 :]

    def finish(self) -> int:
        """Close; return the number of physical data lines written."""
        self._close()
        return self.newlines + (1 if self.last_byte not in (b"", b"\n") else 0)


def _chunks(stream: BinaryIO, sha, counter: list[int]):
    while True:
        b = stream.read(CHUNK)
        if not b:
            return
        sha.update(b)
        counter[0] += len(b)
        yield b


def stage_stream(
    stream: BinaryIO,
    out_dir: Path,
    file_idx: int,
    max_line_chars: int,
    header_is_optional: bool = False,
    part_bytes: int = PART_BYTES,
) -> StagedFile:
    """Stage one table file (see the module docstring).

    ``header_is_optional`` (deleted-case lists): the first non-blank line is a
    header only when it is not a number.
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _WriteFailed(e) from None
    sha = hashlib.sha256()
    counter = [0]
    chunks = _chunks(stream, sha, counter)
    header, consumed_lines, rest = _read_header(chunks, header_is_optional)
    writer = _PartWriter(out_dir, file_idx, consumed_lines + 1, part_bytes)
    try:
        cut_lines = _copy_data_lines(_chain([rest] if rest else [], chunks), writer,
                                     max(max_line_chars + 1, CHUNK))
    finally:
        data_lines = writer.finish()
    return StagedFile(
        file_idx=file_idx,
        header=header,
        header_line=consumed_lines if header is not None else 0,
        data_lines=data_lines,
        total_lines=consumed_lines + data_lines,
        lines_cut=cut_lines,
        sha256=sha.hexdigest(),
        size_bytes=counter[0],
        parts=writer.parts,
    )


def _read_header(chunks: Iterator[bytes], header_is_optional: bool) -> tuple[str | None, int, bytes]:
    """The first non-blank line: ``(header or None, lines consumed, the bytes after them)``.

    The header is the last line consumed; without one, every line consumed was blank
    (or, for ``header_is_optional``, the first non-blank line is a number and stays data).
    """
    buf = b""
    consumed = 0
    first = True
    eof = False
    while True:
        nl = buf.find(b"\n")
        if nl >= 0:
            line, buf = buf[:nl], buf[nl + 1 :]
            consumed += 1
            text = decode_bytes(line.rstrip(b"\r"))
            if not text.strip():
                continue
            if header_is_optional and text.strip().isdigit():
                return None, consumed - 1, line + b"\n" + buf  # no header: this line is data
            return text, consumed, buf
        if len(buf) > HEADER_MAX or eof:
            if eof and not buf:
                return None, consumed, b""
            # an over-long first line: keep its start as the "header"
            # (parse will find no key column) and skip to its end
            line = buf[:HEADER_MAX]
            buf, eof = (b"", True) if eof else _after_line_end(chunks)
            consumed += 1
            text = decode_bytes(line.replace(b"\r", b""))
            if text.strip():
                return text, consumed, buf
            continue
        b = next(chunks, None)
        if b is None:
            eof = True
            continue
        if first:
            first = False
            if b.startswith(BOM):
                b = b[3:]
        buf += b


def _after_line_end(chunks: Iterator[bytes]) -> tuple[bytes, bool]:
    """Skip to the next line end: ``(the bytes after it, False)``, or ``(b"", True)`` at the end."""
    for b in chunks:
        k = b.find(b"\n")
        if k >= 0:
            return b[k + 1 :], False
    return b"", True


def _copy_data_lines(pieces: Iterable[bytes], writer: _PartWriter, cap: int) -> int:
    """Write the data lines to ``writer`` as UTF-8 with LF line ends; returns the lines cut at ``cap`` bytes."""
    cutter = _LineCutter(writer, cap)
    carry = b""
    for raw in pieces:
        # a CR ending a chunk may be the first half of a CRLF: hold it for the
        # next chunk; a lone CR at the very end is a line end, not data
        raw = carry + raw
        carry = b""
        if raw.endswith(b"\r"):
            carry, raw = b"\r", raw[:-1]
        cutter.feed(raw.replace(b"\r\n", b"\n"))
    return cutter.lines_cut


class _LineCutter:
    """Feeds LF-ended bytes to a writer, keeping the first ``cap`` bytes of a longer line."""

    def __init__(self, writer: _PartWriter, cap: int):
        self.writer, self.cap = writer, cap
        self.cur_len = 0  # bytes of the current (unfinished) line already written
        self.skipping = False  # inside a line already cut: drop until its end
        self.lines_cut = 0

    def feed(self, raw: bytes) -> None:
        if self.skipping:
            k = raw.find(b"\n")
            if k < 0:
                return
            raw = raw[k:]
            self.skipping = False
        k = raw.find(b"\n")
        head = k if k >= 0 else len(raw)
        if self.cur_len + head > self.cap:
            keep = max(self.cap - self.cur_len, 0)
            self.writer.write(_to_utf8(raw[:keep]))
            self.lines_cut += 1
            if k < 0:
                self.skipping = True
                self.cur_len += keep
                return
            raw = raw[k:]
            self.cur_len = 0
        self.writer.write(_to_utf8(raw))
        last = raw.rfind(b"\n")
        self.cur_len = len(raw) - last - 1 if last >= 0 else self.cur_len + len(raw)


@dataclass(frozen=True)
class StageSpec:
    """One table file to stage (picklable: it crosses to a worker process)."""

    path: str  # the zip or the loose file
    member: str | None  # zip member; None for a loose file
    source_file: str  # for messages
    out_dir: str  # the part files go here
    file_idx: int
    header_is_optional: bool = False


def die_with_parent(parent_pid: int) -> None:
    """Initializer of a staging worker process: exit as soon as the process
    that started it is gone (killed with SIGKILL, it cannot stop its pool; the
    workers would otherwise wait on their task queue for ever)."""
    import os
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="faerslake-parent-watch", daemon=True).start()


def stage_files(specs: list[StageSpec], max_line_chars: int) -> tuple[list[StagedFile] | None, str | None, float]:
    """Stage the files of one quarter: ``(staged files, None, seconds)``, or
    ``(None, why, seconds)`` when one of them cannot be read (the parts
    already written for the quarter are removed: a damaged zip fails its
    quarter only). Each zip is opened once for all its members (its central
    directory is parsed once). A failure to *write* the staging folder is no
    property of the input: it raises :class:`StagingWriteError`. Top-level and
    free of Spark, so a process pool can run it."""
    import time

    t = time.time()
    staged: list[StagedFile] = []
    zips: dict[str, zipfile.ZipFile] = {}
    try:
        for spec in specs:
            try:
                with _open_source(spec, zips) as stream:
                    staged.append(stage_stream(stream, Path(spec.out_dir), spec.file_idx, max_line_chars,
                                               header_is_optional=spec.header_is_optional))
            except _WriteFailed as e:
                raise StagingWriteError(spec.source_file, e.error.errno, e.error.strerror or str(e.error)) from None
            except OSError as e:
                raise StagingError(f"{spec.source_file} cannot be read ({e})") from None
    except StagingError as e:
        for st in staged:
            for p in st.parts:
                p.path.unlink(missing_ok=True)
        return None, str(e), time.time() - t
    finally:
        for zf in zips.values():
            zf.close()
    return staged, None, time.time() - t


def renumber(staged: StagedFile, file_idx: int) -> None:
    """Give a staged file another index: its part files are renamed (their
    names carry the index Spark reads back)."""
    if staged.file_idx == file_idx:
        return
    for p in staged.parts:
        _, first_line, lines = parse_part_name(p.path.name)
        new = p.path.with_name(part_name(file_idx, first_line, lines))
        p.path.rename(new)
        p.path = new
    staged.file_idx = file_idx


def _chain(first: list[bytes], rest):
    yield from first
    yield from rest


def _open_source(spec: StageSpec, zips: dict[str, zipfile.ZipFile]):
    """A context manager yielding a binary stream of a loose file or a zip member;
    a zip is opened once into ``zips`` (the caller closes them)."""
    if spec.member is None:
        return open(spec.path, "rb")  # noqa: SIM115 - returned as a context manager
    return _ZipMember(spec.path, spec.member, zips)


class _ZipMember:
    def __init__(self, path: str, member: str, zips: dict[str, zipfile.ZipFile]):
        self.path, self.member, self.zips = Path(path), member, zips
        self.name = f"{self.path.name}!/{member}"

    def __enter__(self):
        try:
            zf = self.zips.get(str(self.path))
            if zf is None:
                zf = self.zips[str(self.path)] = zipfile.ZipFile(self.path)
            why = member_problem(zf.getinfo(self.member))
            if why:  # the zip changed since discovery checked it
                raise StagingError(f"{self.name} {why}")
            self.fh = zf.open(self.member)
        except NotImplementedError as e:  # a compression method zipfile cannot read
            raise StagingError(f"{self.name} cannot be read ({e}): download the zip again") from None
        except (zipfile.BadZipFile, OSError, EOFError, KeyError, ValueError, RuntimeError) as e:
            raise StagingError(f"{self.name} cannot be read ({e})") from None
        return self

    def read(self, n: int = -1) -> bytes:
        try:
            return self.fh.read(n)
        except Exception as e:  # BadZipFile, OSError, EOFError, ValueError, zlib.error and friends
            raise StagingError(f"{self.name} is damaged ({e}); download the zip again") from None

    def __exit__(self, *exc):
        self.fh.close()
        return False
