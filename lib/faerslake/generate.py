"""Synthetic FAERS / legacy AERS quarterly releases, with the answers.

Place in the pipeline: the *source* end. ``faerslake generate`` writes
quarters in FDA's exact layouts (legacy AERS up to 2012Q3, FAERS version A
2012Q4-2014Q2, version B from 2014Q3, with the per-quarter quirks of
``faers-format.md``) so that ``ingest -> build -> study`` can be run and tested
end to end without FDA's 3.5 GB archive. Beside the quarters it writes
``_truth.json``: what a correct pipeline must report for them (ingest counts
per file, de-duplication counts, and the 2x2 counts of every cohort of the
default study, spec §2-§3).

The truth is computed from the generator's own model of each case while the
case is created (its reports, the kept latest version, its cohort flags under
the spec rules, written in plain Python below), never by re-reading files.

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

Scale: cases are created in order of the quarter where they start; a case's
versions lie within ``WINDOW`` later quarters (a hand-placed few one more), so
only those quarters' files are open at once and a quarter is closed (and
zipped) as soon as no later case can write into it. Memory holds one case at a
time plus counters and the deleted-case lists (~60 MB for 12 million rows).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from faerslake.config import Study, default_study_path, load_study
from faerslake.errors import InputError
from faerslake.logs import sink
from faerslake.quarters import era_of, parse_quarter, quarter_index

DEFAULT_QUARTERS = ["2012Q2", "2012Q3", "2012Q4", "2014Q3", "2019Q1"]
TABLES = ("demo", "drug", "reac", "outc", "rpsr", "ther", "indi")
# A case's later versions fall at most this many (selected) quarters after its first.
WINDOW = 3
MIN_REPORTS = 60
TRUTH_VERSION = 1

# --------------------------------------------------------------------------- #
# Layouts: (header name as FDA wrote it, value key) per table and era
# --------------------------------------------------------------------------- #
_LEGACY_DEMO = [
    ("ISR", "isr"), ("CASE", "caseid"), ("I_F_COD", "i_f_code"), ("FOLL_SEQ", "foll_seq"),
    ("IMAGE", "image"), ("EVENT_DT", "event_dt"), ("MFR_DT", "mfr_dt"), ("FDA_DT", "fda_dt"),
    ("REPT_COD", "rept_cod"), ("MFR_NUM", "mfr_num"), ("MFR_SNDR", "mfr_sndr"), ("AGE", "age"),
    ("AGE_COD", "age_cod"), ("GNDR_COD", "sex"), ("E_SUB", "e_sub"), ("WT", "wt"),
    ("WT_COD", "wt_cod"), ("REPT_DT", "rept_dt"), ("OCCP_COD", "occp_cod"),
    ("DEATH_DT", "death_dt"), ("TO_MFR", "to_mfr"), ("CONFID", "confid"),
]
_LEGACY = {
    "drug": [("ISR", "isr"), ("DRUG_SEQ", "drug_seq"), ("ROLE_COD", "role_cod"),
             ("DRUGNAME", "drugname"), ("VAL_VBM", "val_vbm"), ("ROUTE", "route"),
             ("DOSE_VBM", "dose_vbm"), ("DECHAL", "dechal"), ("RECHAL", "rechal"),
             ("LOT_NUM", "lot_num"), ("EXP_DT", "exp_dt"), ("NDA_NUM", "nda_num")],
    "reac": [("ISR", "isr"), ("PT", "pt")],
    "outc": [("ISR", "isr"), ("OUTC_COD", "outc_cod")],
    "rpsr": [("ISR", "isr"), ("RPSR_COD", "rpsr_cod")],
    "ther": [("ISR", "isr"), ("DRUG_SEQ", "drug_seq"), ("START_DT", "start_dt"),
             ("END_DT", "end_dt"), ("DUR", "dur"), ("DUR_COD", "dur_cod")],
    "indi": [("ISR", "isr"), ("DRUG_SEQ", "drug_seq"), ("INDI_PT", "indi_pt")],
}


def _faers_columns(q: str) -> dict[str, list[tuple[str, str]]]:
    b = quarter_index(q) >= quarter_index("2014Q3")
    first = q == "2012Q4"
    key = [("primaryid", "primaryid"), ("caseid", "caseid")]
    demo = key + [("caseversion", "caseversion"), ("i_f_code", "i_f_code"), ("event_dt", "event_dt"),
                  ("mfr_dt", "mfr_dt"), ("init_fda_dt", "init_fda_dt"), ("fda_dt", "fda_dt"),
                  ("rept_cod", "rept_cod")]
    demo += [("auth_num", "auth_num")] if b else []
    demo += [("mfr_num", "mfr_num"), ("mfr_sndr", "mfr_sndr")]
    demo += [("lit_ref", "lit_ref")] if b else []
    demo += [("age", "age"), ("age_cod", "age_cod")]
    demo += [("age_grp", "age_grp"), ("sex", "sex")] if b else [("gndr_cod", "sex")]
    demo += [("e_sub", "e_sub"), ("wt", "wt"), ("wt_cod", "wt_cod"),
             (" rept_dt" if first else "rept_dt", "rept_dt"), ("to_mfr", "to_mfr"),
             ("occp_cod", "occp_cod"), ("reporter_country", "reporter_country"),
             ("occr_country", "occr_country")]
    drug = key + [("drug_seq", "drug_seq"), ("role_cod", "role_cod"), ("drugname", "drugname")]
    drug += [("prod_ai", "prod_ai")] if b else []
    drug += [("val_vbm", "val_vbm"), ("route", "route"), ("dose_vbm", "dose_vbm"),
             ("cum_dose_chr", "cum_dose_chr"), ("cum_dose_unit", "cum_dose_unit"),
             ("dechal", "dechal"), ("rechal", "rechal"),
             ("lot_nbr" if first else "lot_num", "lot_num"), ("exp_dt", "exp_dt"),
             ("nda_num", "nda_num"), ("dose_amt", "dose_amt"), ("dose_unit", "dose_unit"),
             ("dose_form", "dose_form"), ("dose_freq", "dose_freq")]
    return {
        "demo": demo,
        "drug": drug,
        "reac": key + [("pt", "pt")] + ([("drug_rec_act", "drug_rec_act")] if b else []),
        "outc": key + [("outc_code" if first else "outc_cod", "outc_cod")],
        "rpsr": key + [("rpsr_cod", "rpsr_cod")],
        "ther": key + [("dsg_drug_seq", "drug_seq"), ("start_dt", "start_dt"), ("end_dt", "end_dt"),
                       ("dur", "dur"), ("dur_cod", "dur_cod")],
        "indi": key + [("indi_drug_seq", "drug_seq"), ("indi_pt", "indi_pt")],
    }


_PDF = b"%PDF-1.4\n% faerslake synthetic placeholder: not data, to be ignored\n%%EOF\n"


@dataclass(frozen=True)
class Layout:
    """How one quarter is written (file names, headers, trailing ``$``, line ends)."""

    quarter: str
    pos: int
    era: str
    container: str            # zip stem / folder name, e.g. aers_ascii_2012q2
    data_dir: str             # ascii / ASCII / Ascii
    files: dict[str, str]     # table -> file name
    columns: dict[str, list[tuple[str, str]]]
    trailing_header: bool     # header line ends with '$'
    trailing_row: bool        # data lines end with '$'
    eol: str
    bom_tables: frozenset[str]
    deleted_path: str | None  # relative path of the deleted-case list
    extras: tuple[tuple[str, bytes], ...]
    has_prod_ai: bool = False  # set by layout_for from the DRUG columns


def layout_for(quarter: str, pos: int = 0) -> Layout:
    """FDA's layout of ``quarter`` as this generator writes it (see module docs)."""
    q = parse_quarter(quarter)
    qi = quarter_index(q)
    year, qn = int(q[:4]), int(q[5])
    yy = f"{year % 100:02d}"
    era = era_of(q)
    if era == "legacy":
        cols = {"demo": list(_LEGACY_DEMO), **_LEGACY}
        if qi >= quarter_index("2005Q3"):
            cols["demo"] = cols["demo"] + [("REPORTER_COUNTRY", "reporter_country")]
        files = {t: f"{t.upper()}{yy}Q{qn}.TXT" for t in TABLES}
        extras = (("ascii/ASC_NTS.pdf", _PDF),
                  (f"ascii/STAT{yy}Q{qn}.TXT", f"STAT{yy}Q{qn}\r\nsynthetic\r\n".encode()),
                  ("README.TXT", b"faerslake synthetic legacy AERS quarter; not FDA data.\r\n"))
        return Layout(q, pos, era, f"aers_ascii_{year}q{qn}", "ascii", files, cols,
                      trailing_header=False, trailing_row=True, eol="\r\n",
                      bom_tables=frozenset(), deleted_path=None, extras=extras)
    cols = _faers_columns(q)
    has_ai = any(k == "prod_ai" for _, k in cols["drug"])
    if q == "2012Q4":
        files = {t: f"{t}{yy}q{qn}.txt" for t in TABLES}
    else:
        files = {t: f"{t.upper()}{yy}Q{qn}.txt" for t in TABLES}
    if q == "2018Q1":
        files["demo"] = f"DEMO{yy}Q{qn}_new.txt"
    data_dir = "ASCII" if year >= 2018 else ("Ascii" if year in (2015, 2016) else "ascii")
    # Trailing '$' on header and rows: 2012Q4 and 2016Q1-2024Q4; not 2013-2015 nor 2025 on.
    trailing = q == "2012Q4" or quarter_index("2016Q1") <= qi <= quarter_index("2024Q4")
    deleted = None
    if qi >= quarter_index("2019Q1"):
        if year == 2020:
            deleted = f"deleted/{yy}Q{qn}DeletedCases.txt"
        elif year == 2021 and qn < 4:
            deleted = f"DELETED/ADR{yy}Q{qn}DeletedCases.txt"
        else:
            deleted = f"Deleted/DELETE{yy}Q{qn}.txt"
    extras = ((f"{data_dir}/ASC_NTS.pdf", _PDF), (f"{data_dir}/DEMO{yy}Q{qn}.pdf", _PDF),
              ("Readme.pdf", _PDF), ("FAQs.pdf", _PDF))
    return Layout(q, pos, "faers", f"faers_ascii_{year}{'Q' if year >= 2019 else 'q'}{qn}",
                  data_dir, files, cols, trailing_header=trailing, trailing_row=trailing,
                  eol="\n" if q == "2017Q4" else "\r\n",
                  bom_tables=frozenset({"drug"}) if q == "2012Q4" else frozenset(),
                  deleted_path=deleted, extras=extras, has_prod_ai=has_ai)


# --------------------------------------------------------------------------- #
# Vocabulary
# --------------------------------------------------------------------------- #
# (drugname, prod_ai, first year on the market) — all match the exposure tokens
# by drugname, so they are exposure drugs in every era.
_BONT = [("BOTOX", "ONABOTULINUMTOXINA", 2004), ("BOTOX COSMETIC", "ONABOTULINUMTOXINA", 2004),
         ("DYSPORT", "ABOBOTULINUMTOXINA", 2004), ("MYOBLOC", "RIMABOTULINUMTOXINB", 2004),
         ("BOTULINUM TOXIN TYPE A", "BOTULINUM TOXIN TYPE A", 2004),
         ("XEOMIN", "INCOBOTULINUMTOXINA", 2010), ("JEUVEAU", "PRABOTULINUMTOXINA-XVFS", 2019),
         ("DAXXIFY", "DAXIBOTULINUMTOXINA-LANM", 2022)]
# Exposure only through prod_ai (FAERS version B has prod_ai); elsewhere not exposure.
_BONT_AI_ONLY = [("MEDYTOX", "BOTULINUM TOXIN TYPE A"), ("NEURONOX", "ONABOTULINUMTOXINA")]
_ANTITOXIN = [("BOTULISM ANTITOXIN HEPTAVALENT", "BOTULINUM ANTITOXIN HEPTAVALENT (EQUINE)"),
              ("BOTULINUM ANTITOXIN", ""),
              ("BABYBIG", "BOTULINUM IMMUNE  GLOBULIN")]  # double space: matches only once normalised
_ANTIDEP = [("ZOLOFT", "SERTRALINE HYDROCHLORIDE"), ("SERTRALINE.", "SERTRALINE"),
            ("CYMBALTA", "DULOXETINE HYDROCHLORIDE"), ("TRAZODONE", "TRAZODONE HYDROCHLORIDE"),
            ("AMITRIPTYLINE HCL", "AMITRIPTYLINE HYDROCHLORIDE"), ("LEXAPRO", "ESCITALOPRAM OXALATE"),
            ("WELLBUTRIN XL", "BUPROPION HYDROCHLORIDE"), ("EFFEXOR  XR", "VENLAFAXINE HYDROCHLORIDE"),
            ("SYMBYAX", "FLUOXETINE HYDROCHLORIDE\\OLANZAPINE")]
_ANTIDEP_INDI = ["ANXIETY", "INSOMNIA", "NEUROPATHIC PAIN", "PRODUCT USED FOR UNKNOWN INDICATION"]
_DEPR_INDI_DRUGS = [("LITHIUM CARBONATE", "LITHIUM CARBONATE"), ("ABILIFY", "ARIPIPRAZOLE"),
                    ("SEROQUEL", "QUETIAPINE FUMARATE")]
_DEPR_INDI = ["DEPRESSION", "MAJOR DEPRESSION"]
_CONTROL = {
    "cosmetic": [("JUVEDERM", "HYALURONIC ACID"), ("RESTYLANE", "HYALURONIC ACID"),
                 ("SCULPTRA", "POLY-L-LACTIC ACID"), ("RADIESSE", "CALCIUM HYDROXYLAPATITE")],
    "migraine": [("TOPAMAX", "TOPIRAMATE"), ("IMITREX", "SUMATRIPTAN SUCCINATE"),
                 ("AIMOVIG", "ERENUMAB-AOOE"), ("EMGALITY", "GALCANEZUMAB-GNLM"),
                 ("PROPRANOLOL", "PROPRANOLOL HYDROCHLORIDE")],
    "spasticity": [("BACLOFEN", "BACLOFEN"), ("TIZANIDINE", "TIZANIDINE HYDROCHLORIDE"),
                   ("DANTRIUM", "DANTROLENE SODIUM"), ("FLEXERIL", "CYCLOBENZAPRINE HYDROCHLORIDE")],
    "torticollis": [("TRIHEXYPHENIDYL", "TRIHEXYPHENIDYL HYDROCHLORIDE"), ("KLONOPIN", "CLONAZEPAM"),
                    ("FLEXERIL", "CYCLOBENZAPRINE HYDROCHLORIDE")],
    "blepharospasm": [("KLONOPIN", "CLONAZEPAM"), ("ARTANE", "TRIHEXYPHENIDYL HYDROCHLORIDE")],
    "hyperhidrosis": [("QBREXZA", "GLYCOPYRRONIUM TOSYLATE"), ("DRYSOL", "ALUMINUM CHLORIDE"),
                      ("ROBINUL", "GLYCOPYRROLATE")],
    "sialorrhea": [("CUVPOSA", "GLYCOPYRROLATE"), ("TRANSDERM SCOP", "SCOPOLAMINE")],
    "bladder": [("DITROPAN XL", "OXYBUTYNIN CHLORIDE"), ("MYRBETRIQ", "MIRABEGRON"),
                ("VESICARE", "SOLIFENACIN SUCCINATE"), ("DETROL", "TOLTERODINE TARTRATE")],
}
_GENERIC_CONTROL = [("PREDNISONE", "PREDNISONE"), ("GABAPENTIN", "GABAPENTIN")]
# (drugname, prod_ai, indication); includes FDA's noise: quotes, cp1252 0x92, `\` lists.
_BACKGROUND = [
    ("LIPITOR", "ATORVASTATIN CALCIUM", "HYPERCHOLESTEROLAEMIA"),
    ("METFORMIN", "METFORMIN HYDROCHLORIDE", "TYPE 2 DIABETES MELLITUS"),
    ("HUMIRA", "ADALIMUMAB", "RHEUMATOID ARTHRITIS"),
    ("ENBREL", "ETANERCEPT", "PSORIASIS"),
    ("PREDNISONE.", "PREDNISONE", "ASTHMA"),
    ("ASPIRIN  81 MG", "ASPIRIN", "CARDIOVASCULAR EVENT PROPHYLAXIS"),
    ("LISINOPRIL", "LISINOPRIL", "HYPERTENSION"),
    ("AMLODIPINE", "AMLODIPINE BESYLATE", "HYPERTENSION"),
    ("VICODIN", "ACETAMINOPHEN\\HYDROCODONE BITARTRATE", "PAIN"),
    ("XARELTO", "RIVAROXABAN", "ATRIAL FIBRILLATION"),
    ("ELIQUIS", "APIXABAN", "ATRIAL FIBRILLATION"),
    ("REVLIMID", "LENALIDOMIDE", "PLASMA CELL MYELOMA"),
    ("KEYTRUDA", "PEMBROLIZUMAB", "LUNG NEOPLASM MALIGNANT"),
    ("OTEZLA", "APREMILAST", "PSORIATIC ARTHROPATHY"),
    ("LYRICA", "PREGABALIN", "FIBROMYALGIA"),
    ("OMEPRAZOLE", "OMEPRAZOLE", "GASTROOESOPHAGEAL REFLUX DISEASE"),
    ("SYNTHROID", "LEVOTHYROXINE SODIUM", "HYPOTHYROIDISM"),
    ("TECFIDERA", "DIMETHYL FUMARATE", "MULTIPLE SCLEROSIS"),
    ("IBUPROFEN", "IBUPROFEN", "HEMIPLEGIC MIGRAINE"),  # not a cohort PT (substring trap)
    ("TYLENOL", "ACETAMINOPHEN", "BACK PAIN"),
    ('"VITAMINS" (NOS)', "VITAMINS", "PRODUCT USED FOR UNKNOWN INDICATION"),
    ("ST. JOHN\x92S WORT", "HYPERICUM PERFORATUM", "PRODUCT USED FOR UNKNOWN INDICATION"),
    ("CAF\xc9INE CITRATE", "CAFFEINE CITRATE", "APNOEA"),
    ("INSULIN GLARGINE..", "INSULIN GLARGINE", "DIABETES MELLITUS"),
]
_REAC_BG = ["NAUSEA", "HEADACHE", "FATIGUE", "DIZZINESS", "DRUG INEFFECTIVE", "RASH", "DYSPNOEA",
            "PNEUMONIA", "DIARRHOEA", "ARTHRALGIA", "VOMITING", "PAIN", "FALL", "INSOMNIA",
            "ANXIETY", "OFF LABEL USE", "MALAISE", "WEIGHT DECREASED",
            "POSTPARTUM DEPRESSION", "DEPRESSED LEVEL OF CONSCIOUSNESS"]  # event look-alikes
_REAC_BONT = ["INJECTION SITE PAIN", "EYELID PTOSIS", "DYSPHAGIA", "MUSCULAR WEAKNESS",
              "DRUG INEFFECTIVE", "HEADACHE", "NECK PAIN", "DIPLOPIA", "BOTULISM"]
_ROUTES = ["ORAL", "INTRAMUSCULAR", "SUBCUTANEOUS", "INTRAVENOUS", "TOPICAL", "UNKNOWN"]
_ROLES = ["PS"] + ["SS"] * 2 + ["C"] * 6 + ["I"]
# The drug columns no rule reads, pre-combined so a drug row costs one random draw.
_DRUG_FILLERS = [
    {"val_vbm": "1", "route": route, "dose_vbm": dose, "dechal": dechal, "rechal": rechal, "lot_num": "",
     "exp_dt": "", "nda_num": nda, "dose_amt": amt, "dose_unit": unit, "dose_form": "", "dose_freq": freq}
    for route in _ROUTES
    for dose, amt, unit, freq in [("UNK", "", "", ""), ("100 UNITS", "100", "U", ""),
                                  ("20 MG, QD", "20", "MG", "QD"), ("", "", "", "")]
    for dechal, rechal in [("Y", "N"), ("D", "D"), ("U", "U"), ("N", "Y")]
    for nda in ["", "103000", "020972"]
]
_OUTC = ["OT", "HO", "DS", "LT", "DE", "RI", "CA"]
_RPSR = ["HP", "CSM", "FGN", "LIT", "CR", "SDY", "DT"]
_OCCP = ["MD", "PH", "OT", "LW", "CN", "HP"]
_MFR = ["ALLERGAN", "IPSEN", "MERZ", "PFIZER", "NOVARTIS", "ABBVIE", "FDA-CTU", "TEVA"]
_COUNTRY = [("UNITED STATES", "US"), ("CANADA", "CA"), ("JAPAN", "JP"), ("GERMANY", "DE"),
            ("FRANCE", "FR"), ("UNITED KINGDOM", "GB"), ("COUNTRY NOT SPECIFIED", "")]
# Per-cohort relative weights (exposed, control) and depression rates (exposed, control):
# the planted effect is depression less common among BoNT reports; bladder shows none,
# sialorrhea has no BoNT report with depression.
_COHORT_PLAN = {
    "cosmetic": (10, 2, 0.04, 0.20), "migraine": (4, 12, 0.07, 0.25),
    "spasticity": (3, 9, 0.06, 0.22), "torticollis": (3, 4, 0.05, 0.22),
    "blepharospasm": (2, 1, 0.04, 0.20), "hyperhidrosis": (2, 2, 0.04, 0.20),
    "sialorrhea": (1, 2, 0.0, 0.18), "bladder": (2, 8, 0.18, 0.22),
}
_DEFAULT_PLAN = (2, 4, 0.07, 0.20)
# Specials whose older report is a BoNT report and latest a control one: picking
# the wrong report of the case changes the cohort counts.
_OLDER_EXPOSED = ("older_drugs_differ", "v9_v10", "version_beats_quarter", "fda_dt_beats_isr")
_BG_EVENT_P = 0.05


# --------------------------------------------------------------------------- #
# The model of a report (exactly the strings written)
# --------------------------------------------------------------------------- #
@dataclass
class Report:
    pos: int
    era: str
    key: int                      # legacy ISR or FAERS primaryid
    caseid: int
    version: int | None           # FAERS caseversion; None for legacy
    fda_dt: str
    demo: dict[str, str]
    drugs: list[dict[str, str]]   # each has drug_seq, role_cod, drugname, prod_ai, ...
    indis: list[tuple[str, str]]  # (drug_seq, indi_pt)
    reacs: list[str]
    outcs: list[str]
    rpsrs: list[str]
    thers: list[dict[str, str]]
    damage: str = ""              # "", glue_drug, break_drug, break_demo, dollar_demo


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


# --------------------------------------------------------------------------- #
# Spec rules, written out plainly (the truth model)
# --------------------------------------------------------------------------- #
def norm_pt_text(s: str) -> str:
    """Spec §1 PT rule: trim, upper-case."""
    return s.strip().upper()


def norm_drug_text(s: str) -> str:
    """Spec §1 drug rule: upper-case, trim, collapse white space, drop trailing periods."""
    s = " ".join(s.upper().split())
    while s.endswith(".") or s.endswith(" "):
        s = s[:-1]
    return s


def drug_matches(drug: dict[str, str], tokens: list[str], exclude: list[str]) -> bool:
    texts = (norm_drug_text(drug.get("drugname", "")), norm_drug_text(drug.get("prod_ai", "")))
    if not any(t in x for t in tokens for x in texts):
        return False
    return not any(e in x for e in exclude for x in texts)


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
            memo[k] = (drug_matches(d, study.exposure.tokens, study.exposure.exclude_tokens),
                       drug_matches(d, study.exclusions.drug_tokens, []))
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


class _Truth:
    def __init__(self, study: Study, quarters: list[str]):
        self.study = study
        self.quarters = quarters
        self.cohorts = {c.name: dict(exposed_reports=0, exposed_events=0, control_reports=0,
                                     control_events=0) for c in study.cohorts}
        self.excluded_reports = 0
        self.dedup = {q: dict(reports_read=0, removed_deleted=0, removed_older_versions=0,
                              reports_kept=0) for q in quarters}
        self.silver = dict(reports=0, drugs=0, indications=0, reactions=0, outcomes=0,
                           therapies=0, report_sources=0)
        self.kept_by_era = {"legacy": 0, "faers": 0}
        self.memo: dict = {}

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
        s = self.silver
        s["reports"] += 1
        s["drugs"] += len(kept.drugs)
        s["indications"] += len(kept.indis)
        s["reactions"] += len(kept.reacs)
        s["outcomes"] += len(kept.outcs)
        s["therapies"] += len(kept.thers)
        s["report_sources"] += len(kept.rpsrs)
        self.kept_by_era[kept.era] += 1
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
        out = dict(reports_read=0, removed_deleted=0, removed_older_versions=0, reports_kept=0)
        for d in self.dedup.values():
            for k in out:
                out[k] += d[k]
        return out


# --------------------------------------------------------------------------- #
# Writing one quarter
# --------------------------------------------------------------------------- #
class _QuarterWriter:
    """Open files of one quarter; counts what an ingest must find in each."""

    def __init__(self, layout: Layout, root: Path):
        self.layout = layout
        self.root = root
        self.handles = {}
        self.keys: dict[str, list[str]] = {}
        self.counts: dict[str, dict[str, int]] = {}
        self.deleted: list[int] = []
        self.deleted_info: dict | None = None
        lay = layout
        (root / lay.data_dir).mkdir(parents=True, exist_ok=True)
        for t in TABLES:
            f = open(root / lay.data_dir / lay.files[t], "w", encoding="latin-1", newline="",
                     buffering=1 << 20)
            if t in lay.bom_tables:
                f.write("\xef\xbb\xbf")  # UTF-8 BOM bytes, written through latin-1
            f.write("$".join(h for h, _ in lay.columns[t]) + ("$" if lay.trailing_header else "") + lay.eol)
            self.handles[t] = f
            self.keys[t] = [k for _, k in lay.columns[t]]
            self.counts[t] = dict(lines_read=0, rows_loaded=0, rows_repaired=0, lines_repaired=0,
                                  rows_quarantined=0)
        self.end = ("$" if lay.trailing_row else "") + lay.eol
        self.rows = 0
        self.legacy = lay.era == "legacy"
        n_key = 1 if self.legacy else 2
        self.rest = {t: self.keys[t][n_key:] for t in TABLES}
        # the fixed shapes the fast paths in write() rely on
        assert self.rest["outc"] == ["outc_cod"] and self.rest["rpsr"] == ["rpsr_cod"]
        assert self.rest["indi"] == ["drug_seq", "indi_pt"] and self.rest["reac"][0] == "pt"
        self.reac_tail = "$" * (len(self.rest["reac"]) - 1)

    def _line(self, t: str, prefix: str, d: dict[str, str]) -> str:
        return prefix + "$" + "$".join([d.get(k, "") for k in self.rest[t]])

    def _emit(self, t: str, lines: list[str]) -> None:
        if not lines:
            return
        end = self.end
        self.handles[t].write(end.join(lines) + end)
        c = self.counts[t]
        c["lines_read"] += len(lines)
        c["rows_loaded"] += len(lines)
        self.rows += len(lines)

    def write(self, r: Report) -> None:
        # every table starts with the report key (legacy ISR) or primaryid$caseid (FAERS)
        prefix = str(r.key) if self.legacy else f"{r.key}${r.caseid}"
        end = self.end
        c = self.counts
        demo = r.demo if not self.legacy else {**r.demo, "caseid": str(r.caseid)}
        line = self._line("demo", prefix, demo)
        if r.damage == "dollar_demo":
            # a literal '$' inside MFR_NUM: one field too many, cannot be repaired
            self.handles["demo"].write(line + end)
            c["demo"]["lines_read"] += 1
            c["demo"]["rows_quarantined"] += 1
        elif r.damage == "break_demo":
            cut = _field_cut(line, 10)
            self.handles["demo"].write(line[:cut] + self.layout.eol + line[cut:] + end)
            c["demo"]["lines_read"] += 2
            c["demo"]["rows_loaded"] += 1
            c["demo"]["rows_repaired"] += 1
            c["demo"]["lines_repaired"] += 2
            self.rows += 1
        else:
            self._emit("demo", [line])
        dlines = [self._line("drug", prefix, d) for d in r.drugs]
        if r.damage == "glue_drug" and len(dlines) >= 2:
            # two whole records on one physical line (each keeps its trailing '$')
            self.handles["drug"].write(dlines[0] + end.rstrip("\r\n") + dlines[1] + end)
            c["drug"]["lines_read"] += 1
            c["drug"]["rows_loaded"] += 2
            c["drug"]["rows_repaired"] += 2
            c["drug"]["lines_repaired"] += 1
            self.rows += 2
            dlines = dlines[2:]
        elif r.damage == "break_drug":
            first = dlines[0]
            cut = _field_cut(first, 5)
            self.handles["drug"].write(first[:cut] + self.layout.eol + first[cut:] + end)
            c["drug"]["lines_read"] += 2
            c["drug"]["rows_loaded"] += 1
            c["drug"]["rows_repaired"] += 1
            c["drug"]["lines_repaired"] += 2
            self.rows += 1
            dlines = dlines[1:]
        self._emit("drug", dlines)
        p = prefix + "$"
        self._emit("reac", [p + pt + self.reac_tail for pt in r.reacs])
        self._emit("outc", [p + o for o in r.outcs])
        self._emit("rpsr", [p + o for o in r.rpsrs])
        self._emit("ther", [self._line("ther", prefix, th) for th in r.thers])
        self._emit("indi", [p + seq + "$" + pt for seq, pt in r.indis])

    def close(self, rng: random.Random, extra_deleted: list[int]) -> list[dict]:
        lay = self.layout
        for f in self.handles.values():
            f.close()
        if lay.deleted_path:
            lines = [str(x) for x in self.deleted] + [str(x) for x in extra_deleted]
            rng.shuffle(lines)
            if lines:  # FDA's lists repeat ids and hold blank / one-space lines
                lines.insert(rng.randrange(len(lines) + 1), lines[rng.randrange(len(lines))])
            lines.insert(0, " ")
            lines.insert(rng.randrange(1, len(lines) + 1), "")
            p = self.root / lay.deleted_path
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes((lay.eol.join(lines) + lay.eol).encode("ascii"))
            ids = [x for x in lines if x.strip()]
            self.deleted_info = dict(quarter=lay.quarter, file=lay.deleted_path, lines=len(lines),
                                     caseid_lines=len(ids), distinct_caseids=len(set(ids)))
        for rel, data in lay.extras:
            p = self.root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        return [dict(quarter=lay.quarter, table=t, file=f"{lay.data_dir}/{lay.files[t]}", **self.counts[t])
                for t in TABLES]


def _field_cut(line: str, after_fields: int) -> int:
    """Index of the '$' that ends field number ``after_fields`` (the continuation starts with '$')."""
    idx = -1
    for _ in range(after_fields):
        idx = line.index("$", idx + 1)
    return idx


def _zip_folder(folder: Path, zip_path: Path, quarter: str) -> None:
    """Deterministic zip (fixed times, sorted names, directory entries first)."""
    y, qn = int(quarter[:4]), int(quarter[5])
    stamp = (max(y, 1980) if qn < 4 else max(y + 1, 1980), (qn * 3) % 12 + 1, 15, 12, 0, 0)
    tmp = zip_path.with_name(zip_path.name + ".tmp")
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    dirs = sorted({p.parent.relative_to(folder).as_posix() for p in files} - {"."})
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for d in dirs:
            zi = zipfile.ZipInfo(d + "/", stamp)
            zi.external_attr = 0o40755 << 16
            zf.writestr(zi, b"")
        for p in files:
            zi = zipfile.ZipInfo(p.relative_to(folder).as_posix(), stamp)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            with open(p, "rb") as src, zf.open(zi, "w", force_zip64=True) as out:
                shutil.copyfileobj(src, out, 1 << 20)
    os.replace(tmp, zip_path)


# --------------------------------------------------------------------------- #
# The generator
# --------------------------------------------------------------------------- #
class _Gen:
    def __init__(self, rng: random.Random, quarters: list[str], layouts: list[Layout], study: Study):
        self.rng = rng
        self.quarters = quarters
        self.layouts = layouts
        self.study = study
        self.P = len(quarters)
        qi0 = quarter_index(quarters[0])
        # Case numbers grow with time as FDA's do (~150k cases a quarter from ~4.1M in 2004).
        self.case_base = 4_100_000 + max(0, qi0 - quarter_index("2004Q1")) * 150_000
        self.isr_next = self.case_base + 700_000
        self.drug_seq_next = 1_000_000_000 + (self.case_base // 10) * 100
        self.cohort_names = [c.name for c in study.cohorts]
        self.cohort_pts = {c.name: list(c.indications) for c in study.cohorts}
        plans = [_COHORT_PLAN.get(n, _DEFAULT_PLAN) for n in self.cohort_names]
        self.exp_w = [p[0] for p in plans]
        self.ctl_w = [p[1] for p in plans]
        self.plan = dict(zip(self.cohort_names, plans, strict=True))
        self.deletion_positions = [i for i, lay in enumerate(layouts) if lay.deleted_path]

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
        r = self.rng.random()
        if r < 0.90:
            return name
        if r < 0.94:
            return name + "."
        if r < 0.97:
            return name.lower() if " " not in name else name.replace(" ", "  ", 1)
        return name.title()

    # ---- profiles: the clinical content of a case ------------------------ #
    def _bg_drugs(self, n: int) -> list[tuple[str, str, list[str]]]:
        out = []
        for _ in range(n):
            name, ai, ind = self.rng.choice(_BACKGROUND)
            out.append((self.drug_text(name), ai, [ind] if self.rng.random() < 0.8 else []))
        return out

    def profile(self, kind: str, year: int, variant: int | None = None) -> dict:
        """A case's content: drugs (name, prod_ai, [indication PTs]), reactions pool, event rate."""
        rng = self.rng
        pr: dict = {"kind": kind, "orphan": None, "reac_pool": _REAC_BG, "event_p": _BG_EVENT_P}
        bont = [b for b in _BONT if b[2] <= year]

        def cohort(weights: list[int]) -> str:
            return rng.choices(self.cohort_names, weights=weights)[0]

        def bont_drug(indis: list[str]) -> tuple[str, str, list[str]]:
            name, ai, _ = rng.choice(bont)
            return (self.drug_text(name), ai, indis)

        def control_drug(c: str) -> tuple[str, str, list[str]]:
            name, ai = rng.choice(_CONTROL.get(c, _GENERIC_CONTROL))
            return (self.drug_text(name), ai, [rng.choice(self.cohort_pts[c])])

        if kind == "background":
            pr["drugs"] = self._bg_drugs(rng.randint(1, 4))
            if rng.random() < 0.04:
                name, ai = rng.choice(_ANTIDEP)
                pr["drugs"].append((self.drug_text(name), ai, [rng.choice(_DEPR_INDI)]))
            if rng.random() < 0.01:
                pr["orphan"] = rng.choice(self.cohort_pts[cohort(self.ctl_w)])
            return pr
        if kind in ("exposed", "exposed_ai_only"):
            c = cohort(self.exp_w)
            pts = [rng.choice(self.cohort_pts[c])]
            if kind == "exposed_ai_only":
                name, ai = rng.choice(_BONT_AI_ONLY)
                drugs = [(name, ai, pts)]
            else:
                drugs = [bont_drug(pts)]
            if rng.random() < 0.15:  # the same cohort's usual treatment beside BoNT: still exposed
                drugs.append(control_drug(c))
            drugs += self._bg_drugs(rng.randint(0, 2))
            rng.shuffle(drugs)
            pr.update(drugs=drugs, reac_pool=_REAC_BONT, event_p=self.plan[c][2])
            return pr
        if kind == "control":
            c = cohort(self.ctl_w)
            drugs = [control_drug(c)] + self._bg_drugs(rng.randint(0, 2))
            rng.shuffle(drugs)
            pr.update(drugs=drugs, event_p=self.plan[c][3])
            return pr
        if kind == "antitoxin":  # antitoxin is not exposure: a control
            c = cohort(self.ctl_w)
            name, ai = rng.choice(_ANTITOXIN) if variant is None else _ANTITOXIN[variant]
            pr.update(drugs=[(name, ai, ["BOTULISM"]), control_drug(c)], event_p=0.1)
            return pr
        if kind == "bont_other_indication":  # neither exposed nor control
            c = cohort(self.ctl_w)
            pr.update(drugs=[bont_drug(["PRODUCT USED FOR UNKNOWN INDICATION"] if rng.random() < 0.6 else []),
                             control_drug(c)], reac_pool=_REAC_BONT, event_p=0.08)
            return pr
        if kind in ("antidep_exposed", "antidep_control"):
            base = self.profile("exposed" if kind == "antidep_exposed" else "control", year)
            name, ai = rng.choice(_ANTIDEP)
            base["drugs"].append((self.drug_text(name), ai, [rng.choice(_ANTIDEP_INDI)]))
            base["kind"] = kind
            base["event_p"] = 0.3
            return base
        if kind in ("deprind_exposed", "deprind_control"):
            base = self.profile("exposed" if kind == "deprind_exposed" else "control", year)
            name, ai = rng.choice(_DEPR_INDI_DRUGS)
            base["drugs"].append((name, ai, [rng.choice(_DEPR_INDI)]))
            base["kind"] = kind
            base["event_p"] = 0.3
            return base
        if kind == "two_cohorts_exposed":
            c1, c2 = rng.sample(self.cohort_names, 2)
            pr.update(drugs=[bont_drug([rng.choice(self.cohort_pts[c1]), rng.choice(self.cohort_pts[c2])])],
                      reac_pool=_REAC_BONT, event_p=min(self.plan[c1][2], self.plan[c2][2]))
            return pr
        if kind == "two_cohorts_control":
            c1, c2 = rng.sample(self.cohort_names, 2)
            pr.update(drugs=[control_drug(c1), control_drug(c2)], event_p=0.1)
            return pr
        if kind == "orphan_indication":  # an INDI row no drug row points to: no cohort
            pr.update(drugs=self._bg_drugs(rng.randint(1, 2)),
                      orphan=rng.choice(self.cohort_pts[cohort(self.ctl_w)]))
            return pr
        raise ValueError(kind)  # pragma: no cover

    # ---- reports -------------------------------------------------------- #
    def fda_dates(self, pos: int, n: int) -> list[str]:
        q = self.quarters[pos]
        y, qn = int(q[:4]), int(q[5])
        out = []
        for _ in range(n):
            m = (qn - 1) * 3 + self.rng.randint(1, 3)
            out.append(f"{y}{m:02d}{self.rng.randint(1, 28):02d}")
        return sorted(out)

    def make_report(self, pos: int, caseid: int, version: int | None, fda_dt: str, pr: dict,
                    person: dict, follow_up: bool, key: int | None = None) -> Report:
        rng = self.rng
        lay = self.layouts[pos]
        era = lay.era
        year = int(self.quarters[pos][:4])
        if era == "legacy":
            if key is None:
                key = self.isr_next
                self.isr_next += 1
        else:
            key = int(f"{caseid}{version}")
        drugs: list[dict[str, str]] = []
        indis: list[tuple[str, str]] = []
        thers: list[dict[str, str]] = []
        roles = _ROLES
        has_ai = lay.has_prod_ai
        for i, (name, ai, inds) in enumerate(pr["drugs"]):
            if era == "legacy":
                seq = str(self.drug_seq_next)
                self.drug_seq_next += 1
            else:
                seq = str(i + 1)
            d = {"drug_seq": seq, "role_cod": "PS" if i == 0 else rng.choice(roles), "drugname": name,
                 "prod_ai": ai if has_ai else ""}
            d.update(rng.choice(_DRUG_FILLERS))
            drugs.append(d)
            for pt in inds:
                indis.append((seq, self.pt_text(pt, era)))
            if rng.random() < 0.4:
                thers.append({"drug_seq": seq, "start_dt": f"{year - 1}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
                              "end_dt": "", "dur": "", "dur_cod": ""})
        if pr["orphan"]:
            if era == "legacy":
                seq = str(self.drug_seq_next)
                self.drug_seq_next += 1
            else:
                seq = str(len(drugs) + 5)
            indis.append((seq, self.pt_text(pr["orphan"], era)))
        reacs = [self.pt_text(pt, era) for pt in rng.sample(pr["reac_pool"], rng.randint(1, 3))]
        if pr["event_p"] and rng.random() < pr["event_p"]:
            reacs.insert(rng.randrange(len(reacs) + 1),
                         self.pt_text(rng.choice(self.study.outcome_pts), era))
        outcs = rng.sample(_OUTC, rng.choice([0, 1, 1, 1, 2]))
        rpsrs = [rng.choice(_RPSR)] if rng.random() < 0.3 else []
        ev = rng.random()
        event_dt = ("" if ev < 0.15 else f"{year - 1}{rng.randint(1, 12):02d}" if ev < 0.25
                    else f"{year - 1}" if ev < 0.3 else "19000101" if ev < 0.31
                    else f"{year - 1}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}")
        country = person["country"]
        demo = {
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
        if era == "legacy":
            demo["image"] = f"{key}-{rng.randint(1, 9)}"
            demo["caseversion"] = ""
        else:
            demo["caseversion"] = str(version)
        return Report(pos, era, key, caseid, version, fda_dt, demo, drugs, indis, reacs, outcs, rpsrs, thers)

    def person(self, caseid: int) -> dict:
        rng = self.rng
        return {"age": str(rng.randint(18, 85)) if rng.random() < 0.8 else "",
                "sex": rng.choice(["F", "F", "M", "M", "UNK", ""]),
                "wt": str(rng.randint(45, 120)) if rng.random() < 0.4 else "",
                "country": rng.choice(_COUNTRY), "occp": rng.choice(_OCCP),
                "mfr": rng.choice(_MFR), "mfr_num": f"US-SYN-{caseid}",
                "rept_cod": rng.choice(["EXP", "EXP", "PER", "DIR", "30DAY"]),
                "init_fda_dt": ""}

    # ---- cases ---------------------------------------------------------- #
    def draw_kind(self) -> str:
        r = self.rng.random()
        if r < 0.80:
            return "background"
        if r < 0.875:
            return "exposed"
        if r < 0.95:
            return "control"
        return self.rng.choice(["antitoxin", "bont_other_indication", "antidep_exposed", "antidep_control",
                                "deprind_exposed", "deprind_control", "two_cohorts_exposed",
                                "two_cohorts_control", "orphan_indication", "exposed_ai_only"])

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

    def build_case(self, idx: int, p0: int, special: str = "") -> tuple[list[Report], int | None]:
        """All reports of one case and the quarter position whose list deletes it (or None)."""
        rng = self.rng
        caseid = self.case_base + idx
        lay0 = self.layouts[p0]
        year0 = int(self.quarters[p0][:4])
        kind = self.draw_kind()
        nver = rng.choices([1, 2, 3, 4], weights=[75, 18, 5, 2])[0]
        positions = None
        start_version = 1 if rng.random() < 0.7 else rng.randint(2, 6)
        dup = rng.random() < 0.04
        damage = ""
        variant = None
        if special:
            dup = False
            if special == "deleted_2004":
                caseid = 4_061_000 + idx % 1000
                kind, positions = "exposed", [p0]
            elif special == "legacy_to_faers":
                kind = "exposed"
                positions = [p0, next(i for i in range(p0 + 1, self.P) if self.layouts[i].era == "faers")]
            elif special == "v9_v10":
                kind, start_version, positions = "control", 9, [p0, p0 + 1]
            elif special == "dup_primaryid":
                kind, positions, dup = "control", [p0], True
            elif special == "older_drugs_differ":
                kind, positions = "control", [p0, p0 + 1]
            elif special == "legacy_same_quarter_tie":
                kind, positions = "exposed", [p0, p0]
            elif special == "version_beats_quarter":
                kind, positions = "control", [p0, p0 + 1]
            elif special == "fda_dt_beats_isr":
                kind, positions = "control", [p0, p0]
            elif special in ("dollar_demo", "break_demo"):
                kind, positions, damage = "background", [p0], special
            elif special == "glue_drug":
                kind, positions, damage = "two_cohorts_control", [p0], special
            elif special == "break_drug":
                kind, positions, damage = "exposed", [p0], special
            elif special == "deleted_exposed":
                kind, positions = "exposed", [p0]
            elif special.startswith("antitoxin:"):
                kind, positions = "antitoxin", [p0]
                variant = int(special.split(":")[1])
            else:
                kind, positions = special, [p0]
        if positions is None:
            positions = self.plan_positions(p0, nver)
        if kind == "exposed_ai_only" and not lay0.has_prod_ai:
            kind = "exposed"
        latest = self.profile(kind, year0, variant)
        person = self.person(caseid)
        # caseversions and dates
        n = len(positions)
        reports: list[Report] = []
        version = start_version
        legacy_count = 0
        dates_by_pos: dict[int, list[str]] = {}
        for p in sorted(set(positions)):
            dates_by_pos[p] = self.fda_dates(p, positions.count(p))
        if special == "legacy_same_quarter_tie":
            dates_by_pos[p0] = [dates_by_pos[p0][0]] * 2
        used: dict[int, int] = {}
        for j, p in enumerate(positions):
            fda_dt = dates_by_pos[p][used.get(p, 0)]
            used[p] = used.get(p, 0) + 1
            last = j == n - 1
            # older versions sometimes carry different drugs than the latest one
            if last:
                pr = latest
            elif special in _OLDER_EXPOSED or rng.random() < 0.25:
                pr = self.profile("exposed" if special in _OLDER_EXPOSED else self.draw_kind(), year0)
            else:
                pr = latest
            if j == 0:
                person["init_fda_dt"] = fda_dt
            if self.layouts[p].era == "legacy":
                rep = self.make_report(p, caseid, None, fda_dt, pr, person, follow_up=j > 0)
                legacy_count += 1
            else:
                if legacy_count and version <= legacy_count:
                    version = legacy_count + 1
                rep = self.make_report(p, caseid, version, fda_dt, pr, person, follow_up=version > 1)
                version += 1 if rng.random() < 0.85 else 2
            reports.append(rep)
        if special == "version_beats_quarter":
            # a later quarter re-releases an older version: caseversion outranks quarter and fda_dt
            a, b = reports
            a.version, b.version = b.version, a.version
            for r in (a, b):
                r.key = int(f"{caseid}{r.version}")
                r.demo["caseversion"] = str(r.version)
        if special == "fda_dt_beats_isr":
            # legacy: the lower ISR has the later FDA_DT, and fda_dt outranks the report key
            a, b = reports
            a.fda_dt, b.fda_dt = a.fda_dt[:6] + "20", a.fda_dt[:6] + "05"
            for r in (a, b):
                r.demo.update(fda_dt=r.fda_dt, rept_dt=r.fda_dt, mfr_dt=r.fda_dt if r.demo["mfr_dt"] else "")
        if damage:
            reports[0].damage = damage
            if damage == "dollar_demo":
                reports[0].demo["mfr_num"] = f"JP-SYNTH-${caseid}"
                reports[0].drugs[0]["dose_vbm"] = "1 DF\x08"  # legacy DRUG files carry 0x08 bytes
        # the same primaryid again in the next quarter (FDA re-releases a report)
        last = reports[-1]
        if dup and last.era == "faers" and last.pos + 1 < self.P and self.layouts[last.pos + 1].era == "faers":
            copy = self.make_report(last.pos + 1, caseid, last.version, last.fda_dt, latest, person,
                                    follow_up=last.version > 1)
            if special == "dup_primaryid":
                # the later copy differs in its reactions: the kept copy's child rows must be used
                outcome = self.pt_text(self.study.outcome_pts[0], "faers")
                last.reacs = [x for x in last.reacs if norm_pt_text(x) not in self.study.outcome_pts]
                copy.reacs = copy.reacs + [outcome]
            copy.demo = dict(last.demo)
            reports.append(copy)
        deleted_at = None
        dels = [d for d in self.deletion_positions if d >= max(r.pos for r in reports)]
        if special in ("deleted_2004", "deleted_exposed"):
            deleted_at = dels[0] if dels else None
        elif not special and dels and rng.random() < 0.02:
            deleted_at = rng.choice(dels)
        return reports, deleted_at


def _specials(layouts: list[Layout]) -> list[tuple[int, str]]:
    """(start position, kind) of the hand-placed cases that carry every quirk once."""
    P = len(layouts)
    legacy = [i for i, lay in enumerate(layouts) if lay.era == "legacy"]
    faers = [i for i, lay in enumerate(layouts) if lay.era == "faers"]
    dels = [i for i, lay in enumerate(layouts) if lay.deleted_path]
    out: list[tuple[int, str]] = []
    for p in legacy:
        out += [(p, "dollar_demo"), (p, "break_demo"), (p, "glue_drug"), (p, "break_drug"),
                (p, "legacy_same_quarter_tie"), (p, "fda_dt_beats_isr")]
    if legacy and dels:
        out.append((legacy[0], "deleted_2004"))
    if legacy and faers and faers[0] - legacy[-1] <= WINDOW:
        out.append((legacy[-1], "legacy_to_faers"))
    pairs = [i for i in faers if i + 1 < P]
    if pairs:
        out += [(pairs[0], "v9_v10"), (pairs[-1], "dup_primaryid"), (pairs[0], "older_drugs_differ"),
                (pairs[-1], "version_beats_quarter")]
    if dels:
        out.append((dels[0], "deleted_exposed"))
    b = [i for i in faers if layouts[i].has_prod_ai]
    if b:
        out.append((b[0], "exposed_ai_only"))
    # every antitoxin decoy where prod_ai is written (where it is not, too)
    out += [(b[-1] if b else 0, f"antitoxin:{v}") for v in range(len(_ANTITOXIN))]
    for k, kind in enumerate(["antitoxin", "bont_other_indication", "antidep_exposed", "antidep_control",
                              "deprind_exposed", "deprind_control", "two_cohorts_exposed",
                              "two_cohorts_control", "orphan_indication"]):
        out.append((k % P, kind))
    return out


_MARKER = ".faerslake-generate"
_CONTAINER = re.compile(r"^f?aers_ascii_\d{4}q[1-4](\.zip)?$", re.I)


def _prepare_dest(dest: Path) -> None:
    """Make ``dest`` ready: quarters of an earlier ``generate`` run there are removed
    (stale quarters would contradict the new truth); anyone else's are refused."""
    dest.mkdir(parents=True, exist_ok=True)
    ours = (dest / _MARKER).exists() or (dest / "_truth.json").exists()
    stale = [p for p in dest.iterdir() if _CONTAINER.match(p.name)]
    if stale and not ours:
        raise InputError(f"{dest} already holds FDA quarters not written by faerslake generate "
                         f"({stale[0].name}); give an empty or new --dest folder")
    (dest / _MARKER).write_text("written by faerslake generate; its quarters are replaced on the next run\n")
    (dest / "_truth.json").unlink(missing_ok=True)
    for p in stale + [p for p in dest.iterdir() if p.name.startswith(".") and p.name.endswith(".partial")]:
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()


def generate(
    dest: Path,
    reports: int,
    seed: int = 20200101,
    quarters: list[str] | None = None,
    as_zip: bool = False,
    log: Callable[[str], None] | None = None,
) -> GenerateSummary:
    """Write ``reports`` synthetic cases over ``quarters`` under ``dest`` and ``dest/_truth.json``.

    ``reports`` counts cases (each has one or more versions, i.e. reports).
    Same seed and arguments give the same bytes.
    """
    log = sink(log, __name__)
    t0 = time.perf_counter()
    c0 = time.process_time()
    dest = Path(dest)
    qs = sorted({parse_quarter(q) for q in (quarters or DEFAULT_QUARTERS)}, key=quarter_index)
    if reports < MIN_REPORTS:
        raise InputError(f"--reports {reports} is too small; give at least {MIN_REPORTS} so every quirk fits")
    study = load_study(default_study_path())
    rng = random.Random(seed)
    layouts = [layout_for(q, i) for i, q in enumerate(qs)]
    _prepare_dest(dest)
    gen = _Gen(rng, qs, layouts, study)
    truth = _Truth(study, qs)
    specials = _specials(layouts)
    n_free = reports - len(specials)
    if n_free < 0:
        raise InputError(f"--reports {reports} is too small for {len(qs)} quarters; give at least {len(specials)}")
    per_pos = [n_free // len(qs) + (1 if i < n_free % len(qs) else 0) for i in range(len(qs))]

    writers: dict[int, _QuarterWriter] = {}
    staging = {i: dest / (f".{lay.container}.partial" if as_zip else lay.container) for i, lay in enumerate(layouts)}
    ingest_truth: list[dict] = []
    deleted_lists: list[dict] = []
    containers: list[str] = []
    # ids on a deleted list that never occur in the data (FDA's lists overlap and reach far back)
    extra_deleted = {d: [1_000_000 + 17 * d + 3] for d in gen.deletion_positions}
    if len(gen.deletion_positions) > 1:
        extra_deleted[gen.deletion_positions[-1]].append(extra_deleted[gen.deletion_positions[0]][0])
    n_reports = 0
    deleted_all: set[int] = set()
    idx = 0

    def writer(p: int) -> _QuarterWriter:
        if p not in writers:
            writers[p] = _QuarterWriter(layouts[p], staging[p])
        return writers[p]

    def finish(p: int) -> None:
        w = writer(p)
        lay = layouts[p]
        entries = w.close(rng, extra_deleted.get(p, []))
        if as_zip:
            name = f"{lay.container}.zip"
            _zip_folder(staging[p], dest / name, lay.quarter)
            shutil.rmtree(staging[p])
            prefix = f"{name}!/"
        else:
            name = lay.container
            prefix = f"{name}/"
        for e in entries:
            e["file"] = prefix + e["file"]
        ingest_truth.extend(entries)
        if w.deleted_info:
            deleted_lists.append({**w.deleted_info, "file": prefix + w.deleted_info["file"]})
        containers.append(name)
        del writers[p]
        log(f"wrote {name} ({lay.quarter})")

    rows = 0
    for p0 in range(len(qs)):
        todo = [k for pos, k in specials if pos == p0] + [""] * per_pos[p0]
        rng.shuffle(todo)  # quirks sit among ordinary cases, not at the top of a file
        for special in todo:
            case_reports, deleted_at = gen.build_case(idx, p0, special)
            idx += 1
            for r in case_reports:
                writer(r.pos).write(r)
            n_reports += len(case_reports)
            if deleted_at is not None:
                writer(deleted_at).deleted.append(case_reports[0].caseid)
                deleted_all.add(case_reports[0].caseid)
                if special == "deleted_exposed" and gen.deletion_positions[-1] > deleted_at:
                    # FDA's lists overlap: the same case again in a later list
                    writer(gen.deletion_positions[-1]).deleted.append(case_reports[0].caseid)
            truth.account_case(case_reports, deleted_at is not None)
        rows += writer(p0).rows
        finish(p0)

    all_deleted = deleted_all | {x for v in extra_deleted.values() for x in v}
    truth_doc = {
        "truth_version": TRUTH_VERSION,
        "generator": {"seed": seed, "reports": reports, "quarters": qs, "as_zip": as_zip},
        "study": study.name,
        "cohort_order": [c.name for c in study.cohorts],
        "cohorts": truth.cohorts,
        "excluded_cohort_reports": truth.excluded_reports,
        "dedup": {"all": truth.dedup_all(), **truth.dedup},
        "ingest": ingest_truth,
        "deleted_cases": {"distinct_caseids": len(all_deleted), "caseids_in_data": len(deleted_all),
                          "lists": deleted_lists},
        "silver_rows": truth.silver,
        "kept_by_era": truth.kept_by_era,
        "containers": containers,
    }
    truth_path = dest / "_truth.json"
    tmp = truth_path.with_name("._truth.json.tmp")
    tmp.write_text(json.dumps(truth_doc, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, truth_path)
    secs = time.perf_counter() - t0
    cpu = time.process_time() - c0
    size = sum((dest / c).stat().st_size if as_zip else
               sum(f.stat().st_size for f in (dest / c).rglob("*") if f.is_file()) for c in containers)
    return GenerateSummary(str(dest), qs, idx, n_reports, rows, size, round(secs, 3),
                           round(rows / secs if secs else 0.0, 1), containers, str(truth_path),
                           cpu_seconds=round(cpu, 3))


__all__ = ["generate", "GenerateSummary", "layout_for", "DEFAULT_QUARTERS", "Report",
           "norm_pt_text", "norm_drug_text", "drug_matches", "report_cohort_flags", "kept_order_key"]
