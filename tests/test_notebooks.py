"""The Databricks notebooks (``notebooks/0*.py``), run here as Databricks would.

Each notebook's source is executed cell by cell, top to bottom, in local mode
with the test run's real ``spark`` session injected as the global ``spark``;
the only stand-ins are ``dbutils.widgets`` (a dict: the test's values play the
job parameters, the widget defaults the rest) and ``display`` (prints). They
run as on Databricks: catalog tables (``table_mode=catalog``, a schema of the
session catalog). On a small generated archive every table they write must
have exactly the rows the pipeline writes for it, read off the generator's
``_truth.json`` (the figures the pipeline's own tests hold it to), and
``faerslake`` must use the session it is given: never build, replace or stop one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from faerslake.config import load_pipeline_config
from faerslake.tables import Warehouse

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
ORDER = ["01_ingest", "02_build", "03_study", "04_explore", "05_screen"]
HEADER = "# Databricks notebook source\n"
SEPARATOR = re.compile(r"\n+# COMMAND ----------\n+")
STUDY = "botox_depression"



# --------------------------------------------------------------------------- #
# the stand-ins and the runner
# --------------------------------------------------------------------------- #
class Widgets:
    """``dbutils.widgets``: values given up front win over defaults, like job parameters."""

    def __init__(self, values: dict[str, str]):
        self.given = dict(values)
        self.defaults: dict[str, str] = {}

    def text(self, name: str, defaultValue: str, label: str | None = None) -> None:
        self.defaults[name] = defaultValue

    def dropdown(self, name: str, defaultValue: str, choices: list[str], label: str | None = None) -> None:
        assert defaultValue in choices, f"widget {name}: default {defaultValue!r} not in {choices}"
        if name in self.given:
            assert self.given[name] in choices, f"widget {name}: {self.given[name]!r} not in {choices}"
        self.defaults[name] = defaultValue

    def get(self, name: str) -> str:
        if name not in self.defaults:  # Databricks raises too: the widget must be declared
            raise KeyError(f"widget {name!r} is read but never declared")
        return self.given.get(name, self.defaults[name])


class DBUtils:
    def __init__(self, values: dict[str, str]):
        self.widgets = Widgets(values)


class Display:
    """``display``: shows a DataFrame, prints a pandas frame, keeps everything shown."""

    def __init__(self):
        self.shown: list = []

    def __call__(self, obj) -> None:
        self.shown.append(obj)
        if hasattr(obj, "show") and hasattr(obj, "schema"):
            obj.show(truncate=False)
        else:
            print(obj)


def notebook_cells(path: Path) -> list[tuple[str, str]]:
    """(kind, source) per cell: ``python`` or ``md`` (``# MAGIC %md`` cells)."""
    text = path.read_text(encoding="utf-8")
    assert text.startswith(HEADER), f"{path.name}: not in Databricks source format"
    cells = []
    for chunk in SEPARATOR.split(text[len(HEADER):]):
        lines = [ln for ln in chunk.strip("\n").splitlines() if ln.strip()]
        if lines and all(ln.startswith("# MAGIC") for ln in lines):
            assert lines[0].startswith("# MAGIC %md"), f"{path.name}: only %md magic cells, got {lines[0]}"
            cells.append(("md", chunk))
        else:
            assert not any(ln.startswith("# MAGIC") for ln in lines), f"{path.name}: mixed cell"
            cells.append(("python", chunk))
    return cells


def run_notebook(name: str, spark, values: dict[str, str]) -> dict:
    """Execute one notebook's code cells in order; return its globals."""
    path = NOTEBOOKS / f"{name}.py"
    dbutils = DBUtils(values)
    shown = Display()
    ns = {"__name__": "__main__", "spark": spark, "dbutils": dbutils, "display": shown,
          "displayHTML": lambda page: shown.shown.append(("html", page))}
    for i, (kind, src) in enumerate(notebook_cells(path)):
        if kind == "python":
            exec(compile(src, f"{path}#cell{i + 1}", "exec"), ns)
    unknown = set(values) - set(dbutils.widgets.defaults)
    assert not unknown, f"{name}: parameters {sorted(unknown)} are not widgets of the notebook"
    return ns


# --------------------------------------------------------------------------- #
# one generated archive through the four notebooks
# --------------------------------------------------------------------------- #
SCHEMA = "faers_notebooks"


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> tuple[Path, dict]:
    from faerslake.generate import generate

    src = tmp_path_factory.mktemp("nb-source")
    generate(src, reports=300, seed=11, quarters=["2012Q3", "2012Q4"], as_zip=True, log=lambda m: None)
    return src, json.loads((src / "_truth.json").read_text())


@pytest.fixture(scope="module")
def notebook_run(spark, archive, tmp_path_factory) -> dict:
    from faerslake import session
    from pyspark.sql import SparkSession

    src, truth = archive
    root = tmp_path_factory.mktemp("nb-run")
    wh, out = str(root / "wh"), str(root / "out")
    # explore the cohort with the most reports, so its numbers are not all zero
    cohort = max(truth["cohort_order"],
                 key=lambda c: truth["cohorts"][c]["exposed_reports"] + truth["cohorts"][c]["control_reports"])
    common = {"warehouse": wh, "table_mode": "catalog", "catalog": "", "schema": SCHEMA}
    params = {
        "01_ingest": {**common, "source": str(src)},
        "02_build": dict(common),
        "03_study": {**common, "output": out},
        "04_explore": {**common, "cohort": cohort, "top_n": "5"},
        "05_screen": {**common, "output": out, "roles": "PS,SS", "top_n": "7"},
    }
    # faerslake must take the notebook's session: record any attempt to build one
    built = []
    real_get_or_create = SparkSession.Builder.getOrCreate
    app_id = spark.sparkContext.applicationId

    def spy(self):
        # PySpark itself calls a bare builder.getOrCreate() from threads with no
        # active session (ingest writes tables in a thread pool); that only
        # returns the running session. faerslake's get_spark always sets options.
        result = real_get_or_create(self)
        if self._options or result.sparkContext.applicationId != app_id:
            built.append(dict(self._options))
        return result

    namespaces, sessions = {}, {}
    SparkSession.Builder.getOrCreate = spy
    try:
        for name in ORDER:
            namespaces[name] = run_notebook(name, spark, params[name])
            sessions[name] = session.get_spark("faerslake-notebook-check")
    finally:
        SparkSession.Builder.getOrCreate = real_get_or_create
    cfg = load_pipeline_config(None, ["tables.mode=catalog", f"tables.schema={SCHEMA}"])
    return {"wh": Warehouse(wh, cfg.tables), "out": Path(out), "ns": namespaces, "sessions": sessions,
            "built": built, "app_id": app_id, "cohort": cohort, "truth": truth}


def expected_rows(truth: dict) -> dict[str, int]:
    """Rows per table the pipeline writes for this archive (from the generator's truth)."""
    rows: dict[str, int] = {}
    for f in truth["ingest"]:
        rows[f"bronze/{f['table']}"] = rows.get(f"bronze/{f['table']}", 0) + f["rows_loaded"]
    rows["bronze/quarantine"] = sum(f["rows_quarantined"] for f in truth["ingest"])
    rows["bronze/ingest_audit"] = len(truth["ingest"])
    rows["bronze/source_manifest"] = len(truth["containers"])
    rows.update({f"silver/{t}": n for t, n in truth["silver_rows"].items()})
    rows["silver/dedup_summary"] = len(truth["dedup"])  # `all` and one per quarter
    cohorts = truth["cohorts"].values()
    rows[f"gold/{STUDY}/cohort_members"] = sum(c["exposed_reports"] + c["control_reports"] for c in cohorts)
    rows[f"gold/{STUDY}/cohort_results"] = len(truth["cohort_order"])
    return rows


# --------------------------------------------------------------------------- #
# tests
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("name", ORDER)
def test_notebook_is_databricks_source_that_never_owns_the_session(name):
    cells = notebook_cells(NOTEBOOKS / f"{name}.py")
    kinds = [k for k, _ in cells]
    assert kinds[0] == "md" and "python" in kinds
    code = "\n".join(src for k, src in cells if k == "python")
    assert "dbutils.widgets.get(" in code
    # the active `spark` is used as it is: never built, replaced or stopped
    for forbidden in (".stop(", "SparkSession.builder", "get_spark(", "spark ="):
        assert forbidden not in code, f"{name}: {forbidden!r}"


def test_notebooks_use_the_injected_session(spark, notebook_run):
    assert notebook_run["built"] == [], "faerslake built a session inside a notebook"
    for name in ORDER:
        assert notebook_run["sessions"][name] is spark, name
    assert spark.sparkContext.applicationId == notebook_run["app_id"]
    assert spark.range(3).count() == 3  # and it was not stopped


def test_notebooks_write_the_pipelines_tables_as_catalog_tables(spark, notebook_run):
    wh, truth = notebook_run["wh"], notebook_run["truth"]
    expected = expected_rows(truth)
    got = {}
    for key in expected:
        layer, name = key.split("/", 1)
        table = wh.name(layer, name)
        assert spark.catalog.tableExists(table), f"notebooks did not write {table}"
        got[key] = spark.read.table(table).count()
    assert got == expected
    assert got["bronze/demo"] > 0 and got[f"gold/{STUDY}/cohort_members"] > 0
    # no path-mode leftovers: the tables really are in the catalog, not under the warehouse
    assert not (Path(notebook_run["wh"].root) / "bronze").exists()
    # the audit 01_ingest showed is the truth's, file by file
    audit = notebook_run["ns"]["01_ingest"]["result"].audit
    cols = ["lines_read", "rows_loaded", "rows_repaired", "lines_repaired", "rows_quarantined"]
    assert sorted(map(tuple, audit[["quarter", "table", *cols]].values.tolist())) == sorted(
        (f["quarter"], f["table"], *(f[c] for c in cols)) for f in truth["ingest"])


def test_notebook_study_results_are_the_truths(notebook_run):
    truth = notebook_run["truth"]
    csv = pd.read_csv(notebook_run["out"] / STUDY / "cohort_results.csv")
    assert list(csv["cohort"]) == truth["cohort_order"]
    for _, row in csv.iterrows():
        t = truth["cohorts"][row["cohort"]]
        assert (row["exposed_reports"], row["exposed_events"], row["control_reports"],
                row["control_events"]) == (t["exposed_reports"], t["exposed_events"],
                                           t["control_reports"], t["control_events"]), row["cohort"]
    for f in ("report.md", "report.html", "forest_plot.png", "forest_plot.svg", "terms.csv", "indications.csv",
              "trend.csv", "trend_plot.png", "demographics.csv", "cases.csv"):
        assert (notebook_run["out"] / STUDY / f).stat().st_size > 0, f
    shown = notebook_run["ns"]["03_study"]["display"].shown
    assert any(isinstance(o, pd.DataFrame) and list(o["cohort"]) == truth["cohort_order"] for o in shown)
    # the notebook ends by showing the report: the page written, as it is
    pages = [o[1] for o in shown if isinstance(o, tuple) and o[0] == "html"]
    assert shown[-1] == ("html", pages[0]) and len(pages) == 1
    assert pages[0] == (notebook_run["out"] / STUDY / "report.html").read_text(encoding="utf-8")
    assert pages[0].startswith("<!DOCTYPE html>") and "data:image/png;base64," in pages[0]


def test_notebook_screen_writes_the_catalog_table_and_shows_the_report(spark, notebook_run):
    ns, wh = notebook_run["ns"]["05_screen"], notebook_run["wh"]
    result = ns["result"]
    assert result.drug_key == "ingredient" and ns["screen"].roles == ["PS", "SS"]
    table = wh.read(spark, "gold", "screen_all_drugs/signals")  # gold_screen_all_drugs_signals
    assert table.count() == result.pairs > 0
    shown = ns["display"].shown
    top = next(o for o in shown if isinstance(o, pd.DataFrame))
    assert len(top) == min(7, len(result.top)) and list(top["eb05"]) == sorted(top["eb05"], reverse=True)
    page = next(o[1] for o in shown if isinstance(o, tuple) and o[0] == "html")
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64," in page
    assert (notebook_run["out"] / "screen_all_drugs" / "signals.csv").is_file()


def test_explore_counts_are_the_cohorts_2x2(spark, notebook_run):
    ns, wh = notebook_run["ns"]["04_explore"], notebook_run["wh"]
    cohort = notebook_run["cohort"]
    t = notebook_run["truth"]["cohorts"][cohort]
    exposed, control = ns["two_by_two"]
    assert (exposed["group"], control["group"]) == ("exposed", "control")
    assert (exposed["reports"], exposed["event"]) == (t["exposed_reports"], t["exposed_events"])
    assert (control["reports"], control["event"]) == (t["control_reports"], t["control_events"])
    assert exposed["reports"] + control["reports"] > 0

    # top co-reported PTs, checked against a plain pandas count of the same tables
    top = ns["top_pts"].toPandas()
    members = spark.read.table(wh.name("gold", f"{STUDY}/cohort_members")).where(
        f"cohort = '{cohort}'").toPandas()
    reactions = spark.read.table(wh.name("silver", "reactions")).toPandas()
    joined = members.merge(reactions, on=["report_key", "quarter"])
    joined = joined.drop_duplicates(["report_key", "quarter", "pt_norm"])
    expected = (joined.groupby("pt_norm")
                .agg(exposed_reports=("exposed", "sum"), reports=("exposed", "size"))
                .reset_index()
                .sort_values(["reports", "pt_norm"], ascending=[False, True]).head(5))
    assert len(top) == len(expected) > 0
    assert list(top["pt_norm"]) == list(expected["pt_norm"])
    assert list(top["reports"]) == list(expected["reports"])
    assert list(top["exposed_reports"]) == list(expected["exposed_reports"])

    # the forest plot was drawn: a matplotlib figure holding the rendered PNG
    figures = [o for o in ns["display"].shown if type(o).__name__ == "Figure"]
    assert len(figures) == 1 and figures[0].axes[0].images


def test_explore_names_the_cohorts_when_given_an_unknown_one(spark, notebook_run):
    from faerslake.errors import ConfigError

    params = {"warehouse": notebook_run["wh"].root, "table_mode": "catalog", "catalog": "",
              "schema": SCHEMA, "cohort": "no_such_cohort"}
    with pytest.raises(ConfigError, match="choose one of: cosmetic, migraine"):
        run_notebook("04_explore", spark, params)


def test_get_spark_takes_the_runtimes_session_on_databricks(spark, monkeypatch):
    """A wheel task on Databricks: no active session in Python yet, a running runtime.

    get_spark must take the runtime's session as it is, not apply faerslake's
    local settings (which would, e.g., reset the shuffle partitions).
    """
    from faerslake import session

    before = spark.conf.get("spark.sql.shuffle.partitions")
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "17.3")
    monkeypatch.setattr(session, "_active_session", lambda: None)
    try:
        assert session.get_spark("faerslake-ingest") is spark
        assert spark.conf.get("spark.sql.shuffle.partitions") == before
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", before)
