"""Readers pin to completed writes; one writer at a time (issue #15 items 1, 2, 4).

- the writer lock (pure Python, other processes hold it): a second writer
  waits and says who holds the lock, or fails with one sentence (exit 6)
  after the timeout; a killed holder frees it at once; re-entrant;
- ``build`` reads bronze at the versions of the last completed ingest, and
  refuses bronze an ingest left half-written; ``study`` reads silver at the
  versions of the last completed build, and refuses a half-finished build;
- Spark / Delta / machine failures become one sentence with their exit code.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from faerslake.errors import EnvironmentProblem, InputError, WriteConflict, explain
from faerslake.lock import LOCK_NAME, WarehouseBusy, lock_path, writer_lock


# --------------------------------------------------------------------------- #
# the writer lock
# --------------------------------------------------------------------------- #
def _hold(wh: str, release: str, ready: str) -> None:
    with writer_lock(wh, "ingest", timeout=0):
        Path(ready).write_text("held")
        while not Path(release).exists():
            time.sleep(0.05)


def _holder(tmp_path: Path):
    ctx = mp.get_context("spawn")
    ready, release = tmp_path / "ready", tmp_path / "release"
    proc = ctx.Process(target=_hold, args=(str(tmp_path / "wh"), str(release), str(ready)))
    proc.start()
    deadline = time.time() + 60
    while not ready.exists():
        assert proc.is_alive() and time.time() < deadline, "the holder never took the lock"
        time.sleep(0.05)
    return proc, release


def test_second_writer_fails_with_one_sentence_after_the_timeout(tmp_path):
    proc, release = _holder(tmp_path)
    try:
        t = time.monotonic()
        with pytest.raises(WarehouseBusy) as e, writer_lock(str(tmp_path / "wh"), "build", timeout=0.5):
            pytest.fail("the lock was taken twice")
        assert time.monotonic() - t >= 0.5
        msg = str(e.value)
        assert e.value.exit_code == 6 and "\n" not in msg
        assert f"being written by pid {proc.pid}, faerslake ingest, since " in msg
        assert "still held the lock after 0.5 s" in msg and "tables.lock_timeout_seconds" in msg
    finally:
        release.write_text("go")
        proc.join(30)


def test_second_writer_waits_then_goes_on(tmp_path, caplog):
    proc, release = _holder(tmp_path)
    got = []

    def later():
        time.sleep(1.0)
        release.write_text("go")

    import threading

    threading.Thread(target=later, daemon=True).start()
    with caplog.at_level("INFO", logger="faerslake.lock"), writer_lock(str(tmp_path / "wh"), "build", timeout=60):
        got.append(time.monotonic())
        # while we hold it, the file says so (what a third writer would read)
        assert '"command": "build"' in (tmp_path / "wh" / LOCK_NAME).read_text()
    proc.join(30)
    assert got
    text = caplog.text
    assert f"is being written by pid {proc.pid}, faerslake ingest" in text and "waiting up to 60 s" in text
    assert "is free; build goes on" in text


def test_a_killed_holder_frees_the_lock_at_once(tmp_path):
    proc, _ = _holder(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(30)
    t = time.monotonic()
    with writer_lock(str(tmp_path / "wh"), "ingest", timeout=0):
        pass
    assert time.monotonic() - t < 0.5


def test_lock_is_reentrant_and_absent_on_object_stores(tmp_path):
    wh = str(tmp_path / "wh")
    with writer_lock(wh, "run", timeout=0), writer_lock(wh, "ingest", timeout=0), \
            writer_lock(wh, "build", timeout=0):
        assert '"command": "run"' in (tmp_path / "wh" / LOCK_NAME).read_text()
    assert (tmp_path / "wh" / LOCK_NAME).read_text() == ""  # released: no holder written
    assert lock_path("s3a://bucket/wh") is None and lock_path("abfss://c@a.dfs.core.windows.net/wh") is None
    assert lock_path(f"file://{wh}") == Path(wh).resolve() / LOCK_NAME
    with writer_lock("s3a://bucket/wh", "ingest", timeout=0):
        pass  # nothing to lock, nothing created
    with writer_lock(wh, "ingest", timeout=0, by_catalog=True):
        pass


# --------------------------------------------------------------------------- #
# failures from Spark, Delta and the machine: one sentence, the right exit code
# --------------------------------------------------------------------------- #
def test_spark_and_machine_failures_are_explained():
    import errno

    conflict = explain(RuntimeError("py4j: io.delta.exceptions.ConcurrentAppendException: Files were added"))
    assert isinstance(conflict, WriteConflict) and conflict.exit_code == 6
    assert "ConcurrentAppendException" in str(conflict) and "one writer at a time" in str(conflict)
    full = explain(OSError(errno.ENOSPC, "No space left on device"))
    assert isinstance(full, EnvironmentProblem) and full.exit_code == 3 and "no space left" in str(full)
    java_full = explain(RuntimeError("org.apache.spark.SparkException: ... java.io.IOException: "
                                     "No space left on device"))
    assert isinstance(java_full, EnvironmentProblem)
    dead = explain(ConnectionRefusedError(111, "Connection refused"))
    assert isinstance(dead, EnvironmentProblem) and "Spark JVM stopped" in str(dead)
    assert explain(ValueError("something else")) is None
    for e in (conflict, full, dead):
        assert "\n" not in str(e)


def test_cli_turns_a_delta_conflict_into_one_sentence(monkeypatch, capsys, tmp_path):
    from faerslake import cli

    def conflicted(args, cfg, record):
        raise RuntimeError("An error occurred while calling o123.save.\n: io.delta.exceptions."
                           "ConcurrentAppendException: Files were added to the root of the table\n\tat ...")

    monkeypatch.setitem(cli.COMMANDS, "build", conflicted)
    rc = cli.main(["build", "--warehouse", str(tmp_path / "wh")])
    err = capsys.readouterr().err
    assert rc == 6
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("faerslake: error: a Delta commit lost to another writer")
    assert "Traceback" not in err


# --------------------------------------------------------------------------- #
# build pins bronze; study pins silver (Spark)
# --------------------------------------------------------------------------- #
QUARTERS = ["2012Q3", "2012Q4"]


@pytest.fixture(scope="module")
def built_wh(spark, tmp_path_factory):
    """A generated source ingested and built once; tests work on copies."""
    from faerslake.generate import generate
    from faerslake.ingest import ingest
    from faerslake.silver import build

    root = tmp_path_factory.mktemp("consistency")
    src, wh = root / "src", root / "wh"
    generate(src, reports=120, seed=11, quarters=QUARTERS, as_zip=True, log=lambda m: None)
    ingest(spark, str(src), str(wh), log=lambda m: None)
    build(spark, str(wh), log=lambda m: None)
    return src, wh


@pytest.fixture(scope="module")
def studied_wh(spark, built_wh, tmp_path_factory):
    """A copy of ``built_wh`` with the default study run on it once, and the
    study's results: what two tests compare later studies with."""
    from faerslake.config import load_study
    from faerslake.gold import run_study

    root = tmp_path_factory.mktemp("consistency-studied")
    wh = root / "wh"
    shutil.copytree(built_wh[1], wh)
    results = run_study(spark, str(wh), load_study(), str(root / "out"), log=lambda m: None)
    return (built_wh[0], wh), results


def _copy(built_wh, tmp_path) -> tuple[Path, object]:
    from faerslake.tables import Warehouse

    dst = tmp_path / "wh"
    shutil.copytree(built_wh[1], dst)
    return dst, Warehouse(str(dst))


def _rewrite(spark, wh, layer: str, table: str, quarter: str | None = None) -> None:
    """Commit the table again with the same rows (a new version), as a killed or concurrent writer would."""
    df = wh.read(spark, layer, table)
    if quarter is None:
        wh.write(df.localCheckpoint(), layer, table)
    else:
        from faerslake.ingest import bronze

        bronze.replace_quarters(spark, wh, df.where(df.quarter == quarter).localCheckpoint(), table, [quarter])


def test_build_refuses_a_quarter_an_ingest_did_not_finish(spark, built_wh, tmp_path):
    """A re-ingest killed after its first table: the quarter's manifest rows are gone, DEMO is rewritten."""
    from faerslake.ingest import bronze
    from faerslake.silver import build

    root, wh = _copy(built_wh, tmp_path)
    bronze.forget_quarters(spark, wh, ["2012Q4"])
    _rewrite(spark, wh, "bronze", "demo", "2012Q4")
    before = wh.version(spark, "silver", "reports")
    with pytest.raises(InputError) as e:
        build(spark, str(root), log=lambda m: None, force=True)
    assert str(e.value) == (
        "bronze holds quarters 2012Q4 without a source_manifest row: an ingest is running or was interrupted: "
        f"wait for it to finish, or run 'faerslake ingest --source <the same source> --warehouse {root}' again "
        "(it redoes the unfinished quarters; if their files are gone, put them back or ingest them with "
        "--force --quarters), then build.")
    assert wh.version(spark, "silver", "reports") == before  # nothing written


def test_build_refuses_a_table_written_after_the_last_completed_ingest(spark, built_wh, tmp_path):
    from faerslake.silver import build

    root, wh = _copy(built_wh, tmp_path)
    v = wh.version(spark, "bronze", "drug")
    _rewrite(spark, wh, "bronze", "drug", "2012Q3")
    with pytest.raises(InputError, match=rf"^bronze drug \(version {v + 1}, the last completed ingest left {v}\) "
                       r"changed after the last completed ingest: an ingest is running or was interrupted"):
        build(spark, str(root), log=lambda m: None)


def test_a_finished_reingest_makes_bronze_readable_again(spark, built_wh, tmp_path):
    from faerslake.ingest import bronze, ingest
    from faerslake.silver import build

    root, wh = _copy(built_wh, tmp_path)
    bronze.forget_quarters(spark, wh, ["2012Q4"])
    _rewrite(spark, wh, "bronze", "demo", "2012Q4")
    result = ingest(spark, str(built_wh[0]), str(root), log=lambda m: None)  # not --force: redoes 2012Q4 only
    assert result.quarters_ingested == ["2012Q4"] and result.quarters_skipped == ["2012Q3"]
    built = build(spark, str(root), log=lambda m: None)
    assert not built.skipped


def test_build_reads_every_bronze_table_at_the_recorded_cut(spark, built_wh, tmp_path, monkeypatch):
    """A commit to bronze DRUG after the build recorded its cut (between the
    report ranking and the child tables) is not read by the build."""
    from faerslake.silver import build
    from faerslake.silver import job as silver_job

    root, wh = _copy(built_wh, tmp_path)
    reference = wh.read(spark, "silver", "drugs").count()
    real = silver_job.report_fates

    def fates_then_a_concurrent_commit(bronze_tables, strict, log):
        status = real(bronze_tables, strict, log)
        _rewrite(spark, wh, "bronze", "drug", "2012Q3")
        drug = wh.read(spark, "bronze", "drug")
        wh.write(drug.where(drug.quarter == "2012Q3").localCheckpoint(), "bronze", "drug", mode="append",
                 partition_by=["quarter"])  # every 2012Q3 drug row twice
        return status

    monkeypatch.setattr(silver_job, "report_fates", fates_then_a_concurrent_commit)
    build(spark, str(root), log=lambda m: None, force=True)
    assert wh.read(spark, "silver", "drugs").count() == reference


def test_study_refuses_a_build_that_did_not_finish(spark, built_wh, tmp_path):
    """A build killed after silver reports: reports are newer than the last build_state records."""
    from faerslake.config import load_study
    from faerslake.gold import run_study

    root, wh = _copy(built_wh, tmp_path)
    v = wh.version(spark, "silver", "reports")
    _rewrite(spark, wh, "silver", "reports")
    with pytest.raises(InputError) as e:
        run_study(spark, str(root), load_study(), str(tmp_path / "out"), log=lambda m: None)
    assert str(e.value) == (
        f"silver reports (version {v + 1}, the last completed build left {v}) changed after the last completed "
        "build: a build is running or was interrupted; wait for it to finish, or run "
        f"'faerslake build --warehouse {root}' (or 'faerslake run') first.")
    assert not (tmp_path / "out").exists()


def test_study_refuses_silver_without_a_completed_build(spark, built_wh, tmp_path):
    from faerslake.config import load_study
    from faerslake.gold import run_study

    root, wh = _copy(built_wh, tmp_path)
    shutil.rmtree(root / "silver" / "build_state")  # a first build killed before its end
    with pytest.raises(InputError, match=r"^no build has completed under .* \(no silver/build_state\): "
                       r"run 'faerslake build"):
        run_study(spark, str(root), load_study(), str(tmp_path / "out"), log=lambda m: None)


def test_study_reads_the_build_and_warns_when_bronze_moved_on(spark, studied_wh, tmp_path):
    from faerslake.config import load_study
    from faerslake.gold import run_study

    studied, first = studied_wh  # a copy of the warehouse after its first study, and that study's results
    root, wh = _copy(studied, tmp_path)
    _rewrite(spark, wh, "bronze", "reac", "2012Q3")  # an ingest after the build (its manifest aside)
    lines: list[str] = []
    again = run_study(spark, str(root), load_study(), str(tmp_path / "out2"), log=lines.append)
    assert again.equals(first)
    assert any(ln.startswith("warning: study botox_depression: bronze (reac) changed after the last build")
               for ln in lines), lines


# --------------------------------------------------------------------------- #
# review follow-ups: threads, folders that do not exist, live-JVM errors,
# maintenance commits
# --------------------------------------------------------------------------- #
def test_another_thread_of_the_process_waits_like_another_process(tmp_path):
    import threading

    wh = str(tmp_path / "wh")
    inside, results = threading.Event(), []

    def other():
        inside.wait(10)
        try:
            with writer_lock(wh, "study", timeout=0.3):
                results.append("entered")
        except WarehouseBusy as e:
            results.append(str(e))

    t = threading.Thread(target=other)
    t.start()
    with writer_lock(wh, "ingest", timeout=0):
        inside.set()
        t.join(10)
    assert len(results) == 1 and "another thread of this process" in results[0], results
    with writer_lock(wh, "study", timeout=0):  # released: free again
        pass


def test_build_and_study_on_a_missing_warehouse_create_nothing(tmp_path):
    for command in ("build", "study"):
        with writer_lock(str(tmp_path / "typo"), command, timeout=0):
            pass
    assert not (tmp_path / "typo").exists()
    with writer_lock(str(tmp_path / "new"), "ingest", timeout=0):
        assert (tmp_path / "new" / LOCK_NAME).exists()


def test_an_unwritable_lock_file_runs_unlocked_with_a_warning(tmp_path, caplog, monkeypatch):
    import builtins

    wh = tmp_path / "wh"
    wh.mkdir()
    real_open = builtins.open

    def deny(file, *a, **kw):
        if str(file).endswith(LOCK_NAME):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *a, **kw)

    monkeypatch.setattr(builtins, "open", deny)
    with caplog.at_level("WARNING", logger="faerslake.lock"), writer_lock(str(wh), "ingest", timeout=0):
        pass
    assert "cannot create the lock file" in caplog.text and "running without the writer lock" in caplog.text


def test_a_java_error_about_a_refused_connection_is_not_a_dead_jvm():
    class Py4JJavaError(Exception):  # what a live JVM raises, by name, as py4j's class does
        pass

    assert explain(Py4JJavaError("o12.load: java.net.ConnectException: Connection refused (namenode:8020)")) is None
    stopped = explain(Py4JJavaError("java.lang.IllegalStateException: SparkContext was shut down"))
    assert isinstance(stopped, EnvironmentProblem)


def test_maintenance_commits_are_not_mistaken_for_an_unfinished_write(spark, studied_wh, tmp_path):
    """OPTIMIZE on a bronze and a silver table (a user's or the platform's
    maintenance) leaves the rows as they were: build and study go on."""
    from delta.tables import DeltaTable
    from faerslake.config import load_study
    from faerslake.gold import run_study
    from faerslake.silver import build

    studied, expected = studied_wh  # a copy of the warehouse after its first study, and that study's results
    root, wh = _copy(studied, tmp_path)
    DeltaTable.forPath(spark, str(root / "silver" / "reports")).optimize().executeCompaction()
    assert run_study(spark, str(root), load_study(), str(tmp_path / "o1"), log=lambda m: None).equals(expected)
    DeltaTable.forPath(spark, str(root / "bronze" / "drug")).optimize().executeCompaction()
    assert not build(spark, str(root), log=lambda m: None, force=True).skipped
    assert run_study(spark, str(root), load_study(), str(tmp_path / "o2"), log=lambda m: None).equals(expected)
