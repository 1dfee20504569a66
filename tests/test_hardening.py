"""Hostile or careless inputs meet one short sentence, and outputs are never
left half-written (GitHub issue #15: config hardening, output checks, the
atomic study folder, CSV and Markdown hygiene).

Only the study-folder tests start Spark (the session fixture); everything
else runs the config loader, the CLI's checks or the writers directly, with
``faerslake.cli._spark`` replaced so that a check that does not refuse in time
fails the test instead of starting Spark.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import time
from pathlib import Path

import pandas as pd
import pytest
from faerslake import cli
from faerslake.config import TableSettings, load_pipeline_config, load_study
from faerslake.errors import ConfigError, FaerslakeError, InputError
from faerslake.files import atomic_write_csv

REPO = Path(__file__).resolve().parents[1]
DEFAULT_STUDY_TEXT = (REPO / "conf" / "studies" / "botox_depression.yaml").read_text()
MINIMAL_STUDY = "exposure: {tokens: [BOTOX]}\ncohorts: {migraine: [MIGRAINE]}\noutcome_pts: [DEPRESSION]\n"


class SparkStarted(FaerslakeError):
    """Raised by the stand-in for ``cli._spark``: the checks let the command through."""


@pytest.fixture()
def no_spark(monkeypatch):
    def refuse(cfg, app):
        raise SparkStarted("spark would start here")

    monkeypatch.setattr(cli, "_spark", refuse)


def _cli(args: list[str]) -> tuple[int, list[str], str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = cli.main(args)
    lines = [ln for ln in err.getvalue().splitlines() if ln.startswith("faerslake: error:")]
    return rc, lines, err.getvalue()


def _refused(args: list[str]) -> str:
    """The one error sentence of a command refused with exit 2 (no trace)."""
    rc, lines, text = _cli(args)
    assert rc == 2, text
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0].removeprefix("faerslake: error: ")


# --------------------------------------------------------------------------- #
# A. config files
# --------------------------------------------------------------------------- #
def _alias_bomb() -> str:
    """A study file of ~500 bytes whose `published` section is nine levels of
    nine aliases each: 9^9 = 387 million leaves once anything walks it (before
    aliases were refused it passed validation and blew up in the report)."""
    levels = ["  a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        levels.append(f"  {cur}: &{cur} [{', '.join(['*' + prev] * 9)}]")
    return MINIMAL_STUDY + "published:\n" + "\n".join(levels) + "\n"


def test_alias_bomb_in_a_study_file_is_refused_in_milliseconds(tmp_path):
    bomb = _alias_bomb()
    assert 450 <= len(bomb.encode()) <= 600
    f = tmp_path / "bomb.yaml"
    f.write_text(bomb)
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as e:
        load_study(f)
    assert time.perf_counter() - t0 < 0.5
    assert str(e.value) == (f"study file {f} line 6: YAML aliases (*a) are not supported; "
                            "write the value out")


def test_alias_in_settings_file_and_override_is_refused(tmp_path):
    f = tmp_path / "pipeline.yaml"
    f.write_text("spark:\n  master: &m local[2]\ningest:\n  staging_dir: *m\n")
    with pytest.raises(ConfigError) as e:
        load_pipeline_config(f)
    assert str(e.value) == (f"settings file {f} line 4: YAML aliases (*m) are not supported; "
                            "write the value out")
    with pytest.raises(ConfigError) as e:
        load_pipeline_config(None, ["spark.conf={a: &x 1, b: *x}"])
    assert str(e.value) == ("override 'spark.conf={a: &x 1, b: *x}': YAML aliases are not supported; "
                            "write the value out")
    # anchors alone build nothing shared: still fine
    f.write_text("spark:\n  master: &m local[2]\n")
    assert load_pipeline_config(f).spark.master == "local[2]"


def test_a_value_quoted_in_a_message_is_cut_to_80_characters(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(MINIMAL_STUDY.replace("outcome_pts: [DEPRESSION]", "outcome_pts: " + "x" * 10_000))
    with pytest.raises(ConfigError) as e:
        load_study(f)
    prefix = f"{f}: key 'outcome_pts' should be a list of text, got "
    msg = str(e.value)
    assert msg.startswith(prefix + "'xxxx") and msg.endswith("…")
    assert len(msg) == len(prefix) + 80 + 1
    # a big nested value costs a few items of work, not its size
    f.write_text(MINIMAL_STUDY.replace("outcome_pts: [DEPRESSION]",
                                       "outcome_pts: {" + ", ".join(f"k{i}: [[[[{i}]]]]" for i in range(300)) + "}"))
    with pytest.raises(ConfigError) as e:
        load_study(f)
    assert str(e.value) == (f"{f}: key 'outcome_pts' should be a list of text, got "
                            "{'k0': [[[[...]]]], 'k1': [[[[...]]]], 'k10': [[[[...]]]], 'k100': [[[[...]]]], …")


def test_a_file_nested_5000_deep_is_one_sentence(tmp_path, no_spark):
    f = tmp_path / "deep.yaml"
    f.write_text(MINIMAL_STUDY + "published: " + "[" * 5000 + "]" * 5000 + "\n")
    msg = _refused(["study", "--warehouse", str(tmp_path / "wh"), "--output", str(tmp_path / "o"),
                    "--study", str(f)])
    assert msg == f"study file {f} is nested too deeply to read; write it with a few levels of nesting"
    # refused before PyYAML's scanner, which is quadratic in the depth of brackets
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="is nested too deeply to read"):
        load_study(f)
    assert time.perf_counter() - t0 < 0.1
    # block style (indentation) deeper than Python recurses: PyYAML's RecursionError, one sentence too
    f.write_text(MINIMAL_STUDY + "published:\n" + "".join("  " * i + "-\n" for i in range(1, 500)))
    with pytest.raises(ConfigError) as e:
        load_study(f)
    assert str(e.value) == f"study file {f} is nested too deeply to read; write it with a few levels of nesting"


@pytest.mark.parametrize(("published", "error"), [
    ("{migraine: 3}", "key 'published.migraine' should be a mapping of figures (exposed_reports, "
                      "control_reports, ror, ror_ci_lower, ror_ci_upper, note), got 3"),
    ("{migraine: {note: [1, 2]}}", "key 'published.migraine.note' should be a number, text or null, got [1, 2]"),
    ("{migraine: {note: {a: 1}}}", "key 'published.migraine.note' should be a number, text or null, got {'a': 1}"),
    ("{migraine: {exposed_reports: many}}", "key 'published.migraine.exposed_reports' should be a whole number, "
                                            "got 'many'"),
    ("{migraine: {control_reports: 1.5}}", "key 'published.migraine.control_reports' should be a whole number, "
                                           "got 1.5"),
    ("{migraine: {ror: true}}", "key 'published.migraine.ror' should be a number, got True"),
    ("{migraine: {" + ", ".join(f"f{i}: {i}" for i in range(21)) + "}}",
     "key 'published.migraine' has 21 figures; give at most 20"),
])
def test_published_figures_are_small_flat_mappings_of_scalars(tmp_path, published, error):
    f = tmp_path / "s.yaml"
    f.write_text(MINIMAL_STUDY + f"published: {published}\n")
    with pytest.raises(ConfigError) as e:
        load_study(f)
    assert str(e.value) == f"{f}: {error}"


def test_published_figures_that_are_fine(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(MINIMAL_STUDY + "published:\n  migraine: {exposed_reports: 3, ror: 0.5, ror_ci_lower: null, "
                 "note: text, extra: true}\n  2019: {note: 1}\n  empty:\n")
    assert load_study(f).published == {
        "migraine": {"exposed_reports": 3, "ror": 0.5, "ror_ci_lower": None, "note": "text", "extra": True},
        "2019": {"note": 1}, "empty": {}}
    assert load_study().published["bladder"]["ror"] == 0.77  # the default study is unchanged


def test_a_bad_file_name_is_said_to_be_the_file_name(tmp_path):
    f = tmp_path / "a b.yaml"
    f.write_text(MINIMAL_STUDY)
    with pytest.raises(ConfigError) as e:
        load_study(f)
    assert str(e.value) == (
        f"{f}: the file name gives the study name 'a b', which should be letters, digits, '_', '-' or '.' "
        "(at most 100 characters, the first a letter or digit) (it names the output folder); "
        "rename the file or set key 'name'")
    f.write_text("name: good_name\n" + MINIMAL_STUDY)
    assert load_study(f).name == "good_name"
    # a name the user wrote is still about the key; a trailing newline is not allowed by '$'
    f.write_text('name: "ok\\n"\n' + MINIMAL_STUDY)
    with pytest.raises(ConfigError) as e:
        load_study(f)
    assert str(e.value) == (
        f"{f}: key 'name' should be letters, digits, '_', '-' or '.' (at most 100 characters, the first "
        "a letter or digit) (it names the output folder), got 'ok\\n'")


def test_catalog_mode_refuses_dots_and_dashes_in_the_study_name(tmp_path, no_spark):
    from faerslake.gold.job import write_members
    from faerslake.tables import Warehouse

    catalog = TableSettings(mode="catalog", catalog="main", schema="faers")
    msg = ("study {!r}: in catalog mode (tables.mode: catalog) the study name is part of the gold table "
           "names, so it may hold only letters, digits and '_'; rename the study file or set its key 'name'")
    for name in ("my.study", "my-study"):
        f = tmp_path / f"{name}.yaml"
        f.write_text(MINIMAL_STUDY)
        assert load_study(f).name == name  # path mode: a folder name, fine
        assert load_study(f, tables=TableSettings()).name == name
        with pytest.raises(ConfigError) as e:
            load_study(f, tables=catalog)
        assert str(e.value) == msg.format(name)
        # the CLI refuses before Spark starts ...
        assert _refused(["study", "--warehouse", str(tmp_path / "wh"), "--output", str(tmp_path / "o"),
                         "--study", str(f), "--set", "tables.mode=catalog", "--set", "tables.schema=faers"]
                        ) == msg.format(name)
        # ... and so does gold, before the first gold table is named (notebooks call run_study directly)
        with pytest.raises(ConfigError) as e:
            write_members(None, Warehouse("unused", catalog), load_study(f), None)
        assert str(e.value) == msg.format(name)
    f = tmp_path / "my_study.yaml"
    f.write_text(MINIMAL_STUDY)
    assert load_study(f, tables=catalog).name == "my_study"


# --------------------------------------------------------------------------- #
# B. output folders checked before any work
# --------------------------------------------------------------------------- #
def test_output_under_a_file_is_refused_before_any_work(tmp_path, no_spark):
    afile = tmp_path / "afile"
    afile.write_text("x")
    out = afile / "sub"
    expected = f"--output {out} cannot be created because {afile} is a file, not a folder: pass another folder."
    for cmd in (["run", "--source", str(tmp_path / "nope")], ["study"]):
        assert _refused([*cmd, "--warehouse", str(tmp_path / "wh"), "--output", str(out)]) == expected
    assert afile.read_text() == "x"
    assert not (tmp_path / "wh").exists()


def test_study_folder_that_is_a_file_is_refused_before_any_work(tmp_path, no_spark):
    out = tmp_path / "out"
    out.mkdir()
    (out / "botox_depression").write_text("x")
    expected = (f"--output {out} holds a file named botox_depression, where the study's results folder goes: "
                "move that file or pass another --output.")
    for cmd in (["run", "--source", str(tmp_path / "nope")], ["study"]):
        assert _refused([*cmd, "--warehouse", str(tmp_path / "wh"), "--output", str(out)]) == expected
    (out / "botox_depression").unlink()
    (out / "ingest_audit.csv").mkdir()
    assert _refused(["run", "--source", str(tmp_path / "nope"), "--warehouse", str(tmp_path / "wh"),
                     "--output", str(out)]) == (
        f"--output {out} holds a folder named ingest_audit.csv, where the run writes that file: "
        "move the folder or pass another --output.")
    # `study` does not write that file: it gets as far as Spark
    assert _refused(["study", "--warehouse", str(tmp_path / "wh"), "--output", str(out)]) == \
        "spark would start here"
    # a study named like one of the files beside it would collide with it at the very end
    f = tmp_path / "ingest_audit.csv.yaml"
    f.write_text(MINIMAL_STUDY)
    for cmd in (["run", "--source", str(tmp_path / "nope")], ["study"]):
        assert _refused([*cmd, "--warehouse", str(tmp_path / "wh"), "--output", str(tmp_path / "new"),
                         "--study", str(f)]) == (
            "the study name ingest_audit.csv is also the name of a file faerslake writes in --output: "
            "rename the study file or set its key 'name'.")


@pytest.mark.parametrize("uri", ["s3a://bucket/out", "dbfs:/mnt/out", "abfss://c@a.dfs.core.windows.net/o"])
def test_output_uri_is_refused_before_any_work(tmp_path, monkeypatch, no_spark, uri):
    monkeypatch.chdir(tmp_path)
    expected = (f"--output {uri} is a URI, but faerslake writes its outputs (CSVs, report, run.json) as local "
                "files: pass a local folder (on Databricks, a /dbfs/... path).")
    for cmd in (["run", "--source", str(tmp_path / "nope")], ["study"]):
        assert _refused([*cmd, "--warehouse", str(tmp_path / "wh"), "--output", uri]) == expected
    assert _refused(["generate", "--dest", uri]) == (
        f"--dest {uri} is a URI, but faerslake writes the zips or quarters it makes as local files: pass a local folder "
        "(on Databricks, a /dbfs/... path).")
    assert list(tmp_path.iterdir()) == []  # no ./s3a: folder


def test_file_uri_output_is_a_local_path(tmp_path, no_spark):
    args = argparse.Namespace(output=f"file://{tmp_path}/o", warehouse=f"file://{tmp_path}/wh", dest=None)
    cli._check_folders(args)
    assert args.output == f"{tmp_path}/o"
    assert args.warehouse == f"file://{tmp_path}/wh"  # Spark reads URIs
    assert _refused(["study", "--warehouse", str(tmp_path / "wh"), "--output", f"file:{tmp_path}/o"]) == \
        "spark would start here"


# --------------------------------------------------------------------------- #
# C. the study folder is published whole
# --------------------------------------------------------------------------- #
def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _leftovers(out: Path, name: str) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith(f".{name}."))


def test_atomic_folder_switches_whole_and_cleans_up(tmp_path):
    from faerslake.files import atomic_folder, clean_stale_folders

    final = tmp_path / "s"
    final.mkdir()
    (final / "old.txt").write_text("old")

    def boom(tmp: Path):
        (tmp / "new.txt").write_text("new")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_folder(final, boom)
    assert _snapshot(final) == {"old.txt": b"old"} and _leftovers(tmp_path, "s") == []
    # a run killed mid-write, and one killed between the two renames of the switch
    (tmp_path / ".s.tmp-dead").mkdir()
    (tmp_path / ".s.tmp-dead" / "half.csv").write_text("half")
    final.rename(tmp_path / ".s.old-dead")
    clean_stale_folders(final)
    assert _snapshot(final) == {"old.txt": b"old"} and _leftovers(tmp_path, "s") == []
    assert atomic_folder(final, lambda tmp: (tmp / "new.txt").write_text("new")) == 3
    assert _snapshot(final) == {"new.txt": b"new"} and _leftovers(tmp_path, "s") == []
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        atomic_folder(tmp_path / "f", lambda tmp: None)


def test_mathtext_in_a_cohort_name_is_plain_text():
    from faerslake.report import forest_plot_figure, forest_plot_png

    results = pd.DataFrame([{"cohort": "p$^$", "exposed_reports": 3, "control_reports": 4, "ror": 2.0,
                             "ror_ci_lower": 0.5, "ror_ci_upper": 8.0, "haldane_corrected": False},
                            {"cohort": r"$\frac", "exposed_reports": 0, "control_reports": 0, "ror": None,
                             "ror_ci_lower": None, "ror_ci_upper": None, "haldane_corrected": False}])
    assert forest_plot_png(results, title="a$b").startswith(b"\x89PNG")
    ax = forest_plot_figure(results).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["p$^$ (n=3 / 4)", r"$\frac (n=0 / 0)"]


TINY_STUDY = """description: a tiny study
exposure: {tokens: [BOTOX]}
cohorts:
  migraine: [MIGRAINE]
  headache: [MIGRAINE]
outcome_pts: [DEPRESSION]
"""


@pytest.fixture(scope="module")
def tiny(spark, tmp_path_factory, seal_silver):
    """A four-report silver warehouse (one completed build) and a two-cohort study."""
    from faerslake.contracts import SILVER
    from faerslake.tables import Warehouse

    root = tmp_path_factory.mktemp("hardening")
    wh = Warehouse(str(root / "wh"))
    q = "2015Q1"
    rep = [(k, k * 10, 1, "faers", q, "20150101", None, None, 40.0, "F", "US", "MD", "EXP", "I") for k in (1, 2, 3, 4)]
    drug = {1: "BOTOX", 2: "TOPIRAMATE", 3: "BOTOX", 4: "TOPIRAMATE"}
    frames = {
        "reports": rep,
        "drugs": [(k, q, 1, "PS", d, None, d, None) for k, d in drug.items()],
        "indications": [(k, q, 1, "MIGRAINE", "MIGRAINE") for k in drug],
        "reactions": [(k, q, "DEPRESSION", "DEPRESSION") for k in (1, 4)],
    }
    for name, rows in frames.items():
        wh.write(spark.createDataFrame(rows, SILVER[name]), "silver", name)
    seal_silver(spark, wh)  # one completed build: the study reads these versions
    (root / "tiny.yaml").write_text(TINY_STUDY)
    return {"wh": wh.root, "study": load_study(root / "tiny.yaml"), "out": root / "out"}


@pytest.fixture(scope="module")
def first_run(spark, tiny):
    """The study run once over a previous folder with a file of its own, and
    a killed run's temp folder beside it."""
    from faerslake.gold import run_study

    out = tiny["out"]
    (out / "tiny").mkdir(parents=True)
    (out / "tiny" / "cohort_results.csv").write_text("older run\n")
    (out / "tiny" / "only_in_the_older_run.txt").write_text("x")
    (out / ".tiny.tmp-killed").mkdir()
    (out / ".tiny.tmp-killed" / "report.md").write_text("half")
    results = run_study(spark, tiny["wh"], tiny["study"], str(out), log=lambda m: None)
    return out, results


def test_study_folder_is_switched_in_whole_and_killed_runs_cleaned(first_run):
    out, results = first_run
    # exactly this run's files: the older run's extra file went with its folder
    assert sorted(p.name for p in (out / "tiny").iterdir()) == [
        "cases.csv", "cohort_results.csv", "demographics.csv", "forest_plot.png", "forest_plot.svg",
        "indications.csv", "mantel_haenszel.csv", "report.html", "report.md", "terms.csv", "trend.csv",
        "trend_plot.png"]
    assert _leftovers(out, "tiny") == []  # the killed run's temp folder is gone, and no new one is left
    assert list(results["cohort"]) == ["migraine", "headache"]
    csv = pd.read_csv(out / "tiny" / "cohort_results.csv")
    assert [tuple(r) for r in csv[["cohort", "exposed_reports", "exposed_events", "control_reports",
                                   "control_events"]].itertuples(index=False)] == [
        ("migraine", 2, 1, 2, 1), ("headache", 2, 1, 2, 1)]
    assert (out / "tiny" / "forest_plot.png").read_bytes().startswith(b"\x89PNG")
    assert "](forest_plot.png)" in (out / "tiny" / "report.md").read_text()


def test_a_failing_report_leaves_the_previous_folder_byte_identical(spark, tiny, first_run, monkeypatch):
    from faerslake.gold import job, run_study

    out, _ = first_run
    before = _snapshot(out / "tiny")
    seen = []

    def failing_report(out_dir, results, ctx):
        seen.append(sorted(p.name for p in Path(out_dir).iterdir()))  # the CSVs are written by now
        raise RuntimeError("report failed")

    monkeypatch.setattr(job, "write_report", failing_report)
    with pytest.raises(RuntimeError, match="report failed"):
        run_study(spark, tiny["wh"], tiny["study"], str(out), log=lambda m: None)
    assert seen == [["cases.csv", "cohort_results.csv", "demographics.csv", "indications.csv", "mantel_haenszel.csv",
                     "terms.csv", "trend.csv", "trend_plot.png"]]
    assert _snapshot(out / "tiny") == before
    assert _leftovers(out, "tiny") == []


# --------------------------------------------------------------------------- #
# D. CSV cells and report.md text
# --------------------------------------------------------------------------- #
def test_csv_text_cells_that_start_a_formula_are_neutralised(tmp_path):
    df = pd.DataFrame({
        "text": ["=1+1", "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx", "plain", "-1.5", None, "a=b"],
        "number": [-1, -2, 3, -4, 5, -6, 7, -8, 9, -10],
        "ratio": [-0.5, 1.5, None, -2.0, 0.0, -1e-9, 2.0, 3.0, 4.0, 5.0],
    })
    path = atomic_write_csv(tmp_path / "x.csv", df)
    assert path.read_bytes().decode() == (
        "text,number,ratio\n"
        "'=1+1,-1,-0.5\n"
        "'+cmd,-2,1.5\n"
        "'-2+3,3,\n"
        "'@SUM(A1),-4,-2.0\n"
        "'\tx,5,0.0\n"
        "'\rx,-6,-1e-09\n"
        "plain,7,2.0\n"
        "-1.5,-8,3.0\n"
        ",9,4.0\n"
        "a=b,-10,5.0\n"
    )
    assert df["text"][0] == "=1+1"  # the caller's frame is not changed


def test_report_md_has_no_raw_html_from_the_study_or_file_names(tmp_path):
    from faerslake.report import write_report

    study = dataclasses.replace(
        load_study(), description="<script>alert(1)</script> keeps `<code>` & text",
        source_path="/x/`<img src=x onerror=alert(1)>`.yaml", sha256="abc")
    results = pd.DataFrame([{"study": study.name, "cohort": "<b>c</b>", "exposed_reports": 1, "exposed_events": 0,
                             "control_reports": 1, "control_events": 0, "ror": None, "ror_ci_lower": None,
                             "ror_ci_upper": None, "haldane_corrected": False, "fisher_p": None, "fisher_q": None,
                             "prr": None}])
    paths = write_report(tmp_path, results, {
        "study": study, "failed_quarters": {"2019Q1": "<iframe>.zip is not a zip"},
        "table_versions": {"silver/reports": 3}})
    md = paths["md"].read_text().splitlines()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; keeps `<code>` & text" in md
    assert "Study file: `/x/`&lt;img src=x onerror=alert(1)&gt;`.yaml`, sha256 `abc`." in md
    assert "| 2019Q1 | &lt;iframe&gt;.zip is not a zip |" in md
    assert any(line.startswith("| &lt;b&gt;c&lt;/b&gt; | 1 | 0 | 1 | 0 |") for line in md)
    # our own code spans keep their text
    assert any("`spark.read.format(\"delta\").option(\"versionAsOf\", N).load(WH/<table>)`" in ln for ln in md)
    # the HTML page was escaped before and still is
    page = paths["html"].read_text()
    assert "<script>" not in page and "<iframe>" not in page and "<b>c</b>" not in page
