"""Study files (``conf/studies/*.yaml``): the exposure, the cohorts, the outcome.

A study is read with the typed loader, checked, and its terms normalised so
that gold compares them with silver's normalised text (spec §1).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faerslake.config.pipeline import REPO_ROOT, PipelineConfig, TableSettings
from faerslake.config.typed_yaml import _build, _read_yaml, short_repr, short_text
from faerslake.errors import ConfigError
from faerslake.quarters import quarter_index


@functools.lru_cache(maxsize=1)
def default_study_path() -> Path:
    """``conf/studies/botox_depression.yaml`` of a checkout, else the copy shipped
    as package data (:func:`bundled_file`)."""
    return bundled_file("studies", "botox_depression.yaml")


def bundled_file(conf_dir: str, name: str) -> Path:
    """``conf/<conf_dir>/<name>`` of a checkout, else the copy shipped as package
    data (installed wheel, Databricks; a ``--py-files`` zip, whose copy is
    written once to a temp folder because a file inside a zip has no path)."""
    in_repo = REPO_ROOT / "conf" / conf_dir / name
    if in_repo.exists():
        return in_repo
    from importlib.resources import files

    packaged = files("faerslake") / "resources" / name
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


def __getattr__(name: str) -> Any:
    """``DEFAULT_STUDY`` is found when first asked for, not at import time."""
    if name == "DEFAULT_STUDY":
        return default_study_path()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


MATCHERS = ("tokens", "ingredients", "either")


@dataclass(frozen=True)
class DrugMatch:
    """How a drug row is recognised as the exposure (docs/method.md §4.2).

    - ``tokens``: matched as substrings of normalised drugname / prod_ai (spec
      §1), less the rows that contain one of ``exclude_tokens`` (which act on
      the token matcher only);
    - ``ingredients``: active ingredients compared for equality with the
      ``ingredient`` of the row's ``silver/drug_ingredients`` rows;
    - ``matcher``: which of the two makes a row an exposure drug row —
      ``tokens``, ``ingredients`` or ``either`` (one of :data:`MATCHERS`); never
      None once built (default: ``tokens`` when tokens are given, else
      ``ingredients``).
    """

    tokens: list[str] = field(default_factory=list)
    exclude_tokens: list[str] = field(default_factory=list)
    ingredients: list[str] = field(default_factory=list)
    matcher: str | None = None

    def __post_init__(self) -> None:
        if self.matcher is None:  # the default: tokens when tokens are given, else ingredients
            object.__setattr__(self, "matcher", "tokens" if self.tokens else "ingredients")

    @property
    def needs_ingredients(self) -> bool:
        """Whether the primary matcher reads ``silver/drug_ingredients``."""
        return self.matcher in ("ingredients", "either")

    @property
    def compares_matchers(self) -> bool:
        """Whether the study names both tokens and ingredients, so gold also
        counts the cohorts under each matcher alone (``matcher_sensitivity``)."""
        return bool(self.tokens) and bool(self.ingredients)


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
    # published figures to print beside ours, per cohort: a small flat mapping
    # of numbers / text / null (checked by _check_published)
    published: dict[str, dict[str, Any]] = field(default_factory=dict)
    # optional: where the published figures come from (text, cited in the
    # report) and the quarters they cover ("2004Q1:2019Q4"; the report warns
    # when the quarters it covers differ)
    published_source: str | None = None
    published_period: str | None = None
    source_path: str | None = None
    sha256: str | None = None


_QUARTER_RANGE = re.compile(r"^\d{4}Q[1-4](:\d{4}Q[1-4])?$")
# a study name becomes a folder under OUTPUT and gold table names: no path parts
_STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_NAME_RULE = "letters, digits, '_', '-' or '.' (at most 100 characters, the first a letter or digit)"
# in catalog mode it is also part of a table identifier (gold_<study>_cohort_members)
_CATALOG_STUDY_NAME = re.compile(r"[A-Za-z0-9_]+")
# `published`: per cohort at most this many figures; these keys are read as numbers
PUBLISHED_MAX_FIGURES = 20
_PUBLISHED_COUNTS = ("exposed_reports", "control_reports")
_PUBLISHED_RATIOS = ("ror", "ror_ci_lower", "ror_ci_upper")


def load_study(path: str | Path | None = None, tables: TableSettings | None = None) -> Study:
    """Load and validate a study file (default: ``conf/studies/botox_depression.yaml``).

    The study's name is the file's stem. Terms are upper-cased and trimmed, so
    every comparison is made on normalised text (spec §1). With ``tables``
    (where the run's tables live), the name is also checked for catalog mode
    (:func:`check_catalog_name`).
    """
    p = Path(path) if path is not None else default_study_path()
    study, raw = _parse(p)
    if tables is not None:
        check_catalog_name(study, tables)
    return dataclasses.replace(
        _normalise_terms(study, str(p)),
        source_path=str(p.resolve()),
        sha256=hashlib.sha256(raw).hexdigest(),
    )


def _parse(p: Path) -> tuple[Study, bytes]:
    """The file as a :class:`Study` (terms as written) and its bytes."""
    data, raw = _read_yaml(p, "study file")
    src = str(p)
    if not isinstance(data, dict):
        raise ConfigError(f"{src}: the file should be a mapping of study keys")
    data = dict(data)
    from_file_name = "name" not in data
    data.setdefault("name", p.stem)
    cohorts = data.get("cohorts")
    if isinstance(cohorts, dict):  # `cohorts: {name: [PT, ...]}` in file order
        data["cohorts"] = [{"name": k, "indications": v} for k, v in cohorts.items()]
    study = _build(Study, data, "", src)
    if not _STUDY_NAME.fullmatch(study.name):
        if from_file_name:
            raise ConfigError(
                f"{src}: the file name gives the study name {short_repr(study.name)}, which should be "
                f"{_NAME_RULE} (it names the output folder); rename the file or set key 'name'"
            )
        raise ConfigError(
            f"{src}: key 'name' should be {_NAME_RULE} (it names the output folder), "
            f"got {short_repr(study.name)}"
        )
    return dataclasses.replace(study, published=_check_published(study.published, src)), raw


def check_catalog_name(study: Study, tables: TableSettings) -> None:
    """In catalog mode (``tables.mode: catalog``) the study name is part of the
    gold table names (``<catalog>.<schema>.gold_<study>_cohort_members``): a
    ``.`` would add an identifier part and a ``-`` is not valid unquoted, so
    only letters, digits and ``_`` are allowed there."""
    if tables.mode == "catalog" and not _CATALOG_STUDY_NAME.fullmatch(study.name):
        raise ConfigError(
            f"study {short_repr(study.name)}: in catalog mode (tables.mode: catalog) the study name is part "
            "of the gold table names, so it may hold only letters, digits and '_'; rename the study file "
            "or set its key 'name'"
        )


def _check_published(published: dict[Any, Any], src: str) -> dict[str, dict[str, Any]]:
    """``published``: cohort -> a flat mapping of at most
    :data:`PUBLISHED_MAX_FIGURES` figures, each a number, text or null
    (counts are whole numbers, ratios numbers), so that nothing in it can fail
    or blow up when the report is written. Cohort names become text."""
    out: dict[str, dict[str, Any]] = {}
    for cohort, figures in published.items():
        if isinstance(cohort, bool) or not isinstance(cohort, (str, int, float)):
            raise ConfigError(f"{src}: key 'published' should name cohorts, got the key {short_repr(cohort)}")
        key = f"published.{short_text(str(cohort))}"
        figures = {} if figures is None else figures
        if not isinstance(figures, dict):
            raise ConfigError(f"{src}: key '{key}' should be a mapping of figures (exposed_reports, "
                              f"control_reports, ror, ror_ci_lower, ror_ci_upper, note), got {short_repr(figures)}")
        if len(figures) > PUBLISHED_MAX_FIGURES:
            raise ConfigError(f"{src}: key '{key}' has {len(figures)} figures; give at most {PUBLISHED_MAX_FIGURES}")
        for name, value in figures.items():
            if not isinstance(name, str):
                raise ConfigError(f"{src}: key '{key}' should name its figures with text, got {short_repr(name)}")
            where = f"{key}.{short_text(name)}"
            number = not isinstance(value, bool) and isinstance(value, (int, float))
            if name in _PUBLISHED_COUNTS and value is not None and not (number and isinstance(value, int)):
                raise ConfigError(f"{src}: key '{where}' should be a whole number, got {short_repr(value)}")
            if name in _PUBLISHED_RATIOS and value is not None and not number:
                raise ConfigError(f"{src}: key '{where}' should be a number, got {short_repr(value)}")
            if value is not None and not isinstance(value, (str, int, float, bool)):
                raise ConfigError(f"{src}: key '{where}' should be a number, text or null, got {short_repr(value)}")
        out[str(cohort)] = dict(figures)
    return out


def _check_published_period(period: str | None, src: str) -> str | None:
    """``published_period``: a quarter or a forward range of quarters, upper-cased."""
    if period is None:
        return None
    text = period.strip().upper()
    if not _QUARTER_RANGE.match(text):
        raise ConfigError(f"{src}: key 'published_period' should look like 2004Q1:2019Q4, got {short_repr(period)}")
    first, _, last = text.partition(":")
    if last and quarter_index(first) > quarter_index(last):
        raise ConfigError(f"{src}: key 'published_period' runs backwards ({text}); write the earlier quarter first")
    return text


def _normalise_terms(study: Study, src: str) -> Study:
    """Check every term list and normalise it with ``strip().upper()``.

    This is NOT the rule silver applies to the data (``faerslake.normalise``,
    Spark only; ``generate.norm_*_text`` is the plain-Python oracle of it):
    - ``norm_pt`` / ``clean_code`` trim only space, \\t, \\n, \\r, \\v, \\f and the
      no-break space U+00A0; ``str.strip()`` trims every Unicode white space
      (also U+001C-U+001F, U+0085, U+1680, U+2000-U+200A, U+2028/9, U+202F,
      U+205F, U+3000). PTs, indications and role codes agree on the rest.
    - ``norm_drug`` also collapses inner runs of white space (U+00A0 included)
      to one space and drops trailing periods; here neither happens, so an
      exposure / exclusion token with two inner spaces or a tab never matches
      silver's drug text, and one ending in ``.`` never matches where that
      period ended the text.
    The checks run in this order (cohorts, period, tokens) so that the first
    error reported for a file is the same as it always was.
    """

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
    cohorts = []
    for c in study.cohorts:
        if c.name in seen:
            raise ConfigError(f"{src}: cohort '{short_text(c.name)}' is defined twice")
        seen.add(c.name)
        if not c.indications:
            raise ConfigError(f"{src}: cohort '{short_text(c.name)}' has no indication terms")
        cohorts.append(Cohort(c.name, _norm(c.indications, f"cohorts.{short_text(c.name)}")))
    if study.period is not None and not _QUARTER_RANGE.match(study.period.upper()):
        raise ConfigError(f"{src}: key 'period' should look like 2004Q1:2019Q4, got {short_repr(study.period)}")
    published_period = _check_published_period(study.published_period, src)
    excl = study.exclusions
    roles = study.exposure_role_codes
    return dataclasses.replace(
        study,
        exposure=_normalise_exposure(study.exposure, _norm, src),
        cohorts=cohorts,
        outcome_pts=_norm(study.outcome_pts, "outcome_pts"),
        exclusions=dataclasses.replace(
            excl, drug_tokens=_norm(excl.drug_tokens, "exclusions.drug_tokens", allow_empty=True)
        ),
        exposure_role_codes=_norm(roles, "exposure_role_codes") if roles is not None else None,
        period=study.period.upper() if study.period else None,
        published_source=study.published_source.strip() or None if study.published_source else None,
        published_period=published_period,
    )


def _normalise_exposure(exposure: DrugMatch, norm: Callable[..., list[str]], src: str) -> DrugMatch:
    """``exposure`` with its lists normalised (``strip().upper()``) and its
    matcher set and checked: at least one of tokens / ingredients, and the
    lists the matcher uses non-empty."""
    tokens = norm(exposure.tokens, "exposure.tokens", allow_empty=True)
    ingredients = norm(exposure.ingredients, "exposure.ingredients", allow_empty=True)
    if not tokens and not ingredients:
        raise ConfigError(f"{src}: key 'exposure' should give 'tokens' or 'ingredients' (or both), each a "
                          "non-empty list of terms")
    matcher = str(exposure.matcher).strip().lower()
    if matcher not in MATCHERS:
        raise ConfigError(f"{src}: key 'exposure.matcher' should be one of {', '.join(MATCHERS)}, "
                          f"got {short_repr(exposure.matcher)}")
    needed = {"tokens": ["tokens"], "ingredients": ["ingredients"], "either": ["tokens", "ingredients"]}[matcher]
    given = {"tokens": tokens, "ingredients": ingredients}
    lacking = [k for k in needed if not given[k]]
    if lacking:
        raise ConfigError(f"{src}: key 'exposure.matcher' is {matcher}, which matches by "
                          f"{' and '.join(needed)}, but key 'exposure.{lacking[0]}' is empty or missing; "
                          f"give it, or set 'exposure.matcher' to "
                          f"{'tokens' if tokens else 'ingredients'}")
    return DrugMatch(tokens, norm(exposure.exclude_tokens, "exposure.exclude_tokens", allow_empty=True),
                     ingredients, matcher)


def resolve_strict_dedup(cli_flag: bool | None, study: Study | None, cfg: PipelineConfig) -> bool:
    """Whether silver de-duplicates strictly; the first that is set wins:
    the command-line flag, then the study file's ``strict_dedup`` (when a study
    is run), then ``build.strict_dedup`` of the pipeline settings."""
    if cli_flag is not None:
        return cli_flag
    if study is not None and study.strict_dedup is not None:
        return study.strict_dedup
    return cfg.build.strict_dedup
