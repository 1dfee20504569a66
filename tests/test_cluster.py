"""The pipeline on a real Spark standalone cluster, through spark-submit.

A master and two workers (1 core, 1 GB each) are started on 127.0.0.1 from
the installed pyspark (``SPARK_HOME`` = the pyspark package), on ephemeral
ports, with logs and work dirs under pytest's tmp dir, and stopped (process
groups killed) whatever happens. Apps go in with ``--py-files`` and
``make dist``'s zip; the driver and the executors run a Python that cannot
see the source checkout (``-S``, site-packages on ``PYTHONPATH``, so the
editable install's ``.pth`` is not read): faerslake comes from the zip only,
as on a real cluster.

- a probe app checks that ``get_spark()`` keeps spark-submit's master and
  that ``import faerslake`` (and the packaged default study) works on the
  executors;
- ``jobs/run_all.py`` runs the whole pipeline on a small generated archive:
  every CSV it writes must equal, byte for byte, those of the same pipeline
  in local mode, and both executors must have run tasks.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import pytest
from faerslake import DELTA_MAVEN
from faerslake.session import JAR_EXCLUDES

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[1]
STUDY = "botox_depression"
# Every JVM here (master, workers, driver, executors) lives a few minutes on a
# few thousand rows: the client compiler only and the serial collector cost
# less CPU than the JVM's defaults, as for the crash tests' runs
# (tests/test_faults.py). The parallel collector faerslake asks for in local
# mode does not apply: under spark-submit the driver's JVM is started first.
JVM_OPTIONS = "-XX:+UseSerialGC -XX:TieredStopAtLevel=1"
CSVS = ["ingest_audit.csv", "dedup_summary.csv", f"{STUDY}/cohort_results.csv"]


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class StandaloneCluster:
    """A Spark standalone master and workers on 127.0.0.1, as child process groups."""

    def __init__(self, root: Path, workers: int = 2, cores: int = 1, memory: str = "1g"):
        self.root = root
        self.n_workers, self.cores, self.memory = workers, cores, memory
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        self.work_dirs = [root / f"worker{i}" for i in range(1, workers + 1)]
        self.url = ""
        self.ui = 0
        self.startup_seconds = 0.0
        conf_dir = root / "conf"  # empty: no spark-defaults / log4j from elsewhere
        conf_dir.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "SPARK_HOME": str(spark_home()),
            "SPARK_CONF_DIR": str(conf_dir),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_LOCAL_HOSTNAME": "127.0.0.1",
            "SPARK_DAEMON_MEMORY": "256m",
            "SPARK_DAEMON_JAVA_OPTS": JVM_OPTIONS,
            # Spark 4 opens a REST submission server on fixed port 6066 by default
            "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
            "SPARK_WORKER_OPTS": "-Dspark.worker.cleanup.enabled=false",
        }
        self.env.pop("PYSPARK_GATEWAY_PORT", None)

    def _spawn(self, name: str, args: list[str]) -> tuple[subprocess.Popen, Path]:
        log = self.root / f"{name}.log"
        with open(log, "wb") as f:
            proc = subprocess.Popen(
                [str(spark_home() / "bin" / "spark-class"), *args],
                stdout=f, stderr=subprocess.STDOUT, env=self.env, cwd=self.root,
                start_new_session=True,  # its own process group: killed as one
            )
        self.procs.append(proc)
        self.logs.append(log)
        return proc, log

    def _wait_for(self, proc: subprocess.Popen, log: Path, pattern: str, timeout: float = 90) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, log.read_text(errors="replace"))
            if m:
                return m
            if proc.poll() is not None:
                break
            time.sleep(0.3)
        raise AssertionError(f"{log.name}: no '{pattern}' in {timeout:.0f}s:\n{_tail(log)}")

    def state(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui}/json/", timeout=10) as r:
            return json.load(r)

    def start(self) -> StandaloneCluster:
        proc, log = self._spawn("master", ["org.apache.spark.deploy.master.Master",
                                           "--host", "127.0.0.1", "--port", "0", "--webui-port", "0"])
        self.url = self._wait_for(proc, log, r"Starting Spark master at (spark://127\.0\.0\.1:\d+)").group(1)
        self.ui = int(self._wait_for(proc, log, r"service 'MasterUI' on port (\d+)").group(1))
        for i, work in enumerate(self.work_dirs, 1):
            work.mkdir(parents=True, exist_ok=True)
            self._spawn(f"worker{i}", [
                "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--port", "0",
                "--webui-port", "0", "--cores", str(self.cores), "--memory", self.memory,
                "--work-dir", str(work), self.url])
        deadline = time.monotonic() + 90
        while self._alive_workers() < self.n_workers:
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                raise AssertionError("workers did not register:\n"
                                     + "\n".join(_tail(lg, 15) for lg in self.logs))
            time.sleep(0.3)
        return self

    def _alive_workers(self) -> int:
        try:
            return self.state()["aliveworkers"]
        except (OSError, ValueError):  # the web UI answers 404 for a moment after it binds
            return 0

    def stop(self) -> None:
        # workers first (they kill their executors), then the master
        for proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)


def python_without_checkout(root: Path) -> Path:
    """A python that sees the venv's packages but not the editable faerslake install.

    ``-S`` skips site-packages and its ``.pth`` files (the editable install is
    one); the packages come back through ``PYTHONPATH`` (no ``.pth`` there),
    appended so Spark's own entries (the --py-files zip) stay first.
    """
    site = sysconfig.get_paths()["purelib"]
    wrapper = root / "python-no-checkout"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'export PYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}{site}"\n'
        f'exec "{sys.executable}" -S "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    from faerslake.generate import generate

    src = tmp_path_factory.mktemp("cluster-source")
    generate(src, reports=300, seed=23, quarters=["2012Q3", "2012Q4"], as_zip=True, log=lambda m: None)
    return src


@pytest.fixture(scope="module")
def local_run(spark, archive, tmp_path_factory) -> Path:
    """The same pipeline in local mode (the test session's local[2])."""
    from faerslake.config import load_pipeline_config, load_study
    from faerslake.pipeline import run

    root = tmp_path_factory.mktemp("cluster-local")
    run(spark, str(archive), str(root / "wh"), str(root / "out"), study=load_study(),
        cfg=load_pipeline_config(), log=lambda m: None)
    return root / "out"


@pytest.fixture(scope="module")
def dist(built_dist) -> Path:
    return built_dist / "faerslake.zip"


@pytest.fixture(scope="module")
def python(tmp_path_factory) -> Path:
    python = python_without_checkout(tmp_path_factory.mktemp("python"))
    # it has Spark's packages but no faerslake: only the zip can provide it
    probe = "import pyspark, yaml, pandas\ntry:\n import faerslake\nexcept ImportError:\n print('no faerslake')"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    assert subprocess.run([str(python), "-c", probe], env=env, capture_output=True, text=True,
                          timeout=60, check=True).stdout.strip() == "no faerslake"
    return python


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = StandaloneCluster(tmp_path_factory.mktemp("cluster"))
    t0 = time.monotonic()
    try:
        c.start()
        c.startup_seconds = time.monotonic() - t0
        yield c
    finally:
        c.stop()
        assert all(p.poll() is not None for p in c.procs)


def spark_submit(cluster: StandaloneCluster, python: Path, dist: Path, script: Path, args: list[str],
                 log: Path) -> float:
    """spark-submit ``script`` to the cluster in client mode; return its wall time."""
    cmd = [
        str(spark_home() / "bin" / "spark-submit"),
        "--master", cluster.url,
        "--conf", f"spark.jars.ivy={REPO / '.cache' / 'ivy'}",
        "--packages", DELTA_MAVEN,
        "--exclude-packages", JAR_EXCLUDES,  # Spark's own logging and Hadoop client win
        "--py-files", str(dist),
        "--driver-memory", "1g",
        "--driver-java-options", JVM_OPTIONS,
        "--conf", f"spark.executor.extraJavaOptions={JVM_OPTIONS}",
        "--conf", "spark.executor.memory=512m",
        "--conf", "spark.executor.cores=1",
        "--conf", "spark.cores.max=2",
        # both executors up before the first job, so both get tasks
        "--conf", "spark.scheduler.minRegisteredResourcesRatio=1.0",
        "--conf", "spark.scheduler.maxRegisteredResourcesWaitingTime=120s",
        "--conf", "spark.driver.host=127.0.0.1",
        "--conf", "spark.driver.bindAddress=127.0.0.1",
        "--conf", "spark.ui.enabled=false",
        "--conf", "spark.sql.session.timeZone=UTC",
        # tiny data: few partitions, few tasks (Delta's log replay defaults to 50)
        "--conf", "spark.sql.shuffle.partitions=2",
        "--conf", "spark.default.parallelism=2",
        "--conf", "spark.databricks.delta.snapshotPartitions=1",
        str(script), *args,
    ]
    env = {**cluster.env, "PYSPARK_PYTHON": str(python), "PYSPARK_DRIVER_PYTHON": str(python)}
    env.pop("PYTHONPATH", None)
    t0 = time.monotonic()
    with open(log, "wb") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=log.parent,
                              timeout=1200)
    assert proc.returncode == 0, f"spark-submit {script.name} failed:\n{_tail(log, 60)}"
    return time.monotonic() - t0


def the_app(cluster: StandaloneCluster, name: str) -> tuple[dict, dict[str, int]]:
    """The finished application ``name`` and the tasks each of its executors finished."""
    (app,) = [a for a in cluster.state()["completedapps"] if a["name"] == name]
    executors = [d for w in cluster.work_dirs if (w / app["id"]).is_dir()
                 for d in (w / app["id"]).iterdir() if d.is_dir()]
    return app, {f"{d.parent.parent.name}/{d.name}": (d / "stderr").read_text(errors="replace")
                 .count("Finished task") for d in executors}


PROBE = """
import json
import faerslake
from faerslake.config import load_study
from faerslake.session import get_spark

spark = get_spark("faerslake-probe")

def where(_):
    import faerslake
    from faerslake.config import load_study
    yield faerslake.__file__, load_study().sha256

found = spark.sparkContext.parallelize(range(8), 8).mapPartitions(where).collect()
print("PROBE " + json.dumps({"master": spark.sparkContext.master, "driver": faerslake.__file__,
                             "driver_study": load_study().sha256, "executors": sorted(set(map(tuple, found)))}))
"""


def test_spark_submit_keeps_the_clusters_master_and_the_zip_imports_on_executors(
        cluster, python, dist, tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    spark_submit(cluster, python, dist, script, [], tmp_path / "probe.log")
    line = [ln for ln in (tmp_path / "probe.log").read_text().splitlines() if ln.startswith("PROBE ")]
    got = json.loads(line[0][len("PROBE "):])
    study_sha = hashlib.sha256((REPO / "conf" / "studies" / f"{STUDY}.yaml").read_bytes()).hexdigest()
    assert got["master"] == cluster.url  # get_spark kept spark-submit's master
    assert got["driver"] == str(dist / "faerslake" / "__init__.py")
    assert got["driver_study"] == study_sha  # the packaged default study, from the zip
    # on the executors faerslake is imported from their copy of the zip, and finds the study too
    assert got["executors"] and all(
        f.endswith("faerslake.zip/faerslake/__init__.py") and not f.startswith(str(REPO / "lib"))
        and sha == study_sha for f, sha in got["executors"])
    app, tasks = the_app(cluster, "faerslake-probe")
    assert app["state"] == "FINISHED" and len(tasks) == 2 and sum(tasks.values()) >= 8


def test_pipeline_on_a_standalone_cluster_equals_local_mode(cluster, python, dist, archive, local_run,
                                                             tmp_path):
    out, wh = tmp_path / "out", tmp_path / "wh"
    seconds = spark_submit(cluster, python, dist, REPO / "jobs" / "run_all.py",
                           ["--source", str(archive), "--warehouse", str(wh), "--output", str(out)],
                           tmp_path / "driver.log")

    # the application ran on the cluster, not in local mode, with one executor per
    # worker, and each executor ran tasks
    app, tasks = the_app(cluster, "faerslake-run")
    assert app["state"] == "FINISHED" and app["cores"] == 2
    assert len(tasks) == 2 and all(n > 0 for n in tasks.values()), tasks

    # and the results are those of local mode, byte for byte: every CSV the run writes
    csvs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.csv"))
    assert csvs == sorted(p.relative_to(local_run).as_posix() for p in local_run.rglob("*.csv"))
    assert set(CSVS) <= set(csvs)
    for name in csvs:
        assert (out / name).read_bytes() == (local_run / name).read_bytes(), name
    assert len((out / CSVS[-1]).read_text().splitlines()) == 1 + 8
    print(f"\ncluster up in {cluster.startup_seconds:.1f}s; spark-submit run_all {seconds:.1f}s; "
          f"tasks per executor {tasks}")
