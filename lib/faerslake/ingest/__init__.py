"""Ingest: FDA's quarterly zips / folders -> bronze Delta tables.

Place in the pipeline: the first step; ``silver.build`` reads its tables.
Modules: ``discover`` (find files), ``decode`` (bytes -> UTF-8 staging),
``parse`` (headers, Spark line checks, repairs), ``bronze`` (schemas and
Delta writes), ``run`` (the :func:`ingest` plan).
"""

from faerslake.ingest.run import IngestResult, ingest

__all__ = ["IngestResult", "ingest"]
