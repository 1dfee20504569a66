"""The ``faerslake terms`` job: what a study's tokens and cohorts' PTs match in
the last completed build's silver (:mod:`.terms`), printed per token and
written as ``terms.csv`` / ``indications.csv``; also the files' writers the
study folder uses (:func:`write_terms_csv`).

It only reads: silver at the versions of the last completed build
(:func:`~faerslake.silver.job.completed_build`, which refuses a half-written
build), so it takes no writer lock and runs beside a build or study.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from faerslake.config import PipelineConfig, Study, TableSettings
from faerslake.files import atomic_write_csv, neutralise_cell
from faerslake.gold.cohorts import cohort_members
from faerslake.gold.io import stream_csv
from faerslake.gold.terms import DEFAULT_LIMIT, TERM_COLUMNS, cohort_indications, term_matches, top_terms
from faerslake.logs import sink
from faerslake.report.analysis import token_groups
from faerslake.silver.job import completed_build
from faerslake.tables import Warehouse

TERMS_FILE = "terms.csv"
INDICATIONS_FILE = "indications.csv"
_LOGGER = "faerslake.gold"


@dataclass
class TermsResult:
    """What ``faerslake terms`` found: the top rows per token
    (:func:`~faerslake.gold.terms.top_terms`), the cohorts' indication PTs,
    the silver versions read and the files written."""

    study: Study
    top: pd.DataFrame
    indications: pd.DataFrame
    limit: int
    versions: dict[str, int | None] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)


def _csv_value(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v) if isinstance(v, bool) else neutralise_cell(v)


def write_terms_csv(path: Path, matches: DataFrame) -> int:
    """Stream :func:`~faerslake.gold.terms.term_matches` (ordered) into
    ``path`` atomically, one partition at a time on the driver; the rows written."""
    return stream_csv(matches, TERM_COLUMNS, path, _csv_value)


def run_terms(spark: SparkSession, warehouse: str, study: Study, cfg: PipelineConfig | None = None,
              output: str | None = None, limit: int = DEFAULT_LIMIT,
              log: Callable[[str], None] | None = None) -> TermsResult:
    """Term matches and cohort indication PTs of ``study`` on the last completed
    build under ``warehouse``; with ``output``, ``OUTPUT/terms.csv`` (every
    row) and ``OUTPUT/indications.csv``. The cohort members are computed as
    ``faerslake study`` does, but not written."""
    from faerslake.gold.job import read_study_silver, versions_text  # job imports this module

    log = sink(log, _LOGGER)
    wh = Warehouse(warehouse, cfg.tables if cfg is not None else TableSettings())
    cut = completed_build(spark, wh, warehouse)
    silver, versions, ingredients, _ = read_study_silver(spark, wh, warehouse, cut, study, log)
    log(f"terms {study.name}: " + versions_text(versions))
    members = cohort_members(spark, silver["reports"], silver["drugs"], silver["indications"], silver["reactions"],
                             study, ingredients[0] if ingredients is not None else None)
    matches = term_matches(silver["drugs"], silver["reports"], study).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        result = TermsResult(study, top_terms(matches, limit), cohort_indications(silver["indications"], members, study),
                             limit, versions)
        if output is not None:
            out = Path(output).expanduser()
            n = write_terms_csv(out / TERMS_FILE, matches)
            result.files[TERMS_FILE] = out / TERMS_FILE
            result.files[INDICATIONS_FILE] = atomic_write_csv(out / INDICATIONS_FILE, result.indications)
            log(f"terms {study.name}: {n:,} rows -> {out / TERMS_FILE}; indications -> {out / INDICATIONS_FILE}")
    finally:
        matches.unpersist()
    return result


# --------------------------------------------------------------------------- #
# the console text
# --------------------------------------------------------------------------- #
def _name(r: dict[str, Any]) -> str:
    dn, ai = r.get("drugname"), r.get("prod_ai")
    dn = dn if isinstance(dn, str) and dn else "(no drugname)"
    return dn if not (isinstance(ai, str) and ai) else f"{dn}  [prod_ai: {ai}]"


def _lines(rows: list[dict[str, Any]], limit: int) -> list[str]:
    out = [f"  {'reports':>8} {'drug rows':>10}  {'found in':<8}  drugname  [prod_ai]"]
    out += [f"  {r['reports']:>8,} {r['drug_rows']:>10,}  {r['field']:<8}  {_name(r)}" for r in rows]
    total = int(rows[0]["token_names"]) if rows else 0
    if total > len(rows):
        out.append(f"  ... and {total - len(rows):,} more (the first {limit} shown; terms.csv has them all)")
    return out


def _groups(top: pd.DataFrame, name: str, kept: bool | None) -> list[tuple[str, list[dict[str, Any]]]]:
    """(token, its rows) of list ``name`` (and ``kept``), in the summary's order."""
    return list(token_groups(top, name, kept).items())


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def format_terms(result: TermsResult) -> str:
    """``faerslake terms``'s text: per exposure token its names (kept), per
    exclusion token the names it removed, per exclusion drug token its names,
    then per cohort the indication PTs' report counts."""
    study, top, limit = result.study, result.top, result.limit
    roles = ",".join(study.exposure_role_codes) if study.exposure_role_codes else "any"
    out = [f"study {study.name}: what the terms matched (period {study.period or 'all quarters'}; "
           f"exposure role codes {roles})", ""]
    kept = top[(top["list"] == "exposure.tokens") & (top["kept"] == True)]  # noqa: E712 - pandas mask
    by_token = dict(_groups(top, "exposure.tokens", True))
    for token, rows in by_token.items():
        out.append(f"exposure token {token}: {_plural(int(rows[0]['token_names']), 'name')}, "
                   f"{_plural(int(rows[0]['token_rows']), 'drug row')}")
        out += [*_lines(rows, limit), ""]
    quiet = [t for t in dict.fromkeys(study.exposure.tokens) if t not in by_token]
    if quiet:
        out += [f"exposure tokens with no drug row (or only removed ones): {', '.join(quiet)}", ""]
    n_rows = int(kept["list_rows"].iloc[0]) if len(kept) else 0
    out += [f"exposure drug rows by tokens: {n_rows:,} (each counted once, under the first token it contains)", ""]
    removed = dict(_groups(top, "exposure.exclude_tokens", None))
    for token in dict.fromkeys(study.exposure.exclude_tokens):
        rows = removed.get(token, [])
        if not rows:
            out += [f"removed by exclusion token {token}: nothing", ""]
            continue
        out.append(f"removed by exclusion token {token}: {_plural(int(rows[0]['token_names']), 'name')}, "
                   f"{_plural(int(rows[0]['token_rows']), 'drug row')}")
        out += [*_lines(rows, limit), ""]
    excl = study.exclusions
    if excl.enabled and excl.drug_tokens:
        groups = _groups(top, "exclusions.drug_tokens", None)
        quiet = [t for t in dict.fromkeys(excl.drug_tokens) if t not in dict(groups)]
        for token, rows in groups:
            out.append(f"exclusion drug token {token} (its reports leave every cohort): "
                       f"{_plural(int(rows[0]['token_names']), 'name')}, {_plural(int(rows[0]['token_rows']), 'drug row')}")
            out += [*_lines(rows, limit), ""]
        if quiet:
            out += [f"exclusion drug tokens with no drug row: {', '.join(quiet)}", ""]
    out += _indication_lines(result.indications)
    return "\n".join(out).rstrip() + "\n"


def _indication_lines(ind: pd.DataFrame) -> list[str]:
    out = ["indication PTs per cohort (reports of the cohort with that INDI PT):"]
    if not len(ind):
        return [*out, "  none"]
    width = max(len("indication PT"), *(len(str(p)) for p in ind["indication_pt"]))
    for cohort, part in ind.groupby("cohort", sort=False):
        out.append(f"cohort {cohort}:")
        out.append(f"  {'indication PT':<{width}}  {'exposed':>8}  {'control':>8}")
        out += [f"  {r['indication_pt']:<{width}}  {r['exposed_reports']:>8,}  {r['control_reports']:>8,}"
                for r in part.to_dict("records")]
    return out


def print_terms(result: TermsResult) -> None:
    """Print :func:`format_terms` to stdout (``faerslake terms``)."""
    print(format_terms(result), end="", flush=True)
