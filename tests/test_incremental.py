"""The incremental silver build (faerslake.silver.update) equals the full rebuild.

Place in the test suite: a generated source (faerslake.generate) of two legacy
AERS quarters (2012Q2, 2012Q3) and one FAERS quarter with a deleted-case list
(2019Q1). Quarters 1..2 are ingested and built; then 2019Q1 is ingested and
2012Q3 re-ingested with changed files (a kept report withdrawn, another's drugs
renamed), and the build updates silver. 2019Q1 brings what an update must get
right: a deleted list removing a case kept after the first build, newer versions
of cases kept in an older quarter, and cases whose kept legacy report is
superseded by a FAERS one. Every silver table (and the study's cohort results)
is compared with a full rebuild of a copy of the same bronze: row counts, the
sum of a row hash, and exceptAll both ways (a multiset difference) empty. The
fallback reasons are checked one by one, and an update killed (an injected
fault) at each of its steps, then re-run, gives the full rebuild's tables again.

One scenario serves every test (each build of this small lake costs half a
minute of Spark's fixed overhead): one first build, one update, one full
rebuild to compare with, and the kill chain.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from faerslake.faults import UPDATE_POINTS, InjectedFault
from faerslake.generate import generate
from faerslake.ingest import ingest
from faerslake.silver import SILVER_TABLES, build, update
from faerslake.silver import job as silver_job
from faerslake.tables import Warehouse
from pyspark.sql import functions as F

OLD = ["2012Q2", "2012Q3"]
NEW = "2019Q1"


def _quiet(lines: list[str] | None = None):
    return (lambda m: None) if lines is None else lines.append


def _copy_wh(src: Path, dst: Path, layers: tuple[str, ...] = ("bronze", "silver")) -> Warehouse:
    for layer in layers:
        if (src / layer).exists():
            shutil.copytree(src / layer, dst / layer)
    return Warehouse(str(dst))


def _content(spark, wh: Warehouse, table: str):
    df = wh.read(spark, "silver", table)
    return df.select(*sorted(df.columns))


def assert_same_silver(spark, got: Warehouse, want: Warehouse, multiset: bool = True) -> dict[str, int]:
    """Every silver table of ``got`` equals ``want``'s: rows, a hash sum, and (``multiset``) exceptAll both ways."""
    rows = {}
    for t in SILVER_TABLES:
        a, b = _content(spark, got, t), _content(spark, want, t)
        assert a.columns == b.columns, t
        h = F.sum(F.xxhash64(*[F.coalesce(F.col(c).cast("string"), F.lit("<null>")) for c in a.columns])
                  .cast("decimal(38,0)"))
        (na, ha), (nb, hb) = a.agg(F.count("*"), h).first(), b.agg(F.count("*"), h).first()
        assert (na, ha) == (nb, hb), f"silver {t}: {na} rows (hash {ha}) updated, {nb} (hash {hb}) rebuilt"
        if multiset:
            assert a.exceptAll(b).count() == 0 and b.exceptAll(a).count() == 0, t
        rows[t] = na
    return rows


def _full_reference(spark, wh_root: Path, dst: Path) -> tuple[Warehouse, list[str]]:
    """A full rebuild of a copy of ``wh_root``'s bronze into ``dst``."""
    ref = _copy_wh(wh_root, dst, ("bronze",))
    lines: list[str] = []
    result = build(spark, str(dst), log=lines.append)
    assert result.mode == "full" and result.reason == "no completed build to update"
    return ref, lines


def _fates(spark, wh: Warehouse) -> dict[int, tuple[str, str]]:
    """caseid -> (quarter, era) of its kept report (the test data is small)."""
    return {r.caseid: (r.quarter, r.era) for r in wh.read(spark, "silver", "reports")
            .select("caseid", "quarter", "era").collect()}


def _edit_lines(path: Path, edit) -> None:
    """Rewrite an FDA table file line by line (``edit(fields) -> fields or None to drop``), header kept."""
    raw = path.read_bytes()
    eol = b"\r\n" if b"\r\n" in raw else b"\n"
    lines = raw.split(eol)
    out = [lines[0]]
    for ln in lines[1:]:
        if not ln:
            out.append(ln)
            continue
        fields = edit(ln.split(b"$"))
        if fields is not None:
            out.append(b"$".join(fields))
    path.write_bytes(eol.join(out))


def _table_file(src: Path, name: str) -> Path:
    found = [p for p in src.rglob("*") if p.name.upper() == name.upper()]
    assert len(found) == 1, (name, found)
    return found[0]


def _cases_in_new_quarter(src: Path) -> set[int]:
    """Every caseid 2019Q1's DEMO or deleted list names (read from the generated files)."""
    demo = _table_file(src, "DEMO19Q1.TXT").read_bytes().splitlines()[1:]
    listed = _table_file(src, "DELETE19Q1.txt").read_bytes().split()
    return {int(ln.split(b"$")[1]) for ln in demo if ln.strip()} | {int(x) for x in listed if x.strip().isdigit()}


def _reingest_edits(spark, wh: Warehouse, src: Path) -> dict[str, int]:
    """Edit 2012Q3's files: a kept report withdrawn (its case has an older 2012Q2 version, which wins
    then) and another kept report's drugs renamed, both of cases 2019Q1 leaves alone."""
    status = wh.read(spark, "silver", "report_status")
    untouched = ~F.col("caseid").isin(sorted(_cases_in_new_quarter(src)))
    kept_q3 = (status.where((F.col("quarter") == "2012Q3") & (F.col("status") == "kept") & untouched)
               .select("caseid", "report_key"))
    older_q2 = status.where((F.col("quarter") == "2012Q2") & (F.col("status") == "older_version")).select("caseid")
    single_q3 = status.where(F.col("quarter") == "2012Q3").groupBy("caseid").count().where("count = 1")
    withdrawn = kept_q3.join(older_q2, "caseid").join(single_q3, "caseid").orderBy("caseid").first()
    assert withdrawn is not None
    renamed = kept_q3.where(F.col("caseid") != withdrawn.caseid).orderBy("caseid").first()
    _edit_lines(_table_file(src, "DEMO12Q3.TXT"),
                lambda f: None if f[0] == str(withdrawn.report_key).encode() else f)
    _edit_lines(_table_file(src, "DRUG12Q3.TXT"),
                lambda f: [*f[:3], b"RENAMED DRUG", *f[4:]] if f[0] == str(renamed.report_key).encode() else f)
    return {"withdrawn_case": withdrawn.caseid, "renamed_case": renamed.caseid, "renamed_key": renamed.report_key}


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("incremental")
    src = root / "src"
    generate(src, reports=240, seed=20261203, quarters=[*OLD, NEW], log=_quiet())
    wh_root = root / "wh"
    ingest(spark, str(src), str(wh_root), quarters=OLD, log=_quiet())
    first = build(spark, str(wh_root), log=_quiet())
    assert first.mode == "full" and first.reason == "no completed build to update"
    wh = Warehouse(str(wh_root))
    before = _fates(spark, wh)
    edits = _reingest_edits(spark, wh, src)
    ingested = ingest(spark, str(src), str(wh_root), log=_quiet())
    assert ingested.quarters_ingested == ["2012Q3", NEW], ingested.quarters_ingested
    pending = root / "pending"  # bronze after the second ingest, silver of the first build: the kill chain's start
    _copy_wh(wh_root, pending)
    lines: list[str] = []
    result = build(spark, str(wh_root), log=lines.append)
    ref, ref_lines = _full_reference(spark, wh_root, root / "ref")
    return {"root": root, "src": src, "wh_root": wh_root, "wh": wh, "before": before, "result": result,
            "lines": lines, "ref": ref, "ref_lines": ref_lines, "pending": pending, "edits": edits}


def test_a_new_quarter_updates_silver_to_what_a_full_rebuild_gives(spark, lake):
    result, lines = lake["result"], lake["lines"]
    assert result.mode == "update", lines
    assert any(ln.startswith(f"silver: update: 2 changed quarters (2012Q3, {NEW}), 2 changed deleted-case lists; ")
               for ln in lines), "\n".join(lines)
    rows = assert_same_silver(spark, lake["wh"], lake["ref"])
    assert rows["reports"] > 100 and rows["drugs"] > rows["reports"]
    assert result.dedup_summary.equals(silver_job._stored_summary(spark, lake["ref"]))

    # what 2019Q1 did to cases kept after the first build: each kind happened
    before, after = lake["before"], _fates(spark, lake["wh"])
    deleted = {c for c in before if c not in after}
    moved = {c for c in before if c in after and after[c][0] == NEW}
    to_faers = {c for c in moved if before[c][1] == "legacy" and after[c][1] == "faers"}
    assert deleted, "no case kept after the first build is deleted by 2019Q1's list"
    status = lake["wh"].read(spark, "silver", "report_status")
    assert status.where(F.col("caseid").isin(sorted(deleted)) & (F.col("status") == "deleted")).count() > 0
    assert moved and to_faers, (moved, to_faers)

    # what the re-ingested 2012Q3 did: the withdrawn report's case falls back to its 2012Q2 version,
    # the renamed report keeps its place with its new drug names
    e = lake["edits"]
    assert after[e["withdrawn_case"]][0] == "2012Q2" and after[e["renamed_case"]][0] == "2012Q3"
    drugs = lake["wh"].read(spark, "silver", "drugs").where(F.col("report_key") == e["renamed_key"])
    assert {r.drugname for r in drugs.collect()} == {"RENAMED DRUG"}


def test_the_update_merged_and_recorded_what_it_did(spark, lake):
    wh = lake["wh"]
    last = silver_job._last_record(spark, wh)
    assert last is not None and last["mode"] == "update" and last["faerslake_version"]
    # the update's two commits on a merged table: a MERGE that deletes the replaced rows, an append of the new
    history = wh.delta_table(spark, "silver", "reports").history(2).select("operation", "userMetadata").collect()
    assert [h[0] for h in history] == ["WRITE", "MERGE"] and all(update._TAG in h[1] for h in history), history
    # the MERGEs marked rows deleted with deletion vectors; a reader without Spark still reads the table
    # right through delta-rs' query engine (its to_pandas() refuses the deletionVectors feature)
    import deltalake

    table = deltalake.DeltaTable(wh.path("silver", "drugs"))
    assert "deletionVectors" in (table.protocol().reader_features or [])
    got = deltalake.QueryBuilder().register("t", table).execute("select count(*) as n from t").read_all()
    assert got.column("n")[0].as_py() == wh.read(spark, "silver", "drugs").count()
    # the same bronze again: skipped
    again = build(spark, str(lake["wh_root"]), log=_quiet())
    assert again.skipped and again.mode == "skipped"


def test_the_study_reads_the_same_cohorts_from_an_updated_lake(spark, lake):
    from faerslake.config import load_study
    from faerslake.gold import run_study

    got = run_study(spark, str(lake["wh_root"]), load_study(), str(lake["root"] / "out_upd"), log=_quiet())
    want = run_study(spark, str(lake["ref"].root), load_study(), str(lake["root"] / "out_ref"), log=_quiet())
    cols = ["cohort", "exposed_reports", "exposed_events", "control_reports", "control_events", "ror"]
    assert got[cols].equals(want[cols])


# --------------------------------------------------------------------------- #
# when the build does not update: the reasons
# --------------------------------------------------------------------------- #
def _plan(spark, wh: Warehouse, strict: bool = False, asked: str | None = None, last: dict | None = None,
          no_record: bool = False) -> update.Plan:
    from faerslake.ingest.bronze import completed_cut

    cut = completed_cut(spark, wh, silver_job._BRONZE_CUT, wh.root)
    record = None if no_record else (last if last is not None else silver_job._last_record(spark, wh))
    return update.plan(spark, wh, record, cut.versions, strict, asked,
                       lambda: silver_job._quarters_of(spark, wh, cut.versions))


@pytest.fixture
def settled(spark, lake, tmp_path) -> Warehouse:
    """A copy of the updated lake (bronze and silver as the last build left them)."""
    return _copy_wh(lake["wh_root"], tmp_path / "wh")


def test_nothing_changed_plans_an_update_of_nothing(spark, settled):
    p = _plan(spark, settled)
    assert (p.update, p.reason, p.quarters, p.deleted_quarters, p.resumed) == (True, "", [], [], False)


def test_optimize_and_vacuum_since_the_last_build_are_read_past(spark, settled):
    """The recorded versions' files are gone after OPTIMIZE + VACUUM; the update reads the maintained ones."""
    recorded = json.loads(silver_job._last_record(spark, settled)["silver_versions"])
    rows = {}
    spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    try:
        for t in ("reports",):
            rows[t] = settled.read(spark, "silver", t).count()
            table = settled.delta_table(spark, "silver", t)
            table.optimize().executeCompaction()
            table.vacuum(0)
    finally:
        spark.conf.unset("spark.databricks.delta.retentionDurationCheck.enabled")
    with pytest.raises(Exception, match="(?i)file|path"):  # the recorded version's files were vacuumed
        old = settled.read_at(spark, "silver", "reports", int(recorded["reports"]))
        old.agg(F.sum(F.xxhash64(*old.columns))).first()  # a scan (a count alone Delta answers from its log)
    p = _plan(spark, settled)
    assert (p.update, p.reason) == (True, "")
    for t, n in rows.items():
        assert p.silver[t] == settled.version(spark, "silver", t) > recorded[t]
        now = settled.read_at(spark, "silver", t, p.silver[t])
        assert now.agg(F.count(F.xxhash64(*now.columns))).first()[0] == n


def test_fallback_reasons_of_the_settings_and_the_record(spark, settled):
    last = silver_job._last_record(spark, settled)
    assert _plan(spark, settled, asked="asked for (--full)").reason == "asked for (--full)"
    assert _plan(spark, settled, strict=True).reason == (
        "strict de-duplication is on (its look-alike pass compares every pair of cases)")
    assert _plan(spark, settled, no_record=True).reason == "no completed build to update"
    assert _plan(spark, settled, last={**last, "strict_dedup": True}).reason == (
        "the last build used strict de-duplication")
    assert _plan(spark, settled, last={**last, "faerslake_version": "0.0.1"}).reason == (
        f"the last build was made by faerslake 0.0.1, this is {update.__version__}")
    assert _plan(spark, settled, last={**last, "faerslake_version": None}).reason == (
        "the last build did not record its faerslake version (an earlier faerslake)")
    no_drugs = {**last, "silver_versions": last["silver_versions"].replace('"drug_dictionary"', '"x"')}
    assert _plan(spark, settled, last=no_drugs).reason == "silver drug_dictionary is not in the last build's record"


def test_fallback_when_bronze_changed_outside_whole_quarters(spark, settled, seal_bronze):
    from delta.tables import DeltaTable

    DeltaTable.forPath(spark, settled.path("bronze", "reac")).delete(F.col("quarter") == "2012Q2")
    seal_bronze(spark, settled)  # as if an ingest had completed after it
    v = settled.version(spark, "bronze", "reac")
    assert _plan(spark, settled).reason.startswith(
        f"bronze reac version {v} (DELETE ") and _plan(spark, settled).reason.endswith(
        ") is not a replacement of whole quarters, so the change cannot be bounded")


def test_fallback_when_a_bronze_schema_changed(spark, settled, seal_bronze):
    from faerslake.ingest import bronze as bronze_mod

    outc = settled.read(spark, "bronze", "outc").where(F.col("quarter") == "2012Q3")
    settled.write(outc.withColumn("new_column", F.lit("x")).localCheckpoint(), "bronze", "outc", mode="overwrite",
                  replaceWhere="quarter IN ('2012Q3')", mergeSchema="true")
    seal_bronze(spark, settled)
    assert _plan(spark, settled).reason == "the schema of bronze outc changed since the last build"
    del bronze_mod


def test_fallback_when_every_quarter_changed(spark, settled, seal_bronze):
    import json

    from faerslake.ingest import bronze as bronze_mod

    last = silver_job._last_record(spark, settled)
    demo = settled.read(spark, "bronze", "demo").localCheckpoint()
    bronze_mod.replace_quarters(spark, settled, demo, "demo", [*OLD, NEW])
    seal_bronze(spark, settled)
    assert _plan(spark, settled).reason == "every quarter of bronze changed (3)"
    # one quarter rewritten since (as if the last build had read the version before): an update of it
    v = settled.version(spark, "bronze", "demo")
    bronze_mod.replace_quarters(spark, settled, demo.where(F.col("quarter") == "2012Q2"), "demo", ["2012Q2"])
    seal_bronze(spark, settled)
    read_before = {**json.loads(last["bronze_versions"]), "demo": v}
    p = _plan(spark, settled, last={**last, "bronze_versions": json.dumps(read_before)})
    assert (p.update, p.reason, p.quarters, p.deleted_quarters) == (True, "", ["2012Q2"], [])


def test_fallback_when_silver_was_written_outside_a_build(spark, settled):
    out = settled.read(spark, "silver", "outcomes").localCheckpoint()
    settled.write(out, "silver", "outcomes")
    v = settled.version(spark, "silver", "outcomes")
    assert _plan(spark, settled).reason == (
        f"silver outcomes version {v} (WRITE) was written after the last completed build by an interrupted "
        "full rebuild or outside faerslake")


# --------------------------------------------------------------------------- #
# an update killed at each step
# --------------------------------------------------------------------------- #
def test_an_update_killed_at_each_step_then_rerun_equals_the_full_rebuild(spark, lake, tmp_path, monkeypatch,
                                                                         seal_bronze):
    from faerslake.errors import InputError
    from faerslake.ingest import bronze as bronze_mod

    root = tmp_path / "wh"
    wh = _copy_wh(lake["pending"], root)
    for point in UPDATE_POINTS:
        monkeypatch.setenv("FAERSLAKE_FAULT", f"{point}:raise")
        with pytest.raises(InjectedFault, match=point):
            build(spark, str(root), log=_quiet())
        if point == "build.update_after_status":  # half-updated silver is refused to readers
            with pytest.raises(InputError, match="changed after the last completed build"):
                silver_job.completed_build(spark, wh, str(root))
    monkeypatch.delenv("FAERSLAKE_FAULT")
    assert silver_job._last_record(spark, wh)["mode"] == "full"  # still the first build's record

    # bronze changed since the interrupted update: its merges cannot be resumed
    other = _copy_wh(root, tmp_path / "other")
    demo = other.read(spark, "bronze", "demo").where(F.col("quarter") == NEW).localCheckpoint()
    bronze_mod.replace_quarters(spark, other, demo, "demo", [NEW])
    seal_bronze(spark, other)
    assert _plan(spark, other).reason.startswith(
        "an interrupted update left silver half-updated and bronze changed since (silver ")

    lines: list[str] = []
    result = build(spark, str(root), log=lines.append)
    assert result.mode == "update", lines
    assert any(ln.endswith("; resuming an interrupted update") for ln in lines), lines
    assert_same_silver(spark, wh, lake["ref"], multiset=False)  # rows and hash sums (exceptAll: the first test)
