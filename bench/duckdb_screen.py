"""The screen's yardstick: ``faerslake screen``'s default screen with DuckDB + numpy + scipy.

Place in the project: beside the pipeline, not in it, like
``bench/duckdb_reference.py``. ``make bench-screen`` (``bench/screen_bench.py``)
runs it on the same silver Delta tables that ``faerslake screen`` reads, for a
speed yardstick and an independent check of the counts: nothing here imports
faerslake; every rule of the screen's contract (counts of distinct reports,
ROR / PRR / χ² / IC, the two-gamma prior and EBGM / EB05 / EB95) is written
again, and the Delta tables are read from their parquet files, listed from
each table's ``_delta_log`` (:func:`active_files`).

The default screen: every role code, no period, no strata, N* = 1, and the
drug key ``ingredient`` when ``silver/drug_ingredients`` exists (else
``drugname``), as ``faerslake screen``'s ``by: auto``. The silver versions
read are the last completed build's (the newest row of ``silver/build_state``),
as ``faerslake screen`` pins them.

Steps (each timed): list the files; the screen set and its distinct (report,
drug) and (report, pt) rows; the pairs and their margins; the frequentist
statistics; the squashed points; the prior fit (L-BFGS-B from a few starts on
the squashed points); the negative log-likelihood over every pair; IC and the
posterior (EB05 / EB95 by a vectorised bisection to a relative 1e-7); writing
the pairs (parquet, like the gold table) and ``signals.csv`` (a >= 3, by eb05).

Run it alone: ``python bench/duckdb_screen.py --warehouse WH [--out DIR] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

# numpy's vectors here are short or element-wise: BLAS threads only spin against each other
# (and against the neighbours on a busy machine) in the fit's small dot products
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import optimize, special

Z95 = 1.959964
# the reader features whose files this reader can take as they are (the rest change what a file means);
# deletionVectors (silver has it enabled for the incremental build's MERGEs) is harmless as long as no
# live file carries one, and each add action that does is refused below
HARMLESS_READER_FEATURES = {"timestampNtz", "typeWidening", "typeWidening-preview", "vacuumProtocolCheck",
                            "deletionVectors"}
CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint(?:\.(\d{10})\.(\d{10}))?\.parquet$")
COMMIT = re.compile(r"^(\d{20})\.json$")
KEY_COLUMNS = {"drugname": "drugname_norm", "prod_ai": "prod_ai_norm", "ingredient": "ingredient"}
OUT_COLUMNS = ["drug", "pt", "a", "b", "c", "d", "expected", "ror", "ror_ci_lower", "ror_ci_upper",
               "haldane_corrected", "prr", "prr_ci_lower", "prr_ci_upper", "chi2_yates", "evans_signal",
               "ic", "ic025", "ic975", "ebgm", "eb05", "eb95", "q"]


# --------------------------------------------------------------------------- #
# Delta tables as parquet files
# --------------------------------------------------------------------------- #
class DeltaReadError(Exception):
    """A Delta table this reader cannot list faithfully (it says why)."""


@dataclass
class DeltaSnapshot:
    table: Path
    version: int
    files: list[Path]
    partition_columns: list[str] = field(default_factory=list)


def _file_path(table: Path, path: str) -> Path:
    """An ``add``/``remove`` path (URL-encoded, relative to the table, or an absolute URI) as a local path."""
    u = urlparse(path)
    if u.scheme in ("", "file"):
        p = Path(unquote(u.path))
        return p if p.is_absolute() else table / p
    raise DeltaReadError(f"{table}: file {path} is not on the local file system")


def _check_action(table: Path, action: dict) -> None:
    if "protocol" in action:
        features = set(action["protocol"].get("readerFeatures") or [])
        if action["protocol"].get("minReaderVersion", 1) > 3 or features - HARMLESS_READER_FEATURES:
            raise DeltaReadError(f"{table}: reader protocol {action['protocol']} needs more than a file list")
    if "metaData" in action:
        md = action["metaData"] or {}
        if md.get("partitionColumns"):
            raise DeltaReadError(f"{table}: partitioned by {md['partitionColumns']} (not supported here)")
        mode = (md.get("configuration") or {}).get("delta.columnMapping.mode", "none")
        if mode != "none":
            raise DeltaReadError(f"{table}: column mapping '{mode}' (not supported here)")
    add = action.get("add")
    if add and add.get("deletionVector"):
        raise DeltaReadError(f"{table}: {add['path']} has a deletion vector (not supported here)")


def _checkpoint_parts(log: Path) -> dict[int, list[Path]]:
    """Complete classic checkpoints (single or multi-part) by version."""
    parts: dict[int, dict[int, Path]] = {}
    totals: dict[int, int] = {}
    for p in log.iterdir():
        m = CHECKPOINT.match(p.name)
        if not m:
            continue
        v = int(m.group(1))
        part, total = (int(m.group(2)), int(m.group(3))) if m.group(2) else (1, 1)
        parts.setdefault(v, {})[part] = p
        totals[v] = total
    return {v: [ps[i] for i in sorted(ps)] for v, ps in parts.items() if len(ps) == totals[v]}


def active_files(table: Path, version: int | None = None) -> DeltaSnapshot:
    """The data files of Delta table ``table`` at ``version`` (default: the latest).

    Replays the JSON commits after the newest complete checkpoint at or
    before ``version`` (from commit 0 when there is none): ``add`` puts a
    file in, ``remove`` takes it out. Refuses (:class:`DeltaReadError`)
    what a plain file list would misread: deletion vectors, column mapping,
    partition columns, unknown reader features, missing commits, files off
    the local file system.
    """
    table = Path(table)
    log = table / "_delta_log"
    if not log.is_dir():
        raise DeltaReadError(f"{table}: no _delta_log")
    commits = sorted(int(m.group(1)) for p in log.iterdir() if (m := COMMIT.match(p.name)))
    checkpoints = _checkpoint_parts(log)
    latest = max([*commits, *checkpoints], default=None)
    if latest is None:
        raise DeltaReadError(f"{table}: _delta_log holds no commit")
    version = latest if version is None else version
    if version > latest:
        raise DeltaReadError(f"{table}: version {version} does not exist (latest {latest})")
    base = max((v for v in checkpoints if v <= version), default=None)
    live: dict[Path, None] = {}
    if base is not None:
        con = duckdb.connect()
        files = [str(p) for p in checkpoints[base]]
        cols = {r[0] for r in con.execute("SELECT name FROM parquet_schema(?) ", [files[0]]).fetchall()}
        for name in ("protocol", "metaData"):
            if name in cols:
                for (obj,) in con.execute(f'SELECT to_json("{name}") FROM read_parquet(?) '
                                          f'WHERE "{name}" IS NOT NULL', [files]).fetchall():
                    _check_action(table, {name: json.loads(obj)})
        has_dv = "deletionVector" in cols
        rows = con.execute(
            'SELECT "add"."path", ' + ('"add"."deletionVector" IS NOT NULL' if has_dv else "false")
            + ' FROM read_parquet(?) WHERE "add" IS NOT NULL', [files]).fetchall()
        con.close()
        for path, dv in rows:
            if dv:
                raise DeltaReadError(f"{table}: {path} has a deletion vector (not supported here)")
            live[_file_path(table, path)] = None
    start = 0 if base is None else base + 1
    wanted = list(range(start, version + 1))
    missing = sorted(set(wanted) - set(commits))
    if missing:
        raise DeltaReadError(f"{table}: commit(s) {missing[:5]} missing from _delta_log (and no checkpoint covers them)")
    for v in wanted:
        with open(log / f"{v:020d}.json", encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                action = json.loads(line)
                _check_action(table, action)
                if "add" in action:
                    live[_file_path(table, action["add"]["path"])] = None
                elif "remove" in action:
                    live.pop(_file_path(table, action["remove"]["path"]), None)
    return DeltaSnapshot(table, version, list(live))


def parquet_source(snap: DeltaSnapshot, columns: list[str]) -> str:
    """A DuckDB ``read_parquet`` of the snapshot's files, ``columns`` only."""
    if not snap.files:
        raise DeltaReadError(f"{snap.table}@{snap.version}: no data files")
    files = "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in snap.files) + "]"
    return f"(SELECT {', '.join(columns)} FROM read_parquet({files}))"


def build_cut(warehouse: Path) -> dict[str, int] | None:
    """The silver versions of the last completed build (``silver/build_state``'s
    row with the highest sum of silver versions, then ``reports`` version: an
    update that re-decided no case leaves ``reports`` as it was), or None without one."""
    state = warehouse / "silver" / "build_state"
    if not (state / "_delta_log").is_dir():
        return None
    snap = active_files(state)
    con = duckdb.connect()
    rows = con.execute(f"SELECT silver_versions FROM {parquet_source(snap, ['silver_versions'])}").fetchall()
    con.close()
    cuts = [json.loads(r[0]) for r in rows if r[0]]
    def newest(c: dict) -> tuple[int, int]:
        return (sum(int(v) for v in c.values() if v is not None),
                c.get("reports") if c.get("reports") is not None else -1)

    return max(cuts, key=newest) if cuts else None


# --------------------------------------------------------------------------- #
# Statistics (numpy / scipy)
# --------------------------------------------------------------------------- #
def frequentist(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray, z: float = Z95) -> dict[str, np.ndarray]:
    """ROR (Haldane +0.5 when a cell is 0; NaN when a margin is 0), PRR (NaN when c = 0),
    Yates' χ² (NaN when a margin is 0), Evans' signal."""
    a, b, c, d = (np.asarray(x, dtype=float) for x in (a, b, c, d))
    with np.errstate(divide="ignore", invalid="ignore"):
        degenerate = ((a + b) == 0) | ((c + d) == 0) | ((a + c) == 0) | ((b + d) == 0)
        haldane = ~degenerate & (np.minimum(np.minimum(a, b), np.minimum(c, d)) == 0)
        k = np.where(haldane, 0.5, 0.0)
        fa, fb, fc, fd = a + k, b + k, c + k, d + k
        lr = np.log(fa) - np.log(fb) - np.log(fc) + np.log(fd)
        se = np.sqrt(1 / fa + 1 / fb + 1 / fc + 1 / fd)
        nan = np.nan
        ror = np.where(degenerate, nan, np.exp(lr))
        ror_lo = np.where(degenerate, nan, np.exp(lr - z * se))
        ror_hi = np.where(degenerate, nan, np.exp(lr + z * se))
        ok = c > 0
        prr = np.where(ok, (a / (a + b)) / (c / (c + d)), nan)
        prr_se = np.sqrt(1 / a - 1 / (a + b) + 1 / c - 1 / (c + d))
        prr_lo = np.where(ok, np.exp(np.log(prr) - z * prr_se), nan)
        prr_hi = np.where(ok, np.exp(np.log(prr) + z * prr_se), nan)
        n = a + b + c + d
        margins = (a + b) * (c + d) * (a + c) * (b + d)
        chi2 = np.where(margins > 0, n * (np.abs(a * d - b * c) - n / 2) ** 2 / margins, nan)
        evans = (prr >= 2) & (chi2 >= 4) & (a >= 3)  # NaN compares False
    return {"ror": ror, "ror_ci_lower": ror_lo, "ror_ci_upper": ror_hi, "haldane_corrected": haldane,
            "prr": prr, "prr_ci_lower": prr_lo, "prr_ci_upper": prr_hi, "chi2_yates": chi2, "evans_signal": evans}


def information_component(a: np.ndarray, e: np.ndarray) -> dict[str, np.ndarray]:
    """IC = log2((a+½)/(E+½)); IC025 / IC975 from Gamma(a+½, rate E+½)."""
    shape, rate = a + 0.5, e + 0.5
    return {"ic": np.log2(shape / rate),
            "ic025": np.log2(special.gammaincinv(shape, 0.025) / rate),
            "ic975": np.log2(special.gammaincinv(shape, 0.975) / rate)}


def squash(a: np.ndarray, e: np.ndarray, n_star: int = 1, bins_per_decade: int = 50
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points (a, mean E, pairs) of the pairs with a >= n_star binned by
    floor(log10 E · bins_per_decade) within each a."""
    keep = a >= n_star
    a, e = a[keep], e[keep]
    b = np.floor(np.log10(e) * bins_per_decade).astype(np.int64)
    key = a.astype(np.int64) * (1 << 24) + (b + (1 << 23))
    uniq, inv = np.unique(key, return_inverse=True)
    w = np.bincount(inv).astype(float)
    mean_e = np.bincount(inv, weights=e) / w
    return (uniq >> 24).astype(float), mean_e, w


def _nb_logpmf(a: np.ndarray, e: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """log P(a) when a | λ ~ Poisson(λE), λ ~ Gamma(shape α, rate β): a negative binomial."""
    return (special.gammaln(alpha + a) - special.gammaln(alpha) - special.gammaln(a + 1)
            - alpha * np.log1p(e / beta) + a * np.log(e / (beta + e)))


def _survival(n_star: int, e: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """P(a >= n_star) of one negative binomial, without the cancellation of 1 − P(0) − ...
    when P(0) is near 1: the regularised incomplete beta I_x(n_star, α), x = E/(β+E)
    (for n_star = 1, −expm1(−α·log1p(E/β)))."""
    if n_star == 1:
        return -np.expm1(-alpha * np.log1p(e / beta))
    return special.betainc(float(n_star), alpha, e / (beta + e))


def mixture_loglik(a: np.ndarray, e: np.ndarray, theta: tuple[float, ...], n_star: int = 1) -> np.ndarray:
    """Per-point log-likelihood of the two-negative-binomial mixture, truncated at a >= n_star."""
    a1, b1, a2, b2, p = theta
    l1 = np.log(p) + _nb_logpmf(a, e, a1, b1)
    l2 = np.log1p(-p) + _nb_logpmf(a, e, a2, b2)
    ll = np.logaddexp(l1, l2)
    if n_star > 0:
        keep = p * _survival(n_star, e, a1, b1) + (1 - p) * _survival(n_star, e, a2, b2)
        ll = ll - np.log(np.maximum(keep, 1e-300))
    return ll


def _nb_dlog(a: np.ndarray, e: np.ndarray, alpha: float, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """∂ log P(a) / ∂α and / ∂β of :func:`_nb_logpmf`."""
    return (special.digamma(alpha + a) - special.digamma(alpha) - np.log1p(e / beta),
            alpha / beta - (alpha + a) / (beta + e))


def weighted_nll_and_grad(x: np.ndarray, a: np.ndarray, e: np.ndarray, w: np.ndarray, n_star: int = 1
                          ) -> tuple[float, np.ndarray]:
    """−Σ w·log L and its gradient in x = (log α1, log β1, log α2, log β2, logit P)."""
    a1, b1, a2, b2, p = _theta(x)
    l1 = np.log(p) + _nb_logpmf(a, e, a1, b1)
    l2 = np.log1p(-p) + _nb_logpmf(a, e, a2, b2)
    ll = np.logaddexp(l1, l2)
    r1 = np.exp(l1 - ll)
    r2 = 1.0 - r1
    da1, db1 = _nb_dlog(a, e, a1, b1)
    da2, db2 = _nb_dlog(a, e, a2, b2)
    g = np.array([r1 * da1, r1 * db1, r2 * da2, r2 * db2, r1 / p - r2 / (1 - p)])  # ∂ log L / ∂θ
    if n_star > 0:
        s1, s2 = _survival(n_star, e, a1, b1), _survival(n_star, e, a2, b2)
        keep = np.maximum(p * s1 + (1 - p) * s2, 1e-300)
        dbelow = np.zeros((5, len(e)))  # ∂ P(a < n_star) / ∂θ = −∂ keep / ∂θ
        for k in range(n_star):
            kk = np.full_like(e, float(k))
            f1, f2 = np.exp(_nb_logpmf(kk, e, a1, b1)), np.exp(_nb_logpmf(kk, e, a2, b2))
            ka1, kb1 = _nb_dlog(kk, e, a1, b1)
            ka2, kb2 = _nb_dlog(kk, e, a2, b2)
            dbelow += np.array([p * f1 * ka1, p * f1 * kb1, (1 - p) * f2 * ka2, (1 - p) * f2 * kb2, f1 - f2])
        dbelow[4] = -(s1 - s2)  # ∂ keep / ∂p = s1 − s2 (exact, not 1 − Σ f)
        ll = ll - np.log(keep)
        g = g + dbelow / keep
    chain = np.array([a1, b1, a2, b2, p * (1 - p)])
    return -float(np.dot(w, ll)), -(g @ w) * chain


def _theta(x: np.ndarray) -> tuple[float, ...]:
    return (*np.exp(x[:4]).tolist(), float(special.expit(x[4])))


# openEBGM's default start, a few spread-out others, and two near the point-mass limit of a
# component (α, β large, α/β ~ 1: on synthetic lakes, where most pairs are reported at exactly
# their expected rate, the likelihood's supremum is there)
STARTS = [(0.2, 0.1, 2.0, 4.0, 1 / 3), (2.0, 1.0, 0.5, 0.5, 0.1), (1.0, 1.0, 3.0, 3.0, 0.2),
          (0.5, 0.5, 5.0, 1.0, 0.05), (3.0, 0.4, 2.0, 1.9, 0.07), (1.0, 0.5, 1e3, 1e3, 0.4),
          (1.0, 1.0, 1e4 / 2, 1e4 / 2, 0.5)]
# The box the fit searches: shapes and rates in [1e-5, 1e4], P in [1e-6, 1 − 1e-6] (the box
# faerslake's screen documents). When the supremum is at infinity (a point mass) the box
# decides the answer, so the two must search the same one to be compared.
SHAPE_RATE_BOUNDS = (1e-5, 1e4)
P_BOUNDS = (1e-6, 1 - 1e-6)


@dataclass
class Fit:
    theta: tuple[float, ...]
    nll_squashed: float
    converged: bool
    starts: int
    evaluations: int
    nll: float = float("nan")  # over every pair with a >= n_star, unsquashed


def fit_prior(a: np.ndarray, e: np.ndarray, w: np.ndarray, n_star: int = 1) -> Fit:
    """θ maximising Σ w·log L(a, E; θ) on the squashed points: L-BFGS-B with the
    analytic gradient in (log α1, log β1, log α2, log β2, logit P), within
    :data:`SHAPE_RATE_BOUNDS` / :data:`P_BOUNDS`, from each of :data:`STARTS`; the best."""
    evals = 0

    def f(x: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal evals
        evals += 1
        with np.errstate(all="ignore"):
            v, g = weighted_nll_and_grad(x, a, e, w, n_star)
        if not (math.isfinite(v) and np.all(np.isfinite(g))):
            return 1e300, np.zeros(5)
        return v, g

    runs = []
    lo, hi = np.log(SHAPE_RATE_BOUNDS)
    bounds = [(lo, hi)] * 4 + [tuple(special.logit(P_BOUNDS))]
    for s in STARTS:
        x0 = np.array([*np.log(s[:4]), special.logit(s[4])])
        runs.append(optimize.minimize(f, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                                      options={"maxiter": 2000, "ftol": 1e-12, "gtol": 1e-8}))
    best = min(runs, key=lambda r: r.fun)
    # converged: a start that stopped by its own convergence test reached the best value
    converged = any(r.success and r.fun <= best.fun + 1e-9 * abs(best.fun) + 1e-6 for r in runs)
    return Fit(_theta(best.x), float(best.fun), converged, len(STARTS), evals)


def posterior(a: np.ndarray, e: np.ndarray, theta: tuple[float, ...], tol: float = 1e-7
              ) -> dict[str, np.ndarray]:
    """Q, EBGM and the 5 % / 95 % quantiles of the posterior mixture
    Q·Γ(α1+a, β1+E) + (1−Q)·Γ(α2+a, β2+E), by bisection in log λ between the
    two components' own quantiles (the mixture's lies between them) until
    hi/lo − 1 < ``tol`` for every pair."""
    a1, b1, a2, b2, p = theta
    l1 = np.log(p) + _nb_logpmf(a, e, a1, b1)
    l2 = np.log1p(-p) + _nb_logpmf(a, e, a2, b2)
    q = np.exp(l1 - np.logaddexp(l1, l2))
    s1, r1, s2, r2 = a1 + a, b1 + e, a2 + a, b2 + e
    ebgm = np.exp(q * (special.digamma(s1) - np.log(r1)) + (1 - q) * (special.digamma(s2) - np.log(r2)))
    out = {"q": q, "ebgm": ebgm}
    for name, prob in (("eb05", 0.05), ("eb95", 0.95)):
        q1 = special.gammaincinv(s1, prob) / r1
        q2 = special.gammaincinv(s2, prob) / r2
        lo, hi = np.log(np.minimum(q1, q2)), np.log(np.maximum(q1, q2))
        todo = np.nonzero(hi - lo > tol)[0]
        while todo.size:
            mid = 0.5 * (lo[todo] + hi[todo])
            x = np.exp(mid)
            cdf = (q[todo] * special.gammainc(s1[todo], r1[todo] * x)
                   + (1 - q[todo]) * special.gammainc(s2[todo], r2[todo] * x))
            up = cdf < prob
            lo[todo] = np.where(up, mid, lo[todo])
            hi[todo] = np.where(up, hi[todo], mid)
            todo = todo[hi[todo] - lo[todo] > tol]
        out[name] = np.exp(0.5 * (lo + hi))
    return out


# --------------------------------------------------------------------------- #
# The screen
# --------------------------------------------------------------------------- #
@dataclass
class ScreenYardstick:
    drug_key: str
    n_reports: int
    pairs: int
    triples: int
    fit: Fit
    seconds: dict[str, float]
    versions: dict[str, int]
    threads: int
    squashed_points: int
    rows_read: dict[str, int]


def run_screen(warehouse: Path, out: Path | None = None, by: str = "auto", roles: list[str] | None = None,
               n_star: int = 1, bins_per_decade: int = 50, threads: int | None = None,
               log: Callable[[str], None] = print) -> ScreenYardstick:
    """The default screen of ``warehouse`` (spec §1-§2); pairs to ``out/pairs.parquet`` and
    ``out/signals.csv`` when ``out`` is given."""
    secs: dict[str, float] = {}
    t0 = last = time.perf_counter()

    def step(name: str) -> None:
        nonlocal last
        now = time.perf_counter()
        secs[name] = round(now - last, 3)
        last = now
        log(f"[duckdb-screen] {name} done ({secs[name]:.2f}s)")

    silver = Path(warehouse) / "silver"
    cut = build_cut(Path(warehouse)) or {}
    has_ing = cut.get("drug_ingredients") is not None if cut else (silver / "drug_ingredients" / "_delta_log").is_dir()
    key = ("ingredient" if has_ing else "drugname") if by == "auto" else by
    drug_table = "drug_ingredients" if key == "ingredient" else "drugs"
    snaps = {t: active_files(silver / t, cut.get(t)) for t in ("reports", drug_table, "reactions")}
    versions = {f"silver/{t}": s.version for t, s in snaps.items()}
    step("list_files")

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    n_threads = int(con.execute("SELECT current_setting('threads')").fetchall()[0][0])
    col = KEY_COLUMNS[key]
    role_filter = ""
    if roles:
        role_filter = " AND upper(trim(role_cod)) IN (" + ", ".join("'" + r.upper() + "'" for r in roles) + ")"
    rep = parquet_source(snaps["reports"], ["report_key", "quarter"])
    drg = parquet_source(snaps[drug_table], ["report_key", "quarter", "role_cod", col])
    rea = parquet_source(snaps["reactions"], ["report_key", "quarter", "pt_norm"])
    con.execute(f"""CREATE TEMP TABLE dset AS SELECT DISTINCT report_key, quarter, {col} AS drug FROM {drg}
                    WHERE {col} IS NOT NULL AND trim({col}) <> ''{role_filter}""")
    con.execute(f"""CREATE TEMP TABLE eset AS SELECT DISTINCT report_key, quarter, pt_norm AS pt FROM {rea}
                    WHERE pt_norm IS NOT NULL AND pt_norm <> ''""")
    con.execute(f"""CREATE TEMP TABLE r AS SELECT report_key, quarter FROM {rep}
                    SEMI JOIN (SELECT DISTINCT report_key, quarter FROM dset) USING (report_key, quarter)
                    SEMI JOIN (SELECT DISTINCT report_key, quarter FROM eset) USING (report_key, quarter)""")
    con.execute("CREATE TEMP TABLE rd AS SELECT * FROM dset SEMI JOIN r USING (report_key, quarter)")
    con.execute("CREATE TEMP TABLE re AS SELECT * FROM eset SEMI JOIN r USING (report_key, quarter)")
    n_reports = con.execute("SELECT count(*) FROM r").fetchall()[0][0]
    rows_read = {"report_drugs": con.execute("SELECT count(*) FROM rd").fetchall()[0][0],
                 "report_events": con.execute("SELECT count(*) FROM re").fetchall()[0][0]}
    step("sets")
    if n_reports == 0:
        raise SystemExit("no report has a counted drug row and a PT: nothing to screen")

    tbl = con.sql("""
        WITH pairs AS (SELECT drug, pt, count(*) AS a FROM rd JOIN re USING (report_key, quarter) GROUP BY drug, pt),
             nx AS (SELECT drug, count(*) AS n_drug FROM rd GROUP BY drug),
             ny AS (SELECT pt, count(*) AS n_event FROM re GROUP BY pt)
        SELECT drug, pt, a, n_drug, n_event FROM pairs JOIN nx USING (drug) JOIN ny USING (pt)""").to_arrow_table()
    if isinstance(tbl, pa.RecordBatchReader):
        tbl = tbl.read_all()
    con.close()
    a = tbl["a"].to_numpy().astype(np.int64)
    nx = tbl["n_drug"].to_numpy().astype(np.int64)
    ny = tbl["n_event"].to_numpy().astype(np.int64)
    n = int(n_reports)
    b, c, d = nx - a, ny - a, n - nx - ny + a
    e = nx.astype(float) * ny / n
    step("counts")

    cols: dict[str, np.ndarray] = {"a": a, "b": b, "c": c, "d": d, "expected": e}
    cols.update(frequentist(a, b, c, d))
    step("frequentist")

    pa_, pe, pw = squash(a, e, n_star, bins_per_decade)
    step("squash")
    fit = fit_prior(pa_, pe, pw, n_star)
    step("fit")
    keep = a >= n_star
    fit.nll = -float(np.sum(mixture_loglik(a[keep].astype(float), e[keep], fit.theta, n_star)))
    step("nll")

    af = a.astype(float)
    cols.update(information_component(af, e))
    cols.update(posterior(af, e, fit.theta))
    step("score")

    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        arrays = {"drug": tbl["drug"], "pt": tbl["pt"]}
        for k in OUT_COLUMNS[2:]:
            v = cols[k]
            arrays[k] = pa.array(v, from_pandas=True) if v.dtype.kind == "f" else pa.array(v)
        result = pa.table(arrays)
        pq.write_table(result, out / "pairs.parquet")
        con = duckdb.connect()
        con.register("result", result)
        con.execute(f"""COPY (SELECT * FROM result WHERE a >= 3 ORDER BY eb05 DESC, drug, pt)
                        TO '{str(out / "signals.csv").replace("'", "''")}' (HEADER, DELIMITER ',')""")
        con.close()
        step("write")
    secs["total"] = round(time.perf_counter() - t0, 3)
    log(f"[duckdb-screen] {n:,} reports, {len(a):,} pairs (drugs by {key}); θ = "
        + ", ".join(f"{x:.6g}" for x in fit.theta) + f"; nll {fit.nll:.6f}; total {secs['total']:.1f}s")
    return ScreenYardstick(key, n, len(a), int(a.sum()), fit, secs, versions, n_threads, len(pa_), rows_read)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--warehouse", required=True, type=Path, help="a built faerslake warehouse (a folder)")
    p.add_argument("--out", type=Path, default=None, help="write pairs.parquet and signals.csv here")
    p.add_argument("--by", default="auto", choices=["auto", *KEY_COLUMNS])
    p.add_argument("--roles", default=None, help="e.g. PS,SS (default: every role)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, default=None, help="write the result here")
    args = p.parse_args(argv)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    roles = [r.strip() for r in args.roles.split(",")] if args.roles else None
    res = run_screen(args.warehouse, args.out, args.by, roles, threads=args.threads, log=log)
    names = ("alpha1", "beta1", "alpha2", "beta2", "p")
    doc = {"drug_key": res.drug_key, "n_reports": res.n_reports, "pairs": res.pairs, "triples": res.triples,
           "rows_read": res.rows_read, "squashed_points": res.squashed_points,
           "prior": {**dict(zip(names, res.fit.theta, strict=True)), "neg_log_likelihood": res.fit.nll,
                     "nll_squashed": res.fit.nll_squashed, "converged": res.fit.converged,
                     "optimizer": f"scipy L-BFGS-B from {res.fit.starts} starts", "evaluations": res.fit.evaluations},
           "seconds": res.seconds, "versions": res.versions, "threads": res.threads}
    text = json.dumps(doc, indent=1) + "\n"
    if args.json:
        args.json.write_text(text)
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
