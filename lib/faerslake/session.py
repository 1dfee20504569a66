"""The one place a SparkSession comes from.

``get_spark()`` decides, in this order:

1. an active session (Databricks, notebooks, a test fixture) is returned
   untouched; on a Databricks Runtime without an active session (a wheel
   task) the runtime's own session is taken as it is;
2. under ``spark-submit`` (or the ``pyspark`` shell) the JVM is already
   running with the cluster's master and settings: a session is built on it
   without a ``.master()``; only the Delta SQL extension and catalog are added
   when the cluster did not set them (the jars must come with ``--packages``);
3. a plain local run (``faerslake ...`` or ``python jobs/x.py``) builds
   ``local[*]`` with Delta and the Delta jars, which Spark's own resolver
   fetches once from Maven Central into ``.cache/ivy`` (``make install`` warms
   that cache).

Java is checked before Spark is started, so a missing or old Java is one clear
sentence instead of a Py4J trace.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from faerslake import DELTA_MAVEN
from faerslake.config import REPO_ROOT, SparkSettings
from faerslake.errors import EnvironmentProblem
from faerslake.files import atomic_write_text

MIN_JAVA = 17
DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
LOCAL_JAVA_OPTIONS = "-XX:+UseParallelGC"
JAR_EXCLUDES = ",".join([
    "org.apache.logging.log4j:log4j-core",
    "org.apache.logging.log4j:log4j-api",
    "org.apache.logging.log4j:log4j-slf4j2-impl",
    "org.slf4j:slf4j-api",
    "org.apache.hadoop:hadoop-client-api",
    "org.apache.hadoop:hadoop-client-runtime",
])


def cache_dir() -> Path:
    """Folder for the Ivy cache of the Delta jars (ignored by git).

    ``FAERSLAKE_CACHE`` wins; in a source checkout it is ``<repo>/.cache``;
    for an installed wheel ``~/.cache/faerslake``.
    """
    env = os.environ.get("FAERSLAKE_CACHE")
    if env:
        return Path(env)
    if (REPO_ROOT / "setup.py").exists() and (REPO_ROOT / "lib" / "faerslake").exists():
        return REPO_ROOT / ".cache"
    return Path.home() / ".cache" / "faerslake"


def java_version() -> tuple[int, str]:
    """(major version, path) of the java that Spark will use, or raise."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        where = f"JAVA_HOME={home} has no bin/java" if home else "no 'java' on PATH"
        raise EnvironmentProblem(
            f"Java {MIN_JAVA} or 21 is needed to run Spark, but {where}: install a JDK "
            f"(e.g. 'apt-get install openjdk-17-jdk-headless') and/or set JAVA_HOME."
        )
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30
        ).stderr
    except (OSError, subprocess.TimeoutExpired) as e:
        raise EnvironmentProblem(f"Could not run '{java} -version' ({e}); check your Java install.") from None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not m:
        raise EnvironmentProblem(f"Could not tell the version of {java}; install Java {MIN_JAVA} or 21.")
    major = int(m.group(1))
    if major == 1 and m.group(2):  # "1.8.0_392"
        major = int(m.group(2))
    if major < MIN_JAVA:
        raise EnvironmentProblem(
            f"Spark 4 needs Java {MIN_JAVA} or newer, but {java} is Java {major}: "
            f"install openjdk-17 (or 21) and set JAVA_HOME to it."
        )
    return major, java


def _active_session():
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise EnvironmentProblem(
            "PySpark is not installed: run 'make install' (or, from a checkout, pip install -e '.[spark]')."
        ) from None
    return SparkSession.getActiveSession()


def on_databricks() -> bool:
    """True on a Databricks Runtime (jobs, wheel tasks, notebooks)."""
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def under_spark_submit() -> bool:
    """True when a JVM launched us (spark-submit, pyspark shell)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _jar_list_file() -> Path:
    return cache_dir() / f"jars-{DELTA_MAVEN.replace(':', '_')}.txt"


def cached_delta_jars() -> list[str] | None:
    """The Delta jars a previous start resolved, if all are still on disk.

    Spark's resolver re-resolves ``spark.jars.packages`` against Maven Central
    on every start (seconds each time, and a failure when offline); once it
    has succeeded, the resolved files are used directly via ``spark.jars``.
    """
    f = _jar_list_file()
    if not f.is_file():
        return None
    jars = [j for j in f.read_text().split() if j]
    if not jars or not all(Path(j.removeprefix("file:")).is_file() for j in jars):
        return None
    return jars


def _remember_jars(spark) -> None:
    jars = [j for j in spark.sparkContext.getConf().get("spark.jars", "").split(",") if j]
    if any("delta-spark" in j for j in jars):
        try:
            atomic_write_text(_jar_list_file(), "\n".join(jars) + "\n")
        except OSError:
            pass  # only a start-up speed-up


def local_builder_conf(settings: SparkSettings | None = None, extra: dict | None = None) -> dict:
    """The Spark settings of a plain local run."""
    s = settings or SparkSettings()
    ivy = cache_dir() / "ivy"
    conf = {
        "spark.master": s.master,
        "spark.driver.memory": s.driver_memory,
        "spark.sql.shuffle.partitions": str(s.shuffle_partitions),
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
        "spark.jars.packages": DELTA_MAVEN,
        "spark.jars.ivy": str(ivy),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.adaptive.enabled": "true",
        "spark.ui.showConsoleProgress": "false",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        # Delta replays a table's log in a Spark job on every snapshot load
        # (each read and each commit); faerslake's logs are a few commits
        # plus a checkpoint every 10, so one task does it. Measured against
        # 4: 24 tiny-table reads 11.4-12.7 s -> 7.5-8.5 s (bench/platform_floor.py),
        # the 200,000-case run 74.8 s -> 71.5 s (README, Performance).
        "spark.databricks.delta.snapshotPartitions": "1",
        # Spark brings its own logging and Hadoop client; Delta's copies of
        # them would only shadow Spark's classes.
        "spark.jars.excludes": JAR_EXCLUDES,
        # The throughput collector: this is a batch job, pauses do not
        # matter; measured against the default G1, a 9.9 M-row ingest
        # 55.7 s -> 47.1 s and its build 60.9 s -> 53.6 s (see README,
        # Performance). A user's own spark.conf value replaces it.
        "spark.driver.extraJavaOptions": LOCAL_JAVA_OPTIONS,
    }
    jars = cached_delta_jars()
    if jars:
        del conf["spark.jars.packages"], conf["spark.jars.excludes"]
        conf["spark.jars"] = ",".join(jars)
    conf.update({k: str(v) for k, v in (s.conf or {}).items()})
    conf.update({k: str(v) for k, v in (extra or {}).items()})
    return conf


def get_spark(
    app_name: str = "faerslake",
    settings: SparkSettings | None = None,
    extra_conf: dict | None = None,
):
    """Return the SparkSession to use (see the module docstring for the rules)."""
    active = _active_session()
    if active is not None:
        return active
    from pyspark.errors import PySparkRuntimeError
    from pyspark.sql import SparkSession

    if on_databricks():
        # The runtime's session has Delta and Unity Catalog set up; setting
        # spark_catalog to DeltaCatalog there would replace UC's catalog.
        return SparkSession.builder.appName(app_name).getOrCreate()
    if under_spark_submit():
        builder = SparkSession.builder.appName(app_name)
        from pyspark import SparkContext

        SparkContext._ensure_initialized()
        jconf = SparkContext._jvm.org.apache.spark.SparkConf(True)
        if not jconf.contains("spark.sql.extensions"):
            builder = builder.config("spark.sql.extensions", DELTA_EXTENSION)
        if not jconf.contains("spark.sql.catalog.spark_catalog"):
            builder = builder.config("spark.sql.catalog.spark_catalog", DELTA_CATALOG)
        for k, v in (extra_conf or {}).items():
            builder = builder.config(k, str(v))
        return builder.getOrCreate()

    java_version()
    # the screen's Arrow batches run Python workers: in local mode they must be
    # this interpreter (with numpy, scipy, pyarrow), not whatever `python3` is on PATH
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    conf = local_builder_conf(settings, extra_conf)
    for k, v in conf.items():
        builder = builder.config(k, v)
    try:
        spark = builder.getOrCreate()
    except PySparkRuntimeError as e:
        raise EnvironmentProblem(
            f"Spark could not start with Delta ({e.getErrorClass() or 'gateway exited'}): "
            f"most often the Delta jars {DELTA_MAVEN} could not be fetched from Maven Central "
            f"into {cache_dir() / 'ivy'}; run 'make install' where Maven Central is reachable."
        ) from None
    if "spark.jars.packages" in conf:
        _remember_jars(spark)
    spark.sparkContext.setLogLevel("WARN")
    _quiet_accumulator_server(spark)
    _quiet_py4j_root_log()
    return spark


class _Py4JSendFailure(logging.Filter):
    """Py4J reports a broken gateway connection through the *root* logger
    (``logging.exception("Exception while sending command.")`` in
    ``py4j/java_gateway.py``), which makes ``logging`` print a traceback to
    stderr, from any thread whose Spark call was in flight when the JVM died.
    The Py4J error itself still reaches the caller (faerslake turns it into its
    one sentence about the JVM); the dump goes to faerslake's debug log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "root" and record.pathname.replace("\\", "/").endswith("py4j/java_gateway.py"):
            logging.getLogger(__name__).debug(f"py4j: {record.getMessage()}", exc_info=record.exc_info)
            return False
        return True


def _quiet_py4j_root_log() -> None:
    root = logging.getLogger()
    if not any(isinstance(f, _Py4JSendFailure) for f in root.filters):
        root.addFilter(_Py4JSendFailure())


def _quiet_accumulator_server(spark) -> None:
    """PySpark's accumulator server prints a traceback to stderr when its JVM
    connection breaks (the JVM was killed or ran out of memory); the run then
    ends with faerslake's one sentence about the JVM, so the dump goes to the
    debug log instead of stderr."""
    server = getattr(spark.sparkContext, "_accumulatorServer", None)
    if server is None:
        return

    def handle_error(request, client_address) -> None:
        logging.getLogger(__name__).debug(f"PySpark accumulator connection from {client_address} broke",
                                          exc_info=True)

    server.handle_error = handle_error
