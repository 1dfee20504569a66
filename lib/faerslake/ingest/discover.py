"""Ingest step 1: find FDA's quarterly files in a source folder.

Place in the pipeline: ``ingest`` = discover (this module) -> decode/stage
(``decode``) -> parse with Spark (``parse``) -> write bronze (``bronze``).

A source is a folder (a local path or a ``file:`` URI; ``dbfs:/x`` is read
through the ``/dbfs/x`` mount) holding any mix of

- FDA zips as downloaded (``aers_ascii_2004q1.zip``, ``faers_ascii_2019Q1.zip``):
  the quarter comes from ``(\\d{4})q([1-4])`` in the zip's name, else from the
  table files inside;
- extracted quarter folders or bare table files (``DEMO20Q3.txt``,
  ``demo12q4.txt``): the quarter comes from ``yyQq`` in the file name;
- deleted-case lists (``Deleted/DELETE22Q4.txt``, ``ADR19Q1DeletedCases.txt``).

Everything else (PDFs, ``STATyyQq.TXT``, README) is ignored and listed.
Each of these marks its quarter as failed with a reason (``QuarterFiles.problem``;
the rest of the run proceeds):

- a quarter+table found twice (two DEMO members in one zip, a browser's second
  download ``faers_ascii_2019q1 (1).zip``): the reason names both files;
- a zip that cannot be opened, or fails the checks of :func:`_check_zip`
  (member paths leaving the zip, zip-bomb ratios and sizes, overlapping
  entries, more than ``MAX_ZIP_MEMBERS`` members, encrypted members or
  compression methods Python cannot read);
- a table file or zip that is a dangling link, unreadable, or not a regular
  file (a device, a fifo): nothing is opened that could block or never end.

Folders are walked following symbolic links (a folder reached twice, e.g. a
link loop, is read once and said); folders starting with ``.`` or ``_`` are
skipped, and said. A zip member named for another quarter than its zip's is
loaded as the zip's quarter, with a warning.
"""

from __future__ import annotations

import os
import re
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from faerslake.config import IngestSettings
from faerslake.errors import InputError
from faerslake.files import strip_file_scheme
from faerslake.quarters import era_of, quarter_index

TABLES = ("demo", "drug", "reac", "outc", "rpsr", "ther", "indi")
DELETED = "deleted_cases"

_TABLE_FILE = re.compile(r"^(DEMO|DRUG|REAC|OUTC|RPSR|THER|INDI)(\d{2})Q([1-4])(_new)?\.txt$", re.I)
_ZIP_QUARTER = re.compile(r"(\d{4})q([1-4])", re.I)
_SHORT_QUARTER = re.compile(r"(\d{2})q([1-4])", re.I)
_REMOTE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]+://")

# FDA's quarterly zips hold about 20 members; more than this is refused before
# anything is staged (the member list is read once, but every member costs a
# staged file and a literal in the Spark plans).
MAX_ZIP_MEMBERS = 10_000
_READABLE_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_METHOD_NAMES = {1: "Shrink", 6: "Implode", 9: "Deflate64", 10: "PKWARE Implode", 18: "IBM TERSE",
                 19: "IBM LZ77", 93: "Zstandard", 95: "XZ", 97: "WavPack", 98: "PPMd", 99: "AES encryption"}
_LOCAL_HEADER = 30  # bytes of a zip local file header before its name


@dataclass
class Source:
    """One physical file of the source: a zip or a loose table / deleted-list file."""

    path: Path
    rel: str  # path relative to the source root (stable when the root moves)
    kind: str  # "zip" | "file"
    size: int


@dataclass
class TableFile:
    """One table file (or deleted-case list) of one quarter."""

    quarter: str
    table: str  # demo .. indi, or deleted_cases
    source_file: str  # rel path, for zips "name.zip!/ascii/DEMO04Q1.TXT"
    source: Source
    member: str | None = None  # zip member name; None for a loose file
    member_size: int | None = None


@dataclass
class QuarterFiles:
    quarter: str
    files: list[TableFile] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    problem: str | None = None  # set when the quarter cannot be ingested

    @property
    def era(self) -> str:
        return era_of(self.quarter)

    @property
    def text_bytes(self) -> int:
        """Bytes of table text of the quarter (inflated size of zip members)."""
        return sum(tf.member_size if tf.member_size is not None else tf.source.size for tf in self.files)


@dataclass
class Discovery:
    quarters: dict[str, QuarterFiles]
    ignored: list[str]
    warnings: list[str]


def local_root(source: str) -> Path:
    """The local folder (or file) behind ``source``; remote schemes are refused clearly."""
    s = str(source)
    if s.startswith("file:"):
        s = strip_file_scheme(s)
    elif s.startswith("dbfs:"):
        fuse = "/dbfs/" + re.sub(r"^dbfs:/*", "", s)
        if not Path(fuse).exists():
            raise InputError(
                f"source {source} is on DBFS but the /dbfs mount is not available here: "
                f"copy the zips to a local or /dbfs-mounted folder and pass that path."
            )
        s = fuse
    elif _REMOTE.match(s):
        raise InputError(
            f"source {source} is a remote URI; ingest reads sources from a local or mounted folder "
            f"(e.g. /dbfs/..., a FUSE mount, or copy the zips first with 'aws s3 cp' / 'azcopy')."
        )
    p = Path(s).expanduser()
    if not p.exists():
        raise InputError(f"source {source} does not exist: pass the folder holding the FDA zips or quarter folders.")
    return p


def _quarter_from_short(yy: str, q: str) -> str:
    return f"20{yy}Q{q}"


def _is_deleted_name(parts: list[str]) -> bool:
    name = parts[-1].lower()
    if not name.endswith(".txt"):
        return False
    dirs = [p.lower() for p in parts[:-1]]
    return "deleted" in dirs or "delete" in name


def _unsafe_member(name: str) -> bool:
    n = name.replace("\\", "/")
    if n.startswith("/") or re.match(r"^[a-zA-Z]:", n):
        return True
    return any(part == ".." for part in n.split("/"))


def member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why Python's zipfile cannot read this member (the end of a sentence naming it), or None."""
    if info.flag_bits & 0x1:
        return ("is encrypted; faerslake reads no password-protected zips (FDA's are not): "
                "download the quarter again from FDA")
    if info.compress_type not in _READABLE_METHODS:
        label = _METHOD_NAMES.get(info.compress_type, "unknown")
        return (f"uses compression method {info.compress_type} ({label}), which Python's zipfile cannot read: "
                f"download the quarter again from FDA, or re-zip it with ordinary Deflate")
    return None


def _check_zip(zf: zipfile.ZipFile, name: str, settings: IngestSettings) -> str | None:
    """Why the zip must be refused, or None. One pass over the member list
    (read once, when ``zf`` was opened), one sort for the overlap check."""
    infos = zf.infolist()
    if len(infos) > MAX_ZIP_MEMBERS:
        return (f"{name} holds {len(infos):,} members, more than the {MAX_ZIP_MEMBERS:,} a FAERS zip could hold; "
                f"refusing it")
    total = 0
    for info in infos:
        if _unsafe_member(info.filename):
            return f"{name} holds a member whose path leaves the zip ({info.filename!r}); refusing the zip"
        if info.is_dir():
            continue
        why = member_problem(info)
        if why:
            return f"{name}: member {info.filename} {why}"
        total += info.file_size
        if info.file_size > 0:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > settings.max_zip_ratio:
                return (
                    f"{name}: member {info.filename} would inflate {ratio:.0f}x "
                    f"(more than ingest.max_zip_ratio={settings.max_zip_ratio:g}); refusing a possible zip bomb"
                )
    overlap = _overlap(infos, getattr(zf, "start_dir", None))
    if overlap:
        return overlap.format(name=name)
    if total > settings.max_unzipped_bytes:
        return (
            f"{name} would inflate to {total:,} bytes, more than ingest.max_unzipped_bytes="
            f"{settings.max_unzipped_bytes:,}; refusing it"
        )
    return None


def _overlap(infos: list[zipfile.ZipInfo], central_dir: int | None) -> str | None:
    """Entries whose bytes overlap (several central records pointing into one
    local entry: the "overlapping files" zip bomb, which some Pythons do not
    refuse by themselves), as a sentence with ``{name}`` for the zip, or None.
    An entry spans at least its local header, its name and its compressed data."""
    by_offset = sorted(infos, key=lambda i: i.header_offset)
    for a, b in zip(by_offset, [*by_offset[1:], None], strict=True):
        try:  # the name's bytes as stored: UTF-8 when flagged, else cp437 (zipfile decoded it so)
            name_bytes = len(a.orig_filename.encode("utf-8" if a.flag_bits & 0x800 else "cp437"))
        except UnicodeEncodeError:
            name_bytes = 0
        end = a.header_offset + _LOCAL_HEADER + name_bytes + a.compress_size
        nxt = b.header_offset if b is not None else central_dir
        if nxt is not None and end > nxt:
            other = b.filename if b is not None else "the central directory"
            return ("{name}: members " if b is not None else "{name}: member ") + (
                f"{a.filename} and {other} overlap (several entries share the same bytes); "
                f"refusing a possible zip bomb")
    return None


def _classify(parts: list[str]) -> tuple[str, str | None] | None:
    """(table, quarter-or-None) for a table file / deleted list path, else None."""
    name = parts[-1]
    m = _TABLE_FILE.match(name)
    if m:
        return m.group(1).lower(), _quarter_from_short(m.group(2), m.group(3))
    if _is_deleted_name(parts):
        mq = _ZIP_QUARTER.search(name) or None
        if mq:
            return DELETED, f"{mq.group(1)}Q{mq.group(2)}"
        ms = _SHORT_QUARTER.search(name)
        return DELETED, _quarter_from_short(ms.group(1), ms.group(2)) if ms else None
    return None


def _folder_quarter(parts: list[str]) -> str | None:
    for p in reversed(parts[:-1]):
        m = _ZIP_QUARTER.search(p)
        if m:
            return f"{m.group(1)}Q{m.group(2)}"
    return None


@dataclass
class _Found:
    """What the walk over a source found, before grouping by quarter."""

    files: list[TableFile] = field(default_factory=list)
    failed: list[tuple[str, str, Source]] = field(default_factory=list)  # (quarter, why, zip)
    ignored: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def discover(source: str, settings: IngestSettings, quarters: list[str] | None = None) -> Discovery:
    """Find every table file and deleted list under ``source``, grouped by quarter."""
    found = _Found()
    base, paths = _walk(local_root(source), found)
    for path in paths:
        rel = path.relative_to(base).as_posix()
        if path.suffix.lower() == ".zip":
            _zip_members(path, rel, settings, found)
        else:
            _loose_file(path, rel, found)
    out = _group_by_quarter(found, set(quarters) if quarters else None, source)
    for q, qf in out.items():
        # a quarter without one of the seven tables is loaded, but said: its
        # rows of that table (if any were ingested before) are replaced by none
        missing = [t.upper() for t in TABLES if not any(tf.table == t for tf in qf.files)]
        if missing and not qf.problem and len(missing) < len(TABLES):
            found.warnings.append(f"{q} has no {', '.join(missing)} file; bronze "
                                  f"{', '.join(m.lower() for m in missing)} will hold no rows of {q}")
    return Discovery(dict(sorted(out.items(), key=lambda kv: quarter_index(kv[0]))), found.ignored, found.warnings)


def _walk(root: Path, found: _Found) -> tuple[Path, list[Path]]:
    """``(base, files)``: the files under ``root`` (or ``root`` itself) in a stable
    order, without hidden ones. Symbolic links to folders are followed; a folder
    reached a second time (a link loop, or two links to one folder) is read once,
    and folders starting with ``.`` or ``_`` are skipped; both go to the warnings."""
    if root.is_file():
        return root.parent, [root] if not root.name.startswith(".") else []
    paths: list[Path] = []
    skipped: list[str] = []
    seen: dict[tuple[int, int], str] = {}  # (device, inode) of each folder read -> its path

    def unreadable(e: OSError) -> None:
        where = Path(e.filename).relative_to(root).as_posix() if e.filename else str(root)
        found.warnings.append(f"folder {where} cannot be read ({e.strerror or e}); its files are not read")

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=True):
        here = Path(dirpath)
        rel = here.relative_to(root).as_posix()
        st = here.stat()
        first = seen.setdefault((st.st_dev, st.st_ino), rel)
        if first != rel:
            found.warnings.append(f"{rel} is a link to a folder already read ({first}); not read again")
            dirnames[:] = []
            continue
        skipped.extend((here / d).relative_to(root).as_posix() for d in sorted(dirnames) if d.startswith((".", "_")))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        paths.extend(here / f for f in sorted(filenames) if not f.startswith("."))
    if skipped:
        found.warnings.append(f"not read: folders {', '.join(skipped)} (names starting with '.' or '_' are skipped)")
    return root, paths


_KINDS = ((stat.S_ISDIR, "folder"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
          (stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"))


def _unusable(path: Path, rel: str) -> tuple[int, str | None]:
    """``(size, None)`` for a regular file this process can read, else ``(0, why)``.
    Nothing that is not a regular file is opened (a fifo would block, /dev/zero never end)."""
    link = f" (a link to {os.readlink(path)})" if path.is_symlink() else ""
    try:
        st = path.stat()
    except FileNotFoundError:
        if link:
            return 0, f"{rel} is a symbolic link to {os.readlink(path)}, which does not exist: fix or remove the link"
        return 0, f"{rel} disappeared while the source was read: run again"
    except OSError as e:
        return 0, f"{rel}{link} cannot be read ({e.strerror or e}): fix or remove it"
    if not stat.S_ISREG(st.st_mode):
        kind = next((k for test, k in _KINDS if test(st.st_mode)), "special file")
        return 0, f"{rel}{link} is a {kind}, not a regular file: replace it with the file itself"
    try:
        os.close(os.open(path, os.O_RDONLY))
    except OSError as e:
        return 0, f"{rel}{link} cannot be read ({e.strerror or e}): let the user running faerslake read it, or remove it"
    return st.st_size, None


def _zip_members(path: Path, rel: str, settings: IngestSettings, found: _Found) -> None:
    """Record the table files inside the zip ``path``, or why its quarter cannot be ingested."""
    zq = _ZIP_QUARTER.search(path.name)
    zip_quarter = f"{zq.group(1)}Q{zq.group(2)}" if zq else None
    size, problem = _unusable(path, rel)
    src = Source(path, rel, "zip", size)
    if problem is None:
        try:
            with zipfile.ZipFile(path) as zf:
                problem = _check_zip(zf, rel, settings)
                infos = zf.infolist()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            problem = f"{rel} is not a readable zip ({e}); download it again"
    if problem:
        if zip_quarter is None:
            found.warnings.append(problem + " (no quarter in its name; skipped)")
        else:
            found.failed.append((zip_quarter, problem, src))
        return
    for info in infos:
        if info.is_dir():
            continue
        kind = _classify(list(PurePosixPath(info.filename.replace("\\", "/")).parts))
        disp = f"{rel}!/{info.filename}"
        if kind is None:
            found.ignored.append(disp)
            continue
        table, q = kind
        if zip_quarter and q and q != zip_quarter:
            # FDA has published quarters holding files of another quarter
            found.warnings.append(f"{disp} is named for {q} but sits in the zip of {zip_quarter}: loaded as "
                                  f"{zip_quarter}; check that the zip holds the quarter its name says")
        q = zip_quarter or q
        if q is None:
            found.warnings.append(f"{disp}: cannot tell its quarter; ignored")
            found.ignored.append(disp)
            continue
        found.files.append(TableFile(q, table, disp, src, info.filename, info.file_size))


def _loose_file(path: Path, rel: str, found: _Found) -> None:
    """Record a table file or deleted list outside a zip (anything else is ignored)."""
    parts = rel.split("/")
    kind = _classify(parts)
    if kind is None:
        found.ignored.append(rel)
        return
    table, q = kind
    q = q or _folder_quarter(parts)
    size, problem = _unusable(path, rel)
    if q is None:
        found.warnings.append(f"{problem or rel + ': cannot tell its quarter'}; ignored")
        found.ignored.append(rel)
        return
    src = Source(path, rel, "file", size)
    if problem:
        found.failed.append((q, problem, src))
        return
    found.files.append(TableFile(q, table, rel, src))


def _group_by_quarter(found: _Found, wanted: set[str] | None, source: str) -> dict[str, QuarterFiles]:
    """The found files of the ``wanted`` quarters by quarter. A quarter+table found
    twice, and a file that cannot be read, fail that quarter (the first reason is kept)."""
    out: dict[str, QuarterFiles] = {}
    seen: dict[tuple[str, str], TableFile] = {}
    for tf in found.files:
        if wanted is not None and tf.quarter not in wanted:
            continue
        qf = out.setdefault(tf.quarter, QuarterFiles(tf.quarter))
        if tf.source not in qf.sources:
            qf.sources.append(tf.source)
        if tf.table != DELETED:
            key = (tf.quarter, tf.table)
            if key in seen and qf.problem is None:
                qf.problem = (f"{tf.table.upper()} of {tf.quarter} is in the source twice ({seen[key].source_file} "
                              f"and {tf.source_file}): remove one of them from {source} and run again")
            seen.setdefault(key, tf)
        qf.files.append(tf)
    for q, problem, src in found.failed:
        if wanted is not None and q not in wanted:
            continue
        qf = out.setdefault(q, QuarterFiles(q))
        if src not in qf.sources:
            qf.sources.append(src)  # the quarter is reported with its zip
        qf.problem = qf.problem or problem
    return out
