"""Moved to :mod:`faerslake.files`; kept so old imports work."""

from faerslake.files import atomic_write_bytes, atomic_write_csv, atomic_write_text

__all__ = ["atomic_write_bytes", "atomic_write_csv", "atomic_write_text"]
