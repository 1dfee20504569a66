"""The screen's per-pair cost at archive-like pair counts, which the bench's lakes cannot reach.

Place in the project: outside the pipeline; ``bench/screen_bench.py`` runs it
once after the two sizes. The synthetic lakes have a few thousand drug–event
pairs whatever their size (the generator's vocabularies are small), while the
archive has several million: the per-pair part of a screen (the prior's
likelihood over every pair, the scoring, the gold table, signals.csv, the
report's queries) is measured here on ``--pairs`` synthetic pairs, with the
job's own functions after the counting (:func:`faerslake.screen.counts.with_frequentist`,
:func:`faerslake.screen.job.fit_on_squashed`, :func:`~faerslake.screen.job.score_pairs`,
a Delta write, :func:`~faerslake.screen.job.screen_grid`,
:func:`~faerslake.screen.job.write_signals_csv`), and with the yardstick's
numpy code (``bench/duckdb_screen.py``) on the very same pairs.

The pairs are drawn once (numpy, a fixed seed) as the screen's model says
(E log-uniform over 1e-3..1e2, λ from openEBGM's CAERS prior, a ~ Poisson(λE),
a >= 1) and written to a parquet file that both sides read, so Spark and
numpy see identical a, b, c, d and E. Prints one
JSON object: per size, wall seconds per phase and CPU seconds of the whole
process tree (the JVM and the Python workers included).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
N_REPORTS = 20_000_000
DRUGS = 5000


# the prior the probe's counts are drawn from: openEBGM's CAERS vignette's (spec §2)
THETA = (3.25379356, 0.39988854, 2.02612692, 1.90807970, 0.06534557)


def pairs_numpy(m: int, seed: int = 11) -> dict[str, np.ndarray]:
    """``m`` pairs with a >= 1 drawn as the model says: E log-uniform over 1e-3..1e2
    (made of integer margins of N = 20 M reports), λ from the two-gamma
    :data:`THETA`, a ~ Poisson(λE); drug and pt distinct per pair."""
    rng = np.random.default_rng(seed)
    parts: list[dict[str, np.ndarray]] = []
    got = 0
    while got < m:
        k = 4 * m
        ny = np.exp(rng.uniform(np.log(10), np.log(200_000), k)).astype(np.int64)
        e_want = 10 ** rng.uniform(-3, 2, k)
        nx = np.maximum(np.rint(e_want * N_REPORTS / ny), 1).astype(np.int64)
        e = nx * ny / N_REPORTS
        first = rng.random(k) < THETA[4]
        lam = np.where(first, rng.gamma(THETA[0], 1 / THETA[1], k), rng.gamma(THETA[2], 1 / THETA[3], k))
        a = rng.poisson(lam * e)
        keep = (a >= 1) & (a <= nx) & (a <= ny)
        parts.append({"a": a[keep], "n_drug": nx[keep], "n_event": ny[keep]})
        got += int(keep.sum())
    out = {k: np.concatenate([p[k] for p in parts])[:m] for k in ("a", "n_drug", "n_event")}
    return out


def write_pairs(m: int, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = pairs_numpy(m)
    i = np.arange(m)
    drug = pa.array(np.char.add("D", (i % DRUGS).astype(str)))
    pt = pa.array(np.char.add("P", (i // DRUGS).astype(str)))
    pq.write_table(pa.table({"drug": drug, "pt": pt, **{k: pa.array(v) for k, v in p.items()}}), path)


def pairs_spark(spark, path: Path):
    from pyspark.sql import functions as F

    n = F.lit(N_REPORTS).cast("long")
    return spark.read.parquet(str(path)).select(
        "drug", "pt", "a", (F.col("n_drug") - F.col("a")).alias("b"), (F.col("n_event") - F.col("a")).alias("c"),
        (n - F.col("n_drug") - F.col("n_event") + F.col("a")).alias("d"),
        (F.col("n_drug").cast("double") * F.col("n_event") / n).alias("expected"),
        "n_drug", "n_event", n.alias("n_reports"))


def faerslake_side(spark, m: int, root: Path, cpu_now) -> dict:
    from faerslake.config import Screen
    from faerslake.screen.counts import with_frequentist
    from faerslake.screen.job import fit_on_squashed, order, score_pairs, screen_grid, write_signals_csv
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    screen = Screen(name="probe")
    out: dict[str, float] = {}
    cpu: dict[str, float] = {}
    t, c = time.perf_counter(), cpu_now()

    def mark(name: str) -> None:
        nonlocal t, c
        t2, c2 = time.perf_counter(), cpu_now()
        out[name], cpu[name] = round(t2 - t, 2), round(c2 - c, 1)
        t, c = t2, c2

    pairs = with_frequentist(pairs_spark(spark, root / f"pairs_{m}.parquet")).persist(StorageLevel.MEMORY_AND_DISK)
    pairs.count()
    mark("make_pairs")
    logged: list[str] = []
    prior = fit_on_squashed(pairs, screen, logged.append)
    mark("fit_and_nll")
    fit_s = next((float(m.group(1)) for x in logged if (m := re.search(r" in ([\d.]+) s: ", x))), None)
    path = str(root / f"signals_{m}")
    score_pairs(pairs, prior).write.format("delta").mode("overwrite").save(path)
    mark("score_write")
    pairs.unpersist()
    signals = spark.read.format("delta").load(path)
    signals.count()
    signals.where(F.col("a") >= 3).orderBy(*order()).limit(20).toPandas()
    screen_grid(signals)
    mark("report_queries")
    n_csv = write_signals_csv(signals.where(F.col("a") >= 3).orderBy(*order()), root / f"signals_{m}.csv")
    mark("signals_csv")
    return {"wall": out, "cpu": cpu, "csv_rows": n_csv, "theta": list(prior.theta()),
            "nll": prior.neg_log_likelihood, "fit_seconds": fit_s}


def yardstick_side(m: int, root: Path) -> dict:
    import duckdb_screen as ds
    import pyarrow as pa
    import pyarrow.parquet as pq

    out: dict[str, float] = {}
    t, c = time.perf_counter(), time.process_time()

    def mark(name: str) -> None:
        nonlocal t, c
        t2, c2 = time.perf_counter(), time.process_time()
        out[name], out[name + "_cpu"] = round(t2 - t, 2), round(c2 - c, 2)
        t, c = t2, c2


    p = pq.read_table(root / f"pairs_{m}.parquet")
    a, nx, ny = (p[k].to_numpy() for k in ("a", "n_drug", "n_event"))
    b, cc, d = nx - a, ny - a, N_REPORTS - nx - ny + a
    e = nx.astype(float) * ny / N_REPORTS
    cols = {"a": a, "b": b, "c": cc, "d": d, "expected": e, **ds.frequentist(a, b, cc, d)}
    mark("make_pairs")
    sa, se, sw = ds.squash(a, e)
    fit = ds.fit_prior(sa, se, sw)
    nll = -float(np.sum(ds.mixture_loglik(a.astype(float), e, fit.theta)))
    mark("fit_and_nll")
    af = a.astype(float)
    cols.update(ds.information_component(af, e))
    cols.update(ds.posterior(af, e, fit.theta))
    mark("score")
    table = pa.table({k: pa.array(v) for k, v in cols.items()})
    pq.write_table(table, root / f"yard_{m}.parquet")
    import duckdb

    con = duckdb.connect()
    con.register("result", table)
    con.execute(f"COPY (SELECT * FROM result WHERE a >= 3 ORDER BY eb05 DESC, a) TO '{root / f'yard_{m}.csv'}' "
                "(HEADER, DELIMITER ',')")
    con.close()
    mark("write")
    return {"seconds": out, "theta": list(fit.theta), "nll": nll, "squashed_points": int(len(sa))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, action="append", default=None,
                   help="pair counts (repeatable; default 250000 and 1000000)")
    p.add_argument("--warmup", type=int, default=20_000,
                   help="pairs of a first, discarded pass (JIT, Python workers; default 20000)")
    p.add_argument("--driver-memory", default="1g")
    args = p.parse_args(argv)
    sizes = args.pairs or [250_000, 1_000_000]

    from faerslake.config import SparkSettings
    from faerslake.session import get_spark
    from run_bench import TreeWatcher

    watcher = TreeWatcher(os.getpid())
    t0 = time.perf_counter()
    spark = get_spark("faerslake-screen-probe", SparkSettings(driver_memory=args.driver_memory))
    session_s = time.perf_counter() - t0
    root = Path(tempfile.mkdtemp(prefix="faerslake-screen-probe-"))
    result = {"session_seconds": round(session_s, 1), "sizes": []}
    try:
        for m in [args.warmup, *sizes] if args.warmup else sizes:
            write_pairs(m, root / f"pairs_{m}.parquet")
        if args.warmup:
            faerslake_side(spark, args.warmup, root, watcher.cpu_now)
            yardstick_side(args.warmup, root)
            result["warmup_pairs"] = args.warmup
        for m in sizes:
            fl = faerslake_side(spark, m, root, watcher.cpu_now)
            print(f"[probe] faerslake {m:,} pairs: {fl['wall']}", file=sys.stderr, flush=True)
            yd = yardstick_side(m, root)
            print(f"[probe] yardstick {m:,} pairs: {yd['seconds']}", file=sys.stderr, flush=True)
            result["sizes"].append({"pairs": m, "faerslake": fl, "duckdb": yd})
    finally:
        spark.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
