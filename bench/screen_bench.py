"""``make bench-screen``: ``faerslake screen`` at two sizes, against the DuckDB + numpy yardstick.

Place in the project: outside the pipeline, beside ``bench/run_bench.py``
(whose generated quarters, warehouses and process watcher it reuses). For
sizes S and 4·S (``--reports`` cases) it

1. generates the quarters (reused while ``_truth.json`` matches) and builds
   the lake with ``faerslake run`` (reused when the warehouse holds a
   completed build: ``silver/build_state``; ``--rebuild`` rebuilds),
2. runs ``bench/duckdb_screen.py`` and ``faerslake screen --set
   spark.driver_memory=1g`` on that warehouse, one after the other, each
   watched through ``/proc`` (wall, CPU seconds and peak RSS of its process
   tree),
3. splits the faerslake run into phases from the arrival of its log lines
   (start-up; counting, up to the prior fit; the fit; scoring, the gold
   table, signals.csv and the report; shut-down),
4. checks pair by pair that both give the same set of (drug, pt, a) (and the
   same b, c, d), and reports how far the statistics are apart,
5. prints a table, writes ``bench/results/screen-<UTC date>.json`` with the
   ratios t_faerslake / t_duckdb and t(4·S) / t(S), and a projection of the
   archive from the measured per-triple and per-pair costs.

Exit 1 when a run fails or the pair counts disagree; the speed targets are
reported, not enforced (timings on a shared machine are noisy; the load
average is recorded beside them).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import duckdb_screen  # noqa: E402
import run_bench  # noqa: E402
from run_bench import REPO, RESULTS, VENV_BIN, ensure_source, watched  # noqa: E402

SCREEN = "all_drugs"
TARGETS = {"ratio_vs_duckdb_max": 3.0, "scaling_ratio_max": 4.0}
# The archive (README "Screen performance"): reports, pairs at ingredient level, and
# (report, drug, PT) triples = Σ a over the pairs, the rows the counting joins.
ARCHIVE = {"reports": 20_000_000, "pairs": 5_000_000, "triples_per_report": 18.0, "share_a_ge_3": 0.3}
FIT_LINE = re.compile(r"prior fitted on ([\d,]+) squashed points .* in ([\d.]+) s")
START_LINE = re.compile(r"screen \S+: drugs by ")
END_LINE = re.compile(r"screen \S+: [\d,]+ reports, [\d,]+ pairs")


def _env() -> dict[str, str]:
    """This checkout's lib/ (not whatever the venv's editable install points at, unless PYTHONPATH
    says otherwise); the Delta jars in the checkout's .cache unless FAERSLAKE_CACHE says otherwise."""
    return {"FAERSLAKE_CACHE": os.environ.get("FAERSLAKE_CACHE", str(REPO / ".cache")),
            "PYTHONPATH": os.environ.get("PYTHONPATH") or str(REPO / "lib")}


def ensure_lake(work: Path, driver_memory: str, rebuild: bool, log) -> dict | None:
    """A built warehouse at ``work/wh`` (from ``work/src``); the build's run when one was needed."""
    wh = work / "wh"
    if not rebuild and (wh / "silver" / "build_state" / "_delta_log").is_dir():
        log(f"reusing the lake {wh}")
        return None
    shutil.rmtree(wh, ignore_errors=True)
    cmd = [str(VENV_BIN / "faerslake"), "run", "--source", str(work / "src"), "--warehouse", str(wh),
           "--output", str(work / "out"), "--set", f"spark.driver_memory={driver_memory}"]
    log("$ " + " ".join(cmd))
    r = watched(cmd, work / "faerslake_build.log", env=_env())
    if r["rc"] != 0:
        raise SystemExit("faerslake run failed:\n" + "\n".join(x for _, x in r["lines"][-25:]))
    log(f"built in {r['wall']:.0f} s")
    return {"wall": round(r["wall"], 1), "cpu_seconds": r["cpu_seconds"], "command": " ".join(cmd)}


def run_yardstick(work: Path, log) -> dict:
    out, js = work / "duckdb_screen", work / "duckdb_screen.json"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, str(BENCH / "duckdb_screen.py"), "--warehouse", str(work / "wh"), "--out", str(out),
           "--json", str(js)]
    log("$ " + " ".join(cmd))
    r = watched(cmd, work / "duckdb_screen.log", lambda t, line: log(f"  {t:7.1f}s {line}"))
    r["command"] = " ".join(cmd)
    if r["rc"] == 0:
        r["result"] = json.loads(js.read_text())
    else:
        log("yardstick failed:\n" + "\n".join(x for _, x in r["lines"][-25:]))
    return r


def screen_phases(lines: list[tuple[float, str]], cpu_marks: list[float], wall: float, cpu: float) -> dict:
    """Wall and CPU seconds of the screen's phases, from its log lines' arrival."""
    at: dict[str, tuple[float, float]] = {}
    fit_s = 0.0
    points = None
    for (t, line), c in zip(lines, cpu_marks, strict=True):
        if "start" not in at and START_LINE.search(line):
            at["start"] = (t, c)
        m = FIT_LINE.search(line)
        if m and "fit" not in at:
            at["fit"] = (t, c)
            fit_s, points = float(m.group(2)), int(m.group(1).replace(",", ""))
        if END_LINE.search(line):
            at["end"] = (t, c)
    if not all(k in at for k in ("start", "fit", "end")):
        return {}
    (ts, cs), (tf, cf), (te, ce) = at["start"], at["fit"], at["end"]
    wall_p = {"startup": ts, "count": tf - ts - fit_s, "fit": fit_s, "score_write": te - tf, "shutdown": wall - te}
    # the fit runs on the driver's Python alone: its CPU seconds are its wall seconds
    cpu_p = {"startup": cs, "count": max(cf - cs - fit_s, 0.0), "fit": fit_s, "score_write": ce - cf,
             "shutdown": max(cpu - ce, 0.0)}
    return {"wall": {k: round(v, 2) for k, v in wall_p.items()}, "cpu": {k: round(v, 1) for k, v in cpu_p.items()},
            "squashed_points": points}


def run_screen(work: Path, driver_memory: str, extra: list[str], log) -> dict:
    out = work / "out"
    cmd = [str(VENV_BIN / "faerslake"), "screen", "--warehouse", str(work / "wh"), "--output", str(out),
           "--set", f"spark.driver_memory={driver_memory}", "--top", "10", *extra]
    log("$ " + " ".join(cmd))

    def echo(t: float, line: str) -> None:
        if "screen " in line or "rror" in line:
            log(f"  {t:7.1f}s {line}")

    r = watched(cmd, work / "faerslake_screen.log", echo, _env())
    r["command"] = " ".join(cmd)
    r["phases"] = screen_phases(r["lines"], r["cpu_marks"], r["wall"], r["cpu_seconds"])
    prior = out / f"screen_{SCREEN}" / "prior.json"
    r["prior"] = json.loads(prior.read_text()) if r["rc"] == 0 and prior.exists() else None
    if r["rc"] != 0:
        log("faerslake screen failed; last lines:\n" + "\n".join(x for _, x in r["lines"][-25:]))
    return r


def compare_pairs(wh: Path, yard_pairs: Path) -> dict:
    """faerslake's gold table against the yardstick's pairs: the (drug, pt) found by one only, the
    pairs whose a (or b, c, d) differ, and the largest relative differences of the statistics."""
    snap = duckdb_screen.active_files(wh / "gold" / f"screen_{SCREEN}" / "signals")
    stats = ["expected", "ror", "ror_ci_lower", "prr", "chi2_yates", "ic", "ic025", "ic975", "ebgm", "eb05", "eb95"]
    fl = duckdb_screen.parquet_source(snap, ["drug", "pt", "a", "b", "c", "d", "evans_signal", *stats])
    yp = str(yard_pairs).replace("'", "''")
    rel = ", ".join(f"max(abs(f.{s} - y.{s}) / greatest(abs(y.{s}), 1e-300)) AS {s}" for s in stats)
    con = duckdb.connect()
    row = con.execute(f"""
        SELECT count(*) FILTER (WHERE y.drug IS NULL) AS only_faerslake,
               count(*) FILTER (WHERE f.drug IS NULL) AS only_duckdb,
               count(*) FILTER (WHERE f.a <> y.a) AS a_differs,
               count(*) FILTER (WHERE f.b <> y.b OR f.c <> y.c OR f.d <> y.d) AS bcd_differs,
               count(f.drug) AS faerslake_pairs, count(y.drug) AS duckdb_pairs,
               count(*) FILTER (WHERE (f.evans_signal) IS DISTINCT FROM (y.evans_signal)) AS evans_differs,
               {rel}
        FROM {fl} f
        FULL OUTER JOIN (SELECT * FROM read_parquet('{yp}')) y ON f.drug = y.drug AND f.pt = y.pt""").fetchall()[0]
    cols = ["only_faerslake", "only_duckdb", "a_differs", "bcd_differs", "faerslake_pairs", "duckdb_pairs",
            "evans_differs", *[f"max_rel_diff_{s}" for s in stats]]
    con.close()
    out = dict(zip(cols, row, strict=True))
    out["same_pairs"] = (out["only_faerslake"] == 0 and out["only_duckdb"] == 0 and out["a_differs"] == 0
                         and out["faerslake_pairs"] == out["duckdb_pairs"] > 0)
    out["gold_version"] = snap.version
    return out


def _slim(r: dict) -> dict:
    keep = ("rc", "wall", "cpu_seconds", "peak_jvm_rss_mb", "peak_python_rss_mb", "peak_python_workers_rss_mb",
            "peak_any_rss_mb", "peak_tree_rss_mb", "cpu_seconds_by_process", "command", "phases", "prior", "result")
    return {k: (round(r[k], 2) if isinstance(r[k], float) else r[k]) for k in keep if k in r}


def _line(x0: float, y0: float, x1: float, y1: float) -> tuple[float, float]:
    """(intercept, slope) of the straight line through two points."""
    slope = (y1 - y0) / (x1 - x0) if x1 != x0 else float("nan")
    return y0 - slope * x0, slope


def run_probe(work: Path, driver_memory: str, pairs: list[int], log) -> dict:
    cmd = [sys.executable, str(BENCH / "screen_pairs_probe.py"), "--driver-memory", driver_memory,
           *[x for m in pairs for x in ("--pairs", str(m))]]
    log("$ " + " ".join(cmd))
    r = watched(cmd, work / "screen_pairs_probe.log", lambda t, line: log(f"  {t:7.1f}s {line}"),
                _env())
    out = {"rc": r["rc"], "wall": round(r["wall"], 1), "cpu_seconds": r["cpu_seconds"],
           "peak_jvm_rss_mb": r["peak_jvm_rss_mb"], "command": " ".join(cmd)}
    if r["rc"] == 0:
        out.update(json.loads(r["stdout"].strip().splitlines()[-1]))
    else:
        log("probe failed:\n" + "\n".join(x for _, x in r["lines"][-25:]))
    return out


PARALLEL_PAIR_PHASES = ("fit_and_nll", "score_write", "report_queries")


def project(sizes: list[dict], probe: dict | None) -> dict:
    """The archive's screen from the measured costs (README "Screen performance").

    faerslake, in CPU seconds (robust to a busy machine): the counting phase
    (read silver, the distinct report-drug and report-PT sets, the drug x PT
    join, the margins, the squashed points) is charged to the (report, drug,
    PT) triples (Σ a: the rows of the join), as the straight line through the
    two lake sizes; the per-pair phases (the likelihood over every pair,
    scoring, the gold table, the report's queries) to the pairs, as the line
    through the two sizes of the pairs probe; both divided over the cores.
    Serial on the driver: start-up and shut-down (the 4S run's), the prior
    fit (the probe's larger size's, whose squashed points are archive-like),
    and signals.csv (streamed through the driver's Python: the probe's wall
    seconds per CSV row, for the archive's pairs with a >= 3).
    The yardstick by the same model: DuckDB's counting (all cores: its wall
    seconds on this machine's cores, scaled), numpy's per-pair steps (one core).
    """
    a, b = sizes[0], sizes[-1]
    fa, fb = a["faerslake"], b["faerslake"]
    if a is b or not fa.get("phases") or not fb.get("phases"):
        return {}
    cores_here = os.cpu_count() or 1
    ta, tb = a["triples"], b["triples"]
    arch_t = ARCHIVE["reports"] * ARCHIVE["triples_per_report"]
    arch_p = ARCHIVE["pairs"]
    arch_csv = arch_p * ARCHIVE["share_a_ge_3"]
    ca, cb = fa["phases"]["cpu"], fb["phases"]["cpu"]
    cnt0, cnt1 = _line(ta, ca["count"], tb, cb["count"])
    fixed = cb["startup"] + cb["shutdown"]
    out: dict = {
        "method": " ".join(project.__doc__.split()),
        "archive": {**ARCHIVE, "triples": arch_t, "csv_rows": arch_csv},
        "lakes": {"triples": [ta, tb], "pairs": [a["pairs"], b["pairs"]],
                  "count_cpu_s": [ca["count"], cb["count"]]},
    }
    f = {"count_cpu_s_per_million_triples": round(cnt1 * 1e6, 2), "count_fixed_cpu_s": round(cnt0, 1),
         "startup_shutdown_s": round(fixed, 1)}
    pr = probe or {}
    ps = pr.get("sizes") or []
    if len(ps) >= 2:
        p0, p1 = ps[0], ps[-1]
        m0, m1 = p0["pairs"], p1["pairs"]
        cpu = lambda p: sum(p["faerslake"]["cpu"][k] for k in PARALLEL_PAIR_PHASES)  # noqa: E731
        pp0, pp1 = _line(m0, cpu(p0), m1, cpu(p1))
        csv0, csv1 = _line(p0["faerslake"]["csv_rows"], p0["faerslake"]["wall"]["signals_csv"],
                           p1["faerslake"]["csv_rows"], p1["faerslake"]["wall"]["signals_csv"])
        fit_s = p1["faerslake"].get("fit_seconds") or 0.0  # the driver's L-BFGS-B on the squashed points
        f.update({"pairs_cpu_s_per_million_pairs": round(pp1 * 1e6, 2), "pairs_fixed_cpu_s": round(pp0, 1),
                  "csv_s_per_million_rows": round(csv1 * 1e6, 2), "fit_serial_s": round(max(fit_s, 0.0), 1)})
        for c in (2, 32):
            par = (max(cnt1, 0) * arch_t + max(pp1, 0) * arch_p) / c
            serial = fixed + max(fit_s, 0.0) + max(csv1, 0) * arch_csv
            phase_fixed = max(cnt0, 0) + max(pp0, 0)
            total = serial + phase_fixed / c + par
            f[f"archive_{c}_cores_minutes"] = round(total / 60, 1)
            f[f"archive_{c}_cores_arithmetic"] = (
                f"serial {fixed:.0f} s start/stop + {max(fit_s, 0):.0f} s fit + {csv1 * 1e6:.1f} s/M CSV rows x "
                f"{arch_csv / 1e6:.2f} M rows; parallel ({phase_fixed:.0f} CPU-s phase fixed costs + "
                f"{cnt1 * 1e6:.2f} CPU-s/M triples x {arch_t / 1e6:,.0f} M triples + {pp1 * 1e6:.2f} CPU-s/M pairs x "
                f"{arch_p / 1e6:,.1f} M pairs) / {c} cores = {total / 60:.1f} min")
        ya, yb = a["duckdb"].get("result"), b["duckdb"].get("result")
        if ya and yb:
            steps = ("list_files", "sets", "counts")
            y0, y1 = _line(ta, sum(ya["seconds"][k] for k in steps), tb, sum(yb["seconds"][k] for k in steps))
            yp = lambda p: sum(p["duckdb"]["seconds"][k] for k in ("make_pairs", "fit_and_nll", "score", "write"))  # noqa: E731
            yq0, yq1 = _line(m0, yp(p0), m1, yp(p1))
            start_y = max(b["duckdb"]["wall"] - yb["seconds"]["total"], 0.0)
            y = {"count_s_per_million_triples_here": round(y1 * 1e6, 2),
                 "pairs_s_per_million_pairs_one_core": round(yq1 * 1e6, 2)}
            for c in (2, 32):
                total = start_y + max(y0, 0) + max(y1, 0) * arch_t * cores_here / c + max(yq0, 0) + max(yq1, 0) * arch_p
                y[f"archive_{c}_cores_minutes"] = round(total / 60, 1)
            out["duckdb"] = y
    out["faerslake"] = f
    return out


def report(sizes: list[dict], meta: dict, save: bool, probe: dict | None = None) -> bool:
    ok = all(s["faerslake"]["rc"] == 0 and s["duckdb"]["rc"] == 0 and s["compare"].get("same_pairs")
             for s in sizes)
    print()
    hdr = (f"{'cases':>8} {'reports N':>10} {'pairs':>9} {'triples':>10} {'tool':<9} {'wall s':>7} {'CPU s':>7} "
           f"{'x duckdb':>8} {'peak JVM MB':>11} {'peak tree MB':>12}")
    print(hdr)
    print("-" * len(hdr))
    for s in sizes:
        for tool in ("duckdb", "faerslake"):
            r = s[tool]
            ratio = f"{r['wall'] / s['duckdb']['wall']:8.2f}" if tool == "faerslake" else ""
            print(f"{s['reports']:>8} {s['n_reports']:>10,} {s['pairs']:>9,} {s['triples']:>10,} {tool:<9} "
                  f"{r['wall']:7.1f} {r['cpu_seconds']:7.1f} {ratio:>8} {r.get('peak_jvm_rss_mb', 0):>11} "
                  f"{r.get('peak_tree_rss_mb', 0):>12}")
        ph = s["faerslake"].get("phases") or {}
        if ph:
            print(f"{'':>8} faerslake phases (wall s): {ph['wall']}; CPU s: {ph['cpu']}")
        y = s["duckdb"].get("result")
        if y:
            print(f"{'':>8} duckdb steps (s): {y['seconds']}")
        c = s["compare"]
        print(f"{'':>8} same (drug, pt, a): {c.get('same_pairs')} (only faerslake {c.get('only_faerslake')}, only "
              f"duckdb {c.get('only_duckdb')}, a differs {c.get('a_differs')}, b/c/d differ {c.get('bcd_differs')}); "
              f"max rel. diff EBGM {c.get('max_rel_diff_ebgm')}, EB05 {c.get('max_rel_diff_eb05')}, "
              f"IC025 {c.get('max_rel_diff_ic025')}, ROR {c.get('max_rel_diff_ror')}")
        fp, yp = s["faerslake"].get("prior") or {}, (y or {}).get("prior") or {}
        print(f"{'':>8} nll faerslake {fp.get('neg_log_likelihood')} vs duckdb {yp.get('neg_log_likelihood')}")
    small, big = sizes[0], sizes[-1]
    two = big is not small
    result = {
        **meta,
        "sizes": sizes,
        "ratio_vs_duckdb_S": round(small["faerslake"]["wall"] / small["duckdb"]["wall"], 2),
        "ratio_vs_duckdb_4S": round(big["faerslake"]["wall"] / big["duckdb"]["wall"], 2) if two else None,
        "ratio_vs_duckdb_cpu_4S": (round(big["faerslake"]["cpu_seconds"] / big["duckdb"]["cpu_seconds"], 2)
                                   if two and big["duckdb"]["cpu_seconds"] else None),
        "scaling_ratio": round(big["faerslake"]["wall"] / small["faerslake"]["wall"], 2) if two else None,
        "scaling_ratio_cpu": (round(big["faerslake"]["cpu_seconds"] / small["faerslake"]["cpu_seconds"], 2)
                              if two else None),
        "duckdb_scaling_ratio": round(big["duckdb"]["wall"] / small["duckdb"]["wall"], 2) if two else None,
        "pairs_ratio": round(big["pairs"] / small["pairs"], 2) if two else None,
        "peak_driver_rss_mb": max(s["faerslake"].get("peak_jvm_rss_mb", 0) for s in sizes),
        "pairs_match": ok,
        "pairs_probe": probe,
        "projection": project(sizes, probe) if two else {},
    }
    r4 = result["ratio_vs_duckdb_4S"] if two else result["ratio_vs_duckdb_S"]
    result["targets"] = {"limits": TARGETS, "met": {
        "ratio_vs_duckdb_at_4S": r4 is not None and r4 <= TARGETS["ratio_vs_duckdb_max"],
        "scaling_ratio": two and result["scaling_ratio"] <= TARGETS["scaling_ratio_max"],
        "completes_with_1g_driver_at_4S": two and meta["driver_memory"] == "1g" and big["faerslake"]["rc"] == 0,
        "same_pairs": ok}}
    print()
    print(f"t_faerslake / t_duckdb: {result['ratio_vs_duckdb_S']} at S, {result['ratio_vs_duckdb_4S']} at "
          f"{meta['scale']}S (CPU {result['ratio_vs_duckdb_cpu_4S']}); t({meta['scale']}S)/t(S): faerslake "
          f"{result['scaling_ratio']} (CPU {result['scaling_ratio_cpu']}), duckdb {result['duckdb_scaling_ratio']}; "
          f"pairs x{result['pairs_ratio']}")
    if probe and probe.get("sizes"):
        for ps in probe["sizes"]:
            print(f"pairs probe, {ps['pairs']:,} pairs: faerslake wall {ps['faerslake']['wall']} CPU "
                  f"{ps['faerslake']['cpu']}; yardstick {ps['duckdb']['seconds']}")
    pr = result["projection"]
    if pr and "archive_2_cores_arithmetic" in pr["faerslake"]:
        for c in (2, 32):
            print(f"archive on {c} cores: faerslake {pr['faerslake'][f'archive_{c}_cores_arithmetic']}")
        if "duckdb" in pr:
            print(f"archive, the yardstick: {pr['duckdb']['archive_2_cores_minutes']} min on 2 cores, "
                  f"{pr['duckdb']['archive_32_cores_minutes']} min on 32")
    print(f"targets met: {result['targets']['met']}")
    print(f"load average before/after: {meta['machine']['loadavg_before']} / {meta['machine']['loadavg_after']}")
    if save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"screen-{meta['date'][:10]}.json"
        path.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {path}")
    return ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="faerslake screen vs the DuckDB + numpy yardstick at S and 4·S")
    p.add_argument("--reports", type=int, default=200_000, help="S, in generated cases (default 200000, as make bench)")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--work", type=Path, default=REPO / ".cache" / "bench",
                   help="generated data and warehouses (shared with make bench)")
    p.add_argument("--driver-memory", default="1g")
    p.add_argument("--only-small", action="store_true")
    p.add_argument("--rebuild", action="store_true", help="rebuild the lakes even when built")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra --set for faerslake screen (repeatable)")
    p.add_argument("--probe-pairs", type=int, action="append", default=None, metavar="M",
                   help="pair counts of the per-pair probe (repeatable; default 250000 and 1000000)")
    p.add_argument("--no-probe", action="store_true", help="skip bench/screen_pairs_probe.py")
    p.add_argument("--no-save", action="store_true")
    p.add_argument("--recompute", type=Path, default=None, metavar="RESULTS_JSON",
                   help="re-derive the ratios and the projection from a saved results file (no runs)")
    args = p.parse_args(argv)
    if args.recompute:
        old = json.loads(args.recompute.read_text())
        meta = {k: old[k] for k in ("date", "command", "git_commit", "code_fingerprint", "machine", "reports",
                                    "scale", "driver_memory")}
        meta["recomputed"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        return 0 if report(old["sizes"], meta, not args.no_save, old.get("pairs_probe")) else 1

    def log(msg: str) -> None:
        print(f"[screen-bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()
    sizes = []
    for mult in [1] if args.only_small else [1, args.scale]:
        n = args.reports * mult
        work = args.work / f"n{n}-s{args.seed}"
        work.mkdir(parents=True, exist_ok=True)
        truth = ensure_source(work / "src", n, args.seed, log)
        build = ensure_lake(work, args.driver_memory, args.rebuild, log)
        duck = run_yardstick(work, log)
        fl = run_screen(work, args.driver_memory, [x for o in args.overrides for x in ("--set", o)], log)
        compare = {}
        if duck["rc"] == 0 and fl["rc"] == 0:
            compare = compare_pairs(work / "wh", work / "duckdb_screen" / "pairs.parquet")
            if not compare["same_pairs"]:
                log(f"MISMATCH in the pairs: {compare}")
        y = duck.get("result") or {}
        sizes.append({"reports": n, "source_rows": sum(e["rows_loaded"] for e in truth["ingest"]),
                      "n_reports": y.get("n_reports"), "pairs": y.get("pairs"), "triples": y.get("triples"),
                      "drug_key": y.get("drug_key"), "build": build,
                      "duckdb": _slim(duck), "faerslake": _slim(fl), "compare": compare})
    probe = None
    if not args.no_probe:
        probe = run_probe(args.work, args.driver_memory, args.probe_pairs or [250_000, 1_000_000], log)
    meta = {
        "date": started.isoformat(timespec="seconds"),
        "command": " ".join(["bench/screen_bench.py", *(sys.argv[1:] if argv is None else argv)]),
        "git_commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                     cwd=REPO).stdout.strip(),
        "code_fingerprint": run_bench.code_fingerprint(),
        "machine": {"cores": os.cpu_count() or 1, "python": platform.python_version(),
                    "platform": platform.platform(), "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
        "reports": args.reports, "scale": args.scale, "driver_memory": args.driver_memory,
    }
    ok = report(sizes, meta, not args.no_save, probe)
    return 0 if ok and (probe is None or probe["rc"] == 0) else 1


if __name__ == "__main__":
    sys.exit(main())
