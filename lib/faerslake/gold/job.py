"""The ``faerslake study`` job: pinned silver -> cohort members -> counts and
strata -> statistics -> gold tables, CSVs and the report."""

from __future__ import annotations

import dataclasses
import datetime as _dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from faerslake import __version__, stats
from faerslake.config import PipelineConfig, Study, TableSettings, check_catalog_name
from faerslake.contracts import GOLD, columns
from faerslake.errors import InputError
from faerslake.faults import checkpoint
from faerslake.files import atomic_folder, atomic_write_bytes, atomic_write_csv, clean_stale_folders
from faerslake.gold.cases import case_listing, write_cases_csv
from faerslake.gold.cohorts import (
    DRUG_INGREDIENT_COLUMNS,
    MEMBER_COLUMNS,
    SILVER_COLUMNS,
    cohort_members,
    in_period,
    matcher_members,
    members_under,
    require_columns,
)
from faerslake.gold.io import to_spark
from faerslake.gold.strata import demographics_table, mantel_haenszel_table, strata_counts
from faerslake.gold.terms import cohort_indications, term_matches, top_terms
from faerslake.gold.terms_job import INDICATIONS_FILE, TERMS_FILE, write_terms_csv
from faerslake.gold.trend import trend_counts, trend_plot_png, trend_table
from faerslake.lock import writer_lock
from faerslake.logs import sink
from faerslake.quarters import format_ranges
from faerslake.report import ReportContext, Upstream, quarter_sort_key, read_upstream, write_report
from faerslake.silver.job import SilverCut, _bronze_versions, completed_build
from faerslake.tables import WRITE_THREADS, Warehouse

RESULT_SCHEMA = GOLD["cohort_results"]
MH_SCHEMA = GOLD["mantel_haenszel"]
SENSITIVITY_SCHEMA = GOLD["matcher_sensitivity"]
SENSITIVITY_COLUMNS = columns(SENSITIVITY_SCHEMA)
# the matchers matcher_sensitivity compares, in its row order within a cohort
SENSITIVITY_MATCHERS = ["tokens", "ingredients", "either"]
_LOGGER = "faerslake.gold"


def gold_tables(study: Study) -> list[str]:
    """The gold tables a study writes, as ``<study>/<table>`` names
    (``matcher_sensitivity`` for a study naming both tokens and ingredients)."""
    tables = ["cohort_members", "cohort_results", "mantel_haenszel"]
    if study.exposure.compares_matchers:
        tables.append("matcher_sensitivity")
    return [f"{study.name}/{t}" for t in tables]


def cohort_counts(members: DataFrame, study: Study) -> pd.DataFrame:
    """Per-cohort report and event counts, in study order, zeros included.

    Only 2 rows per cohort come to the driver."""
    rows = (
        members.groupBy("cohort", "exposed")
        .agg(F.count(F.lit(1)).alias("reports"), F.sum(F.col("event").cast("long")).alias("events"))
        .collect()
    )
    got = {(r["cohort"], bool(r["exposed"])): (int(r["reports"]), int(r["events"] or 0)) for r in rows}
    out = []
    for c in study.cohorts:
        er, ee = got.get((c.name, True), (0, 0))
        cr, ce = got.get((c.name, False), (0, 0))
        out.append({"study": study.name, "cohort": c.name, "exposed_reports": er, "exposed_events": ee,
                    "control_reports": cr, "control_events": ce})
    return pd.DataFrame(out, columns=["study", "cohort", *stats.COUNT_COLUMNS])


def matcher_sensitivity(wide: DataFrame, study: Study) -> pd.DataFrame:
    """The cohorts' counts under each matcher of :data:`SENSITIVITY_MATCHERS`
    from a :func:`~faerslake.gold.cohorts.matcher_members` frame that has
    them all: one aggregate over it (one row per cohort comes to the driver),
    then the ROR and its CI per (cohort, matcher) with the same function as
    ``cohort_results`` (:func:`faerslake.stats.ror_ci`). Rows: per cohort in
    study order, tokens, ingredients, either; ``primary`` marks the study's
    matcher, whose counts are those of ``cohort_results``."""

    def n(cond: Column) -> Column:
        return F.sum(F.when(cond, 1).otherwise(0))

    aggs = []
    for m in SENSITIVITY_MATCHERS:
        exp, ctl, ev = F.col(f"exposed_{m}"), F.col(f"control_{m}"), F.col("event")
        aggs += [n(exp).alias(f"{m}_er"), n(exp & ev).alias(f"{m}_ee"),
                 n(ctl).alias(f"{m}_cr"), n(ctl & ev).alias(f"{m}_ce")]
    t, i = F.col("exposed_tokens"), F.col("exposed_ingredients")
    aggs += [n(t & ~i).alias("tokens_only"), n(i & ~t).alias("ingredients_only")]
    got = {r["cohort"]: r.asDict() for r in wide.groupBy("cohort").agg(*aggs).collect()}
    rows = []
    for c in study.cohorts:
        g = got.get(c.name, {})
        for m in SENSITIVITY_MATCHERS:
            er, ee, cr, ce = (int(g.get(f"{m}_{k}") or 0) for k in ("er", "ee", "cr", "ce"))
            r = stats.ror_ci(ee, er - ee, ce, cr - ce)
            only = int(g.get(f"{m}_only") or 0) if m != "either" else None
            rows.append({"study": study.name, "cohort": c.name, "matcher": m,
                         "primary": m == study.exposure.matcher, "exposed_reports": er, "exposed_events": ee,
                         "control_reports": cr, "control_events": ce, "exposed_only": only,
                         "ror": r.ror, "ror_ci_lower": r.ci_lower, "ror_ci_upper": r.ci_upper,
                         "haldane_corrected": r.haldane_corrected})
    return sensitivity_frame(rows)


def sensitivity_frame(rows: list[dict] | None = None) -> pd.DataFrame:
    """``rows`` as a frame of the ``matcher_sensitivity`` columns (none: header only)."""
    df = pd.DataFrame(rows or [], columns=SENSITIVITY_COLUMNS)
    for col in ["ror", "ror_ci_lower", "ror_ci_upper"]:
        df[col] = df[col].astype("float64")
    # whole numbers or None (null for either): object, so the CSV has no "1.0"
    df["exposed_only"] = pd.Series([None if v is None or v != v else int(v) for v in df["exposed_only"]],
                                   index=df.index, dtype=object)
    return df


def read_drug_ingredients(spark: SparkSession, wh: Warehouse,
                          cut: SilverCut) -> tuple[DataFrame | None, int | None]:
    """``silver/drug_ingredients`` at the version the last completed build left
    it (``cut``), and that version; ``(None, None)`` when the warehouse has no
    such table (built by a faerslake before the ingredient step). The cut
    names every table of ``SILVER_TABLES``, this one included, so the study
    never reads a version of it another build left."""
    v = cut.silver.get("drug_ingredients")
    if v is None:
        return None, None
    df = wh.read_at(spark, "silver", "drug_ingredients", v)
    require_columns(df, "drug_ingredients", DRUG_INGREDIENT_COLUMNS)
    return df, v


def read_outcomes(spark: SparkSession, wh: Warehouse, cut: SilverCut) -> tuple[DataFrame | None, int | None]:
    """``silver/outcomes`` at the version of the build's cut, and that version,
    for the case listing; ``(None, None)`` when the warehouse has none (its
    ``outcomes`` column is then empty, and the report says why)."""
    v = cut.silver.get("outcomes")
    if v is None:
        return None, None
    df = wh.read_at(spark, "silver", "outcomes", v)
    require_columns(df, "outcomes", ["report_key", "quarter", "outc_cod"])
    return df, v


def read_silver(spark: SparkSession, wh: Warehouse,
                cut: SilverCut | None = None) -> tuple[dict[str, DataFrame], dict[str, int | None]]:
    """The silver tables this stage reads, each at the version the last
    completed build left it (``cut``, default :func:`completed_build`), and
    those versions: one build's tables, never a mix of two."""
    cut = cut if cut is not None else completed_build(spark, wh, wh.root)
    silver: dict[str, DataFrame] = {}
    versions: dict[str, int | None] = {}
    for name in SILVER_COLUMNS:
        v = cut.silver.get(name)
        if v is None:
            where = wh.where("silver", name)
            raise InputError(f"silver table '{name}' not found at {where}; run 'faerslake ingest' and "
                             f"'faerslake build' first (or 'faerslake run').")
        df = wh.read_at(spark, "silver", name, v)
        require_columns(df, name, SILVER_COLUMNS[name])
        silver[name] = df
        versions[f"silver/{name}"] = v
    return silver, versions


def _read_ingredients_for(spark: SparkSession, wh: Warehouse, warehouse: str, cut: SilverCut, study: Study,
                          log: Callable[[str], None]) -> tuple[tuple[DataFrame, int | None] | None, str | None]:
    """``(silver/drug_ingredients and its version, or None; why the matcher
    sensitivity is not computed, or None)``. The table is read only when the
    study names ingredients. Missing, a study whose matcher needs it is
    refused (one sentence); one that only compares matchers runs on its token
    matcher, with a warning."""
    if not study.exposure.ingredients:
        return None, None
    df, v = read_drug_ingredients(spark, wh, cut)
    if df is not None:
        return (df, v), None
    where = wh.where("silver", "drug_ingredients")
    if study.exposure.needs_ingredients:
        raise InputError(
            f"study {study.name} matches its exposure by ingredients (exposure.matcher: {study.exposure.matcher}), "
            f"but there is no silver table 'drug_ingredients' at {where} (the warehouse was built by an older "
            f"faerslake): run 'faerslake build --warehouse {warehouse} --force' first.")
    note = (f"not computed: the warehouse has no silver table 'drug_ingredients' (built by an older faerslake); "
            f"run 'faerslake build --warehouse {warehouse} --force' and the study again to compare the matchers")
    log(f"warning: study {study.name}: matcher sensitivity {note}")
    return None, note


def read_study_silver(spark: SparkSession, wh: Warehouse, warehouse: str, cut: SilverCut, study: Study,
                      log: Callable[[str], None]
                      ) -> tuple[dict[str, DataFrame], dict[str, int | None], tuple[DataFrame, int | None] | None,
                                 str | None]:
    """What a study reads of the build ``cut``: the silver tables
    (:func:`read_silver`), their versions, ``silver/drug_ingredients`` when the
    study names ingredients (its version among the versions), and why the
    matcher sensitivity is not computed (:func:`_read_ingredients_for`)."""
    silver, versions = read_silver(spark, wh, cut)
    ingredients, note = _read_ingredients_for(spark, wh, warehouse, cut, study, log)
    if ingredients is not None:
        versions["silver/drug_ingredients"] = ingredients[1]
    return silver, versions, ingredients, note


def versions_text(versions: dict[str, int | None]) -> str:
    """``silver versions reports@3, drugs@3, ...`` for a log line."""
    return "silver versions " + ", ".join(f"{k.split('/')[1]}@{v}" for k, v in versions.items())


def _sensitivity_line(sensitivity: pd.DataFrame) -> str:
    """One line: exposed reports under each matcher, summed over the cohorts."""
    total = sensitivity.groupby("matcher", sort=False)["exposed_reports"].sum()
    return "exposed reports over all cohorts: " + ", ".join(f"{m} {int(n):,}" for m, n in total.items())


def _warn_if_stale(spark: SparkSession, wh: Warehouse, cut: SilverCut, study: Study,
                   log: Callable[[str], None]) -> None:
    """Say so when bronze changed after the build the study reads (an ingest ran since)."""
    if not cut.bronze:
        return
    now = _bronze_versions(spark, wh)
    moved = sorted(t for t in cut.bronze if t in now and now[t] != cut.bronze[t])
    if moved:
        log(f"warning: study {study.name}: bronze ({', '.join(moved)}) changed after the last build; these "
            "results are from that build: run 'faerslake build' to include the new data")


def _upstream_versions(cut: SilverCut | None) -> dict[str, int | None] | None:
    """The versions the report's upstream tables are read at: those of the build's cut."""
    if cut is None or not cut.checked:
        return None
    return {"silver/dedup_summary": cut.silver.get("dedup_summary"),
            **{f"bronze/{t}": cut.bronze[t] for t in ("ingest_audit", "source_manifest") if t in cut.bronze}}


def write_members(spark: SparkSession, wh: Warehouse, study: Study, members: DataFrame) -> DataFrame:
    """Write ``<study>/cohort_members`` and return it read back, so later counts
    read the table instead of running the joins again."""
    check_catalog_name(study, wh.settings)  # before the first gold table is named
    name = f"{study.name}/cohort_members"
    wh.write(members.select(*MEMBER_COLUMNS), "gold", name, mode="overwrite", overwriteSchema="true")
    checkpoint("study.after_members")  # crash tests: members written, results not
    return wh.read(spark, "gold", name)


def summarise(spark: SparkSession, wh: Warehouse, study: Study, members: DataFrame, reports: DataFrame,
              cut: SilverCut | None = None
              ) -> tuple[pd.DataFrame, pd.DataFrame, list[str], Upstream, pd.DataFrame, pd.DataFrame]:
    """(cohort results, MH table, quarters covered, upstream tables for the
    report, trend table, demographics table)."""
    # the five small reads are independent Spark jobs: run them side by side
    with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
        f_counts = pool.submit(cohort_counts, members, study)
        f_strata = pool.submit(strata_counts, members, reports)
        f_quarters = pool.submit(lambda: [r[0] for r in reports.select("quarter").distinct().collect()])
        f_upstream = pool.submit(read_upstream, spark, wh, _upstream_versions(cut))
        f_trend = pool.submit(trend_counts, members)
        results = stats.cohort_statistics(f_counts.result())
        mh = mantel_haenszel_table(members, reports, study, results, rows=f_strata.result())
        quarters = sorted(f_quarters.result(), key=quarter_sort_key)
        upstream = f_upstream.result()
        trend = trend_table(None, study, quarters, rows=f_trend.result())
        demographics = demographics_table(f_strata.result(), study)
    return results, mh, quarters, upstream, trend, demographics


def write_results(spark: SparkSession, wh: Warehouse, study: Study,
                  results: pd.DataFrame, mh: pd.DataFrame, log: Callable[[str], None],
                  sensitivity: pd.DataFrame | None = None) -> None:
    """The Delta tables ``<study>/cohort_results`` and ``<study>/mantel_haenszel``,
    and ``<study>/matcher_sensitivity`` when given (their CSVs go in the study
    folder, :func:`write_study_folder`)."""
    tables = [(results, RESULT_SCHEMA, "cohort_results"), (mh, MH_SCHEMA, "mantel_haenszel")]
    if sensitivity is not None:
        tables.append((sensitivity, SENSITIVITY_SCHEMA, "matcher_sensitivity"))
    with ThreadPoolExecutor(max_workers=len(tables)) as pool:
        for f in [pool.submit(wh.write, to_spark(spark, pdf, schema), "gold", f"{study.name}/{table}",
                              mode="overwrite", overwriteSchema="true") for pdf, schema, table in tables]:
            f.result()
    log(f"study {study.name}: cohort_results -> {wh.path('gold', study.name + '/cohort_results')}")


# the analyst files (issue #18)
TREND_FILE, TREND_PLOT, DEMOGRAPHICS_FILE, CASES_FILE = "trend.csv", "trend_plot.png", "demographics.csv", "cases.csv"
STUDY_FILES = ("cohort_results.csv", "mantel_haenszel.csv", "forest_plot.png", "forest_plot.svg", "report.md",
               "report.html", TERMS_FILE, INDICATIONS_FILE, TREND_FILE, TREND_PLOT, DEMOGRAPHICS_FILE, CASES_FILE)
# beside them for a study naming both tokens and ingredients
SENSITIVITY_FILE = "matcher_sensitivity.csv"


def write_study_folder(out_dir: Path, results: pd.DataFrame, mh: pd.DataFrame,
                       ctx: ReportContext, sensitivity: pd.DataFrame | None = None,
                       terms: DataFrame | None = None,
                       cases: Callable[[Path], dict[str, int]] | None = None) -> dict[str, Path]:
    """``OUT/<study>/`` as one unit: the CSVs and the report (:data:`STUDY_FILES`,
    and :data:`SENSITIVITY_FILE` when ``sensitivity`` is given) are written into a temp sibling ``OUT/.<study>.tmp-<uuid>/`` and switched
    into place only once all of them, the report included, are rendered
    (:func:`faerslake.files.atomic_folder`). The analyst files are written
    from ``ctx`` (``trend``, ``demographics``, the pictures in ``images``) and
    by ``cases`` (a writer of the case listing at a path, returning its rows
    per cohort, which the report then states), before the report. A failure anywhere leaves the
    previous run's folder as it was and no temp folder; a killed run's temp
    folder is removed by the next run. ``terms`` (:func:`~faerslake.gold.terms.term_matches`)
    is streamed into ``terms.csv``; ``indications.csv`` is ``ctx.cohort_indications``. Returns the report's final paths
    (``{"md", "html", "png"}``)."""

    def write(tmp: Path) -> dict[str, Path]:
        atomic_write_csv(tmp / "cohort_results.csv", results)
        checkpoint("study.output_written")  # crash tests: one file in the temp folder, not switched in
        atomic_write_csv(tmp / "mantel_haenszel.csv", mh)
        if sensitivity is not None:
            atomic_write_csv(tmp / SENSITIVITY_FILE, sensitivity)
        if terms is not None:
            write_terms_csv(tmp / TERMS_FILE, terms)
        if ctx.cohort_indications is not None:
            atomic_write_csv(tmp / INDICATIONS_FILE, ctx.cohort_indications)
        report_ctx = _write_analyst_files(tmp, results, ctx, cases)
        return write_report(tmp, results, report_ctx)

    return {k: Path(out_dir) / p.name for k, p in atomic_folder(out_dir, write).items()}


def _write_analyst_files(tmp: Path, results: pd.DataFrame, ctx: ReportContext,
                         cases: Callable[[Path], dict[str, int]] | None) -> ReportContext:
    """The trend and its plot, the demographics and the case listing into
    ``tmp`` (each when the context has it; the listing's Spark job runs while
    the plot is drawn); the context back with the plot among its ``images``
    and the listing's file and rows. A listing whose rows per cohort are not
    the cohorts' exposed events is refused: both come from the members table."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        f_cases = pool.submit(cases, tmp / CASES_FILE) if cases is not None else None
        images = dict(ctx.images or {})
        if ctx.trend is not None:
            atomic_write_csv(tmp / TREND_FILE, ctx.trend)
            images[TREND_PLOT] = trend_plot_png(ctx.trend, getattr(ctx.study, "name", "") or "")
        for name, data in images.items():
            atomic_write_bytes(tmp / name, data)
        if ctx.demographics is not None:
            atomic_write_csv(tmp / DEMOGRAPHICS_FILE, ctx.demographics)
        ctx = dataclasses.replace(ctx, images=images)
        if f_cases is None:
            return ctx
        per_cohort = f_cases.result()
    want = {str(r["cohort"]): int(r["exposed_events"]) for r in results.to_dict("records")}
    got = {c: per_cohort.get(c, 0) for c in want}
    if got != want or set(per_cohort) - set(want):
        raise RuntimeError(f"the case listing's rows per cohort ({per_cohort}) are not the cohorts' exposed "
                           f"events ({want}): {CASES_FILE} would not reconcile with cohort_results")
    return dataclasses.replace(ctx, cases_file=CASES_FILE, cases_rows=sum(got.values()), cases_per_cohort=got)


def run_study(
    spark: SparkSession,
    warehouse: str,
    study: Study,
    output: str,
    cfg: PipelineConfig | None = None,
    log: Callable[[str], None] | None = None,
    failed_quarters: dict[str, str] | None = None,
    strict_dedup: bool | None = None,
) -> pd.DataFrame:
    """Silver -> gold for one study; returns the cohort results (pandas, one
    row per cohort in study order) and writes the tables, CSVs and report.

    ``failed_quarters`` (quarter -> reason: what this run's ingest could not
    use) is listed in the report. ``strict_dedup`` is the de-duplication the
    study needs (default: the study file's ``strict_dedup``; ``run`` passes
    what it built with): a silver built otherwise is refused
    (:func:`check_strict_dedup`)."""
    log = sink(log, _LOGGER)
    settings = cfg.tables if cfg is not None else TableSettings()
    wh = Warehouse(warehouse, settings)
    wanted = strict_dedup if strict_dedup is not None else study.strict_dedup
    with writer_lock(warehouse, "study", settings.lock_timeout_seconds, wh.by_catalog):
        return _run_study(spark, wh, warehouse, study, output, log, failed_quarters, wanted)


def check_strict_dedup(cut: SilverCut, wanted: bool | None, study: Study, warehouse: str) -> None:
    """Refuse (one sentence) a silver whose last build de-duplicated otherwise
    than the study asks (``strict_dedup`` of its file): ``faerslake study``
    reads silver as built, so it cannot honour the setting by itself, and
    results under the wrong de-duplication would pass for the study's own.
    ``wanted`` None (the study leaves it to the settings) accepts any build."""
    if wanted is None or cut.strict_dedup is None or cut.strict_dedup == wanted:
        return
    if wanted:
        raise InputError(
            f"study {study.name} sets strict_dedup: true, but the last build under {warehouse} ran without the "
            f"strict de-duplication pass: run 'faerslake build --warehouse {warehouse} --strict-dedup' (or "
            "'faerslake run' with this study, which builds as it asks) first.")
    raise InputError(
        f"study {study.name} sets strict_dedup: false, but the last build under {warehouse} ran the strict "
        f"de-duplication pass: run 'faerslake build --warehouse {warehouse}' without --strict-dedup (and "
        "build.strict_dedup false), or 'faerslake run' with this study, first.")


def _run_study(spark: SparkSession, wh: Warehouse, warehouse: str, study: Study, output: str,
               log: Callable[[str], None], failed_quarters: dict[str, str] | None,
               strict_dedup: bool | None = None) -> pd.DataFrame:
    out_dir = Path(output) / study.name
    clean_stale_folders(out_dir)  # a run killed between its two renames: its previous folder back first

    cut = completed_build(spark, wh, warehouse)
    check_strict_dedup(cut, strict_dedup, study, warehouse)
    _warn_if_stale(spark, wh, cut, study, log)
    silver, versions, ingredients, sensitivity_note = read_study_silver(spark, wh, warehouse, cut, study, log)
    outcomes, outcomes_version = read_outcomes(spark, wh, cut)
    if outcomes is not None:
        versions["silver/outcomes"] = outcomes_version
    log(f"study {study.name}: {len(study.cohorts)} cohorts; exposure matched by {study.exposure.matcher}; "
        + versions_text(versions))
    inputs = (silver["reports"], silver["drugs"], silver["indications"], silver["reactions"])
    sensitivity: pd.DataFrame | None = None
    if ingredients is not None and study.exposure.compares_matchers:
        # every drug row flagged once under both matchers; the members of the
        # study's matcher and the counts of all three come from that one frame
        wide = matcher_members(spark, *inputs, study, ingredients[0], SENSITIVITY_MATCHERS).persist(
            StorageLevel.MEMORY_AND_DISK)
        try:
            members = write_members(spark, wh, study, members_under(wide, str(study.exposure.matcher)))
            sensitivity = matcher_sensitivity(wide, study)
        finally:
            wide.unpersist()
    else:
        members = write_members(spark, wh, study, cohort_members(
            spark, *inputs, study, ingredients[0] if ingredients is not None else None))
        if study.exposure.compares_matchers:
            sensitivity = sensitivity_frame()  # header only: sensitivity_note says why
    reports = in_period(silver["reports"], study)
    results, mh, quarters, upstream, trend, demographics = summarise(spark, wh, study, members, reports, cut)
    write_results(spark, wh, study, results, mh, log, sensitivity)
    if sensitivity is not None and len(sensitivity):
        log(f"study {study.name}: matcher sensitivity -> {wh.path('gold', study.name + '/matcher_sensitivity')}; "
            + _sensitivity_line(sensitivity))

    gold_versions = {f"gold/{name}": wh.version(spark, "gold", name) for name in gold_tables(study)}
    terms = term_matches(silver["drugs"], silver["reports"], study).persist(StorageLevel.MEMORY_AND_DISK)
    try:  # the persisted term matches are released however the rest ends
        ctx = ReportContext(
            study=study, warehouse=warehouse, quarters=quarters, quarters_text=format_ranges(quarters),
            failed_quarters=dict(failed_quarters or {}),
            dedup_summary=upstream.dedup_summary, audit_totals=upstream.audit_totals,
            source_manifest=upstream.source_manifest,
            table_versions={**versions, **upstream.versions, **gold_versions},
            mantel_haenszel=mh, matcher_sensitivity=sensitivity, matcher_sensitivity_note=sensitivity_note,
            faerslake_version=__version__,
            term_matches=top_terms(terms), cohort_indications=cohort_indications(silver["indications"], members, study),
            trend=trend, demographics=demographics,
            generated_at=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
            strict_dedup=cut.strict_dedup, software=ReportContext.software_versions(spark),
        )
        cases = case_listing(members, reports, silver["drugs"], silver["reactions"], study, outcomes)
        paths = write_study_folder(out_dir, results, mh, ctx, sensitivity, terms,
                                   lambda path: write_cases_csv(cases, path))
    finally:
        terms.unpersist()
    log(f"study {study.name}: report -> {paths.get('md')}")
    return results
