"""The study report: ``OUT/<study>/report.md``, ``report.html``, ``forest_plot.png`` / ``.svg``.

Last step of ``faerslake study`` / ``run`` (called by :func:`faerslake.gold.run_study`).
Everything here is small driver-side data: the per-cohort results, the
de-duplication summary, audit totals, the source manifest and the Delta
versions read. The report is built once as a list of sections (paragraphs,
tables, an image) and rendered to both Markdown and HTML, so the two never
disagree. Any upstream piece may be missing (a study run on a warehouse built
elsewhere): it is then reported as 'not available', never a crash.

- :mod:`.format`: number formatting and the one "None or NaN" test;
- :mod:`.document`: sections, tables, images and the two renderers;
- :mod:`.sections`: the sections (summary first, the long tables in an appendix last);
- :mod:`.context`: :class:`ReportContext` and the upstream tables it summarises;
- :mod:`.plot`: the forest plot;
- :mod:`.console`: the console table of ``faerslake study``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from faerslake.files import atomic_write_bytes, atomic_write_text
from faerslake.quarters import quarter_sort_key
from faerslake.report.console import format_cohort_table, print_cohort_table
from faerslake.report.context import ReportContext, Upstream, read_upstream
from faerslake.report.document import Image, Section, Table, render_html, render_markdown
from faerslake.report.format import fmt_ci, fmt_int, fmt_num, fmt_p, is_null
from faerslake.report.plot import forest_plot_figure, forest_plot_png, forest_plot_svg
from faerslake.report.sections import NOT_AVAILABLE, build_sections

__all__ = [
    "NOT_AVAILABLE", "Image", "ReportContext", "Section", "Table", "Upstream", "build_sections",
    "fmt_ci", "fmt_int", "fmt_num", "fmt_p", "forest_plot_figure", "forest_plot_png", "forest_plot_svg",
    "format_cohort_table", "is_null", "print_cohort_table", "quarter_sort_key", "read_upstream",
    "render_html", "render_markdown", "write_report",
]


def subtitle_of(study: Any) -> str:
    """The report's subtitle: the first line of the study's description."""
    text = (getattr(study, "description", None) or "").strip()
    return text.splitlines()[0].strip() if text else ""


def write_report(out_dir: Path, results_df: pd.DataFrame,
                 context: ReportContext | Mapping[str, Any]) -> dict[str, Path]:
    """Write ``report.md``, ``report.html``, ``forest_plot.png`` and
    ``forest_plot.svg`` into ``out_dir``.

    ``context``: a :class:`ReportContext`, or a dict of its field names (all
    optional). Returns ``{"md", "html", "png", "svg"}`` paths.
    """
    out_dir = Path(out_dir)
    ctx = ReportContext.of(context)
    name = getattr(ctx.study, "name", None) or (
        str(results_df["study"].iloc[0]) if len(results_df) else "study")
    title = f"faerslake study: {name}"
    png_bytes = forest_plot_png(results_df, title=name)
    png = atomic_write_bytes(out_dir / "forest_plot.png", png_bytes)
    svg = atomic_write_bytes(out_dir / "forest_plot.svg", forest_plot_svg(results_df, title=name))
    sections = build_sections(results_df, ctx, png.name, png_bytes)  # the HTML embeds the picture
    subtitle = subtitle_of(ctx.study)
    md = atomic_write_text(out_dir / "report.md", render_markdown(title, sections, subtitle))
    page = atomic_write_text(out_dir / "report.html", render_html(title, sections, subtitle))
    return {"md": md, "html": page, "png": png, "svg": svg}
