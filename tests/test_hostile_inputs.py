"""Hostile inputs to ingest (GitHub issue #15): each fails only its own quarter
with a reason naming the file, loads with a warning, or (a full staging disk)
stops the run as an environment problem; never a traceback, never a silently
dropped file or row.

Most tests are pure Python (discover, decode, stage); the ``pipeline`` ones run
one ingest over a small hostile source with the session ``spark`` fixture.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import struct
import zipfile
from pathlib import Path

import pytest
from faerslake import cli
from faerslake.config import IngestSettings
from faerslake.errors import EnvironmentProblem
from faerslake.ingest import decode, stage
from faerslake.ingest import discover as disc_mod
from faerslake.ingest.discover import DELETED, discover
from faerslake.ingest.parse import layout_from_header

DEMO = b"primaryid$caseid\n1$1\n2$2\n"


# --------------------------------------------------------------------------- #
# building hostile zips
# --------------------------------------------------------------------------- #
def _zip(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _central_records(raw: bytes) -> list[int]:
    """Offsets of the central-directory records, in order."""
    eocd = raw.rfind(b"PK\x05\x06")
    count = struct.unpack_from("<H", raw, eocd + 10)[0]
    pos = struct.unpack_from("<I", raw, eocd + 16)[0]
    out = []
    for _ in range(count):
        assert raw[pos:pos + 4] == b"PK\x01\x02"
        out.append(pos)
        n, m, k = struct.unpack_from("<HHH", raw, pos + 28)
        pos += 46 + n + m + k
    return out


def _patch(path: Path, index: int, *, flags: int = 0, method: int | None = None,
           header_offset_of: int | None = None) -> None:
    """Patch member ``index`` of the zip in its local and central headers: OR
    ``flags`` into the general-purpose bits, set the compression ``method``, or
    point its central record at the local header of member ``header_offset_of``."""
    raw = bytearray(path.read_bytes())
    cen = _central_records(bytes(raw))
    local = struct.unpack_from("<I", raw, cen[index] + 42)[0]
    if flags:
        for off in (local + 6, cen[index] + 8):
            struct.pack_into("<H", raw, off, struct.unpack_from("<H", raw, off)[0] | flags)
    if method is not None:
        struct.pack_into("<H", raw, local + 8, method)
        struct.pack_into("<H", raw, cen[index] + 10, method)
    if header_offset_of is not None:
        other = struct.unpack_from("<I", raw, cen[header_offset_of] + 42)[0]
        struct.pack_into("<I", raw, cen[index] + 42, other)
    path.write_bytes(bytes(raw))


def _problems(src: Path, **settings) -> dict[str, str | None]:
    d = discover(str(src), IngestSettings(**settings))
    return {q: qf.problem for q, qf in d.quarters.items()}


# --------------------------------------------------------------------------- #
# 1. encrypted members, unsupported compression methods
# --------------------------------------------------------------------------- #
def test_encrypted_and_unsupported_members_fail_their_quarter_at_discovery(tmp_path):
    members = lambda yy: {f"ascii/DEMO{yy}.txt": DEMO, f"ascii/DRUG{yy}.txt": b"primaryid$drug_seq\n1$1\n"}  # noqa: E731
    _patch(_zip(tmp_path / "faers_ascii_2019q1.zip", members("19Q1"), zipfile.ZIP_STORED), 0, flags=0x1)
    _patch(_zip(tmp_path / "faers_ascii_2019q2.zip", members("19Q2")), 1, method=9)  # Deflate64
    _patch(_zip(tmp_path / "faers_ascii_2019q3.zip", members("19Q3")), 0, method=99)  # WinZip AES
    _zip(tmp_path / "faers_ascii_2019q4.zip", members("19Q4"))
    p = _problems(tmp_path)
    assert sorted(p) == ["2019Q1", "2019Q2", "2019Q3", "2019Q4"]
    assert p["2019Q1"].startswith("faers_ascii_2019q1.zip: member ascii/DEMO19Q1.txt is encrypted; ")
    assert p["2019Q2"].startswith("faers_ascii_2019q2.zip: member ascii/DRUG19Q2.txt uses compression method 9 "
                                  "(Deflate64), ")
    assert p["2019Q3"].startswith("faers_ascii_2019q3.zip: member ascii/DEMO19Q3.txt uses compression method 99 "
                                  "(AES encryption), ")
    assert p["2019Q4"] is None


def test_encrypted_or_unsupported_member_fails_its_quarter_at_open_time(tmp_path):
    """Past discovery (a zip replaced in between): staging turns zipfile's
    RuntimeError / NotImplementedError into the quarter's reason."""
    enc = _zip(tmp_path / "enc.zip", {"ascii/DEMO19Q1.txt": DEMO}, zipfile.ZIP_STORED)
    _patch(enc, 0, flags=0x1)
    d64 = _zip(tmp_path / "d64.zip", {"ascii/DEMO19Q2.txt": DEMO})
    _patch(d64, 0, method=9)
    for path, words in ((enc, "is encrypted"), (d64, "compression method")):
        spec = decode.StageSpec(str(path), "ascii/" + ("DEMO19Q1.txt" if path == enc else "DEMO19Q2.txt"),
                                f"{path.name}!/x", str(tmp_path / "parts" / path.stem), 0)
        staged, why, _ = decode.stage_files([spec], 1000)
        assert staged is None
        assert why.startswith(f"{path.name}!/ascii/DEMO19Q") and words in why, why


# --------------------------------------------------------------------------- #
# 2. the same table twice: in one zip, or a browser's second download
# --------------------------------------------------------------------------- #
def test_same_table_twice_in_one_zip_fails_that_quarter_only(tmp_path):
    _zip(tmp_path / "faers_ascii_2019q1.zip", {"ascii/DEMO19Q1.txt": DEMO, "ASCII/DEMO19Q1.txt": DEMO})
    _zip(tmp_path / "faers_ascii_2019q2.zip", {"ascii/DEMO19Q2.txt": DEMO})
    p = _problems(tmp_path)
    assert p == {"2019Q1": (
        "DEMO of 2019Q1 is in the source twice (faers_ascii_2019q1.zip!/ascii/DEMO19Q1.txt and "
        f"faers_ascii_2019q1.zip!/ASCII/DEMO19Q1.txt): remove one of them from {tmp_path} and run again"),
        "2019Q2": None}


def test_browser_duplicate_download_fails_that_quarter_only(tmp_path):
    _zip(tmp_path / "faers_ascii_2019q1.zip", {"ascii/DEMO19Q1.txt": DEMO})
    (tmp_path / "faers_ascii_2019q1 (1).zip").write_bytes((tmp_path / "faers_ascii_2019q1.zip").read_bytes())
    _zip(tmp_path / "faers_ascii_2019q2.zip", {"ascii/DEMO19Q2.txt": DEMO})
    d = discover(str(tmp_path), IngestSettings())
    assert sorted(d.quarters) == ["2019Q1", "2019Q2"]
    why = d.quarters["2019Q1"].problem
    assert "faers_ascii_2019q1 (1).zip!/ascii/DEMO19Q1.txt" in why and "faers_ascii_2019q1.zip!/ascii/DEMO19Q1.txt" in why
    assert "remove one of them" in why
    assert d.quarters["2019Q2"].problem is None and len(d.quarters["2019Q2"].files) == 1


# --------------------------------------------------------------------------- #
# 3. many members: linear staging, a member cap, overlapping entries
# --------------------------------------------------------------------------- #
def test_staging_opens_each_zip_once_whatever_its_member_count(tmp_path, monkeypatch):
    members = {"ascii/DEMO19Q1.txt": DEMO}
    members.update({f"Deleted/DELETE19Q1_{i:04d}.txt": f"{i}\n".encode() for i in range(3000)})
    (tmp_path / "src").mkdir()
    _zip(tmp_path / "src" / "faers_ascii_2019q1.zip", members)
    opened: list[str] = []
    real = zipfile.ZipFile

    class Counting(real):
        def __init__(self, file, *a, **kw):
            opened.append(str(file))
            super().__init__(file, *a, **kw)

    monkeypatch.setattr(zipfile, "ZipFile", Counting)
    d = discover(str(tmp_path / "src"), IngestSettings())
    assert len(opened) == 1  # the check and the member list: one open
    qf = d.quarters["2019Q1"]
    assert qf.problem is None and len(qf.files) == 3001
    failed: dict[str, str] = {}
    jobs = stage.stage_batch([qf], tmp_path / "run", 1000, failed, [], lambda m: None)
    assert failed == {} and len(jobs) == 3001
    assert len(opened) == 2  # staging: one more open for all 3,001 members
    assert sum(j.staged.data_lines for j in jobs) == 2 + 3000


def test_zip_with_too_many_members_is_refused(tmp_path):
    members = {"ascii/DEMO19Q1.txt": DEMO}
    members.update({f"pad/{i}": b"" for i in range(disc_mod.MAX_ZIP_MEMBERS)})
    _zip(tmp_path / "faers_ascii_2019q1.zip", members, zipfile.ZIP_STORED)
    _zip(tmp_path / "faers_ascii_2019q2.zip", {"ascii/DEMO19Q2.txt": DEMO})
    assert _problems(tmp_path) == {
        "2019Q1": "faers_ascii_2019q1.zip holds 10,001 members, more than the 10,000 a FAERS zip could hold; "
                  "refusing it",
        "2019Q2": None}


def test_overlapping_entries_are_refused_as_a_zip_bomb(tmp_path):
    path = _zip(tmp_path / "faers_ascii_2019q1.zip", {"ascii/DEMO19Q1.txt": DEMO * 50,
                                                      "ascii/DRUG19Q1.txt": b"primaryid$drug_seq\n1$1\n"})
    _patch(path, 1, header_offset_of=0)  # two central records, one local header
    p = _problems(tmp_path)
    assert p["2019Q1"] == ("faers_ascii_2019q1.zip: members ascii/DEMO19Q1.txt and ascii/DRUG19Q1.txt overlap "
                           "(several entries share the same bytes); refusing a possible zip bomb")


# --------------------------------------------------------------------------- #
# 4. a zip holding another quarter's files
# --------------------------------------------------------------------------- #
def test_member_of_another_quarter_loads_as_the_zips_quarter_with_a_warning(tmp_path):
    _zip(tmp_path / "faers_ascii_2019q1.zip", {"ascii/DEMO04Q1.TXT": DEMO, "ascii/DRUG19Q1.txt": b"primaryid\n"})
    d = discover(str(tmp_path), IngestSettings())
    assert {q: [f.source_file for f in qf.files] for q, qf in d.quarters.items()} == {
        "2019Q1": ["faers_ascii_2019q1.zip!/ascii/DEMO04Q1.TXT", "faers_ascii_2019q1.zip!/ascii/DRUG19Q1.txt"]}
    mismatch = [w for w in d.warnings if "DEMO04Q1.TXT" in w]
    assert mismatch == ["faers_ascii_2019q1.zip!/ascii/DEMO04Q1.TXT is named for 2004Q1 but sits in the zip of "
                        "2019Q1: loaded as 2019Q1; check that the zip holds the quarter its name says"]


# --------------------------------------------------------------------------- #
# 5. absolute paths, drive letters, backslash traversal
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("member", ["/abs/DEMO19Q1.txt", "C:\\x\\DEMO19Q1.txt", "c:DEMO19Q1.txt",
                                    "..\\..\\DEMO19Q1.txt", "ascii/../../DEMO19Q1.txt"])
def test_member_paths_leaving_the_zip_are_refused(tmp_path, member):
    _zip(tmp_path / "faers_ascii_2019q1.zip", {member: DEMO})
    with zipfile.ZipFile(tmp_path / "faers_ascii_2019q1.zip") as zf:
        assert zf.namelist() == [member]  # zipfile keeps the hostile name as written
    assert _problems(tmp_path) == {
        "2019Q1": f"faers_ascii_2019q1.zip holds a member whose path leaves the zip ({member!r}); refusing the zip"}


# --------------------------------------------------------------------------- #
# 6. a full staging disk is the environment, not bad input
# --------------------------------------------------------------------------- #
def _two_quarters(src: Path) -> list:
    src.mkdir()
    _zip(src / "faers_ascii_2019q1.zip", {"ascii/DEMO19Q1.txt": DEMO})
    (src / "2019q2").mkdir()
    (src / "2019q2" / "DEMO19Q2.txt").write_bytes(DEMO)
    return list(discover(str(src), IngestSettings()).quarters.values())


@pytest.mark.parametrize("pool", [False, True], ids=["in_process", "process_pool"])
def test_full_staging_disk_stops_the_run(tmp_path, monkeypatch, pool):
    """The first part of 2019Q2 is written to /dev/full (ENOSPC on every write,
    also in a spawned worker process): an EnvironmentProblem naming the staging
    folder and ingest.staging_dir, not 'cannot be read' and a skipped quarter."""
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    todo = _two_quarters(tmp_path / "src")
    staging = tmp_path / "staging"
    run_dir = staging / "ingest-test"
    parts = run_dir / "parts" / "demo"
    parts.mkdir(parents=True)
    os.symlink("/dev/full", parts / decode.part_name(1, 2))  # file_idx 1 = DEMO19Q2.txt, data from line 2
    monkeypatch.setattr(stage, "STAGE_POOL_MIN_BYTES", 0 if pool else 1 << 62)
    monkeypatch.setattr(stage.os, "cpu_count", lambda: 2)
    logs: list[str] = []
    failed: dict[str, str] = {}
    with pytest.raises(EnvironmentProblem) as e:
        stage.stage_batch(todo, run_dir, 1000, failed, [], logs.append)
    msg = str(e.value)
    assert e.value.exit_code == 3
    assert msg.startswith(f"the staging folder {staging} is full (No space left on device while writing "
                          f"2019q2/DEMO19Q2.txt; ")
    assert " free" in msg and "ingest.staging_dir" in msg and msg.count(". ") == 0 and "\n" not in msg
    assert failed == {} and not any("SKIPPED" in m for m in logs)


def test_source_read_errors_still_fail_the_quarter_only(tmp_path):
    """An OSError reading the source is input damage: that quarter fails, the other stages.
    (Here the loose file is replaced by a folder after discovery: EISDIR on open.)"""
    todo = _two_quarters(tmp_path / "src")
    loose = tmp_path / "src" / "2019q2" / "DEMO19Q2.txt"
    loose.unlink()
    loose.mkdir()
    failed: dict[str, str] = {}
    jobs = stage.stage_batch(todo, tmp_path / "run", 1000, failed, [], lambda m: None)
    assert failed == {"2019Q2": f"2019q2/DEMO19Q2.txt cannot be read ([Errno 21] Is a directory: '{loose}')"}
    assert [j.tf.quarter for j in jobs] == ["2019Q1"]


# --------------------------------------------------------------------------- #
# 7. source folder problems: links, unreadable and special files, skipped folders
# --------------------------------------------------------------------------- #
def test_dangling_symlink_fails_its_quarter_with_one_sentence(tmp_path):
    (tmp_path / "2019q4").mkdir()
    (tmp_path / "2019q4" / "DEMO19Q4.txt").write_bytes(DEMO)
    os.symlink("/nonexistent", tmp_path / "2019q4" / "DRUG19Q4.txt")
    _zip(tmp_path / "faers_ascii_2019q3.zip", {"ascii/DEMO19Q3.txt": DEMO})
    os.symlink("/nonexistent.zip", tmp_path / "faers_ascii_2019q2.zip")
    assert _problems(tmp_path) == {
        "2019Q2": "faers_ascii_2019q2.zip is a symbolic link to /nonexistent.zip, which does not exist: "
                  "fix or remove the link",
        "2019Q3": None,
        "2019Q4": "2019q4/DRUG19Q4.txt is a symbolic link to /nonexistent, which does not exist: "
                  "fix or remove the link"}


def test_unreadable_loose_file_fails_its_quarter(tmp_path, monkeypatch):
    """Simulated (the tests may run as root, who reads mode 000 files): open() says EACCES."""
    (tmp_path / "DEMO19Q4.txt").write_bytes(DEMO)
    (tmp_path / "DEMO19Q3.txt").write_bytes(DEMO)
    real = os.open

    def deny(path, flags, *a, **kw):
        if str(path).endswith("DEMO19Q4.txt"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, flags, *a, **kw)

    monkeypatch.setattr(os, "open", deny)
    assert _problems(tmp_path) == {
        "2019Q3": None,
        "2019Q4": "DEMO19Q4.txt cannot be read (Permission denied): let the user running faerslake read it, "
                  "or remove it"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads mode-000 files; the simulated case above covers it")
def test_unreadable_loose_file_fails_its_quarter_for_real(tmp_path):
    (tmp_path / "DEMO19Q4.txt").write_bytes(DEMO)
    (tmp_path / "DEMO19Q4.txt").chmod(0)
    try:
        assert "DEMO19Q4.txt cannot be read (Permission denied)" in _problems(tmp_path)["2019Q4"]
    finally:
        (tmp_path / "DEMO19Q4.txt").chmod(0o644)


def test_device_and_fifo_are_refused_not_read(tmp_path):
    os.symlink("/dev/zero", tmp_path / "DEMO19Q4.txt")
    os.mkfifo(tmp_path / "DEMO19Q3.txt")
    (tmp_path / "DEMO19Q2.txt").write_bytes(DEMO)
    assert _problems(tmp_path) == {
        "2019Q2": None,
        "2019Q3": "DEMO19Q3.txt is a fifo, not a regular file: replace it with the file itself",
        "2019Q4": "DEMO19Q4.txt (a link to /dev/zero) is a character device, not a regular file: "
                  "replace it with the file itself"}


def test_symlinked_quarter_folder_is_followed_and_loops_are_reported(tmp_path):
    src, elsewhere = tmp_path / "src", tmp_path / "elsewhere"
    (elsewhere / "faers_ascii_2019q3").mkdir(parents=True)
    (elsewhere / "faers_ascii_2019q3" / "DEMO19Q3.txt").write_bytes(DEMO)
    (src / "faers_ascii_2019q1").mkdir(parents=True)
    (src / "faers_ascii_2019q1" / "DEMO19Q1.txt").write_bytes(DEMO)
    os.symlink(elsewhere / "faers_ascii_2019q3", src / "faers_ascii_2019q3")
    os.symlink(src, src / "faers_ascii_2019q1" / "loop")  # back to the root: must not recurse forever
    d = discover(str(src), IngestSettings())
    assert {q: [f.source_file for f in qf.files] for q, qf in d.quarters.items()} == {
        "2019Q1": ["faers_ascii_2019q1/DEMO19Q1.txt"], "2019Q3": ["faers_ascii_2019q3/DEMO19Q3.txt"]}
    assert [w for w in d.warnings if " has no " not in w] == [
        "faers_ascii_2019q1/loop is a link to a folder already read (.); not read again"]


def test_skipped_folders_are_said(tmp_path):
    for folder in ("_old", ".hidden", "2019q1"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "DEMO19Q1.txt").write_bytes(DEMO)
    d = discover(str(tmp_path), IngestSettings())
    assert [f.source_file for f in d.quarters["2019Q1"].files] == ["2019q1/DEMO19Q1.txt"]
    assert [w for w in d.warnings if " has no " not in w] == [
        "not read: folders .hidden, _old (names starting with '.' or '_' are skipped)"]


# --------------------------------------------------------------------------- #
# 8, 9. header layouts: duplicate names, deleted lists with several columns
# --------------------------------------------------------------------------- #
def test_duplicate_header_names_get_distinct_extra_names():
    lay, warns = layout_from_header("demo", "primaryid$caseid$foo$FOO$caseid$foo_2$foo")
    assert dict(lay.columns) == {"primaryid": 0, "caseid": 1}
    # a repeat becomes name_k, the smallest k >= 2 that no other column of the header is called
    assert lay.extras == (("foo", 2), ("foo_3", 3), ("caseid_2", 4), ("foo_2", 5), ("foo_4", 6))
    assert len({n for n, _ in lay.extras}) == len(lay.extras)
    assert warns == [
        "columns not in the bronze contract: foo, foo_3, caseid_2, foo_2, foo_4 (kept in extra_fields)",
        "the header repeats column names (FOO as foo_3, caseid as caseid_2, foo as foo_4): "
        "the first of each name is used, the later ones are kept in extra_fields under those names"]


def test_deleted_list_layouts():
    one = layout_from_header(DELETED, "CASEID")[0]
    assert (one.n, one.columns, one.key_pos, one.problem) == (1, (("caseid", 0),), 0, None)
    two, warns = layout_from_header(DELETED, "primaryid$caseid$")
    assert (two.n, two.columns, two.key_pos, two.problem) == (2, (("caseid", 1),), 1, None)
    assert warns == ["a deleted-case list with 2 columns (primaryid, caseid): the case numbers are taken "
                     "from its caseid column; the others are not kept"]
    none, _ = layout_from_header(DELETED, "primaryid$fda_dt")
    assert none.key_pos is None
    assert none.problem == ("the deleted-case list has 2 columns (primaryid, fda_dt) and none is caseid, "
                            "so none of its deletions can be applied")


# --------------------------------------------------------------------------- #
# 10. too many damaged lines: the warning path
# --------------------------------------------------------------------------- #
def test_too_many_bad_key_lines_warn_and_are_not_repaired(monkeypatch):
    from types import SimpleNamespace

    from faerslake.ingest import load

    monkeypatch.setattr(load, "MAX_REPAIR_LINES_PER_FILE", 2)
    jobs = [SimpleNamespace(tf=SimpleNamespace(source_file="DEMO19Q1.txt", table="demo")),
            SimpleNamespace(tf=SimpleNamespace(source_file="DRUG19Q1.txt", table="drug"))]
    logs: list[str] = []
    got = load.repair_candidates(None, {0: {"key": 3}, 1: {"fields": 2, "key": 1, "blank": 9}}, jobs, logs.append)
    assert got == {}
    assert logs == [
        "warning: DEMO19Q1.txt: 3 lines do not fit the header; too many to repair, all quarantined",
        "warning: DRUG19Q1.txt: 3 lines do not fit the header; too many to repair, all quarantined"]


# --------------------------------------------------------------------------- #
# one ingest over a hostile source (Spark)
# --------------------------------------------------------------------------- #
HOSTILE_FILES = {
    # duplicate names: an unknown column twice (foo, FOO) and a contract column twice (caseid)
    "2020q1/DEMO20Q1.txt": b"primaryid$caseid$foo$FOO$caseid\n1$10$a$b$10\n2$20$c$d$20\n",
    # a deleted list with two columns: caseid found by its header; one line without a number
    "2020q1/deleted/DELETE20Q1.txt": b"primaryid$caseid\n1$100\n2$200\n3$x\n",
    "2020q2/DEMO20Q2.txt": DEMO,
    # a deleted list without a caseid column: every line quarantined, and said
    "2020q2/deleted/DELETE20Q2.txt": b"primaryid$fda_dt\n1$20200101\n2$20200102\n",
    "2020q3/DEMO20Q3.txt": DEMO,
    "_old/DEMO21Q1.txt": DEMO,
}


@pytest.fixture(scope="module")
def hostile_run(spark, tmp_path_factory):
    from faerslake.ingest import ingest
    from faerslake.tables import Warehouse

    root = tmp_path_factory.mktemp("hostile-inputs")
    src = root / "src"
    src.mkdir()
    for name, data in HOSTILE_FILES.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)
    _patch(_zip(src / "faers_ascii_2019q1.zip", {"ascii/DEMO19Q1.txt": DEMO}, zipfile.ZIP_STORED), 0, flags=0x1)
    _zip(src / "faers_ascii_2019q2.zip", {"ascii/DEMO19Q2.txt": DEMO, "ASCII/DEMO19Q2.txt": DEMO})
    _zip(src / "faers_ascii_2019q3.zip", {"ascii/DEMO19Q3.txt": DEMO})
    (src / "faers_ascii_2019q3 (1).zip").write_bytes((src / "faers_ascii_2019q3.zip").read_bytes())
    _zip(src / "faers_ascii_2019q4.zip", {"ascii/DEMO04Q1.TXT": DEMO})
    os.symlink("/nonexistent", src / "2020q3" / "DRUG20Q3.txt")
    (root / "elsewhere" / "faers_ascii_2020q4").mkdir(parents=True)
    (root / "elsewhere" / "faers_ascii_2020q4" / "DEMO20Q4.txt").write_bytes(DEMO)
    os.symlink(root / "elsewhere" / "faers_ascii_2020q4", src / "faers_ascii_2020q4")
    wh = Warehouse(str(root / "wh"))
    logs: list[str] = []
    res = ingest(spark, str(src), wh.root, log=logs.append)
    return res, wh, logs


@pytest.mark.pipeline
def test_hostile_source_fails_exactly_its_bad_quarters(hostile_run):
    res, _, logs = hostile_run
    assert res.quarters_ingested == ["2019Q4", "2020Q1", "2020Q2", "2020Q4"]
    assert sorted(res.quarters_failed) == ["2019Q1", "2019Q2", "2019Q3", "2020Q3"]
    f = res.quarters_failed
    assert "faers_ascii_2019q1.zip: member ascii/DEMO19Q1.txt is encrypted" in f["2019Q1"]
    assert "faers_ascii_2019q2.zip!/ASCII/DEMO19Q2.txt" in f["2019Q2"] and "remove one" in f["2019Q2"]
    assert "faers_ascii_2019q3 (1).zip!/ascii/DEMO19Q3.txt" in f["2019Q3"]
    assert f["2020Q3"].startswith("2020q3/DRUG20Q3.txt is a symbolic link to /nonexistent")
    for q in f:
        assert sum(m.startswith(f"{q}: SKIPPED") for m in logs) == 1
    assert "faers_ascii_2019q4.zip!/ascii/DEMO04Q1.TXT is named for 2004Q1" in " ".join(res.warnings)
    assert "not read: folders _old (names starting with '.' or '_' are skipped)" in res.warnings


@pytest.mark.pipeline
def test_hostile_source_audit_balances_to_the_line(hostile_run):
    res, _, _ = hostile_run
    cols = ["lines_read", "rows_loaded", "rows_repaired", "lines_repaired", "rows_quarantined"]
    got = {r["source_file"]: tuple(int(r[c]) for c in cols) for _, r in res.audit.iterrows()}
    assert got == {
        "faers_ascii_2019q4.zip!/ascii/DEMO04Q1.TXT": (2, 2, 0, 0, 0),
        "2020q1/DEMO20Q1.txt": (2, 2, 0, 0, 0),
        "2020q1/deleted/DELETE20Q1.txt": (3, 2, 0, 0, 1),
        "2020q2/DEMO20Q2.txt": (2, 2, 0, 0, 0),
        "2020q2/deleted/DELETE20Q2.txt": (2, 0, 0, 0, 2),
        "faers_ascii_2020q4/DEMO20Q4.txt": (2, 2, 0, 0, 0),
    }
    assert {r["source_file"]: r["quarter"] for _, r in res.audit.iterrows()}[
        "faers_ascii_2019q4.zip!/ascii/DEMO04Q1.TXT"] == "2019Q4"


@pytest.mark.pipeline
def test_duplicate_header_names_load_with_both_extra_keys(spark, hostile_run):
    res, wh, _ = hostile_run
    rows = wh.read(spark, "bronze", "demo").where("quarter = '2020Q1'").orderBy("line_number").collect()
    assert [(r["primaryid"], r["caseid"], r["extra_fields"]) for r in rows] == [
        ("1", "10", {"foo": "a", "foo_2": "b", "caseid_2": "10"}),
        ("2", "20", {"foo": "c", "foo_2": "d", "caseid_2": "20"})]
    assert any(w.startswith("2020q1/DEMO20Q1.txt: the header repeats column names (FOO as foo_2, caseid as caseid_2)")
               for w in res.warnings)


@pytest.mark.pipeline
def test_deleted_list_in_another_layout_is_applied_or_loudly_refused(spark, hostile_run):
    res, wh, _ = hostile_run
    deleted = wh.read(spark, "bronze", "deleted_cases").orderBy("quarter", "line_number").collect()
    assert [(d["quarter"], d["line_number"], d["caseid"]) for d in deleted] == [("2020Q1", 2, "100"),
                                                                              ("2020Q1", 3, "200")]
    q = {(r["source_file"], r["line_number"]): r["reason"] for r in wh.read(spark, "bronze", "quarantine").collect()}
    assert q == {
        ("2020q1/deleted/DELETE20Q1.txt", 4): "not a case number",
        ("2020q2/deleted/DELETE20Q2.txt", 2): "the deleted-case list has 2 columns (primaryid, fda_dt) and none "
                                              "is caseid, so none of its deletions can be applied",
        ("2020q2/deleted/DELETE20Q2.txt", 3): "the deleted-case list has 2 columns (primaryid, fda_dt) and none "
                                              "is caseid, so none of its deletions can be applied",
    }
    assert "2020q2/deleted/DELETE20Q2.txt: the deleted-case list has 2 columns (primaryid, fda_dt) and none is " \
           "caseid, so none of its deletions can be applied; all its lines are quarantined" in res.warnings
    assert any(w.startswith("2020q1/deleted/DELETE20Q1.txt: a deleted-case list with 2 columns") for w in res.warnings)


@pytest.mark.pipeline
def test_cli_full_staging_disk_is_one_sentence_and_exit_3(spark, tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    (src / "DEMO19Q1.txt").write_bytes(DEMO)
    real_open = open

    class Full(io.RawIOBase):
        def writable(self):
            return True

        def write(self, b):
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))

    def open_(path, mode="r", *a, **kw):
        return io.BufferedWriter(Full()) if "w" in mode else real_open(path, mode, *a, **kw)

    monkeypatch.setattr(decode, "open", open_, raising=False)  # decode's writes of staged parts
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = cli.main(["ingest", "--source", str(src), "--warehouse", str(tmp_path / "wh"),
                       "--set", f"ingest.staging_dir={tmp_path / 'stg'}"])
    lines = [ln for ln in err.getvalue().splitlines() if ln.startswith("faerslake: error:")]
    assert rc == 3, err.getvalue()[-3000:]
    assert len(lines) == 1 and "Traceback" not in err.getvalue()
    assert lines[0].startswith(f"faerslake: error: the staging folder {tmp_path / 'stg'} is over its disk quota "
                               f"(Disk quota exceeded while writing DEMO19Q1.txt; ")
    assert "ingest.staging_dir" in lines[0]
    assert not (tmp_path / "wh" / "bronze" / "source_manifest").exists()
