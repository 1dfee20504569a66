"""Logging as Python users expect it.

Every library message goes through the standard :mod:`logging` module, to a
logger named after its module (``faerslake.ingest.job``, ``faerslake.silver.job``,
...), all below the ``faerslake`` logger. The library itself installs no
handler beyond :class:`logging.NullHandler` (the convention for libraries), so
a notebook or an application decides where messages go::

    import logging
    logging.getLogger("faerslake").setLevel(logging.WARNING)   # silence progress

or shows them with :func:`configure` (what the CLI and the notebooks call).
Progress lines are INFO, problems the run survives are WARNING, detail is
DEBUG. Messages go to stderr, never stdout: stdout is for results.

The functions that log also take ``log=`` (any ``str -> None`` callable, e.g.
``list.append`` in tests); without it they use their module's logger.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = "faerslake"
FORMAT = "[faerslake %(asctime)s] %(message)s"
VERBOSE_FORMAT = "[faerslake %(asctime)s %(levelname)s %(name)s] %(message)s"
DATEFMT = "%H:%M:%S"

logging.getLogger(ROOT).addHandler(logging.NullHandler())


def get_logger(name: str) -> logging.Logger:
    """The logger of a module: ``get_logger(__name__)``."""
    return logging.getLogger(name if name.startswith(ROOT) else f"{ROOT}.{name}")


def sink(log: Callable[[str], None] | None, name: str) -> Callable[[str], None]:
    """``log`` when the caller gave one, else the INFO method of module ``name``'s logger.

    Messages that start with ``warning:`` are logged at WARNING level."""
    if log is not None:
        return log
    logger = get_logger(name)

    def emit(msg: str) -> None:
        if msg.startswith("warning: "):
            logger.warning(msg)
        else:
            logger.info(msg)

    return emit


_HANDLER_TAG = "_faerslake_handler"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted (so
    ``contextlib.redirect_stderr`` and pytest's capture see the lines)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it
        pass


def configure(verbosity: int = 0, log_file: str | Path | None = None, stream=None) -> logging.Logger:
    """Show faerslake's messages: on stderr (or ``stream``) and, with ``log_file``, in that file too.

    ``verbosity``: -1 warnings and errors only (``-q``), 0 progress (default),
    1 or more detail with level and logger names (``-v``). Calling it again
    replaces the handlers it installed before (so a notebook can re-run it)."""
    root = logging.getLogger(ROOT)
    for h in list(root.handlers):
        if getattr(h, _HANDLER_TAG, False):
            root.removeHandler(h)
            h.close()
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    fmt = logging.Formatter(VERBOSE_FORMAT if verbosity > 0 else FORMAT, DATEFMT)
    handlers: list[logging.Handler] = [logging.StreamHandler(stream) if stream else _StderrHandler()]
    if log_file:
        path = Path(log_file).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, encoding="utf-8"))
    for h in handlers:
        h.setFormatter(fmt)
        h.setLevel(level)
        setattr(h, _HANDLER_TAG, True)
        root.addHandler(h)
    root.setLevel(level)
    root.propagate = False  # the CLI's handlers print each line once, even if the app logs at root
    return root
