"""DuMouchel's MGPS (EBGM, EB05, EB95) and the BCPNN information component, in numpy.

The screen counts, for every drug–event pair, the reports with both (``a``)
and the expected count ``E`` in Spark; this module turns ``(a, E)`` into the
Bayesian scores. It has no Spark in it: the screen job calls
:func:`score_frame` inside ``mapInPandas`` batches and fits the prior on the
driver with :func:`fit_prior` over squashed points (:func:`squash`).

Model (DuMouchel 1999, as openEBGM): the reporting ratio of a pair is
λ ~ P·Γ(α1, β1) + (1−P)·Γ(α2, β2) (shape, rate) and a | λ ~ Poisson(λ·E), so
a is a mixture of two negative binomials. The prior θ = (α1, β1, α2, β2, P)
maximises the likelihood of the pairs truncated at a ≥ N*; the posterior of
λ given (a, E) is Q·Γ(α1+a, β1+E) + (1−Q)·Γ(α2+a, β2+E).

- :func:`log_nb`, :func:`pair_log_likelihood`, :func:`neg_log_likelihood`:
  the marginal likelihood (log-space, ``gammaln``/``logaddexp``);
- :func:`fit_prior` -> :class:`Prior`: L-BFGS-B from several fixed starts on
  (log α, log β, logit P), analytic gradient, fails with
  :class:`PriorFitError` when no start converges;
- :func:`posterior`: Q, EBGM, EB05, EB95 (quantiles by vectorised,
  bracketed Newton to a relative precision far below 1e-7);
- :func:`ic_intervals`: IC, IC025, IC975;
- :func:`score_frame`: all of the above on a pandas batch;
- :func:`squash`: the reference of the squashing rule the Spark side applies.

The formulas, the parametrisation, the convergence rule and the precision are
written out in ``docs/screen-statistics.md`` and checked against scipy.stats
in ``tests/test_screen_stats.py``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.optimize import minimize
from scipy.special import betainc, digamma, gammainc, gammaincinv, gammaln

from faerslake.errors import FaerslakeError

SCORE_COLUMNS = ["q", "ebgm", "eb05", "eb95", "ic", "ic025", "ic975"]

# Starting points of the prior fit, (α1, β1, α2, β2, P). The first is
# DuMouchel's (and openEBGM's) default; the others spread the two components'
# means (α/β) and the mixing weight so that a local optimum is unlikely to be
# found by all of them.
DEFAULT_STARTS: tuple[tuple[float, float, float, float, float], ...] = (
    (0.2, 0.1, 2.0, 4.0, 1 / 3),
    (0.1, 0.1, 10.0, 10.0, 0.2),
    (0.3, 0.5, 6.0, 6.0, 0.5),
    (0.5, 0.3, 12.0, 12.0, 0.8),
    (0.2, 0.2, 5.0, 5.0, 0.4),
    (1.0, 0.1, 1.0, 1.0, 0.05),
    (2.0, 0.5, 0.5, 0.5, 0.1),
    (0.05, 0.01, 3.0, 2.0, 0.02),
)
# Bounds of the fit: every shape and rate in [1e-5, 1e4], P in [1e-6, 1 − 1e-6].
PARAM_BOUNDS = (1e-5, 1e4)
P_BOUNDS = (1e-6, 1 - 1e-6)
# A start converged when L-BFGS-B says so, the largest projected gradient of
# the mean negative log-likelihood per unit weight (in log α, log β, logit P)
# is at most GRADIENT_TOL, and no parameter is within BOUND_TOL (in those
# coordinates) of its bound. The prior is `converged` when the best start
# converged and a second converged start found the same minimum to
# AGREEMENT_RTOL (relative, on the negative log-likelihood).
GRADIENT_TOL = 1e-4
BOUND_TOL = 1e-6
AGREEMENT_RTOL = 1e-6
MAXITER = 2000
# The search for the posterior quantiles stops when its Newton step or its
# bracket is this small in log x: a relative error of about 1e-11 on EB05 / EB95.
QUANTILE_LOG_WIDTH = 1e-11

_LOWER = np.log([PARAM_BOUNDS[0]] * 4 + [P_BOUNDS[0] / (1 - P_BOUNDS[0])])
_UPPER = np.log([PARAM_BOUNDS[1]] * 4 + [P_BOUNDS[1] / (1 - P_BOUNDS[1])])
_NAMES = ("alpha1", "beta1", "alpha2", "beta2", "p")


class PriorFitError(FaerslakeError):
    """The MGPS prior fit found no converged optimum from any start."""


@dataclass(frozen=True)
class Prior:
    """The fitted hyperparameters θ = (α1, β1, α2, β2, P) and how they were found.

    ``pairs`` and ``neg_log_likelihood`` are about every pair (unsquashed):
    :func:`fit_prior` sets ``pairs`` to the sum of the weights it was given
    and leaves ``neg_log_likelihood`` to the caller, who can evaluate
    :func:`neg_log_likelihood` over all pairs; ``fit_neg_log_likelihood`` is
    the value on the (squashed) points the fit used."""

    alpha1: float
    beta1: float
    alpha2: float
    beta2: float
    p: float
    n_star: int = 1
    points: int = 0
    pairs: int = 0
    neg_log_likelihood: float | None = None
    fit_neg_log_likelihood: float | None = None
    converged: bool = False
    optimizer: str = ""
    iterations: int = 0
    starts: int = 0
    # the shapes fitted at a bound of PARAM_BOUNDS: the maximum is on the boundary,
    # where that component is in effect a log-series distribution (lower) or a
    # point mass at alpha/beta (upper) -- see _Start.blocking_bounds
    shapes_at_bound: str = ""

    def theta(self) -> tuple[float, float, float, float, float]:
        return (self.alpha1, self.beta1, self.alpha2, self.beta2, self.p)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every field, as plain Python numbers."""
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, (np.floating, np.integer, np.bool_)):
                d[k] = v.item()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Prior:
        """The inverse of :meth:`to_dict`; unknown keys are ignored, the five
        hyperparameters are required."""
        missing = [k for k in _NAMES if d.get(k) is None]
        if missing:
            raise ValueError(f"a prior needs {', '.join(_NAMES)}; missing: {', '.join(missing)}")
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        for k in _NAMES:
            kw[k] = float(kw[k])
        for k in ("n_star", "points", "pairs", "iterations", "starts"):
            if k in kw:
                kw[k] = int(kw[k])
        _check_theta(tuple(kw[k] for k in _NAMES))
        return cls(**kw)


# ---------------------------------------------------------------- validation

def _check_theta(theta: Sequence[float]) -> tuple[float, float, float, float, float]:
    if len(theta) != 5:
        raise ValueError(f"θ has five values (alpha1, beta1, alpha2, beta2, p), got {len(theta)}")
    a1, b1, a2, b2, p = (float(x) for x in theta)
    if not all(math.isfinite(x) and x > 0 for x in (a1, b1, a2, b2)):
        raise ValueError(f"the shapes and rates of θ must be finite and > 0, got {tuple(theta)}")
    if not 0 < p < 1:
        raise ValueError(f"the mixing weight P of θ must be in (0, 1), got {p}")
    return a1, b1, a2, b2, p


def _counts(a: ArrayLike, least: int = 0) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.size and (not np.all(np.isfinite(arr)) or np.any(arr != np.floor(arr))):
        raise ValueError("counts a must be whole numbers")
    if arr.size and arr.min() < least:
        raise ValueError(f"counts a must be >= {least} (N* = {least}: the caller leaves out smaller counts), "
                         f"got {arr.min():g}")
    return arr


def _expected(e: ArrayLike) -> np.ndarray:
    arr = np.asarray(e, dtype=np.float64)
    if arr.size and not (np.all(np.isfinite(arr)) and arr.min() > 0):
        raise ValueError("expected counts E must be finite and > 0")
    return arr


def _n_star(n_star: int) -> int:
    if int(n_star) != n_star or n_star < 1:
        raise ValueError(f"N* must be a whole number >= 1, got {n_star!r}")
    return int(n_star)


# ---------------------------------------------------------------- likelihood

def log_nb(a: ArrayLike, e: ArrayLike, alpha: ArrayLike, beta: ArrayLike) -> np.ndarray:
    """log P(a) when a | λ ~ Poisson(λ·E) and λ ~ Gamma(shape α, rate β): the
    negative binomial with size α and success probability β/(β+E).
    Broadcasts its arguments."""
    a = np.asarray(a, dtype=np.float64)
    e = np.asarray(e, dtype=np.float64)
    alpha = np.asarray(alpha, dtype=np.float64)
    beta = np.asarray(beta, dtype=np.float64)
    # α·log(β/(β+E)) + a·log(E/(β+E)), written with log1p to keep small E and β exact
    return (gammaln(alpha + a) - gammaln(alpha) - gammaln(a + 1)
            - alpha * np.log1p(e / beta) - a * np.log1p(beta / e))


def _log_survival(n_star: int, e: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """log P(a >= N*) of one negative binomial component."""
    if n_star == 1:
        # 1 − (β/(β+E))^α, without cancellation when E is small
        return np.log(-np.expm1(-alpha * np.log1p(e / beta)))
    # P(X >= k) = I_{E/(β+E)}(k, α), the regularised incomplete beta
    return np.log(betainc(float(n_star), alpha, e / (beta + e)))


def _loglik_terms(a: np.ndarray, e: np.ndarray, theta: Sequence[float], n_star: int,
                  grad: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Per pair log-likelihood and (optionally) its gradient with respect to
    (α1, β1, α2, β2, P), shape (n, 5)."""
    a1, b1, a2, b2, p = theta
    lp, lq = math.log(p), math.log1p(-p)
    lf1, lf2 = log_nb(a, e, a1, b1), log_nb(a, e, a2, b2)
    l1, l2 = lp + lf1, lq + lf2
    lm = np.logaddexp(l1, l2)
    ls1, ls2 = _log_survival(n_star, e, a1, b1), _log_survival(n_star, e, a2, b2)
    lt1, lt2 = lp + ls1, lq + ls2
    ls = np.logaddexp(lt1, lt2)
    ll = lm - ls
    if not grad:
        return ll, None
    r1, r2 = np.exp(l1 - lm), np.exp(l2 - lm)      # posterior weights of the components at a
    t1, t2 = np.exp(lt1 - ls), np.exp(lt2 - ls)    # their shares of P(a >= N*)

    def dnb(k: np.ndarray | float, alpha: float, beta: float) -> tuple[np.ndarray, np.ndarray]:
        # d log NB(k) / dα and / dβ; the β term as one fraction to avoid cancellation
        return (digamma(alpha + k) - digamma(alpha) - np.log1p(e / beta),
                (alpha * e - k * beta) / (beta * (beta + e)))

    def dlogs(ls_i: np.ndarray, alpha: float, beta: float) -> tuple[np.ndarray, np.ndarray]:
        # d log S / dθ = −Σ_{k<N*} f(k) · d log f(k)/dθ / S
        da = np.zeros_like(e)
        db = np.zeros_like(e)
        for k in range(n_star):
            share = np.exp(log_nb(k, e, alpha, beta) - ls_i)
            ga, gb = dnb(float(k), alpha, beta)
            da -= share * ga
            db -= share * gb
        return da, db

    g = np.empty((a.size, 5))
    ga1, gb1 = dnb(a, a1, b1)
    ga2, gb2 = dnb(a, a2, b2)
    sa1, sb1 = dlogs(ls1, a1, b1)
    sa2, sb2 = dlogs(ls2, a2, b2)
    g[:, 0] = r1 * ga1 - t1 * sa1
    g[:, 1] = r1 * gb1 - t1 * sb1
    g[:, 2] = r2 * ga2 - t2 * sa2
    g[:, 3] = r2 * gb2 - t2 * sb2
    g[:, 4] = (r1 - t1) / p - (r2 - t2) / (1 - p)
    return ll, g


def pair_log_likelihood(a: ArrayLike, e: ArrayLike, theta: Sequence[float], n_star: int = 1) -> np.ndarray:
    """Per pair log of the truncated mixture term f(a) / (1 − F(N*−1)), where
    f = P·NB(α1, β1) + (1−P)·NB(α2, β2) at the pair's E. Counts below N*
    are refused (ValueError): the caller leaves them out."""
    n_star = _n_star(n_star)
    th = _check_theta(theta)
    a_ = _counts(a, n_star)
    e_ = _expected(e)
    a_, e_ = np.broadcast_arrays(a_, e_)
    if a_.size == 0:
        return np.empty(a_.shape)
    ll, _ = _loglik_terms(a_.ravel(), e_.ravel(), th, n_star, grad=False)
    return ll.reshape(a_.shape)


def _weights(w: ArrayLike | None, n: int) -> np.ndarray:
    if w is None:
        return np.ones(n)
    arr = np.asarray(w, dtype=np.float64).ravel()
    if arr.size != n:
        raise ValueError(f"weights w have {arr.size} values for {n} points")
    if arr.size and not (np.all(np.isfinite(arr)) and arr.min() >= 0):
        raise ValueError("weights w must be finite and >= 0")
    return arr


def neg_log_likelihood(theta: Sequence[float], a: ArrayLike, e: ArrayLike, w: ArrayLike | None = None,
                       n_star: int = 1) -> float:
    """−Σ w · :func:`pair_log_likelihood` (w = 1 for every pair when None)."""
    ll = pair_log_likelihood(a, e, theta, n_star).ravel()
    return float(-np.sum(_weights(w, ll.size) * ll))


# ---------------------------------------------------------------- the fit

def _to_x(theta: Sequence[float]) -> np.ndarray:
    a1, b1, a2, b2, p = theta
    return np.array([math.log(a1), math.log(b1), math.log(a2), math.log(b2), math.log(p / (1 - p))])


def _from_x(x: np.ndarray) -> tuple[float, float, float, float, float]:
    a1, b1, a2, b2 = (math.exp(float(v)) for v in x[:4])
    z = float(x[4])
    p = 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))
    return a1, b1, a2, b2, p


def _canonical(theta: tuple[float, float, float, float, float]) -> tuple[float, float, float, float, float]:
    """The mixture is the same with its components swapped (and P -> 1−P):
    component 1 is the one with the larger prior mean α/β."""
    a1, b1, a2, b2, p = theta
    if a1 / b1 < a2 / b2:
        return a2, b2, a1, b1, 1 - p
    return theta


def _one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """L-BFGS-B calls BLAS on vectors of five; a threaded OpenBLAS spends far more
    time waking its threads than computing, worst on a loaded machine (measured
    on two busy cores: 0.3 s with one thread, 3 s with two). Limited to one
    thread when threadpoolctl is installed, otherwise left as it is."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


@dataclass
class _Start:
    theta: tuple[float, float, float, float, float]
    nll: float
    success: bool
    gradient: float
    at_bound: list[str]
    iterations: int
    message: str

    @property
    def blocking_bounds(self) -> list[str]:
        """The bounds reached that make the optimum degenerate: every bound
        but a shape α at either of its bounds. There the likelihood has a
        finite limit — at the lower bound the component is in effect a
        log-series distribution (the likelihood is truncated at N* >= 1), at
        the upper bound, with its rate inside the box, a point mass at α/β
        (a Poisson component) — so the maximum on the boundary is a true
        constrained maximum, not a runaway."""
        return [n for n in self.at_bound if n not in self.shape_limits]

    shape_limits: list[str] = field(default_factory=list)

    @property
    def converged(self) -> bool:
        return (self.success and self.gradient <= GRADIENT_TOL and not self.blocking_bounds
                and math.isfinite(self.nll))

    def why_not(self) -> str:
        if not math.isfinite(self.nll):
            return "the likelihood is not finite there"
        if not self.success:
            return f"L-BFGS-B stopped short: {self.message}"
        if self.blocking_bounds:
            return f"{', '.join(self.blocking_bounds)} at the bound of the parameter space"
        if self.gradient > GRADIENT_TOL:
            return f"its gradient still {self.gradient:.2g}, above {GRADIENT_TOL:g}"
        return "converged"


def _run_start(objective: Callable[[np.ndarray], tuple[float, np.ndarray]], start: Sequence[float],
               bounds: list[tuple[float, float]], maxiter: int, total: float) -> _Start:
    """One L-BFGS-B run of the mean objective from ``start``, and how it ended."""
    x0 = np.clip(_to_x(start), _LOWER, _UPPER)
    with np.errstate(all="ignore"):
        res = minimize(objective, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"maxiter": int(maxiter), "ftol": 1e-13, "gtol": 1e-9, "maxls": 50})
        f, g = objective(res.x)
    x = res.x
    # projected gradient: at a bound, a component pointing out of the box counts as zero
    pg = np.where((x <= _LOWER + BOUND_TOL) & (g > 0), 0.0, g)
    pg = np.where((x >= _UPPER - BOUND_TOL) & (pg < 0), 0.0, pg)
    at_bound = [n for n, v, lo, hi in zip(_NAMES, x, _LOWER, _UPPER, strict=True)
                if v <= lo + BOUND_TOL or v >= hi - BOUND_TOL]
    # a shape at either bound; and a rate at its upper bound beside its shape at
    # the upper bound (the point mass α/β, with a mean below 1, needs β -> ∞ too)
    limits = [n for n in at_bound if n.startswith("alpha")]
    limits += [f"beta{i}" for i in "12" if f"alpha{i}" in at_bound and f"beta{i}" in at_bound
               and x[_NAMES.index(f"alpha{i}")] >= _UPPER[0] - BOUND_TOL
               and x[_NAMES.index(f"beta{i}")] >= _UPPER[1] - BOUND_TOL]
    return _Start(theta=_from_x(x), nll=f * total, success=bool(res.success), gradient=float(np.max(np.abs(pg))),
                  at_bound=at_bound, iterations=int(res.nit), message=str(res.message), shape_limits=limits)


def fit_prior(a: ArrayLike, e: ArrayLike, w: ArrayLike | None, n_star: int = 1,
              starts: Sequence[Sequence[float]] | None = None, *, maxiter: int = MAXITER) -> Prior:
    """Maximum-likelihood θ from points (a, E, weight), e.g. the output of :func:`squash`.

    Minimises the weighted truncated negative log-likelihood with L-BFGS-B
    (analytic gradient) over x = (log α1, log β1, log α2, log β2, logit P)
    from each of ``starts`` (default :data:`DEFAULT_STARTS`), inside the
    bounds :data:`PARAM_BOUNDS` / :data:`P_BOUNDS`. The best converged start
    (see :data:`GRADIENT_TOL`) is returned with component 1 the one of larger
    mean; ``converged`` is true when a second converged start agrees with it
    on the likelihood to :data:`AGREEMENT_RTOL`. Raises ValueError on counts
    below N* or E <= 0, and :class:`PriorFitError` when no start converges."""
    n_star = _n_star(n_star)
    a_ = _counts(a, n_star).ravel()
    e_ = _expected(e).ravel()
    if a_.size != e_.size:
        raise ValueError(f"a has {a_.size} values and E {e_.size}")
    w_ = _weights(w, a_.size)
    if a_.size == 0 or w_.sum() <= 0:
        raise ValueError("the prior fit needs at least one point with a positive weight")
    keep = w_ > 0
    a_, e_, w_ = a_[keep], e_[keep], w_[keep]
    total = float(w_.sum())
    start_list = [_check_theta(s) for s in (DEFAULT_STARTS if starts is None else starts)]
    if not start_list:
        raise ValueError("the prior fit needs at least one start")
    bounds = [(float(lo), float(hi)) for lo, hi in zip(_LOWER, _UPPER, strict=True)]

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        th = _from_x(x)
        ll, g = _loglik_terms(a_, e_, th, n_star, grad=True)
        assert g is not None
        # plain reductions, not BLAS: a threaded BLAS spins on a loaded machine for these small products
        f = -float(np.sum(w_ * ll)) / total
        if not math.isfinite(f):
            return math.inf, np.zeros(5)
        d = -np.sum(g * w_[:, None], axis=0) / total
        # chain rule to (log α, log β, logit P)
        scale = np.array([th[0], th[1], th[2], th[3], th[4] * (1 - th[4])])
        return f, d * scale

    results: list[_Start] = []
    with _one_blas_thread():
        for s in start_list:
            results.append(_run_start(objective, s, bounds, maxiter, total))

    good = sorted((r for r in results if r.converged), key=lambda r: r.nll)
    if not good:
        finite = [r for r in results if math.isfinite(r.nll)]
        best = min(finite, key=lambda r: r.nll) if finite else results[0]
        raise PriorFitError(
            f"the MGPS prior fit did not converge: {len(results)} starts tried on {a_.size} points "
            f"({total:g} pairs) and none converged inside the bounds (the best ended at negative "
            f"log-likelihood {best.nll:.6g}, {best.why_not()}); check the pairs' counts and "
            "expected values (a screen needs pairs of varied a and E), or give other starting values."
        )
    best = good[0]
    confirmed = len(good) > 1 and abs(good[1].nll - best.nll) <= AGREEMENT_RTOL * max(abs(best.nll), 1.0)
    theta = _canonical(best.theta)
    lo, hi = PARAM_BOUNDS
    limits = ",".join(n for n, v in zip(("alpha1", "alpha2"), (theta[0], theta[2]), strict=True)
                      if v <= lo * (1 + 1e-3) or v >= hi * (1 - 1e-3))
    return Prior(*theta, shapes_at_bound=limits, n_star=n_star, points=int(a_.size), pairs=int(round(total)),
                 fit_neg_log_likelihood=neg_log_likelihood(theta, a_, e_, w_, n_star),
                 converged=confirmed,
                 optimizer=f"scipy.optimize.minimize L-BFGS-B on (log alpha, log beta, logit p), "
                           f"{len(results)} starts",
                 iterations=best.iterations, starts=len(results))


# ---------------------------------------------------------------- posterior

def _theta_of(prior_or_theta: Prior | Sequence[float]) -> tuple[float, float, float, float, float]:
    if isinstance(prior_or_theta, Prior):
        return _check_theta(prior_or_theta.theta())
    return _check_theta(prior_or_theta)


def _mixture_quantile(prob: float, q: np.ndarray, s1: np.ndarray, r1: np.ndarray,
                      s2: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """The prob-quantile of Q·Γ(s1, rate r1) + (1−Q)·Γ(s2, rate r2), elementwise.

    The mixture's CDF is a convex combination of the components' CDFs, so its
    quantile lies between theirs: that bracket is searched on u = log x by
    Newton's method from the Q-weighted point between them, a step that would
    leave the bracket (which every CDF evaluation narrows) replaced by
    bisection, all pairs at once. A pair is
    done when its step or its bracket is below QUANTILE_LOG_WIDTH."""
    x1 = gammaincinv(s1, prob) / r1
    x2 = gammaincinv(s2, prob) / r2
    tiny = np.finfo(np.float64).tiny
    u1, u2 = np.log(np.maximum(x1, tiny)), np.log(np.maximum(x2, tiny))
    lo, hi = np.minimum(u1, u2), np.maximum(u1, u2)
    # start between the components' quantiles by the posterior weight: exact when Q is 0 or 1
    u = q * u1 + (1 - q) * u2
    lg1, lg2 = gammaln(s1), gammaln(s2)
    todo = np.flatnonzero(hi - lo > QUANTILE_LOG_WIDTH)
    # Newton converges in a handful of steps; a bracket is at most ~1420 wide in log x (the range of
    # a double), which bisection alone would close in 47 halvings: the cap is a safety net only
    for _ in range(200):
        if todo.size == 0:
            break
        ut, lt, ht = u[todo], lo[todo], hi[todo]
        qt, a1, b1, a2, b2 = q[todo], s1[todo], r1[todo], s2[todo], r2[todo]
        x = np.exp(ut)
        g = qt * gammainc(a1, b1 * x) + (1 - qt) * gammainc(a2, b2 * x) - prob
        below = g < 0
        lt = np.where(below, ut, lt)
        ht = np.where(below, ht, ut)
        # dF/du = x·pdf(x), each component's term written in logs to stay finite
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            dens = (qt * np.exp(a1 * np.log(b1 * x) - b1 * x - lg1[todo])
                    + (1 - qt) * np.exp(a2 * np.log(b2 * x) - b2 * x - lg2[todo]))
            un = ut - g / dens
        bisect = ~np.isfinite(un) | (un < lt) | (un > ht)
        un = np.where(bisect, 0.5 * (lt + ht), un)
        u[todo], lo[todo], hi[todo] = un, lt, ht
        done = (np.abs(un - ut) <= QUANTILE_LOG_WIDTH) | (ht - lt <= QUANTILE_LOG_WIDTH) | (g == 0)
        todo = todo[~done]
    return np.exp(u)


def posterior(a: ArrayLike, e: ArrayLike, prior_or_theta: Prior | Sequence[float]) -> dict[str, np.ndarray]:
    """Q, EBGM, EB05 and EB95 of each pair (a >= 0, E > 0) under θ:

    - Q = P·f1(a) / (P·f1(a) + (1−P)·f2(a)), f_i the components' NB pmfs;
    - EBGM = exp(Q·(ψ(α1+a) − ln(β1+E)) + (1−Q)·(ψ(α2+a) − ln(β2+E)));
    - EB05, EB95: the 5 % and 95 % quantiles of Q·Γ(α1+a, β1+E) + (1−Q)·Γ(α2+a, β2+E).
    """
    a1, b1, a2, b2, p = _theta_of(prior_or_theta)
    a_, e_ = np.broadcast_arrays(_counts(a, 0), _expected(e))
    shape = a_.shape
    a_, e_ = a_.ravel().astype(np.float64), e_.ravel().astype(np.float64)
    if a_.size == 0:
        return {k: np.empty(shape) for k in ("q", "ebgm", "eb05", "eb95")}
    l1 = math.log(p) + log_nb(a_, e_, a1, b1)
    l2 = math.log1p(-p) + log_nb(a_, e_, a2, b2)
    q = np.exp(l1 - np.logaddexp(l1, l2))
    s1, r1, s2, r2 = a1 + a_, b1 + e_, a2 + a_, b2 + e_
    ebgm = np.exp(q * (digamma(s1) - np.log(r1)) + (1 - q) * (digamma(s2) - np.log(r2)))
    out = {
        "q": q,
        "ebgm": ebgm,
        "eb05": _mixture_quantile(0.05, q, s1, r1, s2, r2),
        "eb95": _mixture_quantile(0.95, q, s1, r1, s2, r2),
    }
    return {k: v.reshape(shape) for k, v in out.items()}


def ic_intervals(a: ArrayLike, e: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BCPNN information component with Norén's shrinkage: IC = log2((a+0.5)/(E+0.5));
    IC025, IC975 = log2 of the 2.5 % and 97.5 % quantiles of Gamma(shape a+0.5, rate E+0.5)."""
    a_, e_ = np.broadcast_arrays(_counts(a, 0), _expected(e))
    a_, e_ = a_.astype(np.float64), e_.astype(np.float64)
    shape, rate = a_ + 0.5, e_ + 0.5
    ic = np.log2(shape / rate)
    return ic, np.log2(gammaincinv(shape, 0.025) / rate), np.log2(gammaincinv(shape, 0.975) / rate)


def score_frame(pdf: pd.DataFrame, prior: Prior) -> pd.DataFrame:
    """A copy of ``pdf`` (columns ``a`` and ``expected`` at least) with the float
    columns of :data:`SCORE_COLUMNS` added; for ``mapInPandas`` batches."""
    missing = [c for c in ("a", "expected") if c not in pdf.columns]
    if missing:
        raise ValueError(f"score_frame needs columns a and expected; missing: {', '.join(missing)}")
    out = pdf.copy()
    a = out["a"].to_numpy(dtype=np.float64)
    e = out["expected"].to_numpy(dtype=np.float64)
    post = posterior(a, e, prior)
    ic, ic025, ic975 = ic_intervals(a, e)
    cols = {**post, "ic": ic, "ic025": ic025, "ic975": ic975}
    for c in SCORE_COLUMNS:
        out[c] = np.asarray(cols[c], dtype=np.float64)
    return out


# ---------------------------------------------------------------- squashing

def squash(a: ArrayLike, e: ArrayLike, w: ArrayLike | None = None,
           bins_per_decade: int = 50) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points (a, E, weight) for the prior fit, from pairs (a, E[, w]).

    Pairs of the same a whose E fall in the same bin k = floor(bins_per_decade ·
    log10 E) become one point: its E is the weighted mean E of the bin, its
    weight the bin's total weight (its number of pairs when w is None). The
    points are therefore at most (#distinct a) × (bins spanned by the E range,
    floor(b·log10 Emax) − floor(b·log10 Emin) + 1), whatever the number of
    pairs; within a bin E varies by a factor of at most 10^(1/b) (4.7 % at b = 50).
    Points come sorted by a, then bin."""
    if int(bins_per_decade) != bins_per_decade or bins_per_decade < 1:
        raise ValueError(f"bins_per_decade must be a whole number >= 1, got {bins_per_decade!r}")
    a_ = _counts(a, 0).ravel()
    e_ = _expected(e).ravel()
    if a_.size != e_.size:
        raise ValueError(f"a has {a_.size} values and E {e_.size}")
    w_ = _weights(w, a_.size)
    if a_.size == 0:
        return np.empty(0, dtype=np.int64), np.empty(0), np.empty(0)
    k = np.floor(np.log10(e_) * bins_per_decade).astype(np.int64)
    keys, inverse = np.unique(np.stack([a_.astype(np.int64), k], axis=1), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    weight = np.bincount(inverse, weights=w_, minlength=len(keys))
    e_sum = np.bincount(inverse, weights=w_ * e_, minlength=len(keys))
    count = np.bincount(inverse, minlength=len(keys))
    # a bin whose weights are all 0 keeps the plain mean of its E
    plain = np.bincount(inverse, weights=e_, minlength=len(keys)) / count
    with np.errstate(invalid="ignore", divide="ignore"):
        e_point = np.where(weight > 0, e_sum / weight, plain)
    return keys[:, 0].copy(), e_point, weight
