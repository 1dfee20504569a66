"""Tests of the synthetic-quarter generator (``faerslake.generate``).

The files are read back with plain Python and pandas, never Spark, and never
through the generator's own model: ``_recount`` below parses the bytes,
repairs the damaged lines, de-duplicates and builds the cohorts with its own
pandas code, and must land on exactly the numbers of ``_truth.json``.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from faerslake.config import DEFAULT_STUDY, load_study
from faerslake.errors import InputError
from faerslake.quarters import quarter_index
from faerslake.synthetic import DEFAULT_QUARTERS, generate, layout_for

SEED = 11
N = 700
TABLE_RE = re.compile(r"^(DEMO|DRUG|REAC|OUTC|RPSR|THER|INDI)(\d\d)Q([1-4])(_new)?\.txt$", re.I)
CANON = {"case": "caseid", "i_f_cod": "i_f_code", "gndr_cod": "sex", "lot_nbr": "lot_num",
         "outc_code": "outc_cod", "isr": "report_key", "primaryid": "report_key",
         "dsg_drug_seq": "drug_seq", "indi_drug_seq": "drug_seq"}


def quiet(_msg: str) -> None:
    pass


@pytest.fixture(scope="module")
def gen_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("gen") / "src"
    generate(d, N, seed=SEED, log=quiet)
    return d


@pytest.fixture(scope="module")
def truth(gen_dir) -> dict:
    return json.loads((gen_dir / "_truth.json").read_text())


# --------------------------------------------------------------------------- #
# an independent reader: bytes -> records, with the known repairs
# --------------------------------------------------------------------------- #
def _decode(b: bytes) -> str:
    try:
        return b.decode("cp1252")
    except UnicodeDecodeError:
        return b.decode("latin-1")


def _members(container: Path) -> dict[str, bytes]:
    """relative path -> bytes, for a quarter folder or zip."""
    if container.suffix == ".zip":
        with zipfile.ZipFile(container) as zf:
            return {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}
    return {p.relative_to(container).as_posix(): p.read_bytes() for p in container.rglob("*") if p.is_file()}


def _parse_table(data: bytes) -> tuple[list[str], list[list[str]], dict[str, int]]:
    """(canonical header, records, audit counts) of one $-separated table file."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = [ln for ln in re.split(rb"\r?\n", data) if ln != b""]
    header = [h.strip().lower() for h in _decode(lines[0]).split("$")]
    if header[-1] == "":
        header = header[:-1]
    h = len(header)
    header = [CANON.get(c, c) for c in header]
    body = [_decode(ln) for ln in lines[1:]]
    audit = dict(lines_read=len(body), rows_loaded=0, rows_repaired=0, lines_repaired=0, rows_quarantined=0)
    recs: list[list[str]] = []

    def fit(f: list[str]) -> list[str] | None:
        if len(f) == h:
            return f
        if len(f) == h + 1 and f[-1] == "":
            return f[:-1]
        return None

    i = 0
    while i < len(body):
        f = body[i].split("$")
        ok = fit(f)
        if ok is not None:
            recs.append(ok)
            audit["rows_loaded"] += 1
        elif len(f) < h and i + 1 < len(body) and body[i + 1].startswith("$") and fit(
                (body[i] + body[i + 1]).split("$")) is not None:
            recs.append(fit((body[i] + body[i + 1]).split("$")))
            audit["rows_loaded"] += 1
            audit["rows_repaired"] += 1
            audit["lines_repaired"] += 2
            i += 1
        elif len(f) == 2 * h + 1 and f[-1] == "":
            recs += [f[:h], f[h:2 * h]]
            audit["rows_loaded"] += 2
            audit["rows_repaired"] += 2
            audit["lines_repaired"] += 1
        else:
            audit["rows_quarantined"] += 1
        i += 1
    return header, recs, audit


def _read_source(root: Path) -> tuple[dict[str, pd.DataFrame], list[dict], set[int]]:
    """All quarters under root: per-table DataFrames, audit rows, deleted case ids."""
    frames: dict[str, list[pd.DataFrame]] = {}
    audits: list[dict] = []
    deleted: set[int] = set()
    for c in sorted(root.iterdir()):
        if c.name.startswith((".", "_")):
            continue
        m = re.search(r"(\d{4})q([1-4])", c.name, re.I)
        quarter = f"{m.group(1)}Q{m.group(2)}"
        for rel, data in sorted(_members(c).items()):
            name = rel.split("/")[-1]
            tm = TABLE_RE.match(name)
            if tm:
                table = tm.group(1).lower()
                header, recs, audit = _parse_table(data)
                df = pd.DataFrame(recs, columns=header, dtype=str)
                df["quarter"] = quarter
                frames.setdefault(table, []).append(df)
                audits.append(dict(quarter=quarter, table=table, **audit))
            elif "deleted" in rel.lower() and name.lower().endswith(".txt"):
                for ln in _decode(data).splitlines():
                    if ln.strip():
                        deleted.add(int(ln.strip()))
    return {t: pd.concat(v, ignore_index=True) for t, v in frames.items()}, audits, deleted


def _norm_drug(s: pd.Series) -> pd.Series:
    return (s.fillna("").str.upper().str.replace(r"\s+", " ", regex=True).str.strip()
            .str.replace(r"\.+$", "", regex=True).str.strip())


def _contains_any(s: pd.Series, tokens: list[str]) -> pd.Series:
    out = pd.Series(False, index=s.index)
    for t in tokens:
        out |= s.str.contains(t, regex=False)
    return out


def _kept_reports(t: dict[str, pd.DataFrame], deleted: set[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(every DEMO row with its flags, the kept report of each live case), spec §2.3's order."""
    demo = t["demo"].copy()
    demo["era"] = demo["quarter"].map(lambda q: "faers" if quarter_index(q) >= quarter_index("2012Q4") else "legacy")
    demo["key"] = demo["report_key"].astype("int64")
    demo["cid"] = demo["caseid"].astype("int64")
    if "caseversion" not in demo:  # legacy only
        demo["caseversion"] = None
    demo["ver"] = pd.to_numeric(demo["caseversion"], errors="coerce").fillna(-1).astype("int64")
    demo["era_rank"] = (demo["era"] == "faers").astype(int)
    demo["qidx"] = demo["quarter"].map(quarter_index)
    demo["is_deleted"] = demo["cid"].isin(deleted)
    live = demo[~demo["is_deleted"]].sort_values(
        ["era_rank", "ver", "fda_dt", "qidx", "key"], ascending=False)
    kept = live.drop_duplicates("cid", keep="first")
    demo["kept"] = demo.index.isin(kept.index)
    return demo, kept


def _recount(root: Path) -> dict:
    study = load_study(DEFAULT_STUDY)
    t, audits, deleted = _read_source(root)
    demo, kept = _kept_reports(t, deleted)
    per_q = {}
    for q, g in demo.groupby("quarter"):
        per_q[q] = dict(reports_read=len(g), removed_deleted=int(g["is_deleted"].sum()),
                        removed_older_versions=int((~g["is_deleted"] & ~g["kept"]).sum()),
                        reports_kept=int(g["kept"].sum()))
    all_ = {k: sum(v[k] for v in per_q.values()) for k in next(iter(per_q.values()))}
    # cohorts on the kept reports with their own quarter's child rows
    k = kept[["report_key", "quarter"]]
    drugs = t["drug"].merge(k, on=["report_key", "quarter"])
    if "prod_ai" not in drugs:
        drugs["prod_ai"] = ""
    drugs["dn"] = _norm_drug(drugs["drugname"])
    drugs["ai"] = _norm_drug(drugs["prod_ai"])
    ex = study.exposure
    drugs["expo"] = ((_contains_any(drugs["dn"], ex.tokens) | _contains_any(drugs["ai"], ex.tokens))
                     & ~_contains_any(drugs["dn"], ex.exclude_tokens) & ~_contains_any(drugs["ai"], ex.exclude_tokens))
    drugs["antidep"] = (_contains_any(drugs["dn"], study.exclusions.drug_tokens)
                        | _contains_any(drugs["ai"], study.exclusions.drug_tokens))
    indi = t["indi"].merge(k, on=["report_key", "quarter"])
    indi["pt"] = indi["indi_pt"].str.strip().str.upper()
    reac = t["reac"].merge(k, on=["report_key", "quarter"])
    reac["ptn"] = reac["pt"].str.strip().str.upper()
    rk = ["report_key", "quarter"]
    excluded = set(map(tuple, indi.loc[indi["pt"].isin(study.outcome_pts), rk].values)) | set(
        map(tuple, drugs.loc[drugs["antidep"], rk].values))
    events = set(map(tuple, reac.loc[reac["ptn"].isin(study.outcome_pts), rk].values))
    with_expo = set(map(tuple, drugs.loc[drugs["expo"], rk].values))
    di = drugs.merge(indi[rk + ["drug_seq", "pt"]], on=rk + ["drug_seq"])
    cohorts = {}
    for c in study.cohorts:
        hit = di[di["pt"].isin(c.indications)]
        exposed = set(map(tuple, hit.loc[hit["expo"], rk].values)) - excluded
        control = set(map(tuple, hit[rk].values)) - with_expo - excluded
        cohorts[c.name] = dict(exposed_reports=len(exposed), exposed_events=len(exposed & events),
                               control_reports=len(control), control_events=len(control & events))
    return {"cohorts": cohorts, "dedup": {"all": all_, **per_q}, "audits": audits, "deleted": deleted,
            "kept": len(kept)}


# --------------------------------------------------------------------------- #
# the truth is right: an independent recount from the written files
# --------------------------------------------------------------------------- #
def test_truth_matches_independent_recount_from_files(gen_dir, truth):
    got = _recount(gen_dir)
    assert got["cohorts"] == truth["cohorts"]
    assert got["dedup"] == truth["dedup"]
    want_audit = sorted((e["quarter"], e["table"], e["lines_read"], e["rows_loaded"], e["rows_repaired"],
                         e["lines_repaired"], e["rows_quarantined"]) for e in truth["ingest"])
    got_audit = sorted((a["quarter"], a["table"], a["lines_read"], a["rows_loaded"], a["rows_repaired"],
                        a["lines_repaired"], a["rows_quarantined"]) for a in got["audits"])
    assert got_audit == want_audit
    assert len(got["deleted"]) == truth["deleted_cases"]["distinct_caseids"]
    lists = truth["deleted_cases"]["lists"]
    assert [x["file"] for x in lists] == ["faers_ascii_2019Q1/Deleted/DELETE19Q1.txt"]
    raw = (gen_dir / lists[0]["file"]).read_bytes().decode().split("\r\n")[:-1]
    assert lists[0]["lines"] == len(raw)
    assert lists[0]["caseid_lines"] == sum(1 for x in raw if x.strip())
    assert lists[0]["distinct_caseids"] == len(got["deleted"])
    assert got["kept"] == truth["silver_rows"]["reports"]


def test_truth_has_a_planted_effect_and_every_cohort_populated(tmp_path):
    # the `make run` sample: 4000 cases, seed 7
    generate(tmp_path, 4000, seed=7, log=quiet)
    truth = json.loads((tmp_path / "_truth.json").read_text())
    c = truth["cohorts"]
    assert list(c) == truth["cohort_order"] == [x.name for x in load_study(DEFAULT_STUDY).cohorts]
    for name, v in c.items():
        assert v["exposed_reports"] >= 10 and v["control_reports"] >= 10, name
        assert 0 <= v["exposed_events"] <= v["exposed_reports"]
        assert 0 < v["control_events"] <= v["control_reports"]
    assert c["sialorrhea"]["exposed_events"] == 0
    exp = sum(v["exposed_events"] for v in c.values()) / sum(v["exposed_reports"] for v in c.values())
    ctl = sum(v["control_events"] for v in c.values()) / sum(v["control_reports"] for v in c.values())
    assert exp < ctl * 0.5


def test_truth_internal_consistency(truth):
    d = truth["dedup"]
    quarters = truth["generator"]["quarters"]
    assert quarters == DEFAULT_QUARTERS
    assert set(d) == {"all", *quarters}
    for scope, v in d.items():
        assert v["reports_read"] == v["removed_deleted"] + v["removed_older_versions"] + v["reports_kept"], scope
    for k in d["all"]:
        assert d["all"][k] == sum(d[q][k] for q in quarters)
    assert d["all"]["removed_deleted"] > 0 and d["all"]["removed_older_versions"] > 0
    assert d["all"]["reports_kept"] == truth["silver_rows"]["reports"]
    assert sum(truth["kept_by_era"].values()) == truth["silver_rows"]["reports"]
    assert len(truth["ingest"]) == 7 * len(quarters)
    for e in truth["ingest"]:
        assert e["lines_read"] == (e["rows_loaded"] - e["rows_repaired"]) + e["lines_repaired"] + e["rows_quarantined"]
    # DEMO rows loaded are the reports read
    for q in quarters:
        demo = [e for e in truth["ingest"] if e["quarter"] == q and e["table"] == "demo"]
        assert demo[0]["rows_loaded"] == d[q]["reports_read"]
    # the damage sits in the legacy files only, once of each kind per legacy quarter
    for e in truth["ingest"]:
        legacy = quarter_index(e["quarter"]) < quarter_index("2012Q4")
        if not legacy:
            assert e["rows_repaired"] == e["rows_quarantined"] == 0
        elif e["table"] == "demo":
            assert (e["rows_repaired"], e["lines_repaired"], e["rows_quarantined"]) == (1, 2, 1)
        elif e["table"] == "drug":
            assert (e["rows_repaired"], e["lines_repaired"], e["rows_quarantined"]) == (3, 3, 0)


# --------------------------------------------------------------------------- #
# FDA's layouts, era by era
# --------------------------------------------------------------------------- #
def _file(gen_dir: Path, quarter: str, table: str) -> bytes:
    lay = layout_for(quarter)
    return (gen_dir / lay.container / lay.data_dir / lay.files[table]).read_bytes()


def test_containers_and_file_names(gen_dir, truth):
    names = sorted(p.name for p in gen_dir.iterdir())
    assert names == sorted([".faerslake-generate", "_truth.json", "aers_ascii_2012q2", "aers_ascii_2012q3", "faers_ascii_2012q4",
                            "faers_ascii_2014q3", "faers_ascii_2019Q1"])
    assert (gen_dir / "aers_ascii_2012q2/ascii/DEMO12Q2.TXT").is_file()
    assert (gen_dir / "aers_ascii_2012q3/ascii/INDI12Q3.TXT").is_file()
    assert (gen_dir / "faers_ascii_2012q4/ascii/demo12q4.txt").is_file()
    assert (gen_dir / "faers_ascii_2014q3/ascii/DRUG14Q3.txt").is_file()
    assert (gen_dir / "faers_ascii_2019Q1/ASCII/REAC19Q1.txt").is_file()
    assert (gen_dir / "faers_ascii_2019Q1/Deleted/DELETE19Q1.txt").is_file()
    assert (gen_dir / "faers_ascii_2019Q1/Readme.pdf").read_bytes().startswith(b"%PDF")
    assert not list(gen_dir.glob("faers_ascii_2014q3/*eleted*"))
    # file names of other quarters
    assert layout_for("2018Q1").files["demo"] == "DEMO18Q1_new.txt"
    assert layout_for("2017Q4").eol == "\n" and layout_for("2017Q3").eol == "\r\n"
    assert layout_for("2020Q4").deleted_path == "deleted/20Q4DeletedCases.txt"
    assert layout_for("2021Q4").deleted_path == "Deleted/DELETE21Q4.txt"
    assert layout_for("2016Q2").data_dir == "Ascii"


def _header(data: bytes) -> str:
    return data.split(b"\r\n", 1)[0].decode("latin-1")


def test_legacy_layout(gen_dir):
    demo = _file(gen_dir, "2012Q2", "demo")
    assert _header(demo) == ("ISR$CASE$I_F_COD$FOLL_SEQ$IMAGE$EVENT_DT$MFR_DT$FDA_DT$REPT_COD$MFR_NUM$MFR_SNDR$AGE"
                             "$AGE_COD$GNDR_COD$E_SUB$WT$WT_COD$REPT_DT$OCCP_COD$DEATH_DT$TO_MFR$CONFID$REPORTER_COUNTRY")
    assert _header(_file(gen_dir, "2012Q2", "drug")) == (
        "ISR$DRUG_SEQ$ROLE_COD$DRUGNAME$VAL_VBM$ROUTE$DOSE_VBM$DECHAL$RECHAL$LOT_NUM$EXP_DT$NDA_NUM")
    assert _header(_file(gen_dir, "2012Q3", "indi")) == "ISR$DRUG_SEQ$INDI_PT"
    assert _header(_file(gen_dir, "2012Q3", "ther")) == "ISR$DRUG_SEQ$START_DT$END_DT$DUR$DUR_COD"
    assert "REPORTER_COUNTRY" not in [h for h, _ in layout_for("2005Q2").columns["demo"]]
    for t in ("demo", "drug", "reac", "outc", "rpsr", "ther", "indi"):
        data = _file(gen_dir, "2012Q3", t)
        assert data.endswith(b"\r\n") and b"\n" not in data.replace(b"\r\n", b"")
        lines = data.split(b"\r\n")[:-1]
        assert not lines[0].endswith(b"$")
        h = lines[0].count(b"$") + 1
        ok = [ln for ln in lines[1:] if ln.count(b"$") + 1 == h + 1 and ln.endswith(b"$")]
        # every line but the damaged ones (a broken record's two lines, a glued line, a '$' in a field)
        assert len(ok) == len(lines) - 1 - {"demo": 3, "drug": 3}.get(t, 0)
    # legacy DRUG_SEQ is globally unique across both legacy quarters
    seqs = []
    for q in ("2012Q2", "2012Q3"):
        _, recs, _ = _parse_table(_file(gen_dir, q, "drug"))
        seqs += [r[1] for r in recs]
    assert len(seqs) == len(set(seqs)) and all(len(s) == 10 for s in seqs)


def test_legacy_damage_is_present(gen_dir):
    for q in ("2012Q2", "2012Q3"):
        demo = _file(gen_dir, q, "demo").split(b"\r\n")
        h = demo[0].count(b"$") + 1
        assert sum(ln.count(b"$") + 1 == h + 2 for ln in demo[1:]) == 1  # literal '$' in MFR_NUM
        assert sum(ln.startswith(b"$") for ln in demo[1:]) == 1  # broken record's continuation
        drug = _file(gen_dir, q, "drug").split(b"\r\n")
        h = drug[0].count(b"$") + 1
        assert sum(ln.count(b"$") + 1 == 2 * h + 1 for ln in drug[1:]) == 1  # two records glued
        assert sum(ln.startswith(b"$") for ln in drug[1:]) == 1
        assert b"\x08" in _file(gen_dir, q, "drug")


def test_faers_2012q4_quirks(gen_dir):
    demo = _file(gen_dir, "2012Q4", "demo")
    assert _header(demo) == ("primaryid$caseid$caseversion$i_f_code$event_dt$mfr_dt$init_fda_dt$fda_dt$rept_cod"
                             "$mfr_num$mfr_sndr$age$age_cod$gndr_cod$e_sub$wt$wt_cod$ rept_dt$to_mfr$occp_cod"
                             "$reporter_country$occr_country$")
    drug = _file(gen_dir, "2012Q4", "drug")
    assert drug.startswith(b"\xef\xbb\xbfprimaryid$caseid$drug_seq$role_cod$drugname$val_vbm$")
    assert b"$lot_nbr$" in drug.split(b"\r\n")[0] and b"prod_ai" not in drug.split(b"\r\n")[0]
    assert _header(_file(gen_dir, "2012Q4", "outc")) == "primaryid$caseid$outc_code$"
    assert _header(_file(gen_dir, "2012Q4", "reac")) == "primaryid$caseid$pt$"
    assert not demo.startswith(b"\xef\xbb\xbf")
    for t in ("demo", "drug", "reac", "indi"):
        lines = _file(gen_dir, "2012Q4", t).split(b"\r\n")[:-1]
        h = lines[0].count(b"$")
        assert all(ln.endswith(b"$") and ln.count(b"$") == h for ln in lines)


def test_faers_version_b_columns_and_no_trailing_dollar_in_2014q3(gen_dir):
    demo = _file(gen_dir, "2014Q3", "demo")
    assert _header(demo) == ("primaryid$caseid$caseversion$i_f_code$event_dt$mfr_dt$init_fda_dt$fda_dt$rept_cod"
                             "$auth_num$mfr_num$mfr_sndr$lit_ref$age$age_cod$age_grp$sex$e_sub$wt$wt_cod$rept_dt"
                             "$to_mfr$occp_cod$reporter_country$occr_country")
    assert _header(_file(gen_dir, "2014Q3", "drug")) == (
        "primaryid$caseid$drug_seq$role_cod$drugname$prod_ai$val_vbm$route$dose_vbm$cum_dose_chr"
        "$cum_dose_unit$dechal$rechal$lot_num$exp_dt$nda_num$dose_amt$dose_unit$dose_form$dose_freq")
    assert _header(_file(gen_dir, "2014Q3", "reac")) == "primaryid$caseid$pt$drug_rec_act"
    assert _header(_file(gen_dir, "2014Q3", "ther")) == "primaryid$caseid$dsg_drug_seq$start_dt$end_dt$dur$dur_cod"
    assert _header(_file(gen_dir, "2014Q3", "indi")) == "primaryid$caseid$indi_drug_seq$indi_pt"
    lines = demo.split(b"\r\n")[:-1]
    assert all(ln.count(b"$") == 24 for ln in lines)
    # 2019Q1: trailing '$' on header and rows
    lines = _file(gen_dir, "2019Q1", "demo").split(b"\r\n")[:-1]
    assert all(ln.endswith(b"$") and ln.count(b"$") == 25 for ln in lines)
    # version A in 2013: gndr_cod, no prod_ai, no trailing '$', plain rept_dt
    a = layout_for("2013Q2")
    assert ("gndr_cod", "sex") in a.columns["demo"] and ("rept_dt", "rept_dt") in a.columns["demo"]
    assert not a.has_prod_ai and not a.trailing_row


def test_primaryid_is_caseid_and_version(gen_dir):
    for q in ("2012Q4", "2014Q3", "2019Q1"):
        header, recs, _ = _parse_table(_file(gen_dir, q, "demo"))
        i, c, v = header.index("report_key"), header.index("caseid"), header.index("caseversion")
        assert all(r[i] == r[c] + r[v] for r in recs)
    # version 10 exists (numeric ordering matters) and the same primaryid appears in two quarters
    demo = _recount_demo(gen_dir)
    assert (demo["caseversion"].astype(int) >= 10).any()
    faers = demo[demo["quarter"] != "2012Q2"]
    assert faers.duplicated("report_key").any()


def _recount_demo(gen_dir: Path) -> pd.DataFrame:
    t, _, _ = _read_source(gen_dir)
    d = t["demo"]
    return d[d["quarter"].isin(["2012Q4", "2014Q3", "2019Q1"])]


def test_text_noise_and_quirks_present(gen_dir):
    t, _, deleted = _read_source(gen_dir)
    drug_names = set(t["drug"]["drugname"])
    assert any(n.endswith(".") for n in drug_names)
    assert any("  " in n for n in drug_names)
    assert any(n != n.upper() for n in drug_names)
    assert '"VITAMINS" (NOS)' in drug_names
    raw = b"".join(_file(gen_dir, q, "drug") for q in DEFAULT_QUARTERS)
    assert b"\x92" in raw and b"\xc9" in raw
    prod_ai = set(t["drug"]["prod_ai"].dropna())
    assert any("\\" in p for p in prod_ai)
    assert any(p.startswith("BOTULINUM ANTITOXIN") for p in prod_ai) or "BOTULINUM ANTITOXIN" in drug_names
    pts = set(t["indi"]["indi_pt"]) | set(t["reac"]["pt"])
    assert "Migraine" in pts or any(p != p.upper() for p in pts)
    # legacy PTs are upper case; FAERS mostly mixed
    leg = t["reac"][t["reac"]["quarter"] == "2012Q2"]["pt"]
    assert (leg == leg.str.upper()).all()
    # deleted list: duplicates, a one-space line, a blank line, a 2004-era case id that is in the data
    raw_del = (gen_dir / "faers_ascii_2019Q1/Deleted/DELETE19Q1.txt").read_bytes().split(b"\r\n")
    assert b" " in raw_del and raw_del.count(b"") >= 2
    ids = [x for x in raw_del if x.strip()]
    assert len(ids) > len(set(ids))
    old = [c for c in deleted if c < 4_100_000 and c > 4_000_000]
    assert old and set(t["demo"]["caseid"].astype(int)) & set(old)


def test_deterministic_same_seed_same_bytes(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate(a, 150, seed=3, quarters=["2012Q3", "2012Q4", "2019Q1"], as_zip=True, log=quiet)
    generate(b, 150, seed=3, quarters=["2012Q3", "2012Q4", "2019Q1"], as_zip=True, log=quiet)
    generate(c, 150, seed=4, quarters=["2012Q3", "2012Q4", "2019Q1"], as_zip=True, log=quiet)

    def digest(d: Path) -> dict[str, str]:
        return {p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(d.rglob("*")) if p.is_file()}

    assert digest(a) == digest(b)
    assert digest(a) != digest(c)
    assert sorted(digest(a)) == [".faerslake-generate", "_truth.json", "aers_ascii_2012q3.zip", "faers_ascii_2012q4.zip",
                                 "faers_ascii_2019Q1.zip"]


def test_zip_layout_and_zip_recount(tmp_path):
    d = tmp_path / "z"
    generate(d, 200, seed=5, quarters=["2012Q3", "2014Q3", "2019Q1"], as_zip=True, log=quiet)
    truth = json.loads((d / "_truth.json").read_text())
    with zipfile.ZipFile(d / "faers_ascii_2019Q1.zip") as zf:
        assert zf.testzip() is None
        names = zf.namelist()
    assert "ASCII/" in names and "Deleted/DELETE19Q1.txt" in names and "ASCII/DEMO19Q1.txt" in names
    assert {"Readme.pdf", "FAQs.pdf", "ASCII/ASC_NTS.pdf"} <= set(names)
    with zipfile.ZipFile(d / "aers_ascii_2012q3.zip") as zf:
        assert "ascii/DRUG12Q3.TXT" in zf.namelist()
    assert any(e["file"] == "faers_ascii_2019Q1.zip!/ASCII/DEMO19Q1.txt" for e in truth["ingest"])
    got = _recount(d)
    assert got["cohorts"] == truth["cohorts"] and got["dedup"] == truth["dedup"]
    assert [p.name for p in d.iterdir() if p.name.startswith(".")] == [".faerslake-generate"]


def test_faers_only_quarters_without_deleted_lists(tmp_path):
    d = tmp_path / "f"
    generate(d, 120, seed=9, quarters=["2013Q1", "2013Q2"], log=quiet)
    truth = json.loads((d / "_truth.json").read_text())
    assert truth["dedup"]["all"]["removed_deleted"] == 0
    got = _recount(d)
    assert got["cohorts"] == truth["cohorts"] and got["dedup"] == truth["dedup"]


def test_too_few_reports_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="at least"):
        generate(tmp_path / "x", 10, log=quiet)


def test_cli_generate(tmp_path):
    from faerslake.cli import main

    assert main(["generate", "--dest", str(tmp_path / "cli"), "--reports", "100", "--quarters", "2012Q3:2012Q4"]) == 0
    assert (tmp_path / "cli" / "aers_ascii_2012q3" / "ascii" / "DEMO12Q3.TXT").is_file()
    assert json.loads((tmp_path / "cli" / "_truth.json").read_text())["generator"]["quarters"] == ["2012Q3", "2012Q4"]


def test_other_quarter_quirks_and_recount(tmp_path):
    # 2017Q4 has LF line ends, 2018Q1 a DEMO18Q1_new.txt, 2020/2021 other deleted-list names
    d = tmp_path / "o"
    generate(d, 300, seed=21, quarters=["2017Q4", "2018Q1", "2020Q4", "2021Q1"], log=quiet)
    truth = json.loads((d / "_truth.json").read_text())
    q4 = (d / "faers_ascii_2017q4/ascii/DEMO17Q4.txt").read_bytes()
    assert b"\r" not in q4 and q4.count(b"\n") == truth["ingest"][0]["lines_read"] + 1
    assert (d / "faers_ascii_2018q1/ASCII/DEMO18Q1_new.txt").is_file()
    assert (d / "faers_ascii_2020Q4/deleted/20Q4DeletedCases.txt").is_file()
    assert (d / "faers_ascii_2021Q1/DELETED/ADR21Q1DeletedCases.txt").is_file()
    got = _recount(d)
    assert got["cohorts"] == truth["cohorts"] and got["dedup"] == truth["dedup"]
    assert truth["dedup"]["all"]["removed_deleted"] > 0


def test_whole_archive_span_small(tmp_path):
    # every quarter FDA published, few cases: the open-file window and era hand-over hold
    from faerslake.quarters import quarter_range

    qs = quarter_range("2004Q1:2026Q2")
    d = tmp_path / "all"
    s = generate(d, 1500, seed=1, quarters=qs, log=quiet)
    assert len(s.containers) == len(qs) == 90
    truth = json.loads((d / "_truth.json").read_text())
    got = _recount(d)
    assert got["cohorts"] == truth["cohorts"] and got["dedup"] == truth["dedup"]
    # the 2004-era case sits in 2004Q1 and is deleted by 2019Q1's list
    assert truth["dedup"]["2004Q1"]["removed_deleted"] >= 1


def test_dedup_quirks_are_present_and_decided_by_the_spec_order(gen_dir):
    t, _, deleted = _read_source(gen_dir)
    d = t["demo"].copy()
    d["cid"] = d["caseid"].astype(int)
    d["key"] = d["report_key"].astype(int)
    d["ver"] = pd.to_numeric(d.get("caseversion"), errors="coerce")
    d["qidx"] = d["quarter"].map(quarter_index)
    legacy = d[d["ver"].isna()]
    # legacy: a case with two ISRs in one quarter where the lower ISR has the later FDA_DT
    pairs = legacy.merge(legacy, on=["cid", "quarter"])
    assert ((pairs["key_x"] < pairs["key_y"]) & (pairs["fda_dt_x"] > pairs["fda_dt_y"])).any()
    # ... and one where both share FDA_DT (the higher ISR decides)
    assert ((pairs["key_x"] < pairs["key_y"]) & (pairs["fda_dt_x"] == pairs["fda_dt_y"])).any()
    faers = d[d["ver"].notna()]
    pairs = faers.merge(faers, on="cid")
    # a later quarter holding an older version
    assert ((pairs["qidx_x"] < pairs["qidx_y"]) & (pairs["ver_x"] > pairs["ver_y"])).any()
    # version 9 and 10 of one case
    assert ((pairs["ver_x"] == 9) & (pairs["ver_y"] >= 10)).any()
    # a legacy case continued in FAERS
    assert set(legacy["cid"]) & set(faers["cid"])


def test_rerun_replaces_its_own_quarters_and_refuses_foreign_ones(tmp_path):
    d = tmp_path / "re"
    generate(d, 100, seed=1, quarters=["2012Q3", "2014Q3"], log=quiet)
    generate(d, 100, seed=1, quarters=["2012Q4"], as_zip=True, log=quiet)
    assert sorted(p.name for p in d.iterdir()) == [".faerslake-generate", "_truth.json", "faers_ascii_2012q4.zip"]
    foreign = tmp_path / "foreign"
    (foreign / "faers_ascii_2020Q1").mkdir(parents=True)
    with pytest.raises(InputError, match="not written by faerslake generate"):
        generate(foreign, 100, log=quiet)


# --------------------------------------------------------------------------- #
# planted screen signals (generate(signals=N))
# --------------------------------------------------------------------------- #
def _tree_digest(d: Path) -> str:
    """One sha256 over every file's relative path and sha256."""
    lines = "".join(f"{p.relative_to(d).as_posix()} {hashlib.sha256(p.read_bytes()).hexdigest()}\n"
                    for p in sorted(d.rglob("*")) if p.is_file())
    return hashlib.sha256(lines.encode()).hexdigest()


def test_signals_zero_writes_the_bytes_it_always_wrote(gen_dir, truth, tmp_path):
    # digests taken from the generator before `signals` existed (commit 2899c69)
    assert _tree_digest(gen_dir) == "321378638ca0f7d332ca9d03fb9a6626236e63ca19b63fb19d9eec888b1872d5"
    generate(tmp_path / "q", 300, seed=5, quarters=["2019Q1"], signals=0, log=quiet)
    assert _tree_digest(tmp_path / "q") == "3e594ed35e9b1143fd95f4adf13c8bfbd8a2eb52dd429b3c0f4d80da52bcf9d1"
    assert hashlib.sha256((tmp_path / "q" / "_truth.json").read_bytes()).hexdigest() == (
        "b17cbb060da002fbb2916d84f742b766b628db1bb0fc305a56efe3daef9bf47c")
    assert "screen" not in truth and "signals" not in truth["generator"]


def _screen_recount(root: Path) -> tuple[int, pd.DataFrame, pd.Series, pd.Series]:
    """From the files alone: N, distinct (report, drug, pt) of the screen set, n_drug and n_pt."""
    t, _, deleted = _read_source(root)
    _, kept = _kept_reports(t, deleted)
    rk = ["report_key", "quarter"]
    k = kept[rk]
    drugs = t["drug"].merge(k, on=rk)
    drugs["drug"] = _norm_drug(drugs["drugname"])
    drugs = drugs.loc[drugs["drug"] != "", rk + ["drug"]].drop_duplicates()
    reac = t["reac"].merge(k, on=rk)
    reac["pt"] = reac["pt"].str.strip().str.upper()
    reac = reac.loc[reac["pt"] != "", rk + ["pt"]].drop_duplicates()
    in_set = drugs[rk].drop_duplicates().merge(reac[rk].drop_duplicates(), on=rk)
    drugs, reac = drugs.merge(in_set, on=rk), reac.merge(in_set, on=rk)
    pairs = drugs.merge(reac, on=rk)
    return len(in_set), pairs, drugs["drug"].value_counts(), reac["pt"].value_counts()


@pytest.fixture(scope="module")
def sig_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("sig") / "src"
    generate(d, 1500, seed=13, quarters=["2019Q1"], signals=20, log=quiet)
    return d


def test_signals_are_distinct_pairs_of_the_layer_vocabulary(sig_dir):
    truth = json.loads((sig_dir / "_truth.json").read_text())
    assert truth["generator"]["signals"] == 20
    sc = truth["screen"]
    sig = sc["signals"]
    assert len(sig) == 20 and len({(s["drug"], s["pt"]) for s in sig}) == 20
    assert len({s["pt"] for s in sig}) == 20  # one partner drug per signal PT
    assert all(3.0 <= s["rr"] <= 10.0 for s in sig) and len({s["rr"] for s in sig}) > 10
    assert {s["drug"] for s in sig} <= set(sc["drugs"]) and {s["pt"] for s in sig} <= set(sc["pts"])
    assert sc["null_drugs"] == len(set(sc["drugs"]) - {s["drug"] for s in sig}) == 4
    assert sc["null_pts"] == len(set(sc["pts"]) - {s["pt"] for s in sig}) == 5
    # none of the layer's terms is one of the study's, nor any other term the generator writes
    study = load_study(DEFAULT_STUDY)
    study_pts = set(study.outcome_pts) | {p for c in study.cohorts for p in c.indications}
    assert not set(sc["pts"]) & study_pts
    for s in sig:
        assert s["drug"] == s["drug"].upper().strip() and s["a"] >= 5, s


def test_signal_truth_equals_an_independent_count_from_the_files(sig_dir, tmp_path):
    truth = json.loads((sig_dir / "_truth.json").read_text())
    sc = truth["screen"]
    n, pairs, n_drug, n_pt = _screen_recount(sig_dir)
    assert sc["reports"] == n == truth["silver_rows"]["reports"]
    a = pairs.groupby(["drug", "pt"]).size()
    for s in sc["signals"]:
        assert (s["a"], s["n_drug"], s["n_pt"]) == (a[(s["drug"], s["pt"])], n_drug[s["drug"]], n_pt[s["pt"]]), s
    # the layer leaves the study's truth as it was: same cohorts and dedup as without it,
    # and the recount from the files still lands on them
    generate(tmp_path / "plain", 1500, seed=13, quarters=["2019Q1"], log=quiet)
    plain = json.loads((tmp_path / "plain" / "_truth.json").read_text())
    got = _recount(sig_dir)
    assert got["cohorts"] == truth["cohorts"] == plain["cohorts"]
    assert got["dedup"] == truth["dedup"] == plain["dedup"]
    # the added rows are counted: silver drugs and reactions of the kept reports, from the files
    t, _, deleted = _read_source(sig_dir)
    _, kept = _kept_reports(t, deleted)
    rk = ["report_key", "quarter"]
    assert truth["silver_rows"]["drugs"] == len(t["drug"].merge(kept[rk], on=rk)) > plain["silver_rows"]["drugs"]
    assert truth["silver_rows"]["reactions"] == len(t["reac"].merge(kept[rk], on=rk)) > (
        plain["silver_rows"]["reactions"])
    assert {k: v for k, v in truth["silver_rows"].items() if k not in ("drugs", "reactions")} == {
        k: v for k, v in plain["silver_rows"].items() if k not in ("drugs", "reactions")}


def test_signals_over_both_eras_keep_the_study_truth_and_legacy_drug_seq(tmp_path):
    d = tmp_path / "s"
    generate(d, 400, seed=2, signals=8, log=quiet)
    truth = json.loads((d / "_truth.json").read_text())
    got = _recount(d)
    assert got["cohorts"] == truth["cohorts"] and got["dedup"] == truth["dedup"]
    _, pairs, n_drug, n_pt = _screen_recount(d)
    a = pairs.groupby(["drug", "pt"]).size()
    assert [s["a"] for s in truth["screen"]["signals"]] == [int(a.get((s["drug"], s["pt"]), 0))
                                                           for s in truth["screen"]["signals"]]
    seqs = []
    for q in ("2012Q2", "2012Q3"):
        _, recs, _ = _parse_table(_file(d, q, "drug"))
        seqs += [r[1] for r in recs]
    assert len(seqs) == len(set(seqs))
    # same arguments, same bytes; the layer changes them
    generate(tmp_path / "s2", 400, seed=2, signals=8, log=quiet)
    generate(tmp_path / "s0", 400, seed=2, log=quiet)
    assert _tree_digest(d) == _tree_digest(tmp_path / "s2") != _tree_digest(tmp_path / "s0")


def test_observed_reporting_ratios_are_the_planted_ones(tmp_path):
    d = tmp_path / "big"
    generate(d, 8000, seed=17, quarters=["2019Q1"], signals=20, log=quiet)
    sc = json.loads((d / "_truth.json").read_text())["screen"]
    n, pairs, n_drug, n_pt = _screen_recount(d)
    a = pairs.groupby(["drug", "pt"]).size()

    def ratio(x: str, y: str) -> tuple[float, float]:
        """(a, the a expected from the PT's rate without the drug, at RR 1)."""
        axy = int(a.get((x, y), 0))
        return axy, n_drug[x] * (n_pt[y] - axy) / (n - n_drug[x])

    planted = [(ratio(s["drug"], s["pt"]), s["rr"]) for s in sc["signals"]]
    pooled = sum(o for (o, _), _ in planted) / sum(e * rr for (_, e), rr in planted)
    assert 0.7 < pooled < 1.3
    for (o, e), rr in planted:
        assert rr / 1.5 < o / e < rr * 1.5
    # every other pair of a planted drug with a layer PT is null
    sig = {(s["drug"], s["pt"]) for s in sc["signals"]}
    null = [ratio(x, y) for x in {s["drug"] for s in sc["signals"]} for y in sc["pts"] if (x, y) not in sig]
    assert len(null) == 7 * 25 - 20
    assert 0.85 < sum(o for o, _ in null) / sum(e for _, e in null) < 1.15


def test_too_many_or_negative_signals_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="at most"):
        generate(tmp_path / "x", 100, signals=500, log=quiet)
    with pytest.raises(InputError, match="negative"):
        generate(tmp_path / "y", 100, signals=-1, log=quiet)


def test_cli_generate_signals(tmp_path):
    from faerslake.cli import main

    assert main(["generate", "--dest", str(tmp_path / "cli"), "--reports", "100", "--quarters", "2019Q1",
                 "--signals", "5"]) == 0
    truth = json.loads((tmp_path / "cli" / "_truth.json").read_text())
    assert len(truth["screen"]["signals"]) == 5 and truth["generator"]["signals"] == 5
