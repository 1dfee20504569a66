"""faerslake: FAERS quarterly releases into Delta Lake, de-duplicated, with cohort studies."""
import re
from pathlib import Path

from setuptools import find_packages, setup

_version = re.search(
    r'__version__ = "([^"]+)"', Path("lib/faerslake/__init__.py").read_text()
).group(1)

# PySpark and Delta are an extra: Databricks runtimes bring their own.
# The pair is pinned together: delta-spark 4.4.0 is the newest release whose
# jars (io.delta:delta-spark_4.2_2.13) are on Maven Central, built for Spark 4.2.
SPARK = ["pyspark==4.2.0", "delta-spark==4.4.0"]
# Reading path-mode tables without Spark or a JVM: delta-rs (pandas, Arrow, and
# through Arrow polars or DuckDB). README "Reading the results without Spark".
READ = ["deltalake==1.6.6"]

setup(
    name="faerslake",
    version=_version,
    description="FAERS / legacy AERS quarterly releases into Delta Lake, with cohort studies",
    long_description=Path("README.md").read_text() if Path("README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    package_dir={"": "lib"},
    packages=find_packages("lib"),
    package_data={"faerslake": ["resources/*", "py.typed"]},
    python_requires=">=3.10",
    install_requires=[
        "pandas>=2.2,<3",
        "numpy>=1.26",
        "scipy>=1.11",
        "matplotlib>=3.8",
        "PyYAML>=6.0",
        # Arrow batches for the screen's special functions (mapInPandas); Spark 4.2 needs >= 18
        "pyarrow>=18",
        # one BLAS thread for the prior fit's tiny vectors (10x faster on a busy machine)
        "threadpoolctl>=3",
    ],
    extras_require={
        "spark": SPARK,
        "read": READ,
        "dev": SPARK
        + READ
        + [
            "pytest>=8",
            "pytest-xdist>=3.6",  # make test: two workers, a module each
            "statsmodels>=0.14",
            "hypothesis>=6.100",
            "duckdb>=1.1",
            # the headless-browser check of report.html (Debian's chromium and
            # chromedriver; 4.52 needs a certifi newer than the index holds)
            "selenium==4.51.0",
            "ruff>=0.6",
            "mypy>=1.10",
            "pandas-stubs",
            "types-PyYAML",
        ],
    },
    entry_points={"console_scripts": ["faerslake=faerslake.cli:main"]},
)
