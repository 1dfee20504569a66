"""The screen's report (docs/screen.md §3): N, the pairs, the prior, the top
signals, a picture of the whole screen and the Delta versions read.

``report.html`` carries its picture as a data URI, so the file stands alone;
``report.md`` links ``screen_plot.png`` beside it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from faerslake.files import atomic_write_bytes, atomic_write_text
from faerslake.report.document import Image, Section, Table, render_html, render_markdown
from faerslake.report.format import fmt_ci, fmt_int, fmt_num, is_null

LABELLED = 5  # top signals named on the picture


def screen_plot_png(ctx: Any) -> bytes:
    """EB05 against a, both log scale: the whole screen as a 2-D histogram
    (grey, darker = more pairs), the study's exposure pairs in red, the
    EB05 = 2 line, the top signals named."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    g = 50.0  # cells per decade, as faerslake.screen.job.GRID_PER_DECADE
    fig = Figure(figsize=(9, 6), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    grid = ctx.grid
    if len(grid):
        x = 10 ** ((grid["x"].to_numpy() + 0.5) / g)
        y = 10 ** ((grid["y"].to_numpy() + 0.5) / g)
        n = grid["pairs"].to_numpy().astype(float)
        sc = ax.scatter(x, y, c=np.log10(n), s=6, marker="s", cmap="Greys", vmin=-1.0, linewidths=0,
                        label="all pairs (grey: log10 pairs per cell)")
        fig.colorbar(sc, ax=ax, label="log10 pairs per cell")
    hl = ctx.highlight
    if len(hl):
        keep = hl[hl["eb05"] > 0]
        name = getattr(ctx.study, "name", "study")
        ax.scatter(keep["a"], keep["eb05"], s=10, color="tab:red", alpha=0.7,
                   label=f"exposure of study {name}")
    for r in ctx.top.head(LABELLED).to_dict("records"):
        if not is_null(r["eb05"]) and r["eb05"] > 0:
            ax.annotate(f"{r['drug']} / {r['pt']}", (r["a"], r["eb05"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points", annotation_clip=True, parse_math=False)
    ax.axhline(2.0, color="tab:blue", lw=0.8, ls="--", label="EB05 = 2")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("a: reports with the drug and the event")
    ax.set_ylabel("EB05 (lower 5 % limit of the EBGM)")
    ax.set_title(f"screen {ctx.screen.name}: {ctx.pairs:,} pairs over {ctx.n_reports:,} reports", fontsize=10,
                 parse_math=False)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def screen_sections(ctx: Any, image_src: str, image: bytes | None = None) -> list[Section]:
    s = ctx.screen
    p = ctx.prior
    overview = Section("Screen", [
        f"Screen `{s.name}`" + (f": {s.description}" if s.description else "") + ".",
        Table(["item", "value"], [
            ["reports screened (N)", fmt_int(ctx.n_reports)],
            ["drug–event pairs (a >= 1)", fmt_int(ctx.pairs)],
            [f"pairs in signals.csv (a >= {s.csv_min_reports})", fmt_int(ctx.pairs_in_csv)],
            ["drug key", ctx.drug_key],
            ["drug roles counted", ", ".join(s.roles) if s.roles else "every role"],
            ["period", s.period or "every quarter of the build"],
            ["strata of E", ", ".join(s.stratify) or "none"],
        ]),
    ])
    prior = Section("Prior (MGPS, DuMouchel)", [
        Table(["alpha1", "beta1", "alpha2", "beta2", "p", "N*", "pairs fitted", "neg. log-likelihood",
               "converged"],
              [[fmt_num(p.alpha1, 6), fmt_num(p.beta1, 6), fmt_num(p.alpha2, 6), fmt_num(p.beta2, 6),
                fmt_num(p.p, 6), str(p.n_star), fmt_int(p.pairs), fmt_num(p.neg_log_likelihood, 8),
                "yes" if p.converged else "no"]]),
        f"Fitted on {fmt_int(p.points)} squashed points by {p.optimizer}; the log-likelihood above is over "
        "every pair, unsquashed.",
    ])
    rows = []
    for r in ctx.top.to_dict("records"):
        rows.append([str(r["drug"]), str(r["pt"]), fmt_int(r["a"]), fmt_num(r["expected"], 3),
                     fmt_num(r["ebgm"], 3), fmt_ci(r["eb05"], r["eb95"]), fmt_num(r["ic"], 3),
                     fmt_ci(r["ic025"], r["ic975"]), fmt_num(r["ror"], 3), fmt_ci(r["ror_ci_lower"], r["ror_ci_upper"]),
                     fmt_num(r["prr"], 3), "yes" if r["evans_signal"] else "no"])
    top = Section(f"Top {len(rows)} signals by EB05", [
        Table(["drug", "PT", "a", "E", "EBGM", "EB05 – EB95", "IC", "IC025 – IC975", "ROR", "ROR 95 % CI", "PRR",
               "Evans"], rows) if rows else "No pair reaches the listing threshold.",
    ])
    picture = Section("The whole screen", [
        Image(image_src, "EB05 against a for every pair of the screen", data=image),
        "Each grey square is a cell of pairs with about the same a and EB05 (darker: more pairs); red points "
        "are the pairs of the study's exposure drugs; the dashed line is EB05 = 2, the usual screening threshold.",
    ])
    prov = Section("Provenance", [
        Table(["table", "Delta version"], [[k, fmt_int(v)] for k, v in ctx.table_versions.items()]),
        f"Warehouse `{ctx.warehouse}`; faerslake {ctx.faerslake_version}; screen file "
        f"`{s.source_path or 'command line'}` (sha256 {s.sha256 or '-'}); generated {ctx.generated_at}.",
    ])
    return [overview, top, picture, prior, prov]


def write_screen_report(out_dir: Path, ctx: Any) -> dict[str, Path]:
    """``screen_plot.png``, ``report.md`` and a self-contained ``report.html``."""
    out_dir = Path(out_dir)
    data = screen_plot_png(ctx)
    png = atomic_write_bytes(out_dir / "screen_plot.png", data)
    title = f"faerslake screen: {ctx.screen.name}"
    sections = screen_sections(ctx, png.name, data)
    md = atomic_write_text(out_dir / "report.md", render_markdown(title, sections))
    page = atomic_write_text(out_dir / "report.html", render_html(title, sections))
    return {"md": md, "html": page, "png": png}
