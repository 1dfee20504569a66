"""The study report: ``OUT/<study>/report.md``, ``report.html``, ``forest_plot.png``.

Last step of ``faerslake study`` / ``run`` (called by :func:`faerslake.gold.run_study`).
Everything here is small driver-side data: the per-cohort results, the
de-duplication summary, audit totals, the source manifest and the Delta
versions read. The report is built once as a list of sections (paragraphs,
tables, an image) and rendered to both Markdown and HTML, so the two never
disagree. Any upstream piece may be missing (a study run on a warehouse built
elsewhere): it is then reported as 'not available', never a crash.
"""

from __future__ import annotations

import html
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from faerslake.outputs import atomic_write_bytes, atomic_write_text

NOT_AVAILABLE = "not available"


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Image:
    src: str
    alt: str


@dataclass
class Section:
    title: str
    blocks: list[Any] = field(default_factory=list)  # str (paragraph) | Table | Image


# --------------------------------------------------------------------------- #
# formatting
# --------------------------------------------------------------------------- #
def _isnull(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def fmt_num(v: Any, digits: int = 3) -> str:
    """A ratio for people: 3 significant digits, scientific only when tiny or huge."""
    if _isnull(v):
        return "–"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if f != 0 and (abs(f) < 1e-3 or abs(f) >= 1e5):
        return f"{f:.{digits - 1}e}"
    return f"{f:.{digits}g}" if abs(f) < 1 else f"{f:.{digits - 1}f}"


def fmt_p(v: Any) -> str:
    if _isnull(v):
        return "–"
    return f"{float(v):.2e}" if float(v) < 1e-3 else f"{float(v):.3f}"


def fmt_int(v: Any) -> str:
    if _isnull(v):
        return "–"
    return f"{int(v):,}"


def fmt_ci(lo: Any, hi: Any) -> str:
    if _isnull(lo) or _isnull(hi):
        return "–"
    return f"{fmt_num(lo)}–{fmt_num(hi)}"


# --------------------------------------------------------------------------- #
# forest plot
# --------------------------------------------------------------------------- #
def forest_plot_figure(results: pd.DataFrame, title: str = ""):
    """Forest plot of ROR and 95 % CI per cohort (log x axis, line at 1).

    Uses matplotlib's Agg canvas directly (no global backend switch, no
    display). Cohorts without an ROR are listed with 'not estimable'; Haldane
    corrected estimates get an open marker.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    recs = results.to_dict("records")
    n = max(len(recs), 1)
    fig = Figure(figsize=(8.5, 1.2 + 0.45 * n), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ys = list(range(len(recs)))[::-1]
    labels, finite = [], []
    for y, r in zip(ys, recs, strict=True):
        labels.append(f"{r['cohort']} (n={int(r['exposed_reports']):,} / {int(r['control_reports']):,})")
        if _isnull(r["ror"]):
            continue
        finite += [r["ror_ci_lower"], r["ror_ci_upper"], r["ror"]]
        lo, hi = r["ror"] - r["ror_ci_lower"], r["ror_ci_upper"] - r["ror"]
        ax.errorbar([r["ror"]], [y], xerr=[[lo], [hi]], fmt="o", color="black", ecolor="black",
                    capsize=3, markerfacecolor="white" if r["haldane_corrected"] else "black")
    ax.set_xscale("log")
    if finite:
        lo, hi = min(min(finite), 1.0), max(max(finite), 1.0)
        ax.set_xlim(lo / 1.6, hi * 1.6)
    else:
        ax.set_xlim(0.1, 10)
    xmin = ax.get_xlim()[0]
    for y, r in zip(ys, recs, strict=True):
        if _isnull(r["ror"]):
            ax.text(xmin * 1.05, y, "not estimable", va="center", fontsize=8, color="grey")
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=9)
    ax.set_ylim(-0.7, len(recs) - 0.3)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.set_xlabel("reporting odds ratio (95 % CI), log scale; n = exposed / control reports"
                  + ("; open marker: Haldane-corrected" if any(r["haldane_corrected"] for r in recs) else ""))
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def forest_plot_png(results: pd.DataFrame, title: str = "") -> bytes:
    """:func:`forest_plot_figure` as PNG bytes."""
    buf = io.BytesIO()
    forest_plot_figure(results, title).savefig(buf, format="png")
    return buf.getvalue()


# --------------------------------------------------------------------------- #
# sections
# --------------------------------------------------------------------------- #
def _results_table(results: pd.DataFrame) -> Table:
    header = ["cohort", "exposed", "exposed events", "control", "control events", "ROR",
              "95 % CI", "Haldane", "Fisher p", "BH q", "PRR"]
    rows = [[str(r["cohort"]), fmt_int(r["exposed_reports"]), fmt_int(r["exposed_events"]),
             fmt_int(r["control_reports"]), fmt_int(r["control_events"]), fmt_num(r["ror"]),
             fmt_ci(r["ror_ci_lower"], r["ror_ci_upper"]), "yes" if r["haldane_corrected"] else "no",
             fmt_p(r["fisher_p"]), fmt_p(r["fisher_q"]), fmt_num(r.get("prr"))]
            for r in results.to_dict("records")]
    return Table(header, rows)


def _published_section(results: pd.DataFrame, published: dict[str, dict[str, Any]]) -> Section:
    sec = Section("Published figures beside ours")
    if not published:
        sec.blocks.append(f"The study file has no `published` section: {NOT_AVAILABLE}.")
        return sec
    sec.blocks.append("Published: the figures in the study file's `published` section "
                      "(for the default study: Makunts, Wollmer & Abagyan, Sci Rep 2020, FAERS 2004–2019).")
    header = ["cohort", "exposed (ours)", "exposed (published)", "control (ours)",
              "control (published)", "ROR (ours)", "ROR (published)", "note"]
    rows = []
    ours = {r["cohort"]: r for r in results.to_dict("records")}
    for cohort in list(ours) + [c for c in published if c not in ours]:
        r = ours.get(cohort, {})
        p = published.get(cohort) or {}
        pub_ror = fmt_num(p.get("ror")) if "ror" in p else "–"
        if "ror_ci_lower" in p and "ror_ci_upper" in p:
            pub_ror += f" ({fmt_ci(p['ror_ci_lower'], p['ror_ci_upper'])})"
        our_ror = fmt_num(r.get("ror"))
        if r and not _isnull(r.get("ror")):
            our_ror += f" ({fmt_ci(r['ror_ci_lower'], r['ror_ci_upper'])})"
        rows.append([str(cohort), fmt_int(r.get("exposed_reports")), fmt_int(p.get("exposed_reports")),
                     fmt_int(r.get("control_reports")), fmt_int(p.get("control_reports")),
                     our_ror, pub_ror, str(p.get("note", ""))])
    sec.blocks.append(Table(header, rows))
    return sec


def _data_section(ctx: dict[str, Any]) -> Section:
    sec = Section("Data")
    quarters = ctx.get("quarters")
    qt = ctx.get("quarters_text") or (", ".join(quarters) if quarters else None)
    sec.blocks.append(f"Quarters covered: {qt or NOT_AVAILABLE}"
                      + (f" ({len(quarters)} quarter{'s' if len(quarters) != 1 else ''})." if quarters else "."))
    failed = ctx.get("failed_quarters") or {}
    if failed:
        sec.blocks.append(f"Warning: {len(failed)} quarter{'s' if len(failed) != 1 else ''} could not be ingested "
                          "in this run and are missing from every count below (also in "
                          "`ingest_failures.csv`):")
        sec.blocks.append(Table(["quarter", "reason"], [[q, r] for q, r in sorted(failed.items())]))
    audit = ctx.get("audit_totals")
    if audit:
        header = ["table files", "quarters", "lines read", "rows loaded", "rows repaired",
                  "lines repaired", "rows quarantined"]
        keys = ["table_files", "quarters", "lines_read", "rows_loaded", "rows_repaired",
                "lines_repaired", "rows_quarantined"]
        sec.blocks.append("Ingest audit totals (`bronze/ingest_audit`):")
        sec.blocks.append(Table(header, [[fmt_int(audit.get(k)) for k in keys]]))
    else:
        sec.blocks.append(f"Ingest audit totals: {NOT_AVAILABLE}.")
    dedup = ctx.get("dedup_summary")
    if dedup is not None and len(dedup):
        cols = [c for c in ["scope", "reports_read", "removed_deleted", "removed_older_versions",
                            "removed_strict_duplicates", "reports_kept"] if c in dedup.columns]
        sec.blocks.append("De-duplication (`silver/dedup_summary`; spec §2):")
        sec.blocks.append(Table(
            [c.replace("_", " ") for c in cols],
            [[str(r[c]) if c == "scope" else fmt_int(r[c]) for c in cols] for r in dedup.to_dict("records")],
        ))
    else:
        sec.blocks.append(f"De-duplication summary: {NOT_AVAILABLE}.")
    return sec


def _definition_section(study: Any) -> Section:
    sec = Section("Study definition")
    if study is None:
        sec.blocks.append(NOT_AVAILABLE)
        return sec
    ex = study.exclusions
    sec.blocks += [
        study.description.strip() if study.description else "",
        f"Exposure tokens: {', '.join(study.exposure.tokens)}; exclusion tokens: "
        f"{', '.join(study.exposure.exclude_tokens) or 'none'}; role codes: "
        f"{', '.join(study.exposure_role_codes) if study.exposure_role_codes else 'any'}.",
        f"Event (any REAC PT): {', '.join(study.outcome_pts)}.",
        "Exclusions: " + (
            ("reports with an outcome PT as indication; " if ex.outcome_indications else "")
            + f"reports with a drug matching {len(ex.drug_tokens)} tokens"
            if ex.enabled else "off") + ".",
        f"Period: {study.period or 'all quarters in the warehouse'}.",
        Table(["cohort", "indication PTs"], [[c.name, ", ".join(c.indications)] for c in study.cohorts]),
    ]
    sec.blocks = [b for b in sec.blocks if b != ""]
    return sec


def _provenance_section(ctx: dict[str, Any]) -> Section:
    sec = Section("Provenance")
    study = ctx.get("study")
    src = getattr(study, "source_path", None)
    sha = getattr(study, "sha256", None)
    sec.blocks.append(f"Study file: `{src or NOT_AVAILABLE}`, sha256 `{sha or NOT_AVAILABLE}`.")
    sec.blocks.append(f"Warehouse: `{ctx.get('warehouse') or NOT_AVAILABLE}`; faerslake "
                      f"{ctx.get('faerslake_version', '?')}; generated {ctx.get('generated_at', '?')}.")
    versions = ctx.get("table_versions") or {}
    if versions:
        sec.blocks.append("Delta table versions (read the same data again with "
                          "`spark.read.format(\"delta\").option(\"versionAsOf\", N).load(WH/<table>)`):")
        sec.blocks.append(Table(["table", "version"],
                                [[k, NOT_AVAILABLE if v is None else str(v)] for k, v in versions.items()]))
    else:
        sec.blocks.append(f"Delta table versions: {NOT_AVAILABLE}.")
    manifest = ctx.get("source_manifest")
    if manifest is not None and len(manifest):
        cols = [c for c in ["quarter", "source", "sha256", "size_bytes"] if c in manifest.columns]
        m = manifest.copy()
        if "quarter" in m.columns:
            m = m.sort_values([c for c in ("quarter", "source") if c in m.columns])
        sec.blocks.append("Source files (`bronze/source_manifest`):")
        sec.blocks.append(Table(cols, [[fmt_int(r[c]) if c == "size_bytes" else str(r[c]) for c in cols]
                                       for r in m.to_dict("records")]))
    else:
        sec.blocks.append(f"Source manifest SHA-256s: {NOT_AVAILABLE}.")
    return sec


def _mh_section(mh: pd.DataFrame | None) -> Section:
    sec = Section("Mantel–Haenszel pooled ROR (extra)")
    if mh is None or not len(mh):
        sec.blocks.append(f"Mantel–Haenszel pooled ROR: {NOT_AVAILABLE}.")
        return sec
    sec.blocks.append(f"Strata: {mh['strata'].iloc[0]}; Robins–Breslow–Greenland 95 % CI; "
                      "strata with fewer than 2 reports are skipped.")
    sec.blocks.append(Table(
        ["cohort", "strata used", "crude ROR", "MH ROR", "95 % CI"],
        [[str(r["cohort"]), fmt_int(r["strata_used"]), fmt_num(r["crude_ror"]), fmt_num(r["mh_ror"]),
          fmt_ci(r["mh_ci_lower"], r["mh_ci_upper"])] for r in mh.to_dict("records")],
    ))
    return sec


def build_sections(results: pd.DataFrame, ctx: dict[str, Any], plot_name: str | None) -> list[Section]:
    study = ctx.get("study")
    res = Section("Cohort results", [
        "a = exposed with event, b = exposed without, c = controls with event, d = controls without; "
        "ROR = (a/b)/(c/d) with exp(ln ROR ± 1.959964·SE); Haldane: 0.5 added to every cell when one "
        "is 0; – = not estimable (a whole row or column is 0). Fisher p is two-sided on the "
        "uncorrected table; q is Benjamini–Hochberg over the cohorts with a p-value.",
        _results_table(results),
    ])
    if plot_name:
        res.blocks.append(Image(plot_name, "forest plot of ROR per cohort"))
    sections = [res, _published_section(results, getattr(study, "published", {}) or {}),
                _mh_section(ctx.get("mantel_haenszel")), _data_section(ctx),
                _definition_section(study), _provenance_section(ctx)]
    return sections


# --------------------------------------------------------------------------- #
# renderers
# --------------------------------------------------------------------------- #
def _md_cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def render_markdown(title: str, sections: list[Section]) -> str:
    out = [f"# {title}", ""]
    for sec in sections:
        out += [f"## {sec.title}", ""]
        for b in sec.blocks:
            if isinstance(b, Table):
                out.append("| " + " | ".join(_md_cell(h) for h in b.header) + " |")
                out.append("|" + "|".join("---" for _ in b.header) + "|")
                out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            elif isinstance(b, Image):
                out.append(f"![{b.alt}]({b.src})")
            else:
                out.append(str(b))
            out.append("")
    return "\n".join(out)


def _inline_html(text: str) -> str:
    """Escape, then turn `code` spans into <code>."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def render_html(title: str, sections: list[Section]) -> str:
    out = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:2px 8px}"
        "td{text-align:right}td:first-child{text-align:left}th{background:#eee}"
        "code{font-size:90%}</style>",
        "</head><body>", f"<h1>{html.escape(title)}</h1>",
    ]
    for sec in sections:
        out.append(f"<h2>{html.escape(sec.title)}</h2>")
        for b in sec.blocks:
            if isinstance(b, Table):
                out.append("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in b.header)
                           + "</tr></thead><tbody>")
                out += ["<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in row) + "</tr>"
                        for row in b.rows]
                out.append("</tbody></table>")
            elif isinstance(b, Image):
                out.append(f'<p><img src="{html.escape(b.src)}" alt="{html.escape(b.alt)}"></p>')
            else:
                out.append(f"<p>{_inline_html(str(b))}</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(out_dir: Path, results_df: pd.DataFrame, context: dict[str, Any]) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``forest_plot.png`` into ``out_dir``.

    ``context`` keys (all optional): ``study`` (config.Study), ``warehouse``,
    ``quarters`` (list), ``quarters_text``, ``dedup_summary`` (pandas),
    ``audit_totals`` (dict), ``source_manifest`` (pandas), ``table_versions``
    (dict table -> version), ``mantel_haenszel`` (pandas), ``faerslake_version``,
    ``generated_at``. Returns ``{"md", "html", "png"}`` paths.
    """
    out_dir = Path(out_dir)
    study = context.get("study")
    name = getattr(study, "name", None) or (
        str(results_df["study"].iloc[0]) if len(results_df) else "study")
    title = f"faerslake study: {name}"
    png = atomic_write_bytes(out_dir / "forest_plot.png", forest_plot_png(results_df, title=name))
    sections = build_sections(results_df, context, png.name)
    md = atomic_write_text(out_dir / "report.md", render_markdown(title, sections))
    page = atomic_write_text(out_dir / "report.html", render_html(title, sections))
    return {"md": md, "html": page, "png": png}
