"""The platform floor: what a Spark + Delta run costs on this machine before a single row.

Place in the project: outside the pipeline; ``make bench`` runs it beside the
real runs, so the speed target can be judged against what the platform allows.

It starts the same local session faerslake starts (``faerslake.session``, Delta
jars, ``spark.driver.memory`` as given), then commits ``--tables`` tiny Delta
tables (10 rows, partitioned by ``quarter`` like faerslake's) and reads each
one back with a count: the least a pipeline that keeps its layers as that many
Delta tables must do. Writes and reads go through ``--threads`` threads, as
faerslake overlaps its own writes. Prints one JSON object:

    {"tables": 24, "threads": 4, "session_seconds": ..., "write_seconds": ...,
     "read_seconds": ..., "total_seconds": ...}

``total_seconds`` is measured from the start of this process, like the
pipeline's wall time in the bench.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

T0 = time.monotonic()
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tables", type=int, default=24, help="Delta tables to commit and read back (default 24)")
    p.add_argument("--threads", type=int, default=4, help="writes/reads side by side (default 4)")
    p.add_argument("--driver-memory", default="1g")
    p.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                   help="extra Spark setting for the session (repeatable)")
    args = p.parse_args(argv)
    if args.tables < 1 or args.threads < 1:
        p.error("--tables and --threads must be at least 1")

    from faerslake.config import SparkSettings
    from faerslake.session import get_spark

    bad = [c for c in args.conf if "=" not in c]
    if bad:
        p.error(f"--conf takes KEY=VALUE, not {bad[0]!r}")
    conf = dict(c.split("=", 1) for c in args.conf)
    spark = get_spark("faerslake-floor", SparkSettings(driver_memory=args.driver_memory, conf=conf))
    t_session = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="faerslake-floor-"))
    try:
        df = spark.range(10).selectExpr("id", "CAST(id AS STRING) AS text", "'2012Q4' AS quarter")

        def write(i: int) -> None:
            df.write.format("delta").mode("overwrite").partitionBy("quarter").save(str(root / f"t{i}"))

        def read(i: int) -> int:
            return spark.read.format("delta").load(str(root / f"t{i}")).count()

        with ThreadPoolExecutor(max_workers=args.threads) as pool:
            list(pool.map(write, range(args.tables)))
            t_write = time.monotonic()
            counts = list(pool.map(read, range(args.tables)))
        t_read = time.monotonic()
        if counts != [10] * args.tables:
            print(f"platform_floor: a table read back {counts} rows, not 10 each", file=sys.stderr)
            return 1
    finally:
        shutil.rmtree(root, ignore_errors=True)
    spark.stop()
    print(json.dumps({
        "tables": args.tables, "threads": args.threads,
        "session_seconds": round(t_session - T0, 2),
        "write_seconds": round(t_write - t_session, 2),
        "read_seconds": round(t_read - t_write, 2),
        "total_seconds": round(time.monotonic() - T0, 2),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
