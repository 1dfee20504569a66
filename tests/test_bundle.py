"""The Databricks Asset Bundle (``databricks.yml``) and the artifacts it ships.

No workspace is reachable from here, so the bundle is checked for structure:
its variables, that its wheel tasks call an entry point the wheel really has
with arguments faerslake's own parser accepts, that its tasks run in pipeline
order and that its notebook tasks pass only widgets the notebooks declare.
``make dist`` is run for real: the wheel carries the console script and the
default study, and the ``--py-files`` zip imports on its own.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from faerslake.cli import build_parser
from faerslake.config import PipelineConfig, load_pipeline_config
from faerslake.quarters import quarter_range

REPO = Path(__file__).resolve().parents[1]
BUNDLE = yaml.safe_load((REPO / "databricks.yml").read_text())
STUDY_YAML = REPO / "conf" / "studies" / "botox_depression.yaml"
PACKAGED_STUDY = REPO / "lib" / "faerslake" / "resources" / "botox_depression.yaml"
STAGES = ["download", "ingest", "build", "study", "screen"]
WIDGET = re.compile(r"dbutils\.widgets\.(?:text|dropdown)\(\s*\"(\w+)\"")


def _setup_call() -> ast.Call:
    tree = ast.parse((REPO / "setup.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup"]
    assert len(calls) == 1
    return calls[0]


def setup_kwarg(name: str):
    (kw,) = [k for k in _setup_call().keywords if k.arg == name]
    return ast.literal_eval(kw.value)


def console_scripts() -> dict[str, str]:
    entries = setup_kwarg("entry_points")["console_scripts"]
    return dict((part.strip() for part in e.split("=", 1)) for e in entries)


def substitute(value: str, target: str = "dev") -> str:
    """Resolve ${var.*}, ${bundle.target} and the schema reference as the CLI would."""
    variables = {k: str(v["default"]) for k, v in BUNDLE["variables"].items()}
    value = re.sub(r"\$\{var\.(\w+)\}", lambda m: variables[m.group(1)], value)
    value = value.replace("${bundle.target}", target)
    return value.replace("${resources.schemas.faers.name}", variables["schema"])


def jobs() -> dict:
    return BUNDLE["resources"]["jobs"]


def task_order(job: dict) -> list[str]:
    """Task keys in dependency order; each task must depend on exactly the one before."""
    tasks = {t["task_key"]: t for t in job["tasks"]}
    roots = [k for k, t in tasks.items() if not t.get("depends_on")]
    assert len(roots) == 1, f"one first task expected, got {roots}"
    order = roots
    while len(order) < len(tasks):
        nxt = [k for k, t in tasks.items()
               if [d["task_key"] for d in t.get("depends_on", [])] == [order[-1]]]
        assert len(nxt) == 1, f"after {order[-1]}: {nxt}"
        order.append(nxt[0])
    return order


# --------------------------------------------------------------------------- #
# the bundle's structure
# --------------------------------------------------------------------------- #
def test_every_variable_used_is_declared_with_a_default():
    text = (REPO / "databricks.yml").read_text()
    used = set(re.findall(r"\$\{var\.(\w+)\}", text))
    declared = BUNDLE["variables"]
    assert used and used <= set(declared), used - set(declared)
    assert all("default" in declared[v] for v in used)
    assert BUNDLE["bundle"]["name"] == "faerslake"
    assert [k for k, t in BUNDLE["targets"].items() if t.get("default")] == ["dev"]


def test_artifact_builds_the_wheel_every_task_installs():
    (art,) = BUNDLE["artifacts"].values()
    assert art["type"] == "whl" and art["path"] == "."
    assert "-w dist" in art["build"] and "wheel" in art["build"]
    for job in jobs().values():
        clusters = {c["job_cluster_key"] for c in job["job_clusters"]}
        for task in job["tasks"]:
            assert task["libraries"] == [{"whl": "./dist/*.whl"}], task["task_key"]
            assert task["job_cluster_key"] in clusters
        for c in job["job_clusters"]:
            # Spark 4 / Scala 2.13 runtimes, like the pinned pyspark 4.x + delta_2.13
            assert substitute(c["new_cluster"]["spark_version"]).endswith("-scala2.13")


def test_pipeline_job_runs_the_stages_in_order():
    assert task_order(jobs()["faerslake_pipeline"]) == STAGES
    assert task_order(jobs()["faerslake_notebooks"]) == STAGES


def test_wheel_tasks_call_the_console_script_with_arguments_it_accepts():
    scripts = console_scripts()
    wheel_tasks = [t for job in jobs().values() for t in job["tasks"] if "python_wheel_task" in t]
    assert len(wheel_tasks) == 6  # the pipeline's five stages and the notebooks job's download
    for task in wheel_tasks:
        pwt = task["python_wheel_task"]
        assert pwt["package_name"] == setup_kwarg("name") == "faerslake"
        assert pwt["entry_point"] in scripts
        module, func = scripts[pwt["entry_point"]].split(":")
        assert callable(getattr(__import__(module, fromlist=[func]), func))
        argv = [substitute(str(p)) for p in pwt["parameters"]]
        args, unknown = build_parser().parse_known_args(argv)
        assert unknown == [], f"{task['task_key']}: faerslake would ignore {unknown}"
        assert args.command == task["task_key"]
        cfg = load_pipeline_config(None, args.overrides)
        if args.command != "download":
            assert (cfg.tables.mode, cfg.tables.catalog, cfg.tables.schema) == ("catalog", "main", "faers")
            assert args.warehouse == "/Volumes/main/faers/work"
        if args.command in ("download", "ingest"):
            assert quarter_range(args.quarters)[0] == "2004Q1"
        if args.command in ("study", "screen"):
            assert args.output == "/Volumes/main/faers/output"


def test_notebook_tasks_pass_only_widgets_the_notebooks_declare():
    job = jobs()["faerslake_notebooks"]
    paths = []
    for task in job["tasks"]:
        if "notebook_task" not in task:
            continue
        nt = task["notebook_task"]
        path = (REPO / nt["notebook_path"]).resolve()
        assert path.is_file() and path.parent == REPO / "notebooks", nt["notebook_path"]
        paths.append(path.name)
        widgets = set(WIDGET.findall(path.read_text()))
        params = set(nt["base_parameters"])
        assert params <= widgets, f"{path.name}: {params - widgets} are not widgets"
        assert nt["base_parameters"]["table_mode"] == "catalog"
    assert paths == ["01_ingest.py", "02_build.py", "03_study.py", "05_screen.py"]


def test_bundle_volumes_are_the_paths_the_tasks_use():
    vols = BUNDLE["resources"]["volumes"]
    paths = {f"/Volumes/{substitute(v['catalog_name'])}/{substitute(v['schema_name'])}/{v['name']}"
             for v in vols.values()}
    used = {substitute(str(p)) for job in jobs().values() for t in job["tasks"]
            for p in (t.get("python_wheel_task", {}).get("parameters", [])
                      + list(t.get("notebook_task", {}).get("base_parameters", {}).values()))
            if str(p).startswith("/Volumes/")}
    assert used == paths == {"/Volumes/main/faers/raw", "/Volumes/main/faers/work",
                             "/Volumes/main/faers/output"}


# --------------------------------------------------------------------------- #
# what `make dist` ships
# --------------------------------------------------------------------------- #
def test_packaged_defaults_are_the_conf_files():
    # the wheel's default study is a copy of conf/'s; they must never drift apart
    assert PACKAGED_STUDY.read_bytes() == STUDY_YAML.read_bytes()
    # ... and the default screen
    assert ((REPO / "lib/faerslake/resources/all_drugs.yaml").read_bytes()
            == (REPO / "conf/screens/all_drugs.yaml").read_bytes())
    # without conf/pipeline.yaml (a wheel, a zip) the built-in defaults apply: the same settings
    assert load_pipeline_config(REPO / "conf" / "pipeline.yaml") == PipelineConfig()


@pytest.fixture(scope="module")
def dist(built_dist) -> Path:
    return built_dist


def test_make_dist_builds_one_wheel_and_the_same_zip(dist):
    wheels = sorted(dist.glob("faerslake-*-py3-none-any.whl"))
    assert len(wheels) == 1
    assert (dist / "faerslake.zip").read_bytes() == wheels[0].read_bytes()
    with zipfile.ZipFile(wheels[0]) as z:
        names = set(z.namelist())
        (ep,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "faerslake = faerslake.cli:main" in z.read(ep).decode()
        assert z.read("faerslake/resources/botox_depression.yaml") == STUDY_YAML.read_bytes()
        assert {"faerslake/__init__.py", "faerslake/cli.py", "faerslake/session.py"} <= names
        assert not [n for n in names if n.startswith("tests/") or "__pycache__" in n]


def test_zip_alone_imports_and_finds_the_default_study(dist, tmp_path):
    """What an executor or a --py-files driver sees: the zip first on sys.path, no conf/."""
    code = (
        "import faerslake, faerslake.config as c\n"
        "s = c.load_study()\n"
        "print(faerslake.__file__); print(c.DEFAULT_STUDY); print(s.name, s.sha256)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(dist / "faerslake.zip")}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True,
                         capture_output=True, text=True, timeout=120).stdout.splitlines()
    assert out[0] == str(dist / "faerslake.zip" / "faerslake" / "__init__.py")
    assert not out[1].startswith(str(REPO / "conf"))
    assert out[2] == f"botox_depression {hashlib.sha256(STUDY_YAML.read_bytes()).hexdigest()}"
