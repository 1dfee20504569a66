"""Silver layer: bronze -> one schema across both eras, one report per case.

Place in the pipeline: ``ingest`` writes bronze (all STRING, as FDA wrote it);
``build`` (this package) writes ``WH/silver/<table>``; ``study`` (gold) reads
silver only. The table contracts are in ``docs/architecture.md``; the rules
are study-spec §1 (normalisation, :mod:`faerslake.normalise`) and §2
(de-duplication), followed literally:

- :mod:`.dedup`: which DEMO rows are reports and which one of a case is kept;
- :mod:`.strict`: the optional stricter pass;
- :mod:`.children`: the child tables, one spec per table;
- :mod:`.job`: ``build``, reading bronze and writing silver.
"""

# Names not in __all__ are re-exported for the old
# ``faerslake.silver.<name>`` paths.
from faerslake.normalise import norm_drug, norm_pt
from faerslake.silver.children import (  # noqa: F401
    CHILD_SPECS,
    CHILD_TABLES,
    ChildSpec,
    silver_child,
    with_normalised_drug,
    with_numeric_report_key,
)
from faerslake.silver.dedup import (  # noqa: F401
    DELETED,
    DEMO_NEEDS,
    KEPT,
    OLDER,
    REJECTED,
    REPORT_COLUMNS,
    STATUS_COLUMNS,
    STRICT,
    SUMMARY_COLUMNS,
    _require,
    classify_reports,
    deduplicate,
    keep_order,
    order_summary,
    summarise,
)
from faerslake.silver.job import (  # noqa: F401
    _BRONZE_INPUTS,
    _STATE_SCHEMA,
    _SUMMARY_SCHEMA,
    SILVER_TABLES,
    BuildResult,
    _bronze_versions,
    _silver_versions,
    _up_to_date,
    _write_counted,
    build,
)
from faerslake.silver.strict import mark_strict_duplicates

__all__ = [
    "BuildResult",
    "build",
    "classify_reports",
    "deduplicate",
    "mark_strict_duplicates",
    "norm_drug",
    "norm_pt",
    "silver_child",
    "summarise",
    "with_normalised_drug",
]
