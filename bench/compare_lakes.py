"""Are two warehouses' silver and gold tables the same rows? (``make bench``'s update scenario.)

Place in the project: outside the pipeline; ``bench/run_bench.py`` runs it on
the lake a one-quarter update left and on the lake a full run of the same
quarters wrote. For every silver table of the build (``SILVER_TABLES``) and
every gold table of the default study it compares the row count and a content
checksum: the sum, as a DECIMAL(38,0), of xxhash64 over every column (names
sorted, nulls as a marker), so the order of rows and of files does not matter
but every value does. Run-specific tables (``build_state``, the run record) are
not compared. Prints one JSON object and exits 1 when a table differs:

    {"same": true, "tables": {"silver/reports": {"rows": [n, n], "checksum": [h, h]}, ...}}
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))


def fingerprint(df):
    """(rows, checksum) of a frame, independent of row order."""
    from pyspark.sql import functions as F

    cols = sorted(df.columns)
    h = F.xxhash64(*[F.coalesce(F.col(c).cast("string"), F.lit("\u0000null")) for c in cols])
    n, s = df.agg(F.count(F.lit(1)), F.sum(h.cast("decimal(38,0)"))).first()
    return int(n), str(s)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a", help="one warehouse")
    p.add_argument("b", help="the other")
    p.add_argument("--driver-memory", default="1g")
    args = p.parse_args(argv)

    from faerslake.config import SparkSettings, load_study
    from faerslake.gold import gold_tables
    from faerslake.session import get_spark
    from faerslake.silver import SILVER_TABLES
    from faerslake.tables import Warehouse

    spark = get_spark("faerslake-compare", SparkSettings(driver_memory=args.driver_memory))
    wa, wb = Warehouse(args.a), Warehouse(args.b)
    names = [("silver", t) for t in SILVER_TABLES] + [("gold", t) for t in gold_tables(load_study())]
    out: dict[str, dict] = {}
    same = True
    for layer, t in names:
        have = [w.exists(spark, layer, t) for w in (wa, wb)]
        if not all(have):
            out[f"{layer}/{t}"] = {"exists": have}
            same = same and not any(have)
            continue
        fa, fb = fingerprint(wa.read(spark, layer, t)), fingerprint(wb.read(spark, layer, t))
        out[f"{layer}/{t}"] = {"rows": [fa[0], fb[0]], "checksum": [fa[1], fb[1]]}
        same = same and fa == fb
    print(json.dumps({"same": same, "tables": out}))
    spark.stop()
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
