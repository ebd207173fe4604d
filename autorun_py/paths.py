"""Where autorun keeps its state: ``$AUTORUN_HOME`` (default ``~/.autorun``).

autorun never writes state into the user's repository or worktrees; everything
lives below this directory, and every path below it is spelled once, here, in
:class:`Layout`::

    orchestration/<run>/        a run (status.json, events.jsonl, stages/, verify/)
    worktrees/<run>/            stage-N, merge-stage-N, verify-<label>-<sha> (worktrees.py)
    logs/                       <slug>_stage-N.log, <slug>-monitor.log, hooks.log, chain-*.log
    review/                     review files (.waiting/, .answered/)
    reports/<run>.md|.json      autorun report
    plans/, research/           the stage sessions' shared notes
    locks/                      merge-<key>.lock, merge-queue-<key>.json, orchestrate.lock
    inbox/                      what waits for a person (attention.py)
    prompts/                    a slash command's arguments (prompt_args.py)
    config.json                 user configuration (config.py)
    venv/, shim/                the engine's own environment (scripts/autorun)

:func:`layout` reads ``AUTORUN_HOME`` from the process environment on purpose:
that variable is how the CLI, the stage sessions, the hooks and the monitor
(all separate processes started with it) agree on one home. Code that has a
``Layout`` passes it on rather than calling :func:`layout` again.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional


class Layout:
    """Every path under one autorun home (nothing is created by asking).

    Immutable, compared by ``home``. A plain class rather than a frozen
    dataclass: ``dataclasses`` costs a bookkeeping call (``autorun phase``)
    about 14 ms of imports.
    """

    __slots__ = ("home",)
    home: Path

    def __init__(self, home: Path) -> None:
        object.__setattr__(self, "home", Path(home))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Layout is immutable (cannot set {name!r})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Layout) and other.home == self.home

    def __hash__(self) -> int:
        return hash(self.home)

    def __repr__(self) -> str:
        return f"Layout(home={self.home!r})"

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> Layout:
        env = os.environ if environ is None else environ
        value = env.get("AUTORUN_HOME")
        if value:
            return cls(Path(value).expanduser().resolve())
        return cls((Path.home() / ".autorun").resolve())

    # -- directories ---------------------------------------------------------------
    @property
    def orchestration(self) -> Path:
        return self.home / "orchestration"

    @property
    def worktrees(self) -> Path:
        return self.home / "worktrees"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def review(self) -> Path:
        return self.home / "review"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def plans(self) -> Path:
        return self.home / "plans"

    @property
    def research(self) -> Path:
        return self.home / "research"

    @property
    def locks(self) -> Path:
        return self.home / "locks"

    @property
    def inbox(self) -> Path:
        return self.home / "inbox"

    @property
    def prompts(self) -> Path:
        return self.home / "prompts"

    @property
    def venv(self) -> Path:
        return self.home / "venv"

    @property
    def shim(self) -> Path:
        return self.home / "shim"

    @property
    def config_file(self) -> Path:
        return self.home / "config.json"

    # -- one run ---------------------------------------------------------------------
    def run_dir(self, run: str) -> Path:
        return self.orchestration / run

    def run_worktrees(self, run: str) -> Path:
        return self.worktrees / run

    def stage_worktree(self, run: str, number: int) -> Path:
        return self.run_worktrees(run) / f"stage-{number}"

    def merge_worktree(self, run: str, number: int) -> Path:
        return self.run_worktrees(run) / f"merge-stage-{number}"

    def verify_worktree(self, run: str, label: str, commit: str) -> Path:
        return self.run_worktrees(run) / f"verify-{label}-{commit[:12]}"

    def report_base(self, run: str) -> Path:
        """``reports/<run>``; the report is this with ``.md`` and ``.json``."""
        return self.reports / run

    # -- logs --------------------------------------------------------------------------
    def stage_log(self, project_slug: str, number: int) -> Path:
        return self.logs / f"{project_slug}_stage-{number}.log"

    def monitor_log(self, name: str) -> Path:
        """``<name>-monitor.log``; ``name`` is the run's project slug."""
        return self.logs / f"{name}-monitor.log"

    def chain_log(self, name: str) -> Path:
        return self.logs / f"chain-{name}.log"

    @property
    def hooks_log(self) -> Path:
        return self.logs / "hooks.log"

    # -- locks -------------------------------------------------------------------------
    def lock(self, name: str) -> Path:
        return self.locks / name

    def merge_lock(self, key: str) -> Path:
        """One repository's merge lock (``key``: a digest of its git common dir)."""
        return self.locks / f"merge-{key}.lock"

    def merge_queue(self, key: str) -> Path:
        return self.locks / f"merge-queue-{key}.json"


def layout() -> Layout:
    """The layout of this process's ``$AUTORUN_HOME`` (see the module doc)."""
    return Layout.from_env()


def claude_config_dir() -> Path:
    """Claude Code's own directory (``$CLAUDE_CONFIG_DIR``, default ``~/.claude``):
    its settings, and the transcripts of the sessions autorun starts (which inherit
    this variable, so it is read from the process environment like ``AUTORUN_HOME``)."""
    env = os.environ.get("CLAUDE_CONFIG_DIR")
    return Path(env).expanduser() if env else Path.home() / ".claude"


def autorun_home() -> Path:
    return layout().home
