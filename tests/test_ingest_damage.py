"""Ingest of damaged input: repairs, quarantine, unreadable zips, with exact audit numbers.

All damaged files sit in one source (each its own quarter+table) so one
ingest run covers them; the expected audit of every file is worked out by
hand next to its content. Audit tuple: (lines_read, rows_loaded,
rows_repaired, lines_repaired, rows_quarantined).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from faerslake.ingest import ingest
from faerslake.tables import Warehouse


def rec(*fields: str) -> str:
    """A legacy record: fields joined by '$' plus the trailing '$'."""
    return "$".join(fields) + "$"


def drug10(isr: str, seq: str, name: str) -> str:
    # legacy DRUG: ISR DRUG_SEQ ROLE_COD DRUGNAME VAL_VBM ROUTE DOSE_VBM DECHAL RECHAL LOT_NUM EXP_DT NDA_NUM
    return rec(isr, seq, "PS", name, "1", "ORAL", "", "", "", "", "", "")


FILES: dict[str, bytes] = {
    # glued: line 3 holds two whole records (2*12+1 fields) -> 2 rows from 1 line
    "DRUG10Q2.TXT": "\n".join([
        "ISR$DRUG_SEQ$ROLE_COD$DRUGNAME$VAL_VBM$ROUTE$DOSE_VBM$DECHAL$RECHAL$LOT_NUM$EXP_DT$NDA_NUM",
        drug10("6750380", "1001", "ASPIRIN"),
        drug10("6750381", "1002", "TYLENOL") + drug10("6750381", "1003", "ZOCOR"),
        drug10("6750382", "1004", "LIPITOR"),
    ]).encode() + b"\n",
    # broken across lines 3-4, the continuation starts with '$' -> 1 row from 2 lines
    "THER10Q3.TXT": "\n".join([
        "ISR$DRUG_SEQ$START_DT$END_DT$DUR$DUR_COD",
        rec("7000000", "1000", "20110101", "", "", ""),
        "7000001$1001$20110101",
        "$20110105$4$DAY$",
        rec("7000002", "1002", "", "", "", ""),
    ]).encode() + b"\n",
    # broken inside a field (lines 3-4, joined with a space); lines 5 and 6 are blank
    "REAC13Q1.txt": b"primaryid$caseid$pt$drug_rec_act$\r\n1000$100$Nausea$$\r\n1001$100$Abdominal\r\n"
                    b"pain$$\r\n\r\n  \r\n1002$100$Headache$$\r\n",
    # a literal '$' inside MFR_NUM (DEMO 2012Q1 ISR 8129732): 6 fields where the header has 4
    "DEMO12Q1.TXT": "\n".join([
        "ISR$CASE$MFR_NUM$MFR_SNDR",
        rec("8129731", "7000001", "US-1", "ACME"),
        rec("8129732", "7000002", "JP-CUBIST-$E2B0000000182", "CUBIST"),
        rec("8129733", "7000003", "US-3", "ACME"),
    ]).encode() + b"\n",
    # binary garbage on line 3
    "OUTC13Q1.txt": b"primaryid$caseid$outc_cod\n1$1$OT\n\x00\x01\x02\xff\xfe\x1b[garbage\x07\n2$2$HO\n",
    "RPSR13Q1.txt": b"",  # empty file
    "RPSR13Q2.txt": b"primaryid$caseid$rpsr_cod\r\n",  # header only
    # a column the contract does not know
    "REAC13Q3.txt": b"primaryid$caseid$pt$drug_rec_act$new_flag\n5$5$Rash$$Y\n",
    # no report key column: every line quarantined
    "OUTC13Q4.txt": b"caseid$outc_cod\n1$OT\n2$HO\n3$DE\n",
    # a 10 MB single line between two good ones
    "THER14Q1.txt": b"primaryid$caseid$dsg_drug_seq$start_dt$end_dt$dur$dur_cod\n1$1$1$$$$\n2$2$"
                    + b"x" * 10_000_000 + b"\n3$3$1$$$$\n",
    # BOM, CRLF, cp1252 0x92 and 0xE9, and 0x81 (undefined in cp1252 -> latin-1 U+0081)
    "DEMO14Q2.txt": b"\xef\xbb\xbfprimaryid$caseid$mfr_sndr\r\n11$1$O\x92Brien Caf\xe9\r\n12$1$X\x81Y\r\n",
    # a report key that is not a number
    "DEMO14Q3.txt": b"primaryid$caseid\n21$2\nABC$2\n22$2\n",
    # deleted list with a header, a duplicate, a single-space line, a non-number and a blank line
    "ADR19Q1DeletedCases.txt": b"CASEID\r\n100\r\n100\r\n \r\nabc\r\n200\r\n\r\n",
}

EXPECTED = {
    "DRUG10Q2.TXT": (3, 4, 2, 1, 0),
    "THER10Q3.TXT": (4, 3, 1, 2, 0),
    "REAC13Q1.txt": (4, 3, 1, 2, 0),
    "DEMO12Q1.TXT": (3, 2, 0, 0, 1),
    "OUTC13Q1.txt": (3, 2, 0, 0, 1),
    "RPSR13Q1.txt": (0, 0, 0, 0, 0),
    "RPSR13Q2.txt": (0, 0, 0, 0, 0),
    "REAC13Q3.txt": (1, 1, 0, 0, 0),
    "OUTC13Q4.txt": (3, 0, 0, 0, 3),
    "THER14Q1.txt": (3, 2, 0, 0, 1),
    "DEMO14Q2.txt": (2, 2, 0, 0, 0),
    "DEMO14Q3.txt": (3, 2, 0, 0, 1),
    "ADR19Q1DeletedCases.txt": (4, 3, 0, 0, 1),
}


@pytest.fixture(scope="module")
def damaged(spark, tmp_path_factory):
    src = tmp_path_factory.mktemp("damaged-src")
    for name, data in FILES.items():
        (src / name).write_bytes(data)
    wh = Warehouse(str(tmp_path_factory.mktemp("damaged-wh")))
    logs: list[str] = []
    res = ingest(spark, str(src), wh.root, log=logs.append)
    return res, wh, logs


def test_audit_numbers_of_damaged_files(damaged):
    res, _, _ = damaged
    cols = ["lines_read", "rows_loaded", "rows_repaired", "lines_repaired", "rows_quarantined"]
    got = {r["source_file"]: tuple(int(r[c]) for c in cols) for _, r in res.audit.iterrows()}
    assert got == EXPECTED
    for v in got.values():
        assert v[0] == v[1] - v[2] + v[3] + v[4]


def _rows(spark, wh, table, source_file):
    return wh.read(spark, "bronze", table).where(f"source_file = '{source_file}'").orderBy("line_number",
                                                                                         "drug_seq" if table == "drug" else "line_number").collect()


def test_glued_records_become_two_rows(spark, damaged):
    _, wh, _ = damaged
    rows = _rows(spark, wh, "drug", "DRUG10Q2.TXT")
    assert [(r["line_number"], r["isr"], r["drug_seq"], r["drugname"]) for r in rows] == [
        (2, "6750380", "1001", "ASPIRIN"), (3, "6750381", "1002", "TYLENOL"),
        (3, "6750381", "1003", "ZOCOR"), (4, "6750382", "1004", "LIPITOR")]
    assert all(r["era"] == "legacy" and r["report_key"] == r["isr"] and r["nda_num"] == "" for r in rows)


def test_broken_records_are_joined(spark, damaged):
    _, wh, _ = damaged
    ther = _rows(spark, wh, "ther", "THER10Q3.TXT")
    assert [(r["line_number"], r["report_key"], r["dsg_drug_seq"], r["start_dt"], r["end_dt"], r["dur"],
             r["dur_cod"]) for r in ther] == [
        (2, "7000000", "1000", "20110101", "", "", ""),
        (3, "7000001", "1001", "20110101", "20110105", "4", "DAY"),
        (5, "7000002", "1002", "", "", "", "")]
    reac = _rows(spark, wh, "reac", "REAC13Q1.txt")
    assert [(r["line_number"], r["primaryid"], r["pt"], r["drug_rec_act"]) for r in reac] == [
        (2, "1000", "Nausea", ""), (3, "1001", "Abdominal pain", ""), (7, "1002", "Headache", "")]


def test_quarantine_rows_and_reasons(spark, damaged):
    _, wh, _ = damaged
    q = {(r["source_file"], r["line_number"]): r for r in wh.read(spark, "bronze", "quarantine").collect()}
    assert sorted(q) == sorted([
        ("DEMO12Q1.TXT", 3), ("OUTC13Q1.txt", 3), ("OUTC13Q4.txt", 2), ("OUTC13Q4.txt", 3), ("OUTC13Q4.txt", 4),
        ("THER14Q1.txt", 3), ("DEMO14Q3.txt", 3), ("ADR19Q1DeletedCases.txt", 5)])
    lit = q[("DEMO12Q1.TXT", 3)]
    assert lit["raw_line"] == "8129732$7000002$JP-CUBIST-$E2B0000000182$CUBIST$"
    assert lit["reason"] == "6 $-separated fields where the header has 4"
    assert (lit["quarter"], lit["table"]) == ("2012Q1", "demo")
    garbage = q[("OUTC13Q1.txt", 3)]
    assert garbage["raw_line"] == "\x00\x01\x02\u00ff\u00fe\x1b[garbage\x07"
    assert "control bytes" in garbage["reason"]
    assert q[("OUTC13Q4.txt", 2)]["reason"] == "the header has no report key column (primaryid or isr)"
    long = q[("THER14Q1.txt", 3)]
    assert "ingest.max_line_chars=1000000" in long["reason"] and len(long["raw_line"]) == 4000
    assert long["raw_line"].startswith("2$2$xxx")
    assert q[("DEMO14Q3.txt", 3)]["reason"] == "report key is not a whole number"
    assert q[("ADR19Q1DeletedCases.txt", 5)]["reason"] == "not a case number"
    assert q[("ADR19Q1DeletedCases.txt", 5)]["table"] == "deleted_cases"


def test_decoding_extra_columns_and_deleted_lists(spark, damaged):
    res, wh, logs = damaged
    demo = {r["primaryid"]: r for r in _rows(spark, wh, "demo", "DEMO14Q2.txt")}
    assert demo["11"]["mfr_sndr"] == "O\u2019Brien Caf\u00e9"
    assert demo["12"]["mfr_sndr"] == "X\u0081Y"
    reac = _rows(spark, wh, "reac", "REAC13Q3.txt")
    assert reac[0]["extra_fields"] == {"new_flag": "Y"} and reac[0]["drug_rec_act"] == ""
    assert any("new_flag" in w and "REAC13Q3.txt" in w for w in res.warnings)
    assert any("OUTC13Q4.txt" in w and "no report key" in w for w in logs)
    assert any("RPSR13Q1.txt is empty" in w for w in res.warnings)
    deleted = wh.read(spark, "bronze", "deleted_cases").orderBy("line_number").collect()
    assert [(d["line_number"], d["caseid"], d["quarter"]) for d in deleted] == [
        (2, "100", "2019Q1"), (3, "100", "2019Q1"), (6, "200", "2019Q1")]


def test_line_numbers_need_one_partition_per_part(spark, tmp_path):
    from faerslake.ingest.parse import numbering_metrics, one_partition_per_part, read_parts
    from pyspark.sql import Observation

    paths = []
    for i, first in enumerate((2, 5, 9)):
        p = tmp_path / f"p{i:06d}{first:012d}{3:012d}.txt"
        p.write_text(f"a{i}\nb{i}\nc{i}\n")
        paths.append("file://" + str(p))
    with one_partition_per_part(spark):
        obs = Observation("numbering_ok")
        rows = read_parts(spark, paths).observe(obs, *numbering_metrics()).collect()
    assert sorted((r["file_idx"], r["line_number"], r["value"]) for r in rows) == [
        (0, 2, "a0"), (0, 3, "b0"), (0, 4, "c0"), (1, 5, "a1"), (1, 6, "b1"), (1, 7, "c1"),
        (2, 9, "a2"), (2, 10, "b2"), (2, 11, "c2")]
    assert obs.get == {"lines": 9, "misnumbered": 0}
    # Spark's default packs small files together: the check sees the misnumbered lines
    obs = Observation("numbering_packed")
    packed = read_parts(spark, paths).observe(obs, *numbering_metrics())
    assert packed.rdd.getNumPartitions() < 3
    packed.collect()
    assert obs.get["lines"] == 9 and obs.get["misnumbered"] >= 3


def _zip(path: Path, members: dict[str, bytes]) -> bytes:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path.read_bytes()


def _damaged_zip(path: Path, member: str) -> None:
    """A zip whose central directory is intact but whose compressed data is
    corrupted (bytes flipped): it opens, and fails while inflating."""
    body = "".join(f"{i}$case{i}$x\n" for i in range(5000)).encode()
    raw = bytearray(_zip(path, {member: b"primaryid$caseid$x\n" + body}))
    for k in range(200, 400):
        raw[k] ^= 0x5A
    path.write_bytes(bytes(raw))


def test_bad_zips_fail_their_quarter_only(spark, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _zip(src / "faers_ascii_2015q1.zip", {"ASCII/DEMO15Q1.txt": b"primaryid$caseid\n1$1\n2$2\n",
                                          "ASCII/ASC_NTS.pdf": b"%PDF"})
    _damaged_zip(src / "faers_ascii_2015q2.zip", "ascii/DEMO15Q2.txt")
    good = _zip(tmp_path / "t.zip", {"ascii/DEMO15Q3.txt": b"primaryid$caseid\n1$1\n" * 100})
    (src / "faers_ascii_2015q3.zip").write_bytes(good[: len(good) // 2])  # truncated download
    _zip(src / "faers_ascii_2015q4.zip", {"../DEMO15Q4.txt": b"primaryid$caseid\n1$1\n"})
    _zip(src / "faers_ascii_2016q1.zip", {"ascii/DEMO16Q1.txt": b"0" * 2_000_000})  # inflates ~1000x

    wh = Warehouse(str(tmp_path / "wh"))
    logs: list[str] = []
    res = ingest(spark, str(src), wh.root, log=logs.append)
    assert res.quarters_ingested == ["2015Q1"]
    assert sorted(res.quarters_failed) == ["2015Q2", "2015Q3", "2015Q4", "2016Q1"]
    assert "damaged" in res.quarters_failed["2015Q2"] and "DEMO15Q2.txt" in res.quarters_failed["2015Q2"]
    assert "not a readable zip" in res.quarters_failed["2015Q3"]
    assert "leaves the zip" in res.quarters_failed["2015Q4"]
    assert "zip bomb" in res.quarters_failed["2016Q1"]
    for q in res.quarters_failed:
        assert any(m.startswith(f"{q}: SKIPPED") for m in logs)
    assert res.audit[["source_file", "lines_read", "rows_loaded"]].values.tolist() == [
        ["faers_ascii_2015q1.zip!/ASCII/DEMO15Q1.txt", 2, 2]]
    assert wh.read(spark, "bronze", "demo").count() == 2
    assert [r["quarter"] for r in wh.read(spark, "bronze", "source_manifest").collect()] == ["2015Q1"]
    assert not list((tmp_path / "wh" / "_staging").glob("*"))  # staging cleaned up


def test_parallel_staging_equals_serial_and_renumbers_after_a_failed_quarter(spark, tmp_path, monkeypatch):
    """Quarters staged by worker processes load exactly what one process
    loads, line numbers included, also when a damaged quarter in the middle
    leaves a hole in the file indices (the later quarter's parts are renamed)."""
    from faerslake.ingest import stage as ingest_stage

    src = tmp_path / "src"
    src.mkdir()
    _zip(src / "faers_ascii_2015q1.zip", {"ascii/DEMO15Q1.txt": b"primaryid$caseid\n1$1\n2$2\n",
                                          "ascii/DRUG15Q1.txt": b"primaryid$caseid$drug_seq$drugname\n1$1$1$A\n"})
    _damaged_zip(src / "faers_ascii_2015q2.zip", "ascii/DEMO15Q2.txt")
    _zip(src / "faers_ascii_2015q3.zip", {
        "ascii/DEMO15Q3.txt": b"primaryid$caseid\n\n7$7\n8$8\n9$9\n",
        "ascii/DRUG15Q3.txt": b"primaryid$caseid$drug_seq$drugname\n7$7$1$B\n8$8$1$C\n",
    })

    def load(pool: bool, name: str):
        monkeypatch.setattr(ingest_stage, "STAGE_POOL_MIN_BYTES", 0 if pool else 1 << 62)
        monkeypatch.setattr(ingest_stage.os, "cpu_count", lambda: 2)
        wh = Warehouse(str(tmp_path / name))
        logs: list[str] = []
        res = ingest(spark, str(src), wh.root, log=logs.append)
        rows = sorted((r["quarter"], r["source_file"], r["line_number"], r["report_key"])
                      for t in ("demo", "drug") for r in wh.read(spark, "bronze", t).collect())
        return res, rows, logs

    par, par_rows, par_logs = load(True, "wh_pool")
    ser, ser_rows, ser_logs = load(False, "wh_serial")
    assert any("with 2 processes" in m for m in par_logs)
    assert not any("processes" in m for m in ser_logs)
    assert par.quarters_ingested == ser.quarters_ingested == ["2015Q1", "2015Q3"]
    assert "damaged" in par.quarters_failed["2015Q2"]
    assert par_rows == ser_rows
    assert [r for r in par_rows if r[0] == "2015Q3"] == [
        ("2015Q3", "faers_ascii_2015q3.zip!/ascii/DEMO15Q3.txt", 3, "7"),
        ("2015Q3", "faers_ascii_2015q3.zip!/ascii/DEMO15Q3.txt", 4, "8"),
        ("2015Q3", "faers_ascii_2015q3.zip!/ascii/DEMO15Q3.txt", 5, "9"),
        ("2015Q3", "faers_ascii_2015q3.zip!/ascii/DRUG15Q3.txt", 2, "7"),
        ("2015Q3", "faers_ascii_2015q3.zip!/ascii/DRUG15Q3.txt", 3, "8"),
    ]
    assert par.audit.drop(columns="ingested_at", errors="ignore").equals(
        ser.audit.drop(columns="ingested_at", errors="ignore"))
