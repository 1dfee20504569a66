"""Column helpers that turn FDA's text into comparable values (study-spec §1).

Used by ``faerslake.silver`` when bronze (all STRING, as FDA wrote it) becomes
silver, and by anyone who must compare text the way silver does (a study's
term lists are not: ``config.study._normalise_terms`` uses ``strip().upper()``,
see there and ``norm_drug``). Every helper takes a column
name or a :class:`Column` and returns a :class:`Column`; nothing here runs
Python per row. Casts are ``try_cast``/``try_to_date`` because Spark 4 runs in
ANSI mode, where a plain cast of junk text fails the whole job.
"""

from __future__ import annotations

import csv
import io
from functools import lru_cache
from importlib import resources

from pyspark.sql import Column
from pyspark.sql import functions as F

# Java's \s misses the no-break space (0xA0), which cp1252/latin-1 text carries.
_WS = r"[\s\u00A0]"
# The same set for trim(), which is far cheaper than a regular expression.
_WS_CHARS = " \t\n\r\x0b\x0c\u00a0"

# Multiply an age in this unit by the factor to get years (FDA's age_cod).
AGE_FACTORS: dict[str, float] = {
    "DEC": 10.0,
    "YR": 1.0,
    "MON": 1.0 / 12.0,
    "WK": 7.0 / 365.25,
    "DY": 1.0 / 365.25,
    "HR": 1.0 / (24.0 * 365.25),
}
MAX_AGE_YEARS = 120.0
# Dates before this are FDA's placeholders (19000101, 00010101), not events.
MIN_PLAUSIBLE_DATE = "1901-01-01"


def _c(col: str | Column) -> Column:
    return F.col(col) if isinstance(col, str) else col


def _strip(col: Column) -> Column:
    return F.trim(col, F.lit(_WS_CHARS))


def clean_text(col: str | Column) -> Column:
    """Trimmed text (no-break spaces included); empty becomes null."""
    s = _strip(_c(col))
    return F.when(s != "", s)


def clean_code(col: str | Column) -> Column:
    """A code field (role_cod, outc_cod, sex, ...): trimmed, upper-case, empty -> null."""
    return F.upper(clean_text(col))


def norm_pt(col: str | Column) -> Column:
    """MedDRA PT as compared everywhere: trim, upper-case (empty -> null)."""
    return F.upper(clean_text(col))


def norm_drug(col: str | Column) -> Column:
    """Drug text (drugname, prod_ai): upper-case, trim, collapse white space to
    one space, drop trailing periods (``PREDNISONE.`` -> ``PREDNISONE``,
    ``  botox   cosmetic ..`` -> ``BOTOX COSMETIC``); empty -> null.

    A ``\\``-joined prod_ai list stays one text: a token matches it as a
    substring of the whole list, which is what spec §1 asks for.
    """
    # Study tokens (exposure / exclusion drug tokens) are NOT normalised by this
    # rule: config.study._normalise_terms only does str.strip().upper(), with no
    # inner white-space collapsing and no trailing-period removal, and strip()
    # trims more Unicode white space than _WS_CHARS. A token with two inner
    # spaces or a tab never matches this text; one ending in "." never matches
    # where the period was the text's last character.
    # normalise.py has no plain-Python twin; generate.norm_drug_text (the test
    # oracle) is the nearest, and it too splits on all Unicode white space.
    # One regular expression per value at most: this runs on every drug row.
    s = F.trim(F.regexp_replace(F.upper(_c(col)), f"{_WS}+", " "))
    # Periods may be separated by spaces ("COSMETIC . ."); drop them all, then
    # the space they leave.
    s = F.when(s.endswith("."), F.rtrim(F.regexp_replace(s, r"( ?\.)+$", ""))).otherwise(s)
    return F.when(s != "", s)


def whole_number(col: str | Column) -> Column:
    """BIGINT from FDA's digits; tolerates pandas-resaved ``"61.0"`` / ``"61.00"``.
    Anything else (letters, negative, fractions, > 18 digits) is null."""
    s = _strip(_c(col))
    # Plain digits (nearly every value) take the cheap cast; only the rest
    # ("61.0", junk) pays for the regular expression.
    fast = s.try_cast("bigint")
    slow = F.when(
        s.rlike(r"^[0-9]{1,18}(\.0*)?$"),
        F.regexp_extract(s, r"^([0-9]+)", 1).try_cast("bigint"),
    )
    digits_only = fast.isNotNull() & ~s.startswith("+") & ~s.startswith("-")
    return F.when(digits_only, fast).otherwise(slow)


def date_text(col: str | Column) -> Column:
    """A date field as text, with the ``.0`` a pandas re-save appended removed
    (``20141226.0`` -> ``20141226``); partial dates (``YYYYMM``) stay; empty -> null."""
    s = _strip(_c(col))
    s = F.when(s.contains("."), F.regexp_replace(s, r"^([0-9]+)\.0*$", "$1")).otherwise(s)
    return F.when(s != "", s)


def plausible_date(text: str | Column, not_after: Column | None = None) -> Column:
    """DATE from a ``YYYYMMDD`` text, only where it is whole, a real calendar
    day, from 1901 on and not after ``not_after`` (default: today)."""
    t = _c(text)
    d = F.try_to_date(t, "yyyyMMdd")
    upper = F.current_date() if not_after is None else F.coalesce(not_after, F.current_date())
    return F.when(
        t.rlike(r"^[0-9]{8}$")
        & (d >= F.lit(MIN_PLAUSIBLE_DATE).cast("date"))
        & (d <= upper),
        d,
    )


def age_years(age: str | Column, age_cod: str | Column) -> Column:
    """Age in years from ``age`` and its unit ``age_cod`` (YR, MON, WK, DY, HR, DEC).

    Null when the number or the unit is missing or junk, negative, or the
    result is implausible (over 120 years)."""
    a = _strip(_c(age)).try_cast("double")
    unit = clean_code(age_cod)
    factor = F.expr("map(" + ", ".join(f"'{k}', CAST({v!r} AS DOUBLE)" for k, v in AGE_FACTORS.items()) + ")")
    years = a * F.try_element_at(factor, unit)
    # NaN compares greater than any number in Spark, so it fails the bound too.
    return F.when((a >= 0) & (years <= MAX_AGE_YEARS), years)


@lru_cache(maxsize=1)
def country_names() -> dict[str, str]:
    """Upper-case country name -> ISO-2, from the bundled ``resources/countries.csv``
    (ISO 3166-1 names, official and common names, and the older names AERS used)."""
    text = resources.files("faerslake").joinpath("resources/countries.csv").read_text("utf-8")
    return {row["name"]: row["iso2"] for row in csv.DictReader(io.StringIO(text))}


def _sql_text(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@lru_cache(maxsize=1)
def _country_map_sql() -> str:
    # Known codes map to themselves, names to their code: one lookup per row.
    # Built as one SQL expression: hundreds of F.lit() calls would cost a
    # Py4J round trip each.
    names = country_names()
    pairs = {**{code: code for code in names.values()}, **names}
    return "map(" + ", ".join(f"{_sql_text(k)}, {_sql_text(v)}" for k, v in sorted(pairs.items())) + ")"


def country_iso2(col: str | Column) -> Column:
    """Reporter country as ISO-2: FAERS's two-letter codes pass when they are
    known codes (FDA's ``EU`` included); legacy full names (``UNITED STATES``)
    are looked up; anything else (``COUNTRY NOT SPECIFIED``, junk) is null."""
    s = F.regexp_replace(F.upper(_strip(_c(col))), f"{_WS}+", " ")
    return F.try_element_at(F.expr(_country_map_sql()), s)


def quarter_order(col: str | Column) -> Column:
    """Sortable integer of a ``2012Q4`` quarter (year * 4 + quarter - 1), like
    :func:`faerslake.quarters.quarter_index`."""
    q = _c(col)
    return (
        F.substring(q, 1, 4).try_cast("int") * 4 + F.substring(q, 6, 1).try_cast("int") - 1
    )
