"""The signal screen on a generated lake (docs/screen.md): every pair's counts
against a pandas count over the silver tables, the statistics against
faerslake.stats and an independent reading, the planted signals found, and
each option (period, roles, strata, drug key, strict de-duplication)
changing exactly what the spec says."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from browser_check import assert_renders, chromium
from faerslake import stats
from faerslake.config import load_pipeline_config, load_screen, load_study, override_screen
from faerslake.errors import ConfigError, InputError
from faerslake.gold.strata import AGE_BANDS
from faerslake.ingest import ingest
from faerslake.screen import mgps
from faerslake.screen.job import SCREEN_FILES, SIGNAL_COLUMNS, run_screen, table_name
from faerslake.silver import build
from faerslake.synthetic import generate
from faerslake.tables import Warehouse

CFG = load_pipeline_config(None, ["spark.shuffle_partitions=2"])
QUARTERS = ["2012Q3", "2012Q4", "2014Q3", "2019Q1"]
QUIET = {"log": lambda m: None}


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    """A built lake of a generated sample with 20 planted signals."""
    root = tmp_path_factory.mktemp("screen")
    src = root / "src"
    generate(src, reports=1500, seed=5, quarters=QUARTERS, signals=20, **QUIET)
    wh = str(root / "wh")
    ingest(spark, str(src), wh, cfg=CFG, **QUIET)
    build(spark, wh, cfg=CFG, **QUIET)
    truth = json.loads((src / "_truth.json").read_text())
    return root, wh, truth


def _silver(spark, wh: str) -> dict[str, pd.DataFrame]:
    w = Warehouse(wh)
    cols = {"reports": ["report_key", "quarter", "sex", "age_years"],
            "drugs": ["report_key", "quarter", "role_cod", "drugname_norm", "prod_ai_norm"],
            "drug_ingredients": ["report_key", "quarter", "role_cod", "ingredient"],
            "reactions": ["report_key", "quarter", "pt_norm"]}
    return {t: w.read(spark, "silver", t).select(*c).toPandas() for t, c in cols.items()}


def _age_band(age: float) -> str:
    if age is None or (isinstance(age, float) and math.isnan(age)) or age < 0:
        return "unknown"
    for upper, label in AGE_BANDS:
        if upper is None or age < upper:
            return label
    raise AssertionError


def reference_counts(silver: dict[str, pd.DataFrame], screen, key: str) -> pd.DataFrame:
    """The spec §1 counts written out in pandas: distinct reports, never rows."""
    rep = silver["reports"].copy()
    if screen.period:
        lo, hi = screen.period.split(":")
        rep = rep[(rep["quarter"] >= lo) & (rep["quarter"] <= hi)]  # YYYYQn text sorts in time order
    col = {"drugname": "drugname_norm", "prod_ai": "prod_ai_norm", "ingredient": "ingredient"}[key]
    drugs = silver["drug_ingredients" if key == "ingredient" else "drugs"]
    drugs = drugs[drugs[col].notna() & (drugs[col].astype(str).str.strip() != "")]
    if screen.roles:
        roles = drugs["role_cod"].fillna("").str.strip().str.upper()
        drugs = drugs[roles.isin(screen.roles)]
    dr = drugs[["report_key", "quarter", col]].rename(columns={col: "drug"}).drop_duplicates()
    ev = silver["reactions"]
    ev = ev[ev["pt_norm"].notna() & (ev["pt_norm"] != "")][["report_key", "quarter", "pt_norm"]]
    ev = ev.rename(columns={"pt_norm": "pt"}).drop_duplicates()
    keys = ["report_key", "quarter"]
    r = rep.merge(dr[keys].drop_duplicates(), on=keys).merge(ev[keys].drop_duplicates(), on=keys)
    strata = []
    if "sex" in screen.stratify:
        s = r["sex"].fillna("").str.strip().str.upper()
        r["s_sex"] = s.where(s.isin(["M", "F"]), "U")
        strata.append("s_sex")
    if "age_band" in screen.stratify:
        r["s_age"] = [_age_band(a) for a in r["age_years"]]
        strata.append("s_age")
    if "year" in screen.stratify:
        r["s_year"] = r["quarter"].str[:4]
        strata.append("s_year")
    r = r[keys + strata]
    dr, ev = dr.merge(r, on=keys), ev.merge(r, on=keys)
    n = len(r)
    pairs = dr.merge(ev[keys + ["pt"]], on=keys).groupby(["drug", "pt"]).size().rename("a").reset_index()
    nx = dr.groupby("drug").size().rename("n_drug")
    ny = ev.groupby("pt").size().rename("n_event")
    pairs = pairs.join(nx, on="drug").join(ny, on="pt")
    pairs["b"] = pairs["n_drug"] - pairs["a"]
    pairs["c"] = pairs["n_event"] - pairs["a"]
    pairs["d"] = n - pairs["n_drug"] - pairs["n_event"] + pairs["a"]
    if strata:
        ns = r.groupby(strata).size().rename("n_s")
        xs = dr.groupby(["drug", *strata]).size().rename("x_s").reset_index()
        ys = ev.groupby(["pt", *strata]).size().rename("y_s").reset_index()
        e = (pairs[["drug", "pt"]].merge(xs, on="drug").merge(ys, on=["pt", *strata]).join(ns, on=strata))
        e["e"] = e["x_s"] * e["y_s"] / e["n_s"]
        pairs = pairs.merge(e.groupby(["drug", "pt"])["e"].sum().rename("expected").reset_index(), on=["drug", "pt"])
    else:
        pairs["expected"] = pairs["n_drug"] * pairs["n_event"] / n
    pairs["n_reports"] = n
    return pairs.sort_values(["drug", "pt"]).reset_index(drop=True)


def _screen(spark, lake, tmp_path, **changes):
    root, wh, _ = lake
    screen = override_screen(load_screen(), **changes) if changes else load_screen()
    out = tmp_path / "out"
    result = run_screen(spark, wh, screen, str(out), cfg=CFG, study=load_study(), **QUIET)
    table = Warehouse(wh).read(spark, "gold", table_name(screen)).toPandas()
    return screen, result, table.sort_values(["drug", "pt"]).reset_index(drop=True), out / f"screen_{screen.name}"


@pytest.fixture(scope="module")
def default_screen(spark, lake, tmp_path_factory):
    return _screen(spark, lake, tmp_path_factory.mktemp("screen-out"))


def _assert_counts_equal(table: pd.DataFrame, ref: pd.DataFrame) -> None:
    assert len(table) == len(ref) > 0
    for c in ["drug", "pt", "a", "b", "c", "d", "n_drug", "n_event", "n_reports"]:
        assert table[c].tolist() == ref[c].tolist(), c
    np.testing.assert_allclose(table["expected"], ref["expected"], rtol=1e-12)


def test_default_screen_counts_equal_a_pandas_count(spark, lake, default_screen):
    screen, result, table, _ = default_screen
    assert result.drug_key == "ingredient"  # the build resolved ingredients: auto picks them
    ref = reference_counts(_silver(spark, lake[1]), screen, "ingredient")
    _assert_counts_equal(table, ref)
    assert result.pairs == len(ref) and result.n_reports == int(ref["n_reports"].iloc[0])
    assert list(table.columns) == SIGNAL_COLUMNS


def test_frequentist_statistics_equal_faerslake_stats(default_screen):
    _, _, table, _ = default_screen
    for r in table.sample(n=min(300, len(table)), random_state=1).itertuples():
        ror = stats.ror_ci(r.a, r.b, r.c, r.d)
        for got, want in ((r.ror, ror.ror), (r.ror_ci_lower, ror.ci_lower), (r.ror_ci_upper, ror.ci_upper)):
            assert (want is None and pd.isna(got)) or got == pytest.approx(want, rel=1e-12)
        assert bool(r.haldane_corrected) == ror.haldane_corrected
        if r.c == 0:
            assert pd.isna(r.prr) and pd.isna(r.prr_ci_lower)
        else:
            prr = (r.a / (r.a + r.b)) / (r.c / (r.c + r.d))
            se = math.sqrt(1 / r.a - 1 / (r.a + r.b) + 1 / r.c - 1 / (r.c + r.d))
            assert r.prr == pytest.approx(prr, rel=1e-12)
            assert r.prr_ci_lower == pytest.approx(math.exp(math.log(prr) - 1.959964 * se), rel=1e-12)
        n = r.a + r.b + r.c + r.d
        margins = (r.a + r.b) * (r.c + r.d) * (r.a + r.c) * (r.b + r.d)
        chi2 = n * (abs(r.a * r.d - r.b * r.c) - n / 2) ** 2 / margins if margins else None
        assert (chi2 is None and pd.isna(r.chi2_yates)) or r.chi2_yates == pytest.approx(chi2, rel=1e-12)
        assert bool(r.evans_signal) == bool(not pd.isna(r.prr) and r.prr >= 2 and chi2 is not None and chi2 >= 4
                                            and r.a >= 3)


def test_bayesian_columns_equal_mgps_given_the_prior(default_screen):
    _, result, table, out = default_screen
    prior = result.prior
    assert prior.converged
    ref = mgps.score_frame(table[["a", "expected"]].copy(), prior)
    for c in mgps.SCORE_COLUMNS:
        np.testing.assert_allclose(table[c], ref[c], rtol=1e-12, err_msg=c)
    # the reported likelihood is over every pair with a >= N*, unsquashed
    nll = mgps.neg_log_likelihood(prior.theta(), table["a"].to_numpy(), table["expected"].to_numpy())
    assert prior.neg_log_likelihood == pytest.approx(nll, rel=1e-9)
    assert prior.pairs == len(table)
    doc = json.loads((out / "prior.json").read_text())
    assert list(doc)[:10] == ["alpha1", "beta1", "alpha2", "beta2", "p", "n_star", "pairs", "neg_log_likelihood",
                              "converged", "optimizer"]
    assert doc["pairs"] == len(table) and doc["converged"] is True


def test_outputs_follow_the_contract(default_screen):
    screen, result, table, out = default_screen
    assert sorted(p.name for p in out.iterdir()) == sorted(SCREEN_FILES)
    csv = pd.read_csv(out / "signals.csv", keep_default_na=False, na_values=[""])
    assert list(csv.columns) == SIGNAL_COLUMNS
    want = (table[table["a"] >= 3].sort_values(["eb05", "drug", "pt"], ascending=[False, True, True])
            .reset_index(drop=True))
    assert len(csv) == len(want) == result.pairs_in_csv > 0
    assert csv["drug"].tolist() == want["drug"].tolist() and csv["pt"].tolist() == want["pt"].tolist()
    np.testing.assert_allclose(csv["eb05"], want["eb05"], rtol=1e-15)
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and 'src="screen_plot.png"' not in html
    assert f"{result.n_reports:,}" in html and f"{result.pairs:,}" in html
    assert f"gold/{table_name(screen)}" in html  # provenance: the versions read and written
    assert "screen_plot.png" in (out / "report.md").read_text()


def test_screen_report_renders_alone_in_a_browser(default_screen, tmp_path):
    """report.html by itself in an empty folder: its plot loads and fits, the console is clean."""
    out = default_screen[3]
    with chromium() as browser:
        r = assert_renders(browser, out / "report.html", tmp_path / "alone", min_images=1)
    assert all(img["src"].startswith("data:image/png;base64,") for img in r.images)


@pytest.fixture(scope="module")
def name_screen(spark, lake, tmp_path_factory):
    return _screen(spark, lake, tmp_path_factory.mktemp("screen-name"), by="drugname", name="by_name")


def test_planted_signals_are_found(spark, lake, name_screen):
    """The generator's planted pairs (brand names, true reporting ratio 3-10),
    screened by drug name: each is in the screen with the planted a, EB05 > 2
    for the recall, and ranks above the null pairs. Recall and false positives
    are printed (pytest -s)."""
    screen, _, table, _ = name_screen
    _assert_counts_equal(table, reference_counts(_silver(spark, lake[1]), screen, "drugname"))
    planted = lake[2]["screen"]["signals"]
    keys = {(s["drug"], s["pt"]) for s in planted}
    by_pair = table.set_index(["drug", "pt"])
    a = {k: int(by_pair.loc[k, "a"]) for k in keys if k in by_pair.index}
    assert a == {(s["drug"], s["pt"]): s["a"] for s in planted}
    found = table[[(d, p) in keys for d, p in zip(table["drug"], table["pt"], strict=True)]]
    recall = float((found["eb05"] > 2).mean())
    # the nulls: the planting layer's other drug x PT pairs (true ratio 1); the
    # generator's study drugs have real associations of their own (BoNT x ptosis)
    layer = lake[2]["screen"]
    in_layer = table["drug"].isin(layer["drugs"]) & table["pt"].isin(layer["pts"])
    null = table[in_layer & ~table.index.isin(found.index)]
    false_pos = int((null["eb05"] > 2).sum())
    print(f"planted signals: recall at EB05 > 2 {recall:.2f} ({int((found['eb05'] > 2).sum())}/{len(found)}); "
          f"null pairs of the planting layer with EB05 > 2: {false_pos} of {len(null)}")
    assert len(found) == 20 and len(null) > 200
    assert recall >= 0.9 and false_pos <= 1
    # ranking: the median planted pair outranks every null pair
    assert found["eb05"].median() > null["eb05"].max()


@pytest.mark.parametrize("changes,key", [
    ({"period": "2012Q4:2014Q3", "roles": "PS,SS", "name": "period_roles"}, "ingredient"),
    ({"by": "prod_ai", "stratify": "sex,age_band,year", "name": "ai_strata"}, "prod_ai"),
])
def test_each_option_changes_what_the_spec_says(spark, lake, tmp_path, default_screen, changes, key):
    screen, result, table, _ = _screen(spark, lake, tmp_path, **changes)
    ref = reference_counts(_silver(spark, lake[1]), screen, key)
    _assert_counts_equal(table, ref)
    if screen.stratify:  # the strata move E and nothing else: the same pairs and cells as unstratified
        flat = reference_counts(_silver(spark, lake[1]), dataclasses.replace(screen, stratify=[]), key)
        for c in ["drug", "pt", "a", "b", "c", "d"]:
            assert table[c].tolist() == flat[c].tolist(), c
        assert (np.abs(table["expected"] - flat["expected"]) > 1e-9).mean() > 0.5
    else:  # the period and the roles change the pairs
        base = default_screen[2]
        assert len(table) < len(base) and table["n_reports"].iloc[0] < base["n_reports"].iloc[0]


def test_frequentist_columns_on_published_and_edge_tables(spark):
    """counts.with_frequentist on the spec's published table (lower ROR limit
    1.1679, lower PRR limit 1.1623) and on tables with a zero cell (Haldane),
    c = 0 (PRR null), a whole zero row (ROR null, χ² null)."""
    from faerslake.screen.counts import with_frequentist

    rows = [(382, 9731, 7308, 241447), (5, 0, 10, 100), (3, 7, 0, 50), (4, 6, 9, 0), (2, 3, 0, 0)]
    df = spark.createDataFrame(rows, "a long, b long, c long, d long")
    got = {(r.a, r.b, r.c, r.d): r for r in with_frequentist(df).collect()}
    pub = got[(382, 9731, 7308, 241447)]
    assert round(pub.ror_ci_lower, 4) == 1.1679 and round(pub.prr_ci_lower, 4) == 1.1623
    assert not pub.haldane_corrected and pub.evans_signal is False  # PRR 1.26 < 2
    for cells, r in got.items():
        ror = stats.ror_ci(*cells)
        assert r.haldane_corrected == ror.haldane_corrected, cells
        assert (ror.ror is None and r.ror is None) or r.ror == pytest.approx(ror.ror, rel=1e-12), cells
    assert got[(5, 0, 10, 100)].haldane_corrected and got[(5, 0, 10, 100)].prr == pytest.approx(11.0)
    assert got[(3, 7, 0, 50)].prr is None and got[(3, 7, 0, 50)].prr_ci_lower is None
    assert got[(3, 7, 0, 50)].evans_signal is False and got[(3, 7, 0, 50)].haldane_corrected
    whole_zero_row = got[(2, 3, 0, 0)]  # c + d = 0
    assert whole_zero_row.ror is None and whole_zero_row.chi2_yates is None and not whole_zero_row.haldane_corrected


def test_screen_refuses_a_silver_deduplicated_otherwise():
    """A screen file's strict_dedup is checked against the build it reads (the
    strict pass changes R only through silver/reports, which the screen reads
    at the build's cut like every table): one sentence, no work done."""
    from faerslake.screen.job import check_screen_dedup
    from faerslake.silver.job import SilverCut

    built_strict = SilverCut({}, {}, strict_dedup=True)
    screen = load_screen()
    check_screen_dedup(built_strict, screen, "wh")  # strict_dedup unset: any build
    check_screen_dedup(built_strict, dataclasses.replace(screen, strict_dedup=True), "wh")
    with pytest.raises(InputError, match=r"screen all_drugs sets strict_dedup: false, but the last build under wh "
                                         r"ran with the strict de-duplication pass: run 'faerslake build --warehouse wh'"):
        check_screen_dedup(built_strict, dataclasses.replace(screen, strict_dedup=False), "wh")
    with pytest.raises(InputError, match=r"sets strict_dedup: true, but .* ran without the strict .* --strict-dedup'"):
        check_screen_dedup(SilverCut({}, {}, strict_dedup=False), dataclasses.replace(screen, strict_dedup=True), "wh")


def test_screen_of_an_empty_selection_is_one_sentence(spark, lake, tmp_path):
    screen = override_screen(load_screen(), period="2030Q1:2030Q4", name="empty")
    with pytest.raises(InputError, match=r"screen empty: no report of the last build has a counted drug row and a "
                                         r"reaction PT in period 2030Q1:2030Q4: nothing to screen"):
        run_screen(spark, lake[1], screen, str(tmp_path / "o"), cfg=CFG, **QUIET)
    assert not (tmp_path / "o" / "screen_empty").exists()


def test_screen_file_errors_are_one_sentence(tmp_path):
    bad = tmp_path / "s.yaml"
    for text, msg in [("by: brand\n", "key 'by' should be one of auto, drugname, prod_ai, ingredient"),
                      ("stratify: [region]\n", "key 'stratify' may name sex, age_band, year"),
                      ("period: 2004\n", "key 'period' should look like 2004Q1:2019Q4"),
                      ("roles: []\n", "key 'roles' should be a non-empty list"),
                      ("n_star: 0\n", "key 'n_star' should be at least 1"),
                      ("colour: red\n", "unknown key 'colour'")]:
        bad.write_text(text)
        with pytest.raises(ConfigError, match=msg):
            load_screen(bad)
    s = override_screen(load_screen(), roles="ps, ss", stratify="year,sex", period="2004q1:2005q4")
    assert (s.roles, s.stratify, s.period) == (["PS", "SS"], ["sex", "year"], "2004Q1:2005Q4")
    assert override_screen(s, roles="all").roles is None



def test_a_backwards_period_is_refused_when_the_file_is_read(tmp_path):
    f = tmp_path / "late.yaml"
    f.write_text("period: 2019Q4:2004Q1\n")
    with pytest.raises(ConfigError, match=r"late.yaml: key 'period': "):
        load_screen(f)
