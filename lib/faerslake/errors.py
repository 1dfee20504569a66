"""Errors a user can act on.

Every failure a user can fix (a missing Java, a bad config key, an unreadable
source) is raised as :class:`FaerslakeError` with one sentence saying what to
do; the CLI prints that sentence and exits non-zero instead of a stack trace.
"""


class FaerslakeError(Exception):
    """An error whose message tells the user what to fix."""

    exit_code = 2


class ConfigError(FaerslakeError):
    """A configuration or study file is missing, unreadable or invalid."""


class EnvironmentProblem(FaerslakeError):
    """Java, Spark or the Delta jars are missing or of the wrong version."""

    exit_code = 3


class InputError(FaerslakeError):
    """A source file or folder cannot be used at all."""
