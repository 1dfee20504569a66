"""The old import path of :mod:`faerslake.synthetic` (the synthetic-release generator)."""

from faerslake.synthetic import (
    DEFAULT_QUARTERS,
    MIN_REPORTS,
    TABLES,
    TRUTH_VERSION,
    WINDOW,
    GenerateSummary,
    ReleaseLayout,
    Report,
    drug_matches,
    drug_row_matches,
    generate,
    kept_order_key,
    layout_for,
    norm_drug_text,
    norm_pt_text,
    report_cohort_flags,
)

Layout = ReleaseLayout  # the old name

__all__ = ["generate", "GenerateSummary", "layout_for", "DEFAULT_QUARTERS", "Report",
           "norm_pt_text", "norm_drug_text", "drug_matches", "drug_row_matches", "report_cohort_flags",
           "kept_order_key", "Layout", "ReleaseLayout", "TABLES", "WINDOW", "MIN_REPORTS", "TRUTH_VERSION"]
