"""Gold, issue #18: what a study's terms matched in silver.

Pure transforms (``DataFrame -> DataFrame``; the two small summaries come to
the driver as pandas) built from the expressions of :mod:`.cohorts`, so what
they list is what :func:`~faerslake.gold.cohorts.cohort_members` used: the
same substring test (:func:`~faerslake.gold.cohorts.contains_any`), the same
role filter (:func:`~faerslake.gold.cohorts.role_allowed`) and period
(:func:`~faerslake.gold.cohorts.in_period`).

:func:`term_matches` has one row per (token list, token, distinct pair of
normalised drugname and prod_ai the token is found in), columns
:data:`TERM_COLUMNS`:

- ``list``: the study key the token comes from, in this order:
  ``exposure.tokens``, ``exposure.exclude_tokens``, ``exclusions.drug_tokens``;
- ``token``; ``field``: where it was found (``drugname``, ``prod_ai`` or ``both``);
- ``drugname``, ``prod_ai``: the pair (silver's ``drugname_norm`` /
  ``prod_ai_norm``; empty when null);
- ``kept``: for ``exposure.tokens``, whether the pair is an exposure drug
  (it contains no exclusion token: :func:`~faerslake.gold.cohorts.drug_matches`);
  ``exposure.exclude_tokens`` rows are the pairs an exposure token found that
  an exclusion token removed, so always false; empty for ``exclusions.drug_tokens``;
- ``removed_by``: the exclusion tokens the pair contains, ``" | "``-joined in
  study order (empty when none);
- ``first_match``: the token is the first of its list (study order) the pair
  contains. Each pair has one such row per list, so summing ``drug_rows``
  over them counts every drug row once;
- ``drug_rows``, ``reports``: the drug rows of the pair and their distinct
  reports (``report_key, quarter``).

Which drug rows: those of ``study.period`` whose report is in silver
``reports`` (an orphan child row makes no cohort either); for the two
``exposure.*`` lists only the rows whose role code is one of
``exposure_role_codes`` (when set), as :func:`~faerslake.gold.cohorts.is_exposure_drug`;
``exclusions.drug_tokens`` rows whatever their role (as the exclusion rule),
and only when the study's exclusions are enabled. So::

    sum(drug_rows | exposure.tokens, kept, first_match) == exposure drug rows by tokens
    sum(drug_rows | exposure.exclude_tokens, first_match) == sum(drug_rows | exposure.tokens, not kept, first_match)
    sum(drug_rows | exclusions.drug_tokens, first_match) == drug rows of the exclusion rule

The ingredient matcher (``exposure.ingredients``) is not listed: it compares
whole names, so there is nothing it "catches" beyond what the study names.

:func:`cohort_indications`: per cohort and indication PT of the study file,
the exposed and control reports of ``cohort_members`` with that INDI PT.
"""

from __future__ import annotations

import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from faerslake.config import Study
from faerslake.gold.cohorts import KEYS, cohort_terms, contains_any, in_period, role_allowed

LISTS = ["exposure.tokens", "exposure.exclude_tokens", "exclusions.drug_tokens"]
TERM_COLUMNS = ["list", "token", "field", "drugname", "prod_ai", "kept", "removed_by", "first_match",
                "drug_rows", "reports"]
# the columns top_terms adds: the row's place in its group, the group's names and
# drug rows (group: list, token, kept), and the list's drug rows counted once
# (first_match rows of the same list and kept)
SUMMARY_COLUMNS = [*TERM_COLUMNS, "rank", "token_names", "token_rows", "list_rows"]
INDICATION_COLUMNS = ["study", "cohort", "indication_pt", "exposed_reports", "control_reports"]
DEFAULT_LIMIT = 20
# _order (the internal sort key of term_matches' rows) = list index * _LIST_STEP + token index
_LIST_STEP = 1_000_000


def _cols() -> list[Column]:
    """The two columns every token is looked for in (as :mod:`.cohorts` does)."""
    return [F.col("drugname_norm"), F.col("prod_ai_norm")]


def _tokens(tokens: list[str]) -> list[str]:
    return list(dict.fromkeys(tokens))


def _has(token: str) -> Column:
    return contains_any(_cols(), [token])


def _field(token: str) -> Column:
    """Column: where ``token`` is in the pair (the pair is known to contain it)."""
    in_dn, in_ai = (F.coalesce(c, F.lit("")).contains(token) for c in _cols())
    return F.when(in_dn & in_ai, "both").when(in_dn, "drugname").otherwise("prod_ai")


def _matched(tokens: list[str]) -> Column:
    """Column: ``array<struct<i, token, field>>`` of the tokens the pair contains
    (``i``: the token's place in the list), in study order."""
    hits = F.array(*[F.when(_has(t), F.struct(F.lit(i).alias("i"), F.lit(t).alias("token"),
                                              _field(t).alias("field")))
                     for i, t in enumerate(tokens)])
    return F.filter(hits, lambda h: h.isNotNull())


def _removed_by(exclude: list[str]) -> Column:
    """Column: the exclusion tokens the pair contains, ``" | "``-joined (null when none)."""
    if not exclude:
        return F.lit(None).cast("string")
    joined = F.concat_ws(" | ", *[F.when(_has(t), F.lit(t)) for t in exclude])
    return F.when(joined != "", joined)


def drug_pairs(drugs: DataFrame, reports: DataFrame | None, study: Study) -> DataFrame:
    """``drugname_norm, prod_ai_norm`` with, per pair, the drug rows and
    reports an exposure token finds (``expo_rows``, ``expo_reports``; role
    filter applied) and an exclusion drug token finds (``excl_rows``,
    ``excl_reports``): one aggregate over the drug rows of the period (those
    of a report in ``reports`` when given) that either finds."""
    drugs = in_period(drugs, study)
    if reports is not None:
        drugs = drugs.join(in_period(reports, study).select(*KEYS), KEYS, "left_semi")
    expo = contains_any(_cols(), _tokens(study.exposure.tokens)) & role_allowed(study)
    excl = study.exclusions
    drug_excl = contains_any(_cols(), _tokens(excl.drug_tokens)) if excl.enabled else F.lit(False)
    report = F.struct(*[F.col(k) for k in KEYS])
    # each test evaluated once per row (as columns), not once per aggregate
    flagged = drugs.select(*KEYS, "drugname_norm", "prod_ai_norm", expo.alias("_expo"), drug_excl.alias("_excl"))
    e, x = F.col("_expo"), F.col("_excl")

    def rows(cond: Column) -> Column:
        return F.sum(F.when(cond, 1).otherwise(0)).cast("long")

    return (flagged.where(e | x).groupBy("drugname_norm", "prod_ai_norm")
            .agg(rows(e).alias("expo_rows"), F.countDistinct(F.when(e, report)).alias("expo_reports"),
                 rows(x).alias("excl_rows"), F.countDistinct(F.when(x, report)).alias("excl_reports")))


def _list_rows(pairs: DataFrame, name: str, tokens: list[str], rows: str, reports: str,
               kept: Column, removed_by: Column, where: Column | None = None) -> DataFrame:
    """The rows of one token list from :func:`drug_pairs`: one per (token, pair)."""
    if not tokens:
        return pairs.sparkSession.createDataFrame([], _schema()).select(*TERM_COLUMNS, "_order")
    src = pairs.where(F.col(rows) > 0)
    if where is not None:
        src = src.where(where)
    return (src.select("*", F.posexplode(_matched(tokens)).alias("_pos", "_hit"))
            .select(F.lit(name).alias("list"), F.col("_hit.token").alias("token"),
                    F.col("_hit.field").alias("field"), F.col("drugname_norm").alias("drugname"),
                    F.col("prod_ai_norm").alias("prod_ai"), kept.alias("kept"), removed_by.alias("removed_by"),
                    (F.col("_pos") == 0).alias("first_match"), F.col(rows).alias("drug_rows"),
                    F.col(reports).alias("reports"),
                    (F.lit(LISTS.index(name) * _LIST_STEP) + F.col("_hit.i")).alias("_order")))


def _schema() -> str:
    return ("list STRING, token STRING, field STRING, drugname STRING, prod_ai STRING, kept BOOLEAN, "
            "removed_by STRING, first_match BOOLEAN, drug_rows BIGINT, reports BIGINT, _order INT")


def term_matches(drugs: DataFrame, reports: DataFrame | None, study: Study) -> DataFrame:
    """What each token of the study matched: :data:`TERM_COLUMNS` (see the
    module docstring), ordered by list, token (study order), kept first, then
    most reports, most rows, drugname, prod_ai (a total order: the CSV's
    bytes are the same on every run). Besides :data:`TERM_COLUMNS` it carries
    ``_order``, the sort key of (list, token), for :func:`top_terms`."""
    pairs = drug_pairs(drugs, reports, study)
    exclude = _tokens(study.exposure.exclude_tokens)
    removed = _removed_by(exclude)
    no_bool = F.lit(None).cast("boolean")
    parts = [
        _list_rows(pairs, "exposure.tokens", _tokens(study.exposure.tokens), "expo_rows", "expo_reports",
                   removed.isNull(), removed),
        _list_rows(pairs, "exposure.exclude_tokens", exclude, "expo_rows", "expo_reports",
                   F.lit(False), removed, where=removed.isNotNull()),
        _list_rows(pairs, "exclusions.drug_tokens",
                   _tokens(study.exclusions.drug_tokens) if study.exclusions.enabled else [],
                   "excl_rows", "excl_reports", no_bool, F.lit(None).cast("string")),
    ]
    out = parts[0].unionByName(parts[1]).unionByName(parts[2])
    return out.orderBy(F.col("_order"), F.col("kept").desc_nulls_last(), F.col("reports").desc(),
                       F.col("drug_rows").desc(), F.col("drugname").asc_nulls_first(),
                       F.col("prod_ai").asc_nulls_first()).select(*TERM_COLUMNS, "_order")


def top_terms(matches: DataFrame, limit: int = DEFAULT_LIMIT) -> pd.DataFrame:
    """The first ``limit`` rows of each (list, token, kept) group of
    :func:`term_matches` (its order), with the group's totals and the list's
    rows counted once (:data:`SUMMARY_COLUMNS`): at most
    ``limit`` x groups rows come to the driver, whatever the vocabulary."""
    group = Window.partitionBy("_order", "kept")
    ranked = Window.partitionBy("_order", "kept").orderBy(
        F.col("reports").desc(), F.col("drug_rows").desc(), F.col("drugname").asc_nulls_first(),
        F.col("prod_ai").asc_nulls_first())
    per_list = Window.partitionBy("list", "kept")
    df = (matches.select(
        "*", F.row_number().over(ranked).alias("rank"), F.count(F.lit(1)).over(group).alias("token_names"),
        F.sum("drug_rows").over(group).alias("token_rows"),
        F.sum(F.when(F.col("first_match"), F.col("drug_rows")).otherwise(0)).over(per_list).alias("list_rows"))
        .where(F.col("rank") <= limit)
        .orderBy("_order", F.col("kept").desc_nulls_last(), "rank"))
    rows = [r.asDict() for r in df.select(*SUMMARY_COLUMNS).collect()]
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    for c in ["drug_rows", "reports", "rank", "token_names", "token_rows", "list_rows"]:
        out[c] = out[c].astype("int64")
    return out


def cohort_indications(indications: DataFrame, members: DataFrame, study: Study) -> pd.DataFrame:
    """Per cohort (study order) and indication PT of the study file (its
    order, zeros included): ``exposed_reports`` and ``control_reports``, the
    ``cohort_members`` reports of that cohort with that INDI PT (on any drug
    row of the report, in the period). A report with two of a cohort's PTs is
    counted under each, so a cohort's PT counts may add up to more than its
    reports. One row per (cohort, PT) comes to the driver."""
    pts = cohort_terms(indications.sparkSession, study)
    hits = (in_period(indications, study).join(F.broadcast(pts), F.col("indi_pt_norm") == F.col("pt"))
            .select(*KEYS, "cohort", "pt").distinct())
    exposed = F.col("exposed").cast("boolean")
    got = {(r["cohort"], r["pt"]): (int(r["e"]), int(r["c"])) for r in (
        hits.join(members.select(*KEYS, "cohort", "exposed"), [*KEYS, "cohort"])
        .groupBy("cohort", "pt")
        .agg(F.sum(F.when(exposed, 1).otherwise(0)).alias("e"), F.sum(F.when(exposed, 0).otherwise(1)).alias("c"))
        .collect())}
    rows = [(study.name, c.name, pt, *got.get((c.name, pt), (0, 0)))
            for c in study.cohorts for pt in dict.fromkeys(c.indications)]
    out = pd.DataFrame(rows, columns=INDICATION_COLUMNS)
    for c in ["exposed_reports", "control_reports"]:
        out[c] = out[c].astype("int64")
    return out
