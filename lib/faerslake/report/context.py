"""What the report says besides the results: a typed :class:`ReportContext`,
and the small upstream tables (de-dup summary, audit totals, source manifest)
read from the warehouse at their current Delta version."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from faerslake.config import Study
    from faerslake.tables import Warehouse


@dataclass
class ReportContext:
    """Everything a report shows besides the cohort results; each piece may be
    missing (a study run on a warehouse built elsewhere) and is then reported
    as 'not available'."""

    study: Study | None = None
    warehouse: str | None = None
    quarters: list[str] | None = None
    quarters_text: str | None = None
    # quarter -> reason: what this run's ingest could not use
    failed_quarters: dict[str, str] | None = field(default_factory=dict)
    dedup_summary: pd.DataFrame | None = None
    audit_totals: dict[str, int] | None = None
    source_manifest: pd.DataFrame | None = None
    # "layer/table" -> Delta version read or written (None: not known)
    table_versions: dict[str, int | None] | None = field(default_factory=dict)
    mantel_haenszel: pd.DataFrame | None = None
    # gold/<study>/matcher_sensitivity (a study naming tokens and ingredients),
    # and why it was not computed when it was not
    matcher_sensitivity: pd.DataFrame | None = None
    matcher_sensitivity_note: str | None = None
    faerslake_version: str = "?"
    generated_at: str = "?"
    # the build the study read: its strict de-duplication pass (None: not known)
    strict_dedup: bool | None = None
    # software that made the results: {"faerslake": ..., "git commit": ..., "spark": ..., "delta": ...}
    software: dict[str, str] | None = field(default_factory=dict)
    # the analyst tables (faerslake.report.analysis; None: not computed)
    trend: pd.DataFrame | None = None
    demographics: pd.DataFrame | None = None
    term_matches: pd.DataFrame | None = None
    cohort_indications: pd.DataFrame | None = None
    cases_file: str | None = None
    cases_rows: int | None = None
    # cases.csv's rows per cohort (study order)
    cases_per_cohort: dict[str, int] | None = None
    # extra pictures: file name -> PNG/SVG bytes written beside the report
    images: dict[str, bytes] | None = field(default_factory=dict)

    @staticmethod
    def software_versions(spark: Any = None) -> dict[str, str]:
        """The software that made the results, for the report's Methods:
        faerslake's version and git commit, Python, Spark (``spark.version``,
        when a session is given) and the installed delta-spark; a piece that
        cannot be found is 'not known'."""
        import platform
        from importlib import metadata

        from faerslake import __version__
        from faerslake.runrecord import git_commit

        try:
            delta = metadata.version("delta-spark")
        except metadata.PackageNotFoundError:
            delta = None
        out = {"faerslake": __version__, "git commit": git_commit(), "Python": platform.python_version(),
               "Spark": getattr(spark, "version", None) if spark is not None else None, "delta-spark": delta}
        return {k: str(v) if v else "not known" for k, v in out.items()}

    @classmethod
    def of(cls, context: ReportContext | Mapping[str, Any] | None) -> ReportContext:
        """``context`` itself, or a context from a dict of these field names
        (other keys are ignored)."""
        if isinstance(context, ReportContext):
            return context
        names = {f.name for f in fields(cls)}
        data: Mapping[str, Any] = context or {}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Upstream:
    """The upstream tables the report summarises, and the versions read."""

    dedup_summary: pd.DataFrame | None = None
    audit_totals: dict[str, int] | None = None
    source_manifest: pd.DataFrame | None = None
    versions: dict[str, int | None] = field(default_factory=dict)


AUDIT_SUMS = ["lines_read", "rows_loaded", "rows_repaired", "lines_repaired", "rows_quarantined"]


def read_upstream(spark: SparkSession, wh: Warehouse, versions: dict[str, int | None] | None = None) -> Upstream:
    """Small upstream tables for the report (each may be missing): the
    de-dup summary ('all' first, then quarters in time order), the ingest audit
    summed over table files, and the source manifest; each at its version in
    ``versions`` (``layer/name`` -> version: the build's cut) when given there,
    else at its current version."""
    # imported here: gold imports this package, and this reads through gold's helpers
    from pyspark.sql import functions as F

    from faerslake.gold.io import read_pinned, small_pandas
    from faerslake.silver.dedup import order_summary

    def read(layer: str, name: str):
        v = (versions or {}).get(f"{layer}/{name}")
        return (wh.read_at(spark, layer, name, v), v) if v is not None else read_pinned(spark, wh, layer, name)

    up = Upstream()
    dedup, v = read("silver", "dedup_summary")
    if dedup is not None:
        up.versions["silver/dedup_summary"] = v
        up.dedup_summary = order_summary(small_pandas(dedup))  # 'all', then each quarter in time order
    audit, v = read("bronze", "ingest_audit")
    if audit is not None:
        up.versions["bronze/ingest_audit"] = v
        cols = [c for c in AUDIT_SUMS if c in audit.columns]
        row = audit.agg(F.count(F.lit(1)).alias("table_files"),
                        F.countDistinct("quarter").alias("quarters"),
                        *[F.sum(c).alias(c) for c in cols]).first()
        assert row is not None  # an aggregate without grouping has one row
        up.audit_totals = {k: (int(row[k]) if row[k] is not None else 0) for k in row.asDict()}
    manifest, v = read("bronze", "source_manifest")
    if manifest is not None:
        up.versions["bronze/source_manifest"] = v
        cols = [c for c in ["source", "quarter", "sha256", "size_bytes"] if c in manifest.columns]
        up.source_manifest = small_pandas(manifest.select(*cols))  # one row per source file
    return up
