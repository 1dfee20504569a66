"""The study report: files written, a real PNG forest plot, the cohort table,
published figures, data summaries and provenance; missing pieces say so."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata

import faerslake
import pandas as pd
import pytest
from faerslake import gold, report, stats
from faerslake.config import load_study
from faerslake.contracts import SILVER
from faerslake.tables import Warehouse
from matplotlib.image import imread

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def study():
    return load_study()


def results_for(study, counts):
    """counts: cohort -> (a, b, c, d); cohorts in study order, missing = empty."""
    rows = []
    for c in study.cohorts:
        a, b, cc, d = counts.get(c.name, (0, 0, 0, 0))
        rows.append({"study": study.name, "cohort": c.name, "exposed_reports": a + b, "exposed_events": a,
                     "control_reports": cc + d, "control_events": cc})
    return stats.cohort_statistics(pd.DataFrame(rows))


COUNTS = {
    "cosmetic": (40, 20644, 2, 1212),
    "migraine": (57, 4123, 1310, 55365),
    "sialorrhea": (0, 157, 40, 1134),  # Haldane
    "bladder": (12, 903, 520, 30307),
}


@pytest.fixture()
def full_context(study):
    dedup = pd.DataFrame({
        "scope": ["all", "2012Q4", "2013Q1"], "reports_read": [1200, 500, 700],
        "removed_deleted": [10, 4, 6], "removed_older_versions": [90, 40, 50],
        "removed_strict_duplicates": [0, 0, 0], "reports_kept": [1100, 456, 644],
    })
    manifest = pd.DataFrame({
        "source": ["faers_ascii_2012q4.zip", "faers_ascii_2013q1.zip"], "quarter": ["2012Q4", "2013Q1"],
        "sha256": ["a" * 64, "b" * 64], "size_bytes": [123456, 234567],
    })
    return {
        "study": study, "warehouse": "/data/wh", "quarters": ["2012Q4", "2013Q1"],
        "quarters_text": "2012Q4–2013Q1", "dedup_summary": dedup,
        "audit_totals": {"table_files": 14, "quarters": 2, "lines_read": 98765, "rows_loaded": 98700,
                         "rows_repaired": 3, "lines_repaired": 6, "rows_quarantined": 62},
        "source_manifest": manifest,
        "table_versions": {"silver/reports": 3, "silver/drugs": 3, "gold/botox_depression/cohort_results": 7},
        "mantel_haenszel": pd.DataFrame({
            "study": study.name, "cohort": ["cosmetic", "migraine"], "strata": "sex, age band, era",
            "strata_used": [12, 20], "crude_ror": [1.17, 0.584], "mh_ror": [1.1, 0.61234],
            "mh_ci_lower": [0.25, 0.45], "mh_ci_upper": [4.9, 0.83]}),
        "faerslake_version": "9.9.9", "generated_at": "2026-11-26 16:00:00 UTC",
        "strict_dedup": False,
        "software": {"faerslake": "9.9.9", "git commit": "0123abc", "Python": "3.11.9", "Spark": "3.5.3",
                     "delta-spark": "3.2.1"},
    }


def test_report_files_and_contents(tmp_path, study, full_context):
    results = results_for(study, COUNTS)
    paths = report.write_report(tmp_path, results, full_context)
    assert set(paths) == {"md", "html", "png", "svg"}
    for p in paths.values():
        assert p.exists() and p.stat().st_size > 0
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes left no temp files

    png = paths["png"].read_bytes()
    assert png.startswith(PNG_MAGIC)
    img = imread(paths["png"])
    assert img.shape[0] > 100 and img.shape[1] > 300

    md = paths["md"].read_text()
    assert "| cohort | exposed | exposed events | control | control events | ROR | 95 % CI |" in md
    section = md.split("## Cohort results", 1)[1].split("\n## ", 1)[0]
    lines = {ln.split("|")[1].strip(): ln for ln in section.splitlines() if ln.startswith("| ")}
    # migraine: 4,180 exposed (57 events), 56,675 controls (1,310 events)
    mig = [c.strip() for c in lines["migraine"].split("|")[1:-1]]
    r = results.set_index("cohort").loc["migraine"]
    assert r["ror"] == pytest.approx((57 / 4123) / (1310 / 55365))  # 0.58428...
    assert mig[:6] == ["migraine", "4,180", "57", "56,675", "1,310", "0.584"]
    assert mig[7] == "no"
    sia = [c.strip() for c in lines["sialorrhea"].split("|")[1:-1]]
    assert sia[7] == "yes"
    hyp = [c.strip() for c in lines["hyperhidrosis"].split("|")[1:-1]]
    assert hyp[5:7] == ["–", "–"]  # not estimable
    assert "![forest plot of ROR per cohort](forest_plot.png)" in md

    # published figures beside ours
    assert "20,684" in md and "56,675" in md and "0.77 (0.43–1.43)" in md
    assert "no depression report among BoNT patients" in md
    # data and provenance
    assert "Quarters covered: 2012Q4–2013Q1 (2 quarters)." in md
    assert "| 14 | 2 | 98,765 | 98,700 | 3 | 6 | 62 |" in md
    assert "| all | 1,200 | 10 | 90 | 0 | 1,100 |" in md
    assert study.sha256 in md and study.source_path in md
    assert study.sha256 == hashlib.sha256(open(study.source_path, "rb").read()).hexdigest()
    assert "| silver/reports | 3 |" in md and "| gold/botox_depression/cohort_results | 7 |" in md
    assert "a" * 64 in md and "b" * 64 in md
    assert "versionAsOf" in md
    assert "| migraine | 20 | 0.584 | 0.612 | 0.45–0.83 |" in md
    assert "not available" not in md

    page = paths["html"].read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    # the picture is embedded: the page stands alone (PNG bytes as a data URI)
    png = paths["png"].read_bytes()
    assert '<img src="data:image/png;base64,' + base64.b64encode(png).decode("ascii") + '"' in page
    assert '<img src="forest_plot.png"' not in page
    assert "<td>migraine</td><td>4,180</td><td>57</td><td>56,675</td><td>1,310</td>" in page
    assert study.sha256 in page and "<td>silver/reports</td><td>3</td>" in page
    md_tables = sum(1 for ln in md.splitlines() if ln.startswith("|---"))
    assert md_tables >= 7 and page.count("<table>") == md_tables


def test_forest_plot_axes(study):
    results = results_for(study, COUNTS)
    fig = report.forest_plot_figure(results)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    vlines = [ln for ln in ax.get_lines() if list(ln.get_xdata()) == [1.0, 1.0]]
    assert len(vlines) == 1
    labels = [t.get_text() for _, t in sorted(zip(ax.get_yticks(), ax.get_yticklabels(), strict=True),
                                              key=lambda p: -p[0])]
    assert labels[0] == "cosmetic (n=20,684 / 1,214)"  # top to bottom in study order
    assert labels[-1] == "bladder (n=915 / 30,827)"
    assert [lb.split()[0] for lb in labels] == [c.name for c in study.cohorts]
    assert len(labels) == len(study.cohorts)
    lo, hi = ax.get_xlim()
    finite = results.dropna(subset=["ror"])
    assert lo < finite["ror_ci_lower"].min() and hi > finite["ror_ci_upper"].max()
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("not estimable") == 4  # spasticity, torticollis, blepharospasm, hyperhidrosis


def test_report_with_nothing_upstream_and_no_estimates(tmp_path, study):
    results = results_for(study, {})  # every cohort empty: every ROR null
    paths = report.write_report(tmp_path / "nested" / "out", results, {"study": study})
    assert paths["png"].read_bytes().startswith(PNG_MAGIC)
    md = paths["md"].read_text()
    for line in ["Quarters covered: not available.", "Mantel–Haenszel pooled ROR: not available.", "Ingest audit totals: not available.",
                 "De-duplication summary: not available.", "Delta table versions: not available.",
                 "Source manifest SHA-256s: not available."]:
        assert line in md
    # a study without a published section, and no study object at all
    import dataclasses

    bare = dataclasses.replace(study, published={})
    md2 = report.write_report(tmp_path / "bare", results, {"study": bare})["md"].read_text()
    assert "no `published` section: not available" in md2
    md3 = report.write_report(tmp_path / "none", results, {})["md"].read_text()
    assert md3.startswith("# faerslake study: botox_depression")


def test_html_escapes_text(tmp_path, study):
    import dataclasses

    odd = dataclasses.replace(study, description="<script>alert(1)</script> & co")
    page = report.write_report(tmp_path, results_for(odd, COUNTS), {"study": odd})["html"].read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page


# --------------------------------------------------------------------------- #
# run_study with every upstream table present: real versions and hashes
# --------------------------------------------------------------------------- #
def test_run_study_report_provenance(spark, study, tmp_path, seal_silver):
    root = str(tmp_path / "wh")
    wh = Warehouse(root)
    wh.write(spark.createDataFrame(
        [(1, 11, 1, "faers", "2013Q1", "20130105", None, None, 40.0, "F", "US", "MD", "EXP", "I"),
         (2, 12, 1, "faers", "2013Q1", "20130105", None, None, 50.0, "M", "US", "MD", "EXP", "I")],
        SILVER["reports"]), "silver", "reports")
    wh.write(spark.createDataFrame(
        [(1, "2013Q1", 1, "PS", "BOTOX", None, "BOTOX", None),
         (2, "2013Q1", 1, "PS", "TOPIRAMATE", None, "TOPIRAMATE", None)],
        SILVER["drugs"]), "silver", "drugs")
    indi = spark.createDataFrame(
        [(1, "2013Q1", 1, "MIGRAINE", "MIGRAINE"), (2, "2013Q1", 1, "MIGRAINE", "MIGRAINE")],
        SILVER["indications"])
    wh.write(indi, "silver", "indications")
    wh.write(indi, "silver", "indications")  # second commit: version 1
    wh.write(spark.createDataFrame([(2, "2013Q1", "DEPRESSION", "DEPRESSION")],
                                   SILVER["reactions"]),
             "silver", "reactions")
    wh.write(spark.createDataFrame(
        [("all", 2, 0, 0, 0, 2), ("2013Q1", 2, 0, 0, 0, 2)],
        "scope STRING, reports_read BIGINT, removed_deleted BIGINT, removed_older_versions BIGINT, "
        "removed_strict_duplicates BIGINT, reports_kept BIGINT"), "silver", "dedup_summary")
    wh.write(spark.createDataFrame(
        [("2013Q1", "demo", "x/DEMO13Q1.txt", 2, 2, 0, 0, 0, "f" * 64, None),
         ("2013Q1", "drug", "x/DRUG13Q1.txt", 3, 2, 0, 0, 1, "e" * 64, None)],
        "quarter STRING, table STRING, source_file STRING, lines_read BIGINT, rows_loaded BIGINT, "
        "rows_repaired BIGINT, lines_repaired BIGINT, rows_quarantined BIGINT, sha256 STRING, "
        "ingested_at TIMESTAMP"), "bronze", "ingest_audit")
    wh.write(spark.createDataFrame(
        [("faers_ascii_2013q1.zip", "2013Q1", "c" * 64, 1000, None)],
        "source STRING, quarter STRING, sha256 STRING, size_bytes BIGINT, ingested_at TIMESTAMP"),
        "bronze", "source_manifest")

    seal_silver(spark, wh)
    out = tmp_path / "out"
    results = gold.run_study(spark, root, study, str(out), log=lambda m: None)
    mig = results.set_index("cohort").loc["migraine"]
    assert (mig["exposed_reports"], mig["exposed_events"], mig["control_reports"], mig["control_events"]) \
        == (1, 0, 1, 1)
    md = (out / study.name / "report.md").read_text()
    assert "| silver/indications | 1 |" in md and "| silver/reports | 0 |" in md
    assert "| gold/botox_depression/cohort_results | 0 |" in md
    assert "| bronze/source_manifest | 0 |" in md
    assert "c" * 64 in md
    assert "Quarters covered: 2013Q1 (1 quarter)." in md
    assert "| 2 | 1 | 5 | 4 | 0 | 0 | 1 |" in md  # audit totals
    assert "| 2013Q1 | 2 | 0 | 0 | 0 | 2 |" in section_text(md, "Appendix")  # dedup per quarter
    assert "- strict de-duplication: off (" in md  # the sealed build ran without the strict pass
    soft = report.ReportContext.software_versions(spark)
    assert (f"Software: faerslake {faerslake.__version__}; git commit {soft['git commit']}; Python "
            f"{soft['Python']}; Spark {spark.version}; delta-spark {soft['delta-spark']}.") in md
    assert study.sha256 in md
    assert "not available" not in md
    # the gold versions in the report are the tables' real current versions
    for name in ("cohort_members", "cohort_results", "mantel_haenszel"):
        v = wh.version(spark, "gold", f"botox_depression/{name}")
        assert f"| gold/botox_depression/{name} | {v} |" in md


# --------------------------------------------------------------------------- #
# the analyst's report (#18): summary, contents, 2x2, methods, limitations
# --------------------------------------------------------------------------- #
def section_text(md: str, title: str) -> str:
    """The Markdown of one section (its heading excluded)."""
    return md.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_summary_states_direction_ror_ci_q_and_the_count(tmp_path, study, full_context):
    md = report.write_report(tmp_path, results_for(study, COUNTS), full_context)["md"].read_text()
    assert md.index("## Summary") < md.index("## Cohort results")  # the answer first
    summary = section_text(md, "Summary")
    assert summary.splitlines()[1] == ("2 of 8 cohorts show a significantly lower and 0 a significantly higher "
                                       "reporting rate (BH q &lt; 0.05); 4 are not estimable.")
    assert "ROR &lt; 1 means that the event (depression, major depression, depressed mood, …) was reported " \
           "less often among the exposed reports" in summary
    bullets = [ln[2:] for ln in summary.splitlines() if ln.startswith("- ")]
    assert bullets == [
        "cosmetic: reported more often among exposed (ROR 1.17 [95 % CI 0.283–4.86], BH q 1.000; not significant).",
        "migraine: reported less often among exposed (ROR 0.584 [95 % CI 0.447–0.763], BH q 2.33e-04; "
        "significant).",
        "spasticity: not estimable (no exposed reports).",
        "torticollis: not estimable (no exposed reports).",
        "blepharospasm: not estimable (no exposed reports).",
        "hyperhidrosis: not estimable (no exposed reports).",
        "sialorrhea: reported less often among exposed (ROR 0.0889 [95 % CI 0.00544–1.45], Haldane-corrected, "
        "BH q 0.043; significant, though the 95 % CI includes 1).",
        "bladder: reported less often among exposed (ROR 0.775 [95 % CI 0.435–1.38], BH q 1.000; not significant).",
    ]
    # a higher rate counts as such; a cohort with no event anywhere says why it has no ROR
    more = results_for(study, {"cosmetic": (400, 20284, 2, 1212), "migraine": (0, 10, 0, 20)})
    md2 = report.write_report(tmp_path / "more", more, {"study": study})["md"].read_text()
    s2 = section_text(md2, "Summary")
    assert s2.splitlines()[1].startswith("0 of 8 cohorts show a significantly lower and 1 a significantly higher")
    assert "- migraine: not estimable (no report with the event)." in s2


def test_contents_link_every_section_and_the_subtitle_is_the_description(tmp_path, study, full_context):
    import re

    from faerslake.report.document import section_ids, slug

    paths = report.write_report(tmp_path, results_for(study, COUNTS), full_context)
    md, page = paths["md"].read_text(), paths["html"].read_text()
    first_line = study.description.strip().splitlines()[0]
    assert md.splitlines()[2] == first_line
    assert f'<p class="subtitle">{first_line}</p>' in page
    titles = [ln[3:] for ln in md.splitlines() if ln.startswith("## ")]
    links = re.findall(r"^- \[(.+)\]\(#([^)]+)\)$", md.split("\n## ", 1)[0], flags=re.M)
    assert [t for t, _ in links] == titles and titles[0] == "Summary"
    assert [a for _, a in links] == [slug(t) for t in titles]
    assert slug("Mantel–Haenszel pooled ROR (extra)") == "mantelhaenszel-pooled-ror-extra"  # as GitHub
    # HTML: the contents' links are exactly the headings' ids, in order
    hrefs = re.findall(r'<li><a href="#([^"]+)">', page)
    ids = re.findall(r'<h2 id="([^"]+)">', page)
    assert hrefs == ids == [a for _, a in links]
    assert section_ids([report.Section("A b"), report.Section("A b")]) == ["a-b", "a-b-1"]


def test_two_by_two_with_event_rates_and_prr_ci(tmp_path, study, full_context):
    import numpy as np
    from statsmodels.stats.contingency_tables import Table2x2

    paths = report.write_report(tmp_path, results_for(study, COUNTS), full_context)
    md, page = paths["md"].read_text(), paths["html"].read_text()
    sec = section_text(md, "2×2 tables and event rates")
    rows = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[1:-1]]
            for ln in sec.splitlines() if ln.startswith("| ")}
    assert rows["cohort"] == ["cohort", "a", "b", "c", "d", "event % exposed", "event % control", "PRR",
                              "PRR 95 % CI", "Haldane", "χ² (Yates)"]
    # migraine: 57/4,180 = 1.36 %, 1,310/56,675 = 2.31 %; PRR 0.590 (0.453–0.768)
    assert rows["migraine"] == ["migraine", "57", "4,123", "1,310", "55,365", "1.36 %", "2.31 %", "0.59",
                                "0.453–0.768", "no", "15.50"]
    lo, hi = Table2x2(np.array([[57, 4123], [1310, 55365]])).riskratio_confint(method="normal")
    assert (round(lo, 3), round(hi, 3)) == (0.453, 0.768)
    assert rows["cosmetic"][5:9] == ["0.19 %", "0.16 %", "1.17", "0.284–4.85"]
    # a = 0: event % 0.00, PRR and CI Haldane-corrected
    assert rows["sialorrhea"] == ["sialorrhea", "0", "157", "40", "1,134", "0.00 %", "3.41 %", "0.0918",
                                  "0.00567–1.49", "yes", "4.41"]
    assert rows["spasticity"][1:] == ["0", "0", "0", "0", "–", "–", "–", "–", "no", "–"]
    assert "<td>migraine</td><td>57</td><td>4,123</td><td>1,310</td><td>55,365</td><td>1.36 %</td>" in page


def test_methods_can_be_checked_line_by_line(tmp_path, study, full_context):
    md = report.write_report(tmp_path, results_for(study, COUNTS), full_context)["md"].read_text()
    methods = section_text(md, "Methods")
    lines = methods.splitlines()
    assert "Source: the FDA Adverse Event Reporting System quarterly ASCII extracts (legacy AERS to 2012Q3, " \
           "FAERS from 2012Q4); quarters covered: 2012Q4–2013Q1 (2 quarters)." in lines
    assert any(ln.startswith("- strict de-duplication: off (") for ln in lines)
    assert any("deleted-case list" in ln for ln in lines) and any("`caseversion`, `fda_dt`" in ln for ln in lines)
    # the exposure, the FULL exclusion list (every token), event PTs, role codes, cohorts
    assert "exclusion tokens: ANTITOXIN, IMMUNE GLOBULIN; ingredients: ONABOTULINUMTOXINA" in methods
    assert "matched by tokens; role codes: any." in methods
    assert "substring matching on the reported names, not a mapping to ingredients" in methods
    excl = [ln for ln in lines if ln.startswith("Exclusions (exposed and controls alike): ")]
    assert len(excl) == 1 and len(study.exclusions.drug_tokens) == 42
    assert excl[0].endswith("any of these 42 tokens: " + ", ".join(study.exclusions.drug_tokens) + ".")
    for token in study.exclusions.drug_tokens:
        assert token in excl[0]
    assert "Event (any REAC PT): " + ", ".join(study.outcome_pts) + "." in lines
    assert "| bladder | NEUROGENIC BLADDER, HYPERTONIC BLADDER, BLADDER SPASM, BLADDER DYSFUNCTION, " \
           "URINARY INCONTINENCE |" in lines
    assert "- Benjamini–Hochberg q over every cohort of the study (8); significant: q &lt; 0.05;" in lines
    assert any(ln.startswith("- Mantel–Haenszel pooled ROR over strata (sex, age band, era)") for ln in lines)
    assert "Software: faerslake 9.9.9; git commit 0123abc; Python 3.11.9; Spark 3.5.3; delta-spark 3.2.1." in lines
    # on and not known
    for flag, text in ((True, "on"), (None, "not known")):
        md2 = report.write_report(tmp_path / text, results_for(study, COUNTS),
                                  {**full_context, "strict_dedup": flag})["md"].read_text()
        assert f"- strict de-duplication: {text} (" in md2
    soft = report.ReportContext.software_versions()
    assert list(soft) == ["faerslake", "git commit", "Python", "Spark", "delta-spark"]
    assert soft["Spark"] == "not known" and soft["faerslake"] == faerslake.__version__
    assert soft["delta-spark"] == importlib.metadata.version("delta-spark")


def test_limitations_name_the_known_biases(tmp_path, study, full_context):
    import dataclasses

    md = report.write_report(tmp_path, results_for(study, COUNTS), full_context)["md"].read_text()
    lim = section_text(md, "Limitations")
    items = [ln[2:] for ln in lim.splitlines() if ln.startswith("- ")]
    assert len(items) == 7
    for words in ("no incidence", "not evidence of causality", "Under-reporting", "notoriety bias",
                  "Indication bias", "Residual duplicates", "not by a mapping to ingredients",
                  "MedDRA version drift"):
        assert sum(words in it for it in items) == 1, words
    by_ingredient = dataclasses.replace(study, exposure=dataclasses.replace(study.exposure, matcher="ingredients"))
    md2 = report.write_report(tmp_path / "ing", results_for(by_ingredient, COUNTS),
                              {**full_context, "study": by_ingredient})["md"].read_text()
    lim2 = section_text(md2, "Limitations")
    assert "found by active ingredient" in lim2 and "not by a mapping to ingredients" not in lim2


def test_published_comparison_has_differences_flags_and_a_period_warning(tmp_path, study, full_context):
    import dataclasses

    from faerslake.quarters import quarter_range

    counts = {**COUNTS, "migraine": (57, 3400, 1310, 55365), "bladder": (12, 903, 300, 30527)}
    md = report.write_report(tmp_path, results_for(study, counts), full_context)["md"].read_text()
    sec = section_text(md, "Published figures beside ours")
    assert ("Published: the figures in the study file's `published` section, from Makunts, Wollmer & Abagyan, "
            "Sci Rep 2020 (FAERS, over 40,000 BoNT reports), covering 2004Q1:2019Q4.") in sec
    # 2012Q4–2013Q1 against 2004Q1:2019Q4 (64 quarters): both of ours are in it, 62 of its are missing
    assert ("Warning: the results cover 2012Q4–2013Q1, not the published period 2004Q1:2019Q4: 62 of its "
            "quarters missing (2004Q1–2012Q3, 2013Q2–2019Q4).") in sec
    rows = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[1:-1]]
            for ln in sec.splitlines() if ln.startswith("| ")}
    assert rows["cohort"] == ["cohort", "exposed (ours)", "exposed (published)", "exposed Δ %", "control (ours)",
                              "control (published)", "control Δ %", "ROR (ours)", "ROR (published)", "ROR Δ %",
                              "flag", "note"]
    # migraine: 3,457 against 4,180 = -17.3 % (flagged); controls equal
    assert rows["migraine"][1:7] == ["3,457", "4,180", "-17.3 %", "56,675", "56,675", "+0.0 %"]
    assert rows["migraine"][9:11] == ["–", "beyond ±15 %: exposed"]
    # bladder: ROR (12/903)/(300/30527) = 1.352 against 0.77 = +75.6 %
    assert rows["bladder"][9:11] == ["+75.6 %", "beyond ±15 %: ROR"]
    assert rows["cosmetic"][3] == "+0.0 %" and rows["cosmetic"][10] == ""
    assert rows["spasticity"][10] == "beyond ±15 %: exposed, control"
    # the period the published figures cover: no warning when ours is the same
    same = {**full_context, "quarters": quarter_range("2004Q1:2019Q4"), "quarters_text": None}
    md2 = report.write_report(tmp_path / "same", results_for(study, COUNTS), same)["md"].read_text()
    assert "Warning" not in section_text(md2, "Published figures beside ours")
    more = {**full_context, "quarters": quarter_range("2004Q1:2020Q2")}
    md3 = report.write_report(tmp_path / "more", results_for(study, COUNTS), more)["md"].read_text()
    assert ("Warning: the results cover 2004Q1–2020Q2, not the published period 2004Q1:2019Q4: 2 quarters "
            "outside it (2020Q1–2020Q2).") in md3
    # the advice follows the study: one already limited to the period lacks quarters in the warehouse
    limited = dataclasses.replace(study, period="2004Q1:2019Q4")
    md5 = report.write_report(tmp_path / "limited", results_for(limited, COUNTS),
                              {**full_context, "study": limited})["md"].read_text()
    assert ("62 of its quarters missing (2004Q1–2012Q3, 2013Q2–2019Q4). Counts are not expected to agree; "
            "ingest the missing quarters (the study's `period` is already 2004Q1:2019Q4) to compare like with "
            "like.") in md5
    assert ("Counts are not expected to agree; set the study's `period` to 2004Q1:2019Q4 and ingest the missing "
            "quarters to compare like with like.") in md
    assert "set the study's `period` to 2004Q1:2019Q4 to compare like with like." in md3  # nothing missing
    # a period that holds none of the warehouse's quarters, and quarters not known
    assert report.sections.period_warning([], "2004Q1:2019Q4") == (
        "Warning: the results cover no quarter (none of the warehouse's quarters is in the study's period), not "
        "the published period 2004Q1:2019Q4.")
    assert report.sections.period_warning(None, "2004Q1:2019Q4").startswith(
        "Warning: the quarters covered are not known")
    assert report.sections.period_warning(None, None) is None
    # a study without the keys says so and cites nothing
    bare = dataclasses.replace(study, published_source=None, published_period=None)
    md4 = report.write_report(tmp_path / "bare", results_for(bare, COUNTS),
                              {**full_context, "study": bare})["md"].read_text()
    sec4 = section_text(md4, "Published figures beside ours")
    assert "(the study file names no `published_source`); the study file gives no `published_period`." in sec4
    assert "Makunts" not in sec4 and "Warning" not in sec4


def test_long_tables_are_in_the_appendix_at_the_end(tmp_path, study, full_context):
    md = report.write_report(tmp_path, results_for(study, COUNTS), full_context)["md"].read_text()
    titles = [ln[3:] for ln in md.splitlines() if ln.startswith("## ")]
    assert titles[-1] == "Appendix" and titles[0] == "Summary"
    assert titles.index("Methods") < titles.index("Limitations") < titles.index("Provenance")
    data, appendix = section_text(md, "Data"), md.split("\n## Appendix\n", 1)[1]
    assert "| all | 1,200 | 10 | 90 | 0 | 1,100 |" in data and "| 2012Q4 |" not in data
    assert "| 2012Q4 | 500 | 4 | 40 | 0 | 456 |" in appendix and "| 2013Q1 | 700 | 6 | 50 | 0 | 644 |" in appendix
    assert "| all |" not in appendix
    assert "| 2012Q4 | faers_ascii_2012q4.zip | " + "a" * 64 + " | 123,456 |" in appendix
    assert "a" * 64 not in section_text(md, "Provenance")


def texts_outside_the_figure(fig) -> list[str]:
    """Every visible, non-empty text of ``fig`` whose drawn extent leaves the figure."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    out = []
    for t in fig.findobj(Text):
        if not t.get_visible() or not t.get_text():
            continue
        e = t.get_window_extent(renderer)
        if e.x0 < box.x0 - 0.5 or e.y0 < box.y0 - 0.5 or e.x1 > box.x1 + 0.5 or e.y1 > box.y1 + 0.5:
            out.append(t.get_text())
    return out


def test_forest_plot_has_a_ror_column_marks_and_keeps_every_text_inside(study):
    results = results_for(study, COUNTS)
    fig = report.forest_plot_figure(results, title="botox_depression")
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert "ROR [95 % CI]" in texts
    assert "0.584 [0.447–0.763] *" in texts  # q = 2.3e-04
    assert "1.17 [0.283–4.86]" in texts  # q = 1: no mark
    assert "0.0889 [0.00544–1.45] *" in texts  # Haldane, q = 0.043
    assert texts.count("–") == 4  # the four cohorts without an ROR
    assert ax.get_xlabel() == ("reporting odds ratio (95 % CI), log scale; n = exposed / control reports\n"
                               "* BH q < 0.05; open marker: Haldane-corrected")
    assert texts_outside_the_figure(fig) == []
    # long cohort names and wide intervals stay inside too
    wide = results.copy()
    wide["cohort"] = ["a very long cohort name for the left-hand labels " + c for c in wide["cohort"]]
    assert texts_outside_the_figure(report.forest_plot_figure(wide, title="t" * 60)) == []


def test_forest_plot_svg_is_deterministic_and_written_beside_the_png(tmp_path, study, full_context):
    results = results_for(study, COUNTS)
    paths = report.write_report(tmp_path / "one", results, full_context)
    again = report.write_report(tmp_path / "two", results, full_context)
    svg = paths["svg"].read_bytes()
    assert paths["svg"].name == "forest_plot.svg" and svg.startswith(b"<?xml") and b"<svg" in svg
    assert svg == again["svg"].read_bytes()
    assert b"<dc:date>" not in svg
    assert paths["png"].read_bytes() == again["png"].read_bytes()
    assert 30_000 < paths["png"].stat().st_size < 300_000  # 200 dpi, well under 300 KB
    assert imread(paths["png"]).shape[1] > 1500


def test_html_alone_has_no_external_sources_and_every_analyst_section(tmp_path, study, full_context):
    import re
    import shutil

    results = results_for(study, COUNTS)
    built = report.write_report(tmp_path / "built", results, full_context)["html"]
    alone = tmp_path / "alone"
    alone.mkdir()
    page = shutil.copy(built, alone / "report.html").read_text()
    srcs = re.findall(r'\bsrc="([^"]*)"', page)
    assert len(srcs) == 1 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'\bhref="(?!#)', page)  # links only to the page's own anchors
    for title in ("Summary", "Methods", "Limitations", "Appendix"):
        assert f">{title}</h2>" in page
    assert "strict de-duplication: off" in page
    for r in results.to_dict("records"):
        a, b, c, d = int(r["a"]), int(r["b"]), int(r["c"]), int(r["d"])
        pct = lambda n, m: "–" if m == 0 else f"{100 * n / m:.2f} %"  # noqa: E731
        cells = "".join(f"<td>{v}</td>" for v in (f"{a:,}", f"{b:,}", f"{c:,}", f"{d:,}", pct(a, a + b),
                                                   pct(c, c + d)))
        assert f"<td>{r['cohort']}</td>{cells}" in page, r["cohort"]
    assert '<p class="warning">Warning: the results cover 2012Q4–2013Q1, not the published period' in page


def test_trend_section_names_when_the_cumulative_ci_first_left_1_either_way():
    from faerslake.report.analysis import trend_section
    from faerslake.report.context import ReportContext
    from faerslake.report.document import Table

    def row(cohort, level, period, lo, hi, n=(1, 9, 1, 9)):
        return {"study": "s", "cohort": cohort, "level": level, "period": period, "a": n[0], "b": n[1],
                "c": n[2], "d": n[3], "ror": (lo * hi) ** 0.5, "ror_ci_lower": lo, "ror_ci_upper": hi,
                "haldane_corrected": False}

    trend = pd.DataFrame([
        row("lower", "year", "2012", 0.2, 0.9),
        row("lower", "cumulative_quarter", "2012Q1", 0.5, 2.0),
        row("lower", "cumulative_quarter", "2012Q2", 0.2, 0.9),
        row("lower", "cumulative_quarter", "2012Q3", 0.3, 1.1),  # back across 1: the first quarter stays
        row("higher", "year", "2012", 1.2, 3.0),
        row("higher", "cumulative_quarter", "2012Q1", 0.8, 2.0),
        row("higher", "cumulative_quarter", "2012Q2", 1.2, 3.0),
        row("neither", "year", "2012", 0.5, 2.0),
        row("neither", "cumulative_quarter", "2012Q1", 0.5, 2.0),
    ])
    sec = trend_section(ReportContext(trend=trend))
    assert sec is not None and sec.title == "Trend by year"
    [signal] = [b for b in sec.blocks if isinstance(b, Table) and "first quarter CI < 1" in b.header]
    assert signal.header == ["cohort", "first quarter CI < 1", "first quarter CI > 1",
                             "cumulative ROR [95 % CI], last quarter"]
    assert [r[:3] for r in signal.rows] == [["lower", "2012Q2", "never"], ["higher", "never", "2012Q2"],
                                            ["neither", "never", "never"]]
    assert signal.rows[0][3] == "0.574 [0.3–1.10]"  # the last quarter's cumulative ROR and CI
    assert trend_section(ReportContext()) is None
