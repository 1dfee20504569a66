"""Fetch FDA's quarterly FAERS / legacy AERS zips: resumable, verified, recorded.

Place in the pipeline: before ``ingest``. ``faerslake download --quarters
2004Q1:2026Q2 --dest DIR`` leaves one verified zip per quarter in ``DIR`` and
``DIR/manifest.json`` (file, quarter, size, sha256, url of each), which
``faerslake ingest --source DIR`` then reads.

FDA's file names vary (``faers_ascii_2012q4.zip`` / ``faers_ascii_2022Q4.zip``,
``aers_ascii_2004q1.zip``), so every spelling is tried; a 404 for all of them
marks the quarter *missing*. A download goes to ``NAME.part``; after a broken
transfer the next attempt asks for the rest with an HTTP ``Range`` header, and
the file is renamed into place only when ``zipfile`` can read every member.
Transient failures (connection errors, time-outs, HTTP 5xx / 408 / 429, a
damaged zip) are retried with exponential back-off. Only the standard library
is used (``urllib``), so this works wherever Python does.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from faerslake import __version__
from faerslake.errors import FaerslakeError
from faerslake.files import atomic_write_text, sha256_file
from faerslake.logs import sink
from faerslake.quarters import era_of, parse_quarter, quarter_index

FDA_EXPORTS = "https://fis.fda.gov/content/Exports/"
MANIFEST = "manifest.json"
CHUNK = 1 << 16
_RETRYABLE_HTTP = {408, 425, 429, 500, 502, 503, 504}


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


def _fetch(url: str, part: Path, timeout: float, label: str) -> None:
    """Download ``url`` into ``part``, continuing from its current size with a Range request."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": f"faerslake/{__version__} (+FAERS quarterly download)"}
    if have:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 (http/https only, see caller)
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
        length = resp.headers.get("Content-Length")
        if have and status == 206:
            crange = resp.headers.get("Content-Range", "")
            # "bytes START-END/TOTAL": refuse a piece that does not start where ours ends
            try:
                start = int(crange.split()[1].split("-")[0])
            except (IndexError, ValueError):
                start = -1
            if start != have:
                part.unlink(missing_ok=True)
                raise _Transient(f"server answered the range request from byte {start}, not {have}; restarting")
            mode = "ab"
            total = have + int(length) if length else None
        else:
            if have:
                # the server ignored Range: start again from byte 0
                have = 0
            mode = "wb"
            total = int(length) if length else None
        bar = _Progress(label, total, have)
        got = 0
        try:
            with open(part, mode) as out:
                while True:
                    chunk = resp.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
        except (TimeoutError, http.client.IncompleteRead, ConnectionError, OSError) as e:
            bar.close()
            raise _Transient(f"transfer broke off after {have + got:,} bytes ({type(e).__name__})") from None
        bar.close()
        if length is not None and got < int(length):
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
) -> dict:
    """Download the zips of ``quarters`` into ``dest``; return the manifest (also ``dest/manifest.json``).

    Raises :class:`DownloadError` after trying every quarter when any of them
    is missing on the server or failed; the manifest then lists the good files
    and, under ``missing`` / ``failed``, what went wrong. A rerun resumes.
    """
    log = sink(log, __name__)
    base = _check_arguments(quarters, retries, base_url)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    mpath = dest / MANIFEST
    manifest = _load_manifest(mpath)
    manifest["source"] = base
    entries = {e["quarter"]: e for e in manifest["files"] if isinstance(e, dict) and "quarter" in e}
    missing: dict[str, str] = {}
    failed: dict[str, str] = {}
    qs = [parse_quarter(q) for q in quarters or []]

    def save() -> None:
        manifest["files"] = sorted(entries.values(), key=lambda e: quarter_index(e["quarter"]))
        manifest["missing"] = missing
        manifest["failed"] = failed
        _write_manifest(mpath, manifest)

    for i, q in enumerate(qs, 1):
        label = f"[{i}/{len(qs)}] {q}"
        names = candidate_names(q)
        if _already_verified(entries.get(q), dest):
            log(f"{label}: {entries[q]['file']} already downloaded and verified")
            continue
        present = [n for n in names if (dest / n).exists()]
        if present and _zip_problem(dest / present[0]) is None:
            entries[q] = _entry(q, dest / present[0], base + present[0])
            log(f"{label}: {present[0]} already present; verified and recorded")
            save()
            continue
        outcome = _download_one(q, names, base, dest, retries, label, log, sleep, backoff, max_backoff, timeout)
        kind, detail = outcome
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


def _check_arguments(quarters: list[str] | None, retries: int, base_url: str | None) -> str:
    """The base URL (with a trailing slash), after checking the arguments."""
    if not quarters:
        raise FaerslakeError("give the quarters to download, e.g. --quarters 2004Q1:2026Q2")
    if retries < 0:
        raise FaerslakeError("--retries must be 0 or more")
    base = (base_url or FDA_EXPORTS).rstrip("/") + "/"
    if not base.startswith(("http://", "https://")):
        raise FaerslakeError(f"--base-url {base_url} should start with http:// or https://")
    return base


def _already_verified(have: dict | None, dest: Path) -> bool:
    """Downloaded and verified earlier: the file is there with the recorded size and checksum."""
    if not have or not (dest / have["file"]).exists():
        return False
    f = dest / have["file"]
    return f.stat().st_size == have["size"] and sha256_file(f) == have["sha256"]


def _entry(q: str, f: Path, url: str) -> dict:
    return {"file": f.name, "quarter": q, "size": f.stat().st_size, "sha256": sha256_file(f), "url": url,
            "downloaded_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def _download_one(q, names, base, dest, retries, label, log, sleep, backoff, max_backoff, timeout):
    """('ok', file name) | ('missing', why) | ('failed', why) for one quarter."""
    attempt = 0
    not_found: list[str] = []
    idx = 0
    last_error = ""
    while idx < len(names):
        name = names[idx]
        url = base + name
        part = dest / (name + ".part")
        try:
            _fetch(url, part, timeout, f"{label} {name}")
            problem = _zip_problem(part)
            if problem:
                # a damaged download is not worth resuming: start this file again
                part.unlink(missing_ok=True)
                raise _Transient(f"{name}: {problem}")
            os.replace(part, dest / name)
            log(f"{label}: {name} downloaded and verified ({(dest / name).stat().st_size:,} bytes)")
            return "ok", name
        except _Missing:
            not_found.append(name)
            part.unlink(missing_ok=True)
            idx += 1
            continue
        except _Fatal as e:
            return "failed", f"{url}: {e}"
        except _Transient as e:
            last_error = str(e)
            if attempt >= retries:
                return "failed", f"{url}: {last_error} (gave up after {attempt + 1} attempts)"
            wait = min(max_backoff, backoff * (2 ** attempt))
            attempt += 1
            log(f"{label}: {last_error}; retry {attempt}/{retries} in {wait:g} s")
            sleep(wait)
    return "missing", (f"not on the server under any of its names ({', '.join(base + n for n in not_found)} "
                       f"answered 404); FDA may not have published it yet")
