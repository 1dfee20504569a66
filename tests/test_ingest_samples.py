"""Ingest of the genuine FAERS / AERS extracts in tests/data/faers (provenance: its README.md).

Each sample folder is ingested as its own source into its own warehouse. The
expected row counts are recounted here with plain Python (non-blank lines
after the header), independently of faerslake's staging and Spark code.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest
from faerslake.ingest import ingest
from faerslake.tables import Warehouse
from pyspark.sql import functions as F

FOLDERS = ["2012q4-tiny", "2017q2-sample", "2020q3-head10k", "2020q3-tiny", "2022q4-zip",
           "2025q4-sample", "2026q2-zip", "legacy-2004q1"]
TABLE_FILE = re.compile(r"^(DEMO|DRUG|REAC|OUTC|RPSR|THER|INDI)\d\dQ[1-4](_new)?\.txt$", re.I)


def _expected(folder: Path) -> dict[str, int]:
    """source_file -> data lines (non-blank, after the header; deleted lists have no header)."""
    out = {}

    def count(name: str, data: bytes, deleted: bool) -> None:
        lines = [ln for ln in data.split(b"\n") if ln.strip()]
        out[name] = len(lines) if deleted else len(lines) - 1

    for p in sorted(folder.iterdir()):
        if p.suffix.lower() == ".zip":
            with zipfile.ZipFile(p) as zf:
                for m in zf.namelist():
                    base = m.rsplit("/", 1)[-1]
                    if TABLE_FILE.match(base):
                        count(f"{p.name}!/{m}", zf.read(m), False)
                    elif m.lower().startswith("deleted/") and base:
                        count(f"{p.name}!/{m}", zf.read(m), True)
        elif TABLE_FILE.match(p.name):
            count(p.name, p.read_bytes(), False)
    return out


@pytest.fixture(scope="module")
def ingested(spark, samples, tmp_path_factory):
    out = {}
    for name in FOLDERS:
        wh = str(tmp_path_factory.mktemp(f"wh-{name}"))
        logs: list[str] = []
        res = ingest(spark, str(samples / name), wh, log=logs.append)
        out[name] = (res, Warehouse(wh), logs)
    return out


def test_every_sample_folder_is_covered(samples):
    assert sorted(p.name for p in samples.iterdir() if p.is_dir()) == sorted(FOLDERS)


@pytest.mark.parametrize("name", FOLDERS)
def test_rows_loaded_equal_independent_line_counts(ingested, samples, name):
    res, wh, _ = ingested[name]
    expected = _expected(samples / name)
    audit = res.audit
    assert dict(zip(audit["source_file"], audit["rows_loaded"], strict=True)) == expected
    assert dict(zip(audit["source_file"], audit["lines_read"], strict=True)) == expected
    assert (audit["rows_quarantined"] == 0).all()
    assert (audit["rows_repaired"] == 0).all() and (audit["lines_repaired"] == 0).all()
    balance = audit["rows_loaded"] - audit["rows_repaired"] + audit["lines_repaired"] + audit["rows_quarantined"]
    assert (balance == audit["lines_read"]).all()
    assert len(res.quarters_ingested) == 1 and not res.quarters_failed


@pytest.mark.parametrize("name", FOLDERS)
def test_bronze_tables_hold_what_the_audit_says(spark, ingested, name):
    res, wh, _ = ingested[name]
    got = {}
    for table in set(res.audit["table"]):
        for r in wh.read(spark, "bronze", table).groupBy("source_file").count().collect():
            got[r["source_file"]] = r["count"]
    assert got == dict(zip(res.audit["source_file"], res.audit["rows_loaded"], strict=True))
    assert wh.read(spark, "bronze", "quarantine").count() == 0
    stored = wh.read(spark, "bronze", "ingest_audit").collect()
    assert sorted(r["source_file"] for r in stored) == sorted(res.audit["source_file"])
    manifest = wh.read(spark, "bronze", "source_manifest").collect()
    assert {r["quarter"] for r in manifest} == set(res.quarters_ingested)


def test_line_numbers_are_physical_lines(spark, ingested, samples):
    res, wh, _ = ingested["2020q3-head10k"]
    lines = (samples / "2020q3-head10k" / "DRUG20Q3.txt").read_bytes().split(b"\n")
    rows = wh.read(spark, "bronze", "drug").select("line_number", "primaryid", "drug_seq", "dose_freq").collect()
    assert sorted(r["line_number"] for r in rows) == list(range(2, 10002))
    for r in rows:
        f = lines[r["line_number"] - 1].decode().split("$")
        assert (r["primaryid"], r["drug_seq"], r["dose_freq"]) == (f[0], f[2], f[19])


def test_2012q4_header_quirks(spark, ingested):
    _, wh, _ = ingested["2012q4-tiny"]
    demo = {r["primaryid"]: r for r in wh.read(spark, "bronze", "demo").collect()}
    # demo12q4.txt line 2: 34483284$3448328$4$F$$20121116$20000321$20121128$EXP$...$F$Y$2$KG$20121128$$CN$US$US$
    r = demo["34483284"]
    assert (r["sex"], r["rept_dt"], r["occr_country"], r["era"]) == ("F", "20121128", "US", "faers")
    assert r["report_key"] == "34483284" and r["isr"] is None and r["extra_fields"] == {}
    assert {x["sex"] for x in demo.values()} <= {"F", "M", ""}
    # drug12q4.txt starts with a BOM and says lot_nbr; every row keeps its key and an (empty) lot_num
    drug = wh.read(spark, "bronze", "drug").collect()
    assert len(drug) == 10 and all(d["report_key"] == d["primaryid"] and d["primaryid"] for d in drug)
    assert all(d["lot_num"] is not None and d["prod_ai"] is None for d in drug)
    assert {d["nda_num"] for d in drug if d["line_number"] == 2} == {"020972"}
    outc = wh.read(spark, "bronze", "outc").orderBy("line_number").collect()
    assert [o["outc_cod"] for o in outc[:2]] == ["OT", "CA"]


def test_2004q1_legacy_rows_keyed_by_isr(spark, ingested):
    _, wh, _ = ingested["legacy-2004q1"]
    demo = wh.read(spark, "bronze", "demo")
    assert demo.where(F.col("report_key") != F.col("isr")).count() == 0
    assert demo.where(F.col("primaryid").isNotNull() | F.col("caseid").isNull()).count() == 0
    first = demo.where("line_number = 2").first()
    # DEMO04Q1.TXT line 2: 4263742$4061110$I$$4263742-7$20031115$...$42$YR$F$N$$$20031231$OT$$$$$
    assert (first["isr"], first["caseid"], first["i_f_code"], first["sex"], first["era"]) == (
        "4263742", "4061110", "I", "F", "legacy")
    for table in ("demo", "drug", "reac", "outc", "rpsr", "ther", "indi"):
        df = wh.read(spark, "bronze", table)
        assert df.where(F.size("extra_fields") > 0).count() == 0, table  # v23 / v13 / v3 dropped
    ther = wh.read(spark, "bronze", "ther").where("line_number = 2").first()
    assert (ther["report_key"], ther["dsg_drug_seq"], ther["start_dt"]) == ("4263742", "1004492716", "20031115")
    indi = wh.read(spark, "bronze", "indi").where("line_number = 2").first()
    assert (indi["indi_drug_seq"], indi["indi_pt"]) == ("1004493847", "BREAST CANCER")


def test_2022q4_deleted_list(spark, ingested, samples):
    res, wh, logs = ingested["2022q4-zip"]
    with zipfile.ZipFile(samples / "2022q4-zip" / "faers_ascii_2022Q4.zip") as zf:
        lines = [ln.strip() for ln in zf.read("Deleted/DELETE22Q4.txt").split(b"\n") if ln.strip()]
    deleted = wh.read(spark, "bronze", "deleted_cases")
    assert deleted.count() == len(lines) == 3624
    assert sorted(r["caseid"] for r in deleted.collect()) == sorted(x.decode() for x in lines)
    assert any("ASC_NTS.pdf" in f for f in res.ignored_files) and any("FAQs.pdf" in f for f in res.ignored_files)
    assert any("ignoring" in m and "Readme.pdf" in m for m in logs)


def test_2026q2_leading_space_line_skipped(spark, ingested):
    _, wh, _ = ingested["2026q2-zip"]
    deleted = wh.read(spark, "bronze", "deleted_cases").orderBy("line_number").collect()
    # DELETE26Q2.txt: line 1 is " ", then 24 case numbers
    assert len(deleted) == 24
    assert (deleted[0]["line_number"], deleted[0]["caseid"]) == (2, "10172236")
    assert all(d["caseid"].isdigit() for d in deleted)


def test_rerun_skips_and_force_replaces(spark, samples, tmp_path):
    src = str(samples / "2020q3-tiny")
    wh = Warehouse(str(tmp_path / "wh"))
    first = ingest(spark, src, wh.root, log=lambda m: None)
    tables = ("demo", "drug", "reac", "outc", "rpsr", "ther", "indi", "ingest_audit", "source_manifest")
    versions = {t: wh.version(spark, "bronze", t) for t in tables}
    before = sorted(tuple(r) for r in wh.read(spark, "bronze", "drug").drop("extra_fields").collect())

    again = ingest(spark, src, wh.root, log=lambda m: None)
    assert again.quarters_skipped == ["2020Q3"] and again.quarters_ingested == [] and len(again.audit) == 0
    assert {t: wh.version(spark, "bronze", t) for t in tables} == versions  # nothing written

    forced = ingest(spark, src, wh.root, force=True, log=lambda m: None)
    assert forced.quarters_ingested == ["2020Q3"]
    assert forced.audit[["source_file", "rows_loaded"]].values.tolist() == \
        first.audit[["source_file", "rows_loaded"]].values.tolist()
    after = sorted(tuple(r) for r in wh.read(spark, "bronze", "drug").drop("extra_fields").collect())
    assert after == before and len(after) == 10  # replaced, not duplicated
    assert wh.read(spark, "bronze", "ingest_audit").count() == 7
    assert wh.read(spark, "bronze", "source_manifest").count() == 7
