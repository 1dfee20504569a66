"""Fetch FDA's quarterly FAERS / legacy AERS zips: resumable, verified, recorded.

Place in the pipeline: before ``ingest``. ``faerslake download --quarters
2004Q1:2026Q2 --dest DIR`` leaves one verified zip per quarter in ``DIR`` and
``DIR/manifest.json`` (file, quarter, size, sha256, url of each). ``ingest``
does not need the manifest (it hashes the zips itself); it records what was
fetched, from where, and what is missing or failed.

FDA's file names vary (``faers_ascii_2012q4.zip`` / ``faers_ascii_2022Q4.zip``,
``aers_ascii_2004q1.zip``), so every spelling is tried; a 404 for all of them
marks the quarter *missing*. FDA also answers some wrong names with a 200 and
an HTML error page (a "soft 404"): a 200 whose body does not start like a
zip (``PK\x03\x04``; read before anything is written) moves on to the next
spelling at once, without a retry.

A download goes to ``NAME.part``; after a broken transfer the next attempt
asks for the rest with an HTTP ``Range`` header, plus ``If-Range`` with the
ETag (or Last-Modified) of the first response (kept in ``NAME.part.if-range``),
so a file FDA replaced in between is fetched again from byte 0 instead of being
spliced onto the old bytes. The file is renamed into place only when
``zipfile`` can read every member. Transient failures (connection errors,
time-outs, HTTP 5xx / 408 / 429, a damaged zip) are retried with exponential
back-off.

Limits: one file may be at most ``max_bytes`` (default 2 GiB; a larger
Content-Length or body is aborted and its partial file removed) and must
arrive within ``deadline`` seconds (default 30 min, all attempts and
spellings of the quarter together; the partial file is kept so a rerun
resumes). Socket operations time out after ``timeout`` seconds or the time
left, whichever is shorter, so a server trickling bytes is cut off at most one
socket wait past the deadline. A download that starts on ``https`` refuses a
redirect to anything but ``https``; from ``http`` only ``http``/``https``
redirects are followed (urllib alone would also follow ``ftp``); a plain
``http://`` base URL gets one warning. Only the standard library is used
(``urllib``), so this works wherever Python does.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, NamedTuple

from faerslake import __version__
from faerslake.errors import FaerslakeError
from faerslake.files import atomic_write_text, sha256_file
from faerslake.logs import sink
from faerslake.quarters import era_of, parse_quarter, quarter_index

FDA_EXPORTS = "https://fis.fda.gov/content/Exports/"
MANIFEST = "manifest.json"
CHUNK = 1 << 16
_RETRYABLE_HTTP = {408, 425, 429, 500, 502, 503, 504}
MAX_BYTES = 2 << 30  # 2 GiB, far above the size of any FDA quarterly zip
DEADLINE = 30 * 60.0  # seconds for one quarter's file, all attempts together
ZIP_MAGIC = b"PK\x03\x04"  # a zip's first local file header
VALIDATOR_SUFFIX = ".if-range"  # NAME.part.if-range: the ETag / Last-Modified of NAME.part's first response


class DownloadError(FaerslakeError):
    """Some quarters could not be downloaded (the others were kept)."""

    exit_code = 4

    def __init__(self, message: str, manifest: dict):
        super().__init__(message)
        self.manifest = manifest


class _Transient(Exception):
    """A failure worth another attempt."""


class _Missing(Exception):
    """The server does not have this file (404 / 410)."""


class _Fatal(Exception):
    """A failure another attempt will not fix (e.g. HTTP 403)."""


class _NotAZip(Exception):
    """A 200 that is not a zip (FDA's HTML error page for a wrong name): try the next spelling."""


class _OutOfTime(Exception):
    """The quarter's deadline passed during a transfer."""


class _SafeRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to https once on https, and only to http/https from http (never ftp)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        old = urllib.parse.urlsplit(req.full_url).scheme.lower()
        new = urllib.parse.urlsplit(newurl).scheme.lower()
        allowed = ("https",) if old == "https" else ("http", "https")
        if new not in allowed:
            fp.close()
            if old == "https":
                raise _Fatal(f"refused a redirect (HTTP {code}) from https to {newurl}: "
                             f"a download that starts on https stays on https")
            raise _Fatal(f"refused a redirect (HTTP {code}) to {newurl}: only http and https are followed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def candidate_names(quarter: str) -> list[str]:
    """File names FDA has used for ``quarter``, most likely first."""
    q = parse_quarter(quarter)
    year, n = q[:4], q[5]
    prefix = "faers_ascii" if era_of(q) == "faers" else "aers_ascii"
    names = [f"{prefix}_{year}q{n}.zip", f"{prefix}_{year}Q{n}.zip"]
    if quarter_index(q) >= quarter_index("2019Q1"):
        names.reverse()  # FDA writes the upper-case Q from 2019 on
    return names


class _Progress:
    """A one-line progress bar on stderr (throttled; plain lines when not a terminal)."""

    def __init__(self, label: str, total: int | None, start: int, stream: IO[str] | None = None):
        self.label = label
        self.total = total
        self.done = start
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.monotonic()
        self.start = start
        self.last = 0.0
        self.last_pct = -1

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.tty and now - self.last < 0.2:
            return
        pct = int(100 * self.done / self.total) if self.total else -1
        if not self.tty and (pct // 25 == self.last_pct // 25):
            return
        self.last, self.last_pct = now, pct
        self._draw(now)

    def _draw(self, now: float, end: str = "") -> None:
        rate = (self.done - self.start) / max(now - self.t0, 1e-6) / 1e6
        if self.total:
            width = 24
            fill = int(width * self.done / self.total)
            bar = f"[{'#' * fill}{'.' * (width - fill)}] {100 * self.done / self.total:5.1f}%"
            size = f"{self.done / 1e6:.1f}/{self.total / 1e6:.1f} MB"
        else:
            bar, size = "[ size unknown ]", f"{self.done / 1e6:.1f} MB"
        line = f"{self.label} {bar} {size} {rate:.1f} MB/s"
        self.stream.write(("\r" + line + end) if self.tty else (line + "\n"))
        self.stream.flush()

    def close(self) -> None:
        self._draw(time.monotonic(), end="\n")


def _zip_problem(path: Path) -> str | None:
    """Why ``path`` is not a readable zip, or None when every member reads back."""
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, RuntimeError) as e:
        return f"not a readable zip ({e})"
    if bad is not None:
        return f"zip member {bad} is damaged (CRC mismatch)"
    return None


def _validator_path(part: Path) -> Path:
    return part.with_name(part.name + VALIDATOR_SUFFIX)


def _discard(part: Path) -> None:
    """Remove a partial download and its saved validator."""
    part.unlink(missing_ok=True)
    _validator_path(part).unlink(missing_ok=True)


def _validator(headers) -> str | None:
    """The If-Range value for a response: its strong ETag, else its Last-Modified, else None."""
    etag = (headers.get("ETag") or "").strip()
    if etag and not etag.startswith("W/"):  # If-Range needs a strong validator
        return etag
    return (headers.get("Last-Modified") or "").strip() or None


def _saved_validator(part: Path) -> str | None:
    try:
        text = _validator_path(part).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if text and text.isprintable() else None


def _content_length(headers) -> int | None:
    try:
        n = int(headers.get("Content-Length") or "")
    except ValueError:
        return None
    return n if n >= 0 else None


def _read_some(resp) -> bytes:
    """What the server has sent so far (at most CHUNK bytes): one socket read, so time limits hold."""
    read1 = getattr(resp, "read1", None)
    return read1(CHUNK) if read1 else resp.read(CHUNK)


def _head(resp, n: int) -> bytes:
    """The first ``n`` bytes of the body (fewer only at its end)."""
    buf = b""
    while len(buf) < n:
        chunk = _read_some(resp)
        if not chunk:
            break
        buf += chunk
    return buf


def _not_a_zip(resp, first: bytes) -> str | None:
    """Why a 200 response is not a zip download (an HTML error page, say), or None."""
    if first.startswith(ZIP_MAGIC):
        return None  # a zip, whatever its label (a mirror may call it text/html)
    ctype = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if ctype == "text/html":
        return "answered 200 with an HTML page (Content-Type text/html), not a zip"
    return f"answered 200 with a body that is not a zip (it starts {first[:16]!r})"


def _fetch(url: str, part: Path, timeout: float, label: str, *, max_bytes: int = MAX_BYTES,
           deadline_at: float | None = None) -> None:
    """Download ``url`` into ``part``, continuing from its current size with a Range request.

    Raises _Missing / _NotAZip (try the next name), _Transient (try again),
    _Fatal (give up on the quarter) or _OutOfTime."""
    if deadline_at is None:
        deadline_at = time.monotonic() + DEADLINE
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": f"faerslake/{__version__} (+FAERS quarterly download)"}
    if have:
        headers["Range"] = f"bytes={have}-"
        saved = _saved_validator(part)
        if saved:
            # a file changed since the first response comes back whole (200), not spliced on
            headers["If-Range"] = saved
    req = urllib.request.Request(url, headers=headers)
    left = deadline_at - time.monotonic()
    if left <= 0:
        raise _OutOfTime()
    opener = urllib.request.build_opener(_SafeRedirects)
    try:
        resp = opener.open(req, timeout=min(timeout, left))  # http/https only, see caller and _SafeRedirects
    except urllib.error.HTTPError as e:
        e.close()
        if e.code in (404, 410):
            raise _Missing(f"HTTP {e.code}") from None
        if e.code == 416 and have:
            # our .part is already whole (or longer than the file): let verification decide
            return
        if e.code in _RETRYABLE_HTTP:
            raise _Transient(f"HTTP {e.code} {e.reason}") from None
        raise _Fatal(f"HTTP {e.code} {e.reason}") from None
    except (TimeoutError, urllib.error.URLError, ConnectionError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        raise _Transient(f"connection failed ({reason})") from None
    with resp:
        status = resp.status
        length = _content_length(resp.headers)
        if have and status == 206:
            crange = resp.headers.get("Content-Range", "")
            # "bytes START-END/TOTAL": refuse a piece that does not start where ours ends
            try:
                start = int(crange.split()[1].split("-")[0])
            except (IndexError, ValueError):
                start = -1
            if start != have:
                _discard(part)
                raise _Transient(f"server answered the range request from byte {start}, not {have}; restarting")
            mode = "ab"
            total = have + length if length is not None else None
        else:
            # a fresh download, or the server ignored Range / the file changed (If-Range): from byte 0
            have = 0
            mode = "wb"
            total = length
        if total is not None and total > max_bytes:
            _discard(part)
            raise _Fatal(f"the file is {total:,} bytes (Content-Length), over the {max_bytes:,}-byte limit "
                         f"for one download; not downloaded")
        got = 0
        bar = None
        try:
            first = b""
            if mode == "wb":
                first = _head(resp, len(ZIP_MAGIC))
                why = _not_a_zip(resp, first)
                if why:
                    _discard(part)
                    raise _NotAZip(why)
                validator = _validator(resp.headers)
                if validator and validator.isprintable():
                    atomic_write_text(_validator_path(part), validator + "\n")
                else:
                    _validator_path(part).unlink(missing_ok=True)
            bar = _Progress(label, total, have)
            with open(part, mode) as out:
                chunk = first
                while True:
                    if not chunk:
                        chunk = _read_some(resp)
                        if not chunk:
                            break
                    if have + got + len(chunk) > max_bytes:
                        out.close()
                        _discard(part)
                        raise _Fatal(f"the body ran past the {max_bytes:,}-byte limit for one download; "
                                     f"aborted and the partial file removed")
                    out.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
                    chunk = b""
                    if time.monotonic() >= deadline_at and (length is None or got < length):
                        raise _OutOfTime()
        except (TimeoutError, http.client.IncompleteRead, ConnectionError, OSError) as e:
            raise _Transient(f"transfer broke off after {have + got:,} bytes ({type(e).__name__})") from None
        finally:
            if bar is not None:
                bar.close()
        if length is not None and got < length:
            raise _Transient(f"transfer broke off after {have + got:,} of {total:,} bytes")


def _load_manifest(path: Path) -> dict:
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and isinstance(data.get("files"), list):
                return data
        except (OSError, ValueError):
            pass
    return {"files": []}


def _write_manifest(path: Path, manifest: dict) -> None:
    atomic_write_text(path, json.dumps(manifest, indent=1, sort_keys=False) + "\n")


def download_quarters(
    quarters: list[str] | None,
    dest: Path,
    base_url: str | None = None,
    retries: int = 5,
    log: Callable[[str], None] | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    backoff: float = 2.0,
    max_backoff: float = 120.0,
    timeout: float = 120.0,
    max_bytes: int = MAX_BYTES,
    deadline: float = DEADLINE,
) -> dict:
    """Download the zips of ``quarters`` into ``dest``; return the manifest (also ``dest/manifest.json``).

    ``max_bytes`` caps one file's size and ``deadline`` (seconds) the time spent
    on one quarter's file, all attempts together; see the module docstring.
    Raises :class:`DownloadError` after trying every quarter when any of them
    is missing on the server or failed; the manifest then lists the good files
    and, under ``missing`` / ``failed``, what went wrong. A rerun resumes.
    """
    log = sink(log, __name__)
    base = _check_arguments(quarters, retries, base_url, max_bytes, deadline)
    if base.lower().startswith("http://"):
        log(f"warning: --base-url {base} is plain http: the files arrive unencrypted and anyone on the way "
            f"can change them (the zip check only catches damage); use https where the server offers it")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    mpath = dest / MANIFEST
    manifest = _load_manifest(mpath)
    manifest["source"] = base
    entries = _manifest_entries(manifest["files"], log)
    missing: dict[str, str] = {}
    failed: dict[str, str] = {}
    qs = [parse_quarter(q) for q in quarters or []]
    limits = _Limits(retries, sleep, backoff, max_backoff, timeout, max_bytes, deadline)

    def save() -> None:
        manifest["files"] = sorted(entries.values(), key=lambda e: quarter_index(e["quarter"]))
        manifest["missing"] = missing
        manifest["failed"] = failed
        _write_manifest(mpath, manifest)

    for i, q in enumerate(qs, 1):
        label = f"[{i}/{len(qs)}] {q}"
        names = candidate_names(q)
        known = entries.get(q)
        if known is not None and not _complete_entry(known, names):
            log(f"warning: {label}: the {mpath.name} entry for {q} lacks a usable file/size/sha256 "
                f"(edited by hand?); checking the file again")
            known = None
        if _already_verified(known, dest):
            log(f"{label}: {entries[q]['file']} already downloaded and verified")
            continue
        present = [n for n in names if (dest / n).exists()]
        if present and _zip_problem(dest / present[0]) is None:
            entries[q] = _entry(q, dest / present[0], base + present[0])
            log(f"{label}: {present[0]} already present; verified and recorded")
            save()
            continue
        kind, detail = _download_one(q, names, base, dest, label, log, limits)
        if kind == "ok":
            entries[q] = _entry(q, dest / detail, base + detail)
            missing.pop(q, None)
            failed.pop(q, None)
        elif kind == "missing":
            entries.pop(q, None)
            missing[q] = detail
            log(f"{label}: MISSING - {detail}")
        else:
            entries.pop(q, None)
            failed[q] = detail
            log(f"{label}: FAILED - {detail}")
        save()
    save()
    bad = {**missing, **failed}
    if bad:
        listed = "; ".join(f"{q}: {why}" for q, why in sorted(bad.items(), key=lambda kv: quarter_index(kv[0])))
        raise DownloadError(
            f"{len(bad)} of {len(qs)} quarters could not be downloaded ({listed}); the others are in {dest} "
            f"and listed in {mpath.name} - rerun the same command to retry (partial files resume).",
            manifest,
        )
    log(f"downloaded {len(qs)} quarters into {dest} ({mpath.name} updated)")
    return manifest


class _Limits(NamedTuple):
    retries: int
    sleep: Callable[[float], None]
    backoff: float
    max_backoff: float
    timeout: float
    max_bytes: int
    deadline: float


def _check_arguments(quarters: list[str] | None, retries: int, base_url: str | None,
                     max_bytes: int = MAX_BYTES, deadline: float = DEADLINE) -> str:
    """The base URL (with a trailing slash), after checking the arguments."""
    if not quarters:
        raise FaerslakeError("give the quarters to download, e.g. --quarters 2004Q1:2026Q2")
    if retries < 0:
        raise FaerslakeError("--retries must be 0 or more")
    if max_bytes <= 0:
        raise FaerslakeError(f"the size limit for one download must be positive (got {max_bytes})")
    if not deadline > 0:
        raise FaerslakeError(f"the deadline for one download must be a positive number of seconds (got {deadline})")
    base = (base_url or FDA_EXPORTS).rstrip("/") + "/"
    if not base.lower().startswith(("http://", "https://")):
        raise FaerslakeError(f"--base-url {base_url} should start with http:// or https://")
    return base


def _manifest_entries(files: list, log: Callable[[str], None]) -> dict[str, dict]:
    """The manifest's entries by quarter; entries without a valid quarter are dropped (with a warning)."""
    entries: dict[str, dict] = {}
    dropped = 0
    for e in files:
        try:
            q = parse_quarter(e["quarter"])
        except (TypeError, KeyError, AttributeError, FaerslakeError):
            dropped += 1
            continue
        entries[q] = {**e, "quarter": q}
    if dropped:
        log(f"warning: {MANIFEST}: dropped {dropped} entr{'y' if dropped == 1 else 'ies'} without a valid "
            f"quarter (edited by hand?)")
    return entries


def _complete_entry(have: dict, names: list[str]) -> bool:
    """The entry names one of the quarter's files and records its size and checksum."""
    size, digest = have.get("size"), have.get("sha256")
    return (have.get("file") in names and isinstance(size, int) and not isinstance(size, bool)
            and isinstance(digest, str))


def _already_verified(have: dict | None, dest: Path) -> bool:
    """Downloaded and verified earlier: the file is there with the recorded size and checksum."""
    if not have or not (dest / have["file"]).exists():
        return False
    f = dest / have["file"]
    return f.stat().st_size == have["size"] and sha256_file(f) == have["sha256"]


def _entry(q: str, f: Path, url: str) -> dict:
    return {"file": f.name, "quarter": q, "size": f.stat().st_size, "sha256": sha256_file(f), "url": url,
            "downloaded_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def _download_one(q: str, names: list[str], base: str, dest: Path, label: str,
                  log: Callable[[str], None], lim: _Limits) -> tuple[str, str]:
    """('ok', file name) | ('missing', why) | ('failed', why) for one quarter."""
    deadline_at = time.monotonic() + lim.deadline
    attempt = 0
    answers: list[tuple[str, str | None]] = []  # (url, None for a 404 / why it was not a zip)
    idx = 0
    last_error = ""

    def out_of_time(url: str, part: Path) -> tuple[str, str]:
        kept = part.stat().st_size if part.exists() else 0
        tail = f"; {kept:,} bytes kept in {part.name}, a rerun resumes" if kept else ""
        after = f" (last error: {last_error})" if last_error else ""
        return "failed", f"{url}: not finished within the {lim.deadline:g} s limit for one download{after}{tail}"

    while idx < len(names):
        name = names[idx]
        url = base + name
        part = dest / (name + ".part")
        if time.monotonic() >= deadline_at:
            return out_of_time(url, part)
        try:
            _fetch(url, part, lim.timeout, f"{label} {name}", max_bytes=lim.max_bytes, deadline_at=deadline_at)
            problem = _zip_problem(part)
            if problem:
                # a damaged download is not worth resuming: start this file again
                _discard(part)
                raise _Transient(f"{name}: {problem}")
            os.replace(part, dest / name)
            _validator_path(part).unlink(missing_ok=True)
            log(f"{label}: {name} downloaded and verified ({(dest / name).stat().st_size:,} bytes)")
            return "ok", name
        except _Missing:
            answers.append((url, None))
            _discard(part)
            idx += 1
            continue
        except _NotAZip as e:
            # FDA's "soft 404": an error page for a name it does not have - the next spelling may be right
            answers.append((url, str(e)))
            log(f"{label}: {name} {e}; trying the next spelling")
            idx += 1
            continue
        except _OutOfTime:
            return out_of_time(url, part)
        except _Fatal as e:
            return "failed", f"{url}: {e}"
        except _Transient as e:
            last_error = str(e)
            if attempt >= lim.retries:
                return "failed", f"{url}: {last_error} (gave up after {attempt + 1} attempts)"
            wait = min(lim.max_backoff, lim.backoff * (2 ** attempt))
            if time.monotonic() + wait >= deadline_at:
                return out_of_time(url, part)
            attempt += 1
            log(f"{label}: {last_error}; retry {attempt}/{lim.retries} in {wait:g} s")
            lim.sleep(wait)
    if all(why is None for _, why in answers):
        return "missing", (f"not on the server under any of its names ({', '.join(u for u, _ in answers)} "
                           f"answered 404); FDA may not have published it yet")
    said = "; ".join(f"{u} {why or 'answered 404'}" for u, why in answers)
    return "failed", (f"no name served a zip ({said}); an HTML page is usually the server's error page - "
                      f"rerun later, or check --base-url")
