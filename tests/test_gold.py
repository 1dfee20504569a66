"""Gold layer on hand-built silver tables: every rule of study-spec §3 with
exact members and exact a, b, c, d per cohort, and the §5 output contract."""

from __future__ import annotations

import base64
import dataclasses
import re

import pandas as pd
import pytest
from faerslake import gold
from faerslake.config import load_study
from faerslake.contracts import GOLD, SILVER
from faerslake.errors import InputError
from faerslake.tables import Warehouse
from pyspark.testing import assertDataFrameEqual
from statsmodels.stats.multitest import multipletests

# --- the silver contract: the inputs are built from faerslake.contracts ---- #
REPORTS_SCHEMA = SILVER["reports"]
DRUGS_SCHEMA = SILVER["drugs"]
INDI_SCHEMA = SILVER["indications"]
REAC_SCHEMA = SILVER["reactions"]

def norm_drug(s):
    """Spec §1 drug normalisation (what silver writes in *_norm)."""
    if s is None:
        return None
    return re.sub(r"\.+$", "", re.sub(r"\s+", " ", s.upper().strip()))


def norm_pt(s):
    return None if s is None else s.strip().upper()


Q = "2015Q1"
# key: (quarter, age, sex, [(drug_seq, role, drugname, prod_ai, [indication PTs])], [reaction PTs])
REPORTS = {
    # with a second suspect and a concomitant drug (the case listing names the suspects)
    1: (Q, 40.0, "F", [(1, "PS", "Botox", "ONABOTULINUMTOXINA", ["Migraine"]), (2, "SS", "Aspirin", None, []),
                       (3, "C", "IBUPROFEN", None, [])], ["Depression", "Nausea"]),
    2: (Q, 55.0, "F", [(1, "PS", "BOTOX", None, ["CHRONIC MIGRAINE"])], ["Nausea"]),
    # control with a mixed-case event PT (silver normalises it)
    3: (Q, 30.0, "M", [(1, "PS", "TOPIRAMATE", "TOPIRAMATE", ["migraine "])], ["Depressed mood "]),
    4: (Q, 70.0, "F", [(1, "PS", "TOPIRAMATE", "TOPIRAMATE", ["MIGRAINE"])], ["Headache"]),
    # BoNT without its own cohort indication, another drug's spasticity: neither
    5: (Q, 20.0, "M", [(1, "PS", "BOTOX", None, []), (2, "SS", "BACLOFEN", None, ["MUSCLE SPASTICITY"])],
        ["Depression"]),
    # exposed for migraine; spasms are another drug's: neither in spasticity
    6: (Q, 45.0, "F", [(1, "PS", "BOTOX", None, ["MIGRAINE"]), (2, "C", "TIZANIDINE", None, ["MUSCLE SPASMS"])],
        []),
    # exposed in two cohorts
    7: (Q, 66.0, "F", [(1, "PS", "DYSPORT", "ABOBOTULINUMTOXINA", ["TORTICOLLIS"]),
                       (2, "PS", "DYSPORT", "ABOBOTULINUMTOXINA", ["Blepharospasm"])], ["DEPRESSION"]),
    # control in two cohorts
    8: (Q, 50.0, "M", [(1, "PS", "IBUPROFEN", None, ["NECK PAIN"]), (2, "C", "PROPRANOLOL", None, ["MIGRAINE"])],
        []),
    # exclusions by antidepressant: INN inside a salt name, brand, prod_ai only
    9: (Q, 35.0, "F", [(1, "PS", "BOTOX", None, ["MIGRAINE"]), (2, "C", "SERTRALINE HYDROCHLORIDE", None, [])],
        []),
    10: (Q, 35.0, "F", [(1, "PS", "TOPIRAMATE", None, ["MIGRAINE"]), (2, "C", "Zoloft.", None, [])], ["DEPRESSION"]),
    11: (Q, 35.0, "F", [(1, "PS", "TOPIRAMATE", None, ["MIGRAINE"]),
                        (2, "C", "GENERIC CAPSULE", "DULOXETINE  HYDROCHLORIDE", [])], []),
    # exclusions by depression indication (another drug's; the BoNT row's own)
    12: (Q, 35.0, "F", [(1, "PS", "BOTOX", None, ["MIGRAINE"]), (2, "C", "LITHIUM", None, ["Depression"])], []),
    13: (Q, 35.0, "F", [(1, "PS", "BOTOX", None, ["MIGRAINE", "MAJOR DEPRESSION"])], []),
    # decoy: antitoxin is not exposure, so this is a control
    14: (Q, 60.0, "M", [(1, "PS", "BOTULISM ANTITOXIN HEPTAVALENT", "BOTULINUM ANTITOXIN", ["MIGRAINE"])],
         ["DEPRESSION"]),
    # BoNT as concomitant: exposed without a role filter, a control with [PS, SS]
    15: (Q, 33.0, "F", [(1, "C", "BOTOX", None, ["MIGRAINE"])], []),
    # legacy quarter, dropped by a period filter
    16: ("2010Q1", 41.0, "F", [(1, "PS", "BOTOX", None, ["MIGRAINE"])], ["DEPRESSION"]),
    # INDI row pointing at no drug row: no cohort
    18: (Q, 41.0, "F", [(1, "PS", "TOPIRAMATE", None, [])], []),
    19: (Q, None, None, [(1, "PS", "BACLOFEN", None, ["Muscle Spasticity"])], []),
    # drug row with no text at all
    20: (Q, 25.0, "UNK", [(1, "PS", None, None, ["MIGRAINE"]), (2, "SS", "Xeomin", None, [])], []),
}
# report 20: XEOMIN without a cohort indication, another (nameless) drug for migraine: neither
# reporter type (occp_cod) of the reports that are not MD: a consumer, and none
OCCP = {3: " cn", 14: None}
# silver/outcomes of study_run (a code twice, once untrimmed: listed once)
OUTCOMES = [(1, Q, "HO"), (1, Q, " ho"), (1, Q, "OT"), (7, Q, "DE"), (2, Q, "DE")]


def silver_frames(spark, reports=REPORTS):
    rep, drugs, indi, reac = [], [], [], []
    for key, (q, age, sex, drug_rows, pts) in reports.items():
        era = "legacy" if q < "2012Q4" else "faers"
        rep.append((key, key * 10, 1, era, q, "20150101", None, None, age, sex, "US", OCCP.get(key, "MD"), "EXP",
                    "I"))
        for seq, role, name, ai, indis in drug_rows:
            drugs.append((key, q, seq, role, name, ai, norm_drug(name), norm_drug(ai)))
            for pt in indis:
                indi.append((key, q, seq, pt, norm_pt(pt)))
        for pt in pts:
            reac.append((key, q, pt, norm_pt(pt)))
    # child rows of the right key but another quarter (no such report): unused
    drugs.append((1, "2016Q1", 1, "PS", "BACLOFEN", None, "BACLOFEN", None))
    indi.append((1, "2016Q1", 1, "MUSCLE SPASTICITY", "MUSCLE SPASTICITY"))
    indi.append((4, "2016Q1", 1, "DEPRESSION", "DEPRESSION"))  # must not exclude report 4
    indi.append((18, Q, 9, "MIGRAINE", "MIGRAINE"))
    reac.append((2, "2016Q1", "DEPRESSION", "DEPRESSION"))  # must not give report 2 the event
    return (spark.createDataFrame(rep, REPORTS_SCHEMA), spark.createDataFrame(drugs, DRUGS_SCHEMA),
            spark.createDataFrame(indi, INDI_SCHEMA), spark.createDataFrame(reac, REAC_SCHEMA))


@pytest.fixture(scope="module")
def study():
    return load_study()  # the default study file: spec §3 lists


@pytest.fixture(scope="module")
def silver(spark):
    return silver_frames(spark)


def members_of(spark, silver, study):
    df = gold.cohort_members(spark, *silver, study)
    assert df.columns == gold.MEMBER_COLUMNS
    return {(r.report_key, r.quarter, r.cohort): (r.exposed, r.event) for r in df.collect()}


def counts_of(spark, silver, study):
    df = gold.cohort_counts(gold.cohort_members(spark, *silver, study), study)
    return {r["cohort"]: (r["exposed_events"], r["exposed_reports"] - r["exposed_events"],
                          r["control_events"], r["control_reports"] - r["control_events"])
            for r in df.to_dict("records")}


EXPECTED_MEMBERS = {
    (1, Q, "migraine"): (True, True),
    (2, Q, "migraine"): (True, False),
    (3, Q, "migraine"): (False, True),
    (4, Q, "migraine"): (False, False),
    (6, Q, "migraine"): (True, False),
    (7, Q, "torticollis"): (True, True),
    (7, Q, "blepharospasm"): (True, True),
    (8, Q, "torticollis"): (False, False),
    (8, Q, "migraine"): (False, False),
    (14, Q, "migraine"): (False, True),
    (15, Q, "migraine"): (True, False),
    (16, "2010Q1", "migraine"): (True, True),
    (19, Q, "spasticity"): (False, False),
}


@pytest.fixture(scope="module")
def default_members(spark, silver, study):
    """The default study's members, computed once (the plan is the slow part)."""
    rows = gold.cohort_members(spark, *silver, study).collect()
    return spark.createDataFrame(rows, GOLD["cohort_members"])


def test_members_follow_every_rule(default_members):
    got = {(r.report_key, r.quarter, r.cohort): (r.exposed, r.event) for r in default_members.collect()}
    assert got == EXPECTED_MEMBERS


def test_exact_2x2_per_cohort(default_members, study):
    df = gold.cohort_counts(default_members, study)
    got = {r["cohort"]: (r["exposed_events"], r["exposed_reports"] - r["exposed_events"],
                         r["control_events"], r["control_reports"] - r["control_events"])
           for r in df.to_dict("records")}
    assert list(got) == [c.name for c in study.cohorts]  # study order, zero cohorts included
    assert got == {
        "cosmetic": (0, 0, 0, 0),
        "migraine": (2, 3, 2, 2),  # exposed 1,16 | 2,6,15; control 3,14 | 4,8
        "spasticity": (0, 0, 0, 1),
        "torticollis": (1, 0, 0, 1),
        "blepharospasm": (1, 0, 0, 0),
        "hyperhidrosis": (0, 0, 0, 0),
        "sialorrhea": (0, 0, 0, 0),
        "bladder": (0, 0, 0, 0),
    }


def test_role_code_filter(spark, silver, study):
    ps_ss = dataclasses.replace(study, exposure_role_codes=["PS", "SS"])
    members = members_of(spark, silver, ps_ss)
    # report 15's only BoNT row is concomitant: with the filter it is no
    # exposure drug row, so the report is a control (study file: "only drug
    # rows with these role codes count as exposure")
    assert members == {**EXPECTED_MEMBERS, (15, Q, "migraine"): (False, False)}
    assert counts_of(spark, silver, ps_ss)["migraine"] == (2, 2, 2, 3)
    # role codes compare trimmed and upper-case; a filter nobody meets leaves no exposed
    only_c = dataclasses.replace(study, exposure_role_codes=["C"])
    got = members_of(spark, silver, only_c)
    assert {k for k, (exposed, _) in got.items() if exposed} == {(15, Q, "migraine")}


def test_period_filter(spark, silver, study):
    recent = dataclasses.replace(study, period="2012Q4:2020Q4")
    members = members_of(spark, silver, recent)
    assert {k for k in EXPECTED_MEMBERS if k[1] == "2010Q1"} == {(16, "2010Q1", "migraine")}
    assert members == {k: v for k, v in EXPECTED_MEMBERS.items() if k[1] != "2010Q1"}
    assert counts_of(spark, silver, recent)["migraine"] == (1, 3, 2, 2)
    legacy = dataclasses.replace(study, period="2010Q1")
    assert members_of(spark, silver, legacy) == {(16, "2010Q1", "migraine"): (True, True)}


def test_exclusions_can_be_switched_off(spark, silver, study):
    off = dataclasses.replace(study, exclusions=dataclasses.replace(study.exclusions, enabled=False))
    members = members_of(spark, silver, off)
    back = {k: v for k, v in members.items() if k not in EXPECTED_MEMBERS}
    assert back == {
        (9, Q, "migraine"): (True, False),
        (10, Q, "migraine"): (False, True),
        (11, Q, "migraine"): (False, False),
        (12, Q, "migraine"): (True, False),
        (13, Q, "migraine"): (True, False),
    }
    # only the depression-indication rule: the antidepressant reports come back
    indi_only = dataclasses.replace(
        study, exclusions=dataclasses.replace(study.exclusions, drug_tokens=[]))
    assert {k[0] for k in members_of(spark, silver, indi_only)} - {k[0] for k in EXPECTED_MEMBERS} \
        == {9, 10, 11}
    # only the drug rule: the depression-indication reports come back
    drug_only = dataclasses.replace(
        study, exclusions=dataclasses.replace(study.exclusions, outcome_indications=False))
    assert {k[0] for k in members_of(spark, silver, drug_only)} - {k[0] for k in EXPECTED_MEMBERS} \
        == {12, 13}


def test_drug_match_expression_on_edge_cases(spark, study):
    rows = [
        ("BOTOX", None), (None, "ONABOTULINUMTOXINA"), ("BOTULISM ANTITOXIN", None),
        ("BOTOX", "BOTULINUM IMMUNE GLOBULIN"), ("XEOMIN 100 UNIT", "INCOBOTULINUMTOXINA"),
        ("MYOBLOC", ""), (None, None), ("BOTO X", "BOTULIN"), ("DAXXIFY", None),
    ]
    df = spark.createDataFrame(rows, "drugname_norm STRING, prod_ai_norm STRING")
    got = [r[0] for r in df.select(gold.drug_matches(study.exposure)).collect()]
    assert got == [True, True, False, False, True, True, False, False, True]


def test_input_contract_is_checked(spark, silver, study):
    reports, drugs, indi, reac = silver
    with pytest.raises(InputError, match="'drugs' lacks column.*prod_ai_norm"):
        gold.cohort_members(spark, reports, drugs.drop("prod_ai_norm"), indi, reac, study)


# --------------------------------------------------------------------------- #
# run_study end to end: Delta tables, CSV, console table
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def study_run(spark, silver, study, tmp_path_factory, seal_silver):
    root = tmp_path_factory.mktemp("gold")
    wh_root, out = str(root / "wh"), root / "out"
    wh = Warehouse(wh_root)
    for name, df in zip(["reports", "drugs", "indications", "reactions"], silver, strict=True):
        wh.write(df, "silver", name)
    wh.write(spark.createDataFrame(OUTCOMES, SILVER["outcomes"]), "silver", "outcomes")
    seal_silver(spark, wh)
    logs = []
    result = gold.run_study(spark, wh_root, study, str(out), log=logs.append)
    return wh, out, result, logs


EXPECTED_ROWS = [
    # cohort, exposed_reports, exposed_events, control_reports, control_events
    ("cosmetic", 0, 0, 0, 0), ("migraine", 5, 2, 4, 2), ("spasticity", 0, 0, 1, 0),
    ("torticollis", 1, 1, 1, 0), ("blepharospasm", 1, 1, 0, 0), ("hyperhidrosis", 0, 0, 0, 0),
    ("sialorrhea", 0, 0, 0, 0), ("bladder", 0, 0, 0, 0),
]


def test_run_study_results_csv_and_delta(spark, study_run, study):
    from scipy.stats import fisher_exact

    wh, out, result, _ = study_run
    csv = pd.read_csv(out / "botox_depression" / "cohort_results.csv")
    spec_cols = ["study", "cohort", "exposed_reports", "exposed_events", "control_reports",
                 "control_events", "ror", "ror_ci_lower", "ror_ci_upper", "haldane_corrected",
                 "fisher_p", "fisher_q"]
    assert list(csv.columns[:12]) == spec_cols
    assert {"prr", "prr_chi2"} <= set(csv.columns)
    got = [tuple(r) for r in csv[["cohort", "exposed_reports", "exposed_events", "control_reports",
                                  "control_events"]].itertuples(index=False)]
    assert got == EXPECTED_ROWS
    assert (csv["study"] == "botox_depression").all()
    m = csv.set_index("cohort")
    # migraine: a=2 b=3 c=2 d=2 -> ROR (2/3)/(2/2); Fisher on the raw table
    assert m.loc["migraine", "ror"] == pytest.approx(2 / 3)
    assert not m.loc["migraine", "haldane_corrected"]
    assert m.loc["migraine", "fisher_p"] == pytest.approx(fisher_exact([[2, 3], [2, 2]])[1])
    # torticollis: a=1 b=0 c=0 d=1 -> Haldane (1.5/0.5)/(0.5/1.5) = 9
    assert m.loc["torticollis", "ror"] == pytest.approx(9.0)
    assert m.loc["torticollis", "haldane_corrected"]
    # empty / one-sided cohorts: null ROR (empty CSV fields), Fisher p = 1 (spec §4)
    for c in ["cosmetic", "spasticity", "blepharospasm", "bladder"]:
        assert pd.isna(m.loc[c, "ror"]) and pd.isna(m.loc[c, "ror_ci_lower"]) and m.loc[c, "fisher_p"] == 1.0
    # BH over every cohort of the study
    assert m["fisher_p"].notna().all()
    q = multipletests(list(m["fisher_p"]), method="fdr_bh")[1]
    assert list(m["fisher_q"]) == pytest.approx(list(q), rel=1e-12)
    assert m.loc["migraine", "fisher_q"] == pytest.approx(1.0)

    delta = wh.read(spark, "gold", "botox_depression/cohort_results").toPandas()
    assert list(delta.columns) == list(csv.columns)
    assert delta.set_index("cohort").loc["cosmetic", "ror"] is None or pd.isna(
        delta.set_index("cohort").loc["cosmetic", "ror"])
    dtypes = dict(wh.read(spark, "gold", "botox_depression/cohort_results").dtypes)
    assert dtypes["ror"] == "double" and dtypes["haldane_corrected"] == "boolean"
    assert dtypes["exposed_reports"] == "bigint"
    pd.testing.assert_frame_equal(result.reset_index(drop=True), csv, check_dtype=False)


def test_run_study_members_table(spark, study_run):
    wh, _, _, _ = study_run
    df = wh.read(spark, "gold", "botox_depression/cohort_members")
    assert df.columns == ["report_key", "quarter", "cohort", "exposed", "event"]
    assert dict(df.dtypes)["exposed"] == "boolean"
    got = {(r.report_key, r.quarter, r.cohort): (r.exposed, r.event) for r in df.collect()}
    assert got == EXPECTED_MEMBERS
    # the whole table as one frame: the gold contract's schema and exactly these rows
    expected = spark.createDataFrame([(*k, *v) for k, v in EXPECTED_MEMBERS.items()], GOLD["cohort_members"])
    assertDataFrameEqual(df, expected, checkRowOrder=False)


def test_run_study_mantel_haenszel(spark, study_run):
    wh, out, result, _ = study_run
    mh = pd.read_csv(out / "botox_depression" / "mantel_haenszel.csv")
    assert list(mh["cohort"]) == [c for c, *_ in EXPECTED_ROWS]
    assert wh.exists(spark, "gold", "botox_depression/mantel_haenszel")
    # every migraine report is F except report 3 (M, 30y control with event)
    # and report 8 (M, 50y control). Strata of migraine (sex, age band, era):
    #  F/18-44/faers: exposed 1(E),6,15 ; control none
    #  F/45-64/faers: exposed 2 ; F/65+/faers: control 4 ; F/18-44/legacy: exposed 16(E)
    #  M/18-44/faers: control 3(E) ; M/45-64/faers: control 8
    # no stratum has both exposed and controls -> Σad/n = Σbc/n = 0 -> null
    row = mh.set_index("cohort").loc["migraine"]
    assert pd.isna(row["mh_ror"])
    assert row["crude_ror"] == pytest.approx(2 / 3)


def test_print_cohort_table(study_run, capsys):
    _, _, result, _ = study_run
    gold.print_cohort_table(result)
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0] == "study: botox_depression"
    assert lines[1].split() == ["cohort", "exposed", "events", "control", "events", "ROR", "95%", "CI",
                                "fisher_p", "q"]
    body = lines[3:11]
    assert [ln.split()[0] for ln in body] == [c for c, *_ in EXPECTED_ROWS]
    assert body[1].split()[:6] == ["migraine", "5", "2", "4", "2", "0.667"]
    assert body[3].split()[5] == "9*"  # Haldane marked
    assert len({len(ln) for ln in body}) == 1  # fixed width
    assert "Haldane" in lines[-1]


def test_run_study_report_without_upstream_tables(study_run):
    _, out, _, _ = study_run
    md = (out / "botox_depression" / "report.md").read_text()
    assert "Ingest audit totals: not available." in md
    assert "De-duplication summary: not available." in md
    assert "Source manifest SHA-256s: not available." in md


# --------------------------------------------------------------------------- #
# issue #18's analyst tables: trend, demographics, case listing
# --------------------------------------------------------------------------- #
ABCD = ["a", "b", "c", "d"]


def test_run_study_trend_reconciles_with_cohort_results(study_run):
    _, out, result, _ = study_run
    trend = pd.read_csv(out / "botox_depression" / "trend.csv", dtype={"period": str})
    assert list(trend.columns) == gold.TREND_COLUMNS
    # every cohort, every year and quarter of the study's reports (2010Q1, 2015Q1), zeros included
    years = trend[trend["level"] == "year"]
    got = [(r.cohort, r.period, r.a, r.b, r.c, r.d) for r in years.itertuples()]
    nonzero = {("migraine", "2010"): (1, 0, 0, 0),  # report 16, legacy
               ("migraine", "2015"): (1, 3, 2, 2),  # a: 1 | b: 2, 6, 15 | c: 3, 14 | d: 4, 8
               ("spasticity", "2015"): (0, 0, 0, 1), ("torticollis", "2015"): (1, 0, 0, 1),
               ("blepharospasm", "2015"): (1, 0, 0, 0)}
    assert got == [(c, y, *nonzero.get((c, y), (0, 0, 0, 0))) for c, *_ in EXPECTED_ROWS for y in ("2010", "2015")]
    cum = trend[trend["level"] == "cumulative_quarter"]
    assert list(cum["period"].unique()) == ["2010Q1", "2015Q1"]
    res = result.set_index("cohort")
    for cohort, rows in years.groupby("cohort", sort=False):
        assert tuple(rows[ABCD].sum()) == tuple(res.loc[cohort, ABCD]), cohort
        last = cum[cum["cohort"] == cohort].iloc[-1]
        assert tuple(last[ABCD]) == tuple(res.loc[cohort, ABCD]), cohort
        for col in ["ror", "ror_ci_lower", "ror_ci_upper"]:
            assert (pd.isna(last[col]) and pd.isna(res.loc[cohort, col])) or last[col] == pytest.approx(
                res.loc[cohort, col], rel=1e-12), (cohort, col)
    m15 = years[(years["cohort"] == "migraine") & (years["period"] == "2015")].iloc[0]
    assert m15["ror"] == pytest.approx(1 / 3) and not m15["haldane_corrected"]
    assert pd.isna(years[(years["cohort"] == "migraine") & (years["period"] == "2010")]["ror"].iloc[0])
    m_cum = cum[cum["cohort"] == "migraine"]
    assert [tuple(r) for r in m_cum[ABCD].itertuples(index=False)] == [(1, 0, 0, 0), (2, 3, 2, 2)]
    assert (out / "botox_depression" / "trend_plot.png").read_bytes().startswith(b"\x89PNG")


def test_trend_plot_bytes_are_deterministic(study_run):
    _, out, _, _ = study_run
    trend = pd.read_csv(out / "botox_depression" / "trend.csv", dtype={"period": str}, float_precision="round_trip")
    png = gold.trend_plot_png(trend, "botox_depression")
    assert png == (out / "botox_depression" / "trend_plot.png").read_bytes()
    assert b"Software" not in png and png == gold.trend_plot_png(trend, "botox_depression")


def test_run_study_demographics(study_run):
    _, out, result, _ = study_run
    demo = pd.read_csv(out / "botox_depression" / "demographics.csv", dtype={"level": str})
    assert list(demo.columns) == gold.DEMOGRAPHICS_COLUMNS
    res = result.set_index("cohort")
    assert list(dict.fromkeys(demo["cohort"])) == [c for c, *_ in EXPECTED_ROWS]
    for (cohort, var), rows in demo.groupby(["cohort", "variable"], sort=False):
        assert rows["exposed_n"].sum() == res.loc[cohort, "exposed_reports"], (cohort, var)
        assert rows["control_n"].sum() == res.loc[cohort, "control_reports"], (cohort, var)
    mig = {(r.variable, r.level): (r.exposed_n, r.exposed_pct, r.control_n, r.control_pct)
           for r in demo[demo["cohort"] == "migraine"].itertuples()}
    # exposed 1, 2, 6, 15, 16 (all F, MD); controls 3 (M, 30, CN), 4 (F, 70, MD), 8 (M, 50, MD), 14 (M, 60, none)
    assert mig == {
        ("sex", "F"): (5, 100.0, 1, 25.0), ("sex", "M"): (0, 0.0, 3, 75.0), ("sex", "U"): (0, 0.0, 0, 0.0),
        ("age_band", "0-17"): (0, 0.0, 0, 0.0), ("age_band", "18-44"): (3, 60.0, 1, 25.0),
        ("age_band", "45-64"): (2, 40.0, 2, 50.0), ("age_band", "65+"): (0, 0.0, 1, 25.0),
        ("age_band", "unknown"): (0, 0.0, 0, 0.0),
        ("reporter_type", "CN"): (0, 0.0, 1, 25.0), ("reporter_type", "MD"): (5, 100.0, 2, 50.0),
        ("reporter_type", "unknown"): (0, 0.0, 1, 25.0),
        ("era", "legacy"): (1, 20.0, 0, 0.0), ("era", "faers"): (4, 80.0, 4, 100.0),
    }
    # the levels in their fixed order; a cohort without reports: zeros and no share
    assert list(demo[demo["cohort"] == "migraine"]["level"]) == [
        "F", "M", "U", "0-17", "18-44", "45-64", "65+", "unknown", "CN", "MD", "unknown", "legacy", "faers"]
    cosmetic = demo[demo["cohort"] == "cosmetic"]
    assert (cosmetic["exposed_n"] == 0).all() and cosmetic["exposed_pct"].isna().all()


def test_run_study_case_listing(study_run):
    _, out, result, _ = study_run
    cases = pd.read_csv(out / "botox_depression" / "cases.csv", keep_default_na=False, dtype=str)
    assert list(cases.columns) == gold.CASE_COLUMNS
    per = cases.groupby("cohort", sort=False).size().to_dict()
    assert {c: per.get(c, 0) for c in result["cohort"]} == dict(zip(result["cohort"], result["exposed_events"],
                                                                   strict=True))
    # sorted by cohort in study order, quarter, caseid
    assert [tuple(r) for r in cases[["cohort", "caseid", "quarter"]].itertuples(index=False)] == [
        ("migraine", "160", "2010Q1"), ("migraine", "10", "2015Q1"), ("torticollis", "70", "2015Q1"),
        ("blepharospasm", "70", "2015Q1")]
    row = cases.iloc[1].to_dict()
    assert row == {"study": "botox_depression", "cohort": "migraine", "caseid": "10", "report_key": "1",
                   "quarter": "2015Q1", "age_years": "40.0", "sex": "F", "reporter_country": "US",
                   "reporter_type": "MD", "suspect_drugs": "ASPIRIN; BOTOX", "reaction_pts": "DEPRESSION; NAUSEA",
                   "outcomes": "HO; OT"}
    assert cases.iloc[0]["outcomes"] == "" and cases.iloc[2]["outcomes"] == "DE"
    assert cases.iloc[2]["suspect_drugs"] == "DYSPORT"  # two DYSPORT rows: listed once


def test_run_study_report_has_the_analyst_sections(study_run):
    _, out, _, _ = study_run
    md = (out / "botox_depression" / "report.md").read_text()
    assert "| migraine | 2015 | 1 | 3 | 2 | 2 | 0.333 [0.0167–6.65] |" in md
    assert "![cumulative ROR by quarter per cohort, with 95 % CI band](trend_plot.png)" in md
    assert "| migraine | reporter type | CN | 0 (0.0 %) | 1 (25.0 %) |" in md
    assert "`cases.csv` lists every cohort's exposed reports with the event (cell a), 4 rows in all" in md
    assert "| migraine | 2 |" in md and "DE death" in md
    page = (out / "botox_depression" / "report.html").read_text()
    assert 'alt="cumulative ROR by quarter per cohort, with 95 % CI band"' in page
    png = (out / "botox_depression" / "trend_plot.png").read_bytes()
    assert "data:image/png;base64," + base64.b64encode(png).decode("ascii") in page  # embedded: the page stands alone


def test_run_study_without_silver_is_a_clear_error(spark, study, tmp_path):
    with pytest.raises(InputError, match=r"no silver tables under .*empty \(no silver/build_state\): "
                       r"run 'faerslake ingest' and 'faerslake build"):
        gold.run_study(spark, str(tmp_path / "empty"), study, str(tmp_path / "out"))


def test_mantel_haenszel_strata_from_reports(spark, study):
    """MH strata come from silver reports (sex, age band, era); compared with
    statsmodels' StratifiedTable on the same hand-counted strata."""
    import numpy as np
    from faerslake import stats
    from statsmodels.stats.contingency_tables import StratifiedTable

    # (key, quarter, age, sex, exposed, event) for one cohort, 'migraine'
    spec = (
        # F / 18-44 / faers: a=2 b=3 c=1 d=6
        [(k, Q, 30.0, "F", True, k < 102) for k in range(100, 105)]
        + [(k, Q, 40.0, " f", False, k < 111) for k in range(110, 117)]
        # M / 65+ / legacy: a=1 b=1 c=2 d=2 (ages 65 and 90 fall in one band)
        + [(k, "2010Q1", 65.0, "M", True, k < 121) for k in range(120, 122)]
        + [(k, "2010Q1", 90.0, "M", False, k < 132) for k in range(130, 134)]
        # unknown sex and age: a=1 b=0 c=0 d=3 (sex 'UNK', NULL age both stratum U/unknown)
        + [(140, Q, None, "UNK", True, True)]
        + [(k, Q, None, None, False, False) for k in range(141, 144)]
        # age 17.9 -> 0-17, alone in its stratum (one report: skipped)
        + [(150, Q, 17.9, "F", True, False)]
    )
    # reporter types vary inside every stratum: the strata are counted per
    # reporter type too (for the demographics) and summed over it here
    reports = spark.createDataFrame(
        [(k, q, "legacy" if q < "2012Q4" else "faers", s, age, ["MD", "CN", None][k % 3])
         for k, q, age, s, _, _ in spec],
        "report_key BIGINT, quarter STRING, era STRING, sex STRING, age_years DOUBLE, occp_cod STRING")
    members = spark.createDataFrame([(k, q, "migraine", e, ev) for k, q, _, _, e, ev in spec],
                                    "report_key BIGINT, quarter STRING, cohort STRING, exposed BOOLEAN, "
                                    "event BOOLEAN")
    results = stats.cohort_statistics(gold.cohort_counts(members, study))
    mh = gold.mantel_haenszel_table(members, reports, study, results).set_index("cohort")
    strata = [(2, 3, 1, 6), (1, 1, 2, 2), (1, 0, 0, 3)]
    ref = StratifiedTable([np.array([[a, b], [c, d]], dtype=float) for a, b, c, d in strata])
    row = mh.loc["migraine"]
    assert row["strata_used"] == 3
    assert row["mh_ror"] == pytest.approx(ref.oddsratio_pooled, rel=1e-12)
    lo, hi = ref.oddsratio_pooled_confint()
    assert row["mh_ci_lower"] == pytest.approx(lo, rel=1e-6)
    assert row["mh_ci_upper"] == pytest.approx(hi, rel=1e-6)
    # crude table pools every report, the lone 0-17 one too: a=4 b=5 c=3 d=11
    assert row["crude_ror"] == pytest.approx((4 / 5) / (3 / 11))
    assert mh.loc["cosmetic", "strata_used"] == 0 and pd.isna(mh.loc["cosmetic", "mh_ror"])
    # the same strata without the reporter type column (every report 'unknown'): the same pooled ROR
    rows = gold.strata_counts(members, reports.drop("occp_cod"))
    assert {r["reporter_type"] for r in rows} == {"unknown"}
    again = gold.mantel_haenszel_table(members, reports, study, results, rows=rows).set_index("cohort")
    assert again.loc["migraine", "mh_ror"] == row["mh_ror"] and again.loc["migraine", "strata_used"] == 3
    demo = gold.demographics_table(gold.strata_counts(members, reports), study)
    rt = demo[(demo["cohort"] == "migraine") & (demo["variable"] == "reporter_type")]
    # exposed keys 100-104, 120, 121, 140, 150; controls 110-116, 130-133, 141-143 (k % 3: 0 MD, 1 CN, 2 none)
    assert [tuple(r) for r in rt[["level", "exposed_n", "control_n"]].itertuples(index=False)] == [
        ("CN", 3, 5), ("MD", 3, 4), ("unknown", 3, 5)]


def test_study_honours_its_strict_dedup_setting(spark, study_run, study, tmp_path):
    """The study file's strict_dedup is honoured by 'faerslake study' as by 'run':
    silver built without the strict pass (study_run's) is refused for a study
    that asks for it, in one sentence saying what to run; run passes what it
    built with, which then wins over the file."""
    wh, _, _, _ = study_run
    strict = dataclasses.replace(study, strict_dedup=True)
    with pytest.raises(InputError, match=re.escape(
            f"study {study.name} sets strict_dedup: true, but the last build under {wh.root} ran without the "
            f"strict de-duplication pass: run 'faerslake build --warehouse {wh.root} --strict-dedup'")):
        gold.run_study(spark, wh.root, strict, str(tmp_path / "out"), log=lambda m: None)
    assert not (tmp_path / "out" / study.name).exists()
    # the same file under 'run', which built without the strict pass (its --strict-dedup flag off)
    res = gold.run_study(spark, wh.root, strict, str(tmp_path / "out"), log=lambda m: None, strict_dedup=False)
    assert [tuple(r) for r in res[["cohort", "exposed_reports", "exposed_events", "control_reports",
                                   "control_events"]].itertuples(index=False)] == EXPECTED_ROWS
    # a study that leaves it to the settings reads any build; one that says false reads this one
    for s in (dataclasses.replace(study, strict_dedup=None), dataclasses.replace(study, strict_dedup=False)):
        gold.run_study(spark, wh.root, s, str(tmp_path / "out2"), log=lambda m: None)


def test_check_strict_dedup_both_ways():
    from faerslake.silver.job import SilverCut

    study = load_study()
    built_strict = SilverCut({}, {}, strict_dedup=True)
    gold.check_strict_dedup(built_strict, True, study, "wh")
    gold.check_strict_dedup(built_strict, None, study, "wh")
    gold.check_strict_dedup(SilverCut({}, {}, strict_dedup=None), False, study, "wh")  # not recorded: accepted
    with pytest.raises(InputError, match=r"sets strict_dedup: false, but the last build under wh ran the strict "
                                         r"de-duplication pass: run 'faerslake build --warehouse wh' without"):
        gold.check_strict_dedup(built_strict, False, study, "wh")
