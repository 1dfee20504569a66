"""The DuckDB yardstick: faerslake's whole job as one compact DuckDB script.

Place in the project: beside the pipeline, not in it. ``make bench`` runs this
on the same generated quarters as ``faerslake run`` to give (1) a speed
yardstick and (2) an independent correctness check: nothing here imports
faerslake; the study file is read with plain ``yaml`` and every rule of
``study-spec.md`` §2-§3 is written again in SQL.

The same three stages as the pipeline, on the same files:

* ingest: find the table files and deleted-case lists in FDA zips or quarter
  folders; stage them as UTF-8 (cp1252 with latin-1 fallback, in Python,
  because DuckDB's reader rejects cp1252 bytes); read each file's lines with
  DuckDB, split on ``$`` (no quoting), drop the legacy trailing ``$`` only when
  a row has one field more than its header, and load all seven tables with
  their canonical column names into a DuckDB database file ("bronze").
  The few damaged lines (a record broken over two lines, two records glued on
  one line, a stray ``$``) are fetched to Python, repaired or quarantined, and
  inserted back.
* build: drop deleted cases, keep the latest version of each case (spec §2),
  write the kept reports and their own quarter's child rows ("silver").
* study: exposure / control / exclusion / event flags and the a, b, c, d
  counts of every cohort (spec §3).

Run it alone: ``python bench/duckdb_reference.py --source DIR [--json out.json]``.
"""

from __future__ import annotations

import argparse
import codecs
import json
import re
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import yaml

REPO = Path(__file__).resolve().parents[1]
DEFAULT_STUDY = REPO / "conf" / "studies" / "botox_depression.yaml"
TABLES = ("demo", "drug", "reac", "outc", "rpsr", "ther", "indi")
TABLE_FILE = re.compile(r"^(demo|drug|reac|outc|rpsr|ther|indi)(\d\d)q([1-4])(?:_new)?\.txt$", re.I)
CONTAINER = re.compile(r"(?:aers|faers)_ascii_(\d{4})q([1-4])", re.I)
# Canonical columns per table (docs/architecture.md, bronze), after renaming era variants.
COLUMNS = {
    "demo": ["primaryid", "isr", "caseid", "caseversion", "i_f_code", "foll_seq", "image", "event_dt",
             "mfr_dt", "init_fda_dt", "fda_dt", "rept_cod", "auth_num", "mfr_num", "mfr_sndr", "lit_ref",
             "age", "age_cod", "age_grp", "sex", "e_sub", "wt", "wt_cod", "rept_dt", "to_mfr", "occp_cod",
             "reporter_country", "occr_country", "death_dt", "confid"],
    "drug": ["primaryid", "isr", "caseid", "drug_seq", "role_cod", "drugname", "prod_ai", "val_vbm", "route",
             "dose_vbm", "cum_dose_chr", "cum_dose_unit", "dechal", "rechal", "lot_num", "exp_dt", "nda_num",
             "dose_amt", "dose_unit", "dose_form", "dose_freq"],
    "reac": ["primaryid", "isr", "caseid", "pt", "drug_rec_act"],
    "outc": ["primaryid", "isr", "caseid", "outc_cod"],
    "rpsr": ["primaryid", "isr", "caseid", "rpsr_cod"],
    "ther": ["primaryid", "isr", "caseid", "dsg_drug_seq", "start_dt", "end_dt", "dur", "dur_cod"],
    "indi": ["primaryid", "isr", "caseid", "indi_drug_seq", "indi_pt"],
}
RENAME = {"case": "caseid", "i_f_cod": "i_f_code", "gndr_cod": "sex", "lot_nbr": "lot_num",
          "outc_code": "outc_cod"}
# A delimiter that never occurs, so DuckDB hands over whole lines.
NO_DELIM = "chr(31)||chr(30)||chr(29)"
CHUNK = 1 << 24


# --------------------------------------------------------------------------- #
# Sources
# --------------------------------------------------------------------------- #
@dataclass
class TableFile:
    quarter: str
    table: str
    source_file: str          # as the truth names it: container/ascii/DEMO12Q2.TXT or zip!/...
    path: Path | None = None  # a readable UTF-8 file (staged, or the original when pure ASCII)


@dataclass
class Sources:
    tables: list[TableFile] = field(default_factory=list)
    deleted: list[Path] = field(default_factory=list)


def _quarter_of(name: str) -> tuple[str, str] | None:
    m = TABLE_FILE.match(name)
    if not m:
        return None
    return m.group(1).lower(), f"20{m.group(2)}Q{m.group(3)}"


def _is_deleted(rel: str) -> bool:
    parts = rel.split("/")
    return len(parts) >= 2 and parts[-2].lower() == "deleted" and parts[-1].lower().endswith(".txt")


def _latin1_fallback(err: UnicodeDecodeError) -> tuple[str, int]:
    return err.object[err.start:err.end].decode("latin-1"), err.end


codecs.register_error("faers_latin1", _latin1_fallback)


def _stage(read: Callable[[int], bytes], dest: Path) -> None:
    """Copy a byte stream to ``dest`` as UTF-8 (cp1252, latin-1 where cp1252 has no character).

    Both are single-byte codings, so chunks may end anywhere.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as out:
        while chunk := read(CHUNK):
            out.write(chunk if chunk.isascii() else chunk.decode("cp1252", "faers_latin1").encode("utf-8"))


def _ascii_only(path: Path) -> bool:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            if not chunk.isascii():
                return False
    return True


def discover_and_stage(source: Path, staging: Path) -> Sources:
    """Every table file and deleted list under ``source`` (zips and quarter folders)."""
    out = Sources()
    seen: dict[tuple[str, str], str] = {}

    def add(table: str, quarter: str, name: str, path: Path) -> None:
        if (quarter, table) in seen:
            raise SystemExit(f"{quarter} {table} is in {seen[(quarter, table)]} and {name}: keep one copy")
        seen[(quarter, table)] = name
        out.tables.append(TableFile(quarter, table, name, path))

    for entry in sorted(source.iterdir()):
        if entry.name.startswith((".", "_")):
            continue
        if entry.is_file() and entry.suffix.lower() == ".zip":
            with zipfile.ZipFile(entry) as zf:
                for info in zf.infolist():
                    if info.is_dir():
                        continue
                    rel = info.filename
                    base = rel.rsplit("/", 1)[-1]
                    tq = _quarter_of(base)
                    if tq is None and not _is_deleted(rel):
                        continue
                    dest = staging / entry.stem / rel
                    with zf.open(info) as f:
                        _stage(f.read, dest)
                    if tq:
                        add(tq[0], tq[1], f"{entry.name}!/{rel}", dest)
                    else:
                        out.deleted.append(dest)
        elif entry.is_dir():
            for p in sorted(entry.rglob("*")):
                if not p.is_file():
                    continue
                rel = p.relative_to(entry).as_posix()
                tq = _quarter_of(p.name)
                if tq is None and not _is_deleted(rel):
                    continue
                path = p
                if not _ascii_only(p):
                    path = staging / entry.name / rel
                    with open(p, "rb") as f:
                        _stage(f.read, path)
                if tq:
                    add(tq[0], tq[1], f"{entry.name}/{rel}", path)
                else:
                    out.deleted.append(path)
    if not out.tables:
        raise SystemExit(f"no FAERS table files under {source}")
    return out


# --------------------------------------------------------------------------- #
# Parsing one table file
# --------------------------------------------------------------------------- #
def header_columns(path: Path, table: str, era: str) -> list[str]:
    """Canonical column names of the header (BOM and blanks stripped, era variants renamed)."""
    with open(path, encoding="utf-8") as f:
        line = f.readline()
    line = line.lstrip("\ufeff").removeprefix("\u00ef\u00bb\u00bf").rstrip("\r\n")
    cols = [c.strip().lower() for c in line.split("$")]
    if cols and cols[-1] == "":
        cols = cols[:-1]
    cols = [RENAME.get(c, c) for c in cols]
    if era == "legacy" and table in ("ther", "indi"):
        cols = [("dsg_drug_seq" if table == "ther" else "indi_drug_seq") if c == "drug_seq" else c for c in cols]
    return cols


def _fit(fields: list[str], width: int) -> list[str] | None:
    """The row's fields, or None when they do not fit the header."""
    if len(fields) == width:
        return fields
    if len(fields) == width + 1 and fields[-1] == "":
        return fields[:-1]
    return None


def repair(odd: list[tuple[int, str]], width: int) -> tuple[list[tuple[int, list[str]]], dict[str, int]]:
    """Rows recovered from the lines that do not fit the header, and what happened to them.

    A line with too few fields followed by a line starting with ``$`` is one
    record broken in two; a line of exactly two records (each with its
    trailing ``$``) is split; anything else is quarantined.
    """
    rows: list[tuple[int, list[str]]] = []
    c = dict(rows_repaired=0, lines_repaired=0, rows_quarantined=0)
    i = 0
    while i < len(odd):
        ln, s = odd[i]
        f = s.split("$")
        if len(f) < width and i + 1 < len(odd) and odd[i + 1][0] == ln + 1 and odd[i + 1][1].startswith("$"):
            joined = _fit((s + odd[i + 1][1]).split("$"), width)
            if joined is not None:
                rows.append((ln, joined))
                c["rows_repaired"] += 1
                c["lines_repaired"] += 2
                i += 2
                continue
        if len(f) in (2 * width, 2 * width + 1) and (len(f) == 2 * width or f[-1] == ""):
            rows += [(ln, f[:width]), (ln, f[width:2 * width])]
            c["rows_repaired"] += 2
            c["lines_repaired"] += 1
        else:
            c["rows_quarantined"] += 1
        i += 1
    return rows, c


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def era_of(quarter: str) -> str:
    return "legacy" if (int(quarter[:4]), int(quarter[5])) < (2012, 4) else "faers"


def load_file(con: duckdb.DuckDBPyConnection, tf: TableFile) -> dict:
    """Load one table file into ``bronze_<table>``; return its audit row."""
    era = era_of(tf.quarter)
    cols = header_columns(tf.path, tf.table, era)
    width = len(cols)
    key = "isr" if era == "legacy" else "primaryid"
    if key not in cols:
        raise SystemExit(f"{tf.source_file}: header has no {key} column")
    # Physical line numbers: DuckDB keeps blank lines as NULL rows and reads a
    # single file in order, so row_number() over () is the line number.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE lines AS
        SELECT row_number() OVER () AS ln, line,
               length(line) - length(replace(line, '$', '')) + 1 AS nf
        FROM read_csv({_sql_str(str(tf.path))}, columns={{'line': 'VARCHAR'}}, header=false,
                      delim={NO_DELIM}, quote='', escape='', auto_detect=false, strict_mode=false)
    """)
    fits = f"(nf = {width} OR (nf = {width + 1} AND suffix(line, '$')))"
    meta = (f"{_sql_str(tf.quarter)} AS quarter, {_sql_str(era)} AS era, "
            f"{_sql_str(tf.source_file)} AS source_file")
    proj = ", ".join(f"f[{i + 1}] AS {c}" for i, c in enumerate(cols) if c in COLUMNS[tf.table])
    con.execute(f"""
        INSERT INTO bronze_{tf.table} BY NAME
        SELECT {meta}, ln AS line_number, f[{cols.index(key) + 1}] AS report_key, {proj}
        FROM (SELECT ln, string_split(line, '$') AS f FROM lines
              WHERE ln > 1 AND line IS NOT NULL AND line <> '' AND {fits})
    """)
    lines_read, good = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE {fits}) FROM lines "
        "WHERE ln > 1 AND line IS NOT NULL AND line <> ''").fetchone()
    odd = con.execute(
        f"SELECT ln, line FROM lines WHERE ln > 1 AND line IS NOT NULL AND line <> '' AND NOT {fits} "
        "ORDER BY ln").fetchall()
    rows, counts = repair(odd, width)
    if rows:
        keep = [(i, c) for i, c in enumerate(cols) if c in COLUMNS[tf.table]]
        names = ["quarter", "era", "source_file", "line_number", "report_key"] + [c for _, c in keep]
        con.executemany(
            f"INSERT INTO bronze_{tf.table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
            [[tf.quarter, era, tf.source_file, ln, f[cols.index(key)]] + [f[i] for i, _ in keep]
             for ln, f in rows])
    return dict(quarter=tf.quarter, table=tf.table, file=tf.source_file, lines_read=lines_read,
                rows_loaded=good + len(rows), **counts)


# --------------------------------------------------------------------------- #
# The study file (read independently of faerslake.config)
# --------------------------------------------------------------------------- #
@dataclass
class StudyRules:
    name: str
    exposure: list[str]
    exposure_exclude: list[str]
    cohorts: dict[str, list[str]]
    outcomes: list[str]
    exclusions: bool
    outcome_indications: bool
    exclusion_drugs: list[str]
    roles: list[str] | None
    period: str | None


def read_study(path: Path) -> StudyRules:
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    ex = doc.get("exclusions") or {}
    up = lambda xs: [str(x).strip().upper() for x in xs or []]  # noqa: E731
    return StudyRules(
        name=Path(path).stem,
        exposure=up(doc["exposure"]["tokens"]),
        exposure_exclude=up(doc["exposure"].get("exclude_tokens")),
        cohorts={k: up(v) for k, v in doc["cohorts"].items()},
        outcomes=up(doc["outcome_pts"]),
        exclusions=bool(ex.get("enabled", True)),
        outcome_indications=bool(ex.get("outcome_indications", True)),
        exclusion_drugs=up(ex.get("drug_tokens")),
        roles=up(doc["exposure_role_codes"]) if doc.get("exposure_role_codes") else None,
        period=doc.get("period"),
    )


def _any_token(col: str, tokens: list[str]) -> str:
    if not tokens:
        return "false"
    return "(" + " OR ".join(f"contains({col}, {_sql_str(t)})" for t in tokens) + ")"


def _in_list(col: str, items: list[str]) -> str:
    return f"{col} IN ({', '.join(_sql_str(x) for x in items)})" if items else "false"


# --------------------------------------------------------------------------- #
# The three stages
# --------------------------------------------------------------------------- #
QIDX = "(CAST(substr(quarter, 1, 4) AS INT) * 4 + CAST(substr(quarter, 6, 1) AS INT))"
NORM_DRUG = "regexp_replace(trim(regexp_replace(upper(coalesce({c}, '')), '\\s+', ' ', 'g')), '[. ]+$', '')"


def ingest(con: duckdb.DuckDBPyConnection, sources: Sources) -> list[dict]:
    meta = "quarter VARCHAR, era VARCHAR, source_file VARCHAR, line_number BIGINT, report_key VARCHAR"
    for t in TABLES:
        con.execute(f"CREATE OR REPLACE TABLE bronze_{t} ({meta}, "
                    + ", ".join(f"{c} VARCHAR" for c in COLUMNS[t]) + ")")
    audit = [load_file(con, tf) for tf in sources.tables]
    con.execute("DROP TABLE IF EXISTS lines")
    files = "[" + ", ".join(_sql_str(str(p)) for p in sources.deleted) + "]"
    if sources.deleted:
        con.execute(f"""
            CREATE OR REPLACE TABLE bronze_deleted_cases AS
            SELECT trim(line) AS caseid FROM read_csv({files}, columns={{'line': 'VARCHAR'}}, header=false,
                   delim={NO_DELIM}, quote='', escape='', auto_detect=false, strict_mode=false)
            WHERE line IS NOT NULL AND trim(line) <> ''""")
    else:
        con.execute("CREATE OR REPLACE TABLE bronze_deleted_cases (caseid VARCHAR)")
    return audit


def build(con: duckdb.DuckDBPyConnection) -> dict:
    """Spec §2: drop deleted cases, keep one report per case; kept reports' child rows."""
    con.execute(f"""
        CREATE OR REPLACE TABLE silver_reports AS
        WITH demo AS (
            SELECT CAST(report_key AS BIGINT) AS report_key, CAST(caseid AS BIGINT) AS caseid,
                   TRY_CAST(nullif(trim(caseversion), '') AS INT) AS caseversion, era, quarter, {QIDX} AS qidx,
                   coalesce(fda_dt, '') AS fda_dt, event_dt, age, sex, reporter_country
            FROM bronze_demo),
        deleted AS (SELECT DISTINCT CAST(caseid AS BIGINT) AS caseid FROM bronze_deleted_cases),
        ranked AS (
            SELECT d.*, (x.caseid IS NOT NULL) AS is_deleted,
                   row_number() OVER (PARTITION BY d.caseid ORDER BY (d.era = 'faers') DESC,
                       coalesce(d.caseversion, -1) DESC, d.fda_dt DESC, d.qidx DESC, d.report_key DESC) AS rn
            FROM demo d LEFT JOIN deleted x ON d.caseid = x.caseid)
        SELECT *, CASE WHEN is_deleted THEN 'deleted' WHEN rn = 1 THEN 'kept' ELSE 'older' END AS fate
        FROM ranked""")
    summary = {}
    for scope, n_read, n_del, n_old, n_kept in con.execute("""
            SELECT coalesce(quarter, 'all'), count(*), count(*) FILTER (WHERE fate = 'deleted'),
                   count(*) FILTER (WHERE fate = 'older'), count(*) FILTER (WHERE fate = 'kept')
            FROM silver_reports GROUP BY ROLLUP (quarter)""").fetchall():
        summary[scope] = dict(reports_read=n_read, removed_deleted=n_del,
                              removed_older_versions=n_old, reports_kept=n_kept)
    con.execute("DELETE FROM silver_reports WHERE fate <> 'kept'")
    kept = "JOIN silver_reports k ON k.report_key = CAST(b.report_key AS BIGINT) AND k.quarter = b.quarter"
    con.execute(f"""CREATE OR REPLACE TABLE silver_drugs AS
        SELECT k.report_key, b.quarter, TRY_CAST(b.drug_seq AS BIGINT) AS drug_seq, b.role_cod,
               b.drugname, b.prod_ai, {NORM_DRUG.format(c='b.drugname')} AS drugname_norm,
               {NORM_DRUG.format(c='b.prod_ai')} AS prod_ai_norm
        FROM bronze_drug b {kept}""")
    con.execute(f"""CREATE OR REPLACE TABLE silver_indications AS
        SELECT k.report_key, b.quarter, TRY_CAST(b.indi_drug_seq AS BIGINT) AS drug_seq, b.indi_pt,
               upper(trim(b.indi_pt)) AS indi_pt_norm
        FROM bronze_indi b {kept}""")
    con.execute(f"""CREATE OR REPLACE TABLE silver_reactions AS
        SELECT k.report_key, b.quarter, b.pt, upper(trim(b.pt)) AS pt_norm FROM bronze_reac b {kept}""")
    con.execute(f"""CREATE OR REPLACE TABLE silver_outcomes AS
        SELECT k.report_key, b.quarter, b.outc_cod FROM bronze_outc b {kept}""")
    con.execute(f"""CREATE OR REPLACE TABLE silver_therapies AS
        SELECT k.report_key, b.quarter, TRY_CAST(b.dsg_drug_seq AS BIGINT) AS drug_seq, b.start_dt, b.end_dt,
               b.dur, b.dur_cod FROM bronze_ther b {kept}""")
    con.execute(f"""CREATE OR REPLACE TABLE silver_report_sources AS
        SELECT k.report_key, b.quarter, b.rpsr_cod FROM bronze_rpsr b {kept}""")
    return summary


def study(con: duckdb.DuckDBPyConnection, rules: StudyRules) -> dict[str, dict[str, int]]:
    """Spec §3: the a, b, c, d counts of every cohort."""
    dn, ai = "drugname_norm", "prod_ai_norm"
    expo = (f"({_any_token(dn, rules.exposure)} OR {_any_token(ai, rules.exposure)}) AND NOT "
            f"({_any_token(dn, rules.exposure_exclude)} OR {_any_token(ai, rules.exposure_exclude)})")
    if rules.roles:
        expo = f"({expo}) AND {_in_list('upper(trim(role_cod))', rules.roles)}"
    antidep = f"({_any_token(dn, rules.exclusion_drugs)} OR {_any_token(ai, rules.exclusion_drugs)})"
    reports = "silver_reports"
    if rules.period:
        lo, hi = (q.strip().upper() for q in rules.period.split(":"))
        reports = (f"(SELECT * FROM silver_reports WHERE qidx BETWEEN "
                   f"{int(lo[:4]) * 4 + int(lo[5])} AND {int(hi[:4]) * 4 + int(hi[5])})")
    pairs = ", ".join(f"({_sql_str(c)}, {_sql_str(pt)})" for c, pts in rules.cohorts.items() for pt in pts)
    excl_indi = (f"bool_or({_in_list('indi_pt_norm', rules.outcomes)})"
                 if rules.exclusions and rules.outcome_indications else "false")
    excl_drug = "bool_or(antidep)" if rules.exclusions else "false"
    rows = con.execute(f"""
        WITH cohort_pts(cohort, pt) AS (VALUES {pairs}),
        r AS (SELECT report_key, quarter FROM {reports}),
        d AS (SELECT report_key, quarter, drug_seq, {expo} AS expo, {antidep} AS antidep
              FROM silver_drugs JOIN r USING (report_key, quarter)),
        i AS (SELECT report_key, quarter, drug_seq, indi_pt_norm
              FROM silver_indications JOIN r USING (report_key, quarter)),
        drug_flags AS (SELECT report_key, quarter, bool_or(expo) AS has_expo, {excl_drug} AS ex_drug
                       FROM d GROUP BY ALL),
        indi_flags AS (SELECT report_key, quarter, {excl_indi} AS ex_indi FROM i GROUP BY ALL),
        events AS (SELECT DISTINCT report_key, quarter FROM silver_reactions JOIN r USING (report_key, quarter)
                   WHERE {_in_list('pt_norm', rules.outcomes)}),
        membership AS (
            SELECT DISTINCT d.report_key, d.quarter, c.cohort, d.expo
            FROM d JOIN i USING (report_key, quarter, drug_seq) JOIN cohort_pts c ON c.pt = i.indi_pt_norm),
        members AS (
            SELECT m.report_key, m.quarter, m.cohort, bool_or(m.expo) AS exposed, f.has_expo
            FROM membership m JOIN drug_flags f USING (report_key, quarter)
            LEFT JOIN indi_flags x USING (report_key, quarter)
            WHERE NOT f.ex_drug AND NOT coalesce(x.ex_indi, false)
            GROUP BY m.report_key, m.quarter, m.cohort, f.has_expo)
        SELECT m.cohort,
               count(*) FILTER (WHERE exposed) AS exposed_reports,
               count(*) FILTER (WHERE exposed AND e.report_key IS NOT NULL) AS exposed_events,
               count(*) FILTER (WHERE NOT has_expo) AS control_reports,
               count(*) FILTER (WHERE NOT has_expo AND e.report_key IS NOT NULL) AS control_events
        FROM members m LEFT JOIN events e USING (report_key, quarter)
        GROUP BY m.cohort""").fetchall()
    got = {c: dict(exposed_reports=a, exposed_events=b, control_reports=c_, control_events=d_)
           for c, a, b, c_, d_ in rows}
    zero = dict(exposed_reports=0, exposed_events=0, control_reports=0, control_events=0)
    return {c: got.get(c, dict(zero)) for c in rules.cohorts}


@dataclass
class ReferenceResult:
    cohorts: dict[str, dict[str, int]]
    dedup: dict[str, dict[str, int]]
    audit: list[dict]
    seconds: dict[str, float]
    rows_loaded: int
    threads: int


def run_reference(source: Path, work: Path | None = None, study_path: Path = DEFAULT_STUDY,
                  threads: int | None = None, log: Callable[[str], None] = print) -> ReferenceResult:
    """Ingest, build and study ``source`` with DuckDB; timings per stage in ``seconds``."""
    own_work = work is None
    work = Path(tempfile.mkdtemp(prefix="faers-duckdb-")) if own_work else Path(work)
    staging = work / "staging"
    db = work / "reference.duckdb"
    shutil.rmtree(staging, ignore_errors=True)
    for p in (db, db.with_name(db.name + ".wal")):
        p.unlink(missing_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    rules = read_study(study_path)
    secs: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        con = duckdb.connect(str(db))
        con.execute("SET enable_progress_bar = false")
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        n_threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
        sources = discover_and_stage(Path(source), staging)
        secs["stage_files"] = time.perf_counter() - t0
        audit = ingest(con, sources)
        secs["ingest"] = time.perf_counter() - t0
        rows = sum(a["rows_loaded"] for a in audit)
        log(f"[duckdb] ingest done: {len(audit)} table files, {rows} rows ({secs['ingest']:.1f}s)")
        t1 = time.perf_counter()
        dedup = build(con)
        secs["build"] = time.perf_counter() - t1
        log(f"[duckdb] build done: {dedup['all']['reports_kept']} reports kept ({secs['build']:.1f}s)")
        t2 = time.perf_counter()
        cohorts = study(con, rules)
        con.close()
        secs["study"] = time.perf_counter() - t2
        secs["total"] = time.perf_counter() - t0
        log(f"[duckdb] study done ({secs['study']:.1f}s); total {secs['total']:.1f}s")
    finally:
        if own_work:
            shutil.rmtree(work, ignore_errors=True)
        else:
            shutil.rmtree(staging, ignore_errors=True)
    return ReferenceResult(cohorts, dedup, audit, {k: round(v, 3) for k, v in secs.items()}, rows, int(n_threads))


def compare_truth(result: ReferenceResult, truth: dict) -> list[str]:
    """Differences from the generator's ``_truth.json`` (empty when all agree)."""
    diffs = []
    for c, want in truth["cohorts"].items():
        if result.cohorts.get(c) != want:
            diffs.append(f"cohort {c}: duckdb {result.cohorts.get(c)} != truth {want}")
    for scope, want in truth["dedup"].items():
        if result.dedup.get(scope) != want:
            diffs.append(f"dedup {scope}: duckdb {result.dedup.get(scope)} != truth {want}")
    got_audit = {(a["quarter"], a["table"]): a for a in result.audit}
    for want in truth["ingest"]:
        got = got_audit.get((want["quarter"], want["table"]))
        keys = ("file", "lines_read", "rows_loaded", "rows_repaired", "lines_repaired", "rows_quarantined")
        if got is None or any(got[k] != want[k] for k in keys):
            diffs.append(f"ingest {want['quarter']} {want['table']}: duckdb {got} != truth {want}")
    return diffs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", required=True, type=Path, help="folder of FDA zips and/or quarter folders")
    p.add_argument("--work", type=Path, default=None, help="folder for the DuckDB file (default: a temp dir)")
    p.add_argument("--study", type=Path, default=DEFAULT_STUDY)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, default=None, help="write the result here")
    p.add_argument("--check-truth", action="store_true", help="compare with SOURCE/_truth.json; exit 1 on a mismatch")
    args = p.parse_args(argv)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    res = run_reference(args.source, args.work, args.study, args.threads, log=log)
    doc = {"cohorts": res.cohorts, "dedup": res.dedup, "seconds": res.seconds, "rows_loaded": res.rows_loaded,
           "threads": res.threads, "audit": res.audit}
    rc = 0
    if args.check_truth:
        diffs = compare_truth(res, json.loads((args.source / "_truth.json").read_text()))
        doc["truth_diffs"] = diffs
        for d in diffs:
            log(d)
        log("[duckdb] matches _truth.json" if not diffs else f"[duckdb] {len(diffs)} differences from _truth.json")
        rc = 1 if diffs else 0
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
    else:
        print(json.dumps({k: doc[k] for k in ("cohorts", "seconds", "rows_loaded")}, indent=1))
    return rc


if __name__ == "__main__":
    sys.exit(main())
