"""Launchers: what runs a stage's Claude Code session, chosen per run.

The scheduler, merge, gate, review, monitor and report never ask which one runs
a stage; they call the few functions here, which pick the run's launcher from
``status.json`` (``"launcher"``, absent = ``tmux``):

- ``tmux`` (the default, :mod:`.tmux_launcher`): an interactive session in a
  tmux session of autorun's server.
- ``background`` (:mod:`.background`): a Claude Code background session
  (``claude --bg``), supervised by Claude Code's own daemon; no tmux at all.
- ``remote`` (:mod:`.remote`): a Claude Code cloud session on the user's
  self-hosted environment, working on a branch autorun pushed; it reports back
  through git, which :func:`poll` (the monitor's check) reads.

Every launcher starts a stage's agent from the same argv (:func:`autorun_py.
config.agent_argv`: plugin, model, permission mode) in the stage's worktree, and
answers the same questions (:class:`Launcher`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Protocol

from autorun_py.errors import AutorunError

DEFAULT = "tmux"
NAMES = ("tmux", "background", "remote")


@dataclass(frozen=True)
class Started:
    """What a start made: ``handle`` (the tmux pane, the background session's id),
    and the Claude session id when the launcher (not autorun) chose it."""

    handle: str
    claude_session_id: Optional[str] = None


class Launcher(Protocol):
    name: str

    def start(
        self,
        state: Any,
        stage: Any,
        argv: list[str],
        *,
        cwd: Path,
        window: str,
        env: dict[str, str],
        log_file: Path,
        replace: bool = False,
    ) -> Started:
        """Start ``argv`` (from ``agent_argv``) as the stage's session in ``cwd``.
        ``replace``: a recovery; whatever still stands of the stage's last session is
        taken over (resumed) or ended first, never run twice."""

    def alive(self, state: Any, stage: Any) -> bool:
        """The stage's session still runs (and is this run's)."""

    def waiting(self, state: Any, stage: Any) -> Optional[str]:
        """What the session waits for (None: nothing known)."""

    def stop(self, state: Any, stage: Any) -> list[str]:
        """End the stage's session(s) this run started; return what was ended."""

    def attach(self, state: Any, stage: Any) -> Optional[str]:
        """The command that shows the session to the user."""

    def kill_target(self, state: Any, stage: Any) -> Optional[str]:
        """What ``autorun_py.killer`` ends after a merge (None: nothing)."""


def launcher_name(state: Any) -> str:
    name = state.extra.get("launcher") if hasattr(state, "extra") else None
    return str(name or DEFAULT)


def check_name(name: str, where: str = "--launcher") -> str:
    if name not in NAMES:
        raise AutorunError(f"{where}: unknown launcher {name!r} (one of: {', '.join(NAMES)})")
    return name


def get(name: str, tmux: Any = None) -> Launcher:
    check_name(name, "launcher in status.json")
    if name == "background":
        from autorun_py.launchers.background import BackgroundLauncher

        return BackgroundLauncher()
    if name == "remote":
        from autorun_py.launchers.remote import RemoteLauncher

        return RemoteLauncher()
    from autorun_py.launchers.tmux_launcher import TmuxLauncher
    from autorun_py.tmux import Tmux

    return TmuxLauncher(tmux or Tmux.from_env())


def for_run(state: Any, tmux: Any = None) -> Launcher:
    """The launcher of the run ``state`` (a :class:`~autorun_py.state.RunState`)."""
    return get(launcher_name(state), tmux)


def uses_tmux(state: Any) -> bool:
    return launcher_name(state) == "tmux"


def stage_alive(tmux: Any, state: Any, stage: Any) -> bool:
    return for_run(state, tmux).alive(state, stage)


def stop_stage(state: Any, stage: Any, tmux: Any = None) -> list[str]:
    return for_run(state, tmux).stop(state, stage)


def kill_target(state: Any, stage: Any) -> Optional[str]:
    return for_run(state).kill_target(state, stage)


def attach_hint(state: Any, stage: Any) -> Optional[str]:
    try:
        return for_run(state).attach(state, stage)
    except AutorunError:
        return None


def record_started(launcher: Launcher, stage: Any, started: Started) -> None:
    """Remember what a start made in the stage's state (``launcher_handle``: the
    session now running the stage; ``launcher_handles``: every one, for clean-up).
    A tmux stage needs none of it: its session name is its handle."""
    if launcher.name == "tmux":
        return
    stage.extra["launcher_handle"] = started.handle
    handles = stage.extra.setdefault("launcher_handles", [])
    if isinstance(handles, list) and started.handle not in handles:
        handles.append(started.handle)
    if started.claude_session_id:
        stage.claude_session_id = started.claude_session_id
        ids = stage.extra.setdefault("claude_session_ids", [])
        if isinstance(ids, list) and started.claude_session_id not in ids:
            ids.append(started.claude_session_id)


def poll(state: Any) -> list[dict[str, Any]]:
    """What the run's stages reported since the last look, for launchers whose
    sessions report through git (``remote``: fetch each stage's branch, file its
    questions, merge a completed one through the gate). The monitor calls it once
    per check; a run without such stages costs nothing."""
    from autorun_py.state import IN_PROGRESS

    stages = getattr(state, "stages", {})
    if not any(
        st.status == IN_PROGRESS and (st.extra.get("launcher") or launcher_name(state)) == "remote"
        for st in stages.values()
    ):
        return []
    from autorun_py.launchers.remote import poll_run

    return [f.to_json() for f in poll_run(Path(state.orch_dir))]
