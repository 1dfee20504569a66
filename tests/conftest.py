"""One Spark session for the whole test run (delta-io's testing habits)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "tests" / "data" / "faers"  # genuine FDA extracts; provenance in its README.md


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from faerslake.config import SparkSettings
    from faerslake.session import get_spark

    wh = tmp_path_factory.mktemp("spark-warehouse")
    session = get_spark(
        "faerslake-tests",
        SparkSettings(master="local[2]", driver_memory="6g", shuffle_partitions=2),
        extra_conf={
            "spark.ui.enabled": "false",
            "spark.sql.warehouse.dir": str(wh),
            "spark.sql.adaptive.coalescePartitions.initialPartitionNum": "2",
            "spark.default.parallelism": "2",
        },
    )
    yield session
    session.stop()


@pytest.fixture(scope="module", autouse=True)
def _release_cached_data():
    """After each module, drop what its tests left cached in the session's JVM
    (persisted frames a failed test never unpersisted, broadcast and cached
    tables): the suite shares one driver heap, and a clean-clone run of
    2026-12-02 ran out of its 4g late in the suite, after which every test
    lost the JVM."""
    yield
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()  # never starts one: a module without Spark has none
    if session is not None:
        session.catalog.clearCache()


@pytest.fixture(scope="session")
def samples() -> Path:
    if not SAMPLES.exists():
        pytest.fail(f"genuine FAERS samples not found at {SAMPLES}")
    return SAMPLES


def pytest_configure(config):
    os.environ.setdefault("PYSPARK_PYTHON", os.sys.executable)


# `make test-quick` leaves out what runs a whole stage or the pipeline on files:
# these modules, and the tests that use a fixture which runs build() or run_study().
PIPELINE_MODULES = {
    "test_bundle", "test_cluster", "test_duckdb_reference", "test_end_to_end", "test_faults",
    "test_ingest_damage", "test_ingest_samples", "test_notebooks", "test_reliability", "test_silver_genuine",
}
PIPELINE_FIXTURES = {"built", "study_run", "built_wh"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        if module in PIPELINE_MODULES or PIPELINE_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.pipeline)


# Tests that write bronze or silver tables by hand must also write the marker
# a completed ingest / build leaves, or readers refuse the tables as half-written.
def _seal_bronze(spark, wh) -> None:
    """Mark every quarter of bronze DEMO as ingested (a manifest row carrying the current versions)."""
    import datetime as dt

    from faerslake.ingest import bronze

    quarters = sorted(r[0] for r in wh.read(spark, "bronze", "demo").select("quarter").distinct().collect())
    now = dt.datetime(2026, 1, 1)
    marked = bronze.marked_versions(spark, wh)
    rows = [(f"test/{q}", q, "0" * 64, 0, now, marked) for q in quarters]
    bronze.replace_quarters(spark, wh, spark.createDataFrame(rows, bronze.table_schema("source_manifest")),
                            "source_manifest", quarters)


def _seal_silver(spark, wh, bronze_versions: dict | None = None) -> None:
    """Record the silver tables as they are as one completed build."""
    from faerslake.silver.job import record_build_state

    record_build_state(spark, wh, bronze_versions or {}, strict_dedup=False, seconds=0.0)


@pytest.fixture(scope="session")
def seal_bronze():
    return _seal_bronze


@pytest.fixture(scope="session")
def seal_silver():
    return _seal_silver
