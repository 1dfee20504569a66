"""Ingest: FDA's quarterly zips / folders -> bronze Delta tables.

Place in the pipeline: the first step; ``silver.build`` reads its tables.
Modules: ``discover`` (find files), ``decode`` (bytes -> UTF-8 staging),
``parse`` (headers, Spark line checks, repairs), ``bronze`` (schemas and
Delta writes), ``run`` (the :func:`ingest` plan).

``ingest`` and ``IngestResult`` are imported on first use, so the staging
worker processes (which import only ``decode``) start without PySpark.
"""

from typing import Any

__all__ = ["IngestResult", "ingest"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from faerslake.ingest import run

        return getattr(run, name)
    raise AttributeError(f"module 'faerslake.ingest' has no attribute {name!r}")
