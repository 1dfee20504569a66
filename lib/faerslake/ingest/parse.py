"""Ingest step 3: headers -> layouts, and the Spark expressions that split lines.

Place in the pipeline: discover -> decode/stage -> **parse** -> bronze.

The header of each file (read on the driver while staging) becomes a
:class:`Layout`: how many ``$``-separated fields a row has, where each
canonical column sits, where the report key is. Files with the same layout
are read by one Spark text scan; the happy path is pure Spark SQL:

- a line *fits* when it has exactly the header's field count, or one more
  whose last field is empty (the legacy / 2012Q4 trailing ``$``), and its
  report key is a whole number;
- fitting lines are split with ``split(value, '\\$', -1)`` and projected;
- everything else (blank, too long, wrong field count, bad key) is set aside
  with a status; the few damaged lines are repaired on the driver (bounded:
  :func:`repair_lines`) and the rest quarantined with a reason.

Line numbers need no shuffle: each staged part is read as exactly one Spark
partition (``read_parts``), so ``monotonically_increasing_id()``'s low 33
bits are the line's index inside its part, and the part's name holds the
number of its first line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from faerslake.ingest.decode import PART_NAME_FIELDS
from faerslake.ingest.discover import DELETED

CANONICAL: dict[str, tuple[str, ...]] = {
    "demo": ("primaryid", "isr", "caseid", "caseversion", "i_f_code", "foll_seq", "image", "event_dt",
             "mfr_dt", "init_fda_dt", "fda_dt", "rept_cod", "auth_num", "mfr_num", "mfr_sndr", "lit_ref",
             "age", "age_cod", "age_grp", "sex", "e_sub", "wt", "wt_cod", "rept_dt", "to_mfr", "occp_cod",
             "reporter_country", "occr_country", "death_dt", "confid"),
    "drug": ("primaryid", "isr", "caseid", "drug_seq", "role_cod", "drugname", "prod_ai", "val_vbm", "route",
             "dose_vbm", "cum_dose_chr", "cum_dose_unit", "dechal", "rechal", "lot_num", "exp_dt", "nda_num",
             "dose_amt", "dose_unit", "dose_form", "dose_freq"),
    "reac": ("primaryid", "isr", "caseid", "pt", "drug_rec_act"),
    "outc": ("primaryid", "isr", "caseid", "outc_cod"),
    "rpsr": ("primaryid", "isr", "caseid", "rpsr_cod"),
    "ther": ("primaryid", "isr", "caseid", "dsg_drug_seq", "start_dt", "end_dt", "dur", "dur_cod"),
    "indi": ("primaryid", "isr", "caseid", "indi_drug_seq", "indi_pt"),
}

RENAMES = {"case": "caseid", "i_f_cod": "i_f_code", "gndr_cod": "sex", "lot_nbr": "lot_num",
           "outc_code": "outc_cod"}
TABLE_RENAMES = {"ther": {"drug_seq": "dsg_drug_seq"}, "indi": {"drug_seq": "indi_drug_seq"}}
KEY_COLUMNS = ("primaryid", "isr")

_R_COLUMN = re.compile(r"^v\d+$")
# a line is kept whole in the set-aside table only up to this length; longer
# damaged lines are quarantined (truncated), never repaired
REPAIR_MAX_CHARS = 20_000
RAW_LINE_CHARS = 4_000
_MID_MASK = (1 << 33) - 1


@dataclass(frozen=True)
class Layout:
    """What a header says about its rows."""

    table: str
    n: int  # fields of a row (a trailing empty one more is allowed)
    columns: tuple[tuple[str, int], ...]  # canonical name -> 0-based field position
    extras: tuple[tuple[str, int], ...]  # non-canonical header names -> position
    key_pos: int | None  # position of primaryid (FAERS) or isr (legacy)
    problem: str | None = None  # why no row of this file can be loaded

    @property
    def key_name(self) -> str | None:
        cols = dict(self.columns)
        return next((k for k in KEY_COLUMNS if k in cols), None)


def normalise_name(name: str) -> str:
    return name.replace("\ufeff", "").strip().lower()


def layout_from_header(table: str, header: str | None) -> tuple[Layout, list[str]]:
    """The layout of a table file's header, and warnings (unknown or repeated columns).

    A name the header repeats (``foo$FOO``, ``caseid$caseid``): the first column of
    that name is used (as the contract column, or in ``extra_fields``), each later
    one is kept in ``extra_fields`` as ``name_k``, the smallest ``k >= 2`` that no
    other column of the header is called, so the map never has two equal keys."""
    warnings: list[str] = []
    if table == DELETED:
        return _deleted_layout(header)
    if header is None:
        return Layout(table, 0, (), (), None, "the file has no header line"), warnings
    texts = _header_names(header)
    names = [normalise_name(x) for x in texts]
    renames = {**RENAMES, **TABLE_RENAMES.get(table, {})}
    canon = CANONICAL[table]
    columns: dict[str, int] = {}
    extras: list[tuple[str, int]] = []
    taken = set(names)  # a generated name never takes another column's own name
    seen: set[str] = set()
    repeats: list[str] = []
    for i, raw in enumerate(names):
        name = renames.get(raw, raw)
        if name in renames.values() and raw != name and name in names:
            name = raw  # both spellings present: keep the canonical one, the other is extra
        if name in canon and name not in columns:
            columns[name] = i
        else:
            base = extra = raw or f"_field{i + 1}"
            if base in seen:
                k = 2
                while f"{base}_{k}" in taken:
                    k += 1
                extra = f"{base}_{k}"
                repeats.append(f"{texts[i].strip()} as {extra}")
            taken.add(extra)
            extras.append((extra, i))
        seen.add(raw or f"_field{i + 1}")
    if extras:
        warnings.append(
            f"columns not in the bronze contract: {', '.join(n for n, _ in extras)} (kept in extra_fields)"
        )
    if repeats:
        warnings.append(f"the header repeats column names ({', '.join(repeats)}): the first of each name is used, "
                        f"the later ones are kept in extra_fields under those names")
    key = next((k for k in KEY_COLUMNS if k in columns), None)
    problem = None
    if key is None:
        problem = "the header has no report key column (primaryid or isr)"
    return (
        Layout(table, len(names), tuple(columns.items()), tuple(extras),
               columns[key] if key else None, problem),
        warnings,
    )


def _header_names(header: str) -> list[str]:
    """The header's column names as written, without the legacy trailing field."""
    texts = header.split("$")
    if len(texts) > 1 and normalise_name(texts[-1]) == "":
        texts.pop()  # header ending in '$' (2012Q4, some FAERS quarters)
    elif len(texts) > 1 and _R_COLUMN.match(normalise_name(texts[-1])):
        texts.pop()  # R's name for the field after the legacy trailing '$'
    return texts


def _deleted_layout(header: str | None) -> tuple[Layout, list[str]]:
    """A deleted-case list: one case number a line (with or without a header), or,
    when its header has several columns, the one named ``caseid`` (``case``); a
    list with several columns and none of them caseid cannot be applied: its
    lines are quarantined with that reason (never silently not applied)."""
    names = [normalise_name(x) for x in _header_names(header)] if header is not None else []
    if len(names) <= 1:
        return Layout(DELETED, 1, (("caseid", 0),), (), 0), []
    shown = ", ".join(names)
    pos = next((i for i, n in enumerate(names) if RENAMES.get(n, n) == "caseid"), None)
    if pos is None:
        problem = (f"the deleted-case list has {len(names)} columns ({shown}) and none is caseid, "
                   f"so none of its deletions can be applied")
        return Layout(DELETED, len(names), (), (), None, problem), []
    warning = (f"a deleted-case list with {len(names)} columns ({shown}): the case numbers are taken from its "
               f"caseid column; the others are not kept")
    return Layout(DELETED, len(names), (("caseid", pos),), (), pos), [warning]


# --------------------------------------------------------------------------- #
# reading staged parts
# --------------------------------------------------------------------------- #
_PART_CONF = {
    "spark.sql.files.maxPartitionBytes": str(128 * 1024 * 1024),
    # a file costs a whole partition: every part becomes its own partition,
    # which the line numbering below relies on
    "spark.sql.files.openCostInBytes": str(128 * 1024 * 1024),
}


@contextmanager
def one_partition_per_part(spark: SparkSession) -> Iterator[None]:
    """Run the enclosed Spark jobs with each staged part read as one partition."""
    keys = list(_PART_CONF) + ["spark.sql.files.maxPartitionNum"]
    old = {}
    for k in keys:
        try:
            old[k] = spark.conf.get(k)
        except Exception:  # noqa: BLE001 - unset key without default
            old[k] = None
    try:
        for k, v in _PART_CONF.items():
            spark.conf.set(k, v)
        if old.get("spark.sql.files.maxPartitionNum") is not None:
            spark.conf.unset("spark.sql.files.maxPartitionNum")
        yield
    finally:
        for k, v in old.items():
            if v is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, v)


def read_parts(spark: SparkSession, paths: list[str]) -> DataFrame:
    """``file_idx``, ``line_number``, ``value`` of every line of the staged parts, and
    ``misnumbered`` (true when a line's index in its partition is beyond its part's
    line count: Spark read two parts in one partition, see :func:`numbering_metrics`)."""
    raw = spark.read.option("lineSep", "\n").text(paths)
    df = raw.select(
        "value",
        F.col("_metadata.file_name").alias("_fn"),
        F.monotonically_increasing_id().bitwiseAND(F.lit(_MID_MASK)).alias("_idx"),
    )
    return df.select(
        _name_field("file_idx").cast("int").alias("file_idx"),
        (_name_field("first_line").cast("long") + F.col("_idx")).alias("line_number"),
        "value",
        (F.col("_idx") >= _name_field("lines").cast("long")).alias("misnumbered"),
    )


def _name_field(field: str) -> Column:
    """One number of a part's file name (``decode.part_name``), as text."""
    offset, digits = PART_NAME_FIELDS[field]
    return F.substring("_fn", offset + 1, digits)


def numbering_metrics() -> list[Column]:
    """Observed while lines are set aside: every line read, and those misnumbered."""
    return [F.count(F.lit(1)).alias("lines"),
            F.sum(F.col("misnumbered").cast("long")).alias("misnumbered")]


def _key_regex(key_pos: int) -> str:
    prefix = "" if key_pos == 0 else "(?:[^$]*\\$){" + str(key_pos) + "}"
    return "^" + prefix + "[0-9]+(?:\\$|$)"


def _dollars(v: Column) -> Column:
    # '$' is one byte in UTF-8 and never part of a multi-byte character, so the
    # byte-length difference counts it; cheaper than translate() or split()
    return F.octet_length(v) - F.octet_length(F.replace(v, F.lit("$"), F.lit("")))


def per_file(values: list) -> Column:
    """The value of each line's file: ``values[file_idx]`` (a literal array, one lookup per line)."""
    return F.element_at(F.array(*[F.lit(x) for x in values]), F.col("file_idx") + 1)


_ROWS, _DELETED_LIST, _NO_KEY = 0, 1, 2  # what a file's lines are checked for


def _kind(layout: Layout) -> int:
    if layout.table == DELETED and layout.n == 1:
        return _DELETED_LIST
    # a deleted list with several columns is checked as rows keyed by its caseid
    return _NO_KEY if layout.problem is not None else _ROWS


def _checks(kind: Column, n: Column, key_ok: Column, max_line_chars: int) -> tuple[Column, Column]:
    """(valid, status) of ``value`` for a file of ``kind`` whose rows have ``n`` fields."""
    v = F.col("value")
    blank = v.rlike("^\\s*$")
    # bytes >= characters: the character count is only needed for long lines
    too_long = (F.octet_length(v) > F.lit(max_line_chars)) & (F.length(v) > F.lit(max_line_chars))
    k = _dollars(v) + 1
    fits = (k == n) | ((k == n + 1) & v.endswith("$"))
    number = F.trim(v).rlike("^[0-9]+$")
    valid = (F.when(kind == _ROWS, ~too_long & fits & key_ok)
             .when(kind == _DELETED_LIST, ~too_long & number)
             .otherwise(F.lit(False)))
    status = (F.when(valid, F.lit(None).cast("string"))
              .when(blank, "blank").when(too_long, "too_long")
              .when(kind == _DELETED_LIST, "not_number")
              .when(kind == _NO_KEY, "no_key")
              .when(~fits, "fields").otherwise("key"))
    return valid, status


def file_checks(layouts: list[Layout], max_line_chars: int) -> tuple[Column, Column]:
    """(valid, status) columns of lines of many files; status is null when valid.

    ``layouts[i]`` is the layout of file ``file_idx == i``, looked up per line:
    one scan and one generated program serve every layout."""
    kinds = [_kind(lo) for lo in layouts]
    key_pos = [lo.key_pos if k == _ROWS else -1 for lo, k in zip(layouts, kinds, strict=True)]
    v = F.col("value")
    key_ok = F.lit(False)
    # the key sits at one of very few positions (0 in every FDA header): one
    # literal, precompiled expression per position, chosen by the file's own
    for pos in sorted({p for p in key_pos if p >= 0}, reverse=True):
        key_ok = F.when(per_file(key_pos) == pos, v.rlike(_key_regex(pos))).otherwise(key_ok)
    return _checks(per_file(kinds), per_file([lo.n for lo in layouts]), key_ok, max_line_chars)


def set_aside(df: DataFrame, layouts: list[Layout], max_line_chars: int) -> DataFrame:
    """The lines of ``df`` that do not fit their file's layout (``layouts[file_idx]``):
    file_idx, line_number, status, nfields, length, raw."""
    _, status = file_checks(layouts, max_line_chars)
    v = F.col("value")
    length = F.length(v)
    return (
        df.select("file_idx", "line_number", "value", status.alias("status"))
        .where(F.col("status").isNotNull())
        .select(
            "file_idx", "line_number", "status",
            (_dollars(v) + 1).alias("nfields"),
            length.alias("length"),
            F.when(length <= REPAIR_MAX_CHARS, v).otherwise(F.substring(v, 1, RAW_LINE_CHARS)).alias("raw"),
        )
    )


def quarantine_reason(layouts: list[Layout], max_line_chars: int) -> Column:
    """Why a set-aside line (``status``, ``nfields``, ``length``, ``raw``) of file
    ``layouts[file_idx]`` is quarantined, in words."""
    control = F.when(F.col("raw").rlike("[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f]"),
                     F.lit(" (the line holds control bytes: binary data?)")).otherwise(F.lit(""))
    return (
        F.when(F.col("status") == "too_long",
               F.concat(F.lit("line of "), F.col("length").cast("string"),
                        F.lit(f"+ characters, longer than ingest.max_line_chars={max_line_chars}")))
        .when(F.col("status") == "no_key", per_file([lo.problem or "" for lo in layouts]))
        .when(F.col("status") == "fields",
              F.concat(F.col("nfields").cast("string"), F.lit(" $-separated fields where the header has "),
                       per_file([lo.n for lo in layouts]).cast("string"), control))
        .when((F.col("status") == "key") & per_file([lo.table == DELETED for lo in layouts]),
              F.lit("not a case number"))
        .when(F.col("status") == "key", F.concat(F.lit("report key is not a whole number"), control))
        .when(F.col("status") == "not_number", F.lit("not a case number"))
        .otherwise(F.col("status"))
    )


def project_rows(df: DataFrame, layout: Layout) -> DataFrame:
    """Lines of ``df`` as file_idx, line_number, report_key, canonical..., extra_fields.

    ``df`` must hold only lines that fit ``layout`` (the set-aside ones removed):
    the checks are not evaluated a second time."""
    if layout.table == DELETED:
        value = F.col("value") if layout.n == 1 else F.split(F.col("value"), "\\$", -1).getItem(layout.key_pos)
        return df.select("file_idx", "line_number", F.trim(value).alias("caseid"))
    f = F.split(F.col("value"), "\\$", -1)
    fields = df.select("file_idx", "line_number", f.alias("_f"))
    cols = dict(layout.columns)
    null = F.lit(None).cast("string")
    out = [
        "file_idx", "line_number",
        F.col("_f").getItem(layout.key_pos).alias("report_key"),
        *[(F.col("_f").getItem(cols[c]) if c in cols else null).alias(c) for c in CANONICAL[layout.table]],
    ]
    if layout.extras:
        extra = F.map_from_arrays(
            F.array(*[F.lit(name) for name, _ in layout.extras]),
            F.array(*[F.col("_f").getItem(i) for _, i in layout.extras]),
        )
    else:
        extra = F.create_map().cast("map<string,string>")
    out.append(extra.alias("extra_fields"))
    return fields.select(*out)


# --------------------------------------------------------------------------- #
# repairs of the few damaged lines (driver side, bounded input)
# --------------------------------------------------------------------------- #
@dataclass
class Repaired:
    line_number: int  # physical line of the record's first line
    fields: list[str]  # exactly layout.n fields
    kind: str  # "glued" | "joined"
    lines: tuple[int, ...]  # physical lines consumed


_DIGITS = re.compile(r"^[0-9]+$")
MAX_JOIN_LINES = 20
# At most this many damaged lines of one file are brought to the driver for
# repair; a file with more (binary junk, a wrong delimiter) is quarantined as is.
MAX_REPAIR_LINES_PER_FILE = 10_000


def _fits(fields: list[str], n: int, key_pos: int) -> list[str] | None:
    if len(fields) == n + 1 and fields[-1] == "":
        fields = fields[:-1]
    if len(fields) != n or not _DIGITS.match(fields[key_pos]):
        return None
    return fields


def repair_lines(lines: list[tuple[int, str]], n: int, key_pos: int) -> list[Repaired]:
    """Repairs among one file's damaged lines (sorted by line number).

    - a line holding k whole records glued together (``k*n + 1`` fields, the
      last empty, every record's key a number) -> k records;
    - a record broken across consecutive lines (the parts are short, their
      join fits the header) -> one record. A continuation that starts with
      ``$`` (or a part ending in ``$``) is joined as is; otherwise the line
      break was inside a field and is joined with one space.
    Lines that no rule explains are not returned (they are quarantined).
    """
    out: list[Repaired] = []
    i = 0
    while i < len(lines):
        ln, text = lines[i]
        fields = text.split("$")
        k = len(fields)
        if k > n + 1 and fields[-1] == "" and (k - 1) % n == 0:
            m = (k - 1) // n
            recs = [fields[j * n:(j + 1) * n] for j in range(m)]
            if all(_DIGITS.match(r[key_pos]) for r in recs):
                out.extend(Repaired(ln, r, "glued", (ln,)) for r in recs)
                i += 1
                continue
        if k < n and key_pos < k and _DIGITS.match(fields[key_pos]):
            joined = text
            used = [ln]
            j = i + 1
            done = None
            while j < len(lines) and len(used) < MAX_JOIN_LINES and lines[j][0] == used[-1] + 1:
                nxt = lines[j][1]
                sep = "" if nxt.startswith("$") or joined.endswith("$") else " "
                joined = joined + sep + nxt
                used.append(lines[j][0])
                parts = joined.split("$")
                if len(parts) < n:
                    j += 1
                    continue
                done = _fits(parts, n, key_pos)
                break
            if done is not None:
                out.append(Repaired(ln, done, "joined", tuple(used)))
                i += len(used)
                continue
        i += 1
    return out


def repaired_row(layout: Layout, r: Repaired) -> list:
    """A repaired record as a bronze row: report_key, the canonical columns, extra_fields."""
    cols = dict(layout.columns)
    f = r.fields
    extra = {name: f[i] for name, i in layout.extras}
    return [f[layout.key_pos], *[f[cols[c]] if c in cols else None for c in CANONICAL[layout.table]], extra]
