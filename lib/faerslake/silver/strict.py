"""The optional stricter de-duplication pass (study-spec §2): reports of
different cases that look like one patient's event are merged."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from faerslake.normalise import norm_drug, norm_pt, quarter_order
from faerslake.silver.children import with_numeric_report_key
from faerslake.silver.dedup import KEPT, STRICT


def _sorted_set_per_report(child: DataFrame, keys: DataFrame, value: Column, name: str) -> DataFrame:
    """(report_key, quarter, ``name``): the sorted set of non-null ``value``
    over each kept report's child rows."""
    return (
        with_numeric_report_key(child)
        .join(keys, ["report_key", "quarter"], "left_semi")
        .select("report_key", "quarter", value.alias("_v"))
        .where(F.col("_v").isNotNull())
        .groupBy("report_key", "quarter")
        .agg(F.array_sort(F.collect_set("_v")).alias(name))
    )


def mark_strict_duplicates(
    status_df: DataFrame, drug_df: DataFrame, reac_df: DataFrame
) -> DataFrame:
    """The optional stricter pass (spec §2): among kept reports of different
    cases that agree on event date, age, sex, reporter country, the sorted set
    of normalised drug names and the sorted set of normalised PTs, keep the
    highest report key; the others become ``strict_duplicate``.

    Agreement is SQL equality: a report lacking any of these (no whole event
    date, no age, sex not M/F, no country, no drug or no PT) is never merged,
    because two unknowns are not evidence of one patient.
    """
    kept = status_df.where(F.col("status") == KEPT).select(
        "report_key", "quarter", "event_date",
        F.round("age_years", 4).alias("_age"), "sex", "reporter_country",
    )
    keys = kept.select("report_key", "quarter")
    drugs = _sorted_set_per_report(drug_df, keys, norm_drug("drugname"), "_drugs")
    pts = _sorted_set_per_report(reac_df, keys, norm_pt("pt"), "_pts")
    cand = (
        kept.where(
            F.col("event_date").isNotNull() & F.col("_age").isNotNull()
            & F.col("sex").isin("M", "F") & F.col("reporter_country").isNotNull()
        )
        .join(drugs, ["report_key", "quarter"])
        .join(pts, ["report_key", "quarter"])
    )
    w = Window.partitionBy("event_date", "_age", "sex", "reporter_country", "_drugs", "_pts").orderBy(
        F.col("report_key").desc(), quarter_order("quarter").desc()
    )
    dups = (
        cand.withColumn("_rn", F.row_number().over(w))
        .withColumn("_winner", F.first("report_key").over(w))
        .withColumn("_winner_q", F.first("quarter").over(w))
        .where(F.col("_rn") > 1)
        .select("report_key", "quarter", "_winner", "_winner_q")
    )
    is_dup = (F.col("status") == KEPT) & F.col("_winner").isNotNull()
    return (
        status_df.join(dups, ["report_key", "quarter"], "left")
        .withColumn(
            "reason",
            F.when(is_dup, F.format_string(
                "same event date, age, sex, country, drugs and PTs as report %s of %s",
                F.col("_winner"), F.col("_winner_q"),
            )).otherwise(F.col("reason")),
        )
        .withColumn("status", F.when(is_dup, F.lit(STRICT)).otherwise(F.col("status")))
        .drop("_winner", "_winner_q")
    )
