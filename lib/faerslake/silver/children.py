"""Silver child tables (study-spec §2.1 and §2.4): a kept report's own
quarter's DRUG / INDI / REAC / OUTC / THER / RPSR rows.

Child rows that are identical in every silver column (the 2025Q4 sample has
duplicated DRUG / REAC / INDI / THER rows) are written once: they carry no
information and would inflate per-row counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame

from faerslake.normalise import clean_code, clean_text, date_text, norm_drug, norm_pt, whole_number
from faerslake.silver.dedup import _require

Transform = Callable[[DataFrame], DataFrame]


def with_normalised_drug(df: DataFrame) -> DataFrame:
    """Add ``drugname_norm`` and ``prod_ai_norm`` (spec §1) to a frame with
    ``drugname`` and ``prod_ai``."""
    _require(df, ["drugname", "prod_ai"], "drug rows")
    return df.withColumn("drugname_norm", norm_drug("drugname")).withColumn(
        "prod_ai_norm", norm_drug("prod_ai")
    )


def _with_normalised_pt(column: str) -> Transform:
    """A transform adding ``<column>_norm`` (spec §1) to a frame with ``column``."""
    return lambda df: df.withColumn(f"{column}_norm", norm_pt(column))


def with_numeric_report_key(bronze: DataFrame) -> DataFrame:
    """Bronze child rows with ``report_key`` as a BIGINT (null if not a whole number)."""
    return bronze.withColumn("report_key", whole_number("report_key"))


@dataclass(frozen=True)
class ChildSpec:
    """One silver child table: its bronze table; its silver columns after the
    keys as (silver name, normaliser, bronze column); and a transform adding
    the derived columns. Derived columns are functions of silver columns
    (``norm_drug(clean_text(x)) == norm_drug(x)``, likewise ``norm_pt``), so
    they are added after the de-duplication, which then hashes and shuffles
    half the text."""

    bronze_table: str
    columns: tuple[tuple[str, Callable[[str], Column], str], ...]
    derived: Transform | None = None

    @property
    def bronze_columns(self) -> list[str]:
        """The bronze columns this table needs, keys first."""
        return ["quarter", "report_key", *(src for _, _, src in self.columns)]


CHILD_SPECS: dict[str, ChildSpec] = {
    "drugs": ChildSpec("drug", (
        ("drug_seq", whole_number, "drug_seq"),
        ("role_cod", clean_code, "role_cod"),
        ("drugname", clean_text, "drugname"),
        ("prod_ai", clean_text, "prod_ai"),
    ), with_normalised_drug),
    # FAERS drug_seq is per report, legacy DRUG_SEQ global; either way it
    # joins DRUG's drug_seq inside one report.
    "indications": ChildSpec("indi", (
        ("drug_seq", whole_number, "indi_drug_seq"),
        ("indi_pt", clean_text, "indi_pt"),
    ), _with_normalised_pt("indi_pt")),
    "reactions": ChildSpec("reac", (("pt", clean_text, "pt"),), _with_normalised_pt("pt")),
    "outcomes": ChildSpec("outc", (("outc_cod", clean_code, "outc_cod"),)),
    "therapies": ChildSpec("ther", (
        ("drug_seq", whole_number, "dsg_drug_seq"),
        ("start_dt", date_text, "start_dt"),
        ("end_dt", date_text, "end_dt"),
        ("dur", clean_text, "dur"),
        ("dur_cod", clean_code, "dur_cod"),
    )),
    "report_sources": ChildSpec("rpsr", (("rpsr_cod", clean_code, "rpsr_cod"),)),
}
CHILD_TABLES = list(CHILD_SPECS)


def silver_child(name: str, bronze_df: DataFrame, reports_df: DataFrame) -> DataFrame:
    """Bronze child rows -> silver table ``name``: only rows of a kept report of
    the same quarter (spec §2.1 and §2.4), exact duplicates written once."""
    spec = CHILD_SPECS[name]
    _require(bronze_df, spec.bronze_columns, f"bronze {spec.bronze_table}")
    keys = reports_df.select("report_key", "quarter")
    out = (
        with_numeric_report_key(bronze_df)
        .join(keys, ["report_key", "quarter"], "inner")
        .select("report_key", "quarter", *[norm(src).alias(n) for n, norm, src in spec.columns])
        .distinct()
    )
    return spec.derived(out) if spec.derived else out
