"""The DuckDB yardstick (bench/duckdb_reference.py) against the generator's _truth.json.

Two independent implementations of spec §2-§3 (the generator's plain-Python
truth model and the DuckDB SQL) must agree exactly on every cohort's a, b, c,
d, on the de-duplication counts and on the per-file ingest counts, for zips and
for folders, over quarters that carry every layout quirk. No Spark here.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
from faerslake.generate import generate

REPO = Path(__file__).resolve().parents[1]


def _reference():
    spec = importlib.util.spec_from_file_location("duckdb_reference", REPO / "bench" / "duckdb_reference.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("duckdb_reference", mod)
    spec.loader.exec_module(mod)
    return mod


ref = _reference()


def _quiet(_msg: str) -> None:
    pass


@pytest.mark.parametrize(
    ("as_zip", "quarters"),
    [
        (True, None),  # the default quarters: legacy, 2012Q4 quirks, version B, deleted lists
        # LF-only 2017Q4, 2018Q1's DEMO..._new.txt, ASCII/ folders, every deleted-list spelling
        (False, ["2004Q1", "2012Q3", "2012Q4", "2017Q4", "2018Q1", "2020Q1", "2021Q1", "2021Q4"]),
    ],
    ids=["zips-default-quarters", "folders-more-layouts"],
)
def test_counts_equal_truth(tmp_path: Path, as_zip: bool, quarters: list[str] | None) -> None:
    src = tmp_path / "src"
    generate(src, reports=600, seed=42, quarters=quarters, as_zip=as_zip, log=_quiet)
    truth = json.loads((src / "_truth.json").read_text())

    res = ref.run_reference(src, tmp_path / "work", log=_quiet)

    assert list(res.cohorts) == truth["cohort_order"]
    assert res.cohorts == truth["cohorts"]
    assert res.dedup == truth["dedup"]
    assert ref.compare_truth(res, truth) == []
    # the sample is not degenerate: exposed and control reports, events, repairs, a quarantine
    assert sum(c["exposed_reports"] for c in res.cohorts.values()) > 20
    assert sum(c["control_events"] for c in res.cohorts.values()) > 0
    assert sum(a["rows_repaired"] for a in res.audit) > 0
    assert sum(a["rows_quarantined"] for a in res.audit) > 0
    assert res.rows_loaded == sum(e["rows_loaded"] for e in truth["ingest"])


def test_missing_deleted_list_is_detected(tmp_path: Path) -> None:
    """The comparison can fail: without the deleted-case lists the counts differ from the truth."""
    src = tmp_path / "src"
    generate(src, reports=300, seed=7, as_zip=False, log=_quiet)
    truth = json.loads((src / "_truth.json").read_text())
    for d in src.glob("*/[Dd][Ee][Ll][Ee][Tt][Ee][Dd]"):
        shutil.rmtree(d)

    res = ref.run_reference(src, tmp_path / "work", log=_quiet)

    assert res.dedup["all"]["removed_deleted"] == 0
    assert truth["dedup"]["all"]["removed_deleted"] > 0
    assert any(d.startswith("dedup all") for d in ref.compare_truth(res, truth))


def test_repair_rules() -> None:
    """Broken record joined, glued records split, stray '$' quarantined (header of 3 fields)."""
    odd = [
        (5, "1$a"),            # broken: first half ...
        (6, "$b$"),            # ... continuation starts with '$'
        (9, "2$c$d$3$e$f$"),   # two records glued, each with its trailing '$'
        (12, "4$g$$h$"),       # one '$' too many: quarantined
    ]
    rows, counts = ref.repair(odd, 3)
    assert rows == [(5, ["1", "a", "b"]), (9, ["2", "c", "d"]), (9, ["3", "e", "f"])]
    assert counts == {"rows_repaired": 3, "lines_repaired": 3, "rows_quarantined": 1}
