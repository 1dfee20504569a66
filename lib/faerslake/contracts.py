"""Every table's schema, in one place: what each layer writes and what the
next one may rely on.

Bronze row tables are the canonical columns of FDA's files, all STRING (see
:func:`bronze_schema`); silver and gold are typed. The build writes silver
through :func:`conform`, the study checks its silver inputs with
:func:`require`, and the tests build their inputs from these schemas (a test
copy that drifts from the contract fails).
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from faerslake.errors import InputError

_TYPES = {
    "string": T.StringType(), "long": T.LongType(), "int": T.IntegerType(), "double": T.DoubleType(),
    "boolean": T.BooleanType(), "date": T.DateType(), "timestamp": T.TimestampType(),
}


def schema(spec: str) -> T.StructType:
    """``"a long, b string"`` -> a StructType of nullable fields."""
    fields = []
    for part in spec.split(","):
        name, type_name = part.split()
        fields.append(T.StructField(name, _TYPES[type_name], True))
    return T.StructType(fields)


# --------------------------------------------------------------------------- #
# silver (WH/silver/<table>): one report per case and the rows of kept reports
# --------------------------------------------------------------------------- #
SILVER: dict[str, T.StructType] = {
    "reports": schema(
        "report_key long, caseid long, caseversion int, era string, quarter string, fda_dt string, "
        "event_dt string, event_date date, age_years double, sex string, reporter_country string, "
        "occp_cod string, rept_cod string, i_f_code string"),
    "drugs": schema(
        "report_key long, quarter string, drug_seq long, role_cod string, drugname string, prod_ai string, "
        "drugname_norm string, prod_ai_norm string"),
    "indications": schema("report_key long, quarter string, drug_seq long, indi_pt string, indi_pt_norm string"),
    "reactions": schema("report_key long, quarter string, pt string, pt_norm string"),
    "outcomes": schema("report_key long, quarter string, outc_cod string"),
    "therapies": schema(
        "report_key long, quarter string, drug_seq long, start_dt string, end_dt string, dur string, "
        "dur_cod string"),
    "report_sources": schema("report_key long, quarter string, rpsr_cod string"),
    "report_status": schema(
        "quarter string, report_key_text string, caseid_text string, report_key long, caseid long, "
        "source_file string, line_number long, status string, reason string"),
    "dedup_summary": schema(
        "scope string, reports_read long, removed_deleted long, removed_older_versions long, "
        "removed_strict_duplicates long, reports_kept long, rejected_invalid long"),
    # one row per (drug row, active ingredient) of silver/drugs (every drug row
    # has at least one row; method: prod_ai, learned_name, curated, unresolved)
    "drug_ingredients": schema(
        "report_key long, quarter string, drug_seq long, role_cod string, drugname_norm string, "
        "ingredient string, method string"),
    # the name -> ingredient dictionary the build learned from prod_ai rows
    # (ingredients '\\'-joined), and the resolution summary per method
    # (level all / era / quarter / unresolved_name; OUT/drug_identity.csv)
    "drug_dictionary": schema("name string, ingredients string, support long, agreement double"),
    "drug_identity": schema("level string, key string, method string, drug_rows long, share double"),
    "build_state": schema(
        "built_at timestamp, strict_dedup boolean, bronze_versions string, silver_versions string, "
        "seconds double, identity_settings string, faerslake_version string, mode string"),
}

# --------------------------------------------------------------------------- #
# gold (WH/gold/<study>/<table>)
# --------------------------------------------------------------------------- #
GOLD: dict[str, T.StructType] = {
    "cohort_members": schema("report_key long, quarter string, cohort string, exposed boolean, event boolean"),
    "cohort_results": schema(
        "study string, cohort string, exposed_reports long, exposed_events long, control_reports long, "
        "control_events long, ror double, ror_ci_lower double, ror_ci_upper double, haldane_corrected boolean, "
        "fisher_p double, fisher_q double, a long, b long, c long, d long, prr double, prr_chi2 double"),
    "mantel_haenszel": schema(
        "study string, cohort string, strata string, strata_used long, crude_ror double, mh_ror double, "
        "mh_ci_lower double, mh_ci_upper double"),
    # a study naming its exposure by tokens and by ingredients: the cohorts'
    # counts under each matcher (tokens, ingredients, either), per cohort in
    # study order; primary marks the study's own matcher (= cohort_results);
    # exposed_only: exposed under this matcher and not under the other single
    # one (null for either)
    "matcher_sensitivity": schema(
        "study string, cohort string, matcher string, primary boolean, exposed_reports long, "
        "exposed_events long, control_reports long, control_events long, exposed_only long, ror double, "
        "ror_ci_lower double, ror_ci_upper double, haldane_corrected boolean"),
}

# The FDA table files of a quarter, in the order users read them (DEMO first).
FDA_TABLES = ["demo", "drug", "indi", "reac", "outc", "rpsr", "ther"]


def columns(s: T.StructType) -> list[str]:
    return [f.name for f in s.fields]


def bronze_schema(table: str) -> T.StructType:
    """The schema of bronze table ``table`` (the row tables, deleted_cases,
    quarantine, ingest_audit, source_manifest)."""
    from faerslake.ingest.bronze import table_schema

    return table_schema(table)


def conform(df: DataFrame, s: T.StructType) -> DataFrame:
    """``df`` with exactly the contract's columns, in its order and of its types."""
    return df.select(*(F.col(f.name).cast(f.dataType).alias(f.name) for f in s.fields))


def require(df: DataFrame, s: T.StructType, what: str, needed: list[str] | None = None) -> None:
    """Refuse ``df`` (one sentence) if it lacks a contract column or has one of
    another type; ``needed`` restricts the check to those columns."""
    have = {f.name: f.dataType for f in df.schema.fields}
    wanted = [f for f in s.fields if needed is None or f.name in needed]
    missing = [f.name for f in wanted if f.name not in have]
    if missing:
        raise InputError(f"{what} lacks column(s) {', '.join(missing)}; "
                         "rebuild silver with this version ('faerslake build').")
    wrong = [f"{f.name} is {have[f.name].simpleString()}, not {f.dataType.simpleString()}"
             for f in wanted if have[f.name] != f.dataType]
    if wrong:
        raise InputError(f"{what} has column(s) of the wrong type ({'; '.join(wrong)}); "
                         "rebuild silver with this version ('faerslake build').")
