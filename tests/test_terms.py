"""What the terms matched (issue #18): gold.terms on hand-built silver, with
exact rows, the reconciliation with the rows cohort_members used, the
`faerslake terms` command and the study folder's terms.csv / indications.csv."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
from faerslake.cli import main
from faerslake.config import load_study
from faerslake.contracts import SILVER
from faerslake.gold import cohort_members, flag_drugs, run_study
from faerslake.gold.cohorts import KEYS, in_period
from faerslake.gold.terms import INDICATION_COLUMNS, TERM_COLUMNS, cohort_indications, term_matches, top_terms
from faerslake.tables import Warehouse

Q = "2015Q1"
# key: (quarter, [(drug_seq, role, drugname_norm, prod_ai_norm, [indication PTs])], [reaction PTs])
REPORTS = {
    # BOTOX / ONABOTULINUMTOXINA: found by BOTULINUM (prod_ai, the first token) and by BOTOX (drugname)
    1: (Q, [(1, "PS", "BOTOX", "ONABOTULINUMTOXINA", ["MIGRAINE"])], ["DEPRESSION"]),
    # two rows of that pair in one report (the second a concomitant: gone with roles PS, SS)
    2: (Q, [(1, "PS", "BOTOX", "ONABOTULINUMTOXINA", ["CHRONIC MIGRAINE"]),
            (2, "C", "BOTOX", "ONABOTULINUMTOXINA", ["MIGRAINE"])], []),
    # found by prod_ai only
    3: (Q, [(1, "PS", "MEDYTOX", "BOTULINUM TOXIN TYPE A", ["MUSCLE SPASTICITY"])], []),
    # found by BOTULINUM in prod_ai, removed by ANTITOXIN: a control
    4: (Q, [(1, "PS", "BOTULISM ANTITOXIN HEPTAVALENT", "BOTULINUM ANTITOXIN HEPTAVALENT (EQUINE)", ["MIGRAINE"]),
            (2, "PS", "TOPIRAMATE", "TOPIRAMATE", ["MIGRAINE"])], ["DEPRESSION"]),
    # a concomitant BOTOX without prod_ai
    5: (Q, [(1, "C", "BOTOX", None, ["MIGRAINE"])], []),
    # a legacy quarter (a period filter drops it)
    6: ("2010Q1", [(1, "PS", "DYSPORT", "ABOBOTULINUMTOXINA", ["TORTICOLLIS"])], []),
    # an exclusion drug (concomitant: the exclusion has no role filter): the report leaves every cohort
    7: (Q, [(1, "PS", "TOPIRAMATE", None, ["MIGRAINE"]), (2, "C", "ZOLOFT", "SERTRALINE HYDROCHLORIDE", [])], []),
    8: (Q, [(1, "PS", "TOPIRAMATE", None, ["MIGRAINE"])], []),
    # removed by both exclusion tokens
    9: (Q, [(1, "PS", "BABYBIG ANTITOXIN", "BOTULINUM IMMUNE GLOBULIN", ["BLEPHAROSPASM"])], []),
}


def silver_frames(spark, reports=REPORTS):
    rep, drugs, indi, reac = [], [], [], []
    for key, (q, drug_rows, pts) in reports.items():
        era = "legacy" if q < "2012Q4" else "faers"
        rep.append((key, key * 10, 1, era, q, "20150101", None, None, 40.0, "F", "US", "MD", "EXP", "I"))
        for seq, role, name, ai, indis in drug_rows:
            drugs.append((key, q, seq, role, name, ai, name, ai))
            indi += [(key, q, seq, pt, pt) for pt in indis]
        reac += [(key, q, pt, pt) for pt in pts]
    # a child row of no report (report 1 has no 2016Q1 version): counted nowhere
    drugs.append((1, "2016Q1", 1, "PS", "BOTOX", None, "BOTOX", None))
    return (spark.createDataFrame(rep, SILVER["reports"]), spark.createDataFrame(drugs, SILVER["drugs"]),
            spark.createDataFrame(indi, SILVER["indications"]), spark.createDataFrame(reac, SILVER["reactions"]))


@pytest.fixture(scope="module")
def study():
    return load_study()


@pytest.fixture(scope="module")
def silver(spark):
    return silver_frames(spark)


def rows_of(df):
    return [tuple(r) for r in df.select(*TERM_COLUMNS).collect()]


BOTOX_AI = ("BOTOX", "ONABOTULINUMTOXINA")
ANTITOXIN_AI = ("BOTULISM ANTITOXIN HEPTAVALENT", "BOTULINUM ANTITOXIN HEPTAVALENT (EQUINE)")
BABYBIG = ("BABYBIG ANTITOXIN", "BOTULINUM IMMUNE GLOBULIN")
E, X, D = "exposure.tokens", "exposure.exclude_tokens", "exclusions.drug_tokens"
EXPECTED = [
    # list, token, field, drugname, prod_ai, kept, removed_by, first_match, drug_rows, reports
    (E, "BOTULINUM", "prod_ai", *BOTOX_AI, True, None, True, 3, 2),
    (E, "BOTULINUM", "prod_ai", "DYSPORT", "ABOBOTULINUMTOXINA", True, None, True, 1, 1),
    (E, "BOTULINUM", "prod_ai", "MEDYTOX", "BOTULINUM TOXIN TYPE A", True, None, True, 1, 1),
    (E, "BOTULINUM", "prod_ai", *BABYBIG, False, "ANTITOXIN | IMMUNE GLOBULIN", True, 1, 1),
    (E, "BOTULINUM", "prod_ai", *ANTITOXIN_AI, False, "ANTITOXIN", True, 1, 1),
    (E, "BOTOX", "drugname", *BOTOX_AI, True, None, False, 3, 2),
    (E, "BOTOX", "drugname", "BOTOX", None, True, None, True, 1, 1),
    (E, "DYSPORT", "drugname", "DYSPORT", "ABOBOTULINUMTOXINA", True, None, False, 1, 1),
    (X, "ANTITOXIN", "drugname", *BABYBIG, False, "ANTITOXIN | IMMUNE GLOBULIN", True, 1, 1),
    (X, "ANTITOXIN", "both", *ANTITOXIN_AI, False, "ANTITOXIN", True, 1, 1),
    (X, "IMMUNE GLOBULIN", "prod_ai", *BABYBIG, False, "ANTITOXIN | IMMUNE GLOBULIN", False, 1, 1),
    (D, "SERTRALINE", "prod_ai", "ZOLOFT", "SERTRALINE HYDROCHLORIDE", None, None, True, 1, 1),
    (D, "ZOLOFT", "drugname", "ZOLOFT", "SERTRALINE HYDROCHLORIDE", None, None, False, 1, 1),
]


def test_every_match_exactly(silver, study):
    reports, drugs, _, _ = silver
    assert rows_of(term_matches(drugs, reports, study)) == EXPECTED


def test_role_codes_and_period_narrow_the_exposure_lists_only(silver, study):
    reports, drugs, _, _ = silver
    ps_ss = dataclasses.replace(study, exposure_role_codes=["PS", "SS"], period="2012Q4:2019Q4")
    got = rows_of(term_matches(drugs, reports, ps_ss))
    assert got == [
        (E, "BOTULINUM", "prod_ai", *BOTOX_AI, True, None, True, 2, 2),  # report 2's concomitant row gone
        (E, "BOTULINUM", "prod_ai", "MEDYTOX", "BOTULINUM TOXIN TYPE A", True, None, True, 1, 1),
        (E, "BOTULINUM", "prod_ai", *BABYBIG, False, "ANTITOXIN | IMMUNE GLOBULIN", True, 1, 1),
        (E, "BOTULINUM", "prod_ai", *ANTITOXIN_AI, False, "ANTITOXIN", True, 1, 1),
        (E, "BOTOX", "drugname", *BOTOX_AI, True, None, False, 2, 2),  # the concomitant BOTOX (report 5) gone
        # DYSPORT's only report is of 2010Q1: outside the period
        *[r for r in EXPECTED if r[0] != E],  # the exclusion drug is concomitant: no role filter
    ]
    no_exclusions = dataclasses.replace(study, exclusions=dataclasses.replace(study.exclusions, enabled=False))
    assert [r for r in rows_of(term_matches(drugs, reports, no_exclusions)) if r[0] == D] == []


def test_kept_rows_reconcile_with_the_rows_cohort_members_used(silver, study):
    """Summed over first_match rows, the kept exposure rows are the drug rows
    flag_drugs (the flags cohort_members reads) marks as exposure, of the
    reports in the period; the excluded-drug rows those it marks excluded."""
    reports, drugs, _, _ = silver
    for s in (study, dataclasses.replace(study, exposure_role_codes=["PS", "SS"], period="2012Q4:2019Q4")):
        m = term_matches(drugs, reports, s).toPandas()
        first = m[m["first_match"]]
        flagged = flag_drugs(in_period(drugs, s), s).join(in_period(reports, s).select(*KEYS), KEYS, "left_semi")
        exposure = flagged.where("by_tokens").count()
        assert first[(first["list"] == E) & (first["kept"] == True)]["drug_rows"].sum() == exposure  # noqa: E712
        assert exposure == (6 if s is study else 3)
        removed = first[(first["list"] == E) & (first["kept"] == False)]["drug_rows"].sum()  # noqa: E712
        assert removed == first[first["list"] == X]["drug_rows"].sum() == 2
        assert first[first["list"] == D]["drug_rows"].sum() == flagged.where("is_excluded_drug").count() == 1


def test_top_terms_keeps_the_first_rows_of_each_token_with_totals(silver, study):
    reports, drugs, _, _ = silver
    top = top_terms(term_matches(drugs, reports, study), limit=1)
    got = [(r["list"], r["token"], r["kept"], r["drugname"], r["rank"], r["token_names"], r["token_rows"],
            r["list_rows"]) for r in top.to_dict("records")]
    nan = got[-1][2]  # the exclusion drug rows have no kept (null)
    assert got[:6] == [
        (E, "BOTULINUM", True, "BOTOX", 1, 3, 5, 6), (E, "BOTULINUM", False, "BABYBIG ANTITOXIN", 1, 2, 2, 2),
        (E, "BOTOX", True, "BOTOX", 1, 2, 4, 6), (E, "DYSPORT", True, "DYSPORT", 1, 1, 1, 6),
        (X, "ANTITOXIN", False, "BABYBIG ANTITOXIN", 1, 2, 2, 2), (X, "IMMUNE GLOBULIN", False, "BABYBIG ANTITOXIN", 1, 1, 1, 2),
    ]
    assert [g[:2] + g[3:] for g in got[6:]] == [(D, "SERTRALINE", "ZOLOFT", 1, 1, 1, 1), (D, "ZOLOFT", "ZOLOFT", 1, 1, 1, 1)]
    assert pd.isna(nan)
    assert list(top.columns[:len(TERM_COLUMNS)]) == TERM_COLUMNS


def test_cohort_indications_count_members_per_pt(spark, silver, study):
    reports, drugs, indi, reac = silver
    members = cohort_members(spark, reports, drugs, indi, reac, study)
    ind = cohort_indications(indi, members, study)
    assert list(ind.columns) == INDICATION_COLUMNS
    assert len(ind) == sum(len(c.indications) for c in study.cohorts)  # every PT of the study, zeros too
    found = {(r["cohort"], r["indication_pt"]): (r["exposed_reports"], r["control_reports"])
             for r in ind.to_dict("records") if r["exposed_reports"] or r["control_reports"]}
    assert found == {
        ("migraine", "MIGRAINE"): (3, 2),  # exposed 1, 2, 5; controls 4 (antitoxin), 8; 7 excluded
        ("migraine", "CHRONIC MIGRAINE"): (1, 0),
        ("spasticity", "MUSCLE SPASTICITY"): (1, 0),
        ("torticollis", "TORTICOLLIS"): (1, 0),
        ("blepharospasm", "BLEPHAROSPASM"): (0, 1),
    }
    assert list(ind["cohort"].drop_duplicates()) == [c.name for c in study.cohorts]
    assert list(ind[ind["cohort"] == "migraine"]["indication_pt"]) == study.cohorts[1].indications


# --------------------------------------------------------------------------- #
# a warehouse of the frames above: the command and the study folder
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def warehouse(spark, silver, tmp_path_factory, seal_silver):
    root = tmp_path_factory.mktemp("terms")
    wh = Warehouse(str(root / "wh"))
    for name, df in zip(["reports", "drugs", "indications", "reactions"], silver, strict=True):
        wh.write(df, "silver", name)
    seal_silver(spark, wh)
    return root


def test_terms_command_prints_and_writes_every_match(warehouse, capsys):
    out = warehouse / "terms_out"
    assert main(["terms", "--warehouse", str(warehouse / "wh"), "--output", str(out), "--limit", "2", "-q"]) == 0
    text = capsys.readouterr().out
    block = text.split("removed by exclusion token ANTITOXIN: 2 names, 2 drug rows\n")[1].split("\n\n")[0]
    assert "BOTULISM ANTITOXIN HEPTAVALENT  [prod_ai: BOTULINUM ANTITOXIN HEPTAVALENT (EQUINE)]" in block
    assert "BABYBIG ANTITOXIN" in block
    assert "exposure token BOTULINUM: 3 names, 5 drug rows\n" in text
    assert "... and 1 more (the first 2 shown; terms.csv has them all)" in text  # BOTULINUM's third kept name
    assert "exposure drug rows by tokens: 6 (each counted once" in text
    assert "\nexposure tokens with no drug row (or only removed ones): XEOMIN, MYOBLOC, NEUROBLOC," in text
    assert "removed by exclusion token IMMUNE GLOBULIN: 1 name, 1 drug row\n" in text
    csv = pd.read_csv(out / "terms.csv", keep_default_na=False)
    assert list(csv.columns) == TERM_COLUMNS
    assert len(csv) == len(EXPECTED)
    assert [(r["list"], r["token"], r["drugname"], r["drug_rows"]) for r in csv.to_dict("records")] == [
        (r[0], r[1], r[3], r[8]) for r in EXPECTED]
    ind = pd.read_csv(out / "indications.csv")
    assert list(ind.columns) == INDICATION_COLUMNS
    assert "cohort migraine:" in text and "MIGRAINE" in text


def test_terms_command_errors_are_one_sentence(tmp_path, capsys):
    assert main(["terms", "--warehouse", str(tmp_path / "none"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("faerslake: error: no silver tables under") and err.count("\n") == 1
    (tmp_path / "o" / "terms.csv").mkdir(parents=True)
    assert main(["terms", "--warehouse", str(tmp_path / "none"), "--output", str(tmp_path / "o"), "-q"]) == 2
    assert "holds a folder named terms.csv" in capsys.readouterr().err


def test_the_study_folder_has_the_terms_and_the_report_section(spark, warehouse, study, tmp_path):
    out = warehouse / "study_out"
    assert main(["terms", "--warehouse", str(warehouse / "wh"), "--output", str(tmp_path), "-q"]) == 0
    run_study(spark, str(warehouse / "wh"), study, str(out), log=lambda m: None)
    folder = out / study.name
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["cohort_results.csv", "mantel_haenszel.csv", "forest_plot.png", "forest_plot.svg", "report.md", "report.html",
         "terms.csv", "indications.csv", "matcher_sensitivity.csv", "trend.csv", "trend_plot.png",
         "demographics.csv", "cases.csv"])
    assert (folder / "terms.csv").read_bytes() == (tmp_path / "terms.csv").read_bytes()
    assert (folder / "indications.csv").read_bytes() == (tmp_path / "indications.csv").read_bytes()
    md = (folder / "report.md").read_text()
    section = md.split("## What the terms matched")[1].split("\n## ")[0]
    assert "Removed by exclusion token ANTITOXIN" in section
    assert "BOTULISM ANTITOXIN HEPTAVALENT" in section
    assert "| migraine | MIGRAINE | 3 | 2 |" in section
    assert "MEDYTOX" in section
