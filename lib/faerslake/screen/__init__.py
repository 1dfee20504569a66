"""The signal screen (docs/screen.md): every drug against every reaction PT of
the lake, with ROR, PRR, Yates' χ², IC (BCPNN) and EBGM (MGPS).

- :mod:`.counts`: Spark — the screen set, the pairs, the expected counts, the
  frequentist statistics, the squashed points of the prior fit;
- :mod:`.mgps`: numpy / scipy — the two-gamma prior's likelihood and fit, the
  posterior (EBGM, EB05, EB95) and the IC's interval, applied to Arrow batches;
- :mod:`.job`: ``faerslake screen`` — pinned silver in, gold table, CSV,
  prior and report out.
"""

from __future__ import annotations

from typing import Any


def print_top_signals(result: Any, n: int = 10) -> None:
    """The top ``n`` signals by EB05 on stdout (``faerslake screen``, ``make run``)."""
    from faerslake.report.format import fmt_ci, fmt_num

    top = result.top.head(n)
    print(f"screen {result.name}: {result.n_reports:,} reports, {result.pairs:,} drug–event pairs "
          f"(drugs by {result.drug_key}); top {len(top)} by EB05:")
    rows = [["drug", "PT", "a", "E", "EBGM", "EB05-EB95", "ROR [95% CI]"]]
    for r in top.to_dict("records"):
        rows.append([str(r["drug"])[:40], str(r["pt"])[:40], f"{int(r['a']):,}", fmt_num(r["expected"], 2),
                     fmt_num(r["ebgm"], 2), fmt_ci(r["eb05"], r["eb95"]),
                     f"{fmt_num(r['ror'], 2)} {fmt_ci(r['ror_ci_lower'], r['ror_ci_upper'])}"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))),
              flush=True)


def run_screen(*args: Any, **kwargs: Any) -> Any:
    """:func:`faerslake.screen.job.run_screen` (imported when called: Spark)."""
    from faerslake.screen.job import run_screen as _run

    return _run(*args, **kwargs)


__all__ = ["print_top_signals", "run_screen"]
