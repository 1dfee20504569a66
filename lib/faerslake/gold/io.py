"""Gold's small-table helpers; pinned reads and pandas -> Spark live in :mod:`faerslake.tables`."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, Row, SparkSession

from faerslake.files import atomic_replace
from faerslake.tables import Warehouse, to_spark


def read_pinned(spark: SparkSession, wh: Warehouse, layer: str,
                name: str) -> tuple[DataFrame, int] | tuple[None, None]:
    """:meth:`Warehouse.read_pinned`."""
    return wh.read_pinned(spark, layer, name)


def small_pandas(df: DataFrame) -> pd.DataFrame:
    """collect() of a table known to be tiny (no Arrow round trip needed)."""
    return pd.DataFrame([r.asDict() for r in df.collect()], columns=df.columns)


def stream_csv(df: DataFrame, columns: list[str], path: str | Path, cell: Callable[[Any], Any],
               on_row: Callable[[Row], None] | None = None) -> int:
    """Write ``df``'s ``columns`` (in ``df``'s order) into the CSV ``path``
    atomically, header first, each value through ``cell``; the rows come one
    partition at a time (``toLocalIterator`` without prefetch), so the driver
    never holds the whole table. ``on_row`` sees each row (e.g. to count per
    cohort). Returns the rows written."""
    n = 0

    def write(tmp: Path) -> None:
        nonlocal n
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(columns)
            for row in df.select(*columns).toLocalIterator(prefetchPartitions=False):
                w.writerow([cell(v) for v in row])
                if on_row is not None:
                    on_row(row)
                n += 1

    atomic_replace(Path(path), write)
    return n


__all__ = ["read_pinned", "small_pandas", "stream_csv", "to_spark"]
