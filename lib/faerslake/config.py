"""Typed configuration: ``conf/pipeline.yaml`` (run settings) and study files.

YAML is read with ``yaml.safe_load`` only and turned into frozen dataclasses.
An unknown key, a wrong type or a missing file raises :class:`ConfigError`
naming the file, the key and what was expected. Settings can be overridden
from the command line with ``--set section.key=value`` (the value is parsed as
YAML, so ``--set build.strict_dedup=true`` gives a bool).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import re
import tempfile
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from faerslake.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PIPELINE_CONF = REPO_ROOT / "conf" / "pipeline.yaml"


@functools.lru_cache(maxsize=1)
def default_study_path() -> Path:
    """``conf/studies/botox_depression.yaml`` of a checkout, else the copy shipped
    as package data (installed wheel, Databricks; a ``--py-files`` zip, whose copy
    is written once to a temp folder because a file inside a zip has no path)."""
    in_repo = REPO_ROOT / "conf" / "studies" / "botox_depression.yaml"
    if in_repo.exists():
        return in_repo
    from importlib.resources import files

    packaged = files("faerslake") / "resources" / "botox_depression.yaml"
    if isinstance(packaged, Path):
        return packaged
    data = packaged.read_bytes()
    dest = Path(tempfile.gettempdir()) / f"faerslake-{hashlib.sha256(data).hexdigest()[:16]}" / packaged.name
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, dest)
    return dest


def __getattr__(name: str):
    """``DEFAULT_STUDY`` is found when first asked for, not at import time."""
    if name == "DEFAULT_STUDY":
        return default_study_path()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- #
# pipeline settings
# --------------------------------------------------------------------------- #
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
class TableSettings:
    """Where tables live: ``path`` (Delta folders under the warehouse) or
    ``catalog`` (``catalog.schema.table`` names, e.g. Unity Catalog)."""

    mode: str = "path"
    catalog: str | None = None
    schema: str | None = None


@dataclass(frozen=True)
class PipelineConfig:
    spark: SparkSettings = field(default_factory=SparkSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    build: BuildSettings = field(default_factory=BuildSettings)
    tables: TableSettings = field(default_factory=TableSettings)


# --------------------------------------------------------------------------- #
# study files
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class DrugMatch:
    """Tokens matched as substrings of normalised drugname / prod_ai (spec §1)."""

    tokens: list[str]
    exclude_tokens: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Cohort:
    name: str
    indications: list[str]


@dataclass(frozen=True)
class Exclusions:
    enabled: bool = True
    # a report is excluded when one of its INDI PTs is an outcome PT
    outcome_indications: bool = True
    # ... or one of its drug rows matches one of these tokens
    drug_tokens: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Study:
    name: str
    exposure: DrugMatch
    cohorts: list[Cohort]
    outcome_pts: list[str]
    description: str = ""
    exclusions: Exclusions = field(default_factory=Exclusions)
    # optional: only drug rows with these role codes count as exposure
    exposure_role_codes: list[str] | None = None
    # optional: "2004Q1:2019Q4" — only reports of these quarters
    period: str | None = None
    strict_dedup: bool | None = None
    # published figures to print beside ours (free-form, per cohort)
    published: dict[str, dict[str, Any]] = field(default_factory=dict)
    source_path: str | None = None
    sha256: str | None = None


# --------------------------------------------------------------------------- #
# generic loader
# --------------------------------------------------------------------------- #
def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "a mapping"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {str: "text", int: "a whole number", float: "a number", bool: "true/false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _convert(value: Any, tp: Any, where: str, src: str) -> Any:
    """Check ``value`` against the annotation ``tp``; build dataclasses."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, where, src)
            except ConfigError as e:
                errors.append(e)
        raise ConfigError(
            f"{src}: key '{where}' should be {_type_name(tp)}, got {value!r}"
        )
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where, src)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{src}: key '{where}' should be {_type_name(tp)}, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_convert(v, item, f"{where}[{i}]", src) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{src}: key '{where}' should be a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{src}: key '{where}' should be true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{src}: key '{where}' should be a whole number, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{src}: key '{where}' should be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{src}: key '{where}' should be text, got {value!r}")
        return str(value)
    raise ConfigError(f"{src}: key '{where}' has an unsupported type")  # pragma: no cover


def _build(cls: type, data: Any, where: str, src: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{src}: {'key ' + repr(where) if where else 'the file'} should be a mapping, got {data!r}"
        )
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"{src}: unknown key '{prefix}{unknown[0]}'; expected one of: "
            + ", ".join(sorted(fields))
        )
    kwargs = {}
    for name, f in fields.items():
        key = f"{where}.{name}" if where else name
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], key, src)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{src}: missing required key '{key}' ({_type_name(hints[name])})")
    return cls(**kwargs)


def _read_yaml(path: Path) -> tuple[Any, bytes]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror})") from None
    try:
        return yaml.safe_load(raw.decode("utf-8")), raw
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"{path}: is not valid YAML ({first})") from None


def apply_overrides(data: dict, overrides: list[str] | None, src: str) -> dict:
    """Apply ``section.key=value`` overrides to raw YAML data (value parsed as YAML)."""
    data = dict(data or {})
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override '{item}' should look like section.key=value")
        dotted, _, raw = item.partition("=")
        parts = dotted.strip().split(".")
        node = data
        for p in parts[:-1]:
            child = node.get(p)
            child = dict(child) if isinstance(child, dict) else {}
            node[p] = child
            node = child
        try:
            node[parts[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError:
            node[parts[-1]] = raw
    return data


def load_pipeline_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> PipelineConfig:
    """Load ``conf/pipeline.yaml`` (or ``path``) with command-line overrides."""
    if path is None and not DEFAULT_PIPELINE_CONF.exists():
        data: Any = {}
        src = "<defaults>"
    else:
        p = Path(path) if path is not None else DEFAULT_PIPELINE_CONF
        data, _ = _read_yaml(p)
        src = str(p)
    data = apply_overrides(data or {}, overrides, src)
    cfg = _build(PipelineConfig, data, "", src)
    if cfg.tables.mode not in ("path", "catalog"):
        raise ConfigError(f"{src}: key 'tables.mode' should be 'path' or 'catalog', got {cfg.tables.mode!r}")
    if cfg.tables.mode == "catalog" and not cfg.tables.schema:
        raise ConfigError(f"{src}: key 'tables.schema' is required when tables.mode is 'catalog'")
    return cfg


_QUARTER_RANGE = re.compile(r"^\d{4}Q[1-4](:\d{4}Q[1-4])?$")
# a study name becomes a folder under OUTPUT and gold table names: no path parts
_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def load_study(path: str | Path | None = None) -> Study:
    """Load and validate a study file (default: ``conf/studies/botox_depression.yaml``).

    The study's name is the file's stem. Terms are upper-cased and trimmed, so
    every comparison is made on normalised text (spec §1).
    """
    p = Path(path) if path is not None else default_study_path()
    data, raw = _read_yaml(p)
    src = str(p)
    if not isinstance(data, dict):
        raise ConfigError(f"{src}: the file should be a mapping of study keys")
    data = dict(data)
    data.setdefault("name", p.stem)
    cohorts = data.get("cohorts")
    if isinstance(cohorts, dict):  # `cohorts: {name: [PT, ...]}` in file order
        data["cohorts"] = [{"name": k, "indications": v} for k, v in cohorts.items()]
    study = _build(Study, data, "", src)
    if not _STUDY_NAME.match(study.name):
        raise ConfigError(
            f"{src}: key 'name' should be letters, digits, '_', '-' or '.' (it names the output folder), "
            f"got {study.name!r}"
        )

    def _norm(terms: list[str], key: str, allow_empty: bool = False) -> list[str]:
        out = [t.strip().upper() for t in terms]
        if not allow_empty and not out:
            raise ConfigError(f"{src}: key '{key}' is an empty list; give at least one term")
        if any(not t for t in out):
            raise ConfigError(f"{src}: key '{key}' holds an empty term")
        return out

    if not study.cohorts:
        raise ConfigError(f"{src}: key 'cohorts' is empty; give at least one cohort")
    seen = set()
    cohorts_n = []
    for c in study.cohorts:
        if c.name in seen:
            raise ConfigError(f"{src}: cohort '{c.name}' is defined twice")
        seen.add(c.name)
        if not c.indications:
            raise ConfigError(f"{src}: cohort '{c.name}' has no indication terms")
        cohorts_n.append(Cohort(c.name, _norm(c.indications, f"cohorts.{c.name}")))
    if study.period is not None and not _QUARTER_RANGE.match(study.period.upper()):
        raise ConfigError(f"{src}: key 'period' should look like 2004Q1:2019Q4, got {study.period!r}")
    excl = study.exclusions
    return dataclasses.replace(
        study,
        exposure=DrugMatch(
            _norm(study.exposure.tokens, "exposure.tokens"),
            _norm(study.exposure.exclude_tokens, "exposure.exclude_tokens", allow_empty=True),
        ),
        cohorts=cohorts_n,
        outcome_pts=_norm(study.outcome_pts, "outcome_pts"),
        exclusions=dataclasses.replace(
            excl, drug_tokens=_norm(excl.drug_tokens, "exclusions.drug_tokens", allow_empty=True)
        ),
        exposure_role_codes=(
            _norm(study.exposure_role_codes, "exposure_role_codes")
            if study.exposure_role_codes is not None
            else None
        ),
        period=study.period.upper() if study.period else None,
        source_path=str(p.resolve()),
        sha256=hashlib.sha256(raw).hexdigest(),
    )


def table_overrides(table_mode: str, catalog: str = "", schema: str = "") -> list[str]:
    """``--set`` overrides for where tables live (notebook widgets, job parameters)."""
    overrides = [f"tables.mode={table_mode}"]
    if table_mode == "catalog":
        overrides += [f"tables.catalog={catalog}"] if catalog else []
        overrides += [f"tables.schema={schema}"] if schema else []
    return overrides
