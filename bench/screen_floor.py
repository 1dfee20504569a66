"""The floor under ``faerslake screen``: the least a Spark program must do for the screen's counts.

Place in the project: a bench tool (issue #17's 3x target). It imports nothing
from faerslake. In one fresh ``python`` process it starts a bare local Spark
session (no Delta: the files are listed from each table's ``_delta_log`` by
the yardstick's own reader, ``bench/duckdb_screen.py``), reads the same
silver parquet files as the yardstick, and runs only the counting of the
default screen (spec §1: the distinct report-drug and report-PT sets, R, the
drug x PT pairs with their margins), bringing back nothing but the number of
pairs. No prior fit, no scoring, no outputs, no checks. Then it runs the same
counting again in the warm session. The process's wall time from its start
is the floor: a screen in Spark cannot cost less, however it is written.

    python bench/screen_floor.py --warehouse .cache/bench/n800000-s20240601/wh [--repeat 3]

prints one JSON object: wall seconds of the process at each step (imports,
session, first counting, warm counting), the pair count, and the yardstick's
wall time when ``--yardstick`` names its JSON (``duckdb_screen.py --json``).
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from duckdb_screen import active_files, build_cut  # noqa: E402


def counting(spark, files: dict[str, list[str]]) -> int:
    """The default screen's counting (every role, ingredient level): the number of pairs."""
    from pyspark.sql import functions as F

    rep = spark.read.parquet(*files["reports"]).select("report_key", "quarter")
    dset = (spark.read.parquet(*files["drug_ingredients"]).select("report_key", "quarter", F.col("ingredient").alias("drug"))
            .where(F.col("drug").isNotNull() & (F.trim("drug") != "")).distinct())
    eset = (spark.read.parquet(*files["reactions"]).select("report_key", "quarter", F.col("pt_norm").alias("pt"))
            .where(F.col("pt").isNotNull() & (F.col("pt") != "")).distinct())
    keys = ["report_key", "quarter"]
    r = (rep.join(dset.select(*keys).distinct(), keys, "left_semi")
         .join(eset.select(*keys).distinct(), keys, "left_semi"))
    rd = dset.join(r, keys, "left_semi")  # (caching rd and re_ measured slower: 21.7 s warm against 15.6 s)
    re_ = eset.join(r, keys, "left_semi")
    pairs = rd.join(re_, keys).groupBy("drug", "pt").agg(F.count("*").alias("a"))
    nx = rd.groupBy("drug").agg(F.count("*").alias("n_drug"))
    ny = re_.groupBy("pt").agg(F.count("*").alias("n_event"))
    return pairs.join(nx, "drug").join(ny, "pt").count()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--warehouse", type=Path, required=True)
    p.add_argument("--repeat", type=int, default=1, help="warm countings after the first")
    p.add_argument("--shuffle-partitions", type=int, default=8)
    p.add_argument("--driver-memory", default="1g")
    p.add_argument("--yardstick", type=Path, default=None, help="duckdb_screen.py's --json output, for the ratio")
    args = p.parse_args(argv)
    marks = {"imports": 0.0}
    silver = args.warehouse / "silver"
    cut = build_cut(args.warehouse) or {}
    files = {t: [str(f) for f in active_files(silver / t, cut.get(t)).files]
             for t in ("reports", "drug_ingredients", "reactions")}
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    marks["imports"] = round(time.perf_counter() - T0, 2)
    spark = (SparkSession.builder.master("local[*]").appName("screen-floor")
             .config("spark.driver.memory", args.driver_memory)
             .config("spark.sql.shuffle.partitions", str(args.shuffle_partitions))
             .config("spark.ui.enabled", "false").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    marks["session"] = round(time.perf_counter() - T0, 2)
    n_pairs = counting(spark, files)
    marks["first_counting"] = round(time.perf_counter() - T0, 2)
    warm = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        counting(spark, files)
        warm.append(round(time.perf_counter() - t, 2))
    spark.stop()
    marks["stopped"] = round(time.perf_counter() - T0, 2)
    out: dict = {"warehouse": str(args.warehouse), "pairs": n_pairs, "process_wall_s": marks,
                 "warm_counting_s": warm, "cores": os.cpu_count(), "loadavg": os.getloadavg()}
    if args.yardstick is not None:
        y = json.loads(args.yardstick.read_text())
        total = y.get("seconds", {}).get("total")
        out["yardstick_total_s"] = total
        if total:
            out["floor_over_yardstick"] = round(marks["first_counting"] / total, 1)
            out["warm_counting_over_yardstick"] = round(min(warm) / total, 1) if warm else None
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
