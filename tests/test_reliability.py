"""Hostile and damaged input, bad arguments and code safety, at the ``faerslake`` level.

Place in the test suite: ``tests/test_ingest_*.py`` check the parser's pieces
(decoding, headers, repairs, zip checks) one by one; this module feeds one
``faerslake run`` (in-process, on the shared Spark session) a source in which
every kind of damage sits at once, and checks that each gets a clear message
or a quarantine row with its reason, that the rest of the run proceeds to the
study, and that the audit accounts for every line:

    lines_read = (rows_loaded - rows_repaired) + lines_repaired + rows_quarantined

with ``lines_read`` recounted here from the bytes. The line repair is checked
with hypothesis on mutated genuine lines (pure Python, no Spark); the CLI's
errors are one sentence and a non-zero exit; the code never evaluates or
shells out user text, reads YAML safely and keeps a study's outputs inside
the folders the user named.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import random
import re
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from faerslake import cli
from faerslake.config import load_study
from faerslake.errors import ConfigError
from faerslake.ingest.parse import layout_from_header, repair_lines
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "tests" / "data" / "faers"
TINY = SAMPLES / "2020q3-tiny"
S25 = SAMPLES / "2025q4-sample"
BLANK = re.compile(rb"^[ \t\x0b\x0c\r]*$")
LONG_LINE = 10 * 1024 * 1024


# --------------------------------------------------------------------------- #
# building the hostile source
# --------------------------------------------------------------------------- #
def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _encrypted(raw: bytes) -> bytes:
    """The zip with its first member marked encrypted (bit 0 of the flags, local and central header)."""
    import struct

    out = bytearray(raw)
    cen = out.find(b"PK\x01\x02")
    local = struct.unpack_from("<I", out, cen + 42)[0]
    for off in (local + 6, cen + 8):
        struct.pack_into("<H", out, off, struct.unpack_from("<H", out, off)[0] | 1)
    return bytes(out)


def _tiny_members(yyq: str) -> dict[str, bytes]:
    return {f"ascii/{p.name.replace('20Q3', yyq)}": p.read_bytes() for p in sorted(TINY.glob("*.txt"))}


def _mutate(lines: list[bytes], rng: random.Random, n: int) -> list[bytes]:
    """Drop / duplicate a ``$``, insert bytes, split or join lines, ``n`` times."""
    lines = list(lines)
    for _ in range(n):
        i = rng.randrange(1, len(lines) - 1)  # never the header
        line = lines[i]
        op = rng.choice(["drop", "dup", "insert", "split", "join"])
        dollars = [k for k, b in enumerate(line) if b == 0x24]
        if op == "drop" and dollars:
            k = rng.choice(dollars)
            lines[i] = line[:k] + line[k + 1:]
        elif op == "dup" and dollars:
            k = rng.choice(dollars)
            lines[i] = line[:k] + b"$" + line[k:]
        elif op == "insert":
            k = rng.randrange(len(line) + 1)
            lines[i] = line[:k] + rng.choice([b"\x00", b"\xff", b"$", b"\xe9t\xe9", b"\x01\x02", b"\t"]) + line[k:]
        elif op == "split" and len(line) > 2:
            k = rng.randrange(1, len(line) - 1)
            lines[i:i + 1] = [line[:k], line[k:]]
        elif op == "join":
            lines[i:i + 2] = [lines[i] + lines[i + 1]]
    return lines


def _recount(data: bytes) -> int:
    """Non-blank physical lines after the header (the audit's lines_read), from the bytes."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    start = next((i for i, ln in enumerate(lines) if not BLANK.match(ln)), len(lines))
    return sum(1 for ln in lines[start + 1:] if not BLANK.match(ln))


@pytest.fixture(scope="module")
def hostile(spark, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("hostile")
    src = root / "src"
    q = src / "faers_ascii_2020q3" / "ascii"
    q.mkdir(parents=True)
    files: dict[str, bytes] = {}

    demo = (TINY / "DEMO20Q3.txt").read_bytes().replace(b"\r\n", b"\n").rstrip(b"\n").split(b"\n")
    fields = demo[1].split(b"$")
    bad_date = list(fields)
    bad_date[0], bad_date[1], bad_date[4] = b"900000001", b"90000000", b"20201399"  # month 13
    bad_age = list(fields)
    bad_age[0], bad_age[1], bad_age[13] = b"900000002", b"90000001", b"forty-two"
    files["DEMO20Q3.txt"] = b"\n".join(demo + [
        b"$".join(bad_date),
        b"$".join(bad_age),
        bytes(range(256)) * 4,  # binary garbage (holds '$' and newlines: several lines)
        b"X" * LONG_LINE,  # one 10 MB line
    ]) + b"\n"
    drug = (TINY / "DRUG20Q3.txt").read_bytes().replace(b"\r\n", b"\n").rstrip(b"\n").split(b"\n")
    files["DRUG20Q3.txt"] = b"\n".join([drug[0] + b"$future_col"] + [ln + b"$fx" for ln in drug[1:]]) + b"\n"
    files["REAC20Q3.txt"] = b""  # empty table file
    files["OUTC20Q3.txt"] = (TINY / "OUTC20Q3.txt").read_bytes().splitlines(keepends=True)[0]  # header only
    rpsr = (TINY / "RPSR20Q3.txt").read_bytes()
    files["RPSR20Q3.txt"] = rpsr.replace(b"primaryid", b"prim_id", 1)  # report key column missing
    files["INDI20Q3.txt"] = (TINY / "INDI20Q3.txt").read_bytes()
    # no THER20Q3.txt: a quarter missing a table
    for name, data in files.items():
        (q / name).write_bytes(data)

    # 2025Q4: genuine lines, mutated (seeded), for the line accounting
    rng = random.Random(20251)
    q25 = src / "faers_ascii_2025q4" / "ascii"
    q25.mkdir(parents=True)
    for table, n_lines in (("DEMO", 120), ("REAC", 200), ("DRUG", 200)):
        lines = (S25 / f"{table}25Q4.txt").read_bytes().split(b"\n")[: n_lines + 1]
        data = b"\n".join(_mutate(lines, rng, 30)) + b"\n"
        files[f"{table}25Q4.txt"] = data
        (q25 / f"{table}25Q4.txt").write_bytes(data)

    # zips that must be refused or cannot be read: each fails its quarter only
    (src / "faers_ascii_2019q1.zip").write_bytes(bytes(random.Random(1).randrange(256) for _ in range(5000)))
    good = _zip(_tiny_members("19Q2"))
    (src / "faers_ascii_2019q2.zip").write_bytes(good[: len(good) // 2])  # truncated download
    (src / "faers_ascii_2019q3.zip").write_bytes(_zip({**_tiny_members("19Q3"), "../../evil.txt": b"x"}))
    (src / "faers_ascii_2019q4.zip").write_bytes(_zip({"ascii/DEMO19Q4.txt": b"0" * (30 * 1024 * 1024)}))
    (src / "faers_ascii_2018q1.zip").write_bytes(_encrypted(_zip(_tiny_members("18Q1"))))
    (src / "faers_ascii_2018q2.zip").write_bytes(_zip(_tiny_members("18Q2")))
    (src / "faers_ascii_2018q2 (1).zip").write_bytes(_zip(_tiny_members("18Q2")))  # a browser's second copy

    wh, out = root / "wh", root / "out"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = cli.main(["run", "--source", str(src), "--warehouse", str(wh), "--output", str(out)])
    log = err.getvalue()
    assert rc == 5, log[-4000:]  # finished, but some quarters failed: the partial-failure code
    read = lambda layer, t: spark.read.format("delta").load(str(wh / layer / t))  # noqa: E731
    audit = pd.read_csv(out / "ingest_audit.csv", dtype={"quarter": str})
    quarantine = pd.DataFrame([r.asDict() for r in read("bronze", "quarantine")
                               .select("quarter", "table", "source_file", "line_number", "reason").collect()])
    return {"root": root, "src": src, "wh": wh, "out": out, "log": log, "files": files, "read": read,
            "audit": audit, "quarantine": quarantine, "rc": rc}


def _audit_row(h: dict, name: str) -> dict:
    rows = h["audit"][h["audit"]["source_file"].str.endswith("/" + name)]
    assert len(rows) == 1, (name, h["audit"])
    return rows.iloc[0].to_dict()


def _reasons(h: dict, name: str) -> list[str]:
    qn = h["quarantine"]
    return list(qn[qn["source_file"].str.endswith("/" + name)]["reason"])


# --------------------------------------------------------------------------- #
# damaged and hostile files
# --------------------------------------------------------------------------- #
@pytest.mark.faults
@pytest.mark.parametrize(("zip_name", "words"), [
    ("faers_ascii_2019q1.zip", "is not a readable zip"),  # random bytes
    ("faers_ascii_2019q2.zip", "is not a readable zip"),  # truncated
    ("faers_ascii_2019q3.zip", "leaves the zip"),  # ../ member
    ("faers_ascii_2019q4.zip", "zip bomb"),  # 30 MB of zeros
    ("faers_ascii_2018q1.zip", "member ascii/DEMO18Q1.txt is encrypted"),
    ("faers_ascii_2018q2 (1).zip", "faers_ascii_2018q2.zip"),  # both copies named
])
def test_bad_zips_fail_their_quarter_with_a_reason_and_load_nothing(hostile, zip_name, words):
    quarter = "20" + zip_name.split("_")[2][2:6].upper()
    lines = [ln for ln in hostile["log"].splitlines() if f"{quarter}: SKIPPED" in ln]
    assert len(lines) == 1 and zip_name in lines[0] and words in lines[0], lines
    assert not (hostile["audit"]["quarter"] == quarter).any()
    demo = hostile["read"]("bronze", "demo")
    assert demo.where(demo.quarter == quarter).count() == 0
    assert not (hostile["root"] / "evil.txt").exists() and not (hostile["wh"] / "evil.txt").exists()
    failures = pd.read_csv(hostile["out"] / "ingest_failures.csv", dtype=str)
    row = failures[failures["quarter"] == quarter]
    assert len(row) == 1 and words in row["reason"].iloc[0]


@pytest.mark.faults
def test_failed_quarters_are_listed_last_in_run_json_and_in_the_report(hostile):
    bad = ["2018Q1", "2018Q2", "2019Q1", "2019Q2", "2019Q3", "2019Q4"]
    tail = hostile["log"].rstrip("\n").split("\n")[-7:]
    assert tail[0] == "faerslake: 6 quarters could not be ingested (exit 5):", tail
    assert [ln.split(":")[0].strip() for ln in tail[1:]] == bad
    rec = json.loads((hostile["out"] / "run.json").read_text())
    assert rec["command"] == "run" and rec["exit_status"] == 5 and rec["error"] is None
    assert [f["quarter"] for f in rec["failed_quarters"]] == bad
    assert rec["stages"]["ingest"]["quarters_failed"] == 6
    assert rec["stages"]["ingest"]["rows_loaded"] == int(hostile["audit"]["rows_loaded"].sum())
    report = (hostile["out"] / "botox_depression" / "report.md").read_text()
    assert "Warning: 6 quarters could not be ingested in this run" in report
    for q in bad:
        assert f"| {q} |" in report


@pytest.mark.faults
def test_the_rest_of_the_run_reaches_the_study(hostile):
    assert (hostile["out"] / "botox_depression" / "cohort_results.csv").exists()
    assert set(hostile["audit"]["quarter"]) == {"2020Q3", "2025Q4"}


@pytest.mark.faults
def test_binary_garbage_and_a_10mb_line_are_quarantined_with_reasons(hostile):
    a = _audit_row(hostile, "DEMO20Q3.txt")
    assert a["lines_read"] == _recount(hostile["files"]["DEMO20Q3.txt"])
    assert a["rows_loaded"] == 12  # the 10 genuine rows + bad date + bad age
    reasons = _reasons(hostile, "DEMO20Q3.txt")
    assert a["rows_quarantined"] == len(reasons) == a["lines_read"] - 12
    assert any("longer than ingest.max_line_chars" in r for r in reasons)
    assert any("control bytes" in r for r in reasons)


@pytest.mark.faults
def test_invalid_dates_and_ages_load_and_become_null_in_silver(hostile):
    from pyspark.sql import functions as F

    rep = hostile["read"]("silver", "reports").where(F.col("report_key").isin(900000001, 900000002))
    got = {r["report_key"]: r for r in rep.collect()}
    assert set(got) == {900000001, 900000002}
    assert got[900000001]["event_date"] is None and got[900000001]["event_dt"] == "20201399"
    assert got[900000002]["age_years"] is None
    assert got[900000001]["age_years"] == 48.0  # the row's own, valid age is still read


@pytest.mark.faults
def test_unknown_column_is_loaded_kept_and_warned(hostile):
    a = _audit_row(hostile, "DRUG20Q3.txt")
    assert a["rows_loaded"] == 10 and a["rows_quarantined"] == 0
    drug = hostile["read"]("bronze", "drug").where("quarter = '2020Q3'")
    assert {r[0] for r in drug.selectExpr("extra_fields['future_col']").collect()} == {"fx"}
    assert any("future_col" in ln and "extra_fields" in ln for ln in hostile["log"].splitlines())


@pytest.mark.faults
def test_missing_key_column_quarantines_the_file_with_its_reason(hostile):
    a = _audit_row(hostile, "RPSR20Q3.txt")
    assert a["rows_loaded"] == 0 and a["rows_quarantined"] == a["lines_read"] == 10
    assert set(_reasons(hostile, "RPSR20Q3.txt")) == {"the header has no report key column (primaryid or isr)"}
    assert any("RPSR20Q3.txt" in ln and "quarantined" in ln for ln in hostile["log"].splitlines())


@pytest.mark.faults
def test_empty_header_only_and_missing_table_files(hostile):
    for name in ("REAC20Q3.txt", "OUTC20Q3.txt"):
        a = _audit_row(hostile, name)
        assert (a["lines_read"], a["rows_loaded"], a["rows_quarantined"]) == (0, 0, 0), name
    assert any("REAC20Q3.txt is empty" in ln for ln in hostile["log"].splitlines())
    assert not hostile["audit"]["source_file"].str.contains("THER20Q3").any()
    assert any("2020Q3" in ln and "THER" in ln for ln in hostile["log"].splitlines()), \
        "a quarter without a THER file should be said in the log"


@pytest.mark.faults
def test_every_line_of_the_mutated_genuine_files_is_accounted_for(hostile):
    for table in ("DEMO", "REAC", "DRUG"):
        name = f"{table}25Q4.txt"
        a = _audit_row(hostile, name)
        assert a["lines_read"] == _recount(hostile["files"][name]), name
        assert a["lines_read"] == (a["rows_loaded"] - a["rows_repaired"] + a["lines_repaired"]
                                   + a["rows_quarantined"]), a
        assert a["rows_quarantined"] == len(_reasons(hostile, name))
        assert a["rows_quarantined"] > 0 and a["rows_repaired"] > 0, a  # the mutations did bite
        bronze = hostile["read"]("bronze", table.lower())
        assert bronze.where(bronze.source_file.endswith("/" + name)).count() == a["rows_loaded"]


# --------------------------------------------------------------------------- #
# the line repair, property-based (pure Python)
# --------------------------------------------------------------------------- #
_DEMO_LINES = (S25 / "DEMO25Q4.txt").read_text("ascii").split("\n")[:41] if S25.exists() else ["a$b"]
_LAYOUT, _ = layout_from_header("demo", _DEMO_LINES[0])


def _fits(text: str) -> bool:
    """parse.file_checks' rule for a fitting line, in Python."""
    k = text.count("$") + 1
    fits = k == _LAYOUT.n or (k == _LAYOUT.n + 1 and text.endswith("$"))
    key = text.split("$")[_LAYOUT.key_pos] if k > _LAYOUT.key_pos else ""
    return fits and key.isdigit() and key.isascii()


_OPS = st.lists(st.tuples(st.sampled_from(["drop", "dup", "insert", "split", "join"]),
                          st.integers(1, 39), st.integers(0, 10_000),
                          st.sampled_from(["\x00", "\xff", "$", "é", "\t", "X$Y"])), min_size=1, max_size=8)


def _apply(ops) -> list[str]:
    lines = list(_DEMO_LINES[1:])
    for op, i, pos, ins in ops:
        i = min(i, len(lines) - 1)
        line = lines[i]
        dollars = [k for k, c in enumerate(line) if c == "$"]
        k = pos % (len(line) + 1)
        if op == "drop" and dollars:
            d = dollars[pos % len(dollars)]
            lines[i] = line[:d] + line[d + 1:]
        elif op == "dup" and dollars:
            d = dollars[pos % len(dollars)]
            lines[i] = line[:d] + "$" + line[d:]
        elif op == "insert":
            lines[i] = line[:k] + ins + line[k:]
        elif op == "split" and 0 < k < len(line):
            lines[i:i + 1] = [line[:k], line[k:]]
        elif op == "join" and i + 1 < len(lines):
            lines[i:i + 2] = [lines[i] + lines[i + 1]]
    return lines


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_OPS)
def test_repairs_account_for_every_line(ops):
    lines = _apply(ops)
    numbered = list(enumerate(lines, start=2))
    aside = [(ln, t) for ln, t in numbered if t.strip() and not _fits(t)]
    repairs = repair_lines(aside, _LAYOUT.n, _LAYOUT.key_pos)
    consumed = [ln for r in repairs for ln in r.lines]
    assert len(consumed) == len(set(consumed)), "a line was used by two repairs"
    assert set(consumed) <= {ln for ln, _ in aside}, "a repair used a line that fitted"
    for r in repairs:
        assert len(r.fields) == _LAYOUT.n and r.fields[_LAYOUT.key_pos].isdigit()
        assert r.line_number == r.lines[0] and list(r.lines) == list(range(r.lines[0], r.lines[0] + len(r.lines)))
    lines_read = sum(1 for t in lines if t.strip())
    fitting = lines_read - len(aside)
    rows_loaded, rows_repaired = fitting + len(repairs), len(repairs)
    rows_quarantined = len(aside) - len(set(consumed))
    assert lines_read == (rows_loaded - rows_repaired) + len(set(consumed)) + rows_quarantined


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 39), st.integers(0, 100))
def test_a_record_broken_before_a_dollar_is_restored_exactly(i, which):
    lines = list(_DEMO_LINES[1:])
    original = lines[i]
    dollars = [k for k, c in enumerate(original) if c == "$" and k > original.index("$")]
    d = dollars[which % len(dollars)]
    lines[i:i + 1] = [original[:d], original[d:]]  # the break sits right before a '$'
    numbered = list(enumerate(lines, start=2))
    aside = [(ln, t) for ln, t in numbered if t.strip() and not _fits(t)]
    repairs = repair_lines(aside, _LAYOUT.n, _LAYOUT.key_pos)
    assert [r.fields for r in repairs] == [original.split("$")[: _LAYOUT.n]]
    assert repairs[0].lines == (i + 2, i + 3)


# --------------------------------------------------------------------------- #
# bad arguments and bad study files: one sentence, non-zero exit
# --------------------------------------------------------------------------- #
def _cli(args: list[str]) -> tuple[int, list[str]]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = cli.main(args)
    lines = [ln for ln in err.getvalue().splitlines() if ln.startswith("faerslake: error:")]
    return rc, lines


def _one_sentence(lines: list[str], *words: str) -> str:
    assert len(lines) == 1, lines
    msg = lines[0]
    for w in words:
        assert w in msg, (w, msg)
    return msg


def test_cli_source_that_does_not_exist(spark, tmp_path):
    rc, err = _cli(["ingest", "--source", str(tmp_path / "nope"), "--warehouse", str(tmp_path / "wh")])
    assert rc != 0
    _one_sentence(err, "does not exist")


def test_cli_warehouse_that_is_a_file(spark, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "DEMO20Q3.txt").write_bytes((TINY / "DEMO20Q3.txt").read_bytes())
    f = tmp_path / "wh.txt"
    f.write_text("not a folder")
    for cmd in (["ingest", "--source", str(src), "--warehouse", str(f)],
                ["build", "--warehouse", str(f)],
                ["study", "--warehouse", str(f), "--output", str(tmp_path / "o")]):
        rc, err = _cli(cmd)
        assert rc != 0, cmd
        _one_sentence(err, str(f), "not a folder")
    assert f.read_text() == "not a folder"


@pytest.mark.parametrize("spec", ["2019Q5", "19Q1", "2019Q3:2019Q1", "2019Q1:x", ","])
def test_cli_bad_quarters(spec, tmp_path):
    rc, err = _cli(["generate", "--dest", str(tmp_path / "g"), "--quarters", spec])
    assert rc != 0
    _one_sentence(err, "quarter")
    assert not (tmp_path / "g").exists()


def test_cli_study_file_with_unknown_key(tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_text((REPO / "conf" / "studies" / "botox_depression.yaml").read_text() + "\ncohortz: {}\n")
    rc, err = _cli(["study", "--warehouse", str(tmp_path / "wh"), "--output", str(tmp_path / "o"),
                    "--study", str(bad)])
    assert rc != 0
    _one_sentence(err, "unknown key 'cohortz'")


def test_cli_study_on_an_empty_warehouse(spark, tmp_path):
    rc, err = _cli(["study", "--warehouse", str(tmp_path / "wh"), "--output", str(tmp_path / "o")])
    assert rc != 0
    msg = _one_sentence(err, "ingest", "build", "first")
    assert msg.count(". ") == 0  # one sentence
    assert not (tmp_path / "o").exists()


def test_cli_build_on_an_empty_warehouse(spark, tmp_path):
    rc, err = _cli(["build", "--warehouse", str(tmp_path / "wh")])
    assert rc != 0
    _one_sentence(err, "ingest", "first")


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", "/abs", ".hidden", ""])
def test_study_name_cannot_leave_the_output_folder(tmp_path, name):
    text = (REPO / "conf" / "studies" / "botox_depression.yaml").read_text()
    text = re.sub(r"(?m)^name:.*\n", "", text)
    f = tmp_path / "s.yaml"
    f.write_text(f"name: {name!r}\n" + text)
    with pytest.raises(ConfigError, match="name"):
        load_study(f)


def test_unknown_override_and_bad_yaml_are_one_sentence(tmp_path):
    rc, err = _cli(["generate", "--dest", str(tmp_path / "g"), "--set", "spark.no_such_key=1"])
    assert rc != 0
    _one_sentence(err, "unknown key 'spark.no_such_key'")
    bad = tmp_path / "p.yaml"
    bad.write_text("spark: [unclosed\n")
    rc, err = _cli(["generate", "--dest", str(tmp_path / "g"), "--conf-file", str(bad)])
    assert rc != 0
    _one_sentence(err, "is not valid YAML")


# --------------------------------------------------------------------------- #
# the code: no eval, no shell, safe YAML only
# --------------------------------------------------------------------------- #
def _calls(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else (
                f"{getattr(f.value, 'id', '?')}.{f.attr}" if isinstance(f, ast.Attribute) else "?")
            yield name, node


def test_no_eval_no_shell_and_safe_yaml_only():
    files = sorted((REPO / "lib").rglob("*.py")) + sorted((REPO / "jobs").rglob("*.py"))
    assert len(files) > 10
    bad = []
    for p in files:
        for name, node in _calls(p):
            where = f"{p.relative_to(REPO)}:{node.lineno} {name}"
            if name in ("eval", "exec", "compile", "__import__", "os.system", "os.popen", "pickle.load",
                        "pickle.loads", "yaml.load", "yaml.unsafe_load", "yaml.full_load", "marshal.loads"):
                bad.append(where)
            if any(k.arg == "shell" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                   for k in node.keywords):
                bad.append(where + " shell=")
            if name.startswith("subprocess.") and node.args and not isinstance(node.args[0], (ast.List, ast.Tuple)):
                bad.append(where + " (command not a literal list)")
    assert bad == []
    assert "yaml.safe_load" in (REPO / "lib" / "faerslake" / "config" / "typed_yaml.py").read_text()


# --------------------------------------------------------------------------- #
# concurrent writers: a lost Delta race is retried, then said clearly
# --------------------------------------------------------------------------- #
class _Wh:
    def __init__(self, fail: int, error: str):
        self.fail, self.error, self.calls = fail, error, 0

    def exists(self, *args) -> bool:
        return True

    def write(self, *args, **kwargs) -> None:
        self.calls += 1
        if self.calls <= self.fail:
            raise RuntimeError(f"An error occurred while calling o98.save.\n: io.delta.exceptions.{self.error}: x")


def test_bronze_commit_retries_a_lost_race_and_then_says_so(monkeypatch):
    from faerslake.errors import FaerslakeError
    from faerslake.ingest import bronze

    monkeypatch.setattr(bronze, "conform", lambda df, table: df)
    monkeypatch.setattr(bronze.time, "sleep", lambda s: None)
    wh = _Wh(2, "ProtocolChangedException")
    bronze.replace_quarters(None, wh, None, "demo", ["2019Q1"])
    assert wh.calls == 3
    wh = _Wh(99, "ConcurrentAppendException")
    with pytest.raises(FaerslakeError, match="another run kept writing the same table .*2019Q1"):
        bronze.replace_quarters(None, wh, None, "demo", ["2019Q1"])
    assert wh.calls == bronze.WRITE_ATTEMPTS
    wh = _Wh(1, "SomethingElseException")  # not a conflict: raised at once
    with pytest.raises(RuntimeError):
        bronze.replace_quarters(None, wh, None, "demo", ["2019Q1"])
    assert wh.calls == 1
