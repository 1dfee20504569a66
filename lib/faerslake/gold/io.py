"""Gold's small-table helpers; pinned reads and pandas -> Spark live in :mod:`faerslake.tables`."""

from __future__ import annotations

import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from faerslake.tables import Warehouse, to_spark


def read_pinned(spark: SparkSession, wh: Warehouse, layer: str,
                name: str) -> tuple[DataFrame, int] | tuple[None, None]:
    """:meth:`Warehouse.read_pinned`."""
    return wh.read_pinned(spark, layer, name)


def small_pandas(df: DataFrame) -> pd.DataFrame:
    """collect() of a table known to be tiny (no Arrow round trip needed)."""
    return pd.DataFrame([r.asDict() for r in df.collect()], columns=df.columns)


__all__ = ["read_pinned", "small_pandas", "to_spark"]
