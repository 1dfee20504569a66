"""Disproportionality statistics of the gold layer (study-spec §4), in plain Python.

``faerslake.gold`` counts each cohort's 2x2 table in Spark and brings only
those few integers to the driver; this module turns them into numbers:

    a = exposed with event     b = exposed without
    c = controls with event    d = controls without

- reporting odds ratio (ROR) with its log-normal 95 % CI, Haldane-corrected
  (+0.5 on every cell) when a cell is 0, null when a whole row or column is 0;
- two-sided Fisher exact p on the uncorrected table, Benjamini–Hochberg q over
  a study's cohorts;
- proportional reporting ratio (PRR) with Yates' χ², and the PRR's log-normal
  95 % CI (:func:`prr_ci`, Haldane-corrected like the ROR);
- a Mantel–Haenszel pooled ROR across strata (Robins–Breslow–Greenland CI).

"Null" is ``None`` here (NaN in a pandas float column); the gold layer writes
it as null to Delta and as an empty field to CSV. Every formula is checked in
``tests/test_stats.py`` against scipy and statsmodels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import pandas as pd
from scipy.stats import fisher_exact

# The spec's constant (≈ norm.ppf(0.975)), used as written for reproducibility.
Z95 = 1.959964

COUNT_COLUMNS = ["exposed_reports", "exposed_events", "control_reports", "control_events"]
RESULT_COLUMNS = [
    "study", "cohort", *COUNT_COLUMNS,
    "ror", "ror_ci_lower", "ror_ci_upper", "haldane_corrected", "fisher_p", "fisher_q",
]
EXTRA_COLUMNS = ["a", "b", "c", "d", "prr", "prr_chi2"]


class RorResult(NamedTuple):
    ror: float | None
    ci_lower: float | None
    ci_upper: float | None
    haldane_corrected: bool


class PrrResult(NamedTuple):
    prr: float | None
    ci_lower: float | None
    ci_upper: float | None
    haldane_corrected: bool


class PooledRor(NamedTuple):
    ror: float | None
    ci_lower: float | None
    ci_upper: float | None
    strata_used: int


def _check_cells(a: int, b: int, c: int, d: int) -> None:
    for name, v in zip("abcd", (a, b, c, d), strict=True):
        if v is None or v < 0 or int(v) != v:
            raise ValueError(f"2x2 cell {name} must be a non-negative whole number, got {v!r}")


def degenerate(a: int, b: int, c: int, d: int) -> bool:
    """True when a whole row or column of the table is 0 (no comparison possible)."""
    return a + b == 0 or c + d == 0 or a + c == 0 or b + d == 0


def _haldane_cells(a: int, b: int, c: int, d: int) -> tuple[tuple[float, float, float, float], bool] | None:
    """The cells as floats, with 0.5 added to each when any is 0, and whether
    it was (the Haldane correction); None for a whole zero row or column."""
    _check_cells(a, b, c, d)
    if degenerate(a, b, c, d):
        return None
    haldane = min(a, b, c, d) == 0
    k = 0.5 if haldane else 0.0
    return (float(a) + k, float(b) + k, float(c) + k, float(d) + k), haldane


def ror_ci(a: int, b: int, c: int, d: int, z: float = Z95) -> RorResult:
    """ROR = (a/b)/(c/d) and exp(ln ROR ± z·√(1/a+1/b+1/c+1/d)).

    Any zero cell: 0.5 is added to all four cells and ``haldane_corrected`` is
    True. A whole zero row or column: ROR and CI are None and no correction is
    reported (nothing was computed).
    """
    cells = _haldane_cells(a, b, c, d)
    if cells is None:
        return RorResult(None, None, None, False)
    (fa, fb, fc, fd), haldane = cells
    log_ror = math.log(fa) - math.log(fb) - math.log(fc) + math.log(fd)
    se = math.sqrt(1 / fa + 1 / fb + 1 / fc + 1 / fd)
    return RorResult(
        math.exp(log_ror), math.exp(log_ror - z * se), math.exp(log_ror + z * se), haldane
    )


def fisher_p(a: int, b: int, c: int, d: int) -> float:
    """Two-sided Fisher exact p of the uncorrected table ``[[a, b], [c, d]]``.

    A table with a whole row or column of zeros has p = 1 (study-spec §4): only
    one table has those margins, and scipy's ``fisher_exact`` and R's
    ``fisher.test`` both return 1 for it. Such a cohort takes part in the
    Benjamini–Hochberg adjustment like every other.
    """
    _check_cells(a, b, c, d)
    if degenerate(a, b, c, d):
        return 1.0
    return float(fisher_exact([[a, b], [c, d]], alternative="two-sided")[1])


def bh_qvalues(ps: Sequence[float | None]) -> list[float | None]:
    """Benjamini–Hochberg adjusted p-values; None (or NaN) entries stay None and
    do not count towards the number of tests."""
    valid = {i: float(p) for i, p in enumerate(ps) if p is not None and not math.isnan(p)}
    idx = list(valid)
    out: list[float | None] = [None] * len(ps)
    m = len(idx)
    if m == 0:
        return out
    order = sorted(idx, key=lambda i: valid[i], reverse=True)  # largest p first
    running = 1.0
    for rank_from_top, i in enumerate(order):
        rank = m - rank_from_top  # 1-based rank in ascending order
        running = min(running, valid[i] * m / rank)
        out[i] = min(running, 1.0)
    return out


def prr_chi2(a: int, b: int, c: int, d: int) -> tuple[float | None, float | None]:
    """PRR = (a/(a+b)) / (c/(c+d)) and Pearson's χ² with Yates' correction.

    PRR is None when a row is empty or c = 0 (division by zero); χ² is None
    when any margin is 0. Yates' correction never takes |ad−bc| below 0 (as
    ``scipy.stats.chi2_contingency(correction=True)``).
    """
    _check_cells(a, b, c, d)
    prr = None
    if a + b > 0 and c + d > 0 and c > 0:
        prr = (a / (a + b)) / (c / (c + d))
    chi2 = None
    if not degenerate(a, b, c, d):
        n = a + b + c + d
        num = max(0.0, abs(a * d - b * c) - n / 2)
        chi2 = n * num * num / ((a + b) * (c + d) * (a + c) * (b + d))
    return prr, chi2


def prr_ci(a: int, b: int, c: int, d: int, z: float = Z95) -> PrrResult:
    """PRR = (a/(a+b)) / (c/(c+d)) and exp(ln PRR ± z·SE), SE =
    √(1/a − 1/(a+b) + 1/c − 1/(c+d)) (the log risk ratio's, as statsmodels
    ``Table2x2.riskratio_confint``).

    Zero cells follow :func:`ror_ci`: any zero cell adds 0.5 to all four cells
    (so a = 0 or c = 0 still gives a finite PRR and CI) and
    ``haldane_corrected`` is True; a whole zero row or column gives None. The
    point estimate of :func:`prr_chi2` (the ``prr`` column) is uncorrected,
    so for a table with a zero cell the two differ.
    """
    cells = _haldane_cells(a, b, c, d)
    if cells is None:
        return PrrResult(None, None, None, False)
    (fa, fb, fc, fd), haldane = cells
    log_prr = math.log(fa / (fa + fb)) - math.log(fc / (fc + fd))
    se = math.sqrt(1 / fa - 1 / (fa + fb) + 1 / fc - 1 / (fc + fd))  # each pair >= 0: a <= a+b
    return PrrResult(math.exp(log_prr), math.exp(log_prr - z * se), math.exp(log_prr + z * se), haldane)


def mantel_haenszel(tables: Iterable[tuple[int, int, int, int]], z: float = Z95) -> PooledRor:
    """Mantel–Haenszel pooled ROR over strata tables ``(a, b, c, d)``, with the
    Robins–Breslow–Greenland 95 % CI (as statsmodels ``StratifiedTable``).

    Strata with fewer than two reports carry no information and are skipped;
    the result is None when Σ ad/n or Σ bc/n is 0.
    """
    r_sum = s_sum = 0.0
    pr = ps_qr = qs = 0.0
    used = 0
    for a, b, c, d in tables:
        _check_cells(a, b, c, d)
        n = a + b + c + d
        if n < 2:
            continue
        used += 1
        r = a * d / n
        s = b * c / n
        p = (a + d) / n
        q = (b + c) / n
        r_sum += r
        s_sum += s
        pr += p * r
        ps_qr += p * s + q * r
        qs += q * s
    if r_sum == 0 or s_sum == 0:
        return PooledRor(None, None, None, used)
    log_or = math.log(r_sum / s_sum)
    var = pr / (2 * r_sum**2) + ps_qr / (2 * r_sum * s_sum) + qs / (2 * s_sum**2)
    se = math.sqrt(var)
    return PooledRor(math.exp(log_or), math.exp(log_or - z * se), math.exp(log_or + z * se), used)


def cohort_statistics(counts: pd.DataFrame) -> pd.DataFrame:
    """Add the spec §4 statistics to a per-cohort count table.

    ``counts`` has ``study, cohort`` and the four ``COUNT_COLUMNS`` (row order
    is kept: the study file's cohort order). Returns the spec §5 columns first,
    then ``EXTRA_COLUMNS``; nulls are NaN in float columns.
    """
    missing = [c for c in ["study", "cohort", *COUNT_COLUMNS] if c not in counts.columns]
    if missing:
        raise ValueError(f"cohort counts lack column(s) {', '.join(missing)}")
    rows: list[dict[str, Any]] = []
    for rec in counts.to_dict("records"):
        a = int(rec["exposed_events"])
        b = int(rec["exposed_reports"]) - a
        c = int(rec["control_events"])
        d = int(rec["control_reports"]) - c
        if b < 0 or d < 0:
            raise ValueError(f"cohort {rec['cohort']}: more events than reports")
        r = ror_ci(a, b, c, d)
        prr, chi2 = prr_chi2(a, b, c, d)
        rows.append({
            "study": rec["study"], "cohort": rec["cohort"],
            "exposed_reports": a + b, "exposed_events": a,
            "control_reports": c + d, "control_events": c,
            "ror": r.ror, "ror_ci_lower": r.ci_lower, "ror_ci_upper": r.ci_upper,
            "haldane_corrected": r.haldane_corrected,
            "fisher_p": fisher_p(a, b, c, d),
            "a": a, "b": b, "c": c, "d": d, "prr": prr, "prr_chi2": chi2,
        })
    qs = bh_qvalues([row["fisher_p"] for row in rows])
    for row, q in zip(rows, qs, strict=True):
        row["fisher_q"] = q
    out = pd.DataFrame(rows, columns=RESULT_COLUMNS + EXTRA_COLUMNS)
    for col in ["ror", "ror_ci_lower", "ror_ci_upper", "fisher_p", "fisher_q", "prr", "prr_chi2"]:
        out[col] = out[col].astype("float64")
    for col in [*COUNT_COLUMNS, "a", "b", "c", "d"]:
        out[col] = out[col].astype("int64")
    out["haldane_corrected"] = out["haldane_corrected"].astype(bool)
    return out
