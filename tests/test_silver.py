"""Silver layer (faerslake.silver, faerslake.normalise): study-spec §1 and §2.

Inputs are built in the exact bronze shape of docs/architecture.md: quarter,
era, source_file, line_number, report_key, the canonical columns (all STRING)
and extra_fields MAP<STRING,STRING>. Every expected number is worked out by
hand in the comments next to it.
"""

from __future__ import annotations

import datetime as dt

import pytest
from faerslake import silver
from faerslake.normalise import (
    age_years,
    country_iso2,
    date_text,
    norm_drug,
    norm_pt,
    plausible_date,
    whole_number,
)
from faerslake.quarters import era_of
from faerslake.tables import Warehouse
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

# --------------------------------------------------------------------------- #
# bronze-shaped inputs
# --------------------------------------------------------------------------- #
CANON = {
    "demo": "primaryid isr caseid caseversion i_f_code foll_seq image event_dt mfr_dt init_fda_dt "
    "fda_dt rept_cod auth_num mfr_num mfr_sndr lit_ref age age_cod age_grp sex e_sub wt wt_cod "
    "rept_dt to_mfr occp_cod reporter_country occr_country death_dt confid".split(),
    "drug": "primaryid isr caseid drug_seq role_cod drugname prod_ai val_vbm route dose_vbm "
    "cum_dose_chr cum_dose_unit dechal rechal lot_num exp_dt nda_num dose_amt dose_unit dose_form "
    "dose_freq".split(),
    "reac": "primaryid isr caseid pt drug_rec_act".split(),
    "outc": "primaryid isr caseid outc_cod".split(),
    "rpsr": "primaryid isr caseid rpsr_cod".split(),
    "ther": "primaryid isr caseid dsg_drug_seq start_dt end_dt dur dur_cod".split(),
    "indi": "primaryid isr caseid indi_drug_seq indi_pt".split(),
}
S = T.StringType()


def bronze_schema(table: str) -> T.StructType:
    return T.StructType(
        [
            T.StructField("quarter", S),
            T.StructField("era", S),
            T.StructField("source_file", S),
            T.StructField("line_number", T.LongType()),
            T.StructField("report_key", S),
        ]
        + [T.StructField(c, S) for c in CANON[table]]
        + [T.StructField("extra_fields", T.MapType(S, S))]
    )


def bronze(spark: SparkSession, table: str, rows: list[dict]) -> DataFrame:
    """rows: dicts with ``quarter``, ``key`` and canonical columns; the key is
    copied to primaryid (FAERS) or isr (legacy), as in FDA's files."""
    out = []
    for i, r in enumerate(rows):
        q = r["quarter"]
        vals = dict(r)
        vals.setdefault("primaryid" if era_of(q) == "faers" else "isr", r["key"])
        out.append(
            [q, era_of(q), r.get("source_file", f"{table.upper()}{q}.txt"),
             r.get("line_number", i + 2), r["key"]]
            + [vals.get(c) for c in CANON[table]]
            + [{}]
        )
    return spark.createDataFrame(out, bronze_schema(table))


def demo(quarter: str, key: str, caseid: str, version: str | None = None,
         fda_dt: str = "20150101", **kw) -> dict:
    return {"quarter": quarter, "key": key, "caseid": caseid, "caseversion": version,
            "fda_dt": fda_dt, **kw}


def deleted(spark: SparkSession, rows: list[tuple[str, str]]) -> DataFrame:
    """(quarter, caseid as written) -> bronze deleted_cases."""
    sch = T.StructType([
        T.StructField("caseid", S), T.StructField("quarter", S),
        T.StructField("source_file", S), T.StructField("line_number", T.LongType()),
    ])
    return spark.createDataFrame([(c, q, f"DELETE{q}.txt", i + 1) for i, (q, c) in enumerate(rows)], sch)


def no_deletions(spark: SparkSession) -> DataFrame:
    return deleted(spark, [])


def statuses(df: DataFrame) -> dict[tuple[int | None, str], str]:
    return {(r.report_key, r.quarter): r.status for r in df.select("report_key", "quarter", "status").collect()}


def kept(df: DataFrame) -> set[tuple[int, str]]:
    return {(r.report_key, r.quarter) for r in df.select("report_key", "quarter").collect()}


# --------------------------------------------------------------------------- #
# normalisation (spec §1)
# --------------------------------------------------------------------------- #
def test_norm_drug_and_pt_edge_cases(spark):
    cases = [
        ("PREDNISONE.", "PREDNISONE"),
        ("  botox   cosmetic ..", "BOTOX COSMETIC"),
        ("BOTULINUM  TOXIN\tTYPE A", "BOTULINUM TOXIN TYPE A"),
        ("ona\u00a0botulinumtoxinA .", "ONA BOTULINUMTOXINA"),
        ("A.B.C.", "A.B.C"),
        ("ACETAMINOPHEN\\HYDROCODONE BITARTRATE", "ACETAMINOPHEN\\HYDROCODONE BITARTRATE"),
        ("...", None),
        ("   ", None),
        (None, None),
    ]
    df = spark.createDataFrame([(i, c[0]) for i, c in enumerate(cases)], "i INT, s STRING")
    got = dict(df.select("i", norm_drug("s").alias("n")).collect())
    assert [got[i] for i in range(len(cases))] == [c[1] for c in cases]

    pts = [(" Graft delamination ", "GRAFT DELAMINATION"), ("GRAFT DELAMINATION", "GRAFT DELAMINATION"),
           ("depression", "DEPRESSION"), ("Major  depression", "MAJOR  DEPRESSION"), ("", None)]
    df = spark.createDataFrame([(i, c[0]) for i, c in enumerate(pts)], "i INT, s STRING")
    got = dict(df.select("i", norm_pt("s").alias("n")).collect())
    assert [got[i] for i in range(len(pts))] == [c[1] for c in pts]


def test_numbers_dates_ages_countries(spark):
    rows = [
        # number    date          age      age_cod country
        ("61.0",    "20141226.0", "61.0",  "YR",  "US"),
        ("61",      "20141226",   "732",   "MON", "UNITED STATES"),
        ("0061.00", "201412",     "6",     "DEC", "COUNTRY NOT SPECIFIED"),
        ("6.5",     "19000101",   "26",    "WK",  " korea, republic of "),
        ("-3",      "00010101",   "365.25", "DY", "EU"),
        ("12a",     "20141332",   "abc",   "YR",  "XX"),
        ("",        "",           "130",   "YR",  ""),
        ("9" * 19,  "20990101",   "5",     "",    None),
        (" 42 ",    "20000229",   "-1",    "YR",  "Cote d'Ivoire"),
        ("10",      "2014",       "8766",  "HR",  "UNITED KINGDOM"),
    ]
    df = spark.createDataFrame([(i, *r) for i, r in enumerate(rows)],
                               "i INT, n STRING, d STRING, age STRING, cod STRING, c STRING")
    out = {
        r.i: r
        for r in df.select(
            "i",
            whole_number("n").alias("n"),
            date_text("d").alias("dt"),
            plausible_date(date_text("d"), F.lit(dt.date(2025, 12, 31))).alias("date"),
            age_years("age", "cod").alias("age"),
            country_iso2("c").alias("c"),
        ).collect()
    }
    assert [out[i].n for i in range(10)] == [61, 61, 61, None, None, None, None, None, 42, 10]
    assert [out[i].dt for i in range(10)] == [
        "20141226", "20141226", "201412", "19000101", "00010101", "20141332", None,
        "20990101", "20000229", "2014"]
    assert [out[i].date for i in range(10)] == [
        dt.date(2014, 12, 26), dt.date(2014, 12, 26), None, None, None, None, None,
        None, dt.date(2000, 2, 29), None]
    ages = [out[i].age for i in range(10)]
    assert ages[0] == 61.0 and ages[1] == 61.0 and ages[2] == 60.0
    assert ages[3] == pytest.approx(26 * 7 / 365.25) and ages[4] == pytest.approx(1.0)
    assert ages[5] is None and ages[6] is None and ages[7] is None and ages[8] is None
    assert ages[9] == pytest.approx(1.0)
    assert [out[i].c for i in range(10)] == ["US", "US", None, "KR", "EU", None, None, None, "CI", "GB"]


# --------------------------------------------------------------------------- #
# de-duplication (spec §2), every tie-break
# --------------------------------------------------------------------------- #
def test_version_10_beats_9_even_from_an_older_quarter(spark):
    d = bronze(spark, "demo", [
        # version 9 is later in time, later fda_dt and higher key; version 10 still wins
        demo("2015Q1", "1009", "100", "9", fda_dt="20150301"),
        demo("2014Q4", "10010", "100", "10", fda_dt="20141201"),
        demo("2014Q3", "1008", "100", "8", fda_dt="20140901"),
    ])
    s = silver.classify_reports(d, no_deletions(spark))
    assert statuses(s) == {(10010, "2014Q4"): "kept", (1009, "2015Q1"): "older_version",
                           (1008, "2014Q3"): "older_version"}
    r = silver.deduplicate(d, no_deletions(spark)).collect()
    assert [(x.report_key, x.caseid, x.caseversion) for x in r] == [(10010, 100, 10)]


def test_legacy_case_continued_in_faers_faers_wins_with_older_fda_dt(spark):
    d = bronze(spark, "demo", [
        demo("2012Q3", "8800000", "300", None, fda_dt="20120915"),   # legacy, newer fda_dt, bigger key
        demo("2012Q4", "3001", "300", "1", fda_dt="20120101"),       # FAERS wins anyway
        demo("2011Q1", "7000001", "310", None, fda_dt="20110105"),   # legacy only: fda_dt decides
        demo("2011Q2", "7000002", "310", None, fda_dt="20110104"),
    ])
    s = silver.classify_reports(d, no_deletions(spark))
    assert statuses(s) == {(3001, "2012Q4"): "kept", (8800000, "2012Q3"): "older_version",
                           (7000001, "2011Q1"): "kept", (7000002, "2011Q2"): "older_version"}
    legacy = s.where("report_key = 7000001").first()
    assert legacy.caseversion is None and legacy.era == "legacy"


def test_equal_version_resolved_by_fda_dt_then_quarter_then_numeric_key(spark):
    d = bronze(spark, "demo", [
        # case 400: same version, fda_dt decides against a later quarter and bigger key
        demo("2016Q1", "40021", "400", "2", fda_dt="20160110"),
        demo("2016Q2", "40022", "400", "2", fda_dt="20160105"),
        # case 410: same version and fda_dt: the later quarter wins against a bigger key
        demo("2016Q1", "41029", "410", "2", fda_dt="20160110"),
        demo("2016Q2", "41021", "410", "2", fda_dt="20160110"),
        # case 420: same version, fda_dt, quarter: the key as a number (1000 > 999)
        demo("2016Q1", "999", "420", "2", fda_dt="20160110"),
        demo("2016Q1", "1000", "420", "2", fda_dt="20160110"),
        # case 430: 2016Q4 is later than 2016Q3 and than 2015Q4 (quarters in time order)
        demo("2015Q4", "43001", "430", "1"),
        demo("2016Q4", "43002", "430", "1"),
        demo("2016Q3", "43003", "430", "1"),
        # caseid "61.0" (pandas re-save) is case 61; version "3.0" is 3 > 2
        demo("2025Q4", "612", "61.0", "2.0", fda_dt="20251201"),
        demo("2025Q3", "613", "61", "3.0", fda_dt="20250801"),
    ])
    s = silver.classify_reports(d, no_deletions(spark))
    assert {k for k, v in statuses(s).items() if v == "kept"} == {
        (40021, "2016Q1"), (41021, "2016Q2"), (1000, "2016Q1"), (43002, "2016Q4"), (613, "2025Q3")}
    assert s.where("status = 'older_version'").count() == 6
    reason = s.where("report_key = 999").first().reason
    assert reason == "case 420 is kept as report 1000 of 2016Q1"


def test_same_primaryid_in_two_quarters_children_from_kept_quarter_only(spark):
    d = bronze(spark, "demo", [
        demo("2012Q3", "5001", "500", None, fda_dt="20120901"),  # a legacy report beside them
        demo("2013Q1", "50011", "5001", "1", fda_dt="20121220"),
        demo("2013Q2", "50011", "5001", "1", fda_dt="20121220"),
    ])
    drugs = bronze(spark, "drug", [
        {"quarter": "2013Q1", "key": "50011", "drug_seq": "1", "drugname": "OLD QUARTER DRUG"},
        {"quarter": "2013Q2", "key": "50011", "drug_seq": "1", "drugname": "Botox."},
        {"quarter": "2013Q2", "key": "50011", "drug_seq": "2.0", "drugname": "  aspirin  "},
        {"quarter": "2013Q2", "key": "77777", "drug_seq": "1", "drugname": "NO DEMO ROW"},
        {"quarter": "2012Q3", "key": "5001", "drug_seq": "12345678901", "drugname": "LEGACY DRUG"},
    ])
    reports = silver.deduplicate(d, no_deletions(spark))
    assert kept(reports) == {(50011, "2013Q2"), (5001, "2012Q3")}
    got = sorted(
        (r.report_key, r.quarter, r.drug_seq, r.drugname, r.drugname_norm)
        for r in silver.silver_child("drugs", drugs, reports).collect()
    )
    assert got == [
        (5001, "2012Q3", 12345678901, "LEGACY DRUG", "LEGACY DRUG"),
        (50011, "2013Q2", 1, "Botox.", "BOTOX"),
        (50011, "2013Q2", 2, "aspirin", "ASPIRIN"),
    ]


def test_older_version_with_other_drugs_silver_has_latest_drugs_only(spark):
    d = bronze(spark, "demo", [
        demo("2015Q1", "8001", "800", "1"),
        demo("2015Q3", "8002", "800", "2", fda_dt="20150801"),
    ])
    drugs = bronze(spark, "drug", [
        {"quarter": "2015Q1", "key": "8001", "drug_seq": "1", "drugname": "DRUG OF VERSION 1"},
        {"quarter": "2015Q1", "key": "8001", "drug_seq": "2", "drugname": "BOTOX"},
        {"quarter": "2015Q3", "key": "8002", "drug_seq": "1", "drugname": "DRUG OF VERSION 2"},
    ])
    reac = bronze(spark, "reac", [
        {"quarter": "2015Q1", "key": "8001", "pt": "Depression"},
        {"quarter": "2015Q3", "key": "8002", "pt": "Headache "},
        {"quarter": "2015Q3", "key": "8002", "pt": "Headache "},   # exact duplicate: written once
        {"quarter": "2015Q3", "key": "8002", "pt": "HEADACHE"},    # not identical: kept
    ])
    reports = silver.deduplicate(d, no_deletions(spark))
    assert [r.drugname for r in silver.silver_child("drugs", drugs, reports).collect()] == ["DRUG OF VERSION 2"]
    got = sorted((r.report_key, r.pt, r.pt_norm) for r in silver.silver_child("reactions", reac, reports).collect())
    assert got == [(8002, "HEADACHE", "HEADACHE"), (8002, "Headache", "HEADACHE")]


def test_deleted_cases_from_a_later_list_including_a_legacy_case(spark):
    d = bronze(spark, "demo", [
        demo("2015Q1", "6001", "600", "1"),
        demo("2016Q1", "6002", "600", "2"),
        demo("2005Q1", "7100001", "710", None),          # legacy-era case
        demo("2016Q1", "6101", "610", "1"),              # not deleted
    ])
    dels = deleted(spark, [("2019Q1", "600"), ("2019Q1", " "), ("2020Q4", "600"), ("2020Q4", "710.0"),
                           ("2020Q4", "999999")])
    s = silver.classify_reports(d, dels)
    assert statuses(s) == {(6001, "2015Q1"): "deleted", (6002, "2016Q1"): "deleted",
                           (7100001, "2005Q1"): "deleted", (6101, "2016Q1"): "kept"}
    assert s.where("report_key = 7100001").first().reason == "caseid 710 is on a deleted-cases list"


def test_unusable_demo_rows_are_rejected_with_a_reason(spark):
    d = bronze(spark, "demo", [
        demo("2015Q1", "9001", "ABC", "1"),          # caseid not a number
        demo("2015Q1", "90X2", "902", "1"),          # report key not a number
        demo("2015Q1", "9003", "903", "1"),          # key claimed by two cases in one quarter
        demo("2015Q1", "9003", "904", "1"),
        demo("2015Q2", "9003", "903", "1"),          # same key in another quarter: fine
        demo("2015Q1", "9005", "905", "1", line_number=10),   # the same row twice: one kept
        demo("2015Q1", "9005", "905", "1", line_number=11),
    ])
    s = silver.classify_reports(d, no_deletions(spark))
    got = sorted((r.quarter, r.report_key_text, r.line_number, r.status, r.reason or "")
                 for r in s.collect())
    assert got == [
        ("2015Q1", "9001", 2, "rejected", "caseid 'ABC' is not a whole number"),
        ("2015Q1", "9003", 4, "rejected", "report key 9003 occurs in 2015Q1 with different caseids"),
        ("2015Q1", "9003", 5, "rejected", "report key 9003 occurs in 2015Q1 with different caseids"),
        ("2015Q1", "9005", 10, "older_version", "case 905 is kept as report 9005 of 2015Q1"),
        ("2015Q1", "9005", 11, "kept", ""),
        ("2015Q1", "90X2", 3, "rejected", "report key '90X2' is not a whole number"),
        ("2015Q2", "9003", 6, "kept", ""),
    ]


def test_strict_pass_merges_look_alike_reports_of_different_cases(spark):
    base = {"event_dt": "20150301", "sex": "F", "fda_dt": "20150401"}
    d = bronze(spark, "demo", [
        # 9100 and 9110 agree once normalised: age 61 YR = 732 MON, US = UNITED STATES
        demo("2015Q2", "91001", "9100", "1", age="61", age_cod="YR", reporter_country="US", **base),
        demo("2015Q3", "91101", "9110", "1", age="732", age_cod="MON", reporter_country="UNITED STATES",
             **base),
        # 9120 differs in one PT; 9130 and 9140 lack an age: never merged
        demo("2015Q3", "91201", "9120", "1", age="61", age_cod="YR", reporter_country="US", **base),
        demo("2015Q3", "91301", "9130", "1", reporter_country="US", **base),
        demo("2015Q3", "91401", "9140", "1", reporter_country="US", **base),
    ])
    drug_rows, reac_rows = [], []
    for q, k in [("2015Q2", "91001"), ("2015Q3", "91101"), ("2015Q3", "91201"), ("2015Q3", "91301"),
                 ("2015Q3", "91401")]:
        drug_rows += [{"quarter": q, "key": k, "drug_seq": "1", "drugname": "BOTOX"},
                      {"quarter": q, "key": k, "drug_seq": "2", "drugname": "aspirin."}]
        reac_rows += [{"quarter": q, "key": k, "pt": "Depression"},
                      {"quarter": q, "key": k, "pt": "NAUSEA" if k != "91201" else "VOMITING"}]
    # order and case of the sets do not matter
    drug_rows[2], drug_rows[3] = ({**drug_rows[3], "drugname": "Aspirin"}, {**drug_rows[2], "drugname": " botox"})
    drugs, reac = bronze(spark, "drug", drug_rows), bronze(spark, "reac", reac_rows)
    s = silver.classify_reports(d, no_deletions(spark))
    assert set(statuses(s).values()) == {"kept"}
    strict = silver.mark_strict_duplicates(s, drugs, reac)
    assert statuses(strict) == {(91001, "2015Q2"): "strict_duplicate", (91101, "2015Q3"): "kept",
                                (91201, "2015Q3"): "kept", (91301, "2015Q3"): "kept",
                                (91401, "2015Q3"): "kept"}
    assert strict.where("report_key = 91001").first().reason == (
        "same event date, age, sex, country, drugs and PTs as report 91101 of 2015Q3")


# --------------------------------------------------------------------------- #
# the build job on a Delta warehouse: tables, summary, reconciliation, skip
# --------------------------------------------------------------------------- #
def test_summarise_orders_quarters_in_time_and_reconciles():
    counts = [("2013Q1", "kept", 3), ("2012Q4", "kept", 1), ("2012Q4", "deleted", 2),
              ("2004Q1", "older_version", 4), ("2013Q1", "rejected", 5), ("2013Q1", "strict_duplicate", 1)]
    s = silver.summarise(counts)
    assert list(s.columns) == silver.SUMMARY_COLUMNS
    assert s.values.tolist() == [
        ["all", 11, 2, 4, 1, 4, 5],
        ["2004Q1", 4, 0, 4, 0, 0, 0],
        ["2012Q4", 3, 2, 0, 0, 1, 0],
        ["2013Q1", 4, 0, 0, 1, 3, 5],
    ]


def _write_bronze(spark, wh: Warehouse, tables: dict[str, DataFrame]) -> None:
    for name, df in tables.items():
        wh.write(df, "bronze", name, partition_by=["quarter"])


@pytest.fixture(scope="module")
def built(spark, tmp_path_factory, seal_bronze):
    """A small warehouse of both eras, built once (strict off) for the tests below."""
    root = str(tmp_path_factory.mktemp("silver-wh"))
    wh = Warehouse(root)
    d = bronze(spark, "demo", [
        demo("2012Q3", "7000001", "100", None, fda_dt="20120801", reporter_country="UNITED STATES",
             age="30", age_cod="YR", sex="F", event_dt="20120701"),          # legacy v of case 100
        demo("2012Q3", "7000002", "110", None, fda_dt="20120802"),           # deleted later
        demo("2012Q4", "1001", "100", "1", fda_dt="20121001", reporter_country="US",
             age="30.0", age_cod="YR", sex="F", event_dt="20120701.0"),      # FAERS v1 of case 100
        demo("2012Q4", "1201", "120", "1"),
        demo("2013Q1", "1202", "120", "2"),                                  # supersedes 1201
        demo("2013Q1", "1301", "130", "1"),
        demo("2013Q1", "13X1", "131", "1"),                                  # rejected
    ])
    drug = bronze(spark, "drug", [
        {"quarter": "2012Q3", "key": "7000001", "drug_seq": "900001", "drugname": "OLD"},
        {"quarter": "2012Q4", "key": "1001", "drug_seq": "1", "drugname": "BOTOX.", "prod_ai": "ONABOTULINUMTOXINA"},
        {"quarter": "2012Q4", "key": "1001", "drug_seq": "1", "drugname": "BOTOX.", "prod_ai": "ONABOTULINUMTOXINA"},
        {"quarter": "2013Q1", "key": "1202", "drug_seq": "1", "drugname": "SERTRALINE"},
        {"quarter": "2013Q1", "key": "1301", "drug_seq": "1", "drugname": "ASPIRIN"},
        {"quarter": "2013Q1", "key": "4242", "drug_seq": "1", "drugname": "ORPHAN"},
    ])
    indi = bronze(spark, "indi", [
        {"quarter": "2012Q4", "key": "1001", "indi_drug_seq": "1", "indi_pt": "Skin wrinkling "},
        {"quarter": "2012Q3", "key": "7000001", "indi_drug_seq": "900001", "indi_pt": "X"},
    ])
    reac = bronze(spark, "reac", [
        {"quarter": "2012Q4", "key": "1001", "pt": "depression"},
        {"quarter": "2013Q1", "key": "1301", "pt": "Nausea"},
    ])
    outc = bronze(spark, "outc", [{"quarter": "2012Q4", "key": "1001", "outc_cod": "OT"}])
    ther = bronze(spark, "ther", [{"quarter": "2012Q4", "key": "1001", "dsg_drug_seq": "1",
                                   "start_dt": "20120601.0", "dur": "3", "dur_cod": "mon"}])
    _write_bronze(spark, wh, {"demo": d, "drug": drug, "indi": indi, "reac": reac, "outc": outc,
                              "ther": ther, "deleted_cases": deleted(spark, [("2019Q1", "110")])})
    seal_bronze(spark, wh)
    # no bronze rpsr table at all: silver report_sources is written empty
    lines: list[str] = []
    result = silver.build(spark, root, strict_dedup=False, log=lines.append)
    return root, wh, result, lines


def test_build_writes_the_contract_tables(spark, built):
    root, wh, result, lines = built
    reports = wh.read(spark, "silver", "reports")
    assert reports.columns == silver.REPORT_COLUMNS
    assert dict(reports.dtypes)["report_key"] == "bigint" and dict(reports.dtypes)["caseversion"] == "int"
    assert dict(reports.dtypes)["event_date"] == "date" and dict(reports.dtypes)["age_years"] == "double"
    got = sorted((r.report_key, r.quarter, r.caseid, r.era) for r in reports.collect())
    assert got == [(1001, "2012Q4", 100, "faers"), (1202, "2013Q1", 120, "faers"),
                   (1301, "2013Q1", 130, "faers")]
    r1001 = reports.where("report_key = 1001").first()
    assert (r1001.event_dt, r1001.event_date, r1001.age_years, r1001.reporter_country) == (
        "20120701", dt.date(2012, 7, 1), 30.0, "US")

    drugs = wh.read(spark, "silver", "drugs")
    assert drugs.columns == ["report_key", "quarter", "drug_seq", "role_cod", "drugname", "prod_ai",
                             "drugname_norm", "prod_ai_norm"]
    assert sorted((r.report_key, r.drugname_norm) for r in drugs.collect()) == [
        (1001, "BOTOX"), (1202, "SERTRALINE"), (1301, "ASPIRIN")]
    assert wh.read(spark, "silver", "indications").columns == [
        "report_key", "quarter", "drug_seq", "indi_pt", "indi_pt_norm"]
    assert [tuple(r) for r in wh.read(spark, "silver", "indications").collect()] == [
        (1001, "2012Q4", 1, "Skin wrinkling", "SKIN WRINKLING")]
    assert sorted(tuple(r) for r in wh.read(spark, "silver", "reactions").collect()) == [
        (1001, "2012Q4", "depression", "DEPRESSION"), (1301, "2013Q1", "Nausea", "NAUSEA")]
    assert [tuple(r) for r in wh.read(spark, "silver", "outcomes").collect()] == [(1001, "2012Q4", "OT")]
    assert [tuple(r) for r in wh.read(spark, "silver", "therapies").collect()] == [
        (1001, "2012Q4", 1, "20120601", None, "3", "MON")]
    rs = wh.read(spark, "silver", "report_sources")
    assert rs.columns == ["report_key", "quarter", "rpsr_cod"] and rs.count() == 0
    assert result.rows["drugs"] == 3 and result.rows["reports"] == 3 and result.rows["report_status"] == 7
    assert any(line.startswith("silver: drugs: 3 rows") for line in lines)


def test_build_dedup_summary_reconciles(spark, built):
    root, wh, result, _ = built
    # 2012Q3: 7000001 older (FAERS 1001 wins), 7000002 deleted; 2012Q4: 1001 kept, 1201 older;
    # 2013Q1: 1202, 1301 kept, 13X1 rejected (not a report: outside reports_read)
    expected = [
        ["all", 6, 1, 2, 0, 3, 1],
        ["2012Q3", 2, 1, 1, 0, 0, 0],
        ["2012Q4", 2, 0, 1, 0, 1, 0],
        ["2013Q1", 2, 0, 0, 0, 2, 1],
    ]
    assert result.dedup_summary.values.tolist() == expected
    s = result.dedup_summary
    assert (s.reports_read == s.removed_deleted + s.removed_older_versions
            + s.removed_strict_duplicates + s.reports_kept).all()
    stored = [list(r) for r in wh.read(spark, "silver", "dedup_summary").collect()]
    assert sorted(stored) == sorted(expected)
    status = wh.read(spark, "silver", "report_status")
    assert status.columns == silver.STATUS_COLUMNS
    assert status.where("status = 'rejected'").select("report_key_text", "reason").collect()[0] == (
        "13X1", "report key '13X1' is not a whole number")


# --------------------------------------------------------------------------- #
# the contracts: test copies and written tables against faerslake.contracts
# --------------------------------------------------------------------------- #
def test_the_test_copy_of_bronze_is_the_bronze_contract():
    from faerslake.contracts import bronze_schema as contract

    for table in CANON:
        assert bronze_schema(table).simpleString() == contract(table).simpleString(), table


def test_build_writes_exactly_the_silver_contract(spark, built):
    from faerslake.contracts import SILVER

    _, wh, _, _ = built
    for name, schema in SILVER.items():
        written = wh.read(spark, "silver", name).schema
        assert [(f.name, f.dataType) for f in written.fields] == [(f.name, f.dataType) for f in schema.fields], name


def test_silver_reports_as_a_frame(spark, built):
    """The kept reports compared as one frame (schema and rows, any order)."""
    from faerslake.contracts import SILVER
    from pyspark.testing import assertDataFrameEqual

    _, wh, _, _ = built
    cols = ["report_key", "caseid", "caseversion", "era", "quarter", "age_years", "sex", "reporter_country"]
    expected = spark.createDataFrame(
        [(1001, 100, 1, "faers", "2012Q4", 30.0, "F", "US"), (1202, 120, 2, "faers", "2013Q1", None, None, None),
         (1301, 130, 1, "faers", "2013Q1", None, None, None)],
        T.StructType([SILVER["reports"][c] for c in cols]))
    actual = wh.read(spark, "silver", "reports").select(*cols)
    assertDataFrameEqual(actual, expected, checkRowOrder=False)


def test_build_skips_when_bronze_unchanged_and_rebuilds_after_ingest(spark, built, seal_bronze):
    root, wh, first, _ = built
    lines: list[str] = []
    again = silver.build(spark, root, strict_dedup=False, log=lines.append)
    assert again.skipped and again.dedup_summary.values.tolist() == first.dedup_summary.values.tolist()
    assert any("up to date" in line for line in lines)
    # a build that died after rewriting some silver table is not up to date
    versions = silver._bronze_versions(spark, wh)
    assert silver._up_to_date(spark, wh, versions, strict=False)
    assert not silver._up_to_date(spark, wh, versions, strict=True)
    wh.write(wh.read(spark, "silver", "outcomes"), "silver", "outcomes")
    assert not silver._up_to_date(spark, wh, versions, strict=False)
    # a new quarter arrives (as ingest would append it): case 130 gets version 2
    wh.write(bronze(spark, "demo", [demo("2013Q2", "1302", "130", "2")]), "bronze", "demo",
             mode="append", partition_by=["quarter"])
    seal_bronze(spark, wh)
    third = silver.build(spark, root, strict_dedup=False, log=lines.append)
    assert not third.skipped
    assert third.dedup_summary.values.tolist() == [
        ["all", 7, 1, 3, 0, 3, 1],
        ["2012Q3", 2, 1, 1, 0, 0, 0],
        ["2012Q4", 2, 0, 1, 0, 1, 0],
        ["2013Q1", 2, 0, 1, 0, 1, 1],
        ["2013Q2", 1, 0, 0, 0, 1, 0],
    ]
    # ASPIRIN belonged to 1301, now an older version
    assert sorted(r.drugname for r in wh.read(spark, "silver", "drugs").collect()) == ["BOTOX.", "SERTRALINE"]

