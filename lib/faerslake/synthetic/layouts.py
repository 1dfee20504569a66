"""FDA's release layouts per era and quarter, as the generator writes them.

Legacy AERS up to 2012Q3, FAERS version A 2012Q4-2014Q2, version B from
2014Q3, with the per-quarter quirks of ``faers-format.md``: file and folder
names, header spellings, trailing ``$``, line ends, a BOM, the deleted-case
list and the files beside the tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from faerslake.quarters import era_of, parse_quarter, quarter_index

TABLES = ("demo", "drug", "reac", "outc", "rpsr", "ther", "indi")

# (header name as FDA wrote it, value key) per table and era
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

_PDF = b"%PDF-1.4\n% faerslake synthetic placeholder: not data, to be ignored\n%%EOF\n"


def _faers_demo(b: bool, first: bool, key: list[tuple[str, str]]) -> list[tuple[str, str]]:
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
    return demo


def _faers_columns(q: str) -> dict[str, list[tuple[str, str]]]:
    b = quarter_index(q) >= quarter_index("2014Q3")
    first = q == "2012Q4"
    key = [("primaryid", "primaryid"), ("caseid", "caseid")]
    drug = key + [("drug_seq", "drug_seq"), ("role_cod", "role_cod"), ("drugname", "drugname")]
    drug += [("prod_ai", "prod_ai")] if b else []
    drug += [("val_vbm", "val_vbm"), ("route", "route"), ("dose_vbm", "dose_vbm"),
             ("cum_dose_chr", "cum_dose_chr"), ("cum_dose_unit", "cum_dose_unit"),
             ("dechal", "dechal"), ("rechal", "rechal"),
             ("lot_nbr" if first else "lot_num", "lot_num"), ("exp_dt", "exp_dt"),
             ("nda_num", "nda_num"), ("dose_amt", "dose_amt"), ("dose_unit", "dose_unit"),
             ("dose_form", "dose_form"), ("dose_freq", "dose_freq")]
    return {
        "demo": _faers_demo(b, first, key),
        "drug": drug,
        "reac": key + [("pt", "pt")] + ([("drug_rec_act", "drug_rec_act")] if b else []),
        "outc": key + [("outc_code" if first else "outc_cod", "outc_cod")],
        "rpsr": key + [("rpsr_cod", "rpsr_cod")],
        "ther": key + [("dsg_drug_seq", "drug_seq"), ("start_dt", "start_dt"), ("end_dt", "end_dt"),
                       ("dur", "dur"), ("dur_cod", "dur_cod")],
        "indi": key + [("indi_drug_seq", "drug_seq"), ("indi_pt", "indi_pt")],
    }


@dataclass(frozen=True)
class ReleaseLayout:
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


def layout_for(quarter: str, pos: int = 0) -> ReleaseLayout:
    """FDA's layout of ``quarter`` as this generator writes it (see module docs)."""
    q = parse_quarter(quarter)
    return _legacy_layout(q, pos) if era_of(q) == "legacy" else _faers_layout(q, pos)


def _legacy_layout(q: str, pos: int) -> ReleaseLayout:
    year, qn = int(q[:4]), int(q[5])
    yy = f"{year % 100:02d}"
    cols = {"demo": list(_LEGACY_DEMO), **_LEGACY}
    if quarter_index(q) >= quarter_index("2005Q3"):
        cols["demo"] = cols["demo"] + [("REPORTER_COUNTRY", "reporter_country")]
    files = {t: f"{t.upper()}{yy}Q{qn}.TXT" for t in TABLES}
    extras = (("ascii/ASC_NTS.pdf", _PDF),
              (f"ascii/STAT{yy}Q{qn}.TXT", f"STAT{yy}Q{qn}\r\nsynthetic\r\n".encode()),
              ("README.TXT", b"faerslake synthetic legacy AERS quarter; not FDA data.\r\n"))
    return ReleaseLayout(q, pos, "legacy", f"aers_ascii_{year}q{qn}", "ascii", files, cols,
                         trailing_header=False, trailing_row=True, eol="\r\n",
                         bom_tables=frozenset(), deleted_path=None, extras=extras)


def _deleted_list_path(q: str) -> str | None:
    year, qn = int(q[:4]), int(q[5])
    yy = f"{year % 100:02d}"
    if quarter_index(q) < quarter_index("2019Q1"):
        return None
    if year == 2020:
        return f"deleted/{yy}Q{qn}DeletedCases.txt"
    if year == 2021 and qn < 4:
        return f"DELETED/ADR{yy}Q{qn}DeletedCases.txt"
    return f"Deleted/DELETE{yy}Q{qn}.txt"


def _faers_layout(q: str, pos: int) -> ReleaseLayout:
    qi = quarter_index(q)
    year, qn = int(q[:4]), int(q[5])
    yy = f"{year % 100:02d}"
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
    extras = ((f"{data_dir}/ASC_NTS.pdf", _PDF), (f"{data_dir}/DEMO{yy}Q{qn}.pdf", _PDF),
              ("Readme.pdf", _PDF), ("FAQs.pdf", _PDF))
    return ReleaseLayout(q, pos, "faers", f"faers_ascii_{year}{'Q' if year >= 2019 else 'q'}{qn}",
                         data_dir, files, cols, trailing_header=trailing, trailing_row=trailing,
                         eol="\n" if q == "2017Q4" else "\r\n",
                         bom_tables=frozenset({"drug"}) if q == "2012Q4" else frozenset(),
                         deleted_path=_deleted_list_path(q), extras=extras, has_prod_ai=has_ai)
