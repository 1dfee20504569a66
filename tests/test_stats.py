"""faerslake.stats against independent implementations (statsmodels, scipy) and
hand-worked tables: ROR and CI, Haldane correction, null ROR, Fisher, BH, PRR, MH."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from faerslake import stats
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2_contingency, fisher_exact, norm
from statsmodels.stats.contingency_tables import StratifiedTable, Table2x2
from statsmodels.stats.multitest import multipletests

# statsmodels uses norm.ppf(0.975); the spec writes 1.959964 (rel. diff 1e-8).
REL = 1e-7

TABLES = [
    (10, 90, 20, 380),
    (3, 1000, 150, 20000),
    (57, 4123, 1310, 55365),
    (1, 1, 1, 1),
    (250, 30, 12, 900),
]
ZERO_CELL_TABLES = [(0, 157, 40, 1134), (5, 0, 7, 9), (4, 6, 0, 11), (8, 3, 2, 0), (0, 1, 1, 0)]
DEGENERATE_TABLES = [
    (0, 0, 10, 20),  # no exposed reports
    (5, 6, 0, 0),  # no controls
    (0, 12, 0, 30),  # nobody has the event
    (7, 0, 9, 0),  # everybody has the event
    (0, 0, 0, 0),  # empty cohort
]


@pytest.mark.parametrize("t", TABLES)
def test_ror_and_ci_match_statsmodels(t):
    a, b, c, d = t
    r = stats.ror_ci(a, b, c, d)
    ref = Table2x2(np.array([[a, b], [c, d]]))
    lo, hi = ref.oddsratio_confint(alpha=0.05, method="normal")
    assert r.haldane_corrected is False
    assert r.ror == pytest.approx(ref.oddsratio, rel=1e-12)
    assert r.ci_lower == pytest.approx(lo, rel=REL)
    assert r.ci_upper == pytest.approx(hi, rel=REL)


@pytest.mark.parametrize("t", ZERO_CELL_TABLES)
def test_zero_cell_gets_haldane_correction(t):
    a, b, c, d = t
    r = stats.ror_ci(a, b, c, d)
    # statsmodels' shift_zeros only replaces the zero cells; Haldane adds 0.5 to all four
    ref = Table2x2(np.array([[a, b], [c, d]], dtype=float) + 0.5, shift_zeros=False)
    lo, hi = ref.oddsratio_confint(alpha=0.05, method="normal")
    assert r.haldane_corrected is True
    assert r.ror == pytest.approx(ref.oddsratio, rel=1e-12)
    assert r.ci_lower == pytest.approx(lo, rel=REL)
    assert r.ci_upper == pytest.approx(hi, rel=REL)


def test_hand_worked_tables():
    # (10/90)/(20/380) = 2.1111...; se = sqrt(1/10+1/90+1/20+1/380) = 0.40704...
    r = stats.ror_ci(10, 90, 20, 380)
    assert r.ror == pytest.approx(19 / 9, rel=1e-12)
    se = math.sqrt(1 / 10 + 1 / 90 + 1 / 20 + 1 / 380)
    assert se == pytest.approx(0.404651, abs=1e-6)
    assert r.ci_lower == pytest.approx(19 / 9 * math.exp(-1.959964 * se), rel=1e-12)
    assert r.ci_lower == pytest.approx(0.955149, abs=1e-6)
    assert r.ci_upper == pytest.approx(4.666066, abs=1e-6)
    # Haldane: a=0 -> (0.5/157.5)/(40.5/1134.5) = 0.088928...
    h = stats.ror_ci(0, 157, 40, 1134)
    assert h.ror == pytest.approx((0.5 / 157.5) / (40.5 / 1134.5), rel=1e-12)
    assert h.ror == pytest.approx(0.088928, abs=1e-6)
    assert h.haldane_corrected is True


@pytest.mark.parametrize("t", DEGENERATE_TABLES)
def test_whole_zero_row_or_column_gives_null(t):
    r = stats.ror_ci(*t)
    assert (r.ror, r.ci_lower, r.ci_upper) == (None, None, None)
    assert r.haldane_corrected is False
    # study-spec §4: p = 1, as scipy's fisher_exact (and R's fisher.test) return it
    assert stats.fisher_p(*t) == 1.0 == fisher_exact([[t[0], t[1]], [t[2], t[3]]])[1]


@pytest.mark.parametrize("t", TABLES + ZERO_CELL_TABLES)
def test_fisher_p_matches_scipy_on_uncorrected_table(t):
    a, b, c, d = t
    expected = fisher_exact([[a, b], [c, d]], alternative="two-sided")[1]
    assert stats.fisher_p(a, b, c, d) == pytest.approx(expected, rel=1e-12)


def test_fisher_p_hand_worked():
    # [[3,1],[1,3]]: tables with a=0..4 have probs 1,16,36,16,1 /70; two-sided
    # p sums those as extreme as a=3 (prob 16/70): (1+16+16+1)/70.
    assert stats.fisher_p(3, 1, 1, 3) == pytest.approx(34 / 70, rel=1e-12)


def test_bh_matches_statsmodels_and_skips_nulls():
    ps = [0.01, 0.04, 0.03, 0.2, 0.5, 0.001, 0.04]
    expected = multipletests(ps, method="fdr_bh")[1]
    got = stats.bh_qvalues(ps)
    assert got == pytest.approx(list(expected), rel=1e-12)
    # a null p is not a test: m counts only real p-values
    with_null = [0.01, None, 0.04, float("nan"), 0.03]
    q = stats.bh_qvalues(with_null)
    ref = multipletests([0.01, 0.04, 0.03], method="fdr_bh")[1]
    assert q[1] is None and q[3] is None
    assert [q[0], q[2], q[4]] == pytest.approx(list(ref), rel=1e-12)
    assert stats.bh_qvalues([]) == []
    assert stats.bh_qvalues([None]) == [None]


def test_bh_hand_worked():
    # p sorted 0.01, 0.02, 0.03, 0.5 (m=4): raw p*m/rank = .04, .04, .04, .5
    assert stats.bh_qvalues([0.03, 0.5, 0.01, 0.02]) == pytest.approx([0.04, 0.5, 0.04, 0.04])
    # monotone from the top and capped at 1
    assert stats.bh_qvalues([0.9, 0.95]) == pytest.approx([0.95, 0.95])


@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=30))
@settings(max_examples=150, deadline=None)
def test_bh_property_against_statsmodels(ps):
    expected = multipletests(ps, method="fdr_bh")[1]
    assert stats.bh_qvalues(ps) == pytest.approx(list(expected), rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("t", TABLES + ZERO_CELL_TABLES + [(5, 5, 5, 5), (6, 5, 5, 5)])
def test_prr_and_yates_chi2(t):
    a, b, c, d = t
    prr, chi2 = stats.prr_chi2(a, b, c, d)
    if c > 0:
        assert prr == pytest.approx((a / (a + b)) / (c / (c + d)), rel=1e-12)
    else:
        assert prr is None
    if stats.degenerate(a, b, c, d):
        assert chi2 is None
    else:
        ref = chi2_contingency(np.array([[a, b], [c, d]]), correction=True)[0]
        assert chi2 == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_prr_hand_worked():
    prr, chi2 = stats.prr_chi2(10, 90, 20, 380)
    assert prr == pytest.approx(0.1 / 0.05)
    # N(|ad-bc|-N/2)^2 / (100*400*30*470) = 500*(2000-250)^2/564e6
    assert chi2 == pytest.approx(500 * 1750**2 / (100 * 400 * 30 * 470))
    assert stats.prr_chi2(5, 5, 5, 5)[1] == 0.0  # Yates never goes below zero


@pytest.mark.parametrize("t", TABLES)
def test_prr_ci_matches_statsmodels_riskratio(t):
    a, b, c, d = t
    r = stats.prr_ci(a, b, c, d)
    ref = Table2x2(np.array([[a, b], [c, d]]))
    lo, hi = ref.riskratio_confint(alpha=0.05, method="normal")
    assert r.haldane_corrected is False
    assert r.prr == pytest.approx(ref.riskratio, rel=1e-12)
    assert r.prr == pytest.approx(stats.prr_chi2(a, b, c, d)[0], rel=1e-12)  # the uncorrected prr column
    assert r.ci_lower == pytest.approx(lo, rel=REL)
    assert r.ci_upper == pytest.approx(hi, rel=REL)


@pytest.mark.parametrize("t", ZERO_CELL_TABLES)
def test_prr_ci_zero_cell_gets_haldane_correction(t):
    a, b, c, d = t
    r = stats.prr_ci(a, b, c, d)
    ref = Table2x2(np.array([[a, b], [c, d]], dtype=float) + 0.5, shift_zeros=False)
    lo, hi = ref.riskratio_confint(alpha=0.05, method="normal")
    assert r.haldane_corrected is True
    assert r.prr == pytest.approx(ref.riskratio, rel=1e-12)
    assert r.ci_lower == pytest.approx(lo, rel=REL)
    assert r.ci_upper == pytest.approx(hi, rel=REL)


@pytest.mark.parametrize("t", DEGENERATE_TABLES)
def test_prr_ci_whole_zero_row_or_column_gives_null(t):
    assert stats.prr_ci(*t) == stats.PrrResult(None, None, None, False)


def test_prr_ci_hand_worked():
    # (10/100)/(20/400) = 2; se = sqrt(1/10 - 1/100 + 1/20 - 1/400) = sqrt(0.1375) = 0.370810...
    r = stats.prr_ci(10, 90, 20, 380)
    se = math.sqrt(0.1375)
    assert r.prr == pytest.approx(2.0, rel=1e-12)
    assert r.ci_lower == pytest.approx(2 * math.exp(-1.959964 * se), rel=1e-12)
    assert r.ci_lower == pytest.approx(0.966932, abs=1e-6)
    assert r.ci_upper == pytest.approx(4.136795, abs=1e-6)
    # a = 0: 0.5 on every cell, (0.5/158)/(40.5/1175) = 0.09181...
    h = stats.prr_ci(0, 157, 40, 1134)
    assert h.prr == pytest.approx((0.5 / 158) / (40.5 / 1175), rel=1e-12) and h.haldane_corrected
    with pytest.raises(ValueError, match="cell c must be a non-negative whole number"):
        stats.prr_ci(1, 2, -1, 4)


@given(st.tuples(*[st.integers(min_value=0, max_value=400)] * 4))
@settings(max_examples=200, deadline=None)
def test_ror_property_against_statsmodels(t):
    a, b, c, d = t
    r = stats.ror_ci(a, b, c, d)
    if stats.degenerate(a, b, c, d):
        assert r.ror is None
        return
    haldane = min(t) == 0
    ref = Table2x2(np.array([[a, b], [c, d]], dtype=float) + (0.5 if haldane else 0.0),
                   shift_zeros=False)
    lo, hi = ref.oddsratio_confint(alpha=0.05, method="normal")
    assert r.haldane_corrected == haldane
    assert r.ror == pytest.approx(ref.oddsratio, rel=1e-9)
    assert r.ci_lower == pytest.approx(lo, rel=REL)
    assert r.ci_upper == pytest.approx(hi, rel=REL)


def test_mantel_haenszel_matches_statsmodels():
    strata = [(10, 90, 20, 380), (3, 40, 15, 200), (22, 130, 60, 700), (0, 12, 4, 50)]
    got = stats.mantel_haenszel(strata)
    ref = StratifiedTable([np.array([[a, b], [c, d]], dtype=float) for a, b, c, d in strata])
    lo, hi = ref.oddsratio_pooled_confint(alpha=0.05)
    assert got.strata_used == 4
    assert got.ror == pytest.approx(ref.oddsratio_pooled, rel=1e-12)
    assert got.ci_lower == pytest.approx(lo, rel=REL)
    assert got.ci_upper == pytest.approx(hi, rel=REL)
    # scale factor of the CI is exactly 1.959964 (the spec's constant)
    z_ratio = math.log(got.ci_upper / got.ror) / math.log(hi / ref.oddsratio_pooled)
    assert z_ratio == pytest.approx(1.959964 / norm.ppf(0.975), rel=1e-9)


def test_mantel_haenszel_hand_worked_and_edge_cases():
    # one stratum: MH OR equals the plain odds ratio
    one = stats.mantel_haenszel([(10, 90, 20, 380)])
    assert one.ror == pytest.approx(19 / 9, rel=1e-12)
    # strata of 0 or 1 report are skipped; nothing informative -> None
    assert stats.mantel_haenszel([(0, 0, 0, 0), (1, 0, 0, 0)]) == (None, None, None, 0)
    skip = stats.mantel_haenszel([(10, 90, 20, 380), (0, 0, 0, 0), (0, 1, 0, 0)])
    assert skip.ror == pytest.approx(19 / 9, rel=1e-12) and skip.strata_used == 1
    assert stats.mantel_haenszel([(0, 10, 0, 10)]).ror is None


def test_cohort_statistics_table():
    counts = pd.DataFrame({
        "study": ["s"] * 4,
        "cohort": ["x", "empty", "zero_a", "y"],
        "exposed_reports": [100, 0, 157, 1003],
        "exposed_events": [10, 0, 0, 3],
        "control_reports": [400, 0, 1174, 20150],
        "control_events": [20, 0, 40, 150],
    })
    out = stats.cohort_statistics(counts)
    assert list(out.columns) == stats.RESULT_COLUMNS + stats.EXTRA_COLUMNS
    assert list(out["cohort"]) == ["x", "empty", "zero_a", "y"]
    assert list(out[["a", "b", "c", "d"]].iloc[0]) == [10, 90, 20, 380]
    assert out.loc[0, "ror"] == pytest.approx(19 / 9)
    # the empty cohort: no ROR, Fisher p = 1 (spec §4), and it counts in BH's m
    assert math.isnan(out.loc[1, "ror"]) and out.loc[1, "fisher_p"] == 1.0
    assert not out.loc[1, "haldane_corrected"]
    assert out.loc[2, "haldane_corrected"]
    ps = [fisher_exact(t)[1] for t in ([[10, 90], [20, 380]], [[0, 0], [0, 0]], [[0, 157], [40, 1134]],
                                       [[3, 1000], [150, 20000]])]
    assert ps[1] == 1.0  # scipy's own answer for the degenerate table
    q = multipletests(ps, method="fdr_bh")[1]  # statsmodels: BH over all four cohorts
    assert list(out["fisher_q"]) == pytest.approx(list(q), rel=1e-12)
    assert out["exposed_reports"].dtype == np.int64
    assert out["haldane_corrected"].dtype == bool


def test_cohort_statistics_rejects_bad_counts():
    bad = pd.DataFrame({"study": ["s"], "cohort": ["x"], "exposed_reports": [3],
                        "exposed_events": [4], "control_reports": [1], "control_events": [0]})
    with pytest.raises(ValueError, match="more events than reports"):
        stats.cohort_statistics(bad)
    with pytest.raises(ValueError, match="control_events"):
        stats.cohort_statistics(bad.drop(columns=["control_events"]))
    with pytest.raises(ValueError, match="non-negative"):
        stats.ror_ci(-1, 2, 3, 4)
