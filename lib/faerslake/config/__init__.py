"""Typed configuration: ``conf/pipeline.yaml`` (run settings) and study files.

- :mod:`.typed_yaml`: YAML (``yaml.safe_load`` only) -> frozen dataclasses,
  ``--set section.key=value`` overrides;
- :mod:`.pipeline`: :class:`PipelineConfig` and its sections;
- :mod:`.study`: :class:`Study`, :func:`load_study`, the default study.

Every name is re-exported here; ``DEFAULT_STUDY`` is looked up lazily.
"""

from __future__ import annotations

from typing import Any

from faerslake.config.pipeline import (
    DEFAULT_PIPELINE_CONF,
    REPO_ROOT,
    BuildSettings,
    IdentitySettings,
    IngestSettings,
    PipelineConfig,
    SparkSettings,
    TableSettings,
    load_pipeline_config,
    table_overrides,
)
from faerslake.config.screen import (
    DRUG_KEYS,
    STRATA,
    Screen,
    default_screen_path,
    load_screen,
    override_screen,
)
from faerslake.config.study import (
    MATCHERS,
    Cohort,
    DrugMatch,
    Exclusions,
    Study,
    check_catalog_name,
    default_study_path,
    load_study,
    resolve_strict_dedup,
)
from faerslake.config.typed_yaml import _build, _convert, _read_yaml, _type_name, apply_overrides

__all__ = [
    "DRUG_KEYS", "STRATA", "Screen", "default_screen_path", "load_screen", "override_screen",
    "DEFAULT_PIPELINE_CONF",
    "MATCHERS",
    "REPO_ROOT",
    "BuildSettings",
    "IdentitySettings",
    "Cohort",
    "DrugMatch",
    "Exclusions",
    "IngestSettings",
    "PipelineConfig",
    "SparkSettings",
    "Study",
    "TableSettings",
    "apply_overrides",
    "check_catalog_name",
    "default_study_path",
    "load_pipeline_config",
    "load_study",
    "resolve_strict_dedup",
    "table_overrides",
    "_build",
    "_convert",
    "_read_yaml",
    "_type_name",
]


def __getattr__(name: str) -> Any:
    """``DEFAULT_STUDY`` is found when first asked for, not at import time (PEP 562)."""
    if name == "DEFAULT_STUDY":
        return default_study_path()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
