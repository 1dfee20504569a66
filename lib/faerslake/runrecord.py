"""``OUT/run.json``: what one command did, for schedulers and for provenance.

Every command with an output folder (``run``, ``study``) writes it at the end,
whatever the outcome (after an error too, unless the command was refused
before it created the output folder): the command and its arguments,
faerslake's version and git commit, start and end time, each stage's seconds
and row counts, the Delta version of every table after each stage, the
quarters that failed and the exit status. It is written atomically.
"""

from __future__ import annotations

import datetime as _dt
import json
import subprocess
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from faerslake import __version__
from faerslake.files import atomic_write_text

# Exit codes (also in the README): 0 success; 2 a configuration or input error
# (or a command-line error); 3 an environment problem (Java, Spark, Delta,
# disk); 4 a download failed; 5 the run finished but some quarters could not
# be ingested (listed at the end, in OUT/ingest_failures.csv, OUT/run.json and
# the report); 130 interrupted.
EXIT_OK = 0
EXIT_PARTIAL = 5


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The git commit of the checkout faerslake runs from (``+dirty`` with local
    changes), None when it is installed from a wheel or git is unavailable."""
    here = Path(__file__).resolve().parent
    root = here.parents[1]  # lib/faerslake -> the repository
    if not (root / ".git").exists() or not (root / "setup.py").exists():
        return None
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("+dirty" if dirty else "") if sha else None


def version_text() -> str:
    commit = git_commit()
    return f"faerslake {__version__}" + (f" (git {commit})" if commit else "")


def _utc(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class RunRecord:
    """Filled in by the stages as they run; written by :meth:`write`."""

    command: str
    argv: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    tables: dict[str, int | None] = field(default_factory=dict)
    failed_quarters: dict[str, str] = field(default_factory=dict)

    def stage(self, name: str, seconds: float, **counts: Any) -> None:
        """One stage's wall seconds and row counts (plain ints or small dicts of ints)."""
        self.stages[name] = {"seconds": round(float(seconds), 3), **counts}

    def versions(self, layer: str, names, spark, wh) -> None:
        """The current Delta version of each table ``layer/name`` (None if absent)."""
        for name in names:
            self.tables[f"{layer}/{name}"] = wh.version(spark, layer, name)

    def as_dict(self, exit_status: int, error: str | None = None) -> dict[str, Any]:
        ended = time.time()
        return {
            "command": self.command,
            "argv": self.argv,
            "faerslake_version": __version__,
            "git_commit": git_commit(),
            "started_at": _utc(self.started),
            "ended_at": _utc(ended),
            "seconds": round(ended - self.started, 3),
            "stages": self.stages,
            "tables": self.tables,
            "failed_quarters": [{"quarter": q, "reason": r} for q, r in sorted(self.failed_quarters.items())],
            "exit_status": exit_status,
            "error": error,
        }

    def write(self, out_dir: str | Path, exit_status: int, error: str | None = None) -> Path:
        data = self.as_dict(exit_status, error)
        return atomic_write_text(Path(out_dir) / "run.json", json.dumps(data, indent=2, default=str) + "\n")
