"""Screen files (``conf/screens/*.yaml``): which drug key, roles, period and
strata a signal screen counts (docs/screen.md).

Read with the same typed loader as study files, and as strictly: an unknown
key, a value of the wrong type, a misspelt drug key or stratum is an error
that names the file and the key. The command line's ``--by``, ``--roles``,
``--period``, ``--stratify`` and ``--name`` override the file's keys
(:func:`override_screen`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from faerslake.config.pipeline import TableSettings
from faerslake.config.study import _CATALOG_STUDY_NAME, _NAME_RULE, _QUARTER_RANGE, _STUDY_NAME, bundled_file
from faerslake.config.typed_yaml import _build, _read_yaml, short_repr
from faerslake.errors import ConfigError, FaerslakeError
from faerslake.quarters import quarter_range

# the drug keys of spec §1; "auto": ingredient when the build wrote
# silver/drug_ingredients, else drugname
DRUG_KEYS = ("auto", "drugname", "prod_ai", "ingredient")
STRATA = ("sex", "age_band", "year")


@dataclass(frozen=True)
class Screen:
    """One screen: every drug (by ``by``) against every reaction PT."""

    name: str
    description: str = ""
    by: str = "auto"
    # role codes of the counted drug rows; None: every role code
    roles: list[str] | None = None
    # "2004Q1:2019Q4": only reports of these quarters
    period: str | None = None
    stratify: list[str] = field(default_factory=list)
    # the truncation of the prior's likelihood (pairs with a >= n_star are fitted)
    n_star: int = 1
    # OUT/screen_<name>/signals.csv holds the pairs with a >= this
    csv_min_reports: int = 3
    # the report's table of top signals (by eb05)
    top: int = 20
    # like a study's: refuse a silver built with / without the strict pass
    strict_dedup: bool | None = None
    # squashing of the prior fit: bins per decade of E within each a
    squash_bins_per_decade: int = 50
    source_path: str | None = None
    sha256: str | None = None

    def drug_key(self, has_ingredients: bool) -> str:
        """The drug key this screen counts (``auto`` resolved)."""
        if self.by == "auto":
            return "ingredient" if has_ingredients else "drugname"
        return self.by


@functools.lru_cache(maxsize=1)
def default_screen_path() -> Path:
    """``conf/screens/all_drugs.yaml`` of a checkout, else the packaged copy."""
    return bundled_file("screens", "all_drugs.yaml")


def load_screen(path: str | Path | None = None, tables: TableSettings | None = None) -> Screen:
    """Load and validate a screen file (default :func:`default_screen_path`);
    its name is the file's stem unless it sets ``name``."""
    p = Path(path) if path is not None else default_screen_path()
    data, raw = _read_yaml(p, "screen file")
    src = str(p)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{src}: the file should be a mapping of screen keys")
    data = dict(data)
    data.setdefault("name", p.stem)
    screen = _build(Screen, data, "", src)
    screen = dataclasses.replace(screen, source_path=str(p.resolve()), sha256=hashlib.sha256(raw).hexdigest())
    return check_screen(screen, src, tables)


def override_screen(screen: Screen, tables: TableSettings | None = None, *, by: str | None = None,
                    roles: str | None = None, period: str | None = None, stratify: str | None = None,
                    name: str | None = None) -> Screen:
    """The screen with the command line's values in place of the file's
    (``roles`` and ``stratify`` comma-separated; an empty ``stratify`` or
    ``roles`` of ``all`` clears them), checked again."""
    changes: dict = {}
    if by is not None:
        changes["by"] = by
    if roles is not None:
        changes["roles"] = None if roles.strip().lower() in ("", "all") else _split(roles)
    if period is not None:
        changes["period"] = period or None
    if stratify is not None:
        changes["stratify"] = _split(stratify)
    if name is not None:
        changes["name"] = name
    return check_screen(dataclasses.replace(screen, **changes), "command line", tables) if changes else screen


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def check_screen(screen: Screen, src: str, tables: TableSettings | None = None) -> Screen:
    """Every key checked and normalised (roles upper-case, period upper-case,
    strata lower-case in the order :data:`STRATA` lists them)."""
    if not _STUDY_NAME.fullmatch(screen.name):
        raise ConfigError(f"{src}: the screen name {short_repr(screen.name)} should be {_NAME_RULE} "
                          "(it names the output folder and the gold table)")
    if tables is not None and tables.mode == "catalog" and not _CATALOG_STUDY_NAME.fullmatch(screen.name):
        raise ConfigError(f"{src}: in catalog mode the screen name {short_repr(screen.name)} is part of a table "
                          "name (gold_screen_<name>_signals), so it may hold only letters, digits and '_'")
    by = screen.by.strip().lower()
    if by not in DRUG_KEYS:
        raise ConfigError(f"{src}: key 'by' should be one of {', '.join(DRUG_KEYS)}, got {short_repr(screen.by)}")
    roles = None
    if screen.roles is not None:
        roles = [r.strip().upper() for r in screen.roles]
        if not roles or any(not r for r in roles):
            raise ConfigError(f"{src}: key 'roles' should be a non-empty list of role codes (PS, SS, C, I), or "
                              "left out for every role")
    period = screen.period.strip().upper() if screen.period else None
    if period is not None and not _QUARTER_RANGE.match(period):
        raise ConfigError(f"{src}: key 'period' should look like 2004Q1:2019Q4, got {short_repr(screen.period)}")
    if period is not None:
        try:
            quarter_range(period)
        except FaerslakeError as e:
            raise ConfigError(f"{src}: key 'period': {e}") from None
    strata = [s.strip().lower() for s in screen.stratify]
    unknown = [s for s in strata if s not in STRATA]
    if unknown:
        raise ConfigError(f"{src}: key 'stratify' may name {', '.join(STRATA)}, got {short_repr(unknown[0])}")
    if len(set(strata)) != len(strata):
        raise ConfigError(f"{src}: key 'stratify' names a stratum twice")
    for key, low in (("n_star", 1), ("csv_min_reports", 1), ("top", 1), ("squash_bins_per_decade", 1)):
        if getattr(screen, key) < low:
            raise ConfigError(f"{src}: key '{key}' should be at least {low}, got {getattr(screen, key)}")
    return dataclasses.replace(screen, by=by, roles=roles, period=period,
                               stratify=[s for s in STRATA if s in strata])
