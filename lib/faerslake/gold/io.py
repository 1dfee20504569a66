"""Gold's table I/O helpers: pinned Delta reads, small tables to and from pandas.

(Candidates for a shared ``tables`` module; silver and ingest have their own.)
"""

from __future__ import annotations

import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from faerslake.report.format import is_null
from faerslake.tables import Warehouse


def read_pinned(spark: SparkSession, wh: Warehouse, layer: str,
                name: str) -> tuple[DataFrame, int] | tuple[None, None]:
    """(DataFrame at the table's current version, that version) or (None, None)."""
    version = wh.version(spark, layer, name)
    if version is None:
        return None, None
    if wh.by_catalog:
        return spark.sql(f"SELECT * FROM {wh.name(layer, name)} VERSION AS OF {version}"), version
    return spark.read.format("delta").option("versionAsOf", version).load(wh.path(layer, name)), version


def to_spark(spark: SparkSession, pdf: pd.DataFrame, schema: str) -> DataFrame:
    """pandas -> Spark with an explicit DDL schema; NaN becomes null."""
    names = [f.split()[0] for f in schema.split(", ")]
    rows = []
    for rec in pdf[names].itertuples(index=False):
        row = []
        for v in rec:
            if is_null(v):
                row.append(None)
            elif hasattr(v, "item"):  # numpy scalar -> Python
                row.append(v.item())
            else:
                row.append(v)
        rows.append(tuple(row))
    return spark.createDataFrame(rows, schema)


def small_pandas(df: DataFrame) -> pd.DataFrame:
    """collect() of a table known to be tiny (no Arrow round trip needed)."""
    return pd.DataFrame([r.asDict() for r in df.collect()], columns=df.columns)
