"""The ``faerslake`` command line.

At the console the command line is strict: an unknown or misspelt option is
an error that names it (exit 2). Every subcommand is also a thin job under
``jobs/`` for ``spark-submit`` and Databricks; only those entry points
(``main(command=...)``) tolerate the extra arguments the platforms add, with a
warning. A :class:`FaerslakeError` is printed as one sentence with its exit
code; other exceptions keep their trace (they are bugs).

Exit codes: 0 success, 2 configuration / input / command-line error,
3 environment (Java, Spark, Delta, disk), 4 download failed, 5 finished but
some quarters could not be ingested, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from faerslake import DELTA_MAVEN, DELTA_VERSION
from faerslake.config import default_study_path, load_pipeline_config, load_study, resolve_strict_dedup
from faerslake.errors import FaerslakeError, explain
from faerslake.files import has_scheme, strip_file_scheme
from faerslake.logs import configure, get_logger
from faerslake.quarters import quarter_range
from faerslake.runrecord import EXIT_OK, EXIT_PARTIAL, RunRecord, version_text

logger = get_logger(__name__)


def log(msg: str) -> None:
    """A progress line of the CLI itself (stderr, through logging)."""
    logger.info(msg)


class UsageError(Exception):
    """A command-line error (argparse's), turned into exit 2 by :func:`main`."""

    def __init__(self, parser: argparse.ArgumentParser, message: str):
        super().__init__(message)
        self.parser = parser


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # noqa: D102 - argparse API
        raise UsageError(self, message)


class _Help(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written; each option's default shown where it has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("%(default)" not in text and action.option_strings and not action.required
                and default not in (None, False, [], argparse.SUPPRESS) and action.nargs != 0):
            text += " (default: %(default)s)"
        return text


class _Version(argparse.Action):
    """``--version``, asking git for the commit only when it is used."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())
        parser.exit()


def _sub(sub, name: str, help_text: str, example: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".",
                          epilog="example:\n  " + example + "\n", formatter_class=_Help, allow_abbrev=False)


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("settings and logging")
    g.add_argument("--conf-file", default=None, metavar="YAML",
                   help="pipeline settings YAML (default: conf/pipeline.yaml, else built-in defaults)")
    g.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set spark.driver_memory=8g (repeatable)")
    g.add_argument("-v", "--verbose", action="count", default=0,
                   help="more detail: log level and logger names (DEBUG)")
    g.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
    g.add_argument("--log-file", default=None, metavar="PATH", help="also write the log to this file")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="faerslake", formatter_class=_Help, allow_abbrev=False,
        description="FAERS / legacy AERS quarterly releases into Delta Lake, de-duplicated, "
        "with indication-matched cohort studies.",
        epilog="exit codes: 0 ok, 2 configuration/input/usage error, 3 environment (Java, Spark, Delta, disk),\n"
        "4 download failed, 5 finished but some quarters could not be ingested,\n"
        "6 another run is writing the warehouse (lock wait timed out, or a Delta write conflict), 130 interrupted.\n\n"
        "example:\n  faerslake run --source data/raw --warehouse wh --output out",
    )
    parser.add_argument("--version", action=_Version, nargs=0,
                        help="print the version (and the git commit of a checkout) and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = _sub(sub, "download", "fetch FDA's quarterly zips (resumable, verified)",
             "faerslake download --quarters 2004Q1:2026Q2 --dest data/raw")
    p.add_argument("--quarters", required=True, help="quarters to fetch, e.g. 2004Q1:2026Q2 or 2019Q1,2020Q3")
    p.add_argument("--dest", required=True, help="folder for the zips and manifest.json (created if missing)")
    p.add_argument("--base-url", default=None, help="FDA's export URL, overridden (mirrors, tests)")
    p.add_argument("--retries", type=int, default=5, help="attempts per file before it counts as failed")
    p.add_argument("--max-mb", type=float, default=2048, help="largest file accepted, in MiB (bigger: that quarter fails)")
    p.add_argument("--deadline", type=float, default=1800,
                   help="seconds one quarter's file may take, all attempts together (the partial file is kept)")
    _common(p)

    p = _sub(sub, "generate", "write synthetic quarters in FDA's exact layouts",
             "faerslake generate --dest data/synthetic --reports 4000 --seed 7 --zip")
    p.add_argument("--dest", required=True, help="folder for the quarters and _truth.json (created if missing)")
    p.add_argument("--reports", type=int, default=5000, help="number of cases")
    p.add_argument("--seed", type=int, default=20200101, help="random seed (same seed, same bytes)")
    p.add_argument("--quarters", default=None,
                   help="e.g. 2012Q2:2012Q4,2019Q1 (default: 2012Q2,2012Q3,2012Q4,2014Q3,2019Q1, "
                   "both eras and every quirk)")
    p.add_argument("--zip", action="store_true", help="write FDA-style zips instead of folders")
    p.add_argument("--signals", type=int, default=0,
                   help="plant N (drug, PT) screen signals with known reporting ratios in [3, 10], "
                   "listed in _truth.json under 'screen' (default 0: none, output unchanged)")
    _common(p)

    p = _sub(sub, "ingest", "zips / quarter folders -> bronze Delta tables",
             "faerslake ingest --source data/raw --warehouse wh --quarters 2004Q1:2019Q2")
    p.add_argument("--source", required=True, help="folder holding FDA zips and/or extracted quarter folders")
    p.add_argument("--warehouse", required=True, help="warehouse root (folder or Hadoop URI)")
    p.add_argument("--quarters", default=None, help="only these quarters, e.g. 2004Q1:2019Q2 (default: all found)")
    p.add_argument("--force", action="store_true", help="re-ingest quarters whose files are unchanged too")
    _common(p)

    p = _sub(sub, "build", "bronze -> silver: one schema, de-duplicated cases",
             "faerslake build --warehouse wh")
    p.add_argument("--warehouse", required=True, help="warehouse root (folder or Hadoop URI)")
    p.add_argument("--strict-dedup", action="store_true", default=None,
                   help="also merge look-alike reports of different cases (docs/method.md §3; "
                   "default: build.strict_dedup of the settings, off)")
    p.add_argument("--force", action="store_true",
                   help="rebuild silver even when bronze is unchanged since the last build")
    p.add_argument("--full", action="store_true",
                   help="rebuild all of silver from all of bronze instead of updating the cases that changed "
                   "quarters touch (docs/method.md §3)")
    p.add_argument("--output", default=None,
                   help="also write OUT/drug_identity.csv (drug rows resolved per method, per era and quarter, "
                   "and the most frequent unresolved names)")
    _common(p)

    p = _sub(sub, "study", "silver -> gold: cohorts, statistics, report",
             "faerslake study --warehouse wh --output out --study conf/studies/botox_depression.yaml")
    p.add_argument("--warehouse", required=True, help="warehouse root (folder or Hadoop URI)")
    p.add_argument("--study", default=None, metavar="YAML",
                   help="study file (default: the bundled botox_depression study)")
    p.add_argument("--output", required=True, help="folder for OUT/<study>/ results, report and run.json")
    _common(p)

    p = _sub(sub, "terms", "what a study's tokens and indication PTs match in silver (read only)",
             "faerslake terms --warehouse wh --study conf/studies/botox_depression.yaml --output out/terms")
    p.add_argument("--warehouse", required=True, help="warehouse root (folder or Hadoop URI)")
    p.add_argument("--study", default=None, metavar="YAML",
                   help="study file (default: the bundled botox_depression study)")
    p.add_argument("--output", default=None,
                   help="also write OUT/terms.csv (every match) and OUT/indications.csv")
    p.add_argument("--limit", type=_positive_int, default=20, help="names printed per token")
    _common(p)

    p = _sub(sub, "run", "ingest -> build -> study in one command",
             "faerslake run --source data/raw --warehouse wh --output out --quarters 2004Q1:2012Q3")
    p.add_argument("--source", required=True, help="folder holding FDA zips and/or extracted quarter folders")
    p.add_argument("--warehouse", required=True, help="warehouse root (folder or Hadoop URI)")
    p.add_argument("--output", required=True,
                   help="folder for the CSVs, OUT/<study>/ results and report, and run.json")
    p.add_argument("--study", default=None, metavar="YAML",
                   help="study file (default: the bundled botox_depression study)")
    p.add_argument("--quarters", default=None, help="only these quarters, e.g. 2004Q1:2019Q2 (default: all found)")
    p.add_argument("--force", action="store_true", help="re-ingest quarters whose files are unchanged too")
    p.add_argument("--full", action="store_true",
                   help="rebuild all of silver instead of updating the cases that changed quarters touch")
    p.add_argument("--strict-dedup", action="store_true", default=None,
                   help="also merge look-alike reports of different cases (default: the study file's "
                   "strict_dedup, else build.strict_dedup of the settings, off)")
    _common(p)

    p = _sub(sub, "screen", "silver -> every drug–event pair: ROR, PRR, IC, EBGM (a signal screen)",
             "faerslake screen --warehouse wh --output out --roles PS,SS --period 2004Q1:2019Q4")
    p.add_argument("--warehouse", required=True, help="warehouse root (folder or Hadoop URI)")
    p.add_argument("--output", required=True, help="folder for OUT/screen_<name>/ (signals.csv, prior.json, report)")
    p.add_argument("--screen", default=None, metavar="YAML",
                   help="screen file (default: the bundled all_drugs screen, conf/screens/all_drugs.yaml)")
    p.add_argument("--by", default=None, choices=["auto", "drugname", "prod_ai", "ingredient"],
                   help="drug key (default: the screen file's; auto = ingredient when the build resolved them)")
    p.add_argument("--roles", default=None, metavar="CODES",
                   help="count only drug rows with these role codes, e.g. PS,SS ('all': every role)")
    p.add_argument("--period", default=None, help="only reports of these quarters, e.g. 2004Q1:2019Q4")
    p.add_argument("--stratify", default=None, metavar="STRATA",
                   help="expected counts summed over strata: any of sex,age_band,year ('' for none)")
    p.add_argument("--name", default=None, help="name of the screen's outputs (default: the screen file's)")
    p.add_argument("--study", default=None, metavar="YAML",
                   help="study whose exposure the picture highlights (default: the bundled botox_depression study)")
    p.add_argument("--top", type=_positive_int, default=10, help="signals printed at the end")
    _common(p)

    p = _sub(sub, "doctor", "check Java, Spark, Delta and a Delta round trip", "faerslake doctor")
    p.add_argument("--warehouse", default=None,
                   help="where to write the test table (default: a temporary folder)")
    _common(p)
    return parser


def _positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"should be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"should be at least 1, got {value}")
    return value


def _spark(cfg, app: str):
    from faerslake.session import get_spark

    return get_spark(app, cfg.spark)


def _report_failures(failed: dict[str, str]) -> int:
    """The closing list of failed quarters (stderr, shown even with -q); the exit code."""
    if not failed:
        return EXIT_OK
    print(f"faerslake: {len(failed)} quarter{'s' if len(failed) != 1 else ''} could not be ingested "
          f"(exit {EXIT_PARTIAL}):", file=sys.stderr)
    for q, why in sorted(failed.items()):
        print(f"  {q}: {why}", file=sys.stderr)
    return EXIT_PARTIAL


def cmd_doctor(args, cfg, record) -> int:
    import platform
    import tempfile

    from faerslake.session import cache_dir, java_version, under_spark_submit

    print(f"faerslake   {version_text().removeprefix('faerslake ')}")
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


def cmd_download(args, cfg, record) -> int:
    from faerslake.download import download_quarters

    download_quarters(quarter_range(args.quarters), Path(args.dest),
                      base_url=args.base_url, retries=args.retries,
                      max_bytes=int(args.max_mb * 1024**2), deadline=args.deadline)
    return 0


def cmd_generate(args, cfg, record) -> int:
    from faerslake.generate import generate

    summary = generate(Path(args.dest), reports=args.reports, seed=args.seed,
                       quarters=quarter_range(args.quarters), as_zip=args.zip, signals=args.signals)
    log(f"generated {summary}")
    return 0


def cmd_ingest(args, cfg, record) -> int:
    from faerslake.ingest import ingest

    spark = _spark(cfg, "faerslake-ingest")
    result = ingest(spark, args.source, args.warehouse, quarters=quarter_range(args.quarters),
                    force=args.force, cfg=cfg)
    return _report_failures(result.quarters_failed)


def cmd_build(args, cfg, record) -> int:
    from faerslake.silver import build

    if args.output and (Path(args.output).expanduser() / "drug_identity.csv").is_dir():
        raise FaerslakeError(f"--output {args.output} holds a folder named drug_identity.csv, where the build "
                             "writes that file: move the folder or pass another --output.")
    spark = _spark(cfg, "faerslake-build")
    build(spark, args.warehouse, strict_dedup=resolve_strict_dedup(args.strict_dedup, None, cfg), cfg=cfg,
          output=args.output, force=args.force, full=args.full)
    return 0


def cmd_study(args, cfg, record) -> int:
    from faerslake.gold import print_cohort_table
    from faerslake.pipeline import study_stage

    study = load_study(args.study or default_study_path(), tables=cfg.tables)
    _check_output_names(args.output, study, run=False)
    spark = _spark(cfg, "faerslake-study")
    result = study_stage(spark, args.warehouse, study, args.output, cfg, record)
    print_cohort_table(result)
    return 0


def cmd_terms(args, cfg, record) -> int:
    from faerslake.gold.terms_job import INDICATIONS_FILE, TERMS_FILE, print_terms, run_terms

    study = load_study(args.study or default_study_path(), tables=cfg.tables)
    out = Path(args.output).expanduser() if args.output else None
    for name in (TERMS_FILE, INDICATIONS_FILE):
        if out is not None and (out / name).is_dir():
            raise FaerslakeError(f"--output {args.output} holds a folder named {name}, where terms writes that "
                                 "file: move the folder or pass another --output.")
    spark = _spark(cfg, "faerslake-terms")
    print_terms(run_terms(spark, args.warehouse, study, cfg, output=args.output, limit=args.limit))
    return 0


def cmd_run(args, cfg, record) -> int:
    from faerslake.gold import print_cohort_table
    from faerslake.pipeline import run

    study = load_study(args.study or default_study_path(), tables=cfg.tables)
    _check_output_names(args.output, study, run=True)
    spark = _spark(cfg, "faerslake-run")
    result = run(spark, args.source, args.warehouse, args.output, study=study,
                 quarters=quarter_range(args.quarters), force=args.force,
                 strict_dedup=args.strict_dedup, cfg=cfg, record=record, full=args.full)
    print_cohort_table(result)
    return _report_failures(record.failed_quarters)


def cmd_screen(args, cfg, record) -> int:
    import time

    from faerslake.config import load_screen, override_screen
    from faerslake.screen import print_top_signals, run_screen

    screen = override_screen(load_screen(args.screen, tables=cfg.tables), cfg.tables, by=args.by, roles=args.roles,
                             period=args.period, stratify=args.stratify, name=args.name)
    study = load_study(args.study or default_study_path(), tables=cfg.tables)
    target = Path(args.output).expanduser() / f"screen_{screen.name}"
    if target.exists() and not target.is_dir():
        raise FaerslakeError(f"--output {args.output} holds a file named {target.name}, where the screen's results "
                             "folder goes: move that file or pass another --output.")
    spark = _spark(cfg, "faerslake-screen")
    t = time.time()
    result = run_screen(spark, args.warehouse, screen, args.output, cfg=cfg, study=study, top=args.top)
    record.stage("screen", time.time() - t, reports=result.n_reports, pairs=result.pairs,
                 pairs_in_csv=result.pairs_in_csv, prior_converged=result.prior.converged)
    print_top_signals(result, args.top)
    return 0


# the folder options faerslake writes with the local file system (pathlib), not Spark
LOCAL_FOLDERS = {"output": "its outputs (CSVs, report, run.json)", "dest": "the zips or quarters it makes"}


def _check_folders(args) -> None:
    """Folder arguments checked before any work starts, each a one-sentence error:

    - a folder argument that names an existing file;
    - ``--output`` / ``--dest`` under a file (``afile/sub``), which could not
      be created once the work is done;
    - ``--output`` / ``--dest`` given as a URI (``s3a://b/out``): they are
      written with the local file system, so a URI would become a local
      ``./s3a:`` folder. ``file:`` URIs are turned into plain paths.

    ``--warehouse`` may be any Hadoop URI (Spark checks those)."""
    for opt in ("warehouse", "output", "dest"):
        value = getattr(args, opt, None)
        if not value:
            continue
        if opt in LOCAL_FOLDERS and value.startswith("file:"):
            value = strip_file_scheme(value)
            setattr(args, opt, value)
        if has_scheme(value):
            if opt not in LOCAL_FOLDERS:
                continue  # URIs are Spark's to check
            raise FaerslakeError(
                f"--{opt} {value} is a URI, but faerslake writes {LOCAL_FOLDERS[opt]} as local files: "
                "pass a local folder (on Databricks, a /dbfs/... path).")
        path = Path(value).expanduser()
        if path.exists() and not path.is_dir():
            raise FaerslakeError(f"--{opt} {value} is a file, not a folder: pass a folder (it is created if missing).")
        above = next((a for a in path.absolute().parents if a.exists()), None)
        if not path.exists() and above is not None and not above.is_dir():
            raise FaerslakeError(f"--{opt} {value} cannot be created because {above} is a file, not a folder: "
                                 "pass another folder.")


# files `faerslake run` writes beside the study folder (faerslake.pipeline)
RUN_FILES = ("ingest_audit.csv", "ingest_failures.csv", "dedup_summary.csv", "drug_identity.csv")


def _check_output_names(output: str, study, run: bool) -> None:
    """``OUT/<study>`` must be a folder (or missing) and not named like a file
    faerslake writes there, and ``OUT/<file>.csv`` of :data:`RUN_FILES` files
    (or missing): checked before any work, not found out after the whole ingest."""
    out = Path(output).expanduser()
    target = out / study.name
    if study.name in (*RUN_FILES, "run.json"):
        raise FaerslakeError(f"the study name {study.name} is also the name of a file faerslake writes in --output: "
                             "rename the study file or set its key 'name'.")
    if target.exists() and not target.is_dir():
        raise FaerslakeError(f"--output {output} holds a file named {study.name}, where the study's results "
                             "folder goes: move that file or pass another --output.")
    for name in RUN_FILES if run else ():
        if (out / name).is_dir():
            raise FaerslakeError(f"--output {output} holds a folder named {name}, where the run writes that "
                                 "file: move the folder or pass another --output.")


COMMANDS = {
    "doctor": cmd_doctor,
    "download": cmd_download,
    "generate": cmd_generate,
    "ingest": cmd_ingest,
    "build": cmd_build,
    "study": cmd_study,
    "terms": cmd_terms,
    "run": cmd_run,
    "screen": cmd_screen,
}
WRITES_RUN_JSON = ("run", "study", "screen")  # the commands with an --output folder


def _parse(parser: argparse.ArgumentParser, argv: list[str], tolerant: bool):
    if not tolerant:
        return parser.parse_args(argv), []
    return parser.parse_known_args(argv)


def main(argv: list[str] | None = None, command: str | None = None) -> int:
    """Console entry point; ``command`` fixes the subcommand (for ``jobs/*.py``,
    which alone tolerate arguments not meant for faerslake)."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if command is not None:
        argv = [command] + argv
    try:
        args, unknown = _parse(parser, argv, tolerant=command is not None)
    except UsageError as e:
        e.parser.print_usage(sys.stderr)
        print(f"{e.parser.prog}: error: {e}", file=sys.stderr)
        return 2
    if not args.command:
        parser.print_help()
        return 2
    try:
        configure(-1 if args.quiet else args.verbose, args.log_file)
    except OSError as e:
        print(f"faerslake: error: --log-file {args.log_file} cannot be written ({e.strerror}): "
              "pass a file in a folder you can write to.", file=sys.stderr)
        return 2
    if unknown:
        logger.warning(f"ignoring arguments not meant for faerslake: {' '.join(unknown)}")
    record = RunRecord(args.command, argv)
    status, error = 1, None
    try:
        cfg = load_pipeline_config(args.conf_file, args.overrides)
        _check_folders(args)
        status = COMMANDS[args.command](args, cfg, record)
        return status
    except FaerslakeError as e:
        status, error = e.exit_code, str(e)
        print(f"faerslake: error: {e}", file=sys.stderr)
        return status
    except KeyboardInterrupt:
        status, error = 130, "interrupted"
        print("faerslake: interrupted", file=sys.stderr)
        return status
    except Exception as e:
        known = explain(e)
        if known is None:
            status, error = 1, f"{type(e).__name__}: {e}"
            raise
        logger.debug("the failure behind the message below", exc_info=e)
        status, error = known.exit_code, str(known)
        print(f"faerslake: error: {known}", file=sys.stderr)
        return status
    except BaseException as e:
        status, error = 1, f"{type(e).__name__}: {e}"
        raise
    finally:
        if args.command in WRITES_RUN_JSON:
            _write_run_json(record, args.output, status, error)


def _write_run_json(record: RunRecord, output: str, status: int, error: str | None) -> None:
    if has_scheme(output):
        return  # outputs are local folders; a URI output is refused before any work
    if status != 0 and not Path(output).expanduser().is_dir():
        return  # refused before any work: no output folder is created just to say so
    try:
        path = record.write(output, status, error)
        logger.debug(f"run record -> {path}")
    except OSError as e:
        print(f"faerslake: warning: could not write {output}/run.json: {e}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
