"""Gold extra (issue #18): the case listing of cell a, what a reviewer reads next.

:func:`case_listing` is a pure ``DataFrame -> DataFrame`` transform: every
cohort's exposed reports with the event, with the report's own fields and its
suspect drugs, reaction PTs and outcome codes, each list aggregated with
Spark functions (``collect_set`` / ``array_sort`` / ``array_join``).
:func:`write_cases_csv` streams it into a CSV (``toLocalIterator``: one
partition at a time on the driver, never the whole listing), so the file can
hold as many rows as cell a has.
"""

from __future__ import annotations

from collections import Counter
from functools import reduce
from pathlib import Path

from pyspark.sql import Column, DataFrame, Row
from pyspark.sql import functions as F

from faerslake.config import Study
from faerslake.files import neutralise_cell
from faerslake.gold.cohorts import KEYS
from faerslake.gold.io import stream_csv
from faerslake.gold.strata import reporter_type
from faerslake.normalise import clean_code

CASE_COLUMNS = ["study", "cohort", "caseid", "report_key", "quarter", "age_years", "sex", "reporter_country",
                "reporter_type", "suspect_drugs", "reaction_pts", "outcomes"]
# the drug roles that make a drug a suspect (primary and secondary suspect)
SUSPECT_ROLES = ["PS", "SS"]
LIST_SEPARATOR = "; "
LIST_COLUMNS = ["suspect_drugs", "reaction_pts", "outcomes"]


def _listed(kind: Column, name: str) -> Column:
    """Aggregate: the distinct values of rows of ``kind``, sorted and joined
    with :data:`LIST_SEPARATOR` (``""`` when the report has none)."""
    return F.array_join(F.array_sort(F.collect_set(F.when(kind == name, F.col("value")))),
                        LIST_SEPARATOR).alias(name)


def case_listing(members: DataFrame, reports: DataFrame, drugs: DataFrame, reactions: DataFrame,
                 study: Study, outcomes: DataFrame | None = None) -> DataFrame:
    """The exposed-with-event members (cell a) of every cohort, one row per
    (cohort, report), columns :data:`CASE_COLUMNS`, sorted by cohort in
    study order, quarter, caseid and report key:

    - ``caseid``, ``age_years``, ``sex``, ``reporter_country``: silver reports' own;
    - ``reporter_type``: its occupation code (``unknown`` when missing), as in
      the demographics;
    - ``suspect_drugs``: the distinct ``drugname_norm`` (``prod_ai_norm``
      when it has none) of the report's drug rows with role PS or SS;
    - ``reaction_pts``: the distinct ``pt_norm`` of its REAC rows (all of
      them, the event PTs among them);
    - ``outcomes``: the distinct ``outc_cod`` of its OUTC rows (DE, LT, HO,
      DS, CA, RI, OT); empty when ``outcomes`` is None (a warehouse without
      ``silver/outcomes``).

    Lists are sorted and joined with ``"; "``, empty when the report has none.
    The member rows are unique per (report, cohort) and every list is grouped
    per report, so the listing has exactly the cohort's ``a`` rows.

    Cell a is small beside silver (the exposed reports with the event): its
    keys cut silver down to its reports in semi joins, and the three lists
    are one group-by over their rows together. No join is forced to
    broadcast: a broadcast side is built on the driver, and cell a grows with
    the drug (Spark broadcasts a side only under its size threshold). The sort is a global one (range-partitioned), not one
    partition: :func:`write_cases_csv` holds one partition at a time."""
    cell_a = members.where(F.col("exposed") & F.col("event")).select(*KEYS, "cohort")
    keys = cell_a.select(*KEYS)  # a semi join needs no distinct keys
    # the three lists' rows as one frame (kind, value): one semi join, one group-by
    items = [
        drugs.where(clean_code("role_cod").isin(SUSPECT_ROLES)).select(
            *KEYS, F.lit("suspect_drugs").alias("kind"),
            F.coalesce(F.col("drugname_norm"), F.col("prod_ai_norm")).alias("value")),
        reactions.select(*KEYS, F.lit("reaction_pts").alias("kind"), F.col("pt_norm").alias("value")),
    ]
    if outcomes is not None:
        items.append(outcomes.select(*KEYS, F.lit("outcomes").alias("kind"), clean_code("outc_cod").alias("value")))
    kind = F.col("kind")
    lists = (reduce(DataFrame.unionByName, items).join(keys, KEYS, "left_semi")
             .where(F.col("value").isNotNull()).groupBy(*KEYS)
             .agg(*(_listed(kind, n) for n in LIST_COLUMNS)))
    rep = reports.join(keys, KEYS, "left_semi").select(
        *KEYS, "caseid", "age_years", "sex", "reporter_country", reporter_type(reports).alias("reporter_type"))
    df = cell_a.join(rep, KEYS, "left").join(lists, KEYS, "left")
    order = F.array_position(F.array(*[F.lit(c.name) for c in study.cohorts]), F.col("cohort"))
    empty = F.lit("")
    return df.select(
        F.lit(study.name).alias("study"), "cohort", "caseid", "report_key", "quarter", "age_years", "sex",
        "reporter_country", "reporter_type",
        *(F.coalesce(F.col(n), empty).alias(n) for n in LIST_COLUMNS),
        order.alias("_order"),
    ).orderBy("_order", "quarter", "caseid", "report_key").drop("_order")


def _cell(v: object) -> object:
    """A CSV cell: None empty, text neutralised as in every other CSV
    (:func:`faerslake.files.neutralise_cell`), numbers as Python writes them."""
    if v is None:
        return ""
    return neutralise_cell(v) if isinstance(v, str) else v


def write_cases_csv(cases: DataFrame, path: str | Path) -> dict[str, int]:
    """Stream :func:`case_listing` into the CSV ``path`` (header
    :data:`CASE_COLUMNS`, written atomically) and return its rows per cohort.
    The rows come one partition at a time (``toLocalIterator``), in the
    listing's order."""
    per_cohort: Counter[str] = Counter()

    def count(row: Row) -> None:
        per_cohort[row["cohort"]] += 1

    stream_csv(cases, CASE_COLUMNS, path, _cell, count)
    return dict(per_cohort)
