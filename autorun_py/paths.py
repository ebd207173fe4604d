"""Where autorun keeps its state: ``$AUTORUN_HOME`` (default ``~/.autorun``).

autorun never writes state into the user's repository or worktrees; everything
lives below this directory.
"""

from __future__ import annotations

import os
from pathlib import Path


def autorun_home() -> Path:
    env = os.environ.get("AUTORUN_HOME")
    if env:
        return Path(env).expanduser().resolve()
    return (Path.home() / ".autorun").resolve()


def orchestration_root() -> Path:
    return autorun_home() / "orchestration"


def logs_dir() -> Path:
    return autorun_home() / "logs"


def review_dir() -> Path:
    return autorun_home() / "review"


def reports_dir() -> Path:
    return autorun_home() / "reports"


def plans_dir() -> Path:
    return autorun_home() / "plans"


def research_dir() -> Path:
    return autorun_home() / "research"


def worktrees_dir() -> Path:
    return autorun_home() / "worktrees"


def locks_dir() -> Path:
    return autorun_home() / "locks"
