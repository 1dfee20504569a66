"""Gold layer: silver -> indication-matched cohorts -> per-cohort statistics.

Last stage of the pipeline (``ingest`` -> ``build`` -> ``study``). Implements
study-spec §3 (exposure, cohorts, exclusions, event) as Spark joins over the
silver tables, §4 through :mod:`faerslake.stats` and §5's output contract:

- ``WH/gold/<study>/cohort_members``: one row per (report, cohort) that is
  exposed or control after exclusions, with ``exposed`` and ``event``;
- ``WH/gold/<study>/cohort_results`` and ``OUT/<study>/cohort_results.csv``:
  one row per cohort in the study file's order;
- ``WH/gold/<study>/mantel_haenszel`` and its CSV: ROR pooled over strata of
  sex, age band and era (an extra, not part of spec §5);
- ``OUT/<study>/report.md`` / ``report.html`` / ``forest_plot.png`` through
  :mod:`faerslake.report`.

All matching is done with Spark column expressions (substring tests over the
short token lists, a broadcast table of cohort PTs); only the per-cohort 2x2
counts (and the few hundred MH strata counts) come to the driver. Silver is
read at a pinned Delta version, recorded in the report for time travel.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import reduce
from operator import or_
from pathlib import Path
from typing import Any

import pandas as pd

from faerslake import __version__, stats
from faerslake.config import DrugMatch, PipelineConfig, Study
from faerslake.errors import InputError
from faerslake.faults import checkpoint
from faerslake.logs import sink
from faerslake.outputs import atomic_write_csv
from faerslake.quarters import quarter_index, quarter_range
from faerslake.tables import Warehouse

KEYS = ["report_key", "quarter"]

# The silver contract (docs/architecture.md) columns this stage reads.
SILVER_COLUMNS: dict[str, list[str]] = {
    "reports": ["report_key", "quarter", "era", "sex", "age_years"],
    "drugs": ["report_key", "quarter", "drug_seq", "role_cod", "drugname_norm", "prod_ai_norm"],
    "indications": ["report_key", "quarter", "drug_seq", "indi_pt_norm"],
    "reactions": ["report_key", "quarter", "pt_norm"],
}

MEMBER_COLUMNS = ["report_key", "quarter", "cohort", "exposed", "event"]
RESULT_SCHEMA = (
    "study STRING, cohort STRING, exposed_reports BIGINT, exposed_events BIGINT, "
    "control_reports BIGINT, control_events BIGINT, ror DOUBLE, ror_ci_lower DOUBLE, "
    "ror_ci_upper DOUBLE, haldane_corrected BOOLEAN, fisher_p DOUBLE, fisher_q DOUBLE, "
    "a BIGINT, b BIGINT, c BIGINT, d BIGINT, prr DOUBLE, prr_chi2 DOUBLE"
)
MH_COLUMNS = ["study", "cohort", "strata", "strata_used", "crude_ror", "mh_ror",
              "mh_ci_lower", "mh_ci_upper"]
MH_SCHEMA = (
    "study STRING, cohort STRING, strata STRING, strata_used BIGINT, crude_ror DOUBLE, "
    "mh_ror DOUBLE, mh_ci_lower DOUBLE, mh_ci_upper DOUBLE"
)
MH_STRATA = "sex, age band, era"
# (upper bound exclusive, label); the last band is open
AGE_BANDS = [(18, "0-17"), (45, "18-44"), (65, "45-64"), (None, "65+")]


# --------------------------------------------------------------------------- #
# pure transforms (DataFrame -> DataFrame), testable without I/O
# --------------------------------------------------------------------------- #
def contains_any(cols: list, tokens: list[str]):
    """Column: any of ``cols`` contains any token as a substring (nulls never match).

    An OR of ``contains`` over the short literal lists: no UDF, no regex to
    escape, and Spark's codegen keeps it a tight loop.
    """
    from pyspark.sql import functions as F

    if not tokens:
        return F.lit(False)
    safe = [F.coalesce(c, F.lit("")) for c in cols]
    return reduce(or_, [c.contains(t) for c in safe for t in tokens])


def drug_matches(match: DrugMatch, drugname_norm="drugname_norm", prod_ai_norm="prod_ai_norm"):
    """Column: the drug row matches ``match`` (spec §1): normalised drugname or
    prod_ai contains a token, and neither contains an exclusion token."""
    from pyspark.sql import functions as F

    cols = [F.col(drugname_norm) if isinstance(drugname_norm, str) else drugname_norm,
            F.col(prod_ai_norm) if isinstance(prod_ai_norm, str) else prod_ai_norm]
    hit = contains_any(cols, match.tokens)
    if match.exclude_tokens:
        hit = hit & ~contains_any(cols, match.exclude_tokens)
    return hit


def _require(df, table: str, columns: list[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(
            f"silver table '{table}' lacks column(s) {', '.join(missing)}; "
            "rebuild silver with this version ('faerslake build')."
        )


def cohort_terms(spark, study: Study):
    """Small (cohort, pt) table of the study's cohort indication PTs."""
    rows = [(c.name, pt) for c in study.cohorts for pt in dict.fromkeys(c.indications)]
    return spark.createDataFrame(rows, "cohort STRING, pt STRING")


def cohort_members(spark, reports, drugs, indications, reactions, study: Study):
    """Spec §3: one row per (report, cohort) where the report is exposed or a
    control, after exclusions: ``report_key, quarter, cohort, exposed, event``.

    - a drug row's indications are the INDI rows of its report with the same
      ``drug_seq``;
    - exposed in k: an exposure drug row (of an allowed role code, when the
      study restricts roles) has an indication of k;
    - control in k: a drug row has an indication of k and no drug row of the
      report is an exposure drug row (with a role filter, "exposure drug" is
      the filtered definition: ``exposure_role_codes`` says which rows count
      as exposure, so a report whose BoNT row has another role can be a
      control — as the generator's truth model reads it);
    - excluded (when enabled): an INDI PT of the report is an outcome PT, or a
      drug row matches the exclusion tokens;
    - event: a REAC PT of the report is an outcome PT;
    - ``study.period`` keeps only reports of those quarters.
    """
    from pyspark.sql import functions as F

    for name, df in (("reports", reports), ("drugs", drugs),
                     ("indications", indications), ("reactions", reactions)):
        _require(df, name, [c for c in SILVER_COLUMNS[name] if name != "reports" or c in KEYS])

    period = quarter_range(study.period)
    if period is not None:
        reports, drugs, indications, reactions = (
            df.where(F.col("quarter").isin(period)) for df in (reports, drugs, indications, reactions)
        )
    outcome_pts = list(dict.fromkeys(study.outcome_pts))

    is_exposure = drug_matches(study.exposure)
    if study.exposure_role_codes is not None:
        is_exposure = is_exposure & F.coalesce(
            F.upper(F.trim(F.col("role_cod"))).isin(list(study.exposure_role_codes)), F.lit(False))
    excl = study.exclusions
    is_excluded_drug = (contains_any([F.col("drugname_norm"), F.col("prod_ai_norm")], excl.drug_tokens)
                        if excl.enabled else F.lit(False))

    flagged = drugs.select(
        *KEYS, "drug_seq",
        is_exposure.alias("is_exposure"),
        is_excluded_drug.alias("is_excluded_drug"),
    )

    indi_cohort = (
        indications.join(F.broadcast(cohort_terms(spark, study)),
                         F.col("indi_pt_norm") == F.col("pt"))
        .select(*KEYS, "drug_seq", "cohort")
    )
    # no distinct needed: duplicate INDI rows collapse in the groupBy below
    in_cohort = (
        flagged.join(indi_cohort, [*KEYS, "drug_seq"])
        .groupBy(*KEYS, "cohort")
        .agg(F.max(F.col("is_exposure")).alias("exposed"))
    )

    has_exposure = (flagged.where("is_exposure").select(*KEYS).distinct()
                    .withColumn("has_exposure", F.lit(True)))
    events = (reactions.where(F.col("pt_norm").isin(outcome_pts)).select(*KEYS).distinct()
              .withColumn("event", F.lit(True)))

    members = in_cohort.join(reports.select(*KEYS), KEYS, "left_semi")
    if excl.enabled:
        # anti joins need no distinct: one shuffle less per rule
        if excl.drug_tokens:
            members = members.join(flagged.where("is_excluded_drug").select(*KEYS), KEYS, "left_anti")
        if excl.outcome_indications:
            members = members.join(
                indications.where(F.col("indi_pt_norm").isin(outcome_pts)).select(*KEYS), KEYS, "left_anti")
    return (
        members.join(has_exposure, KEYS, "left")
        .where(F.col("exposed") | F.col("has_exposure").isNull())
        .join(events, KEYS, "left")
        .select(
            F.col("report_key"), F.col("quarter"), F.col("cohort"),
            F.col("exposed").cast("boolean").alias("exposed"),
            F.coalesce(F.col("event"), F.lit(False)).alias("event"),
        )
    )


def cohort_counts(members, study: Study) -> pd.DataFrame:
    """Per-cohort report and event counts, in study order, zeros included.

    Only 2 rows per cohort come to the driver."""
    from pyspark.sql import functions as F

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


def with_strata(members, reports):
    """Members with the MH strata: sex (M/F/U), age band, era."""
    from pyspark.sql import functions as F

    sex = F.upper(F.trim(F.col("sex")))
    age = F.col("age_years")
    band = F.when(age.isNull() | (age < 0), F.lit("unknown"))
    for upper, label in AGE_BANDS:
        band = band.otherwise(F.lit(label)) if upper is None else band.when(age < upper, F.lit(label))
    return members.join(
        reports.select(
            *KEYS,
            F.when(sex.isin("M", "F"), sex).otherwise(F.lit("U")).alias("sex_stratum"),
            band.alias("age_band"),
            F.coalesce(F.col("era"), F.lit("unknown")).alias("era_stratum"),
        ),
        KEYS,
        "left",
    )


def strata_counts(members, reports) -> list:
    """Reports and events per (cohort, sex, age band, era, exposed): a few
    hundred rows at most, collected."""
    from pyspark.sql import functions as F

    return (
        with_strata(members, reports)
        .groupBy("cohort", "sex_stratum", "age_band", "era_stratum", "exposed")
        .agg(F.count(F.lit(1)).alias("n"), F.sum(F.col("event").cast("long")).alias("events"))
        .collect()
    )


def mantel_haenszel_table(members, reports, study: Study, results: pd.DataFrame,
                          rows: list | None = None) -> pd.DataFrame:
    """Pooled ROR per cohort over sex × age band × era strata (tiny collect;
    ``rows``: :func:`strata_counts` already collected)."""
    if rows is None:
        rows = strata_counts(members, reports)
    cells: dict[str, dict[tuple, list[int]]] = {}
    for r in rows:
        key = (r["sex_stratum"], r["age_band"], r["era_stratum"])
        t = cells.setdefault(r["cohort"], {}).setdefault(key, [0, 0, 0, 0])
        n, e = int(r["n"]), int(r["events"] or 0)
        if r["exposed"]:
            t[0] += e
            t[1] += n - e
        else:
            t[2] += e
            t[3] += n - e
    crude = dict(zip(results["cohort"], results["ror"], strict=True))
    out = []
    for c in study.cohorts:
        pooled = stats.mantel_haenszel([tuple(v) for v in cells.get(c.name, {}).values()])
        out.append({"study": study.name, "cohort": c.name, "strata": MH_STRATA,
                    "strata_used": pooled.strata_used, "crude_ror": crude.get(c.name),
                    "mh_ror": pooled.ror, "mh_ci_lower": pooled.ci_lower, "mh_ci_upper": pooled.ci_upper})
    df = pd.DataFrame(out, columns=MH_COLUMNS)
    for col in ["crude_ror", "mh_ror", "mh_ci_lower", "mh_ci_upper"]:
        df[col] = df[col].astype("float64")
    return df


# --------------------------------------------------------------------------- #
# I/O helpers
# --------------------------------------------------------------------------- #
def _read_pinned(spark, wh: Warehouse, layer: str, name: str):
    """(DataFrame at the table's current version, that version) or (None, None)."""
    version = wh.version(spark, layer, name)
    if version is None:
        return None, None
    if wh.by_catalog:
        return spark.sql(f"SELECT * FROM {wh.name(layer, name)} VERSION AS OF {version}"), version
    return spark.read.format("delta").option("versionAsOf", version).load(wh.path(layer, name)), version


def _to_spark(spark, pdf: pd.DataFrame, schema: str):
    """pandas -> Spark with an explicit schema; NaN becomes null."""
    names = [f.split()[0] for f in schema.split(", ")]
    rows = []
    for rec in pdf[names].itertuples(index=False):
        row = []
        for v in rec:
            if v is None or (isinstance(v, float) and math.isnan(v)):
                row.append(None)
            elif hasattr(v, "item"):  # numpy scalar -> Python
                row.append(v.item())
            else:
                row.append(v)
        rows.append(tuple(row))
    return spark.createDataFrame(rows, schema)


def _quarter_ranges(quarters: list[str]) -> str:
    """``2004Q1–2004Q4, 2012Q4`` from a sorted list of quarters."""
    if not quarters:
        return "none"
    idx = sorted({quarter_index(q) for q in quarters})
    parts, start, prev = [], idx[0], idx[0]
    for i in idx[1:] + [None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        a = f"{start // 4}Q{start % 4 + 1}"
        b = f"{prev // 4}Q{prev % 4 + 1}"
        parts.append(a if start == prev else f"{a}–{b}")
        if i is not None:
            start = prev = i
    return ", ".join(parts)


def _upstream_context(spark, wh: Warehouse, log: Callable[[str], None]) -> dict[str, Any]:
    """Small upstream tables for the report; each may be missing."""
    from pyspark.sql import functions as F

    ctx: dict[str, Any] = {"dedup_summary": None, "audit_totals": None, "source_manifest": None}
    versions: dict[str, int] = {}
    dedup, v = _read_pinned(spark, wh, "silver", "dedup_summary")
    if dedup is not None:
        versions["silver/dedup_summary"] = v
        pdf = _small_pandas(dedup)  # one row per quarter + 'all'
        pdf["_o"] = pdf["scope"].map(lambda s: -1 if s == "all" else _safe_qi(s))
        ctx["dedup_summary"] = pdf.sort_values("_o").drop(columns="_o").reset_index(drop=True)
    audit, v = _read_pinned(spark, wh, "bronze", "ingest_audit")
    if audit is not None:
        versions["bronze/ingest_audit"] = v
        cols = [c for c in ["lines_read", "rows_loaded", "rows_repaired", "lines_repaired",
                            "rows_quarantined"] if c in audit.columns]
        row = audit.agg(F.count(F.lit(1)).alias("table_files"),
                        F.countDistinct("quarter").alias("quarters"),
                        *[F.sum(c).alias(c) for c in cols]).first()
        ctx["audit_totals"] = {k: (int(row[k]) if row[k] is not None else 0) for k in row.asDict()}
    manifest, v = _read_pinned(spark, wh, "bronze", "source_manifest")
    if manifest is not None:
        versions["bronze/source_manifest"] = v
        cols = [c for c in ["source", "quarter", "sha256", "size_bytes"] if c in manifest.columns]
        ctx["source_manifest"] = _small_pandas(manifest.select(*cols))  # one row per source file
    ctx["upstream_versions"] = versions
    return ctx


def _small_pandas(df) -> pd.DataFrame:
    """collect() of a table known to be tiny (no Arrow round trip needed)."""
    return pd.DataFrame([r.asDict() for r in df.collect()], columns=df.columns)


def _safe_qi(q: str) -> int:
    try:
        return quarter_index(q)
    except Exception:
        return 10**9


# --------------------------------------------------------------------------- #
# the study
# --------------------------------------------------------------------------- #
def gold_tables(study: Study) -> list[str]:
    """The gold tables a study writes, as ``<study>/<table>`` names."""
    return [f"{study.name}/{t}" for t in ("cohort_members", "cohort_results", "mantel_haenszel")]


def run_study(
    spark,
    warehouse: str,
    study: Study,
    output: str,
    cfg: PipelineConfig | None = None,
    log: Callable[[str], None] | None = None,
    failed_quarters: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Silver -> gold for one study; returns the cohort results (pandas, one
    row per cohort in study order) and writes the tables, CSVs and report.

    ``failed_quarters`` (quarter -> reason: what this run's ingest could not
    use) is listed in the report."""
    log = sink(log, __name__)
    from faerslake.config import TableSettings
    from faerslake.report import write_report

    wh = Warehouse(warehouse, cfg.tables if cfg is not None else TableSettings())
    out_dir = Path(output) / study.name

    silver: dict[str, Any] = {}
    versions: dict[str, int] = {}
    for name in SILVER_COLUMNS:
        df, v = _read_pinned(spark, wh, "silver", name)
        if df is None:
            where = wh.name("silver", name) if wh.by_catalog else wh.path("silver", name)
            raise InputError(f"silver table '{name}' not found at {where}; run 'faerslake ingest' and "
                             f"'faerslake build' first (or 'faerslake run').")
        _require(df, name, SILVER_COLUMNS[name])
        silver[name] = df
        versions[f"silver/{name}"] = v
    log(f"study {study.name}: {len(study.cohorts)} cohorts; silver versions "
        + ", ".join(f"{k.split('/')[1]}@{v}" for k, v in versions.items()))

    members = cohort_members(spark, silver["reports"], silver["drugs"], silver["indications"],
                             silver["reactions"], study)
    members_name = f"{study.name}/cohort_members"
    wh.write(members.select(*MEMBER_COLUMNS), "gold", members_name, mode="overwrite",
             overwriteSchema="true")
    # count from the written table: the joins run once
    checkpoint("study.after_members")  # crash tests: members written, results not
    members = wh.read(spark, "gold", members_name)
    reports = silver["reports"]
    period = quarter_range(study.period)
    if period is not None:
        reports = reports.where(reports["quarter"].isin(period))

    # the four small reads are independent Spark jobs: run them side by side
    with ThreadPoolExecutor(max_workers=4) as pool:
        f_counts = pool.submit(cohort_counts, members, study)
        f_strata = pool.submit(strata_counts, members, reports)
        f_quarters = pool.submit(lambda: [r[0] for r in reports.select("quarter").distinct().collect()])
        f_ctx = pool.submit(_upstream_context, spark, wh, log)
        results = stats.cohort_statistics(f_counts.result())
        mh = mantel_haenszel_table(members, reports, study, results, rows=f_strata.result())
        quarters = sorted(f_quarters.result(), key=_safe_qi)
        ctx = f_ctx.result()

    def write_results() -> None:
        wh.write(_to_spark(spark, results, RESULT_SCHEMA), "gold", f"{study.name}/cohort_results",
                 mode="overwrite", overwriteSchema="true")

    def write_mh() -> None:
        wh.write(_to_spark(spark, mh, MH_SCHEMA), "gold", f"{study.name}/mantel_haenszel",
                 mode="overwrite", overwriteSchema="true")

    with ThreadPoolExecutor(max_workers=2) as pool:
        for f in [pool.submit(write_results), pool.submit(write_mh)]:
            f.result()
    csv_path = atomic_write_csv(out_dir / "cohort_results.csv", results)
    log(f"study {study.name}: cohort_results -> {wh.path('gold', study.name + '/cohort_results')}, {csv_path}")
    atomic_write_csv(out_dir / "mantel_haenszel.csv", mh)

    versions.update(ctx.pop("upstream_versions"))
    for name in gold_tables(study):
        versions[f"gold/{name}"] = wh.version(spark, "gold", name)
    ctx.update({
        "study": study,
        "warehouse": warehouse,
        "quarters": quarters,
        "quarters_text": _quarter_ranges(quarters),
        "table_versions": versions,
        "mantel_haenszel": mh,
        "failed_quarters": dict(failed_quarters or {}),
        "faerslake_version": __version__,
        "generated_at": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
    })
    paths = write_report(out_dir, results, ctx)
    log(f"study {study.name}: report -> {paths.get('md')}")
    return results


# --------------------------------------------------------------------------- #
# console table
# --------------------------------------------------------------------------- #
def _fmt(v: Any, spec: str = ".3g") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, spec)


def format_cohort_table(df: pd.DataFrame) -> str:
    """The cohort results as a fixed-width text table."""
    head = ["cohort", "exposed", "events", "control", "events", "ROR", "95% CI", "fisher_p", "q"]
    lines = []
    for r in df.to_dict("records"):
        ci = ("-" if r["ror"] is None or (isinstance(r["ror"], float) and math.isnan(r["ror"]))
              else f"{_fmt(r['ror_ci_lower'])}–{_fmt(r['ror_ci_upper'])}")
        ror = _fmt(r["ror"]) + ("*" if r.get("haldane_corrected") else "")
        lines.append([str(r["cohort"]), str(r["exposed_reports"]), str(r["exposed_events"]),
                      str(r["control_reports"]), str(r["control_events"]), ror, ci,
                      _fmt(r["fisher_p"], ".2g"), _fmt(r["fisher_q"], ".2g")])
    widths = [max(len(head[i]), *(len(row[i]) for row in lines)) if lines else len(head[i])
              for i in range(len(head))]

    def fmt_row(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    study = df["study"].iloc[0] if len(df) else ""
    out = [f"study: {study}", fmt_row(head), "  ".join("-" * w for w in widths)]
    out += [fmt_row(row) for row in lines]
    if any(r.get("haldane_corrected") for r in df.to_dict("records")):
        out.append("* Haldane-corrected (0.5 added to every cell: a cell was 0)")
    return "\n".join(out)


def print_cohort_table(df: pd.DataFrame) -> None:
    """Print :func:`format_cohort_table` to stdout (``faerslake study`` / ``run``)."""
    print(format_cohort_table(df), flush=True)
