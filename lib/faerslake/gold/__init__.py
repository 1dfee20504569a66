"""Gold layer: silver -> indication-matched cohorts -> per-cohort statistics.

Last stage of the pipeline (``ingest`` -> ``build`` -> ``study``). Implements
study-spec §3 (exposure, cohorts, exclusions, event) as Spark joins over the
silver tables, §4 through :mod:`faerslake.stats` and §5's output contract:

- ``WH/gold/<study>/cohort_members``: one row per (report, cohort) that is
  exposed or control after exclusions, with ``exposed`` and ``event``;
- ``WH/gold/<study>/cohort_results`` and ``OUT/<study>/cohort_results.csv``:
  one row per cohort in the study file's order;
- ``WH/gold/<study>/mantel_haenszel`` and its CSV: ROR pooled over strata of
  sex, age band and era (an extra, not part of spec §5);
- ``WH/gold/<study>/matcher_sensitivity`` and its CSV, for a study naming
  its exposure by tokens and by ingredients: the cohorts' counts and ROR
  under each matcher alone (and either);
- ``OUT/<study>/terms.csv`` and ``indications.csv``: what the study's tokens
  and cohort PTs matched (:mod:`.terms`; also ``faerslake terms``);
- ``OUT/<study>/report.md`` / ``report.html`` / ``forest_plot.png`` through
  :mod:`faerslake.report`;
- ``OUT/<study>/trend.csv`` and ``trend_plot.png`` (:mod:`.trend`),
  ``demographics.csv`` (:func:`.strata.demographics_table`) and ``cases.csv``
  (:mod:`.cases`, the listing of cell a): the analyst tables.

All matching is done with Spark column expressions (substring tests over the
short token lists, a broadcast table of cohort PTs); only the per-cohort 2x2
counts (and the few hundred MH strata counts) come to the driver. Silver is
read at a pinned Delta version, recorded in the report for time travel.

- :mod:`.cohorts`: the spec §3 rules (:func:`is_exposure_drug`, the token
  matcher; :func:`ingredient_drugs`, the ingredient matcher;
  :func:`cohort_members`; :func:`matcher_members`, several matchers at once);
- :mod:`.strata`: the Mantel–Haenszel strata and pooled ROR;
- :mod:`.terms`: what the terms matched (:func:`~.terms.term_matches`,
  :func:`~.terms.cohort_indications`); :mod:`.terms_job`, ``faerslake terms``;
- :mod:`.job`: :func:`run_study`, the ``faerslake study`` job;
- :mod:`.io`: pinned reads, pandas <-> Spark for small tables.
"""

from __future__ import annotations

from faerslake.gold.cases import CASE_COLUMNS, case_listing, write_cases_csv
from faerslake.gold.cohorts import (
    DRUG_INGREDIENT_COLUMNS,
    KEYS,
    MEMBER_COLUMNS,
    SILVER_COLUMNS,
    cohort_members,
    cohort_terms,
    contains_any,
    drug_matches,
    flag_drugs,
    ingredient_drugs,
    is_exposure_drug,
    matcher_members,
    members_under,
)
from faerslake.gold.job import (
    MH_SCHEMA,
    RESULT_SCHEMA,
    SENSITIVITY_COLUMNS,
    SENSITIVITY_MATCHERS,
    SENSITIVITY_SCHEMA,
    check_strict_dedup,
    cohort_counts,
    gold_tables,
    matcher_sensitivity,
    run_study,
)
from faerslake.gold.strata import (
    AGE_BANDS,
    DEMOGRAPHICS_COLUMNS,
    MH_COLUMNS,
    MH_STRATA,
    demographics_table,
    mantel_haenszel_table,
    reporter_type,
    strata_counts,
    with_strata,
)
from faerslake.gold.trend import TREND_COLUMNS, trend_counts, trend_plot_png, trend_table
from faerslake.report.console import format_cohort_table, print_cohort_table

__all__ = [
    "AGE_BANDS", "DRUG_INGREDIENT_COLUMNS", "KEYS", "MEMBER_COLUMNS", "MH_COLUMNS", "MH_SCHEMA", "MH_STRATA",
    "RESULT_SCHEMA", "SENSITIVITY_COLUMNS", "SENSITIVITY_MATCHERS", "SENSITIVITY_SCHEMA", "SILVER_COLUMNS",
    "check_strict_dedup", "cohort_counts", "cohort_members", "cohort_terms", "contains_any", "drug_matches", "flag_drugs",
    "format_cohort_table", "gold_tables", "ingredient_drugs", "is_exposure_drug", "mantel_haenszel_table",
    "matcher_members", "matcher_sensitivity", "members_under", "print_cohort_table", "run_study",
    "strata_counts", "with_strata",
    # issue #18: the analyst tables
    "CASE_COLUMNS", "DEMOGRAPHICS_COLUMNS", "TREND_COLUMNS", "case_listing", "demographics_table",
    "reporter_type", "trend_counts", "trend_plot_png", "trend_table", "write_cases_csv",
]
