"""The clinical content of a case: its drugs with their indications, its reactions, its event rate.

A case's *kind* (background, exposed, control and the planted decoys of
``vocabulary.PLANTED_KINDS``) decides which cohort it falls in under the spec
rules; the text surface adds the spelling noise FDA's files carry.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from faerslake.config import Study
from faerslake.synthetic import vocabulary as v

Drug = tuple[str, str, list[str]]  # (drugname, prod_ai, indication PTs)


def noisy_drug_text(rng: random.Random, name: str) -> str:
    """A drug name as reporters type it (one draw of ``rng``): as is 90 %, a
    trailing period 4 %, lower case or a doubled inner space 3 %, title case 3 %."""
    r = rng.random()
    if r < 0.90:
        return name
    if r < 0.94:
        return name + "."
    if r < 0.97:
        return name.lower() if " " not in name else name.replace(" ", "  ", 1)
    return name.title()


@dataclass
class CaseProfile:
    """A case's content: drugs, an INDI row no drug points to, the reaction pool, the event rate."""

    kind: str
    drugs: list[Drug] = field(default_factory=list)
    orphan: str | None = None
    reac_pool: list[str] = field(default_factory=lambda: v.REAC_BG)
    event_p: float = v.BG_EVENT_P


class CaseContent:
    """Draws case content and text noise from ``rng`` (shared with the case generator)."""

    def __init__(self, rng: random.Random, study: Study):
        self.rng = rng
        self.cohort_names = [c.name for c in study.cohorts]
        self.cohort_pts = {c.name: list(c.indications) for c in study.cohorts}
        plans = [v.COHORT_PLAN.get(n, v.DEFAULT_PLAN) for n in self.cohort_names]
        self.exp_w = [p[0] for p in plans]
        self.ctl_w = [p[1] for p in plans]
        self.plan = dict(zip(self.cohort_names, plans, strict=True))

    # ---- text surface --------------------------------------------------- #
    def pt_text(self, pt: str, era: str) -> str:
        if era == "legacy":
            return pt
        r = self.rng.random()
        if r < 0.80:
            return pt.capitalize()  # FAERS writes "Migraine", "Chronic migraine"
        if r < 0.97:
            return pt
        return pt.capitalize() + " "

    def drug_text(self, name: str) -> str:
        return noisy_drug_text(self.rng, name)

    # ---- content -------------------------------------------------------- #
    def _bg_drugs(self, n: int) -> list[Drug]:
        out = []
        for _ in range(n):
            name, ai, ind = self.rng.choice(v.BACKGROUND)
            out.append((self.drug_text(name), ai, [ind] if self.rng.random() < 0.8 else []))
        return out

    def _cohort(self, weights: list[int]) -> str:
        return self.rng.choices(self.cohort_names, weights=weights)[0]

    def _bont_drug(self, year: int, indis: list[str]) -> Drug:
        name, ai, _ = self.rng.choice([b for b in v.BONT if b[2] <= year])
        return (self.drug_text(name), ai, indis)

    def _control_drug(self, c: str) -> Drug:
        name, ai = self.rng.choice(v.CONTROL.get(c, v.GENERIC_CONTROL))
        return (self.drug_text(name), ai, [self.rng.choice(self.cohort_pts[c])])

    def draw_case_content(self, kind: str, year: int, variant: int | None = None) -> CaseProfile:
        """The content of a case of ``kind`` first reported in ``year``."""
        if kind in ("antidep_exposed", "antidep_control", "deprind_exposed", "deprind_control"):
            return self._with_depression_drug(kind, year)
        return getattr(self, f"_content_{kind}")(CaseProfile(kind), year, variant)

    def _content_background(self, pr: CaseProfile, year: int, variant: int | None) -> CaseProfile:
        rng = self.rng
        pr.drugs = self._bg_drugs(rng.randint(1, 4))
        if rng.random() < 0.04:
            name, ai = rng.choice(v.ANTIDEP)
            pr.drugs.append((self.drug_text(name), ai, [rng.choice(v.DEPR_INDI)]))
        if rng.random() < 0.01:
            pr.orphan = rng.choice(self.cohort_pts[self._cohort(self.ctl_w)])
        return pr

    def _content_exposed(self, pr: CaseProfile, year: int, variant: int | None) -> CaseProfile:
        rng = self.rng
        c = self._cohort(self.exp_w)
        pts = [rng.choice(self.cohort_pts[c])]
        if pr.kind == "exposed_ai_only":
            name, ai = rng.choice(v.BONT_AI_ONLY)
            drugs = [(name, ai, pts)]
        else:
            drugs = [self._bont_drug(year, pts)]
        if rng.random() < 0.15:  # the same cohort's usual treatment beside BoNT: still exposed
            drugs.append(self._control_drug(c))
        drugs += self._bg_drugs(rng.randint(0, 2))
        rng.shuffle(drugs)
        pr.drugs, pr.reac_pool, pr.event_p = drugs, v.REAC_BONT, self.plan[c][2]
        return pr

    _content_exposed_ai_only = _content_exposed

    def _content_control(self, pr: CaseProfile, year: int, variant: int | None) -> CaseProfile:
        c = self._cohort(self.ctl_w)
        drugs = [self._control_drug(c)] + self._bg_drugs(self.rng.randint(0, 2))
        self.rng.shuffle(drugs)
        pr.drugs, pr.event_p = drugs, self.plan[c][3]
        return pr

    def _content_antitoxin(self, pr: CaseProfile, year: int, variant: int | None) -> CaseProfile:
        # antitoxin is not exposure: a control
        c = self._cohort(self.ctl_w)
        name, ai = self.rng.choice(v.ANTITOXIN) if variant is None else v.ANTITOXIN[variant]
        pr.drugs, pr.event_p = [(name, ai, ["BOTULISM"]), self._control_drug(c)], 0.1
        return pr

    def _content_bont_other_indication(self, pr: CaseProfile, year: int, variant: int | None) -> CaseProfile:
        # neither exposed nor control
        c = self._cohort(self.ctl_w)
        indis = ["PRODUCT USED FOR UNKNOWN INDICATION"] if self.rng.random() < 0.6 else []
        pr.drugs = [self._bont_drug(year, indis), self._control_drug(c)]
        pr.reac_pool, pr.event_p = v.REAC_BONT, 0.08
        return pr

    def _with_depression_drug(self, kind: str, year: int) -> CaseProfile:
        """An exposed or control case plus an antidepressant for another indication, or a drug
        given for depression."""
        pr = self.draw_case_content("exposed" if kind.endswith("_exposed") else "control", year)
        if kind.startswith("antidep"):
            name, ai = self.rng.choice(v.ANTIDEP)
            pr.drugs.append((self.drug_text(name), ai, [self.rng.choice(v.ANTIDEP_INDI)]))
        else:
            name, ai = self.rng.choice(v.DEPR_INDI_DRUGS)
            pr.drugs.append((name, ai, [self.rng.choice(v.DEPR_INDI)]))
        pr.kind, pr.event_p = kind, 0.3
        return pr

    def _content_two_cohorts_exposed(self, pr: CaseProfile, year: int, variant: int | None) -> CaseProfile:
        rng = self.rng
        c1, c2 = rng.sample(self.cohort_names, 2)
        pr.drugs = [self._bont_drug(year, [rng.choice(self.cohort_pts[c1]), rng.choice(self.cohort_pts[c2])])]
        pr.reac_pool, pr.event_p = v.REAC_BONT, min(self.plan[c1][2], self.plan[c2][2])
        return pr

    def _content_two_cohorts_control(self, pr: CaseProfile, year: int, variant: int | None) -> CaseProfile:
        c1, c2 = self.rng.sample(self.cohort_names, 2)
        pr.drugs, pr.event_p = [self._control_drug(c1), self._control_drug(c2)], 0.1
        return pr

    def _content_orphan_indication(self, pr: CaseProfile, year: int, variant: int | None) -> CaseProfile:
        # an INDI row no drug row points to: no cohort
        pr.drugs = self._bg_drugs(self.rng.randint(1, 2))
        pr.orphan = self.rng.choice(self.cohort_pts[self._cohort(self.ctl_w)])
        return pr
