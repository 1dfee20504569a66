"""Drug identity (issue #16): silver/drug_ingredients, the learned dictionary,
the curated table, OUT/drug_identity.csv.

Unit tests run each resolution step on hand-worked rows; the genuine tests
ingest the bundled FAERS / AERS samples (tests/data/faers) into one warehouse,
build it with and without the curated table, and measure the resolved share
per sample quarter and the precision / recall on the hand-labelled list
tests/data/drug_labels.csv (ingredients written by hand, not copied from
prod_ai; an empty label = not identifiable, left out of precision).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from faerslake.config import load_pipeline_config
from faerslake.contracts import SILVER
from faerslake.normalise import norm_drug
from faerslake.silver import identity as idn
from pyspark.sql import functions as F

LABELS = Path(__file__).parent / "data" / "drug_labels.csv"
# sample folder -> its quarter (2020q3-tiny is left out: the same quarter as 2020q3-head10k)
SAMPLE_QUARTERS = {
    "legacy-2004q1": "2004Q1", "2012q4-tiny": "2012Q4", "2017q2-sample": "2017Q2", "2020q3-head10k": "2020Q3",
    "2022q4-zip": "2022Q4", "2025q4-sample": "2025Q4", "2026q2-zip": "2026Q2",
}
# FAERSLAKE_IDENTITY_FIGURES=path.json: the measured figures are also written there (for the README)
RESULTS = os.environ.get("FAERSLAKE_IDENTITY_FIGURES")


def _one(spark, values: list[str | None], fn) -> list:
    df = spark.createDataFrame([(v,) for v in values], "x string")
    return [r[0] for r in df.select(fn(F.col("x"))).collect()]


# --------------------------------------------------------------------------- #
# step 1: prod_ai, folding
# --------------------------------------------------------------------------- #
def test_fold_moiety_rule_list(spark):
    cases = {
        "PANTOPRAZOLE SODIUM SESQUIHYDRATE": "PANTOPRAZOLE",
        "AMLODIPINE BESYLATE": "AMLODIPINE",
        "ATORVASTATIN CALCIUM": "ATORVASTATIN",
        "METFORMIN HYDROCHLORIDE": "METFORMIN",
        "HYDROCODONE BITARTRATE": "HYDROCODONE",
        "BETAMETHASONE DIPROPIONATE": "BETAMETHASONE",
        "CITALOPRAM HYDROBROMIDE": "CITALOPRAM",
        "SODIUM CHLORIDE": "SODIUM CHLORIDE",
        "POTASSIUM CHLORIDE": "POTASSIUM CHLORIDE",
        "CALCIUM CARBONATE": "CALCIUM CARBONATE",
        "MAGNESIUM OXIDE": "MAGNESIUM OXIDE",
        "FERROUS SULFATE": "FERROUS SULFATE",
        "ZINC SULFATE": "ZINC SULFATE",
        "LITHIUM CARBONATE": "LITHIUM CARBONATE",
        "ONABOTULINUMTOXINA": "ONABOTULINUMTOXINA",
        "ABOBOTULINUMTOXINA": "ABOBOTULINUMTOXINA",
        "INSULIN GLARGINE": "INSULIN GLARGINE",
        "TRIAMCINOLONE ACETONIDE": "TRIAMCINOLONE ACETONIDE",
        "CHLORAL HYDRATE": "CHLORAL HYDRATE",
        "  FOLIC   ACID ": "FOLIC ACID",
        "": None,
    }
    got = _one(spark, list(cases), idn.fold_moiety)
    assert dict(zip(cases, got, strict=True)) == cases
    # the minerals stay distinct from each other
    minerals = [v for k, v in cases.items() if k in ("SODIUM CHLORIDE", "POTASSIUM CHLORIDE", "CALCIUM CARBONATE",
                                                      "MAGNESIUM OXIDE", "FERROUS SULFATE")]
    assert len(set(minerals)) == 5
    assert _one(spark, [None], idn.fold_moiety) == [None]


def test_prod_ai_splits_on_backslash_only(spark):
    got = _one(spark, ["HYDROCODONE BITARTRATE\\ACETAMINOPHEN", "AMLODIPINE BESYLATE\\\\", "NA", None,
                       "VARICELLA-ZOSTER VIRUS STRAIN OKA/MERCK LIVE ANTIGEN",
                       "PANTOPRAZOLE SODIUM\\PANTOPRAZOLE"],
               idn.prod_ai_ingredients)
    assert got == [["ACETAMINOPHEN", "HYDROCODONE"], ["AMLODIPINE"], [], [],
                   ["VARICELLA-ZOSTER VIRUS STRAIN OKA/MERCK LIVE ANTIGEN"], ["PANTOPRAZOLE"]]


# --------------------------------------------------------------------------- #
# step 2: name keys
# --------------------------------------------------------------------------- #
def test_ingredient_part_and_candidates(spark):
    parts = _one(spark, ["PANTOLOC//PANTOPRAZOLE SODIUM SESQUIHYDRATE", "CIPROBAY (CIPROFLOXACIN)",
                         "MAGLAX [MAGNESIUM OXIDE]", "BOTOX", "BOTOX (UNITED STATES)"],
                 lambda c: idn.ingredient_part(idn.clean_name(c)))
    assert parts == ["PANTOPRAZOLE SODIUM SESQUIHYDRATE", "CIPROFLOXACIN", "MAGNESIUM OXIDE", None, None]
    df = spark.createDataFrame([("PANTOLOC//PANTOPRAZOLE SODIUM SESQUIHYDRATE",)], "drugname_norm string")
    keys = [c["key"] for c in idn.with_name_candidates(df).first()["candidates"]]
    assert keys[:2] == ["PANTOLOC//PANTOPRAZOLE SODIUM SESQUIHYDRATE", "PANTOPRAZOLE SODIUM SESQUIHYDRATE"]
    assert "PANTOPRAZOLE" in keys
    bare = _one(spark, ["AMLODIPINE BESYLATE 10", "PANTOPRAZOLE40MG", "PREDNISOLONE EYE DROPS",
                        "TRIAMCINOLONE 1%", "VITAMIN B12"], idn.bare_name)
    assert bare == ["AMLODIPINE BESYLATE", "PANTOPRAZOLE", "PREDNISOLONE", "TRIAMCINOLONE", "VITAMIN B12"]


def _drugs(spark, rows):
    """silver/drugs rows (report_key, drug_seq, drugname, prod_ai) in quarter 2020Q3."""
    df = spark.createDataFrame([(k, "2020Q3", s, "PS", n, p) for k, s, n, p in rows],
                               "report_key long, quarter string, drug_seq long, role_cod string, drugname string, "
                               "prod_ai string")
    return df.withColumn("drugname_norm", norm_drug("drugname")).withColumn("prod_ai_norm", norm_drug("prod_ai"))


def _resolved(identity) -> dict[tuple[int, int], tuple[str, tuple | None]]:
    return {(r["report_key"], r["drug_seq"]): (r["method"], tuple(r["ingredients"]) if r["ingredients"] else None)
            for r in identity.rows.collect()}


def test_dictionary_support_and_agreement(spark):
    rows = [(1, 1, "ALPHA", "ALPHAZINE"), (2, 1, "ALPHA", "ALPHAZINE HYDROCHLORIDE"), (3, 1, "ALPHA", "BETAZOLE"),
            (4, 1, "GAMMA", "GAMMAMAB"),  # support 1
            (5, 1, "DELTA", "DELTANIB"), (6, 1, "DELTA", "EPSILONIB"),  # agreement 0.5
            (10, 1, "ALPHA", None), (11, 1, "GAMMA", None), (12, 1, "DELTA", None)]
    d = idn.with_prod_ai_ingredients(_drugs(spark, rows))
    learned = {r["name"]: (r["ingredients"], r["support"], round(r["agreement"], 3))
               for r in idn.learn_dictionary(d, 2, 0.6).collect()}
    assert learned == {"ALPHA": (["ALPHAZINE"], 3, 0.667)}
    got = _resolved(idn.resolve(spark, _drugs(spark, rows), 2, 0.6, curated=False))
    assert got[(10, 1)] == ("learned_name", ("ALPHAZINE",))
    assert got[(11, 1)] == ("unresolved", None)  # below support
    assert got[(12, 1)] == ("unresolved", None)  # below agreement
    # support 1 learns GAMMA; agreement 0.5 still refused
    got = _resolved(idn.resolve(spark, _drugs(spark, rows), 1, 0.6, curated=False))
    assert got[(11, 1)] == ("learned_name", ("GAMMAMAB",)) and got[(12, 1)] == ("unresolved", None)


def test_resolution_order_and_methods(spark):
    rows = [
        (1, 1, "PANTOLOC", "PANTOPRAZOLE SODIUM SESQUIHYDRATE"),  # prod_ai
        (1, 2, "VICODIN", "HYDROCODONE BITARTRATE\\ACETAMINOPHEN"),  # combination -> two rows
        (2, 1, "PANTOLOC", None),  # the learned dictionary
        (2, 2, "SOMEBRAND//AMLODIPINE BESYLATE", None),  # BRAND//INGREDIENT, a known ingredient
        (2, 3, "OTHERBRAND (PANTOPRAZOLE)", None),  # BRAND (INGREDIENT)
        (2, 4, "CITALOPRAM HYDROBROMIDE", None),  # a known ingredient (folded), no dictionary entry
        (3, 1, "TYLENOL", None),  # curated brand
        (3, 2, "PARACETAMOLUM", None),  # curated INN spelling, Latin ending
        (3, 3, "XQZ UNKNOWN BRAND", None),  # unresolved, kept
        (3, 4, None, None),  # no text at all, kept
        (3, 5, "AMLODIPINE BESYLATE/CITALOPRAM", None),  # a combination of known ingredients
        (3, 6, "AMLODIPINE/XQZ", None),  # a part unknown: not resolved
        (4, 1, "CITALOPRAM", "CITALOPRAM HYDROBROMIDE"),
        (4, 2, "NORVASC", "AMLODIPINE BESYLATE"),
        (4, 3, "TYLENOL", "ACETAMINOPHEN\\CODEINE"),  # prod_ai wins over the curated table
    ]
    ident = idn.resolve(spark, _drugs(spark, rows), 1, 0.8, curated=True)
    got = _resolved(ident)
    assert got == {
        (1, 1): ("prod_ai", ("PANTOPRAZOLE",)),
        (1, 2): ("prod_ai", ("ACETAMINOPHEN", "HYDROCODONE")),
        (2, 1): ("learned_name", ("PANTOPRAZOLE",)),
        (2, 2): ("learned_name", ("AMLODIPINE",)),
        (2, 3): ("learned_name", ("PANTOPRAZOLE",)),
        (2, 4): ("learned_name", ("CITALOPRAM",)),
        (3, 1): ("learned_name", ("ACETAMINOPHEN", "CODEINE")),  # the lake's own TYLENOL row comes first
        (3, 2): ("curated", ("ACETAMINOPHEN",)),
        (3, 3): ("unresolved", None),
        (3, 4): ("unresolved", None),
        (3, 5): ("learned_name", ("AMLODIPINE", "CITALOPRAM")),
        (3, 6): ("unresolved", None),
        (4, 1): ("prod_ai", ("CITALOPRAM",)),
        (4, 2): ("prod_ai", ("AMLODIPINE",)),
        (4, 3): ("prod_ai", ("ACETAMINOPHEN", "CODEINE")),
    }
    # without the curated table the curated rows stay unresolved
    off = _resolved(idn.resolve(spark, _drugs(spark, rows), 1, 0.8, curated=False))
    assert off[(3, 2)] == ("unresolved", None)
    assert {k: v for k, v in off.items() if k != (3, 2)} == {k: v for k, v in got.items() if k != (3, 2)}
    # a curated brand the lake does not know
    cur = _resolved(idn.resolve(spark, _drugs(spark, [(9, 1, "LIPITOR", None)]), 1, 0.8, curated=True))
    assert cur == {(9, 1): ("curated", ("ATORVASTATIN",))}

    # the exploded table: every drug row >= 1 row, one per ingredient, one method per drug row
    out = idn.explode_ingredients(ident.rows)
    assert [f.name for f in out.schema.fields] == [f.name for f in SILVER["drug_ingredients"].fields]
    exploded = sorted((r["report_key"], r["drug_seq"], r["ingredient"] or "", r["method"]) for r in out.collect())
    assert (1, 2, "ACETAMINOPHEN", "prod_ai") in exploded and (1, 2, "HYDROCODONE", "prod_ai") in exploded
    assert (3, 3, "", "unresolved") in exploded and (3, 4, "", "unresolved") in exploded
    assert len(exploded) == len(rows) + 4  # four combinations of two


def test_rules_after_the_table(spark):
    """The rules tried after the curated table, each on hand-worked names:
    the first bracket anywhere, maker words, German -AT, known ingredients
    inside a longer name, a near (misspelt / cut) ingredient, WHO INN stems;
    and the names each rule must leave alone."""
    known = [  # rows with a prod_ai: what the lake knows
        (1, 1, "LIPITOR", "ATORVASTATIN CALCIUM"), (1, 2, "ZOCOR", "SIMVASTATIN"),
        (1, 3, "FOSAMAX", "ALENDRONATE SODIUM"), (1, 4, "SERC", "BETAHISTINE HYDROCHLORIDE"),
        (1, 5, "NORCO", "HYDROCODONE BITARTRATE\\ACETAMINOPHEN"), (1, 6, "PROTONIX", "PANTOPRAZOLE SODIUM"),
        (1, 7, "X1", "ALPHAZOLINE"), (1, 8, "X2", "ALPHAZOLAMIDE"),
        (1, 9, "MAG", "MAGNESIUM CITRATE"), (1, 10, "VITA", "VITAMIN A"), (1, 11, "HUMULIN R", "INSULIN HUMAN"),
        (1, 12, "KEPPRA", "LEVETIRACETAM"),
    ]
    cases = {  # name -> (method, ingredients) with the table on
        "ZOCOR(SIMVASTATIN) TABLET, IU": ("learned_name", ("SIMVASTATIN",)),  # a bracket inside
        "(SIMVASTATIN) - SOLUTION- 85 MG/M2": ("learned_name", ("SIMVASTATIN",)),
        "APO-ALENDRONAT": ("learned_name", ("ALENDRONATE",)),  # maker prefix, German -AT
        "LIPITOR CONTINUING": ("learned_name", ("ATORVASTATIN",)),  # AERS's CONTINUING
        "NOVO BETAHISTINE": ("learned_name", ("BETAHISTINE",)),
        "LEVETIRACETAM XYZPHARM CONCENTRATE": ("learned_name", ("LEVETIRACETAM",)),  # inside a longer name
        "XQZ HYDROCODONE BITARTRATE?ACETAMINOPHEN": ("learned_name", ("ACETAMINOPHEN", "HYDROCODONE")),
        "ATORVASTSTIN": ("learned_name", ("ATORVASTATIN",)),  # one edit
        "PANTOPRAZ": ("learned_name", ("PANTOPRAZOLE",)),  # cut off
        "NEVIRAPINE": ("curated", ("NEVIRAPINE",)),  # an INN stem (-APINE), no prod_ai names it
        "B12 3000MCG": ("curated", ("CYANOCOBALAMIN",)),  # a vitamin code of the table
        "VIT B12": ("curated", ("CYANOCOBALAMIN",)),
        "CO TENIDONE": ("curated", ("ATENOLOL", "CHLORTHALIDONE")),  # a British co- name
        "VIOXX": ("curated", ("ROFECOXIB",)),
        # left alone
        "ALPHAZOL": ("unresolved", None),  # the start of two known ingredients
        "ATORVASTAT": ("learned_name", ("ATORVASTATIN",)),  # the start of one
        "CALCIUM MAGNESIUM CITRATE": ("unresolved", None),  # a salt word left over
        "VITAMIN A D": ("unresolved", None),  # a vitamin letter left over
        "HUMULIN INSULIN": ("unresolved", None),  # a class word alone is not an ingredient
        "LIPITOR/XQZ BRAND": ("unresolved", None),  # a part of the combination holds nothing known
        "GARAMYCIN": ("unresolved", None),  # -MYCIN is no stem here: brands use it
        "GASTEROL": ("unresolved", None),  # nor -TEROL
        "ATORVA": ("unresolved", None),  # too short to be near
    }
    rows = known + [(2, i, name, None) for i, name in enumerate(cases, start=1)]
    got = _resolved(idn.resolve(spark, _drugs(spark, rows), 1, 0.8, curated=True))
    assert {name: got[(2, i)] for i, name in enumerate(cases, start=1)} == cases
    # without the table: the lake's own rules still apply, the table's (stems, codes, brands) do not
    off = _resolved(idn.resolve(spark, _drugs(spark, rows), 1, 0.8, curated=False))
    assert {name: off[(2, i)] for i, name in enumerate(cases, start=1)} == {
        name: (("unresolved", None) if want[0] == "curated" else want) for name, want in cases.items()}


def test_curated_table_is_a_list_of_sourced_facts():
    entries = idn.curated_entries()
    assert 100 <= len(entries) <= 500
    assert len({name for name, _, _ in entries}) == len(entries)
    assert all(src for _, _, src in entries)
    spell = idn.spelling_map()
    assert spell["PARACETAMOL"] == "ACETAMINOPHEN" and spell["SALBUTAMOL"] == "ALBUTEROL"


def test_summary_frame_reconciles():
    per_q = [("2004Q1", "learned_name", 8), ("2004Q1", "unresolved", 2), ("2020Q3", "prod_ai", 90),
             ("2020Q3", "curated", 1), ("2020Q3", "unresolved", 1)]
    s = idn.summary_frame(per_q, [("XQZ", 2), ("ABC", 1)])
    for level in ("all", "era", "quarter"):
        part = s[s.level == level]
        assert part.drug_rows.sum() == 102
        for _, g in part.groupby("key"):
            assert abs(g.share.sum() - 1) < 1e-9 and list(g.method) == list(idn.METHODS)
    assert s[s.level == "era"].key.drop_duplicates().tolist() == ["legacy", "faers"]
    assert s[s.level == "unresolved_name"][["key", "drug_rows"]].values.tolist() == [["XQZ", 2], ["ABC", 1]]
    assert "prod_ai 90 (88.2%)" in idn.resolved_line(s)


def test_identity_settings_are_checked():
    from faerslake.errors import ConfigError

    cfg = load_pipeline_config(overrides=["identity.min_support=3", "identity.curated=false"])
    assert (cfg.identity.min_support, cfg.identity.curated) == (3, False)
    for bad in ("identity.min_support=0", "identity.min_agreement=0.5", "identity.min_agreement=1.5"):
        with pytest.raises(ConfigError, match="identity.min_"):
            load_pipeline_config(overrides=[bad])


# --------------------------------------------------------------------------- #
# genuine samples
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def genuine(spark, samples, tmp_path_factory):
    """The bundled samples ingested into one warehouse and built (curated on)."""
    from faerslake import silver
    from faerslake.ingest import ingest

    root = tmp_path_factory.mktemp("identity")
    src = root / "src"
    for name in SAMPLE_QUARTERS:
        shutil.copytree(samples / name, src / name)
    wh = str(root / "wh")
    ingest(spark, str(src), wh, log=lambda s: None)
    lines: list[str] = []
    result = silver.build(spark, wh, log=lines.append, output=str(root / "out"))
    return root, wh, result, lines


def _shares(summary: pd.DataFrame) -> dict[str, float]:
    q = summary[summary.level == "quarter"]
    return {k: round(1 - float(g.loc[g.method == "unresolved", "share"].iloc[0]), 4) for k, g in q.groupby("key")}


def _record(key: str, value) -> None:
    if not RESULTS:
        return
    path = Path(RESULTS)
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = value
    path.write_text(json.dumps(data, indent=1, sort_keys=True))


def test_genuine_resolved_share_per_sample(spark, genuine):
    from faerslake import silver

    root, wh, result, lines = genuine
    with_table = _shares(result.identity)
    assert set(with_table) == set(SAMPLE_QUARTERS.values())
    assert any(line.startswith("silver: drug identity: drug rows by method: prod_ai") for line in lines)
    # the same warehouse without the curated table: new identity settings rebuild silver
    cfg = load_pipeline_config(overrides=["identity.curated=false"])
    off = silver.build(spark, wh, cfg=cfg, log=lambda s: None)
    assert not off.skipped
    without_table = _shares(off.identity)
    back = silver.build(spark, wh, log=lambda s: None)  # and back (curated on) for the other tests
    assert not back.skipped and _shares(back.identity) == with_table
    _record("resolved_share", {"with_curated": with_table, "without_curated": without_table})
    print("resolved share with curated table:", with_table)
    print("resolved share without curated table:", without_table)
    # The measured figures, exact (README "Drug identity"). The targets
    # (>= 0.99 per FAERS-era sample, >= 0.85 for 2004Q1) are met with the table
    # by every sample but 2020Q3: see the README for what stays unresolved.
    assert with_table == {"2004Q1": 0.8549, "2012Q4": 1.0, "2017Q2": 0.9938, "2020Q3": 0.9818,
                          "2022Q4": 1.0, "2025Q4": 0.9903, "2026Q2": 1.0}
    assert without_table == {"2004Q1": 0.7539, "2012Q4": 0.6, "2017Q2": 0.9938, "2020Q3": 0.9799,
                             "2022Q4": 1.0, "2025Q4": 0.9875, "2026Q2": 1.0}
    for q, share in with_table.items():
        assert without_table[q] <= share


def test_drug_identity_csv_reconciles_with_silver_drugs(spark, genuine):
    from faerslake import silver
    from faerslake.tables import Warehouse

    root, wh, _, _ = genuine
    w = Warehouse(wh)
    n_drugs = w.read(spark, "silver", "drugs").count()
    per_q = {r["quarter"]: r["count"] for r in w.read(spark, "silver", "drugs").groupBy("quarter").count().collect()}
    ing = w.read(spark, "silver", "drug_ingredients")
    assert [(f.name, f.dataType) for f in ing.schema.fields] == [
        (f.name, f.dataType) for f in SILVER["drug_ingredients"].fields]
    # every drug row has >= 1 row and one method; unresolved rows carry no ingredient
    assert ing.where("method = 'unresolved' and ingredient is not null").count() == 0
    assert ing.where("method != 'unresolved' and ingredient is null").count() == 0
    assert ing.groupBy("report_key", "quarter", "drug_seq", "drugname_norm").agg(
        F.countDistinct("method").alias("m")).where("m > 1").count() == 0
    out = root / "out2"
    again = silver.build(spark, wh, log=lambda s: None, output=str(out))  # skipped: the CSV from the stored table
    assert again.skipped
    csv_df = pd.read_csv(out / "drug_identity.csv", keep_default_na=False)
    assert list(csv_df.columns) == idn.SUMMARY_COLUMNS
    for level in ("all", "era", "quarter"):
        assert csv_df.loc[csv_df.level == level, "drug_rows"].sum() == n_drugs, level
    by_q = csv_df[csv_df.level == "quarter"].groupby("key").drug_rows.sum().to_dict()
    assert by_q == per_q
    top = csv_df[csv_df.level == "unresolved_name"]
    assert 0 < len(top) <= 100 and top.drug_rows.is_monotonic_decreasing
    unresolved = csv_df.loc[(csv_df.level == "all") & (csv_df.method == "unresolved"), "drug_rows"].iloc[0]
    # an unresolved drug row is exactly one row of drug_ingredients
    assert unresolved == ing.where("method = 'unresolved'").count() >= top.drug_rows.sum()


# FDA's name of the same substance -> the name the label uses (naming, not
# identity: counted correct, and listed in the report as such)
SAME_SUBSTANCE = {
    "HYPROMELLOSES": "HYPROMELLOSE",
    "HUMAN C1-ESTERASE INHIBITOR": "C1 ESTERASE INHIBITOR HUMAN",
    "BACILLUS CALMETTE-GUERIN SUBSTRAIN TICE LIVE ANTIGEN": "BCG LIVE",
}


def test_labelled_list_precision_and_recall(spark, genuine):
    """Each labelled name resolved as a drug row of the lake (its sample's
    prod_ai with it, or none): correct when its ingredient set equals the
    hand-written label set."""
    from faerslake.tables import Warehouse

    _, wh, _, _ = genuine
    with LABELS.open(newline="", encoding="utf-8") as fh:
        labels = list(csv.DictReader(fh))
    assert len(labels) >= 200 and len({r["drugname"].upper() for r in labels}) == len(labels)
    drugs = Warehouse(wh).read(spark, "silver", "drugs")
    extra = spark.createDataFrame(
        [(-(i + 1), "2099Q1", 1, "PS", r["drugname"], r["prod_ai"] or None) for i, r in enumerate(labels)],
        "report_key long, quarter string, drug_seq long, role_cod string, drugname string, prod_ai string",
    ).withColumn("drugname_norm", norm_drug("drugname")).withColumn("prod_ai_norm", norm_drug("prod_ai"))
    results = {}
    for curated in (True, False):
        got = {-r["report_key"] - 1: (r["method"], sorted(r["ingredients"] or []))
               for r in idn.resolve(spark, drugs.unionByName(extra), 1, 0.8, curated).rows
               .where("report_key < 0").collect()}
        labelled = [(i, sorted(x for x in r["ingredients"].split("\\") if x)) for i, r in enumerate(labels)
                    if r["ingredients"]]
        resolved = [(i, want) for i, want in labelled if got[i][0] != "unresolved"]
        strict_wrong = [i for i, want in resolved if got[i][1] != want]
        wrong = [(labels[i]["drugname"], want, got[i]) for i, want in resolved
                 if sorted(SAME_SUBSTANCE.get(x, x) for x in got[i][1]) != want]
        precision = 1 - len(wrong) / len(resolved)
        recall = (len(resolved) - len(wrong)) / len(labelled)
        # two different labels never resolve to the same ingredient set
        by_set: dict[tuple, set] = {}
        for i, want in resolved:
            by_set.setdefault(tuple(got[i][1]), set()).add(tuple(want))
        merged = {k: v for k, v in by_set.items() if len(v) > 1}
        wrong_names = {w[0] for w in wrong}
        results["with_curated" if curated else "without_curated"] = {
            "labelled": len(labelled), "resolved": len(resolved), "wrong": len(wrong),
            "precision": round(precision, 4), "recall": round(recall, 4), "wrong_names": wrong[:20],
            "precision_exact_names": round(1 - len(strict_wrong) / len(resolved), 4),
            "merged": {"\\".join(k): sorted("\\".join(x) for x in v) for k, v in merged.items()}}
        print(curated, results)
        assert precision >= 0.99, wrong
        # a merge of two labels only ever comes from a wrong resolution, never from two right ones
        for k, v in merged.items():
            names = {labels[i]["drugname"] for i, want in resolved if tuple(got[i][1]) == k}
            assert names & wrong_names, (k, v)
    _record("labelled_list", results)


def test_a_lake_without_drug_ingredients_is_rebuilt(spark, genuine):
    """A warehouse built before this step has no silver/drug_ingredients:
    build is then not up to date and writes it."""
    from faerslake import silver
    from faerslake.silver.job import _bronze_versions, _up_to_date
    from faerslake.tables import Warehouse

    _, wh, _, _ = genuine
    w = Warehouse(wh)
    settings = load_pipeline_config().identity.fingerprint()
    assert _up_to_date(spark, w, _bronze_versions(spark, w), False, settings)
    n = w.read(spark, "silver", "drug_ingredients").count()
    shutil.rmtree(Path(wh) / "silver" / "drug_ingredients")
    assert not _up_to_date(spark, w, _bronze_versions(spark, w), False, settings)
    again = silver.build(spark, wh, log=lambda s: None)
    assert not again.skipped and again.rows["drug_ingredients"] == n
    assert w.read(spark, "silver", "drug_ingredients").count() == n
    assert silver.build(spark, wh, log=lambda s: None).skipped
