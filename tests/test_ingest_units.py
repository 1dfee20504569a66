"""Ingest building blocks without Spark: discovery, staging/decoding, headers, repairs.

Every expected number is counted by hand next to the input that produces it.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from faerslake.config import IngestSettings
from faerslake.errors import InputError
from faerslake.ingest.decode import decode_bytes, stage_stream
from faerslake.ingest.discover import discover, local_root
from faerslake.ingest.parse import layout_from_header, repair_lines


# --------------------------------------------------------------------------- #
# decoding and staging
# --------------------------------------------------------------------------- #
def test_cp1252_with_latin1_fallback_never_fails():
    # 0x92 is cp1252's right quote, 0xE9 is e-acute, 0x81 is undefined in cp1252 -> latin-1 U+0081
    assert decode_bytes(b"O\x92Brien caf\xe9 \x81\x8d\x8f\x90\x9d") == "O\u2019Brien caf\u00e9 \x81\x8d\x8f\x90\x9d"
    assert decode_bytes(bytes(range(256)))  # all 256 bytes decode


def _stage(tmp_path: Path, data: bytes, **kw):
    out = tmp_path / "parts"
    st = stage_stream(io.BytesIO(data), out, 7, kw.pop("max_line_chars", 1000), **kw)
    text = b"".join(p.path.read_bytes() for p in st.parts).decode("utf-8")
    return st, text


def test_stage_strips_bom_and_crlf_and_decodes(tmp_path):
    data = b"\xef\xbb\xbfprimaryid$caseid$pt\r\n1$2$caf\xe9\r\n\r\n3$4$O\x92X\r\n"
    st, text = _stage(tmp_path, data)
    assert st.header == "primaryid$caseid$pt"
    assert st.header_line == 1
    # physical lines 2, 3 (blank), 4
    assert st.data_lines == 3 and st.total_lines == 4
    assert text == "1$2$caf\u00e9\n\n3$4$O\u2019X\n"
    assert [p.first_line for p in st.parts] == [2]
    assert st.parts[0].path.name == "p000007000000000002000000000003.txt"
    import hashlib

    assert st.sha256 == hashlib.sha256(data).hexdigest() and st.size_bytes == len(data)


def test_stage_counts_a_last_line_without_newline_and_keeps_lone_cr(tmp_path):
    st, text = _stage(tmp_path, b"a$b\n1$x\ry\n2$z")
    assert st.data_lines == 2 and st.total_lines == 3
    assert text == "1$x\ry\n2$z"


def test_stage_splits_parts_at_line_ends(tmp_path):
    body = b"".join(b"%d$row\n" % i for i in range(1, 101))
    st, text = _stage(tmp_path, b"h$x\n" + body, part_bytes=100)
    assert len(st.parts) > 1
    assert st.data_lines == 100
    # every part starts at the line its name says
    line = 2
    for p in st.parts:
        assert p.first_line == line
        assert p.lines == p.path.read_bytes().count(b"\n")
        assert p.path.name == f"p000007{p.first_line:012d}{p.lines:012d}.txt"
        line += p.lines
        assert p.path.read_bytes().endswith(b"\n")
    assert text == body.decode()


def test_stage_cuts_a_giant_line_but_counts_it_once(tmp_path):
    from faerslake.ingest import decode

    giant = b"9" * (decode.CHUNK * 2 + 123)
    st, text = _stage(tmp_path, b"h$x\n1$a\n" + giant + b"\n2$b\n", max_line_chars=10)
    assert st.data_lines == 3 and st.lines_cut == 1
    lines = text.split("\n")
    assert lines[0] == "1$a" and lines[2] == "2$b"
    assert len(lines[1]) == decode.CHUNK  # cut at max(max_line_chars + 1, CHUNK)


def test_stage_header_is_first_nonblank_line_and_optional_for_deleted_lists(tmp_path):
    st, _ = _stage(tmp_path, b"\n  \nprimaryid$caseid\n1$2\n")
    assert (st.header, st.header_line, st.data_lines) == ("primaryid$caseid", 3, 1)
    st, text = _stage(tmp_path / "d", b" \r\n10153291\r\n10796583\r\n", header_is_optional=True)
    assert st.header is None and st.data_lines == 2 and st.parts[0].first_line == 2
    assert text == "10153291\n10796583\n"
    st, _ = _stage(tmp_path / "e", b"CASEID\n1\n", header_is_optional=True)
    assert st.header == "CASEID" and st.data_lines == 1


def test_stage_empty_and_header_only(tmp_path):
    st, _ = _stage(tmp_path, b"")
    assert (st.header, st.data_lines, st.total_lines, st.parts) == (None, 0, 0, [])
    st, _ = _stage(tmp_path / "h", b"primaryid$caseid\r\n")
    assert (st.header, st.data_lines, st.parts) == ("primaryid$caseid", 0, [])


# --------------------------------------------------------------------------- #
# headers
# --------------------------------------------------------------------------- #
def test_2012q4_header_quirks():
    lay, warns = layout_from_header(
        "demo", "\ufeffprimaryid$caseid$caseversion$i_f_code$gndr_cod$ rept_dt$"
    )
    cols = dict(lay.columns)
    assert lay.n == 6 and warns == []
    assert cols == {"primaryid": 0, "caseid": 1, "caseversion": 2, "i_f_code": 3, "sex": 4, "rept_dt": 5}
    assert lay.key_pos == 0 and lay.key_name == "primaryid"
    assert dict(layout_from_header("drug", "primaryid$lot_nbr")[0].columns)["lot_num"] == 1
    assert dict(layout_from_header("outc", "primaryid$caseid$outc_code$")[0].columns)["outc_cod"] == 2


def test_legacy_header_renames_and_r_columns():
    lay, warns = layout_from_header("demo", "isr$case$i_f_cod$gndr_cod$v23")
    assert lay.n == 4 and warns == []
    assert dict(lay.columns) == {"isr": 0, "caseid": 1, "i_f_code": 2, "sex": 3}
    assert lay.key_name == "isr"
    assert dict(layout_from_header("ther", "ISR$DRUG_SEQ$START_DT")[0].columns)["dsg_drug_seq"] == 1
    assert dict(layout_from_header("indi", "ISR$DRUG_SEQ$INDI_PT")[0].columns)["indi_drug_seq"] == 1
    # drug keeps drug_seq
    assert dict(layout_from_header("drug", "ISR$DRUG_SEQ")[0].columns)["drug_seq"] == 1


def test_unknown_and_missing_key_columns():
    lay, warns = layout_from_header("reac", "primaryid$caseid$pt$drug_rec_act$new_flag")
    assert lay.extras == (("new_flag", 4),) and lay.problem is None
    assert "new_flag" in warns[0]
    lay, _ = layout_from_header("outc", "caseid$outc_cod")
    assert lay.key_pos is None and "no report key" in lay.problem


# --------------------------------------------------------------------------- #
# repairs
# --------------------------------------------------------------------------- #
def test_glued_records_split():
    # n = 3 (isr, drug_seq, drugname), legacy trailing '$': 2 records = 2*3+1 fields
    out = repair_lines([(5, "6750381$1$ASPIRIN$6750381$2$TYLENOL$")], n=3, key_pos=0)
    assert [(r.line_number, r.fields, r.kind, r.lines) for r in out] == [
        (5, ["6750381", "1", "ASPIRIN"], "glued", (5,)),
        (5, ["6750381", "2", "TYLENOL"], "glued", (5,)),
    ]
    # 3 records glued
    assert len(repair_lines([(2, "1$a$b$2$c$d$3$e$f$")], 3, 0)) == 3
    # a non-numeric key in the second chunk: not glued records
    assert repair_lines([(2, "1$a$b$x$c$d$")], 3, 0) == []


def test_broken_records_joined():
    # continuation starting with '$' joins as is
    out = repair_lines([(3, "7000001$1001$20110101"), (4, "$20110105$4$DAY$")], n=6, key_pos=0)
    assert len(out) == 1
    assert out[0].fields == ["7000001", "1001", "20110101", "20110105", "4", "DAY"]
    assert (out[0].line_number, out[0].lines, out[0].kind) == (3, (3, 4), "joined")
    # a break inside a field joins with one space; three physical lines
    out = repair_lines([(2, "1$2$ASPI"), (3, "RIN 100"), (4, "MG$Oral$")], n=4, key_pos=0)
    assert out[0].fields == ["1", "2", "ASPI RIN 100 MG", "Oral"] and out[0].lines == (2, 3, 4)
    # not adjacent: no join
    assert repair_lines([(2, "1$2$A"), (4, "$B$")], 4, 0) == []
    # overshoot: the parts together have too many fields
    assert repair_lines([(2, "1$2$A"), (3, "$B$C$D$E")], 4, 0) == []


def test_literal_dollar_is_not_repaired():
    # DEMO 2012Q1 ISR 8129732: one field too many, last not empty
    assert repair_lines([(9, "8129732$JP-CUBIST-$E2B0000000182$X")], n=3, key_pos=0) == []


# --------------------------------------------------------------------------- #
# discovery
# --------------------------------------------------------------------------- #
def _zip(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_discover_fda_layouts(tmp_path):
    _zip(tmp_path / "faers_ascii_2019Q1.zip", {
        "asii/DEMO19Q1_new.txt": b"h\n", "ASCII/drug19q1.TXT": b"h\n", "ASCII/STAT19Q1.TXT": b"x",
        "Deleted/ADR19Q1DeletedCases.txt": b"1\n", "Readme.pdf": b"%PDF",
    })
    _zip(tmp_path / "aers_ascii_2004q1.zip", {"ascii/DEMO04Q1.TXT": b"h\n", "ascii/SIZE04Q1.TXT": b"x"})
    (tmp_path / "2020q4").mkdir()
    (tmp_path / "2020q4" / "REAC20Q4.txt").write_bytes(b"h\n")
    (tmp_path / "2020q4" / "deleted").mkdir()
    (tmp_path / "2020q4" / "deleted" / "20Q4DeletedCases.txt").write_bytes(b"1\n")
    (tmp_path / "DELETE21Q4.txt").write_bytes(b"1\n")
    (tmp_path / "notes.md").write_text("x")
    d = discover(str(tmp_path), IngestSettings())
    got = {q: sorted((f.table, f.source_file) for f in qf.files) for q, qf in d.quarters.items()}
    assert got == {
        "2004Q1": [("demo", "aers_ascii_2004q1.zip!/ascii/DEMO04Q1.TXT")],
        "2019Q1": [("deleted_cases", "faers_ascii_2019Q1.zip!/Deleted/ADR19Q1DeletedCases.txt"),
                   ("demo", "faers_ascii_2019Q1.zip!/asii/DEMO19Q1_new.txt"),
                   ("drug", "faers_ascii_2019Q1.zip!/ASCII/drug19q1.TXT")],
        "2020Q4": [("deleted_cases", "2020q4/deleted/20Q4DeletedCases.txt"), ("reac", "2020q4/REAC20Q4.txt")],
        "2021Q4": [("deleted_cases", "DELETE21Q4.txt")],
    }
    assert list(d.quarters) == ["2004Q1", "2019Q1", "2020Q4", "2021Q4"]  # in time order
    assert d.quarters["2004Q1"].era == "legacy" and d.quarters["2019Q1"].era == "faers"
    assert sorted(d.ignored) == sorted([
        "faers_ascii_2019Q1.zip!/ASCII/STAT19Q1.TXT", "faers_ascii_2019Q1.zip!/Readme.pdf",
        "aers_ascii_2004q1.zip!/ascii/SIZE04Q1.TXT", "notes.md"])
    assert set(discover(str(tmp_path), IngestSettings(), ["2019Q1"]).quarters) == {"2019Q1"}
    assert set(discover("file://" + str(tmp_path), IngestSettings()).quarters) == set(got)


def test_discover_same_table_twice_names_both(tmp_path):
    _zip(tmp_path / "faers_ascii_2020q3.zip", {"ascii/DEMO20Q3.txt": b"h\n"})
    (tmp_path / "DEMO20Q3.txt").write_bytes(b"h\n")
    (tmp_path / "DEMO20Q4.txt").write_bytes(b"h\n")
    d = discover(str(tmp_path), IngestSettings())  # fails that quarter only
    assert d.quarters["2020Q3"].problem == (
        "DEMO of 2020Q3 is in the source twice (DEMO20Q3.txt and faers_ascii_2020q3.zip!/ascii/DEMO20Q3.txt): "
        f"remove one of them from {tmp_path} and run again")
    assert d.quarters["2020Q4"].problem is None


def test_discover_refuses_unsafe_zips(tmp_path):
    _zip(tmp_path / "faers_ascii_2015q1.zip", {"../evil/DEMO15Q1.txt": b"h\n"})
    _zip(tmp_path / "faers_ascii_2015q2.zip", {"ascii/DEMO15Q2.txt": b"0" * 1_000_000})
    _zip(tmp_path / "faers_ascii_2015q3.zip", {"ascii/DEMO15Q3.txt": b"h\n1\n"})
    good = (tmp_path / "faers_ascii_2015q3.zip").read_bytes()
    (tmp_path / "faers_ascii_2015q4.zip").write_bytes(good[: len(good) // 2])  # truncated
    d = discover(str(tmp_path), IngestSettings())
    problems = {q: qf.problem for q, qf in d.quarters.items()}
    assert "leaves the zip" in problems["2015Q1"]
    assert "zip bomb" in problems["2015Q2"] and "max_zip_ratio" in problems["2015Q2"]
    assert problems["2015Q3"] is None
    assert "not a readable zip" in problems["2015Q4"]
    d = discover(str(tmp_path), IngestSettings(max_unzipped_bytes=3), ["2015Q3"])
    assert "max_unzipped_bytes" in d.quarters["2015Q3"].problem


def test_source_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        local_root(str(tmp_path / "nope"))
    with pytest.raises(InputError, match="remote URI"):
        local_root("s3a://bucket/faers")


def test_file_checks_judge_each_line_by_its_own_files_layout(spark):
    """One scan checks lines of files with different layouts: a FAERS header
    (4 fields, key first), a header whose key is the 2nd field, a header with
    no key, and a deleted-cases list; each line gets its own file's verdict."""
    from faerslake.ingest.discover import DELETED
    from faerslake.ingest.parse import set_aside

    layouts = [
        layout_from_header("reac", "primaryid$caseid$pt$drug_rec_act")[0],
        layout_from_header("outc", "caseid$primaryid$outc_cod")[0],
        layout_from_header("outc", "caseid$outc_cod")[0],
        layout_from_header(DELETED, None)[0],
    ]
    assert [lo.key_pos for lo in layouts] == [0, 1, None, 0]
    lines = [
        (0, 1, "100$7$NAUSEA$"),        # fits: 4 fields
        (0, 2, "100$7$NAUSEA$$"),       # fits: one more, empty (trailing $)
        (0, 3, "100$7$NAUSEA"),         # 3 fields
        (0, 4, "x100$7$NAUSEA$"),       # key not a number
        (0, 5, "   "),                  # blank
        (0, 6, "100$" + "A" * 60),      # too long (limit 50 below)
        (1, 1, "7$100$DE"),             # fits: key is the 2nd field
        (1, 2, "7$x$DE"),               # 2nd field not a number
        (1, 3, "100$7$NAUSEA$X"),       # 4 fields where the header has 3
        (2, 1, "7$DE"),                 # no key column: never loaded
        (2, 2, ""),                     # ...but blank is still blank
        (3, 1, " 12345 "),              # a case number
        (3, 2, "12a"),                  # not one
    ]
    df = spark.createDataFrame(lines, "file_idx INT, line_number LONG, value STRING")
    got = {(r["file_idx"], r["line_number"]): r["status"] for r in set_aside(df, layouts, 50).collect()}
    assert got == {(0, 3): "fields", (0, 4): "key", (0, 5): "blank", (0, 6): "too_long",
                   (1, 2): "key", (1, 3): "fields", (2, 1): "no_key", (2, 2): "blank", (3, 2): "not_number"}
