"""The spec's rules written out in plain Python: the answers ``_truth.json`` holds.

This is the one independent copy of the study rules inside the library (the
pipeline's are Spark, in silver and gold): text normalisation (spec §1), the
kept report of a case (§2.3) and a report's cohort flags (§3). It reads the
generator's model of each case, never the files written.
"""

from __future__ import annotations

from faerslake.config import Study
from faerslake.quarters import quarter_index
from faerslake.synthetic.model import Report


def norm_pt_text(s: str) -> str:
    """Spec §1 PT rule: trim, upper-case."""
    return s.strip().upper()


def norm_drug_text(s: str) -> str:
    """Spec §1 drug rule: upper-case, trim, collapse white space, drop trailing periods."""
    s = " ".join(s.upper().split())
    while s.endswith(".") or s.endswith(" "):
        s = s[:-1]
    return s


def drug_row_matches(drug: dict[str, str], tokens: list[str], exclude: list[str]) -> bool:
    """Whether a drug row's drugname or prod_ai holds a token and neither holds an excluded one."""
    texts = (norm_drug_text(drug.get("drugname", "")), norm_drug_text(drug.get("prod_ai", "")))
    if not any(t in x for t in tokens for x in texts):
        return False
    return not any(e in x for e in exclude for x in texts)


drug_matches = drug_row_matches  # the old name


def report_cohort_flags(
    rep: Report, study: Study, memo: dict | None = None
) -> tuple[bool, dict[str, tuple[bool, bool]], bool]:
    """(excluded, {cohort: (exposed, control)}, event) for one kept report (spec §3).

    ``memo`` caches the token tests per (drugname, prod_ai) text: the vocabulary
    is small, and this keeps the truth cheap at tens of millions of rows.
    """
    memo = {} if memo is None else memo

    def classify(d: dict[str, str]) -> tuple[bool, bool]:
        k = (d["drugname"], d["prod_ai"])
        if k not in memo:
            memo[k] = (drug_row_matches(d, study.exposure.tokens, study.exposure.exclude_tokens),
                       drug_row_matches(d, study.exclusions.drug_tokens, []))
        return memo[k]

    outcome = set(study.outcome_pts)
    ind_by_seq: dict[str, set[str]] = {}
    for seq, pt in rep.indis:
        ind_by_seq.setdefault(seq, set()).add(norm_pt_text(pt))
    ex = study.exclusions
    excluded = False
    if ex.enabled:
        if ex.outcome_indications and any(norm_pt_text(pt) in outcome for _, pt in rep.indis):
            excluded = True
        if any(classify(d)[1] for d in rep.drugs):
            excluded = True
    roles = study.exposure_role_codes
    expo = [d for d in rep.drugs
            if classify(d)[0] and (roles is None or d["role_cod"].strip().upper() in roles)]
    # indications of the exposure drug rows, and of all drug rows (linked by drug_seq)
    expo_pts: set[str] = set()
    for d in expo:
        expo_pts |= ind_by_seq.get(d["drug_seq"], set())
    all_pts: set[str] = set()
    for d in rep.drugs:
        all_pts |= ind_by_seq.get(d["drug_seq"], set())
    flags = {}
    for c in study.cohorts:
        cset = set(c.indications)
        flags[c.name] = (bool(expo_pts & cset), not expo and bool(all_pts & cset))
    event = any(norm_pt_text(pt) in outcome for pt in rep.reacs)
    return excluded, flags, event


def kept_order_key(rep: Report, quarters: list[str]) -> tuple:
    """Spec §2.3: era (FAERS first), caseversion, fda_dt, quarter, report key — the max is kept."""
    return (1 if rep.era == "faers" else 0,
            rep.version if rep.version is not None else -1,
            rep.fda_dt,
            quarter_index(quarters[rep.pos]),
            rep.key)


def _dedup_counts() -> dict[str, int]:
    return dict(reports_read=0, removed_deleted=0, removed_older_versions=0, reports_kept=0)


class ScreenTruth:
    """The signal screen's counts of chosen drugs and PTs over the kept reports.

    Drugs are normalised drugnames (the default screen's key, every role), PTs
    normalised REAC PTs; counts are of distinct reports. ``reports`` is N, the
    kept reports with at least one drug and one PT.
    """

    def __init__(self, pairs: list[tuple[str, str]], drugs: list[str], pts: list[str]):
        self.pairs = pairs
        self.reports = 0
        self.a = dict.fromkeys(pairs, 0)
        self.n_drug = dict.fromkeys(drugs, 0)
        self.n_pt = dict.fromkeys(pts, 0)

    def account(self, rep: Report) -> None:
        drugs = {norm_drug_text(d["drugname"]) for d in rep.drugs} - {""}
        pts = {norm_pt_text(pt) for pt in rep.reacs} - {""}
        if not drugs or not pts:
            return
        self.reports += 1
        for x in drugs & self.n_drug.keys():
            self.n_drug[x] += 1
        for y in pts & self.n_pt.keys():
            self.n_pt[y] += 1
        for pair in self.pairs:
            if pair[0] in drugs and pair[1] in pts:
                self.a[pair] += 1


class Truth:
    """What a correct pipeline must count, accumulated one case at a time."""

    def __init__(self, study: Study, quarters: list[str], screen: ScreenTruth | None = None):
        self.study = study
        self.quarters = quarters
        self.cohorts = {c.name: dict(exposed_reports=0, exposed_events=0, control_reports=0,
                                     control_events=0) for c in study.cohorts}
        self.excluded_reports = 0
        self.dedup = {q: _dedup_counts() for q in quarters}
        self.silver = dict(reports=0, drugs=0, indications=0, reactions=0, outcomes=0,
                           therapies=0, report_sources=0)
        self.kept_by_era = {"legacy": 0, "faers": 0}
        self.memo: dict = {}
        self.screen = screen

    def account_case(self, reports: list[Report], deleted: bool) -> None:
        read = [r for r in reports if r.damage != "dollar_demo"]  # quarantined DEMO: no report
        if not read:
            return
        for r in read:
            self.dedup[self.quarters[r.pos]]["reports_read"] += 1
        if deleted:
            for r in read:
                self.dedup[self.quarters[r.pos]]["removed_deleted"] += 1
            return
        kept = max(read, key=lambda r: kept_order_key(r, self.quarters))
        for r in read:
            self.dedup[self.quarters[r.pos]]["reports_kept" if r is kept else "removed_older_versions"] += 1
        self._account_kept(kept)

    def _account_kept(self, kept: Report) -> None:
        s = self.silver
        s["reports"] += 1
        s["drugs"] += len(kept.drugs)
        s["indications"] += len(kept.indis)
        s["reactions"] += len(kept.reacs)
        s["outcomes"] += len(kept.outcs)
        s["therapies"] += len(kept.thers)
        s["report_sources"] += len(kept.rpsrs)
        self.kept_by_era[kept.era] += 1
        if self.screen is not None:  # the screen reads every kept report, excluded or not
            self.screen.account(kept)
        excluded, flags, event = report_cohort_flags(kept, self.study, self.memo)
        if excluded:
            if any(e or c for e, c in flags.values()):
                self.excluded_reports += 1
            return
        for name, (exposed, control) in flags.items():
            t = self.cohorts[name]
            if exposed:
                t["exposed_reports"] += 1
                t["exposed_events"] += event
            if control:
                t["control_reports"] += 1
                t["control_events"] += event

    def dedup_all(self) -> dict[str, int]:
        out = _dedup_counts()
        for d in self.dedup.values():
            for k in out:
                out[k] += d[k]
        return out
