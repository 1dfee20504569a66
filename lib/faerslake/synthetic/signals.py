"""Screen signals planted with known reporting ratios (``generate(signals=N)``).

Place in the generator: a layer laid over finished cases, before they are
written. It adds DRUG rows and REAC rows of its own vocabulary
(``vocabulary.SIGNAL_DRUGS`` / ``SIGNAL_PTS``, filtered again here against the
study's term lists) and nothing else: no INDI, THER or DEMO change, no
exposure or exclusion drug, no outcome PT, so every cohort count of the
study's truth stays what it is without the layer. It draws from its own
``random.Random`` (seeded from the generator's seed), so ``signals=0`` leaves
the main draws, and every byte written, as they were.

The model, for each report (every version of a case independently):
- each layer drug x is on the report with probability ``q_x``;
- a *signal* PT y has one partner drug x: it is on the report with
  probability ``pi_y`` when x is, ``pi_y / rr_y`` when x is not, so
  P(y | x) = rr_y · P(y | not x) exactly (rr_y in [3, 10]);
- a *null* PT is on the report with a fixed probability, whatever the drugs.
A planted drug carries up to ``PTS_PER_DRUG`` signal PTs; null drugs carry
none. Every pair of a layer drug or a layer PT with any term but its planted
partner is therefore a true null (RR 1): the layer is independent of the rest
of the report.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from faerslake.config import Study
from faerslake.errors import InputError
from faerslake.synthetic import vocabulary as v
from faerslake.synthetic.content import noisy_drug_text
from faerslake.synthetic.layouts import ReleaseLayout
from faerslake.synthetic.model import Report
from faerslake.synthetic.truth import drug_row_matches, norm_drug_text, norm_pt_text

RR_RANGE = (3.0, 10.0)
PTS_PER_DRUG = 3
DRUG_Q_SIGNAL = (0.04, 0.06)   # share of reports carrying a planted drug
DRUG_Q_NULL = (0.02, 0.06)
PI_RANGE = (0.30, 0.50)        # P(y | x) of a signal PT
NULL_PT_P = (0.02, 0.08)


def n_null_drugs(n: int) -> int:
    return max(2, math.ceil(n / 5))


def n_null_pts(n: int) -> int:
    return max(4, math.ceil(n / 4))


@dataclass(frozen=True)
class LayerPT:
    pt: str                  # normalised PT
    partner: int | None      # index of its planted drug; None for a null PT
    p_with: float            # probability with the partner on the report
    p_without: float         # probability without it (the base rate)
    rr: float | None


class SignalLayer:
    """The planted pairs of one generation and the draws that plant them."""

    def __init__(self, seed: int, n: int, study: Study, layouts: list[ReleaseLayout],
                 next_legacy_seq: Callable[[], str]):
        self.rng = rng = random.Random(f"faerslake-signals-{seed}")
        self.layouts = layouts
        self.next_legacy_seq = next_legacy_seq
        drugs, pts = usable_vocabulary(study)
        n_drugs = math.ceil(n / PTS_PER_DRUG)
        k, m = n_null_drugs(n), n_null_pts(n)
        if n_drugs + k > len(drugs) or n + m > len(pts):
            most = max(x for x in range(1, len(pts) + 1)
                       if x + n_null_pts(x) <= len(pts)
                       and math.ceil(x / PTS_PER_DRUG) + n_null_drugs(x) <= len(drugs))
            raise InputError(f"--signals {n} is too many; the signal vocabulary holds at most {most}")
        rng.shuffle(drugs)
        rng.shuffle(pts)
        self.drugs = drugs[:n_drugs + k]            # planted drugs first, then the null ones
        self.n_planted_drugs = n_drugs
        self.drug_q = [rng.uniform(*(DRUG_Q_SIGNAL if i < n_drugs else DRUG_Q_NULL))
                       for i in range(len(self.drugs))]
        self.pts: list[LayerPT] = []
        for j, pt in enumerate(pts[:n + m]):
            if j < n:
                rr = round(rng.uniform(*RR_RANGE), 2)
                pi = rng.uniform(*PI_RANGE)
                self.pts.append(LayerPT(pt, j % n_drugs, pi, pi / rr, rr))
            else:
                p = rng.uniform(*NULL_PT_P)
                self.pts.append(LayerPT(pt, None, p, p, None))

    @property
    def signals(self) -> list[tuple[str, str, float]]:
        """(normalised drugname, normalised PT, rr) of each planted pair."""
        return [(norm_drug_text(self.drugs[t.partner][0]), t.pt, t.rr) for t in self.pts
                if t.partner is not None and t.rr is not None]

    @property
    def drug_names(self) -> list[str]:
        return [norm_drug_text(name) for name, _ in self.drugs]

    @property
    def pt_names(self) -> list[str]:
        return [t.pt for t in self.pts]

    def plant(self, reports: list[Report]) -> None:
        for r in reports:
            self._plant_report(r)

    def _plant_report(self, r: Report) -> None:
        rng = self.rng
        lay = self.layouts[r.pos]
        on = [rng.random() < q for q in self.drug_q]
        if any(on):
            # FAERS drug_seq counts per report; the orphan INDI row's seq is taken too
            seq = 1 + max([int(d["drug_seq"]) for d in r.drugs] + [int(s) for s, _ in r.indis] + [0])
            for i, present in enumerate(on):
                if not present:
                    continue
                name, ai = self.drugs[i]
                if r.era == "legacy":
                    s = self.next_legacy_seq()
                else:
                    s, seq = str(seq), seq + 1
                d = {"drug_seq": s, "role_cod": rng.choice(v.ROLES[1:]), "drugname": self._drug_text(name),
                     "prod_ai": ai if lay.has_prod_ai else ""}
                d.update(rng.choice(v.DRUG_FILLERS))
                r.drugs.append(d)
        for t in self.pts:
            p = t.p_with if t.partner is not None and on[t.partner] else t.p_without
            if rng.random() < p:
                r.reacs.insert(rng.randrange(len(r.reacs) + 1), self._pt_text(t.pt, r.era))

    # the text noise of content.CaseContent, drawn from the layer's own rng
    def _drug_text(self, name: str) -> str:
        return noisy_drug_text(self.rng, name)

    def _pt_text(self, pt: str, era: str) -> str:
        if era == "legacy":
            return pt
        x = self.rng.random()
        if x < 0.80:
            return pt.capitalize()
        if x < 0.97:
            return pt
        return pt.capitalize() + " "


def usable_vocabulary(study: Study) -> tuple[list[tuple[str, str]], list[str]]:
    """The layer's drugs and PTs minus any the study's term lists could see."""
    ex = study.exposure
    drugs = [(name, ai) for name, ai in v.SIGNAL_DRUGS
             if not drug_row_matches({"drugname": name, "prod_ai": ai}, ex.tokens, [])
             and not drug_row_matches({"drugname": name, "prod_ai": ai}, study.exclusions.drug_tokens, [])]
    taken = set(study.outcome_pts) | {pt for c in study.cohorts for pt in c.indications}
    pts = [norm_pt_text(pt) for pt in v.SIGNAL_PTS if norm_pt_text(pt) not in taken]
    return drugs, pts
