"""Tests of ``faerslake.download`` against a local HTTP server on 127.0.0.1.

The server (an ephemeral port, in a thread, shut down in ``finally``) serves
generated FDA-style zips, and can break a transfer half-way, answer 503 once,
ignore Range requests, or serve a damaged zip. No traffic leaves the machine.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import threading
import zipfile
from contextlib import contextmanager

import pytest
from faerslake.download import DownloadError, candidate_names, download_quarters
from faerslake.generate import generate


def quiet(_msg: str) -> None:
    pass


class Recorder:
    def __init__(self):
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@contextmanager
def serve(files: dict[str, bytes], truncate_once: set[str] = frozenset(), fail_once: set[str] = frozenset(),
          ignore_range: bool = False):
    """Serve ``files`` at http://127.0.0.1:PORT/exports/NAME; yield (base_url, request log)."""
    log: list[tuple[str, str | None, int]] = []
    truncated: set[str] = set()
    failed: set[str] = set()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def do_GET(self):  # noqa: N802 (http.server's name)
            name = self.path.rsplit("/", 1)[-1]
            rng = self.headers.get("Range")
            if name not in files:
                log.append((name, rng, 404))
                self.send_error(404)
                return
            if name in fail_once and name not in failed:
                failed.add(name)
                log.append((name, rng, 503))
                self.send_error(503)
                return
            data = files[name]
            start = 0
            if rng and not ignore_range:
                start = int(rng.split("=")[1].split("-")[0])
                if start >= len(data):
                    log.append((name, rng, 416))
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                status = 206
            else:
                self.send_response(200)
                status = 200
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "application/zip")
            self.end_headers()
            log.append((name, rng, status))
            if name in truncate_once and name not in truncated:
                truncated.add(name)
                self.wfile.write(body[: len(body) // 2])  # then the connection closes
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/exports/", log
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def zips(tmp_path_factory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("zips")
    generate(d, 120, seed=2, quarters=["2012Q3", "2012Q4", "2019Q1"], as_zip=True, log=quiet)
    return {p.name: p.read_bytes() for p in d.glob("*.zip")}


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def test_candidate_names():
    assert candidate_names("2004Q1") == ["aers_ascii_2004q1.zip", "aers_ascii_2004Q1.zip"]
    assert candidate_names("2012q4") == ["faers_ascii_2012q4.zip", "faers_ascii_2012Q4.zip"]
    assert candidate_names("2022Q4") == ["faers_ascii_2022Q4.zip", "faers_ascii_2022q4.zip"]


def test_download_resume_missing_corrupt_and_manifest(zips, tmp_path):
    assert sorted(zips) == ["aers_ascii_2012q3.zip", "faers_ascii_2012q4.zip", "faers_ascii_2019Q1.zip"]
    corrupt = bytearray(zips["faers_ascii_2012q4.zip"])
    corrupt[len(corrupt) // 3: len(corrupt) // 3 + 64] = b"\0" * 64  # damaged member data
    files = dict(zips)
    files["faers_ascii_2014q3.zip"] = bytes(corrupt)
    dest = tmp_path / "dl"
    sleeps = Recorder()
    messages: list[str] = []
    with serve(files, truncate_once={"faers_ascii_2012q4.zip"}, fail_once={"aers_ascii_2012q3.zip"}) as (url, log):
        with pytest.raises(DownloadError) as err:
            download_quarters(["2012Q3", "2012Q4", "2013Q1", "2014Q3", "2019Q1"], dest, base_url=url,
                              retries=2, log=messages.append, sleep=sleeps)
    msg = str(err.value)
    assert "2 of 5 quarters could not be downloaded" in msg and "2013Q1" in msg and "2014Q3" in msg
    assert err.value.exit_code != 0
    # the good ones are byte-identical and recorded
    for name in zips:
        assert (dest / name).read_bytes() == zips[name]
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest == err.value.manifest
    assert [(e["quarter"], e["file"], e["size"], e["sha256"]) for e in manifest["files"]] == [
        ("2012Q3", "aers_ascii_2012q3.zip", len(zips["aers_ascii_2012q3.zip"]), sha(zips["aers_ascii_2012q3.zip"])),
        ("2012Q4", "faers_ascii_2012q4.zip", len(zips["faers_ascii_2012q4.zip"]), sha(zips["faers_ascii_2012q4.zip"])),
        ("2019Q1", "faers_ascii_2019Q1.zip", len(zips["faers_ascii_2019Q1.zip"]), sha(zips["faers_ascii_2019Q1.zip"])),
    ]
    assert set(manifest["missing"]) == {"2013Q1"} and "404" in manifest["missing"]["2013Q1"]
    assert set(manifest["failed"]) == {"2014Q3"} and "zip" in manifest["failed"]["2014Q3"]
    # the truncated transfer was resumed with a Range request from where it broke off
    q4 = [(rng, st) for n, rng, st in log if n == "faers_ascii_2012q4.zip"]
    assert q4[0] == (None, 200) and q4[1][1] == 206
    assert q4[1][0] == f"bytes={len(zips['faers_ascii_2012q4.zip']) // 2}-"
    assert len(q4) == 2
    # 2013Q1: both spellings tried, each 404, never retried
    assert [(n, st) for n, _, st in log if "2013" in n] == [("faers_ascii_2013q1.zip", 404),
                                                            ("faers_ascii_2013Q1.zip", 404)]
    # the corrupt zip: 1 + retries attempts, each from scratch (no Range)
    assert [(rng, st) for n, rng, st in log if n == "faers_ascii_2014q3.zip"] == [(None, 200)] * 3
    # back-off doubles: 503 once (2), truncation (2), corrupt twice (2, 4)
    assert sorted(sleeps.calls) == [2.0, 2.0, 2.0, 4.0]
    assert not list(dest.glob("*.part")) and not list(dest.glob(".*tmp"))
    assert any("MISSING" in m and "2013Q1" in m for m in messages)


def test_rerun_skips_verified_files_and_fetches_the_rest(zips, tmp_path, capsys):
    dest = tmp_path / "dl"
    with serve(zips) as (url, log):
        download_quarters(["2012Q3", "2012Q4"], dest, base_url=url, log=quiet, sleep=Recorder())
        assert len(log) == 2
        # the progress bar goes to stderr, stdout stays clean
        out, err = capsys.readouterr()
        assert out == ""
        assert "[2/2] 2012Q4 faers_ascii_2012q4.zip [########################] 100.0%" in err
        log.clear()
        m = download_quarters(["2012Q3", "2012Q4", "2019Q1"], dest, base_url=url, log=quiet, sleep=Recorder())
    # only 2019Q1 was fetched; the upper-case Q spelling is tried first from 2019 on
    assert log == [("faers_ascii_2019Q1.zip", None, 200)]
    assert [e["quarter"] for e in m["files"]] == ["2012Q3", "2012Q4", "2019Q1"]
    assert m["missing"] == {} and m["failed"] == {}


def test_resume_from_an_existing_part_file_and_server_ignoring_range(zips, tmp_path):
    name = "faers_ascii_2012q4.zip"
    data = zips[name]
    # a .part from an earlier, interrupted run: Range asks for the rest
    dest = tmp_path / "a"
    dest.mkdir()
    (dest / (name + ".part")).write_bytes(data[:1000])
    with serve({name: data}) as (url, log):
        download_quarters(["2012Q4"], dest, base_url=url, log=quiet, sleep=Recorder())
    assert log == [(name, "bytes=1000-", 206)]
    assert (dest / name).read_bytes() == data
    # a server that ignores Range: the file is fetched again from byte 0, not appended to
    dest = tmp_path / "b"
    dest.mkdir()
    (dest / (name + ".part")).write_bytes(b"junk" * 100)
    with serve({name: data}, ignore_range=True) as (url, log):
        download_quarters(["2012Q4"], dest, base_url=url, log=quiet, sleep=Recorder())
    assert log == [(name, "bytes=400-", 200)]
    assert (dest / name).read_bytes() == data


def test_part_already_complete_gets_416_and_is_verified(zips, tmp_path):
    name = "aers_ascii_2012q3.zip"
    dest = tmp_path / "c"
    dest.mkdir()
    (dest / (name + ".part")).write_bytes(zips[name])
    with serve({name: zips[name]}) as (url, log):
        m = download_quarters(["2012Q3"], dest, base_url=url, log=quiet, sleep=Recorder())
    assert log == [(name, f"bytes={len(zips[name])}-", 416)]
    assert m["files"][0]["sha256"] == sha(zips[name])


def test_not_a_zip_at_all_fails_after_retries(tmp_path):
    page = b"<html>Service temporarily unavailable</html>"
    sleeps = Recorder()
    with serve({"faers_ascii_2013q2.zip": page}) as (url, log):
        with pytest.raises(DownloadError, match="2013Q2"):
            download_quarters(["2013Q2"], tmp_path, base_url=url, retries=3, log=quiet, sleep=sleeps,
                              backoff=0.5)
    assert sleeps.calls == [0.5, 1.0, 2.0]
    assert len(log) == 4
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["files"] == [] and "not a readable zip" in m["failed"]["2013Q2"]


def test_cli_download_exit_code(zips, tmp_path):
    from faerslake.cli import main

    with serve(zips) as (url, _):
        assert main(["download", "--quarters", "2012Q3:2012Q4", "--dest", str(tmp_path / "ok"),
                     "--base-url", url]) == 0
        assert main(["download", "--quarters", "2013Q1", "--dest", str(tmp_path / "bad"),
                     "--base-url", url, "--retries", "0"]) != 0
    with zipfile.ZipFile(io.BytesIO((tmp_path / "ok" / "faers_ascii_2012q4.zip").read_bytes())) as zf:
        assert zf.testzip() is None


def test_bad_arguments_are_clear_errors(tmp_path):
    from faerslake.errors import FaerslakeError

    with pytest.raises(FaerslakeError, match="http"):
        download_quarters(["2012Q4"], tmp_path, base_url="ftp://example.invalid/", log=quiet)
    with pytest.raises(FaerslakeError, match="quarters"):
        download_quarters([], tmp_path, log=quiet)
