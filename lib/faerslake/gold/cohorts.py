"""Gold, study-spec §3: which reports are exposed or controls in which cohort.

Pure transforms over the silver tables (``DataFrame -> DataFrame``, column
helpers return a :class:`Column`), testable without I/O. The rule a user asks
about most, "what is an exposure drug", is :func:`is_exposure_drug`.
"""

from __future__ import annotations

from functools import reduce
from operator import or_

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from faerslake.config import MATCHERS, DrugMatch, Study
from faerslake.contracts import GOLD, SILVER, columns, require
from faerslake.errors import InputError
from faerslake.normalise import clean_code
from faerslake.quarters import quarter_range

KEYS = ["report_key", "quarter"]

# The columns of the silver contract (faerslake.contracts.SILVER) this stage reads.
SILVER_COLUMNS: dict[str, list[str]] = {
    "reports": ["report_key", "quarter", "era", "sex", "age_years",
                "caseid", "reporter_country", "occp_cod"],  # the last three: the case listing
    "drugs": ["report_key", "quarter", "drug_seq", "role_cod", "drugname_norm", "prod_ai_norm"],
    "indications": ["report_key", "quarter", "drug_seq", "indi_pt_norm"],
    "reactions": ["report_key", "quarter", "pt_norm"],
}

# ... and of silver/drug_ingredients, read when a study matches by ingredients
DRUG_INGREDIENT_COLUMNS = ["report_key", "quarter", "drug_seq", "role_cod", "ingredient"]

MEMBER_COLUMNS = columns(GOLD["cohort_members"])


def _col(c: str | Column) -> Column:
    return F.col(c) if isinstance(c, str) else c


def contains_any(cols: list[Column], tokens: list[str]) -> Column:
    """Column: any of ``cols`` contains any token as a substring (nulls never match).

    An OR of ``contains`` over the short literal lists: no UDF, no regex to
    escape, and Spark's codegen keeps it a tight loop.
    """
    if not tokens:
        return F.lit(False)
    safe = [F.coalesce(c, F.lit("")) for c in cols]
    return reduce(or_, [c.contains(t) for c in safe for t in tokens])


def drug_matches(match: DrugMatch, drugname_norm: str | Column = "drugname_norm",
                 prod_ai_norm: str | Column = "prod_ai_norm") -> Column:
    """Column: the token half of :func:`is_exposure_drug` (spec §1): normalised
    drugname or prod_ai contains a token, and neither contains an exclusion token."""
    cols = [_col(drugname_norm), _col(prod_ai_norm)]
    hit = contains_any(cols, match.tokens)
    if match.exclude_tokens:
        hit = hit & ~contains_any(cols, match.exclude_tokens)
    return hit


def is_exposure_drug(study: Study, drugname_norm: str | Column = "drugname_norm",
                     prod_ai_norm: str | Column = "prod_ai_norm",
                     role_cod: str | Column = "role_cod") -> Column:
    """Column: the drug row is an exposure drug row of ``study`` by its tokens
    (the token matcher; the ingredient matcher is :func:`ingredient_drugs`).

    Its drugname or prod_ai matches the exposure tokens (:func:`drug_matches`)
    and, when the study sets ``exposure_role_codes``, its role code is one of
    them (a row without a role code then never counts). A study without
    tokens matches no row by tokens.
    """
    if not study.exposure.tokens:
        return F.lit(False)
    return drug_matches(study.exposure, drugname_norm, prod_ai_norm) & role_allowed(study, role_cod)


def role_allowed(study: Study, role_cod: str | Column = "role_cod") -> Column:
    """Column: the row's role code is one of ``exposure_role_codes`` (always
    true when the study sets none; a null role code never is one)."""
    if study.exposure_role_codes is None:
        return F.lit(True)
    return F.coalesce(clean_code(role_cod).isin(list(study.exposure_role_codes)), F.lit(False))


def ingredient_drugs(drug_ingredients: DataFrame, study: Study) -> DataFrame:
    """The ingredient matcher: ``report_key, quarter, drug_seq`` (distinct) of
    the drug rows with an exposure ingredient.

    A drug row matches when one of its ``silver/drug_ingredients`` rows has an
    ``ingredient`` equal to one of the study's ``exposure.ingredients`` (exact
    equality on the upper-case moiety, no substring; an unresolved row's null
    ingredient never matches) and, with ``exposure_role_codes``, that row's
    ``role_cod`` (the drug row's own, carried by drug_ingredients) is one of
    them. The role is taken from the ingredient row rather than from a join
    to ``silver/drugs``, so two drug rows of a report sharing a ``drug_seq``
    cannot lend each other their role. ``exclude_tokens`` play no part here.
    """
    wanted = list(dict.fromkeys(study.exposure.ingredients))
    if not wanted:
        return drug_ingredients.where(F.lit(False)).select(*KEYS, "drug_seq")
    return (drug_ingredients.where(F.col("ingredient").isin(wanted) & role_allowed(study))
            .select(*KEYS, "drug_seq").distinct())


def require_columns(df: DataFrame, table: str, columns: list[str]) -> None:
    """Raise :class:`InputError` naming the silver columns ``df`` lacks (or has
    of another type than the silver contract)."""
    require(df, SILVER[table], f"silver table '{table}'", needed=columns)


def in_period(df: DataFrame, study: Study) -> DataFrame:
    """Rows of the quarters in ``study.period`` (all rows when it is unset)."""
    period = quarter_range(study.period)
    return df if period is None else df.where(F.col("quarter").isin(period))


def cohort_terms(spark: SparkSession, study: Study) -> DataFrame:
    """Small (cohort, pt) table of the study's cohort indication PTs."""
    rows = [(c.name, pt) for c in study.cohorts for pt in dict.fromkeys(c.indications)]
    return spark.createDataFrame(rows, "cohort STRING, pt STRING")


def flag_drugs(drugs: DataFrame, study: Study, drug_ingredients: DataFrame | None = None) -> DataFrame:
    """``report_key, quarter, drug_seq, by_tokens, by_ingredients,
    is_excluded_drug`` per drug row: whether the row is an exposure drug row by
    the token matcher (:func:`is_exposure_drug`) and by the ingredient matcher
    (:func:`ingredient_drugs`; false for every row without ``drug_ingredients``),
    both flagged in the same pass.

    The ingredient hits are joined back on report key, quarter and
    ``drug_seq`` (null-safe, so a row without a sequence number is flagged as
    the token matcher would flag it: it still stops its report being a
    control); the hits are distinct, so the join adds no rows."""
    excl = study.exclusions
    is_excluded_drug = (contains_any([F.col("drugname_norm"), F.col("prod_ai_norm")], excl.drug_tokens)
                        if excl.enabled else F.lit(False))
    flagged = drugs.select(
        *KEYS, "drug_seq",
        is_exposure_drug(study).alias("by_tokens"),
        is_excluded_drug.alias("is_excluded_drug"),
    )
    if drug_ingredients is None or not study.exposure.ingredients:
        return flagged.withColumn("by_ingredients", F.lit(False))
    hits = ingredient_drugs(drug_ingredients, study).select(
        *(F.col(c).alias(f"_hit_{c}") for c in (*KEYS, "drug_seq")), F.lit(True).alias("_hit"))
    on = ((F.col("report_key") == F.col("_hit_report_key")) & (F.col("quarter") == F.col("_hit_quarter"))
          & F.col("drug_seq").eqNullSafe(F.col("_hit_drug_seq")))
    return flagged.join(hits, on, "left").select(
        *KEYS, "drug_seq", "by_tokens", F.coalesce(F.col("_hit"), F.lit(False)).alias("by_ingredients"),
        "is_excluded_drug")


def matcher_flag(matcher: str, by_tokens: str | Column = "by_tokens",
                 by_ingredients: str | Column = "by_ingredients") -> Column:
    """Column: the exposure flag under ``matcher`` (tokens, ingredients or
    either) from the two flags of :func:`flag_drugs`."""
    t, i = _col(by_tokens), _col(by_ingredients)
    if matcher == "tokens":
        return t
    if matcher == "ingredients":
        return i
    if matcher == "either":
        return t | i
    raise ValueError(f"unknown exposure matcher {matcher!r}; expected one of {', '.join(MATCHERS)}")


def drug_cohorts(spark: SparkSession, flagged: DataFrame, indications: DataFrame,
                 study: Study) -> DataFrame:
    """``report_key, quarter, cohort, exposed_by_tokens, exposed_by_ingredients``:
    the cohorts a report's drug rows are indicated for (INDI rows of the same
    ``drug_seq``), with whether one of those rows is an exposure drug row by
    each matcher (:func:`flag_drugs`)."""
    indi_cohort = (
        indications.join(F.broadcast(cohort_terms(spark, study)),
                         F.col("indi_pt_norm") == F.col("pt"))
        .select(*KEYS, "drug_seq", "cohort")
    )
    # no distinct needed: duplicate INDI rows collapse in the groupBy below
    return (
        flagged.join(indi_cohort, [*KEYS, "drug_seq"])
        .groupBy(*KEYS, "cohort")
        .agg(F.max(F.col("by_tokens")).alias("exposed_by_tokens"),
             F.max(F.col("by_ingredients")).alias("exposed_by_ingredients"))
    )


def without_excluded(members: DataFrame, flagged: DataFrame, indications: DataFrame,
                     study: Study) -> DataFrame:
    """Drop reports with an exclusion drug or an outcome PT as indication (when enabled)."""
    excl = study.exclusions
    if not excl.enabled:
        return members
    # anti joins need no distinct: one shuffle less per rule
    if excl.drug_tokens:
        members = members.join(flagged.where("is_excluded_drug").select(*KEYS), KEYS, "left_anti")
    if excl.outcome_indications:
        outcome_pts = list(dict.fromkeys(study.outcome_pts))
        members = members.join(
            indications.where(F.col("indi_pt_norm").isin(outcome_pts)).select(*KEYS), KEYS, "left_anti")
    return members


def _check_inputs(reports: DataFrame, drugs: DataFrame, indications: DataFrame, reactions: DataFrame,
                  drug_ingredients: DataFrame | None, study: Study, matchers: list[str]) -> None:
    for name, df in (("reports", reports), ("drugs", drugs),
                     ("indications", indications), ("reactions", reactions)):
        require_columns(df, name, [c for c in SILVER_COLUMNS[name] if name != "reports" or c in KEYS])
    unknown = [m for m in matchers if m not in MATCHERS]
    if unknown:
        raise ValueError(f"unknown exposure matcher {unknown[0]!r}; expected one of {', '.join(MATCHERS)}")
    if drug_ingredients is not None:
        require_columns(drug_ingredients, "drug_ingredients", DRUG_INGREDIENT_COLUMNS)
    elif study.exposure.ingredients and any(m != "tokens" for m in matchers):
        raise InputError(f"study {study.name}: matching the exposure by ingredients needs the silver "
                         "table 'drug_ingredients', and none was given")


def matcher_members(spark: SparkSession, reports: DataFrame, drugs: DataFrame,
                    indications: DataFrame, reactions: DataFrame, study: Study,
                    drug_ingredients: DataFrame | None = None,
                    matchers: list[str] | None = None) -> DataFrame:
    """Spec §3 under several exposure matchers at once: one row per (report,
    cohort) that is exposed or a control after exclusions under at least one
    of ``matchers`` (default: the study's own), with ``report_key, quarter,
    cohort, event`` and, per matcher m, ``exposed_<m>`` and ``control_<m>``.

    Every drug row is flagged once by both matchers (:func:`flag_drugs`) and
    the rules of :func:`cohort_members` are then applied to each matcher's
    flag: the cohorts, exclusions, event and period are the same for all.
    A report is exposed under m in k when a drug row of it flagged under m is
    indicated for k, and a control under m in k when a drug row is indicated
    for k and no drug row of it is flagged under m.
    """
    matchers = list(dict.fromkeys(matchers or [str(study.exposure.matcher)]))
    _check_inputs(reports, drugs, indications, reactions, drug_ingredients, study, matchers)
    reports, drugs, indications, reactions = (
        in_period(df, study) for df in (reports, drugs, indications, reactions))
    if drug_ingredients is not None:
        drug_ingredients = in_period(drug_ingredients, study)
    outcome_pts = list(dict.fromkeys(study.outcome_pts))

    flagged = flag_drugs(drugs, study, drug_ingredients)
    # only the flagged rows are grouped: a report with none gets nulls (= false) below
    has_exposure = (flagged.where(F.col("by_tokens") | F.col("by_ingredients")).groupBy(*KEYS)
                    .agg(F.max(F.col("by_tokens")).alias("has_by_tokens"),
                         F.max(F.col("by_ingredients")).alias("has_by_ingredients")))
    events = (reactions.where(F.col("pt_norm").isin(outcome_pts)).select(*KEYS).distinct()
              .withColumn("event", F.lit(True)))

    members = drug_cohorts(spark, flagged, indications, study).join(reports.select(*KEYS), KEYS, "left_semi")
    members = without_excluded(members, flagged, indications, study)
    false = F.lit(False)
    flags = []
    for m in matchers:
        exposed = F.coalesce(matcher_flag(m, "exposed_by_tokens", "exposed_by_ingredients"), false)
        has = F.coalesce(matcher_flag(m, F.coalesce(F.col("has_by_tokens"), false),
                                      F.coalesce(F.col("has_by_ingredients"), false)), false)
        flags += [exposed.alias(f"exposed_{m}"), (~has).alias(f"control_{m}")]
    wide = members.join(has_exposure, KEYS, "left").select(*KEYS, "cohort", *flags)
    kept = reduce(or_, [F.col(f"exposed_{m}") | F.col(f"control_{m}") for m in matchers])
    return (
        wide.where(kept)
        .join(events, KEYS, "left")
        .select(F.col("report_key"), F.col("quarter"), F.col("cohort"),
                F.coalesce(F.col("event"), false).alias("event"),
                *(F.col(c) for m in matchers for c in (f"exposed_{m}", f"control_{m}")))
    )


def members_under(wide: DataFrame, matcher: str) -> DataFrame:
    """The ``cohort_members`` rows (``report_key, quarter, cohort, exposed,
    event``) of ``matcher`` from a :func:`matcher_members` frame that has it."""
    return wide.where(F.col(f"exposed_{matcher}") | F.col(f"control_{matcher}")).select(
        F.col("report_key"), F.col("quarter"), F.col("cohort"),
        F.col(f"exposed_{matcher}").cast("boolean").alias("exposed"), F.col("event"))


def cohort_members(spark: SparkSession, reports: DataFrame, drugs: DataFrame,
                   indications: DataFrame, reactions: DataFrame, study: Study,
                   drug_ingredients: DataFrame | None = None) -> DataFrame:
    """Spec §3: one row per (report, cohort) where the report is exposed or a
    control, after exclusions: ``report_key, quarter, cohort, exposed, event``.

    - a drug row's indications are the INDI rows of its report with the same
      ``drug_seq``;
    - an exposure drug row is one the study's matcher (``exposure.matcher``)
      finds: by tokens (:func:`is_exposure_drug`), by ingredients
      (:func:`ingredient_drugs`, which reads ``drug_ingredients``), or either;
    - exposed in k: an exposure drug row has an indication of k;
    - control in k: a drug row has an indication of k and no drug row of the
      report is an exposure drug row (so with a role filter, a report whose
      only matching row has another role can be a control);
    - excluded (when enabled): an INDI PT of the report is an outcome PT, or a
      drug row matches the exclusion tokens;
    - event: a REAC PT of the report is an outcome PT;
    - ``study.period`` keeps only reports of those quarters.

    ``drug_ingredients`` (``silver/drug_ingredients``) is needed only when the
    study's matcher is ``ingredients`` or ``either``.
    """
    matcher = str(study.exposure.matcher)
    wide = matcher_members(spark, reports, drugs, indications, reactions, study,
                           drug_ingredients if matcher != "tokens" else None, [matcher])
    return members_under(wide, matcher)
