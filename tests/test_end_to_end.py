"""End to end, in process: ``pipeline.run`` on generated data and on a genuine sample.

1. A generated archive of both eras (damaged lines, versions, deletions,
   decoys): every CSV a user sees equals the generator's ``_truth.json``
   (audit per file, de-duplication per quarter, the eight 2x2 tables).
2. The genuine 2025Q4 sample (BOTOX rows, depression reactions): the cohort
   counts equal an independent pandas reading of the raw files with the
   spec's rules written out again here, not imported from faerslake.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from browser_check import assert_renders, chromium
from faerslake.config import load_pipeline_config, load_study
from faerslake.generate import generate
from faerslake.pipeline import run

CFG = load_pipeline_config(None, ["spark.shuffle_partitions=2"])


@pytest.fixture(scope="module")
def generated_run(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    src = root / "src"
    generate(src, reports=400, seed=11, log=lambda m: None)
    study = load_study()
    results = run(spark, str(src), str(root / "wh"), str(root / "out"), study=study,
                  cfg=CFG, log=lambda m: None)
    return root, json.loads((src / "_truth.json").read_text()), results


def test_cohort_results_equal_the_planted_truth(generated_run):
    root, truth, results = generated_run
    csv = pd.read_csv(root / "out" / "botox_depression" / "cohort_results.csv")
    assert list(csv.columns[:12]) == [
        "study", "cohort", "exposed_reports", "exposed_events", "control_reports", "control_events",
        "ror", "ror_ci_lower", "ror_ci_upper", "haldane_corrected", "fisher_p", "fisher_q"]
    assert list(csv["cohort"]) == truth["cohort_order"]
    for row in csv.itertuples():
        t = truth["cohorts"][row.cohort]
        assert (row.exposed_reports, row.exposed_events, row.control_reports, row.control_events) == (
            t["exposed_reports"], t["exposed_events"], t["control_reports"], t["control_events"]), row.cohort
    assert list(results["cohort"]) == truth["cohort_order"]


def test_trend_demographics_and_cases_reconcile_with_the_results(generated_run):
    """Issue #18's analyst files of the generated run: per cohort the yearly
    a, b, c, d sum to its results row, the demographics to its reports, and
    cases.csv has exactly its exposed events, each with a caseid, quarter and PTs."""
    root, _, _ = generated_run
    folder = root / "out" / "botox_depression"
    res = pd.read_csv(folder / "cohort_results.csv").set_index("cohort")
    trend = pd.read_csv(folder / "trend.csv", dtype={"period": str})
    yearly = trend[trend["level"] == "year"].groupby("cohort", sort=False)[["a", "b", "c", "d"]].sum()
    assert list(yearly.index) == list(res.index)
    assert (yearly == res[["a", "b", "c", "d"]]).all().all()
    assert res["exposed_events"].sum() > 0  # the check below is not vacuous
    demo = pd.read_csv(folder / "demographics.csv")
    # every cohort has each of the four variables (the loop below is not vacuous)
    assert sorted(map(tuple, demo[["cohort", "variable"]].drop_duplicates().values)) == sorted(
        (c, v) for c in res.index for v in ("sex", "age_band", "reporter_type", "era"))
    sums = demo.groupby(["cohort", "variable"], sort=False)[["exposed_n", "control_n"]].sum()
    for (cohort, _var), row in sums.iterrows():
        assert (row["exposed_n"], row["control_n"]) == (res.loc[cohort, "exposed_reports"],
                                                        res.loc[cohort, "control_reports"])
    cases = pd.read_csv(folder / "cases.csv", dtype=str, keep_default_na=False)
    per = cases.groupby("cohort").size()
    assert {c: int(per.get(c, 0)) for c in res.index} == res["exposed_events"].astype(int).to_dict()
    assert (cases["caseid"] != "").all() and (cases["quarter"] != "").all() and (cases["reaction_pts"] != "").all()


def test_dedup_summary_equals_the_truth(generated_run):
    root, truth, _ = generated_run
    dd = pd.read_csv(root / "out" / "dedup_summary.csv", dtype={"scope": str})
    assert list(dd["scope"]) == ["all"] + sorted(k for k in truth["dedup"] if k != "all")
    for row in dd.itertuples():
        t = truth["dedup"][row.scope]
        assert (row.reports_read, row.removed_deleted, row.removed_older_versions, row.reports_kept) == (
            t["reports_read"], t["removed_deleted"], t["removed_older_versions"], t["reports_kept"]), row.scope
        assert row.reports_read == (row.removed_deleted + row.removed_older_versions
                                    + row.removed_strict_duplicates + row.reports_kept)


def test_ingest_audit_equals_the_truth_and_reconciles(generated_run):
    root, truth, _ = generated_run
    audit = pd.read_csv(root / "out" / "ingest_audit.csv")
    tables = audit[audit["table"] != "deleted_cases"]
    expected = {(t["quarter"], t["table"]): t for t in truth["ingest"]}
    assert len(tables) == len(expected)
    for row in tables.itertuples():
        t = expected[(row.quarter, row.table)]
        assert row.source_file.endswith(t["file"].split("/")[-1])
        assert (row.lines_read, row.rows_loaded, row.rows_repaired, row.lines_repaired, row.rows_quarantined) == (
            t["lines_read"], t["rows_loaded"], t["rows_repaired"], t["lines_repaired"], t["rows_quarantined"])
    assert (audit["lines_read"] == audit["rows_loaded"] - audit["rows_repaired"] + audit["lines_repaired"]
            + audit["rows_quarantined"]).all()
    assert tables["rows_repaired"].sum() > 0 and tables["rows_quarantined"].sum() > 0  # damage was met


def test_terms_list_every_name_the_tokens_matched_and_reconcile(spark, generated_run, capsys):
    """terms.csv of the study folder against plain Python over silver drugs:
    every drugname BOTOX / BOTULINUM found, the antitoxin decoy under
    ANTITOXIN, and the kept rows (each counted once) = the exposure drug rows."""
    from faerslake.cli import main
    from faerslake.tables import Warehouse

    root, _, _ = generated_run
    study = load_study()
    wh = Warehouse(str(root / "wh"))
    reports = {tuple(r) for r in wh.read(spark, "silver", "reports").select("report_key", "quarter").collect()}
    drugs = [r.asDict() for r in wh.read(spark, "silver", "drugs").select(
        "report_key", "quarter", "drugname_norm", "prod_ai_norm").collect()
        if (r["report_key"], r["quarter"]) in reports]

    def has(d, tokens):
        return any(t in (d["drugname_norm"] or "") or t in (d["prod_ai_norm"] or "") for t in tokens)

    terms = pd.read_csv(root / "out" / "botox_depression" / "terms.csv", keep_default_na=False)
    expo = terms[terms["list"] == "exposure.tokens"]
    for token in ("BOTOX", "BOTULINUM"):
        want = {d["drugname_norm"] or "" for d in drugs if has(d, [token])}
        assert set(expo[expo["token"] == token]["drugname"]) == want, token
    antitoxin = terms[(terms["list"] == "exposure.exclude_tokens") & (terms["token"] == "ANTITOXIN")]
    assert "BOTULISM ANTITOXIN HEPTAVALENT" in set(antitoxin["drugname"])
    kept = expo[(expo["kept"].astype(str) == "True") & (expo["first_match"].astype(str) == "True")]["drug_rows"].sum()
    assert kept == sum(has(d, study.exposure.tokens) and not has(d, study.exposure.exclude_tokens) for d in drugs)
    assert main(["terms", "--warehouse", str(root / "wh"), "-q"]) == 0
    text = capsys.readouterr().out
    block = text.split("removed by exclusion token ANTITOXIN: ")[1].split("\n\n")[0]
    assert "BOTULISM ANTITOXIN HEPTAVALENT  [prod_ai: BOTULINUM ANTITOXIN HEPTAVALENT (EQUINE)]" in block
    assert f"exposure drug rows by tokens: {kept:,} " in text


# --------------------------------------------------------------------------- #
# the results as a reader without Spark gets them
# --------------------------------------------------------------------------- #
# Run in a fresh interpreter (-I: no PYTHONPATH, so no faerslake either): read
# the table with delta-rs, prove no Spark was imported, keep the frame.
_READ_WITHOUT_SPARK = textwrap.dedent("""
    import os, sys
    import deltalake
    table, dest = sys.argv[1], sys.argv[2]
    frame = deltalake.DeltaTable(table).to_pandas()
    assert "pyspark" not in sys.modules and "py4j" not in sys.modules, "Spark was imported"
    def parent(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[1]
        except OSError:  # gone since listed
            return None
    children = [p for p in os.listdir("/proc") if p.isdigit() and parent(p) == str(os.getpid())]
    assert not children, f"child processes {children}"
    frame.to_pickle(dest)
""")

# the CSV's columns read as the table's Arrow types
_CSV_DTYPES = {"int64": "int64", "float64": "float64", "bool": "bool", "object": str}


def test_cohort_results_read_without_spark_equal_the_csv(generated_run, tmp_path):
    root, truth, _ = generated_run
    table = root / "wh" / "gold" / "botox_depression" / "cohort_results"
    # a `java` that leaves a mark: any attempt of the reader to start a JVM is seen
    fake_java = tmp_path / "jdk" / "bin" / "java"
    fake_java.parent.mkdir(parents=True)
    fake_java.write_text(f"#!/bin/sh\ntouch {tmp_path / 'java-started'}\nexit 1\n")
    fake_java.chmod(0o755)
    env = {"PATH": f"{fake_java.parent}:/usr/bin:/bin", "JAVA_HOME": str(fake_java.parents[1]),
           "HOME": str(tmp_path)}
    dest = tmp_path / "frame.pkl"
    done = subprocess.run([sys.executable, "-I", "-c", _READ_WITHOUT_SPARK, str(table), str(dest)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "java-started").exists(), "reading the table started java"
    got = pd.read_pickle(dest)

    csv_path = root / "out" / "botox_depression" / "cohort_results.csv"
    assert list(got.columns) == list(pd.read_csv(csv_path, nrows=0).columns)  # the same columns, in order
    dtypes = {c: _CSV_DTYPES[str(t)] for c, t in got.dtypes.items()}  # a dtype outside the map fails here
    csv = pd.read_csv(csv_path, dtype=dtypes, keep_default_na=False, na_values={
        c: [""] for c, t in dtypes.items() if t == "float64"}, float_precision="round_trip")
    # a Delta table has no row order: the CSV's is the study's, and `cohort` is the key
    assert got["cohort"].is_unique and sorted(got["cohort"]) == sorted(truth["cohort_order"])
    got = got.set_index("cohort").loc[list(csv["cohort"])].reset_index()[list(csv.columns)]
    assert list(csv["cohort"]) == truth["cohort_order"] and len(got) == len(csv) == 8
    pd.testing.assert_frame_equal(got, csv, check_exact=True)
    assert got["ror"].notna().sum() > 0 and got["exposed_reports"].sum() > 0


def test_study_report_renders_alone_in_a_browser(generated_run, tmp_path):
    """report.html by itself in an empty folder: the forest plot and the trend plot are embedded, load and fit."""
    root, _, _ = generated_run
    with chromium() as browser:
        r = assert_renders(browser, root / "out" / "botox_depression" / "report.html", tmp_path / "alone",
                           min_images=2)
    assert [img["alt"] for img in r.images] == ["forest plot of ROR per cohort",
                                                "cumulative ROR by quarter per cohort, with 95 % CI band"]
    assert all(img["src"].startswith("data:image/png;base64,") for img in r.images)


# --------------------------------------------------------------------------- #
# genuine 2025Q4 sample: an independent reading with pandas
# --------------------------------------------------------------------------- #
def _read(path):
    return pd.read_csv(path, sep="$", dtype=str, quoting=3, keep_default_na=False, encoding="cp1252")


def _num(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s, errors="coerce")


def _norm_drug(s: pd.Series) -> pd.Series:
    return s.str.upper().str.strip().map(lambda x: re.sub(r"\s+", " ", x)).str.rstrip(".").str.strip()


def independent_cohorts(folder, study) -> dict[str, tuple[int, int, int, int]]:
    demo = _read(folder / "DEMO25Q4.txt")
    drug = _read(folder / "DRUG25Q4.txt")
    indi = _read(folder / "INDI25Q4.txt")
    reac = _read(folder / "REAC25Q4.txt")
    demo["key"], demo["case"], demo["ver"] = _num(demo.primaryid), _num(demo.caseid), _num(demo.caseversion)
    demo = demo.sort_values(["ver", "fda_dt", "key"], ascending=False).drop_duplicates("case")
    keys = set(demo["key"])
    drug["key"], drug["seq"] = _num(drug.primaryid), _num(drug.drug_seq)
    drug = drug[drug.key.isin(keys)].copy()
    text = _norm_drug(drug.drugname) + "\n" + _norm_drug(drug.prod_ai)

    def matches(tokens, excl=()):
        hit = text.map(lambda t: any(k in t for k in tokens))
        bad = text.map(lambda t: any(k in t for k in excl))
        # a row matches when drugname or prod_ai holds a token and neither holds an exclusion
        return hit & ~bad

    drug["exposure"] = matches(study.exposure.tokens, study.exposure.exclude_tokens)
    drug["antidep"] = matches(study.exclusions.drug_tokens)
    indi["key"], indi["seq"] = _num(indi.primaryid), _num(indi.indi_drug_seq)
    indi["pt"] = indi.indi_pt.str.strip().str.upper()
    reac["key"] = _num(reac.primaryid)
    events = set(reac[reac.pt.str.strip().str.upper().isin(study.outcome_pts)].key)
    excluded = set(indi[indi.pt.isin(study.outcome_pts)].key) | set(drug[drug.antidep].key)
    exposed_reports = set(drug[drug.exposure].key)
    linked = drug.merge(indi, on=["key", "seq"])
    out = {}
    for c in study.cohorts:
        in_k = linked[linked.pt.isin(c.indications)]
        exposed = set(in_k[in_k.exposure].key) - excluded
        control = set(in_k.key) - exposed_reports - excluded
        out[c.name] = (len(exposed), len(exposed & events), len(control), len(control & events))
    return out


def test_genuine_2025q4_sample_cohorts_match_an_independent_reading(spark, samples, tmp_path):
    folder = samples / "2025q4-sample"
    study = load_study()
    expected = independent_cohorts(folder, study)
    assert sum(v[0] for v in expected.values()) > 0, "the sample should hold BoNT reports in a cohort"
    results = run(spark, str(folder), str(tmp_path / "wh"), str(tmp_path / "out"), study=study,
                  cfg=CFG, log=lambda m: None)
    got = {r.cohort: (r.exposed_reports, r.exposed_events, r.control_reports, r.control_events)
           for r in results.itertuples()}
    assert got == expected
