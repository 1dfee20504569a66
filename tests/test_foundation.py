"""Config loading, the session factory's local path, a Delta round trip, the CLI."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
from faerslake import DELTA_MAVEN, __version__
from faerslake.cli import main
from faerslake.config import DEFAULT_STUDY, load_pipeline_config, load_study
from faerslake.errors import ConfigError
from faerslake.quarters import era_of, quarter_range


def test_default_pipeline_config_loads():
    cfg = load_pipeline_config()
    assert cfg.spark.master == "local[*]"
    assert cfg.build.strict_dedup is False
    assert cfg.tables.mode == "path"


def test_overrides_are_typed():
    cfg = load_pipeline_config(None, ["build.strict_dedup=true", "spark.shuffle_partitions=3"])
    assert cfg.build.strict_dedup is True
    assert cfg.spark.shuffle_partitions == 3


@pytest.mark.parametrize(
    "text, message",
    [
        ("spark:\n  drivr_memory: 4g\n", "unknown key 'spark.drivr_memory'"),
        ("spark:\n  shuffle_partitions: many\n", "key 'spark.shuffle_partitions' should be a whole number"),
        ("build:\n  strict_dedup: 3\n", "key 'build.strict_dedup' should be true/false"),
        ("spark: [1, 2]\n", "should be a mapping"),
        ("tables:\n  mode: cloud\n", "'tables.mode' should be 'path' or 'catalog'"),
        ("spark: {\n", "is not valid YAML"),
    ],
)
def test_bad_pipeline_config_names_file_and_key(tmp_path, text, message):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_pipeline_config(p)
    assert message in str(e.value)
    assert str(p) in str(e.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_pipeline_config(tmp_path / "nope.yaml")


def test_default_study_has_the_spec_lists():
    s = load_study()
    assert s.name == "botox_depression"
    assert [c.name for c in s.cohorts] == [
        "cosmetic", "migraine", "spasticity", "torticollis",
        "blepharospasm", "hyperhidrosis", "sialorrhea", "bladder",
    ]
    assert len(s.exposure.tokens) == 15 and s.exposure.tokens[0] == "BOTULINUM"
    assert s.exposure.exclude_tokens == ["ANTITOXIN", "IMMUNE GLOBULIN"]
    assert len(s.outcome_pts) == 9 and "POST STROKE DEPRESSION" in s.outcome_pts
    assert len(s.exclusions.drug_tokens) == 42
    assert s.exclusions.enabled and s.exclusions.outcome_indications
    counts = {c.name: len(c.indications) for c in s.cohorts}
    assert counts == {"cosmetic": 6, "migraine": 6, "spasticity": 3, "torticollis": 3,
                      "blepharospasm": 2, "hyperhidrosis": 2, "sialorrhea": 2, "bladder": 5}
    assert len(s.sha256) == 64


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"colour": "blue"}, "unknown key 'colour'"),
        ({"outcome_pts": []}, "key 'outcome_pts' is an empty list"),
        ({"cohorts": {"empty": []}}, "cohort 'empty' has no indication terms"),
        ({"cohorts": {}}, "key 'cohorts' is empty"),
        ({"exposure": {"tokens": "BOTOX"}}, "key 'exposure.tokens' should be a list"),
        ({"period": "2019"}, "key 'period' should look like"),
        ({"published_period": "2019"}, "key 'published_period' should look like 2004Q1:2019Q4, got '2019'"),
        ({"published_period": "2019Q4:2004Q1"}, "key 'published_period' runs backwards (2019Q4:2004Q1)"),
        ({"published_source": ["a", "b"]}, "key 'published_source' should be"),
    ],
)
def test_bad_study_files_are_rejected_by_name(tmp_path, patch, message):
    import yaml

    data = yaml.safe_load(DEFAULT_STUDY.read_text())
    data.update(patch)
    p = tmp_path / "mine.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as e:
        load_study(p)
    assert message in str(e.value) and str(p) in str(e.value)


def test_study_terms_are_normalised(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("exposure: {tokens: [' botox ']}\ncohorts: {m: [migraine]}\noutcome_pts: [Depression]\n")
    s = load_study(p)
    assert s.exposure.tokens == ["BOTOX"] and s.cohorts[0].indications == ["MIGRAINE"]
    assert s.outcome_pts == ["DEPRESSION"] and s.name == "s"
    assert dataclasses.asdict(s)["exclusions"]["enabled"] is True


def test_quarters():
    assert quarter_range("2012Q2:2013Q1") == ["2012Q2", "2012Q3", "2012Q4", "2013Q1"]
    assert quarter_range("2019q1,2004Q1") == ["2004Q1", "2019Q1"]
    assert era_of("2012Q3") == "legacy" and era_of("2012Q4") == "faers"
    with pytest.raises(ConfigError):
        quarter_range("2013Q1:2012Q1")


def test_cli_version_and_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert __version__ in capsys.readouterr().out
    for cmd in ("download", "generate", "ingest", "build", "study", "terms", "run", "doctor"):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
        assert f"faerslake {cmd}" in capsys.readouterr().out


def test_cli_config_error_is_one_sentence(tmp_path, capsys):
    bad = tmp_path / "p.yaml"
    bad.write_text("nonsense: 1\n")
    rc = main(["build", "--warehouse", str(tmp_path), "--conf-file", str(bad)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("faerslake: error: ") and "unknown key 'nonsense'" in err
    assert "Traceback" not in err


def test_missing_java_is_one_sentence(tmp_path):
    code = (
        "import os,sys; os.environ['JAVA_HOME']=sys.argv[1]; "
        "from faerslake.cli import main; sys.exit(main(['doctor']))"
    )
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "nojdk")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 3
    assert "Java 17 or 21 is needed" in r.stderr and "Traceback" not in r.stderr


def test_local_session_has_delta(spark):
    conf = spark.sparkContext.getConf()
    assert conf.get("spark.sql.extensions") == "io.delta.sql.DeltaSparkSessionExtension"
    # first start: Spark's resolver; later starts: the files it resolved
    if conf.contains("spark.jars.packages"):
        assert conf.get("spark.jars.packages") == DELTA_MAVEN
    else:
        assert "io.delta_delta-spark_4.2_2.13-4.4.0.jar" in conf.get("spark.jars")
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.conf.get("spark.sql.shuffle.partitions") == "2"


def test_get_spark_reuses_the_active_session(spark):
    from faerslake.session import get_spark

    assert get_spark("another") is spark


def test_delta_round_trip(spark, tmp_path):
    path = str(tmp_path / "t")
    spark.createDataFrame([(1, "a"), (2, "b")], "k INT, v STRING").write.format("delta").save(path)
    spark.createDataFrame([(3, "c")], "k INT, v STRING").write.format("delta").mode("append").save(path)
    back = spark.read.format("delta").load(path)
    assert sorted(tuple(r) for r in back.collect()) == [(1, "a"), (2, "b"), (3, "c")]
    from delta.tables import DeltaTable

    assert DeltaTable.forPath(spark, path).history().count() == 2


def test_resolved_jars_are_reused_only_while_all_exist(tmp_path, monkeypatch):
    from faerslake import session

    monkeypatch.setenv("FAERSLAKE_CACHE", str(tmp_path))
    assert session.cached_delta_jars() is None
    assert session.local_builder_conf()["spark.jars.packages"] == DELTA_MAVEN
    jar = tmp_path / "io.delta_delta-spark_4.2_2.13-4.4.0.jar"
    jar.write_bytes(b"PK")
    session._jar_list_file().write_text(f"file:{jar}\n")
    conf = session.local_builder_conf()
    assert conf["spark.jars"] == f"file:{jar}" and "spark.jars.packages" not in conf
    jar.unlink()
    assert "spark.jars" not in session.local_builder_conf()


# --------------------------------------------------------------------------- #
# a strict command line, logging, exit codes
# --------------------------------------------------------------------------- #
def test_console_rejects_a_misspelt_option_by_name(capsys):
    rc = main(["run", "--qaurters", "2004Q1", "--source", "s", "--warehouse", "w", "--output", "o"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "unrecognized arguments: --qaurters 2004Q1" in err and "Traceback" not in err
    # no prefix guessing either: --quart is not taken for --quarters
    assert main(["ingest", "--quart", "2004Q1", "--source", "s", "--warehouse", "w"]) == 2
    assert "--quart" in capsys.readouterr().err


def test_jobs_entry_points_tolerate_platform_arguments(tmp_path, capsys):
    bad = tmp_path / "p.yaml"
    bad.write_text("nonsense: 1\n")
    # a spark-submit / Databricks job: the unknown argument is warned about, the run goes on
    # (to the config error, which proves the arguments were parsed and the command started)
    rc = main(["--warehouse", str(tmp_path), "--conf-file", str(bad), "--databricks-flag", "x"], command="build")
    err = capsys.readouterr().err
    assert rc == 2 and "ignoring arguments not meant for faerslake: --databricks-flag x" in err
    assert "unknown key 'nonsense'" in err


def test_every_option_has_help_defaults_shown_and_an_example(capsys):
    from faerslake.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sorted(sub.choices) == ["build", "doctor", "download", "generate", "ingest", "run", "screen",
                                  "study", "terms"]
    for name, p in sub.choices.items():
        for action in p._actions:
            assert action.help, (name, action.dest)
        text = p.format_help()
        assert text.rstrip().split("\n")[-2] == "example:", (name, text[-200:])
        assert text.rstrip().split("\n")[-1].strip().startswith(f"faerslake {name}"), name
    def flat(name: str) -> str:  # help text with argparse's line wrapping undone
        return " ".join(sub.choices[name].format_help().split())

    assert "(default: 5000)" in flat("generate") and "(default: 20200101)" in flat("generate")
    assert "(default: 5)" in flat("download")
    assert "(default: 10)" in flat("screen") and "--stratify STRATA" in flat("screen")
    assert not any("(default: None)" in flat(n) or "(default: False)" in flat(n) for n in sub.choices)


def test_version_names_the_git_commit_of_a_checkout(capsys):
    from faerslake.runrecord import git_commit

    with pytest.raises(SystemExit):
        main(["--version"])
    out = capsys.readouterr().out.strip()
    head = subprocess.run(["git", "-C", str(Path(__file__).parents[1]), "rev-parse", "HEAD"],
                          capture_output=True, text=True)
    if head.returncode != 0:  # not a git checkout (an unpacked source archive)
        assert out == f"faerslake {__version__}" and git_commit() is None
    else:
        assert out.startswith(f"faerslake {__version__} (git {head.stdout.strip()}")


def test_library_messages_go_through_logging_not_stdout(capsys, caplog, tmp_path):
    import logging

    from faerslake.generate import generate

    with caplog.at_level(logging.INFO, logger="faerslake"):
        generate(tmp_path / "g", reports=60, seed=1, quarters=["2019Q1"])
    assert capsys.readouterr().out == ""
    names = {r.name for r in caplog.records}
    assert names == {"faerslake.generate"}, names


def test_cli_verbosity_and_log_file(tmp_path, capsys):
    log_file = tmp_path / "logs" / "gen.log"
    assert main(["generate", "--dest", str(tmp_path / "a"), "--reports", "60", "--quarters", "2019Q1",
                 "--log-file", str(log_file)]) == 0
    cap = capsys.readouterr()
    assert cap.out == ""
    assert re.search(r"^\[faerslake \d\d:\d\d:\d\d\] generated ", cap.err, re.M), cap.err
    assert "generated " in log_file.read_text()
    assert main(["generate", "--dest", str(tmp_path / "b"), "--reports", "60", "--quarters", "2019Q1", "-q"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["generate", "--dest", str(tmp_path / "c"), "--reports", "60", "--quarters", "2019Q1", "-v"]) == 0
    assert re.search(r"^\[faerslake \d\d:\d\d:\d\d INFO faerslake\.cli\] generated ", capsys.readouterr().err, re.M)
    from faerslake.logs import configure

    configure()  # back to the default for the tests that follow


def test_partial_failure_exit_code_is_distinct():
    from faerslake.errors import ConfigError, EnvironmentProblem, InputError
    from faerslake.runrecord import EXIT_PARTIAL

    codes = {ConfigError("x").exit_code, EnvironmentProblem("x").exit_code, InputError("x").exit_code, 4}
    assert EXIT_PARTIAL not in codes | {0, 1, 130}
