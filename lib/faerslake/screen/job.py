"""The ``faerslake screen`` job (docs/screen.md): pinned silver -> every
drug–event pair's counts and statistics -> the prior fit on squashed points ->
every pair scored -> ``gold/screen_<name>/signals``, ``OUT/screen_<name>/``.

What comes to the driver is bounded whatever the archive's size: N, the
squashed points of the prior fit ((distinct a) × (bins over E's range)), the
report's top rows, a 2-D histogram of the screen and the study's exposure
pairs (capped). ``signals.csv`` is streamed partition by partition
(``toLocalIterator``), never collected whole.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from faerslake import __version__
from faerslake.config import PipelineConfig, Screen, Study, TableSettings
from faerslake.errors import InputError
from faerslake.files import atomic_folder, atomic_write_text, clean_stale_folders, neutralise_cell
from faerslake.gold.cohorts import contains_any
from faerslake.gold.io import stream_csv
from faerslake.lock import writer_lock
from faerslake.logs import sink
from faerslake.screen import mgps
from faerslake.screen.batches import loglik_batches, score_batches
from faerslake.screen.counts import (
    FREQUENTIST_COLUMNS,
    KEY_COLUMNS,
    PAIR_COLUMNS,
    pair_counts,
    screen_sets,
    squashed_points,
    with_frequentist,
)
from faerslake.silver.job import SilverCut, completed_build
from faerslake.tables import Warehouse

_LOGGER = "faerslake.screen"
# the contract's columns of gold/screen_<name>/signals and signals.csv (spec §3), then the margins
SIGNAL_COLUMNS = ["drug", "pt", "a", "b", "c", "d", "expected", *FREQUENTIST_COLUMNS,
                  "ic", "ic025", "ic975", "ebgm", "eb05", "eb95", "q", "n_drug", "n_event", "n_reports"]
SCREEN_FILES = ("signals.csv", "prior.json", "screen_plot.png", "report.md", "report.html")
# the study's exposure pairs drawn on the picture, at most (the most reported first)
HIGHLIGHT_MAX = 2000
# the picture's histogram: cells per decade of a and of EB05
GRID_PER_DECADE = 50


@dataclass
class ScreenResult:
    """What a screen run produced (the small parts; the pairs stay in Delta)."""

    name: str
    drug_key: str
    n_reports: int
    pairs: int
    pairs_in_csv: int
    prior: mgps.Prior
    top: pd.DataFrame
    table_versions: dict[str, int | None]
    paths: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0


def table_name(screen: Screen) -> str:
    """``screen_<name>/signals``: the gold table of a screen."""
    return f"screen_{screen.name}/signals"


def run_screen(spark: SparkSession, warehouse: str, screen: Screen, output: str,
               cfg: PipelineConfig | None = None, log: Callable[[str], None] | None = None,
               study: Study | None = None, top: int | None = None) -> ScreenResult:
    """Screen every drug–event pair of the last completed build; writes the gold
    table and ``OUT/screen_<name>/`` (:data:`SCREEN_FILES`) and returns the
    small results. ``study`` (default: none) names the exposure highlighted
    in the picture; ``top`` (default the screen's ``top``) the rows of
    ``ScreenResult.top``, the report's table showing the screen's ``top``."""
    log = sink(log, _LOGGER)
    settings = cfg.tables if cfg is not None else TableSettings()
    wh = Warehouse(warehouse, settings)
    with writer_lock(warehouse, "screen", settings.lock_timeout_seconds, wh.by_catalog):
        return _run_screen(spark, wh, warehouse, screen, output, log, study, top)


def check_screen_dedup(cut: SilverCut, screen: Screen, warehouse: str) -> None:
    """Refuse a silver de-duplicated otherwise than the screen file's ``strict_dedup`` asks."""
    wanted = screen.strict_dedup
    if wanted is None or cut.strict_dedup is None or cut.strict_dedup == wanted:
        return
    how = "with" if wanted else "without"
    ran = "without" if wanted else "with"
    raise InputError(f"screen {screen.name} sets strict_dedup: {str(wanted).lower()}, but the last build under "
                     f"{warehouse} ran {ran} the strict de-duplication pass: run 'faerslake build --warehouse "
                     f"{warehouse}{' --strict-dedup' if wanted else ''}' first (to build {how} it).")


def read_inputs(spark: SparkSession, wh: Warehouse, warehouse: str, cut: SilverCut,
                key: str) -> tuple[dict[str, DataFrame], dict[str, int | None]]:
    """``reports``, ``drugs`` (or ``drug_ingredients`` for the ingredient key)
    and ``reactions`` at the versions of the build's cut, and those versions."""
    names = {"reports": "reports", "drugs": "drug_ingredients" if key == "ingredient" else "drugs",
             "reactions": "reactions"}
    frames: dict[str, DataFrame] = {}
    versions: dict[str, int | None] = {}
    for role, table in names.items():
        v = cut.silver.get(table)
        if v is None:
            where = wh.where("silver", table)
            hint = (" (the build predates drug identity: run 'faerslake build --warehouse "
                    f"{warehouse} --force', or screen with --by drugname)") if table == "drug_ingredients" else ""
            raise InputError(f"silver table '{table}' not found at {where}{hint}; run 'faerslake build "
                             f"--warehouse {warehouse}' (or 'faerslake run') first.")
        frames[role] = wh.read_at(spark, "silver", table, v)
        versions[f"silver/{table}"] = v
    needed = {"reports": ["report_key", "quarter", "sex", "age_years"],
              "drugs": ["report_key", "quarter", "role_cod", KEY_COLUMNS[key]],
              "reactions": ["report_key", "quarter", "pt_norm"]}
    for role, cols in needed.items():
        missing = [c for c in cols if c not in frames[role].columns]
        if missing:
            raise InputError(f"silver table '{names[role]}' under {warehouse} lacks column(s) {', '.join(missing)}: "
                             f"run 'faerslake build --warehouse {warehouse} --force' first.")
    return frames, versions


def fit_on_squashed(pairs: DataFrame, screen: Screen, log: Callable[[str], None]) -> mgps.Prior:
    """The prior fitted on the squashed points (brought to the driver: a
    bounded number), then its negative log-likelihood over every pair with
    a >= N*, unsquashed, summed in Spark."""
    pts = squashed_points(pairs, screen.n_star, screen.squash_bins_per_decade).toPandas()
    if pts.empty:
        raise InputError(f"screen {screen.name}: no pair has a >= n_star ({screen.n_star}), so the prior cannot be "
                         "fitted; lower n_star or screen more reports.")
    a, e, w = (pts[c].to_numpy() for c in ("a", "e", "w"))
    t0 = time.perf_counter()
    prior = mgps.fit_prior(a.astype(float), e.astype(float), w.astype(float), n_star=screen.n_star)
    log(f"screen {screen.name}: prior fitted on {len(pts):,} squashed points ({int(w.sum()):,} pairs) in "
        f"{time.perf_counter() - t0:.1f} s: " + ", ".join(f"{k} {v:.6g}" for k, v in zip(
            ("alpha1", "beta1", "alpha2", "beta2", "p"), prior.theta(), strict=True)))
    sums = (pairs.where(F.col("a") >= screen.n_star).select("a", "expected")
            .mapInPandas(functools.partial(loglik_batches, theta=prior.theta(), n_star=screen.n_star),
                         "ll double, n long")
            .agg(F.sum("ll").alias("ll"), F.sum("n").alias("n")).first())
    assert sums is not None  # an aggregate without grouping has one row
    if not prior.converged:
        log(f"warning: screen {screen.name}: the prior's best fit was not confirmed by a second start (prior.json "
            "says converged: false); EBGM, EB05 and EB95 use it, but compare them with another screen before "
            "relying on their exact values")
    return replace(prior, neg_log_likelihood=-float(sums["ll"]), pairs=int(sums["n"]))


def score_pairs(pairs: DataFrame, prior: mgps.Prior) -> DataFrame:
    """Every pair with its Bayesian columns (:data:`faerslake.screen.mgps.SCORE_COLUMNS`),
    in Arrow batches, columns in :data:`SIGNAL_COLUMNS` order."""
    schema = T.StructType(list(pairs.schema.fields)
                          + [T.StructField(c, T.DoubleType(), True) for c in mgps.SCORE_COLUMNS])
    scored = pairs.mapInPandas(functools.partial(score_batches, prior=prior), schema)
    return scored.select(*SIGNAL_COLUMNS)


def _run_screen(spark: SparkSession, wh: Warehouse, warehouse: str, screen: Screen, output: str,
                log: Callable[[str], None], study: Study | None, want_top: int | None = None) -> ScreenResult:
    t_start = time.time()
    out_dir = Path(output) / f"screen_{screen.name}"
    clean_stale_folders(out_dir)
    cut = completed_build(spark, wh, warehouse)
    check_screen_dedup(cut, screen, warehouse)
    key = screen.drug_key(cut.silver.get("drug_ingredients") is not None)
    frames, versions = read_inputs(spark, wh, warehouse, cut, key)
    log(f"screen {screen.name}: drugs by {key}; roles {','.join(screen.roles) if screen.roles else 'all'}; "
        f"period {screen.period or 'all'}; strata {','.join(screen.stratify) or 'none'}; silver versions "
        + ", ".join(f"{k.split('/')[1]}@{v}" for k, v in versions.items()))
    sets = screen_sets(frames["reports"], frames["drugs"], frames["reactions"], screen, key)
    persisted = [sets.reports.persist(StorageLevel.MEMORY_AND_DISK), sets.drugs.persist(StorageLevel.MEMORY_AND_DISK),
                 sets.events.persist(StorageLevel.MEMORY_AND_DISK)]
    try:
        n_reports = sets.reports.count()
        if n_reports == 0:
            raise InputError(f"screen {screen.name}: no report of the last build has a counted drug row and a "
                             "reaction PT" + (f" in period {screen.period}" if screen.period else "")
                             + (f" with role {','.join(screen.roles)}" if screen.roles else "")
                             + ": nothing to screen.")
        pairs = with_frequentist(pair_counts(sets, n_reports)).persist(StorageLevel.MEMORY_AND_DISK)
        persisted.append(pairs)
        prior = fit_on_squashed(pairs, screen, log)
        wh.write(score_pairs(pairs, prior), "gold", table_name(screen), mode="overwrite", overwriteSchema="true")
    finally:
        for df in persisted:
            df.unpersist()
    signals = wh.read(spark, "gold", table_name(screen))
    gold_version = wh.version(spark, "gold", table_name(screen))
    versions[f"gold/{table_name(screen)}"] = gold_version
    n_pairs = signals.count()
    n_top = max(screen.top, want_top or 0)
    top = signals.where(F.col("a") >= screen.csv_min_reports).orderBy(*order()).limit(n_top).toPandas()
    grid = screen_grid(signals)
    highlight = exposure_pairs(signals, study)
    ctx = ScreenContext(screen=screen, drug_key=key, warehouse=warehouse, n_reports=n_reports, pairs=n_pairs,
                        prior=prior, top=top.head(screen.top), grid=grid, highlight=highlight, study=study,
                        table_versions=versions, faerslake_version=__version__,
                        generated_at=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"))

    def write(tmp: Path) -> dict[str, Path]:
        n_csv = write_signals_csv(signals.where(F.col("a") >= screen.csv_min_reports).orderBy(*order()),
                                  tmp / "signals.csv")
        ctx.pairs_in_csv = n_csv
        atomic_write_text(tmp / "prior.json", json.dumps(prior_document(prior, screen, key), indent=2) + "\n")
        from faerslake.report.screen import write_screen_report

        return write_screen_report(tmp, ctx)

    paths = {k: out_dir / p.name for k, p in atomic_folder(out_dir, write).items()}
    where = wh.where("gold", table_name(screen))
    log(f"screen {screen.name}: {n_reports:,} reports, {n_pairs:,} pairs ({ctx.pairs_in_csv:,} with a >= "
        f"{screen.csv_min_reports} in signals.csv) -> {where}; report -> "
        f"{paths.get('md')}")
    return ScreenResult(screen.name, key, n_reports, n_pairs, ctx.pairs_in_csv, prior, top, versions, paths,
                        round(time.time() - t_start, 1))


def order() -> list:
    """signals.csv's order (spec §3): eb05 descending, then drug, pt."""
    return [F.col("eb05").desc(), F.col("drug").asc(), F.col("pt").asc()]


def prior_document(prior: mgps.Prior, screen: Screen, key: str) -> dict:
    """``prior.json``: the spec §3 keys, then what the fit used."""
    d = prior.to_dict()
    head = {k: d.get(k) for k in ("alpha1", "beta1", "alpha2", "beta2", "p", "n_star", "pairs",
                                   "neg_log_likelihood", "converged", "optimizer")}
    rest = {k: v for k, v in d.items() if k not in head}
    return {**head, **rest, "screen": screen.name, "drug_key": key,
            "squash_bins_per_decade": screen.squash_bins_per_decade}


def _csv_value(v: object) -> object:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    if isinstance(v, bool):
        return str(v)
    return neutralise_cell(v)


def write_signals_csv(df: DataFrame, path: Path) -> int:
    """Stream ``df`` (already ordered) into ``path`` partition by partition
    (the driver holds one partition at a time); the rows written."""
    return stream_csv(df, SIGNAL_COLUMNS, path, _csv_value)


def screen_grid(signals: DataFrame) -> pd.DataFrame:
    """The picture of the whole screen, bounded: pairs counted per cell of
    (log10 a, log10 EB05), :data:`GRID_PER_DECADE` cells a decade."""
    g = GRID_PER_DECADE
    return (signals.where(F.col("eb05") > 0)
            .groupBy(F.floor(F.log10("a") * g).alias("x"), F.floor(F.log10("eb05") * g).alias("y"))
            .agg(F.count(F.lit(1)).alias("pairs")).toPandas())


def exposure_pairs(signals: DataFrame, study: Study | None) -> pd.DataFrame:
    """The pairs whose drug is the study's exposure (its tokens as substrings
    of the drug key's value, or its ingredients exactly), at most
    :data:`HIGHLIGHT_MAX`, the most reported first: ``drug, pt, a, eb05``."""
    cols = ["drug", "pt", "a", "eb05"]
    if study is None:
        return pd.DataFrame(columns=cols)
    hit = contains_any([F.col("drug")], list(study.exposure.tokens))
    if study.exposure.exclude_tokens:
        hit = hit & ~contains_any([F.col("drug")], list(study.exposure.exclude_tokens))
    if study.exposure.ingredients:
        hit = hit | F.col("drug").isin(list(study.exposure.ingredients))
    return (signals.where(hit).orderBy(F.col("a").desc(), "drug", "pt").select(*cols)
            .limit(HIGHLIGHT_MAX).toPandas())


@dataclass
class ScreenContext:
    """Everything the screen report shows (small)."""

    screen: Screen
    drug_key: str
    warehouse: str
    n_reports: int
    pairs: int
    prior: mgps.Prior
    top: pd.DataFrame
    grid: pd.DataFrame
    highlight: pd.DataFrame
    study: Study | None
    table_versions: dict[str, int | None]
    faerslake_version: str
    generated_at: str
    pairs_in_csv: int = 0


__all__ = ["order", "PAIR_COLUMNS", "SCREEN_FILES", "SIGNAL_COLUMNS", "ScreenContext", "ScreenResult",
           "check_screen_dedup", "exposure_pairs", "fit_on_squashed", "prior_document", "read_inputs",
           "run_screen", "score_pairs", "screen_grid", "table_name", "write_signals_csv"]
