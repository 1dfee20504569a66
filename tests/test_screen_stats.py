"""faerslake.screen.mgps against published numbers and independent readings.

Pure numpy/scipy, no Spark: openEBGM's CAERS vignette numbers; Q, EBGM and the
posterior quantiles rebuilt here from scipy.stats (nbinom pmfs, gamma CDFs
and brentq) over a grid of (a, E); the prior fit against Nelder-Mead on a
likelihood written here with scipy.stats.nbinom; squashing; N* truncation;
failures of the fit."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from faerslake.errors import FaerslakeError
from faerslake.screen import mgps
from scipy.optimize import brentq, minimize
from scipy.special import digamma, logsumexp
from scipy.stats import gamma, nbinom

# openEBGM's CAERS vignette
CAERS_THETA = (3.25379356, 0.39988854, 2.02612692, 1.90807970, 0.06534557)
CAERS = [  # N, E, EB05, EBGM, EB95
    (16, 0.40643623, 15.68, 23.26, 33.48),
    (6, 0.07866508, 10.16, 18.28, 30.83),
    (1, 0.0360548272, 0.49, 2.23, 13.85),
]
TRUE_THETA = (0.3, 0.2, 2.0, 2.5, 0.15)  # the simulation's prior: means 1.5 and 0.8
# the fits other than the main one use three of the default starts, to keep the module fast
FEW_STARTS = mgps.DEFAULT_STARTS[:3]


# ------------------------------------------------------------ independent readings

def ref_log_f(a, e, theta):
    """log of the mixture pmf, from scipy.stats.nbinom (size α, success β/(β+E))."""
    a1, b1, a2, b2, p = theta
    return logsumexp([np.log(p) + nbinom.logpmf(a, a1, b1 / (b1 + e)),
                      np.log1p(-p) + nbinom.logpmf(a, a2, b2 / (b2 + e))], axis=0)


def ref_pmf(k, e, theta):
    """The mixture pmf at k, from scipy.stats.nbinom pmfs."""
    a1, b1, a2, b2, p = theta
    return p * nbinom.pmf(k, a1, b1 / (b1 + e)) + (1 - p) * nbinom.pmf(k, a2, b2 / (b2 + e))


def ref_nll(theta, a, e, w=None, n_star=1):
    """−Σ w log(f(a) / P(a >= N*)), P(a >= N*) from nbinom.sf."""
    a1, b1, a2, b2, p = theta
    a, e = np.asarray(a, float), np.asarray(e, float)
    w = np.ones_like(a) if w is None else np.asarray(w, float)
    surv = p * nbinom.sf(n_star - 1, a1, b1 / (b1 + e)) + (1 - p) * nbinom.sf(n_star - 1, a2, b2 / (b2 + e))
    return float(-np.sum(w * (ref_log_f(a, e, theta) - np.log(surv))))


def ref_q(a, e, theta):
    a1, b1, a2, b2, p = theta
    l1 = np.log(p) + nbinom.logpmf(a, a1, b1 / (b1 + e))
    l2 = np.log1p(-p) + nbinom.logpmf(a, a2, b2 / (b2 + e))
    return 1 / (1 + np.exp(l2 - l1))


def ref_posterior(a, e, theta):
    """Q, EBGM, EB05, EB95 of one pair: brentq on the mixture CDF of scipy gammas."""
    a1, b1, a2, b2, _ = theta
    q = float(ref_q(a, e, theta))
    ebgm = math.exp(q * (digamma(a1 + a) - math.log(b1 + e)) + (1 - q) * (digamma(a2 + a) - math.log(b2 + e)))
    g1, g2 = gamma(a1 + a, scale=1 / (b1 + e)), gamma(a2 + a, scale=1 / (b2 + e))

    def cdf(x):
        return q * g1.cdf(x) + (1 - q) * g2.cdf(x)

    def quantile(prob):
        mean = q * g1.mean() + (1 - q) * g2.mean()
        lo, hi = mean, mean
        while cdf(lo) > prob:
            lo /= 2
        while cdf(hi) < prob:
            hi *= 2
        return brentq(lambda x: cdf(x) - prob, lo, hi, xtol=1e-300, rtol=1e-13, maxiter=500)

    return q, ebgm, quantile(0.05), quantile(0.95)


def simulate(seed, n=10_000, n_star=1):
    """Pairs from TRUE_THETA, E log-uniform on [0.01, 10], truncated at a >= N*."""
    rng = np.random.default_rng(seed)
    first = rng.random(n) < TRUE_THETA[4]
    lam = np.where(first, rng.gamma(TRUE_THETA[0], 1 / TRUE_THETA[1], n), rng.gamma(TRUE_THETA[2], 1 / TRUE_THETA[3], n))
    e = 10 ** rng.uniform(-2, 1, n)
    a = rng.poisson(lam * e)
    keep = a >= n_star
    return a[keep], e[keep]


@pytest.fixture(scope="module")
def simulated():
    """A few thousand pairs (fixed seed), truncated at a >= 1."""
    return simulate(7)


@pytest.fixture(scope="module")
def squashed_fit(simulated):
    a, e = simulated
    sa, se, sw = mgps.squash(a, e)
    return sa, se, sw, mgps.fit_prior(sa, se, sw)


# ------------------------------------------------------------ 1. published numbers

@pytest.mark.parametrize("n, e, eb05, ebgm, eb95", CAERS)
def test_caers_vignette_numbers(n, e, eb05, ebgm, eb95):
    post = mgps.posterior([n], [e], CAERS_THETA)
    assert round(float(post["ebgm"][0]), 2) == ebgm
    # openEBGM's bisection stops within 0.005, so its printed quantiles are within 0.01
    assert abs(float(post["eb05"][0]) - eb05) <= 0.01
    assert abs(float(post["eb95"][0]) - eb95) <= 0.01


def test_caers_q_of_a_single_report():
    q = mgps.posterior(1, 0.0360548272, CAERS_THETA)["q"]
    assert round(float(q), 7) == 0.2819737


def test_ic_at_a_equal_e_equal_one():
    ic, lo, hi = mgps.ic_intervals(np.array([1]), np.array([1.0]))
    assert ic[0] == 0.0
    assert round(float(lo[0]), 4) == -3.7972
    assert round(float(hi[0]), 4) == 1.6398


def test_ic_against_scipy_gamma():
    a = np.array([1, 3, 10, 250])
    e = np.array([0.01, 2.5, 10.0, 3e3])
    ic, lo, hi = mgps.ic_intervals(a, e)
    np.testing.assert_allclose(ic, np.log2((a + 0.5) / (e + 0.5)), rtol=1e-14)
    np.testing.assert_allclose(lo, np.log2(gamma.ppf(0.025, a + 0.5, scale=1 / (e + 0.5))), rtol=1e-10)
    np.testing.assert_allclose(hi, np.log2(gamma.ppf(0.975, a + 0.5, scale=1 / (e + 0.5))), rtol=1e-10)


# ------------------------------------------------------------ 2. independent reading over a grid

def test_posterior_matches_scipy_reading_on_a_grid():
    counts = [1, 2, 3, 5, 8, 13, 30, 60, 100, 200, 350, 500]
    es = np.logspace(-3, 3, 13)
    a, e = (x.ravel() for x in np.meshgrid(counts, es))
    post = mgps.posterior(a, e, CAERS_THETA)
    ref = np.array([ref_posterior(int(ai), float(ei), CAERS_THETA) for ai, ei in zip(a, e, strict=True)])
    for i, key in enumerate(("q", "ebgm", "eb05", "eb95")):
        np.testing.assert_allclose(post[key], ref[:, i], rtol=1e-6, atol=0, err_msg=key)
    # the grid reaches both regimes of Q, so the check covers the mixture, not one component
    assert post["q"].min() < 1e-6 and post["q"].max() > 1 - 1e-6
    assert ((post["q"] > 0.05) & (post["q"] < 0.95)).sum() >= 3


def test_posterior_shapes_and_edges():
    empty = mgps.posterior([], [], CAERS_THETA)
    assert set(empty) == {"q", "ebgm", "eb05", "eb95"} and all(v.shape == (0,) for v in empty.values())
    assert all(x.shape == (0,) for x in mgps.ic_intervals([], []))
    with pytest.raises(ValueError, match="E must be finite and > 0"):
        mgps.posterior([1, 2], [0.5, 0.0], CAERS_THETA)
    with pytest.raises(ValueError, match="whole numbers"):
        mgps.posterior([1.5], [0.5], CAERS_THETA)
    with pytest.raises(ValueError, match="mixing weight"):
        mgps.posterior([1], [0.5], (1, 1, 1, 1, 1.0))
    # a Prior and its θ give the same numbers
    prior = mgps.Prior(*CAERS_THETA)
    assert mgps.posterior([16], [0.40643623], prior)["eb05"][0] == mgps.posterior([16], [0.40643623], CAERS_THETA)["eb05"][0]


def test_score_frame():
    pdf = pd.DataFrame({"drug": ["X", "Y", "Z"], "pt": ["P", "Q", "R"], "a": np.array([16, 6, 1], dtype=np.int64),
                        "expected": [0.40643623, 0.07866508, 0.0360548272]})
    out = mgps.score_frame(pdf, mgps.Prior(*CAERS_THETA))
    assert list(out.columns) == ["drug", "pt", "a", "expected", *mgps.SCORE_COLUMNS]
    assert list(pdf.columns) == ["drug", "pt", "a", "expected"]  # a copy: the input is untouched
    assert all(out[c].dtype == np.float64 for c in mgps.SCORE_COLUMNS)
    assert [round(x, 2) for x in out["ebgm"]] == [23.26, 18.28, 2.23]
    assert out["ic"].tolist() == list(np.log2((pdf["a"] + 0.5) / (pdf["expected"] + 0.5)))
    empty = mgps.score_frame(pdf.iloc[:0], mgps.Prior(*CAERS_THETA))
    assert len(empty) == 0 and list(empty.columns) == list(out.columns)
    with pytest.raises(ValueError, match="missing: expected"):
        mgps.score_frame(pdf.drop(columns="expected"), mgps.Prior(*CAERS_THETA))


# ------------------------------------------------------------ likelihood and truncation

def test_likelihood_matches_nbinom_for_n_star_1_and_2():
    a = np.array([2, 3, 7, 40, 2, 150])
    e = np.array([1e-3, 0.2, 1.0, 12.0, 300.0, 80.0])
    for n_star in (1, 2):
        ll = mgps.pair_log_likelihood(a, e, CAERS_THETA, n_star=n_star)
        a1, b1, a2, b2, p = CAERS_THETA
        f_a = ref_pmf(a, e, CAERS_THETA)
        below = sum(ref_pmf(k, e, CAERS_THETA) for k in range(n_star))  # F(N*−1) as a sum of pmfs
        # 1 − F(N*−1) written as a difference loses digits when E is small (F(0) ≈ 1 at E = 1e-3):
        # mgps agrees with a 60-digit evaluation there to 5e-13, with this form to 4e-8
        np.testing.assert_allclose(ll, np.log(f_a) - np.log1p(-below), rtol=1e-7)
        surv = p * nbinom.sf(n_star - 1, a1, b1 / (b1 + e)) + (1 - p) * nbinom.sf(n_star - 1, a2, b2 / (b2 + e))
        np.testing.assert_allclose(ll, ref_log_f(a, e, CAERS_THETA) - np.log(surv), rtol=1e-10)
        assert mgps.neg_log_likelihood(CAERS_THETA, a, e, n_star=n_star) == pytest.approx(
            ref_nll(CAERS_THETA, a, e, n_star=n_star), rel=1e-12)
    np.testing.assert_allclose(mgps.log_nb(a, e, 2.0, 1.5), nbinom.logpmf(a, 2.0, 1.5 / (1.5 + e)),
                               rtol=1e-12)
    assert mgps.pair_log_likelihood([], [], CAERS_THETA).shape == (0,)
    assert mgps.neg_log_likelihood(CAERS_THETA, [], []) == 0.0


def test_n_star_2_refuses_counts_of_one():
    with pytest.raises(ValueError, match=r"counts a must be >= 2"):
        mgps.pair_log_likelihood([1, 3], [0.5, 0.5], CAERS_THETA, n_star=2)
    with pytest.raises(ValueError, match=r"counts a must be >= 2"):
        mgps.fit_prior([1, 2, 3], [0.5, 0.5, 0.5], None, n_star=2)
    with pytest.raises(ValueError, match=r"counts a must be >= 1"):
        mgps.fit_prior([0, 2, 3], [0.5, 0.5, 0.5], None)
    with pytest.raises(ValueError, match=r"E must be finite and > 0"):
        mgps.fit_prior([1, 2, 3], [0.5, -1, 0.5], None)
    with pytest.raises(ValueError, match="at least one point"):
        mgps.fit_prior([], [], None)


def test_fit_with_n_star_2():
    a, e = simulate(11, n_star=2)
    sa, se, sw = mgps.squash(a, e)
    prior = mgps.fit_prior(sa, se, sw, n_star=2, starts=FEW_STARTS)
    assert prior.n_star == 2 and prior.pairs == len(a) == 2012 and prior.converged
    # the maximum of the truncated likelihood is at least as good as the true prior under it
    fitted, true = ref_nll(prior.theta(), sa, se, sw, n_star=2), ref_nll(TRUE_THETA, sa, se, sw, n_star=2)
    assert fitted == pytest.approx(prior.fit_neg_log_likelihood, rel=1e-12)
    assert fitted < true
    # and it is not the maximum of the untruncated-at-2 likelihood: N* changes the answer
    assert ref_nll(prior.theta(), sa, se, sw, n_star=1) != pytest.approx(fitted, rel=1e-3)


# ------------------------------------------------------------ 3. the fit

def test_fit_matches_an_independent_optimiser(simulated, squashed_fit):
    a, e = simulated
    sa, se, sw, prior = squashed_fit
    assert len(a) == 3302 and prior.points == len(sa) == 754 and prior.pairs == 3302
    assert prior.converged and prior.starts == len(mgps.DEFAULT_STARTS) and prior.iterations > 0
    assert "L-BFGS-B" in prior.optimizer
    # component 1 is the one of larger mean
    assert prior.alpha1 / prior.beta1 > prior.alpha2 / prior.beta2

    # Nelder-Mead on log θ / logit P from the true prior, on the likelihood written in this file
    def to_theta(x):
        return (*np.exp(x[:4]), 1 / (1 + np.exp(-x[4])))

    def f(x):
        return ref_nll(to_theta(x), sa, se, sw)

    x = np.r_[np.log(TRUE_THETA[:4]), np.log(TRUE_THETA[4] / (1 - TRUE_THETA[4]))]
    for _ in range(2):  # restart once from its own answer (a fresh simplex)
        x = minimize(f, x, method="Nelder-Mead",
                     options={"xatol": 1e-9, "fatol": 1e-10, "maxiter": 20_000, "maxfev": 20_000, "adaptive": True}).x
    nm_theta = to_theta(x)

    # on the squashed points the fit is at least as good as Nelder-Mead
    assert ref_nll(prior.theta(), sa, se, sw) <= f(x) + 1e-6
    assert prior.fit_neg_log_likelihood == pytest.approx(ref_nll(prior.theta(), sa, se, sw), rel=1e-12)
    # on every pair, unsquashed, the two answers agree to 1e-3
    ours, theirs = ref_nll(prior.theta(), a, e), ref_nll(nm_theta, a, e)
    assert abs(ours - theirs) <= 1e-3
    assert mgps.neg_log_likelihood(prior.theta(), a, e) == pytest.approx(ours, rel=1e-12)


def test_squashing_changes_the_likelihood_little(simulated, squashed_fit):
    a, e = simulated
    sa, se, sw, prior = squashed_fit
    full = mgps.fit_prior(a, e, None, starts=FEW_STARTS)
    assert full.points == full.pairs == len(a)
    nll_all_at_squashed_fit = mgps.neg_log_likelihood(prior.theta(), a, e)
    nll_all_at_full_fit = mgps.neg_log_likelihood(full.theta(), a, e)
    # fitting the 754 points instead of the 3302 pairs costs < 1e-3 of likelihood on the pairs
    assert 0 <= nll_all_at_squashed_fit - nll_all_at_full_fit < 1e-3
    # at one θ, the squashed points' value differs from the pairs' by < 5e-5 relative
    rel = abs(prior.fit_neg_log_likelihood - nll_all_at_squashed_fit) / nll_all_at_squashed_fit
    assert 0 < rel < 5e-5


def test_fit_fails_loudly_on_data_that_cannot_be_fitted():
    # every pair a = 1 at E = 1: the likelihood rises towards a prior mean of 0, at the bounds
    with pytest.raises(mgps.PriorFitError, match=r"8 starts tried on 100 points .* at the bound") as err:
        mgps.fit_prior(np.ones(100), np.ones(100), None)
    assert isinstance(err.value, FaerslakeError) and err.value.exit_code == 2
    assert "negative log-likelihood" in str(err.value)


def test_fit_fails_loudly_when_the_optimiser_is_cut_short(squashed_fit):
    sa, se, sw, _ = squashed_fit
    with pytest.raises(mgps.PriorFitError, match=r"L-BFGS-B stopped short"):
        mgps.fit_prior(sa, se, sw, maxiter=2)


def test_fit_with_one_start_is_not_confirmed(squashed_fit):
    sa, se, sw, prior = squashed_fit
    one = mgps.fit_prior(sa, se, sw, starts=[mgps.DEFAULT_STARTS[0]])
    assert one.starts == 1 and not one.converged  # no second start to agree with
    assert one.fit_neg_log_likelihood == pytest.approx(prior.fit_neg_log_likelihood, rel=1e-6)


def test_prior_round_trips_through_json(squashed_fit):
    prior = squashed_fit[3]
    d = json.loads(json.dumps(prior.to_dict()))
    for key in ("alpha1", "beta1", "alpha2", "beta2", "p", "n_star", "pairs", "neg_log_likelihood", "converged",
                "optimizer"):
        assert key in d
    assert mgps.Prior.from_dict(d) == prior
    assert mgps.Prior.from_dict({**d, "unknown": 1}) == prior
    with pytest.raises(ValueError, match="missing: beta2"):
        mgps.Prior.from_dict({k: v for k, v in d.items() if k != "beta2"})


# ------------------------------------------------------------ squashing

def test_squash_rule():
    a = np.array([1, 1, 1, 2, 2, 1])
    # 50 bins per decade: 1.00 and 1.04 share bin 0, 1.05 is in bin 1 (log10 1.05 = 0.0212 > 0.02)
    e = np.array([1.00, 1.04, 1.05, 1.00, 0.30, 1.04])
    w = np.array([1.0, 3.0, 1.0, 2.0, 1.0, 1.0])
    sa, se, sw = mgps.squash(a, e, w)
    assert sa.tolist() == [1, 1, 2, 2]
    np.testing.assert_allclose(se, [(1.00 + 3 * 1.04 + 1.04) / 5, 1.05, 0.30, 1.00], rtol=1e-15)
    assert sw.tolist() == [5.0, 1.0, 1.0, 2.0]
    sa, se, sw = mgps.squash(a, e)
    assert sw.tolist() == [3.0, 1.0, 1.0, 1.0]
    assert all(len(x) == 0 for x in mgps.squash([], []))


def test_squash_bounds_the_points(simulated):
    a, e = simulated
    sa, se, sw = mgps.squash(a, e, bins_per_decade=50)
    span = math.floor(50 * np.log10(e.max())) - math.floor(50 * np.log10(e.min())) + 1
    assert len(sa) <= len(np.unique(a)) * span
    assert sw.sum() == len(a)
    for k in np.unique(a):  # each point's E lies within its bin, a width 10^(1/50)
        pts = se[sa == k]
        assert np.all(np.diff(np.floor(50 * np.log10(pts))) > 0)
    assert len(mgps.squash(a, e, bins_per_decade=5)[0]) < len(sa) < len(a)



def test_a_point_mass_component_is_a_boundary_maximum_not_a_failure():
    """The squashed points of a screen of a generated lake (tests/data/
    screen_points_generated.csv: 2,833 pairs of tests/test_screen.py's sample):
    its null pairs are reported as Poisson at λ ≈ 1, so the likelihood is
    highest where one component's shape runs to its upper bound (a point mass
    at α/β ≈ 1.005) and the other (2 %) holds the signals. That boundary
    maximum is taken, named in ``shapes_at_bound``, rather than the interior
    optimum 386 worse in log-likelihood that a fit refusing every bound returned."""
    from pathlib import Path

    pts = pd.read_csv(Path(__file__).parent / "data" / "screen_points_generated.csv")
    a, e, w = (pts[c].to_numpy() for c in ("a", "e", "w"))
    prior = mgps.fit_prior(a, e, w)
    assert prior.converged and prior.shapes_at_bound == "alpha2" and int(w.sum()) == prior.pairs == 2833
    assert prior.alpha2 == pytest.approx(mgps.PARAM_BOUNDS[1]) and prior.alpha2 / prior.beta2 == pytest.approx(1.0048, abs=1e-3)
    assert prior.p == pytest.approx(0.0198, abs=1e-3) and prior.fit_neg_log_likelihood == pytest.approx(5280.2039, abs=1e-3)
    interior = []
    for start in mgps.DEFAULT_STARTS:
        try:
            fit = mgps.fit_prior(a, e, w, starts=[start])
        except mgps.PriorFitError:
            continue
        assert fit.shapes_at_bound or fit.fit_neg_log_likelihood > prior.fit_neg_log_likelihood + 300
        interior.append(not fit.shapes_at_bound)
    assert any(interior)  # the worse interior optimum exists, and is not taken
