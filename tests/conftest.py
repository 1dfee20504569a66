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
    # 4g: `make test` runs two of these (one per xdist worker) beside the crash
    # tests' and the cluster test's own JVMs. With 6g each the kernel's OOM
    # killer took a worker's JVM on the 24 GiB machine (2026-12-03: its RSS
    # had grown to 7.1 GB; the parallel collector grows the heap to its limit
    # before it collects the old generation).
    session = get_spark(
        "faerslake-tests",
        SparkSettings(master="local[2]", driver_memory="4g", shuffle_partitions=2),
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
    """After each module, drop what its tests left cached in the session's JVM:
    persisted frames a failed test never unpersisted, cached tables, and
    Delta's cache of table logs. Delta keeps the log of every table path it
    has opened, with its snapshot and that snapshot's query plans: about
    20,000 plan-node values per table (measured with
    ``jmap -histo:live``: 60 tiny tables held 1.2 M ``BestEffortLazyVal``,
    17,000 after ``DeltaLog.clearCache()``). The suite opens a few thousand
    tables in temporary warehouses it never reads again; in one driver heap
    that is what ran the session's JVM out of memory late in clean-clone runs
    (4g on 2026-12-02 at test_identity, 6g in CI on 2026-12-03 at
    test_silver_genuine), after which every test lost the JVM."""
    yield
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()  # never starts one: a module without Spark has none
    if session is not None:
        session.catalog.clearCache()
        session._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()


@pytest.fixture(scope="session")
def built_dist(tmp_path_factory) -> Path:
    """``make dist``'s wheel and zip, copied into this test process's own folder.
    The suite runs in two pytest-xdist workers: ``make dist`` rewrites the
    checkout's ``dist/`` and ``build/``, so the build holds a lock file while
    it runs and copies, and no test reads the checkout's ``dist/`` itself
    (another worker may be rebuilding it)."""
    import fcntl
    import shutil
    import subprocess

    dest = tmp_path_factory.mktemp("dist")
    lock = REPO / ".cache" / "dist.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            # -o: never re-run `make install` from a test (the venv is set up by then)
            subprocess.run(["make", "-s", "-o", ".venv/.installed", "dist"], cwd=REPO, check=True,
                           capture_output=True, timeout=300)
            for f in (REPO / "dist").iterdir():
                shutil.copy2(f, dest / f.name)
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    return dest


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
    "test_bundle", "test_cluster", "test_duckdb_reference", "test_end_to_end", "test_faults", "test_incremental",
    "test_ingest_damage", "test_ingest_samples", "test_notebooks", "test_reliability", "test_silver_genuine",
}
PIPELINE_FIXTURES = {"built", "study_run", "built_wh"}


# `make test` hands whole modules to two pytest-xdist workers (`--dist
# loadfile`). xdist's own queue puts the modules with the most tests first
# (its `--loadscope-reorder`, on by default) and ignores collection order, so
# on 2026-12-03 the two longest modules started 18 and 20 minutes into a
# 32-minute run and were its tail. The scheduler below hands them out longest
# first instead: the modules named here in this order (about their time
# alone, slowest first), then the rest as xdist orders them.
LONGEST_FIRST = ["test_faults", "test_cluster", "test_incremental", "test_consistency", "test_reliability",
                 "test_end_to_end", "test_notebooks", "test_exposure_ingredients", "test_gold", "test_screen",
                 "test_ingest_samples", "test_identity"]


def _module_rank(scope: str) -> int:
    name = scope.rsplit("/", 1)[-1].removesuffix(".py")
    return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class LongestFirstScheduling(LoadFileScheduling):
        """LoadFileScheduling whose queue of modules is ordered by ``LONGEST_FIRST``
        (stable: the other modules keep xdist's order) before the first is handed out."""

        _ordered = False

        def _assign_work_unit(self, node):
            if not self._ordered:
                self._ordered = True
                units = sorted(self.workqueue.items(), key=lambda unit: _module_rank(unit[0]))
                self.workqueue.clear()
                self.workqueue.update(units)
            super()._assign_work_unit(node)

    return LongestFirstScheduling(config, log)


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
