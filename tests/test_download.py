"""Tests of ``faerslake.download`` against a local HTTP server on 127.0.0.1.

The server (an ephemeral port, in a thread, shut down in ``finally``) serves
generated FDA-style zips, and can break a transfer half-way, answer 503 once,
ignore Range requests, serve a damaged zip or an HTML error page, redirect,
send ETag / Last-Modified and honour If-Range, omit Content-Length, trickle or
stall, and speak TLS with a test certificate. No traffic leaves the machine.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import ssl
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


class RequestLog(list):
    """(name, Range header, status) per request; ``if_range`` holds each request's If-Range header."""

    def __init__(self):
        super().__init__()
        self.if_range: list[str | None] = []


@contextmanager
def serve(files: dict[str, bytes], truncate_once: set[str] = frozenset(), fail_once: set[str] = frozenset(),
          ignore_range: bool = False, content_types: dict[str, str] | None = None,
          redirects: dict[str, str] | None = None, validators: dict[str, dict[str, str]] | None = None,
          no_length: set[str] = frozenset(), trickle: set[str] = frozenset(), stall: set[str] = frozenset(),
          tls: tuple[str, str] | None = None):
    """Serve ``files`` at http://127.0.0.1:PORT/exports/NAME; yield (base_url, request log).

    ``content_types``: a Content-Type per name (default application/zip). ``redirects``: NAME ->
    Location (a 302 for /exports/NAME; any other folder serves the file). ``validators``: headers (ETag / Last-Modified) per name; a Range request whose
    If-Range does not match them gets the whole file (200), as RFC 9110 says. ``no_length``: no
    Content-Length, the body ends when the connection closes. ``trickle``: one byte every 50 ms.
    ``stall``: the headers, then silence (until the server shuts down). ``tls``: (cert, key) for https.
    """
    log = RequestLog()
    truncated: set[str] = set()
    failed: set[str] = set()
    stop = threading.Event()
    content_types = content_types or {}
    redirects = redirects or {}
    validators = validators or {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def do_GET(self):  # noqa: N802 (http.server's name)
            name = self.path.rsplit("/", 1)[-1]
            rng = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            log.if_range.append(if_range)
            if self.path.startswith("/exports/") and name in redirects:
                log.append((name, rng, 302))
                self.send_response(302)
                self.send_header("Location", redirects[name])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
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
            meta = validators.get(name, {})
            if if_range is not None and if_range not in meta.values():
                rng_used = None  # the file changed since that validator: send all of it
            else:
                rng_used = rng
            start = 0
            if rng_used and not ignore_range:
                start = int(rng_used.split("=")[1].split("-")[0])
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
            if name not in no_length:
                self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", content_types.get(name, "application/zip"))
            for k, v in meta.items():
                self.send_header(k, v)
            self.end_headers()
            log.append((name, rng, status))
            if name in stall:
                stop.wait(10)
                return
            if name in trickle:
                for i in range(len(body)):
                    if stop.wait(0.05):
                        return
                    try:
                        self.wfile.write(body[i:i + 1])
                        self.wfile.flush()
                    except OSError:  # the client hung up
                        return
                return
            if name in truncate_once and name not in truncated:
                truncated.add(name)
                self.wfile.write(body[: len(body) // 2])  # then the connection closes
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    scheme = "http"
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*tls)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}/exports/", log
    finally:
        stop.set()
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


FDA_ERROR_PAGE = (b"<!DOCTYPE html><html><head><title>Error</title></head><body>"
                  b"<p>An error occurred. Our developers have been notified.</p></body></html>")


def listing(d) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_soft_404_moves_on_to_the_next_spelling(zips, tmp_path):
    """A 200 with FDA's HTML error page (or any body not starting PK\\x03\\x04) means "wrong name": the other
    spelling is tried at once, nothing is retried or slept on, and no file of the wrong name is left behind."""
    good = zips["faers_ascii_2012q4.zip"]
    files = {"faers_ascii_2013q1.zip": FDA_ERROR_PAGE, "faers_ascii_2013Q1.zip": good,
             # not labelled text/html, but the body does not start like a zip
             "faers_ascii_2013q2.zip": b"Service temporarily unavailable", "faers_ascii_2013Q2.zip": good,
             # a zip mislabelled text/html is still a zip: its first bytes decide
             "faers_ascii_2013q3.zip": good}
    html = "text/html; charset=utf-8"
    sleeps = Recorder()
    messages: list[str] = []
    with serve(files, content_types={"faers_ascii_2013q1.zip": html, "faers_ascii_2013q3.zip": html}) as (url, log):
        m = download_quarters(["2013Q1", "2013Q2", "2013Q3"], tmp_path, base_url=url, retries=3,
                              log=messages.append, sleep=sleeps)
    assert log == [("faers_ascii_2013q1.zip", None, 200), ("faers_ascii_2013Q1.zip", None, 200),
                   ("faers_ascii_2013q2.zip", None, 200), ("faers_ascii_2013Q2.zip", None, 200),
                   ("faers_ascii_2013q3.zip", None, 200)]
    assert sleeps.calls == []
    assert listing(tmp_path) == ["faers_ascii_2013Q1.zip", "faers_ascii_2013Q2.zip", "faers_ascii_2013q3.zip",
                                 "manifest.json"]
    assert [(e["quarter"], e["file"], e["sha256"]) for e in m["files"]] == [
        ("2013Q1", "faers_ascii_2013Q1.zip", sha(good)), ("2013Q2", "faers_ascii_2013Q2.zip", sha(good)),
        ("2013Q3", "faers_ascii_2013q3.zip", sha(good))]
    assert m["missing"] == {} and m["failed"] == {}
    assert any("faers_ascii_2013q1.zip answered 200 with an HTML page (Content-Type text/html), not a zip; "
               "trying the next spelling" in x for x in messages)


def test_no_spelling_serves_a_zip_fails_with_each_answer(tmp_path):
    """An error page for one name and a 404 for the other: the quarter fails (not retried, no back-off)
    with what each name answered."""
    page = b"<html>Service temporarily unavailable</html>"
    sleeps = Recorder()
    with serve({"faers_ascii_2013q2.zip": page}) as (url, log):
        with pytest.raises(DownloadError, match="2013Q2"):
            download_quarters(["2013Q2"], tmp_path, base_url=url, retries=3, log=quiet, sleep=sleeps,
                              backoff=0.5)
    assert log == [("faers_ascii_2013q2.zip", None, 200), ("faers_ascii_2013Q2.zip", None, 404)]
    assert sleeps.calls == []
    assert listing(tmp_path) == ["manifest.json"]
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["files"] == [] and m["missing"] == {}
    assert m["failed"]["2013Q2"] == (
        f"no name served a zip ({url}faers_ascii_2013q2.zip answered 200 with a body that is not a zip "
        f"(it starts b'<html>Service te'); {url}faers_ascii_2013Q2.zip answered 404); an HTML page is usually "
        f"the server's error page - rerun later, or check --base-url")


# A self-signed certificate for 127.0.0.1 (EC P-256, valid 2000-2100), made for these tests only with
#   openssl ca -selfsign -startdate 20000101000000Z -enddate 21000101000000Z
#   (basicConstraints CA:TRUE, keyUsage digitalSignature+keyCertSign, EKU serverAuth, SAN IP:127.0.0.1)
TEST_KEY = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgvMOSAAx6f0ln4o3u
T34M/R+ZVW/i/j6bKdMfwofELv2hRANCAASr0UzdTm2DlYBl5RTfUSSYCEdUQSy/
lG+NUuiSiDHcuoYMVvfc81deXkYXd5lb7qumVPaSBlPuBUPeDaBCer/M
-----END PRIVATE KEY-----
"""
TEST_CERT = """-----BEGIN CERTIFICATE-----
MIIBnzCCAUWgAwIBAgIBATAKBggqhkjOPQQDAjAjMSEwHwYDVQQDDBhmYWVyc2xh
a2UgdGVzdCAxMjcuMC4wLjEwIBcNMDAwMTAxMDAwMDAwWhgPMjEwMDAxMDEwMDAw
MDBaMCMxITAfBgNVBAMMGGZhZXJzbGFrZSB0ZXN0IDEyNy4wLjAuMTBZMBMGByqG
SM49AgEGCCqGSM49AwEHA0IABKvRTN1ObYOVgGXlFN9RJJgIR1RBLL+Ub41S6JKI
Mdy6hgxW99zzV15eRhd3mVvuq6ZU9pIGU+4FQ94NoEJ6v8yjaDBmMA8GA1UdEwEB
/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgKEMBMGA1UdJQQMMAoGCCsGAQUFBwMBMA8G
A1UdEQQIMAaHBH8AAAEwHQYDVR0OBBYEFIBVee6x2NGYF/v6USIr8HNEu84TMAoG
CCqGSM49BAMCA0gAMEUCIQCHa+1WinltSXeD6h/H3SfI+e9ISOV7lpyTaxOS6r7V
RgIgUAXikb4j2Y5iqiS8b+7znN+BFl3fvLs6hAG851Ze0CY=
-----END CERTIFICATE-----
"""


@pytest.fixture
def tls(tmp_path_factory, monkeypatch) -> tuple[str, str]:
    """(cert, key) files; the client trusts the certificate through SSL_CERT_FILE (OpenSSL reads it per context)."""
    d = tmp_path_factory.mktemp("tls")
    (d / "cert.pem").write_text(TEST_CERT)
    (d / "key.pem").write_text(TEST_KEY)
    monkeypatch.setenv("SSL_CERT_FILE", str(d / "cert.pem"))
    return str(d / "cert.pem"), str(d / "key.pem")


def test_redirect_from_https_to_http_is_refused(zips, tmp_path, tls):
    """https -> http is refused before any plaintext request; https -> https is followed; no http warning."""
    q3, q4 = "aers_ascii_2012q3.zip", "faers_ascii_2012q4.zip"
    sleeps = Recorder()
    messages: list[str] = []
    with serve(zips) as (plain, plain_log):
        redirects = {q3: plain + q3, q4: "/mirror/" + q4}
        with serve(zips, redirects=redirects, tls=tls) as (url, log):
            assert url.startswith("https://")
            with pytest.raises(DownloadError) as err:
                download_quarters(["2012Q3", "2012Q4"], tmp_path, base_url=url, retries=3,
                                  log=messages.append, sleep=sleeps)
    assert plain_log == []  # nothing went out in plaintext
    assert log == [(q3, None, 302), (q4, None, 302), (q4, None, 200)]
    assert sleeps.calls == []
    assert err.value.manifest["failed"] == {"2012Q3": (
        f"{url}{q3}: refused a redirect (HTTP 302) from https to {plain}{q3}: "
        f"a download that starts on https stays on https")}
    assert listing(tmp_path) == [q4, "manifest.json"]
    assert (tmp_path / q4).read_bytes() == zips[q4]
    assert not any("plain http" in x for x in messages)


def test_redirect_to_ftp_is_refused_and_plain_http_warns_once(zips, tmp_path):
    q3, q4 = "aers_ascii_2012q3.zip", "faers_ascii_2012q4.zip"
    messages: list[str] = []
    redirects = {q3: "ftp://127.0.0.1:9/" + q3, q4: "/mirror/" + q4}
    with serve(zips, redirects=redirects) as (url, log):
        with pytest.raises(DownloadError) as err:
            download_quarters(["2012Q3", "2012Q4"], tmp_path, base_url=url, retries=0, log=messages.append,
                              sleep=Recorder())
    assert log == [(q3, None, 302), (q4, None, 302), (q4, None, 200)]
    assert err.value.manifest["failed"] == {"2012Q3": (
        f"{url}{q3}: refused a redirect (HTTP 302) to ftp://127.0.0.1:9/{q3}: only http and https are followed")}
    warnings = [x for x in messages if x.startswith("warning:")]
    assert warnings == [f"warning: --base-url {url} is plain http: the files arrive unencrypted and anyone on "
                        f"the way can change them (the zip check only catches damage); use https where the "
                        f"server offers it"]


def test_size_limit_by_content_length_and_by_body(zips, tmp_path):
    """Over ``max_bytes``: a Content-Length is refused before a byte is written; a body without one is cut
    off when it passes the limit. Neither is retried, and no partial file is left."""
    q3, q4 = "aers_ascii_2012q3.zip", "faers_ascii_2012q4.zip"
    sleeps = Recorder()
    with serve(zips, no_length={q4}) as (url, log):
        with pytest.raises(DownloadError) as err:
            download_quarters(["2012Q3", "2012Q4"], tmp_path, base_url=url, retries=3, log=quiet,
                              sleep=sleeps, max_bytes=1000)
    assert log == [(q3, None, 200), (q4, None, 200)]
    assert sleeps.calls == []
    assert err.value.manifest["failed"] == {
        "2012Q3": f"{url}{q3}: the file is {len(zips[q3]):,} bytes (Content-Length), over the 1,000-byte "
                  f"limit for one download; not downloaded",
        "2012Q4": f"{url}{q4}: the body ran past the 1,000-byte limit for one download; aborted and the "
                  f"partial file removed",
    }
    assert listing(tmp_path) == ["manifest.json"]
    # the same files under a limit they fit in
    with serve(zips, no_length={q4}) as (url, log):
        m = download_quarters(["2012Q3", "2012Q4"], tmp_path, base_url=url, log=quiet, sleep=Recorder(),
                              max_bytes=max(len(zips[q3]), len(zips[q4])))
    assert [e["file"] for e in m["files"]] == [q3, q4]


@pytest.mark.parametrize("how", ["trickle", "stall"])
def test_deadline_cuts_off_a_slow_server(zips, tmp_path, how):
    """A server sending a byte every 50 ms, or headers and then nothing, is cut off at ``deadline``
    (0.5 s here, with a 30 s socket timeout): the quarter fails with the reason, no retry is made after
    the deadline, and the bytes received so far stay in the .part for a rerun."""
    q4 = "faers_ascii_2012q4.zip"
    sleeps = Recorder()
    with serve(zips, **{how: {q4}}) as (url, log):
        with pytest.raises(DownloadError) as err:
            download_quarters(["2012Q4"], tmp_path, base_url=url, retries=3, log=quiet, sleep=sleeps,
                              timeout=30, deadline=0.5)
    assert log == [(q4, None, 200)]
    assert sleeps.calls == []
    why = err.value.manifest["failed"]["2012Q4"]
    assert why.startswith(f"{url}{q4}: not finished within the 0.5 s limit for one download")
    part = tmp_path / (q4 + ".part")
    if how == "trickle":
        kept = part.stat().st_size
        assert 0 < kept < len(zips[q4]) and part.read_bytes() == zips[q4][:kept]
        assert why.endswith(f"; {kept:,} bytes kept in {part.name}, a rerun resumes")
        assert listing(tmp_path) == [part.name, "manifest.json"]
    else:
        assert "(last error: transfer broke off after 0 bytes (TimeoutError))" in why
        assert listing(tmp_path) == ["manifest.json"]


@pytest.mark.parametrize("validator", [{"ETag": '"v1"'}, {"Last-Modified": "Wed, 01 Oct 2025 07:00:00 GMT"}],
                         ids=["etag", "last-modified"])
@pytest.mark.parametrize("changed", [True, False], ids=["changed", "unchanged"])
def test_resume_sends_if_range_so_a_changed_file_restarts(zips, tmp_path, validator, changed):
    """The first response's ETag (or Last-Modified) is kept beside the .part and sent as If-Range on resume:
    a file replaced on the server comes back whole in one request (200, not spliced); an unchanged one
    resumes (206)."""
    name = "faers_ascii_2012q4.zip"
    v1, v2 = zips[name], zips["faers_ascii_2019Q1.zip"]  # two different zips under one name
    dest = tmp_path / "dl"
    with serve({name: v1}, truncate_once={name}, validators={name: validator}) as (url, log):
        with pytest.raises(DownloadError):
            download_quarters(["2012Q4"], dest, base_url=url, retries=0, log=quiet, sleep=Recorder())
    (value,) = validator.values()
    assert listing(dest) == [name + ".part", name + ".part.if-range", "manifest.json"]
    assert (dest / (name + ".part.if-range")).read_text() == value + "\n"
    half = len(v1) // 2
    now = v2 if changed else v1
    new_validator = {k: (v.replace("v1", "v2").replace("2025", "2026")) for k, v in validator.items()}
    sleeps = Recorder()
    with serve({name: now}, validators={name: new_validator if changed else validator}) as (url, log):
        m = download_quarters(["2012Q4"], dest, base_url=url, retries=2, log=quiet, sleep=sleeps)
    assert log == [(name, f"bytes={half}-", 200 if changed else 206)]
    assert log.if_range == [value]
    assert sleeps.calls == []
    assert (dest / name).read_bytes() == now
    assert m["files"][0]["sha256"] == sha(now)
    assert listing(dest) == [name, "manifest.json"]


def test_weak_etag_is_not_used_for_if_range(zips, tmp_path):
    name = "faers_ascii_2012q4.zip"
    with serve({name: zips[name]}, truncate_once={name}, validators={name: {"ETag": 'W/"v1"'}}) as (url, log):
        download_quarters(["2012Q4"], tmp_path, base_url=url, retries=1, log=quiet, sleep=Recorder())
    assert log == [(name, None, 200), (name, f"bytes={len(zips[name]) // 2}-", 206)]
    assert log.if_range == [None, None]
    assert listing(tmp_path) == [name, "manifest.json"]


def test_hand_edited_manifest_entries_are_checked_again_not_a_traceback(zips, tmp_path):
    """Entries without size / sha256, naming another file, or without a valid quarter: no KeyError; the
    files on disk are verified again and recorded afresh, with one warning each, and nothing is fetched."""
    dest = tmp_path / "dl"
    with serve(zips) as (url, log):
        first = download_quarters(["2012Q3", "2012Q4", "2019Q1"], dest, base_url=url, log=quiet,
                                  sleep=Recorder())
        m = json.loads((dest / "manifest.json").read_text())
        del m["files"][0]["size"]
        del m["files"][1]["sha256"]
        m["files"][2]["file"] = "../../elsewhere.zip"
        m["files"].append({"quarter": "someday", "file": "x.zip"})
        m["files"].append("not even an object")
        (dest / "manifest.json").write_text(json.dumps(m))
        log.clear()
        messages: list[str] = []
        again = download_quarters(["2012Q3", "2012Q4", "2019Q1"], dest, base_url=url, log=messages.append,
                                  sleep=Recorder())
    assert log == []
    key = ["quarter", "file", "size", "sha256"]
    assert [[e[k] for k in key] for e in again["files"]] == [[e[k] for k in key] for e in first["files"]]
    assert json.loads((dest / "manifest.json").read_text()) == again
    warnings = [x for x in messages if x.startswith("warning:") and "plain http" not in x]
    assert warnings == [
        "warning: manifest.json: dropped 2 entries without a valid quarter (edited by hand?)",
        *(f"warning: [{i}/3] {q}: the manifest.json entry for {q} lacks a usable file/size/sha256 "
          f"(edited by hand?); checking the file again" for i, q in enumerate(["2012Q3", "2012Q4", "2019Q1"], 1)),
    ]


def test_bad_limits_are_clear_errors(tmp_path):
    from faerslake.errors import FaerslakeError

    with pytest.raises(FaerslakeError, match="size limit"):
        download_quarters(["2012Q4"], tmp_path, max_bytes=0, log=quiet)
    with pytest.raises(FaerslakeError, match="deadline"):
        download_quarters(["2012Q4"], tmp_path, deadline=0, log=quiet)


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
