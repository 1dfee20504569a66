"""The ``faerslake`` command line.

Every subcommand is also a thin job under ``jobs/`` for ``spark-submit``.
Arguments are read with ``parse_known_args`` so that the extra arguments
Spark or Databricks add do not break a run. A :class:`FaerslakeError` is
printed as one sentence with a non-zero exit code; other exceptions keep
their trace (they are bugs).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from faerslake import DELTA_MAVEN, DELTA_VERSION, __version__
from faerslake.config import DEFAULT_STUDY, load_pipeline_config, load_study
from faerslake.errors import FaerslakeError
from faerslake.quarters import quarter_range


def log(msg: str) -> None:
    """Progress lines go to stderr so stdout stays for results."""
    print(f"[faerslake {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--conf-file", default=None,
                   help="pipeline settings YAML (default: conf/pipeline.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set spark.driver_memory=8g (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faerslake",
        description="FAERS / legacy AERS quarterly releases into Delta Lake, de-duplicated, "
        "with indication-matched cohort studies.",
    )
    parser.add_argument("--version", action="version", version=f"faerslake {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("download", help="fetch FDA's quarterly zips (resumable, verified)")
    p.add_argument("--quarters", required=True, help="e.g. 2004Q1:2026Q2")
    p.add_argument("--dest", required=True, help="folder for the zips and manifest.json")
    p.add_argument("--base-url", default=None, help="override FDA's export URL (mirrors, tests)")
    p.add_argument("--retries", type=int, default=5)
    _common(p)

    p = sub.add_parser("generate", help="write synthetic quarters in FDA's exact layouts")
    p.add_argument("--dest", required=True)
    p.add_argument("--reports", type=int, default=5000, help="number of cases (default 5000)")
    p.add_argument("--seed", type=int, default=20200101)
    p.add_argument("--quarters", default=None,
                   help="e.g. 2012Q2:2012Q4,2019Q1 (default 2012Q2,2012Q3,2012Q4,2014Q3,2019Q1: both eras, every quirk)")
    p.add_argument("--zip", action="store_true", help="write FDA-style zips instead of folders")
    _common(p)

    p = sub.add_parser("ingest", help="zips / quarter folders -> bronze Delta tables")
    p.add_argument("--source", required=True, help="folder or URI with FDA zips and/or quarter folders")
    p.add_argument("--warehouse", required=True)
    p.add_argument("--quarters", default=None, help="only these, e.g. 2004Q1:2019Q2")
    p.add_argument("--force", action="store_true", help="re-ingest unchanged sources too")
    _common(p)

    p = sub.add_parser("build", help="bronze -> silver: one schema, de-duplicated cases")
    p.add_argument("--warehouse", required=True)
    p.add_argument("--strict-dedup", action="store_true", default=None,
                   help="also merge look-alike reports of different cases (spec §2)")
    _common(p)

    p = sub.add_parser("study", help="silver -> gold: cohorts, statistics, report")
    p.add_argument("--warehouse", required=True)
    p.add_argument("--study", default=str(DEFAULT_STUDY), help="study YAML")
    p.add_argument("--output", required=True)
    _common(p)

    p = sub.add_parser("run", help="ingest -> build -> study in one command")
    p.add_argument("--source", required=True)
    p.add_argument("--warehouse", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--study", default=str(DEFAULT_STUDY))
    p.add_argument("--quarters", default=None)
    p.add_argument("--force", action="store_true")
    p.add_argument("--strict-dedup", action="store_true", default=None)
    _common(p)

    p = sub.add_parser("doctor", help="check Java, Spark, Delta and a Delta round trip")
    p.add_argument("--warehouse", default=None, help="where to write the test table (default: a temp dir)")
    _common(p)
    return parser


def _spark(cfg, app: str):
    from faerslake.session import get_spark

    return get_spark(app, cfg.spark)


def cmd_doctor(args, cfg) -> int:
    import platform
    import tempfile

    from faerslake.session import cache_dir, java_version, under_spark_submit

    print(f"faerslake   {__version__}")
    print(f"python      {platform.python_version()}")
    major, java = java_version()
    print(f"java        {major} ({java})")
    try:
        import pyspark

        print(f"pyspark     {pyspark.__version__}")
    except ImportError:
        raise FaerslakeError("PySpark is not installed: run 'make install'.") from None
    print(f"delta       {DELTA_VERSION} ({DELTA_MAVEN}; jar cache {cache_dir() / 'ivy'})")
    print(f"mode        {'spark-submit' if under_spark_submit() else 'local'}")
    spark = _spark(cfg, "faerslake-doctor")
    print(f"spark       {spark.version} master={spark.sparkContext.master}")
    with tempfile.TemporaryDirectory(prefix="faerslake-doctor-") as tmp:
        root = args.warehouse or tmp
        path = f"{root.rstrip('/')}/_doctor_roundtrip"
        df = spark.createDataFrame([(1, "BOTOX"), (2, "DYSPORT")], "k INT, drugname STRING")
        df.write.format("delta").mode("overwrite").save(path)
        back = sorted(tuple(r) for r in spark.read.format("delta").load(path).collect())
        ok = back == [(1, "BOTOX"), (2, "DYSPORT")]
        print(f"delta round trip  {'OK' if ok else 'FAILED'} ({path})")
    return 0 if ok else 1


def cmd_download(args, cfg) -> int:
    from faerslake.download import download_quarters

    download_quarters(quarter_range(args.quarters), Path(args.dest),
                      base_url=args.base_url, retries=args.retries, log=log)
    return 0


def cmd_generate(args, cfg) -> int:
    from faerslake.generate import generate

    summary = generate(Path(args.dest), reports=args.reports, seed=args.seed,
                       quarters=quarter_range(args.quarters), as_zip=args.zip, log=log)
    log(f"generated {summary}")
    return 0


def cmd_ingest(args, cfg) -> int:
    from faerslake.ingest import ingest

    spark = _spark(cfg, "faerslake-ingest")
    ingest(spark, args.source, args.warehouse, quarters=quarter_range(args.quarters),
           force=args.force, cfg=cfg, log=log)
    return 0


def cmd_build(args, cfg) -> int:
    from faerslake.silver import build

    spark = _spark(cfg, "faerslake-build")
    strict = cfg.build.strict_dedup if args.strict_dedup is None else args.strict_dedup
    build(spark, args.warehouse, strict_dedup=strict, cfg=cfg, log=log)
    return 0


def cmd_study(args, cfg) -> int:
    from faerslake.gold import print_cohort_table, run_study

    study = load_study(args.study)
    spark = _spark(cfg, "faerslake-study")
    result = run_study(spark, args.warehouse, study, args.output, cfg=cfg, log=log)
    print_cohort_table(result)
    return 0


def cmd_run(args, cfg) -> int:
    from faerslake.gold import print_cohort_table
    from faerslake.pipeline import run

    study = load_study(args.study)
    spark = _spark(cfg, "faerslake-run")
    strict = args.strict_dedup
    result = run(spark, args.source, args.warehouse, args.output, study=study,
                 quarters=quarter_range(args.quarters), force=args.force,
                 strict_dedup=strict, cfg=cfg, log=log)
    print_cohort_table(result)
    return 0


def _check_folders(args) -> None:
    """A folder argument that names an existing file is one clear error, not a Spark trace."""
    for opt in ("warehouse", "output", "dest"):
        value = getattr(args, opt, None)
        if not value or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]+:", value):  # URIs are Spark's to check
            continue
        if Path(value).expanduser().exists() and not Path(value).expanduser().is_dir():
            raise FaerslakeError(f"--{opt} {value} is a file, not a folder: pass a folder (it is created if missing).")


COMMANDS = {
    "doctor": cmd_doctor,
    "download": cmd_download,
    "generate": cmd_generate,
    "ingest": cmd_ingest,
    "build": cmd_build,
    "study": cmd_study,
    "run": cmd_run,
}


def main(argv: list[str] | None = None, command: str | None = None) -> int:
    """Console entry point; ``command`` fixes the subcommand (for ``jobs/*.py``)."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if command is not None:
        argv = [command] + argv
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        log(f"ignoring arguments not meant for faerslake: {' '.join(unknown)}")
    if not args.command:
        parser.print_help()
        return 2
    try:
        cfg = load_pipeline_config(args.conf_file, args.overrides)
        _check_folders(args)
        return COMMANDS[args.command](args, cfg)
    except FaerslakeError as e:
        print(f"faerslake: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("faerslake: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
