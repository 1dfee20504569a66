"""Run settings: ``conf/pipeline.yaml`` as a frozen :class:`PipelineConfig`.

Every key has a default, so a wheel or a zip without ``conf/`` runs on the
built-in settings. ``--set section.key=value`` overrides apply on top.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faerslake.config.typed_yaml import _build, _read_yaml, apply_overrides, short_repr
from faerslake.errors import ConfigError

# lib/faerslake/config/pipeline.py -> the checkout (or the folder holding the zip)
REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_PIPELINE_CONF = REPO_ROOT / "conf" / "pipeline.yaml"


@dataclass(frozen=True)
class SparkSettings:
    """Used only when faerslake builds its own local session."""

    master: str = "local[*]"
    driver_memory: str = "4g"
    shuffle_partitions: int = 8
    conf: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class IngestSettings:
    # A zip member whose inflated size exceeds this many times its compressed
    # size is refused as a possible zip bomb (FDA's text compresses ~8-12x).
    max_zip_ratio: float = 200.0
    # Refuse a single zip that would inflate to more than this many bytes.
    max_unzipped_bytes: int = 20 * 1024**3
    # Physical lines longer than this are quarantined without being parsed.
    max_line_chars: int = 1_000_000
    # Where zips are extracted before Spark reads them (default: WH/_staging).
    staging_dir: str | None = None


@dataclass(frozen=True)
class BuildSettings:
    strict_dedup: bool = False


@dataclass(frozen=True)
class IdentitySettings:
    """Drug identity (silver/drug_ingredients, docs/drug-identity.md): a
    drugname is given the ingredient set of its prod_ai rows when at least
    ``min_support`` rows carry one and at least ``min_agreement`` of them (a
    share, > 0.5) agree; ``curated`` applies the bundled brand / INN table."""

    min_support: int = 1
    min_agreement: float = 0.8
    curated: bool = True

    def fingerprint(self) -> str:
        """The settings as build_state records them (a change rebuilds silver)."""
        return f"min_support={self.min_support},min_agreement={self.min_agreement!r},curated={self.curated}"


@dataclass(frozen=True)
class TableSettings:
    """Where tables live: ``path`` (Delta folders under the warehouse) or
    ``catalog`` (``catalog.schema.table`` names, e.g. Unity Catalog)."""

    mode: str = "path"
    catalog: str | None = None
    schema: str | None = None
    # A second writer of the same (local) warehouse waits this long for the
    # first to finish, then fails with exit 6 (0: fail at once).
    lock_timeout_seconds: float = 600.0


@dataclass(frozen=True)
class PipelineConfig:
    spark: SparkSettings = field(default_factory=SparkSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    build: BuildSettings = field(default_factory=BuildSettings)
    identity: IdentitySettings = field(default_factory=IdentitySettings)
    tables: TableSettings = field(default_factory=TableSettings)


def load_pipeline_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> PipelineConfig:
    """Load ``conf/pipeline.yaml`` (or ``path``) with command-line overrides."""
    if path is None and not DEFAULT_PIPELINE_CONF.exists():
        data: Any = {}
        src = "<defaults>"
    else:
        p = Path(path) if path is not None else DEFAULT_PIPELINE_CONF
        data, _ = _read_yaml(p, "settings file")
        src = str(p)
    data = apply_overrides(data or {}, overrides, src)
    cfg = _build(PipelineConfig, data, "", src)
    if cfg.tables.mode not in ("path", "catalog"):
        raise ConfigError(f"{src}: key 'tables.mode' should be 'path' or 'catalog', got {short_repr(cfg.tables.mode)}")
    if cfg.identity.min_support < 1:
        raise ConfigError(f"{src}: key 'identity.min_support' should be a whole number >= 1, "
                          f"got {short_repr(cfg.identity.min_support)}")
    if not 0.5 < cfg.identity.min_agreement <= 1:
        raise ConfigError(f"{src}: key 'identity.min_agreement' should be a share above 0.5 and at most 1, "
                          f"got {short_repr(cfg.identity.min_agreement)}")
    if cfg.tables.mode == "catalog" and not cfg.tables.schema:
        raise ConfigError(f"{src}: key 'tables.schema' is required when tables.mode is 'catalog'")
    return cfg


def table_overrides(table_mode: str, catalog: str = "", schema: str = "") -> list[str]:
    """``--set`` overrides for where tables live (notebook widgets, job parameters)."""
    overrides = [f"tables.mode={table_mode}"]
    if table_mode == "catalog":
        overrides += [f"tables.catalog={catalog}"] if catalog else []
        overrides += [f"tables.schema={schema}"] if schema else []
    return overrides
