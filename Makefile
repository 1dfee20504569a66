# faerslake — two commands do all set-up: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DELTA_JAR := .cache/ivy/jars/io.delta_delta-spark_4.2_2.13-4.4.0.jar
SAMPLE := .cache/sample
OUT ?= out
WH ?= wh

.PHONY: install run test test-quick lint bench bench-screen dist clean doctor

install: $(VENV)/.installed $(DELTA_JAR)

$(VENV)/.installed: setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

# Spark's own resolver fetches the Delta jars from Maven Central once, into
# .cache/ivy (ignored by git); doctor also proves a Delta round trip.
$(DELTA_JAR): | $(VENV)/.installed
	$(VENV)/bin/faerslake doctor

doctor: install
	$(VENV)/bin/faerslake doctor

# The whole pipeline on a bundled synthetic sample of both eras, with 20 planted
# screen signals (.done-signals: a sample cached before --signals is regenerated),
# then the default signal screen (every drug against every reaction PT) with its top 10.
run: install
	@test -f $(SAMPLE)/.done-signals || ($(VENV)/bin/faerslake generate --dest $(SAMPLE) --reports 4000 --seed 7 --signals 20 && touch $(SAMPLE)/.done-signals)
	$(VENV)/bin/faerslake run --source $(SAMPLE) --warehouse $(WH) --output $(OUT)
	$(VENV)/bin/faerslake screen --warehouse $(WH) --output $(OUT) --top 10

# Two workers (pytest-xdist), each with its own Spark session, a whole module
# at a time, the longest modules first (the scheduler in tests/conftest.py):
# on 2 cores one test process's small Spark jobs leave a core idle much of
# the time (its JVM averaged 0.8 cores in a one-process run).
TEST_WORKERS ?= 2

test: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=25 tests

# The edit loop: unit tests only, no pipeline, crash, cluster or notebook runs
# (the modules marked `pipeline` in tests/conftest.py). `make test` is the whole suite.
test-quick: install
	$(PY) -m pytest -q -m "not pipeline" tests

lint: install
	$(VENV)/bin/ruff check lib jobs tests bench
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/run_bench.py

# The signal screen at S and 4·S against a DuckDB + numpy yardstick on the same
# silver files (bench/screen_bench.py; reuses make bench's lakes when built),
# then the per-pair probe at archive-like pair counts.
bench-screen: install
	$(PY) bench/screen_bench.py

# The wheel (Databricks, pip) and dist/faerslake.zip for spark-submit --py-files:
# the same archive (a pure wheel is a zip Python imports from). build/ is
# removed too, or files deleted from lib/ would linger in the wheel.
dist: install
	rm -rf dist build && mkdir -p dist
	$(PY) -m pip wheel -q --no-deps -w dist .
	cp dist/faerslake-*-py3-none-any.whl dist/faerslake.zip

clean:
	rm -rf $(OUT) $(WH) dist build .pytest_cache
