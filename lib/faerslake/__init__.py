"""faerslake: FAERS quarterly releases into Delta Lake, de-duplicated, with cohort studies.

Pipeline: ``ingest`` (zips / folders -> bronze Delta tables, with repair,
quarantine and an audit) -> ``build`` (bronze -> silver: one schema across both
eras, case de-duplication) -> ``study`` (silver -> gold: indication-matched
cohorts and disproportionality statistics).
"""

__version__ = "0.1.0"

# Versions of the pinned pair (setup.py pins them; the jars must match).
SPARK_VERSION = "4.2.0"
DELTA_VERSION = "4.4.0"
DELTA_MAVEN = "io.delta:delta-spark_4.2_2.13:" + DELTA_VERSION
