"""The functions Spark runs in its Python workers (``mapInPandas``): kept in
a module that imports only numpy, pandas and :mod:`.mgps`, so a worker
never imports Spark-side code to run them."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from faerslake.screen import mgps


def score_batches(batches: Iterator[pd.DataFrame], prior: mgps.Prior) -> Iterator[pd.DataFrame]:
    """Each batch of pairs with its Bayesian columns (:func:`mgps.score_frame`)."""
    for pdf in batches:
        yield mgps.score_frame(pdf, prior)


def loglik_batches(batches: Iterator[pd.DataFrame], theta: tuple, n_star: int) -> Iterator[pd.DataFrame]:
    """One row per batch: the sum of its pairs' log-likelihood terms and their number."""
    for pdf in batches:
        ll = mgps.pair_log_likelihood(pdf["a"].to_numpy(), pdf["expected"].to_numpy(), theta, n_star)
        yield pd.DataFrame({"ll": [float(np.sum(ll))], "n": [len(pdf)]})
