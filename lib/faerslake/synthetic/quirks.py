"""The hand-placed cases: each carries one quirk of FDA's files (or of the spec) once.

``QUIRKS`` maps a quirk's name to what its case is: its content kind, the
quarters its versions fall in, its damage and the fix-up that plants the
quirk. :func:`quirk_cases` places them over the selected quarters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from faerslake.synthetic.layouts import ReleaseLayout
from faerslake.synthetic.model import Report
from faerslake.synthetic.truth import norm_pt_text
from faerslake.synthetic.vocabulary import ANTITOXIN, PLANTED_KINDS

# A case's later versions fall at most this many (selected) quarters after its first.
WINDOW = 3


class Placement:
    """Where quirks can go among the selected quarters (positions by era and feature)."""

    def __init__(self, layouts: list[ReleaseLayout]):
        self.layouts = layouts
        self.P = len(layouts)
        self.legacy = [i for i, lay in enumerate(layouts) if lay.era == "legacy"]
        self.faers = [i for i, lay in enumerate(layouts) if lay.era == "faers"]
        self.dels = [i for i, lay in enumerate(layouts) if lay.deleted_path]
        self.pairs = [i for i in self.faers if i + 1 < self.P]  # a FAERS quarter with one after it
        self.prod_ai = [i for i in self.faers if layouts[i].has_prod_ai]

    def next_faers(self, p: int) -> int:
        return next(i for i in range(p + 1, self.P) if self.layouts[i].era == "faers")


def _one(pl: Placement, p0: int) -> list[int]:
    return [p0]


def _same_quarter(pl: Placement, p0: int) -> list[int]:
    return [p0, p0]


def _next_quarter(pl: Placement, p0: int) -> list[int]:
    return [p0, p0 + 1]


def _to_faers(pl: Placement, p0: int) -> list[int]:
    return [p0, pl.next_faers(p0)]


def _swap_versions(reports: list[Report], caseid: int) -> None:
    # a later quarter re-releases an older version: caseversion outranks quarter and fda_dt
    a, b = reports
    a.version, b.version = b.version, a.version
    for r in (a, b):
        r.key = int(f"{caseid}{r.version}")
        r.demo["caseversion"] = str(r.version)


def _later_date_lower_isr(reports: list[Report], caseid: int) -> None:
    # legacy: the lower ISR has the later FDA_DT, and fda_dt outranks the report key
    a, b = reports
    a.fda_dt, b.fda_dt = a.fda_dt[:6] + "20", a.fda_dt[:6] + "05"
    for r in (a, b):
        r.demo.update(fda_dt=r.fda_dt, rept_dt=r.fda_dt, mfr_dt=r.fda_dt if r.demo["mfr_dt"] else "")


def _dollar_in_mfr_num(reports: list[Report], caseid: int) -> None:
    reports[0].demo["mfr_num"] = f"JP-SYNTH-${caseid}"
    reports[0].drugs[0]["dose_vbm"] = "1 DF\x08"  # legacy DRUG files carry 0x08 bytes


def _copy_differs_in_reactions(last: Report, copy: Report, outcome_pts: list[str], outcome: str) -> None:
    # the later copy differs in its reactions: the kept copy's child rows must be used
    last.reacs = [x for x in last.reacs if norm_pt_text(x) not in outcome_pts]
    copy.reacs = copy.reacs + [outcome]


@dataclass(frozen=True)
class Quirk:
    """One hand-placed case: what it is, where it goes, and how it plants its quirk."""

    kind: str                                   # content kind (CaseGenerator.draw_case_content)
    at: Callable[[Placement], list[int]]        # the start quarters it is placed in
    positions: Callable[[Placement, int], list[int]] = _one  # quarters of its versions
    start_version: int | None = None
    damage: str = ""                            # how its first report is written damaged
    variant: int | None = None                  # which antitoxin
    caseid: Callable[[int], int] | None = None  # case number from the case index
    same_dates: bool = False                    # its two reports share one fda_dt
    older_exposed: bool = False                 # older report a BoNT one, the latest a control one
    fix: Callable[[list[Report], int], None] | None = None  # plants the quirk in its reports
    re_released: bool = False                   # its latest report again in the next quarter
    copy_fix: Callable[..., None] | None = None  # plants the quirk in that copy
    deleted: bool = False                       # on the first deleted list after its last report
    listed_again: bool = False                  # and on the last list too (FDA's lists overlap)


def _legacy(pl: Placement) -> list[int]:
    return pl.legacy


QUIRKS: dict[str, Quirk] = {
    "dollar_demo": Quirk("background", _legacy, damage="dollar_demo", fix=_dollar_in_mfr_num),
    "break_demo": Quirk("background", _legacy, damage="break_demo"),
    "glue_drug": Quirk("two_cohorts_control", _legacy, damage="glue_drug"),
    "break_drug": Quirk("exposed", _legacy, damage="break_drug"),
    "legacy_same_quarter_tie": Quirk("exposed", _legacy, _same_quarter, same_dates=True),
    "fda_dt_beats_isr": Quirk("control", _legacy, _same_quarter, older_exposed=True,
                              fix=_later_date_lower_isr),
    "deleted_2004": Quirk("exposed", lambda pl: pl.legacy[:1] if pl.dels else [],
                          caseid=lambda idx: 4_061_000 + idx % 1000, deleted=True),
    "legacy_to_faers": Quirk("exposed", lambda pl: pl.legacy[-1:] if pl.legacy and pl.faers
                             and pl.faers[0] - pl.legacy[-1] <= WINDOW else [], _to_faers),
    "v9_v10": Quirk("control", lambda pl: pl.pairs[:1], _next_quarter, start_version=9,
                    older_exposed=True),
    "dup_primaryid": Quirk("control", lambda pl: pl.pairs[-1:], re_released=True,
                           copy_fix=_copy_differs_in_reactions),
    "older_drugs_differ": Quirk("control", lambda pl: pl.pairs[:1], _next_quarter, older_exposed=True),
    "version_beats_quarter": Quirk("control", lambda pl: pl.pairs[-1:], _next_quarter,
                                   older_exposed=True, fix=_swap_versions),
    "deleted_exposed": Quirk("exposed", lambda pl: pl.dels[:1], deleted=True, listed_again=True),
    "exposed_ai_only": Quirk("exposed_ai_only", lambda pl: pl.prod_ai[:1]),
    # every antitoxin decoy where prod_ai is written (where it is not, too)
    **{f"antitoxin:{v}": Quirk("antitoxin", lambda pl: pl.prod_ai[-1:] or [0], variant=v)
       for v in range(len(ANTITOXIN))},
    **{kind: Quirk(kind, lambda pl, k=k: [k % pl.P]) for k, kind in enumerate(PLANTED_KINDS)},
}


def quirk_cases(layouts: list[ReleaseLayout]) -> list[tuple[int, str]]:
    """(start position, quirk name) of the hand-placed cases, in start-position order."""
    pl = Placement(layouts)
    placed = [(p, name) for name, q in QUIRKS.items() for p in q.at(pl)]
    return sorted(placed, key=lambda x: x[0])
