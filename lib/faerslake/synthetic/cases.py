"""Case synthesis: a case's versions over the quarters, its reports, its quirk.

:class:`CaseGenerator` draws every value from one ``random.Random`` in a fixed
order, so the same seed gives the same cases; the order of the draws is part of
the output (changing it changes every file).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from faerslake.config import Study
from faerslake.quarters import quarter_index
from faerslake.synthetic import vocabulary as v
from faerslake.synthetic.content import CaseContent, CaseProfile
from faerslake.synthetic.layouts import ReleaseLayout
from faerslake.synthetic.model import Report
from faerslake.synthetic.quirks import QUIRKS, WINDOW, Placement, Quirk


@dataclass
class Case:
    """The reports of one case, oldest first, and the deleted lists that name it."""

    reports: list[Report]
    deleted_in: list[int]  # positions of the deleted lists that name the case

    @property
    def deleted(self) -> bool:
        return bool(self.deleted_in)


@dataclass
class CasePlan:
    """The shape of a case before its content is drawn."""

    caseid: int
    kind: str
    positions: list[int]      # quarter position of each version, oldest first
    start_version: int
    re_released: bool         # the latest report again in the next quarter
    quirk: Quirk | None = None


class CaseGenerator:
    """Builds cases one at a time; keeps the running ISR and legacy drug_seq numbers."""

    def __init__(self, rng: random.Random, quarters: list[str], layouts: list[ReleaseLayout], study: Study):
        self.rng = rng
        self.quarters = quarters
        self.layouts = layouts
        self.study = study
        self.content = CaseContent(rng, study)
        self.placement = Placement(layouts)
        self.P = len(quarters)
        qi0 = quarter_index(quarters[0])
        # Case numbers grow with time as FDA's do (~150k cases a quarter from ~4.1M in 2004).
        self.case_base = 4_100_000 + max(0, qi0 - quarter_index("2004Q1")) * 150_000
        self.isr_next = self.case_base + 700_000
        self.drug_seq_next = 1_000_000_000 + (self.case_base // 10) * 100
        self.deletion_positions = [i for i, lay in enumerate(layouts) if lay.deleted_path]

    def unlisted_deleted_ids(self) -> dict[int, list[int]]:
        """Ids on a deleted list that never occur in the data (FDA's lists overlap and reach far back)."""
        dels = self.deletion_positions
        extra = {d: [1_000_000 + 17 * d + 3] for d in dels}
        if len(dels) > 1:
            extra[dels[-1]].append(extra[dels[0]][0])
        return extra

    # ---- one case ------------------------------------------------------- #
    def build_case(self, idx: int, p0: int, quirk: str = "") -> Case:
        """All reports of one case starting at position ``p0``, and the deleted lists naming it."""
        plan = self.plan_case(idx, p0, QUIRKS[quirk] if quirk else None)
        q = plan.quirk
        latest = self.content.draw_case_content(plan.kind, int(self.quarters[p0][:4]),
                                                q.variant if q else None)
        person = self.person(plan.caseid)
        reports = self.versions(plan, p0, latest, person)
        if q and q.fix:
            q.fix(reports, plan.caseid)
        if plan.re_released:
            self.re_release(reports, latest, person, q)
        return Case(reports, self.deleted_in(reports, q))

    def plan_case(self, idx: int, p0: int, q: Quirk | None) -> CasePlan:
        rng = self.rng
        caseid = self.case_base + idx
        kind = self.draw_kind()
        nver = rng.choices([1, 2, 3, 4], weights=[75, 18, 5, 2])[0]
        start_version = 1 if rng.random() < 0.7 else rng.randint(2, 6)
        dup = rng.random() < 0.04
        if q is None:
            plan = CasePlan(caseid, kind, self.plan_positions(p0, nver), start_version, dup)
        else:
            plan = CasePlan(q.caseid(idx) if q.caseid else caseid, q.kind, q.positions(self.placement, p0),
                            q.start_version or start_version, q.re_released, q)
        if plan.kind == "exposed_ai_only" and not self.layouts[p0].has_prod_ai:
            plan.kind = "exposed"
        return plan

    def draw_kind(self) -> str:
        r = self.rng.random()
        if r < 0.80:
            return "background"
        if r < 0.875:
            return "exposed"
        if r < 0.95:
            return "control"
        return self.rng.choice(v.RARE_KINDS)

    def plan_positions(self, p0: int, nver: int) -> list[int]:
        limit = min(self.P - 1, p0 + WINDOW)
        poss = [p0]
        for _ in range(nver - 1):
            r = self.rng.random()
            nxt = poss[-1] + (0 if r < 0.08 else 1 if r < 0.8 else 2)
            if nxt > limit:
                break
            poss.append(nxt)
        return poss

    def versions(self, plan: CasePlan, p0: int, latest: CaseProfile, person: dict) -> list[Report]:
        """One report per planned position; older versions sometimes carry other drugs."""
        rng = self.rng
        q = plan.quirk
        positions = plan.positions
        dates_by_pos = {p: self.fda_dates(p, positions.count(p)) for p in sorted(set(positions))}
        if q and q.same_dates:
            dates_by_pos[p0] = [dates_by_pos[p0][0]] * 2
        reports: list[Report] = []
        version = plan.start_version
        legacy_count = 0
        used: dict[int, int] = {}
        for j, p in enumerate(positions):
            fda_dt = dates_by_pos[p][used.get(p, 0)]
            used[p] = used.get(p, 0) + 1
            if j == len(positions) - 1:
                pr = latest
            elif (q and q.older_exposed) or rng.random() < 0.25:
                kind = "exposed" if q and q.older_exposed else self.draw_kind()
                pr = self.content.draw_case_content(kind, int(self.quarters[p0][:4]))
            else:
                pr = latest
            if j == 0:
                person["init_fda_dt"] = fda_dt
            if self.layouts[p].era == "legacy":
                rep = self.make_report(p, plan.caseid, None, fda_dt, pr, person, follow_up=j > 0)
                legacy_count += 1
            else:
                if legacy_count and version <= legacy_count:
                    version = legacy_count + 1
                rep = self.make_report(p, plan.caseid, version, fda_dt, pr, person, follow_up=version > 1)
                version += 1 if rng.random() < 0.85 else 2
            if j == 0 and q and q.damage:
                rep.damage = q.damage
            reports.append(rep)
        return reports

    def re_release(self, reports: list[Report], latest: CaseProfile, person: dict, q: Quirk | None) -> None:
        """The same primaryid again in the next quarter (FDA re-releases a report)."""
        last = reports[-1]
        if not (last.era == "faers" and last.pos + 1 < self.P and self.layouts[last.pos + 1].era == "faers"):
            return
        copy = self.make_report(last.pos + 1, last.caseid, last.version, last.fda_dt, latest, person,
                                follow_up=last.version > 1)
        if q and q.copy_fix:
            outcome = self.content.pt_text(self.study.outcome_pts[0], "faers")
            q.copy_fix(last, copy, self.study.outcome_pts, outcome)
        copy.demo = dict(last.demo)
        reports.append(copy)

    def deleted_in(self, reports: list[Report], q: Quirk | None) -> list[int]:
        dels = [d for d in self.deletion_positions if d >= max(r.pos for r in reports)]
        if q is None:
            return [self.rng.choice(dels)] if dels and self.rng.random() < 0.02 else []
        if not (q.deleted and dels):
            return []
        last = self.deletion_positions[-1]
        return [dels[0], last] if q.listed_again and last > dels[0] else [dels[0]]

    # ---- one report ----------------------------------------------------- #
    def fda_dates(self, pos: int, n: int) -> list[str]:
        q = self.quarters[pos]
        y, qn = int(q[:4]), int(q[5])
        out = []
        for _ in range(n):
            m = (qn - 1) * 3 + self.rng.randint(1, 3)
            out.append(f"{y}{m:02d}{self.rng.randint(1, 28):02d}")
        return sorted(out)

    def person(self, caseid: int) -> dict:
        rng = self.rng
        return {"age": str(rng.randint(18, 85)) if rng.random() < 0.8 else "",
                "sex": rng.choice(["F", "F", "M", "M", "UNK", ""]),
                "wt": str(rng.randint(45, 120)) if rng.random() < 0.4 else "",
                "country": rng.choice(v.COUNTRY), "occp": rng.choice(v.OCCP),
                "mfr": rng.choice(v.MFR), "mfr_num": f"US-SYN-{caseid}",
                "rept_cod": rng.choice(["EXP", "EXP", "PER", "DIR", "30DAY"]),
                "init_fda_dt": ""}

    def make_report(self, pos: int, caseid: int, version: int | None, fda_dt: str, pr: CaseProfile,
                    person: dict, follow_up: bool) -> Report:
        rng = self.rng
        era = self.layouts[pos].era
        year = int(self.quarters[pos][:4])
        if era == "legacy":
            key = self.isr_next
            self.isr_next += 1
        else:
            key = int(f"{caseid}{version}")
        drugs, indis, thers = self._drug_rows(pos, pr, year)
        reacs = [self.content.pt_text(pt, era) for pt in rng.sample(pr.reac_pool, rng.randint(1, 3))]
        if pr.event_p and rng.random() < pr.event_p:
            reacs.insert(rng.randrange(len(reacs) + 1),
                         self.content.pt_text(rng.choice(self.study.outcome_pts), era))
        outcs = rng.sample(v.OUTC, rng.choice([0, 1, 1, 1, 2]))
        rpsrs = [rng.choice(v.RPSR)] if rng.random() < 0.3 else []
        demo = self._demo(era, year, fda_dt, person, follow_up)
        if era == "legacy":
            demo["image"] = f"{key}-{rng.randint(1, 9)}"
            demo["caseversion"] = ""
        else:
            demo["caseversion"] = str(version)
        return Report(pos, era, key, caseid, version, fda_dt, demo, drugs, indis, reacs, outcs, rpsrs, thers)

    def next_drug_seq(self) -> str:
        seq = str(self.drug_seq_next)
        self.drug_seq_next += 1
        return seq

    def _drug_rows(self, pos: int, pr: CaseProfile, year: int) -> tuple[list, list, list]:
        """DRUG rows, their INDI rows (plus the orphan) and THER rows; legacy drug_seq is global."""
        rng = self.rng
        lay = self.layouts[pos]
        era = lay.era
        drugs: list[dict[str, str]] = []
        indis: list[tuple[str, str]] = []
        thers: list[dict[str, str]] = []
        for i, (name, ai, inds) in enumerate(pr.drugs):
            seq = self.next_drug_seq() if era == "legacy" else str(i + 1)
            d = {"drug_seq": seq, "role_cod": "PS" if i == 0 else rng.choice(v.ROLES), "drugname": name,
                 "prod_ai": ai if lay.has_prod_ai else ""}
            d.update(rng.choice(v.DRUG_FILLERS))
            drugs.append(d)
            for pt in inds:
                indis.append((seq, self.content.pt_text(pt, era)))
            if rng.random() < 0.4:
                thers.append({"drug_seq": seq, "start_dt": f"{year - 1}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
                              "end_dt": "", "dur": "", "dur_cod": ""})
        if pr.orphan:
            seq = self.next_drug_seq() if era == "legacy" else str(len(drugs) + 5)
            indis.append((seq, self.content.pt_text(pr.orphan, era)))
        return drugs, indis, thers

    def _demo(self, era: str, year: int, fda_dt: str, person: dict, follow_up: bool) -> dict[str, str]:
        rng = self.rng
        ev = rng.random()
        event_dt = ("" if ev < 0.15 else f"{year - 1}{rng.randint(1, 12):02d}" if ev < 0.25
                    else f"{year - 1}" if ev < 0.3 else "19000101" if ev < 0.31
                    else f"{year - 1}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}")
        country = person["country"]
        return {
            "i_f_code": "F" if follow_up else "I", "foll_seq": "", "event_dt": event_dt,
            "mfr_dt": fda_dt if person["mfr"] != "FDA-CTU" else "",
            "init_fda_dt": person["init_fda_dt"] or fda_dt, "fda_dt": fda_dt,
            "rept_cod": person["rept_cod"], "auth_num": "", "mfr_num": person["mfr_num"],
            "mfr_sndr": person["mfr"], "lit_ref": "", "age": person["age"],
            "age_cod": "YR" if person["age"] else "", "age_grp": "",
            "sex": person["sex"], "e_sub": "Y", "wt": person["wt"], "wt_cod": "KG" if person["wt"] else "",
            "rept_dt": fda_dt, "to_mfr": "", "occp_cod": person["occp"], "death_dt": "", "confid": "",
            "reporter_country": country[0] if era == "legacy" else (country[1] or "COUNTRY NOT SPECIFIED"),
            "occr_country": country[1],
        }
