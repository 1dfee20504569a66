"""Synthetic FAERS / legacy AERS quarterly releases, with the answers.

Place in the pipeline: the *source* end. ``faerslake generate`` writes
quarters in FDA's exact layouts (:mod:`.layouts`) so that ``ingest -> build ->
study`` can be run and tested end to end without FDA's 3.5 GB archive. Beside
the quarters it writes ``_truth.json``: what a correct pipeline must report for
them, computed from the generator's own model of each case while the case is
created (:mod:`.truth`, the spec rules in plain Python), never by re-reading
files.

``_truth.json`` keys (all for the default study, strict de-duplication off):
``cohorts`` {cohort: exposed_reports, exposed_events, control_reports,
control_events} in study order; ``dedup`` {"all" and each quarter:
reports_read, removed_deleted, removed_older_versions, reports_kept};
``ingest`` one entry per table file (quarter, table, file as
``container/dir/NAME`` or ``NAME.zip!/dir/NAME``, lines_read, rows_loaded,
rows_repaired, lines_repaired, rows_quarantined); ``deleted_cases``
(distinct ids over all lists, and per list its lines); ``silver_rows`` (rows
of the kept reports per silver table); ``kept_by_era``; ``generator`` (seed,
reports, quarters, as_zip).

With ``signals=N`` (:mod:`.signals`) the generator plants N screen signals and
the truth gains ``screen`` (absent otherwise, as is ``generator.signals``):
``signals`` [{drug, pt, rr, a, n_drug, n_pt}] (drug the normalised drugname,
pt the normalised PT, rr the true reporting ratio P(pt | drug) / P(pt | no
drug), a the kept reports carrying both, n_drug and n_pt those carrying
each), ``reports`` (N: kept reports with a drug and a PT), ``drugs`` and
``pts`` (the layer's whole vocabulary: any pair of one of them with any term,
other than a signal, is a true null), ``null_drugs`` and ``null_pts`` (how
many of them carry no signal).

Scale: cases are created in order of the quarter where they start; a case's
versions lie within ``WINDOW`` later quarters (a hand-placed few one more), so
only those quarters' files are open at once and a quarter is closed (and
zipped) as soon as no later case can write into it. Memory holds one case at a
time plus counters and the deleted-case lists.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from faerslake.config import Study, default_study_path, load_study
from faerslake.errors import InputError
from faerslake.logs import sink
from faerslake.quarters import parse_quarter, quarter_index
from faerslake.synthetic.cases import CaseGenerator
from faerslake.synthetic.layouts import TABLES, ReleaseLayout, layout_for
from faerslake.synthetic.model import Report
from faerslake.synthetic.quirks import QUIRKS, WINDOW, quirk_cases
from faerslake.synthetic.signals import SignalLayer
from faerslake.synthetic.truth import (
    ScreenTruth,
    Truth,
    drug_matches,
    drug_row_matches,
    kept_order_key,
    norm_drug_text,
    norm_pt_text,
    report_cohort_flags,
)
from faerslake.synthetic.writer import ReleaseWriter, prepare_dest

DEFAULT_QUARTERS = ["2012Q2", "2012Q3", "2012Q4", "2014Q3", "2019Q1"]
MIN_REPORTS = 60
TRUTH_VERSION = 1
LOGGER = "faerslake.generate"  # the name messages have always been logged under


@dataclass
class GenerateSummary:
    dest: str
    quarters: list[str]
    cases: int
    reports: int
    rows: int
    bytes_written: int
    seconds: float
    rows_per_second: float
    containers: list[str] = field(default_factory=list)
    truth: str = ""
    cpu_seconds: float = 0.0

    def __str__(self) -> str:
        return (f"{self.cases} cases, {self.reports} reports, {self.rows} rows in "
                f"{len(self.quarters)} quarters ({', '.join(self.quarters)}) to {self.dest} "
                f"in {self.seconds:.1f} s ({self.rows_per_second:,.0f} rows/s; "
                f"{self.rows / max(self.cpu_seconds, 1e-9):,.0f} rows per CPU second)")


def generate(
    dest: Path,
    reports: int,
    seed: int = 20200101,
    quarters: list[str] | None = None,
    as_zip: bool = False,
    log: Callable[[str], None] | None = None,
    signals: int = 0,
    last_quarter_cases: int | None = None,
) -> GenerateSummary:
    """Write ``reports`` synthetic cases over ``quarters`` under ``dest`` and ``dest/_truth.json``.

    ``reports`` counts cases (each has one or more versions, i.e. reports).
    ``signals`` plants that many (drug, PT) pairs with known reporting ratios
    for the signal screen (:mod:`.signals`); 0 writes exactly what it always did.
    ``last_quarter_cases``: that many ordinary cases start in the last quarter
    and the rest are spread evenly over the others (``make bench``'s update
    scenario: a lake plus one smaller quarter); None spreads all evenly.
    Same seed and arguments give the same bytes.
    """
    log = sink(log, LOGGER)
    t0, c0 = time.perf_counter(), time.process_time()
    dest = Path(dest)
    qs = sorted({parse_quarter(q) for q in (quarters or DEFAULT_QUARTERS)}, key=quarter_index)
    if reports < MIN_REPORTS:
        raise InputError(f"--reports {reports} is too small; give at least {MIN_REPORTS} so every quirk fits")
    if signals < 0:
        raise InputError(f"--signals {signals} is negative; give 0 (none) or more")
    study = load_study(default_study_path())
    rng = random.Random(seed)
    layouts = [layout_for(q, i) for i, q in enumerate(qs)]
    prepare_dest(dest)
    gen = CaseGenerator(rng, qs, layouts, study)
    layer = SignalLayer(seed, signals, study, layouts, gen.next_drug_seq) if signals else None
    screen = (ScreenTruth([(d, p) for d, p, _ in layer.signals], layer.drug_names, layer.pt_names)
              if layer else None)
    truth = Truth(study, qs, screen)
    quirks = quirk_cases(layouts)
    if last_quarter_cases is None:
        per_pos = _ordinary_cases_per_quarter(reports, len(quirks), len(qs))
    else:
        if len(qs) < 2 or not 0 <= last_quarter_cases <= reports - len(quirks):
            raise InputError(f"last_quarter_cases {last_quarter_cases} needs two quarters or more and at most "
                             f"{reports - len(quirks)} of the {reports} cases")
        per_pos = [*_ordinary_cases_per_quarter(reports - last_quarter_cases, len(quirks), len(qs) - 1),
                   last_quarter_cases]
    release = ReleaseWriter(dest, layouts, rng, as_zip, gen.unlisted_deleted_ids(), log)
    n_cases = n_reports = rows = 0
    deleted_in_data: set[int] = set()
    for p0 in range(len(qs)):
        todo = [name for pos, name in quirks if pos == p0] + [""] * per_pos[p0]
        rng.shuffle(todo)  # quirks sit among ordinary cases, not at the top of a file
        for quirk in todo:
            case = gen.build_case(n_cases, p0, quirk)
            n_cases += 1
            n_reports += len(case.reports)
            if layer:
                layer.plant(case.reports)
            release.write_case(case.reports, case.deleted_in)
            if case.deleted:
                deleted_in_data.add(case.reports[0].caseid)
            truth.account_case(case.reports, case.deleted)
        rows += release.finish(p0)
    doc = _truth_document(truth, study, release, deleted_in_data, seed, reports, qs, as_zip)
    if layer and screen:
        doc["generator"]["signals"] = signals
        doc["screen"] = _screen_document(layer, screen)
    truth_path = release.write_truth(doc)
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    return GenerateSummary(str(dest), qs, n_cases, n_reports, rows, release.bytes_written(), round(secs, 3),
                           round(rows / secs if secs else 0.0, 1), release.containers, str(truth_path),
                           cpu_seconds=round(cpu, 3))


def _ordinary_cases_per_quarter(reports: int, n_quirks: int, n_quarters: int) -> list[int]:
    """The cases beside the hand-placed ones, spread evenly over the quarters."""
    n_free = reports - n_quirks
    if n_free < 0:
        raise InputError(f"--reports {reports} is too small for {n_quarters} quarters; give at least {n_quirks}")
    return [n_free // n_quarters + (1 if i < n_free % n_quarters else 0) for i in range(n_quarters)]


def _screen_document(layer: SignalLayer, screen: ScreenTruth) -> dict:
    planted_pts = {p for _, p, _ in layer.signals}
    planted_drugs = {d for d, _, _ in layer.signals}
    return {
        "signals": [{"drug": d, "pt": p, "rr": rr, "a": screen.a[(d, p)], "n_drug": screen.n_drug[d],
                     "n_pt": screen.n_pt[p]} for d, p, rr in layer.signals],
        "reports": screen.reports,
        "drugs": layer.drug_names,
        "pts": layer.pt_names,
        "null_drugs": sum(d not in planted_drugs for d in layer.drug_names),
        "null_pts": sum(p not in planted_pts for p in layer.pt_names),
    }


def _truth_document(truth: Truth, study: Study, release: ReleaseWriter, deleted_in_data: set[int],
                    seed: int, reports: int, qs: list[str], as_zip: bool) -> dict:
    all_deleted = deleted_in_data | {x for ids in release.extra_deleted.values() for x in ids}
    return {
        "truth_version": TRUTH_VERSION,
        "generator": {"seed": seed, "reports": reports, "quarters": qs, "as_zip": as_zip},
        "study": study.name,
        "cohort_order": [c.name for c in study.cohorts],
        "cohorts": truth.cohorts,
        "excluded_cohort_reports": truth.excluded_reports,
        "dedup": {"all": truth.dedup_all(), **truth.dedup},
        "ingest": release.ingest_truth,
        "deleted_cases": {"distinct_caseids": len(all_deleted), "caseids_in_data": len(deleted_in_data),
                          "lists": release.deleted_lists},
        "silver_rows": truth.silver,
        "kept_by_era": truth.kept_by_era,
        "containers": release.containers,
    }


__all__ = ["generate", "GenerateSummary", "layout_for", "DEFAULT_QUARTERS", "Report",
           "norm_pt_text", "norm_drug_text", "drug_matches", "drug_row_matches", "report_cohort_flags",
           "kept_order_key", "ReleaseLayout", "CaseGenerator", "Truth", "QUIRKS", "quirk_cases",
           "TABLES", "WINDOW", "MIN_REPORTS", "TRUTH_VERSION"]
