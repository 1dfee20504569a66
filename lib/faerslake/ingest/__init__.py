"""Ingest: FDA's quarterly zips / folders -> bronze Delta tables.

Place in the pipeline: the first step; ``silver.build`` reads its tables.
Modules: ``discover`` (find files), ``decode`` (bytes -> UTF-8 part files),
``stage`` (a batch of quarters, in worker processes), ``parse`` (headers,
Spark line checks, quarantine reasons, repairs), ``load`` (the bronze tables
of a batch), ``audit`` (per-file counts and their checks), ``bronze``
(schemas and Delta writes), ``job`` (the :func:`ingest` plan).

``ingest`` and ``IngestResult`` are imported on first use, so the staging
worker processes (which import only ``decode``) start without PySpark.
"""

from typing import Any

__all__ = ["IngestResult", "ingest"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from faerslake.ingest import job

        return getattr(job, name)
    raise AttributeError(f"module 'faerslake.ingest' has no attribute {name!r}")
