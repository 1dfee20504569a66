"""Exposure named by active ingredient (issue #16, study side): the study-file
keys, the ingredient matcher over hand-made ``silver/drug_ingredients`` rows
where it and the token matcher disagree on known rows, the
``matcher_sensitivity`` table, CSV and report section, and a warehouse built
before the table existed."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
from faerslake import gold
from faerslake.config import load_study
from faerslake.contracts import GOLD, SILVER
from faerslake.errors import ConfigError, InputError
from faerslake.tables import Warehouse

# --------------------------------------------------------------------------- #
# A. study-file keys
# --------------------------------------------------------------------------- #
BASE = "cohorts: {m: [migraine]}\noutcome_pts: [Depression]\n"


def study_from(tmp_path, exposure: str, name: str = "s"):
    p = tmp_path / f"{name}.yaml"
    p.write_text(f"exposure: {exposure}\n{BASE}")
    return load_study(p)


def test_ingredients_only_are_normalised_and_pick_the_ingredient_matcher(tmp_path):
    s = study_from(tmp_path, "{ingredients: [' onabotulinumtoxina ', 'Botulinum toxin type A']}")
    assert s.exposure.tokens == [] and s.exposure.exclude_tokens == []
    assert s.exposure.ingredients == ["ONABOTULINUMTOXINA", "BOTULINUM TOXIN TYPE A"]
    assert s.exposure.matcher == "ingredients"
    assert s.exposure.needs_ingredients and not s.exposure.compares_matchers


def test_tokens_and_ingredients_default_to_tokens_and_matcher_is_normalised(tmp_path):
    s = study_from(tmp_path, "{tokens: [botox], ingredients: [onabotulinumtoxina]}")
    assert (s.exposure.tokens, s.exposure.ingredients, s.exposure.matcher) == (
        ["BOTOX"], ["ONABOTULINUMTOXINA"], "tokens")
    assert s.exposure.compares_matchers and not s.exposure.needs_ingredients
    e = study_from(tmp_path, "{tokens: [botox], ingredients: [onabotulinumtoxina], matcher: ' Either '}")
    assert e.exposure.matcher == "either" and e.exposure.needs_ingredients
    # tokens only: as before
    t = study_from(tmp_path, "{tokens: [botox]}")
    assert (t.exposure.ingredients, t.exposure.matcher) == ([], "tokens") and not t.exposure.compares_matchers


@pytest.mark.parametrize("exposure, message", [
    ("{}", "key 'exposure' should give 'tokens' or 'ingredients' (or both), each a non-empty list of terms"),
    ("{tokens: [], ingredients: []}", "key 'exposure' should give 'tokens' or 'ingredients' (or both)"),
    ("{exclude_tokens: [ANTITOXIN]}", "key 'exposure' should give 'tokens' or 'ingredients' (or both)"),
    ("{tokens: [BOTOX], matcher: names}",
     "key 'exposure.matcher' should be one of tokens, ingredients, either, got 'names'"),
    ("{tokens: [BOTOX], matcher: ingredients}",
     "key 'exposure.matcher' is ingredients, which matches by ingredients, but key 'exposure.ingredients' "
     "is empty or missing; give it, or set 'exposure.matcher' to tokens"),
    ("{ingredients: [X], matcher: either}",
     "key 'exposure.matcher' is either, which matches by tokens and ingredients, but key 'exposure.tokens' "
     "is empty or missing"),
    ("{ingredients: [X, '  ']}", "key 'exposure.ingredients' holds an empty term"),
    ("{ingredients: ONABOTULINUMTOXINA}", "key 'exposure.ingredients' should be a list of text"),
    ("{ingredients: [X], colour: blue}", "unknown key 'exposure.colour'"),
])
def test_bad_exposure_keys_are_one_sentence(tmp_path, exposure, message):
    with pytest.raises(ConfigError) as e:
        study_from(tmp_path, exposure)
    assert message in str(e.value) and str(tmp_path / "s.yaml") in str(e.value)
    assert "\n" not in str(e.value)


def test_default_study_names_the_botulinum_toxins_and_keeps_the_token_matcher():
    s = load_study()
    assert s.exposure.matcher == "tokens"
    assert len(s.exposure.tokens) == 15 and s.exposure.exclude_tokens == ["ANTITOXIN", "IMMUNE GLOBULIN"]
    assert s.exposure.ingredients == [
        "ONABOTULINUMTOXINA", "ABOBOTULINUMTOXINA", "INCOBOTULINUMTOXINA", "RIMABOTULINUMTOXINB",
        "PRABOTULINUMTOXINA", "DAXIBOTULINUMTOXINA", "LETIBOTULINUMTOXINA", "RELABOTULINUMTOXINA",
        "BOTULINUM TOXIN TYPE A", "BOTULINUM TOXIN TYPE B"]
    assert gold.gold_tables(s)[-1] == "botox_depression/matcher_sensitivity"


def test_the_two_copies_of_the_default_study_are_the_same():
    from faerslake.config.pipeline import REPO_ROOT

    assert (REPO_ROOT / "conf/studies/botox_depression.yaml").read_bytes() == (
        REPO_ROOT / "lib/faerslake/resources/botox_depression.yaml").read_bytes()


# --------------------------------------------------------------------------- #
# B. hand-made silver where the matchers disagree
# --------------------------------------------------------------------------- #
STUDY = """exposure:
  tokens: [BOTOX, BOTULINUM]
  exclude_tokens: [ANTITOXIN]
  ingredients: [ONABOTULINUMTOXINA, ABOBOTULINUMTOXINA]
  matcher: {matcher}
cohorts:
  migraine: [MIGRAINE]
  spasticity: [MUSCLE SPASTICITY]
outcome_pts: [DEPRESSION]
exclusions: {{drug_tokens: [SERTRALINE]}}
"""

Q = "2015Q1"
# key: ([(drug_seq, role, drugname_norm, prod_ai_norm, indication PTs, [(ingredient, method)])], event)
REPORTS = {
    # both matchers find it
    1: ([(1, "PS", "BOTOX", "ONABOTULINUMTOXINA", ["MIGRAINE"], [("ONABOTULINUMTOXINA", "prod_ai")])], True),
    # no token in its text, the ingredient step resolved it: only the ingredient matcher
    2: ([(1, "PS", "BTX-A", None, ["MIGRAINE"], [("ONABOTULINUMTOXINA", "learned_name")])], False),
    # the token matcher excludes it (ANTITOXIN); not an exposure ingredient either
    3: ([(1, "PS", "BOTULISM ANTITOXIN", "BOTULINUM ANTITOXIN", ["MIGRAINE"],
          [("BOTULISM ANTITOXIN", "prod_ai")])], True),
    4: ([(1, "PS", "TOPIRAMATE", "TOPIRAMATE", ["MIGRAINE"], [("TOPIRAMATE", "prod_ai")])], True),
    # concomitant BoNT: exposed under both without a role filter, a control with [PS]
    5: ([(1, "C", "BOTOX COSMETIC", None, ["MIGRAINE"], [("ONABOTULINUMTOXINA", "learned_name")])], False),
    # a token hit the ingredient step could not resolve: only the token matcher
    6: ([(1, "PS", "BOTULINUM TOXIN", None, ["MIGRAINE"], [(None, "unresolved")])], True),
    # BoNT for spasticity, another drug for migraine: exposed in spasticity, in no migraine group
    7: ([(1, "PS", "DYSPORT", "ABOBOTULINUMTOXINA", ["MUSCLE SPASTICITY"], [("ABOBOTULINUMTOXINA", "prod_ai")]),
         (2, "SS", "BACLOFEN", "BACLOFEN", ["MIGRAINE"], [("BACLOFEN", "prod_ai")])], False),
    # two drug rows sharing drug_seq 1: the BoNT one is concomitant, the other suspect;
    # with [PS] the ingredient hit keeps its own role (C): no exposure
    8: ([(1, "C", "NEW TOXIN", None, ["MIGRAINE"], [("ONABOTULINUMTOXINA", "curated")]),
         (1, "PS", "ASPIRIN", "ASPIRIN", [], [("ASPIRIN", "prod_ai")])], False),
    # an antidepressant: excluded under every matcher
    9: ([(1, "PS", "BTX-A", None, ["MIGRAINE"], [("ONABOTULINUMTOXINA", "learned_name")]),
         (2, "C", "SERTRALINE", "SERTRALINE", [], [("SERTRALINE", "prod_ai")])], True),
    # its ONABOTULINUMTOXINA row is of another quarter (another report): a control
    10: ([(1, "PS", "GENERIC", None, ["MIGRAINE"], [("TOPIRAMATE", "learned_name")])], False),
    # an ingredient that merely contains an exposure ingredient: equality only, a control
    11: ([(1, "PS", "XYZ", None, ["MIGRAINE"], [("ONABOTULINUMTOXINA CONJUGATE", "curated")])], False),
}
EVENT = {k: ev for k, (_, ev) in REPORTS.items()}

# migraine members per matcher (no role filter): exposed, control
MIGRAINE = {
    "tokens": ({1, 5, 6}, {2, 3, 4, 8, 10, 11}),
    "ingredients": ({1, 2, 5, 8}, {3, 4, 6, 10, 11}),
    "either": ({1, 2, 5, 6, 8}, {3, 4, 10, 11}),
}
# with exposure_role_codes [PS]
MIGRAINE_PS = {
    "tokens": ({1, 6}, {2, 3, 4, 5, 8, 10, 11}),
    "ingredients": ({1, 2}, {3, 4, 5, 6, 8, 10, 11}),
    "either": ({1, 2, 6}, {3, 4, 5, 8, 10, 11}),
}


def silver_frames(spark):
    rep, drugs, indi, reac, ingr = [], [], [], [], []
    for key, (rows, event) in REPORTS.items():
        rep.append((key, key * 10, 1, "faers", Q, "20150101", None, None, 40.0, "F", "US", "MD", "EXP", "I"))
        for seq, role, name, ai, indis, ingredients in rows:
            drugs.append((key, Q, seq, role, name, ai, name, ai))
            indi += [(key, Q, seq, pt, pt) for pt in indis]
            ingr += [(key, Q, seq, role, name, i, method) for i, method in ingredients]
        if event:
            reac.append((key, Q, "DEPRESSION", "DEPRESSION"))
    ingr.append((10, "2016Q1", 1, "PS", "BOTOX", "ONABOTULINUMTOXINA", "prod_ai"))  # no such report
    return {
        "reports": spark.createDataFrame(rep, SILVER["reports"]),
        "drugs": spark.createDataFrame(drugs, SILVER["drugs"]),
        "indications": spark.createDataFrame(indi, SILVER["indications"]),
        "reactions": spark.createDataFrame(reac, SILVER["reactions"]),
        "drug_ingredients": spark.createDataFrame(ingr, SILVER["drug_ingredients"]),
    }


@pytest.fixture(scope="module")
def silver(spark):
    return silver_frames(spark)


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    root = tmp_path_factory.mktemp("studies")
    out = {}
    for m in ("tokens", "ingredients", "either"):
        p = root / f"bont_{m}.yaml"
        p.write_text(STUDY.format(matcher=m))
        out[m] = load_study(p)
    return out


def _inputs(silver):
    return silver["reports"], silver["drugs"], silver["indications"], silver["reactions"]


def members(spark, silver, study, with_ingredients=True):
    df = gold.cohort_members(spark, *_inputs(silver), study,
                             silver["drug_ingredients"] if with_ingredients else None)
    assert df.columns == gold.MEMBER_COLUMNS
    return {(r.report_key, r.cohort): (r.exposed, r.event) for r in df.collect()}


def expected(table, matcher):
    exposed, control = table[matcher]
    out = {(k, "migraine"): (True, EVENT[k]) for k in exposed}
    out.update({(k, "migraine"): (False, EVENT[k]) for k in control})
    out[(7, "spasticity")] = (True, False)
    return out


@pytest.mark.parametrize("matcher", ["tokens", "ingredients", "either"])
def test_members_under_each_matcher(spark, silver, studies, matcher):
    assert members(spark, silver, studies[matcher]) == expected(MIGRAINE, matcher)


@pytest.mark.parametrize("matcher", ["tokens", "ingredients", "either"])
def test_role_code_filter_under_each_matcher(spark, silver, studies, matcher):
    ps = dataclasses.replace(studies[matcher], exposure_role_codes=["PS"])
    assert members(spark, silver, ps) == expected(MIGRAINE_PS, matcher)


def test_the_token_matcher_needs_no_ingredient_table(spark, silver, studies):
    assert members(spark, silver, studies["tokens"], with_ingredients=False) == expected(MIGRAINE, "tokens")
    with pytest.raises(InputError, match="needs the silver table 'drug_ingredients', and none was given"):
        gold.cohort_members(spark, *_inputs(silver), studies["ingredients"])


def test_ingredient_matcher_is_exact_equality(spark, silver, studies):
    hits = gold.ingredient_drugs(silver["drug_ingredients"], studies["ingredients"])
    assert sorted((r.report_key, r.quarter, r.drug_seq) for r in hits.collect()) == [
        (1, Q, 1), (2, Q, 1), (5, Q, 1), (7, Q, 1), (8, Q, 1), (9, Q, 1), (10, "2016Q1", 1)]


def test_drug_ingredients_contract_is_checked(spark, silver, studies):
    with pytest.raises(InputError, match="'drug_ingredients' lacks column.*ingredient"):
        gold.cohort_members(spark, *_inputs(silver), studies["ingredients"],
                            silver["drug_ingredients"].drop("ingredient"))


def counts(table, matcher):
    """(exposed_reports, exposed_events, control_reports, control_events) of migraine."""
    exposed, control = table[matcher]
    return (len(exposed), sum(EVENT[k] for k in exposed), len(control), sum(EVENT[k] for k in control))


def test_matcher_sensitivity_rows_equal_single_matcher_runs(spark, silver, studies):
    wide = gold.matcher_members(spark, *_inputs(silver), studies["tokens"], silver["drug_ingredients"],
                                gold.SENSITIVITY_MATCHERS)
    sens = gold.matcher_sensitivity(wide, studies["tokens"])
    assert list(sens.columns) == [f.name for f in GOLD["matcher_sensitivity"].fields]
    assert [(r.cohort, r.matcher) for r in sens.itertuples()] == [
        (c, m) for c in ("migraine", "spasticity") for m in ("tokens", "ingredients", "either")]
    assert list(sens["primary"]) == [True, False, False] * 2
    cols = ["exposed_reports", "exposed_events", "control_reports", "control_events"]
    for m in ("tokens", "ingredients", "either"):
        single = gold.cohort_counts(gold.cohort_members(spark, *_inputs(silver), studies[m],
                                                        silver["drug_ingredients"]), studies[m])
        mine = sens[sens["matcher"] == m]
        assert mine[["cohort", *cols]].values.tolist() == single[["cohort", *cols]].values.tolist()
        assert tuple(mine.iloc[0][cols]) == counts(MIGRAINE, m)
    # reports one matcher alone finds: migraine 6 (tokens), 2 and 8 (ingredients)
    only = sens.set_index(["cohort", "matcher"])["exposed_only"]
    assert (only["migraine", "tokens"], only["migraine", "ingredients"]) == (1, 2)
    assert (only["spasticity", "tokens"], only["spasticity", "ingredients"]) == (0, 0)
    assert pd.isna(only["migraine", "either"])
    # migraine, tokens: a=2 b=1 c=2 d=4 -> ROR 4 (no zero cell); ingredients: a=1 b=3 c=3 d=2
    ror = sens.set_index(["cohort", "matcher"])["ror"]
    assert ror["migraine", "tokens"] == pytest.approx(4.0)
    assert ror["migraine", "ingredients"] == pytest.approx((1 / 3) / (3 / 2))
    assert pd.isna(ror["spasticity", "tokens"])  # no controls: not estimable


# --------------------------------------------------------------------------- #
# C. run_study: the gold table, the CSV, the report; a warehouse without the table
# (whole study runs: left out by make test-quick, like test_gold's study_run)
# --------------------------------------------------------------------------- #
def _warehouse(spark, root, silver, seal_silver, with_ingredients):
    wh = Warehouse(str(root))
    for name in ("reports", "drugs", "indications", "reactions"):
        wh.write(silver[name], "silver", name)
    if with_ingredients:
        wh.write(silver["drug_ingredients"], "silver", "drug_ingredients")
    seal_silver(spark, wh)
    return wh


@pytest.fixture(scope="module")
def full_run(spark, silver, studies, tmp_path_factory, seal_silver):
    root = tmp_path_factory.mktemp("with-ingredients")
    wh = _warehouse(spark, root / "wh", silver, seal_silver, with_ingredients=True)
    logs: list[str] = []
    results = gold.run_study(spark, wh.root, studies["tokens"], str(root / "out"), log=logs.append)
    return wh, root / "out" / "bont_tokens", results, logs


@pytest.mark.pipeline
def test_run_study_writes_matcher_sensitivity(spark, full_run):
    wh, out, results, logs = full_run
    csv = pd.read_csv(out / "matcher_sensitivity.csv")
    delta = wh.read(spark, "gold", "bont_tokens/matcher_sensitivity").toPandas()
    assert list(csv.columns) == list(delta.columns) == gold.SENSITIVITY_COLUMNS
    assert dict(wh.read(spark, "gold", "bont_tokens/matcher_sensitivity").dtypes)["exposed_only"] == "bigint"
    mig = csv[csv["cohort"] == "migraine"].set_index("matcher")
    cols = ["exposed_reports", "exposed_events", "control_reports", "control_events"]
    for m in ("tokens", "ingredients", "either"):
        assert tuple(mig.loc[m, cols]) == counts(MIGRAINE, m)
    # the primary row is cohort_results, cohort by cohort (counts and ROR)
    primary = csv[csv["primary"]].reset_index(drop=True)
    assert list(primary["matcher"].unique()) == ["tokens"]
    assert primary[["cohort", *cols]].values.tolist() == results[["cohort", *cols]].values.tolist()
    pd.testing.assert_series_equal(primary["ror"], results["ror"], check_names=False)
    assert any("matcher sensitivity ->" in m and "tokens 4, ingredients 5, either 6" in m for m in logs)
    assert any("exposure matched by tokens" in m and "drug_ingredients@" in m for m in logs)


@pytest.mark.pipeline
def test_report_has_the_matchers_side_by_side(full_run):
    _, out, _, _ = full_run
    for name in ("report.md", "report.html"):
        assert "Exposure matched by tokens and by ingredients" in (out / name).read_text()
    md = (out / "report.md").read_text()
    section = md.split("## Exposure matched by tokens and by ingredients", 1)[1].split("\n## ", 1)[0]
    assert "the results above use tokens" in section
    rows = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[1:-1]]
            for ln in section.splitlines() if ln.startswith("| ")}
    mig = rows["migraine"]
    # exposed, exposed events, control, control events (tokens | ingredients), ROR x2, only x2
    assert mig[:9] == ["migraine", "3", "4", "2", "1", "6", "5", "2", "3"]
    assert mig[9].startswith("4.00 (") and mig[10].startswith("0.222 (")
    assert mig[11:] == ["1", "2"]
    assert rows["spasticity"][:9] == ["spasticity", "1", "1", "0", "0", "0", "0", "0", "0"]
    assert "ingredients: ONABOTULINUMTOXINA, ABOBOTULINUMTOXINA; matched by tokens" in md
    assert "| silver/drug_ingredients |" in md  # its version is in the provenance


@pytest.mark.pipeline
def test_run_study_with_the_ingredient_matcher(spark, silver, studies, tmp_path, seal_silver):
    wh = _warehouse(spark, tmp_path / "wh", silver, seal_silver, with_ingredients=True)
    ps = dataclasses.replace(studies["ingredients"], exposure_role_codes=["PS"])
    results = gold.run_study(spark, wh.root, ps, str(tmp_path / "out"), log=lambda m: None)
    mig = results.set_index("cohort").loc["migraine"]
    assert (mig["exposed_reports"], mig["exposed_events"], mig["control_reports"], mig["control_events"]) \
        == counts(MIGRAINE_PS, "ingredients")
    sens = pd.read_csv(tmp_path / "out" / "bont_ingredients" / "matcher_sensitivity.csv")
    assert list(sens.loc[sens["primary"], "matcher"]) == ["ingredients", "ingredients"]
    members = wh.read(spark, "gold", "bont_ingredients/cohort_members")
    got = {(r.report_key, r.cohort): (r.exposed, r.event) for r in members.collect()}
    assert got == expected(MIGRAINE_PS, "ingredients")


@pytest.fixture(scope="module")
def old_warehouse(spark, silver, tmp_path_factory, seal_silver):
    """Silver as a faerslake before the ingredient step left it: no drug_ingredients."""
    root = tmp_path_factory.mktemp("without-ingredients")
    return _warehouse(spark, root / "wh", silver, seal_silver, with_ingredients=False), root


@pytest.mark.pipeline
@pytest.mark.parametrize("matcher", ["ingredients", "either"])
def test_missing_table_refuses_an_ingredient_matcher(spark, old_warehouse, studies, matcher):
    wh, root = old_warehouse
    with pytest.raises(InputError) as e:
        gold.run_study(spark, wh.root, studies[matcher], str(root / "out"), log=lambda m: None)
    msg = str(e.value)
    assert msg == (
        f"study bont_{matcher} matches its exposure by ingredients (exposure.matcher: {matcher}), but there is "
        f"no silver table 'drug_ingredients' at {wh.path('silver', 'drug_ingredients')} (the warehouse was built "
        f"by an older faerslake): run 'faerslake build --warehouse {wh.root} --force' first.")
    # refused before any work: no gold table, no output folder
    assert not wh.exists(spark, "gold", f"bont_{matcher}/cohort_members")
    assert not (root / "out" / f"bont_{matcher}").exists()


@pytest.mark.pipeline
def test_missing_table_leaves_a_token_study_running(spark, old_warehouse, studies, silver):
    wh, root = old_warehouse
    logs: list[str] = []
    results = gold.run_study(spark, wh.root, studies["tokens"], str(root / "out"), log=logs.append)
    mig = results.set_index("cohort").loc["migraine"]
    assert (mig["exposed_reports"], mig["exposed_events"], mig["control_reports"], mig["control_events"]) \
        == counts(MIGRAINE, "tokens")
    warning = [m for m in logs if m.startswith("warning:")]
    assert warning == [
        "warning: study bont_tokens: matcher sensitivity not computed: the warehouse has no silver table "
        "'drug_ingredients' (built by an older faerslake); run 'faerslake build --warehouse "
        f"{wh.root} --force' and the study again to compare the matchers"]
    out = root / "out" / "bont_tokens"
    sens = pd.read_csv(out / "matcher_sensitivity.csv")
    assert list(sens.columns) == gold.SENSITIVITY_COLUMNS and len(sens) == 0  # header only
    assert wh.read(spark, "gold", "bont_tokens/matcher_sensitivity").count() == 0  # no stale rows
    md = (out / "report.md").read_text()
    assert "Matcher sensitivity: not computed: the warehouse has no silver table 'drug_ingredients'" in md
    # the default study (matcher tokens, ingredients beside) on the same warehouse runs too
    default = dataclasses.replace(load_study(), name="default_copy")
    gold.run_study(spark, wh.root, default, str(root / "out"), log=lambda m: None)
    assert "not computed" in (root / "out" / "default_copy" / "report.md").read_text()
