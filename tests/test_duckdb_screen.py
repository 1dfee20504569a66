"""The screen's yardstick (bench/duckdb_screen.py): its Delta file listing and its statistics.

The listing is checked on hand-written ``_delta_log`` folders (JSON commits,
a checkpoint parquet, what it must refuse); the statistics against the
published numbers of the screen's contract (openEBGM's CAERS vignette, the
IC at a = E = 1, the ROR / PRR limits of one table). No Spark here.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _yardstick():
    spec = importlib.util.spec_from_file_location("duckdb_screen", REPO / "bench" / "duckdb_screen.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("duckdb_screen", mod)
    spec.loader.exec_module(mod)
    return mod


ds = _yardstick()
META = {"metaData": {"id": "x", "format": {"provider": "parquet"}, "partitionColumns": [], "configuration": {}}}
PROTOCOL = {"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}


def _commit(table: Path, version: int, *actions: dict) -> None:
    log = table / "_delta_log"
    log.mkdir(parents=True, exist_ok=True)
    (log / f"{version:020d}.json").write_text("".join(json.dumps(a) + "\n" for a in actions))


def _add(path: str) -> dict:
    return {"add": {"path": path, "partitionValues": {}, "size": 1, "modificationTime": 0, "dataChange": True}}


def _remove(path: str) -> dict:
    return {"remove": {"path": path, "deletionTimestamp": 0, "dataChange": True}}


def test_json_commits_replayed_in_order(tmp_path: Path) -> None:
    t = tmp_path / "t"
    _commit(t, 0, PROTOCOL, META, _add("a.parquet"), _add("b%20c.parquet"))
    _commit(t, 1, _remove("a.parquet"), _add("d.parquet"))
    _commit(t, 2, _remove("b%20c.parquet"), _remove("d.parquet"), _add("e.parquet"))

    assert ds.active_files(t, 0).files == [t / "a.parquet", t / "b c.parquet"]
    assert sorted(ds.active_files(t, 1).files) == [t / "b c.parquet", t / "d.parquet"]
    latest = ds.active_files(t)
    assert (latest.version, latest.files) == (2, [t / "e.parquet"])


def test_checkpoint_then_later_commits(tmp_path: Path) -> None:
    """Commits before the checkpoint may be gone; the checkpoint's adds are the start."""
    t = tmp_path / "t"
    log = t / "_delta_log"
    log.mkdir(parents=True)
    ckpt = log / f"{3:020d}.checkpoint.parquet"
    con = duckdb.connect()
    con.execute(f"""COPY (
        SELECT * FROM (VALUES
            ({{'path': 'x.parquet', 'size': 1}}, NULL),
            ({{'path': 'y.parquet', 'size': 1}}, NULL),
            (NULL, {{'path': 'old.parquet', 'deletionTimestamp': 0}}))
            AS v("add", "remove")) TO '{ckpt}' (FORMAT parquet)""")
    con.close()
    (log / "_last_checkpoint").write_text(json.dumps({"version": 3, "size": 3}))
    _commit(t, 4, _remove("x.parquet"), _add("z.parquet"))

    assert sorted(ds.active_files(t, 3).files) == [t / "x.parquet", t / "y.parquet"]
    assert sorted(ds.active_files(t).files) == [t / "y.parquet", t / "z.parquet"]
    with pytest.raises(ds.DeltaReadError, match=r"commit\(s\) \[0, 1, 2\] missing"):
        ds.active_files(t, 2)


@pytest.mark.parametrize(("action", "says"), [
    ({"add": {"path": "a.parquet", "deletionVector": {"storageType": "u", "cardinality": 1}}}, "deletion vector"),
    ({"metaData": {"partitionColumns": ["quarter"], "configuration": {}}}, "partitioned"),
    ({"metaData": {"partitionColumns": [], "configuration": {"delta.columnMapping.mode": "name"}}}, "column mapping"),
    ({"protocol": {"minReaderVersion": 3, "readerFeatures": ["deletionVectors", "v2Checkpoint"]}}, "reader protocol"),
])
def test_refuses_what_a_file_list_would_misread(tmp_path: Path, action: dict, says: str) -> None:
    t = tmp_path / "t"
    _commit(t, 0, PROTOCOL, META, _add("ok.parquet"))
    _commit(t, 1, action)
    assert ds.active_files(t, 0).files == [t / "ok.parquet"]
    with pytest.raises(ds.DeltaReadError, match=says):
        ds.active_files(t)


def test_the_deletion_vector_feature_alone_is_read_until_a_file_carries_one(tmp_path: Path) -> None:
    """silver's protocol names deletionVectors; a full build's files carry none, an update's MERGE marks some."""
    t = tmp_path / "t"
    _commit(t, 0, {"protocol": {"minReaderVersion": 3, "minWriterVersion": 7, "readerFeatures": ["deletionVectors"],
                                "writerFeatures": ["deletionVectors"]}}, META, _add("ok.parquet"))
    assert ds.active_files(t).files == [t / "ok.parquet"]
    _commit(t, 1, {"add": {"path": "ok.parquet", "deletionVector": {"storageType": "u", "cardinality": 1}}})
    with pytest.raises(ds.DeltaReadError, match="deletion vector"):
        ds.active_files(t)


def test_posterior_matches_openebgm_caers_vignette() -> None:
    theta = (3.25379356, 0.39988854, 2.02612692, 1.90807970, 0.06534557)
    a = np.array([16.0, 6.0, 1.0])
    e = np.array([0.40643623, 0.07866508, 0.0360548272])
    post = ds.posterior(a, e, theta)
    np.testing.assert_allclose(post["ebgm"], [23.26, 18.28, 2.23], atol=0.006)
    np.testing.assert_allclose(post["eb05"], [15.68, 10.16, 0.49], atol=0.01)
    np.testing.assert_allclose(post["eb95"], [33.48, 30.83, 13.85], atol=0.01)
    assert post["q"][2] == pytest.approx(0.2819737, abs=1e-6)
    # the bisection's own precision: the mixture's CDF at EB05 is 0.05 to well within 1e-6
    from scipy import special
    s1, s2 = theta[0] + a, theta[2] + a
    r1, r2 = theta[1] + e, theta[3] + e
    q = post["q"]
    cdf = q * special.gammainc(s1, r1 * post["eb05"]) + (1 - q) * special.gammainc(s2, r2 * post["eb05"])
    np.testing.assert_allclose(cdf, 0.05, atol=1e-7)


def test_ic_ror_prr_published_values() -> None:
    ic = ds.information_component(np.array([1.0]), np.array([1.0]))
    assert (ic["ic"][0], round(ic["ic025"][0], 4), round(ic["ic975"][0], 4)) == (0.0, -3.7972, 1.6398)
    f = ds.frequentist(np.array([382]), np.array([9731]), np.array([7308]), np.array([241447]))
    assert (round(f["ror_ci_lower"][0], 4), round(f["prr_ci_lower"][0], 4)) == (1.1679, 1.1623)


def test_fit_recovers_a_known_prior_on_squashed_points() -> None:
    """Pairs drawn from a known two-gamma prior: the squashed fit's nll is at most the truth's."""
    rng = np.random.default_rng(3)
    truth = (0.5, 0.4, 3.0, 3.0, 0.15)
    n = 40_000
    e = np.exp(rng.uniform(np.log(0.01), np.log(20), n))
    first = rng.random(n) < truth[4]
    lam = np.where(first, rng.gamma(truth[0], 1 / truth[1], n), rng.gamma(truth[2], 1 / truth[3], n))
    a = rng.poisson(lam * e)
    keep = a >= 1
    a, e = a[keep].astype(float), e[keep]
    pa, pe, pw = ds.squash(a.astype(np.int64), e)
    assert pw.sum() == len(a) and len(pa) < len(a) / 5
    fit = ds.fit_prior(pa, pe, pw)
    nll_fit = -np.sum(ds.mixture_loglik(a, e, fit.theta))
    nll_truth = -np.sum(ds.mixture_loglik(a, e, truth))
    assert fit.converged
    assert nll_fit <= nll_truth + 1.0  # squashing costs at most a hair of likelihood


@pytest.mark.parametrize("n_star", [1, 2])
def test_gradient_matches_finite_differences(n_star: int) -> None:
    rng = np.random.default_rng(5)
    a = rng.integers(n_star, 30, 200).astype(float)
    e = np.exp(rng.uniform(-4, 3, 200))
    w = rng.integers(1, 5, 200).astype(float)
    x = np.array([np.log(0.7), np.log(0.3), np.log(2.5), np.log(1.7), -1.2])
    v, g = ds.weighted_nll_and_grad(x, a, e, w, n_star)
    assert v == pytest.approx(-np.dot(w, ds.mixture_loglik(a, e, ds._theta(x), n_star)), rel=1e-12)
    h = 1e-6
    fd = [(ds.weighted_nll_and_grad(x + h * np.eye(5)[i], a, e, w, n_star)[0]
           - ds.weighted_nll_and_grad(x - h * np.eye(5)[i], a, e, w, n_star)[0]) / (2 * h) for i in range(5)]
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_star", [1, 3])
def test_truncation_accurate_when_p0_is_near_one(n_star: int) -> None:
    """P(a >= N*) where P(0) is within 1e-9 of 1 (tiny α or E): no cancellation (nbinom.sf agrees)."""
    from scipy import stats
    e = np.array([1e-6, 1e-3, 0.5, 40.0])
    for alpha, beta in [(1e-7, 0.3), (2.0, 1.9), (1e-4, 1e4)]:
        want = stats.nbinom.sf(n_star - 1, alpha, beta / (beta + e))
        np.testing.assert_allclose(ds._survival(n_star, e, alpha, beta), want, rtol=1e-6)
