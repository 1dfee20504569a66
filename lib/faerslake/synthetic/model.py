"""The generator's model of one report: exactly the strings written for it."""

from __future__ import annotations

from dataclasses import dataclass


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
