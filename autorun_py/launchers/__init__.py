"""Launchers: what runs a stage's Claude Code session, chosen per stage at claim.

The scheduler, merge, gate, review, monitor and report never ask which one runs
a stage; they call the few functions here, which pick the stage's launcher from
``status.json``: the stage's ``"launcher"`` (set when it was claimed), else the
run's ``"launcher"`` (absent = ``tmux``), so files written before stages had one
read the same.

A run may mix launchers with a cap each (``--launcher tmux=2,background=4``,
kept as the run's ``"launchers"``: ``[{"name": "tmux", "max_parallel": 2},
...]``): at claim time each ready stage gets the first launcher, in the order
given, with a free slot (:func:`place`); the run's total cap still applies.

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

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Protocol

from autorun_py.errors import AutorunError
from autorun_py.launchers.spec import (
    DEFAULT,
    NAMES,
    LauncherCap,
    check_name,
    from_value,
    parse_spec,
    spec_text,
)


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
    """The run's own launcher (the first of its launchers)."""
    name = state.extra.get("launcher") if hasattr(state, "extra") else None
    return str(name or DEFAULT)


def run_caps(state: Any) -> list[LauncherCap]:
    """The run's launchers with their caps, in the order stages are placed on them
    (``status.json`` ``"launchers"``; absent = the run's one launcher, no cap of its own)."""
    raw = state.extra.get("launchers") if hasattr(state, "extra") else None
    if raw is None:
        return [LauncherCap(launcher_name(state))]
    return from_value(raw, "launchers in status.json")


def set_run_launchers(extra: dict[str, Any], caps: Sequence[LauncherCap]) -> None:
    """Record a new run's launchers: ``"launcher"`` (the first: what every reader of
    an older autorun knows) and, for more than one or a cap, ``"launchers"``."""
    extra["launcher"] = caps[0].name
    if len(caps) > 1 or caps[0].max_parallel is not None:
        extra["launchers"] = [c.to_raw() for c in caps]


def stage_launcher_name(state: Any, stage: Any) -> str:
    """The launcher that runs (or ran) ``stage``: its own, else the run's (not checked
    here: :func:`for_stage` refuses an unknown one)."""
    name = stage.extra.get("launcher") if hasattr(stage, "extra") else None
    return launcher_name(state) if name is None else str(name)


def run_launcher_names(state: Any) -> list[str]:
    """Every launcher the run uses or used: its own, in order, then any a stage names."""
    names = [c.name for c in run_caps(state)]
    for stage in state.stages.values():
        name = stage_launcher_name(state, stage)
        if name not in names:
            names.append(name)
    return names


def running_counts(state: Any, running_status: str = "in_progress") -> dict[str, int]:
    counts: dict[str, int] = {}
    stages = state.stages
    status_of = getattr(stages, "status_of", None)  # (a StageMap: no stage converted)
    for n in stages:
        status = status_of(n) if status_of is not None else stages[n].status
        if status == running_status:
            name = stage_launcher_name(state, stages[n])
            counts[name] = counts.get(name, 0) + 1
    return counts


def assign(
    chosen: Iterable[int], caps: Sequence[LauncherCap], running: Mapping[str, int]
) -> dict[int, str]:
    """Pure: each stage of ``chosen`` (best first) on the first launcher of ``caps``
    with a free slot, given ``running`` stages per launcher; a stage that finds none
    is left out (it waits for a slot)."""
    busy = dict(running)
    out: dict[int, str] = {}
    for n in chosen:
        for cap in caps:
            if cap.max_parallel is None or busy.get(cap.name, 0) < cap.max_parallel:
                out[n] = cap.name
                busy[cap.name] = busy.get(cap.name, 0) + 1
                break
    return out


def place(state: Any, chosen: Sequence[int]) -> dict[int, str]:
    """Where each of the scheduler's ``chosen`` stages runs (see :func:`assign`)."""
    return assign(chosen, run_caps(state), running_counts(state))


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
    """The run's own launcher (a :class:`~autorun_py.state.RunState`); a stage's is
    :func:`for_stage`."""
    return get(launcher_name(state), tmux)


def for_stage(state: Any, stage: Any, tmux: Any = None) -> Launcher:
    """The launcher that runs ``stage`` of the run ``state``."""
    name = stage_launcher_name(state, stage)
    check_name(name, f"stages.{stage.number}.launcher in status.json")
    return get(name, tmux)


def uses_tmux(state: Any) -> bool:
    """Some stage of the run runs (or may run) in tmux."""
    return "tmux" in run_launcher_names(state)


def stage_uses_tmux(state: Any, stage: Any) -> bool:
    return stage_launcher_name(state, stage) == "tmux"


def stage_alive(tmux: Any, state: Any, stage: Any) -> bool:
    return for_stage(state, stage, tmux).alive(state, stage)


def stage_waiting(state: Any, stage: Any) -> Optional[str]:
    """What the stage's session waits for, when its launcher knows (None: nothing known)."""
    try:
        return for_stage(state, stage).waiting(state, stage)
    except AutorunError:
        return None


def monitor_waiting(state: Any, stage: Any) -> Optional[str]:
    """What the monitor and the hooks recorded a stage's session waits for (its
    ``monitor.stages.N`` record: ``attention``, ``limit``, ``stall_reported``)."""
    stages = state.monitor.get("stages") if isinstance(state.monitor, dict) else None
    rec = stages.get(str(stage.number)) if isinstance(stages, dict) else None
    if not isinstance(rec, dict):
        return None
    att = rec.get("attention")
    if isinstance(att, dict):
        return f"permission for {att.get('tool') or 'a tool'}"
    limit = rec.get("limit")
    if isinstance(limit, dict):
        until = limit.get("until")
        return f"{limit.get('kind') or 'usage limit'}" + (f" until {until}" if until else "")
    if rec.get("stall_reported"):
        return "input (stalled at its prompt)"
    return None


def stop_stage(state: Any, stage: Any, tmux: Any = None) -> list[str]:
    return for_stage(state, stage, tmux).stop(state, stage)


def kill_target(state: Any, stage: Any) -> Optional[str]:
    return for_stage(state, stage).kill_target(state, stage)


def attach_hint(state: Any, stage: Any) -> Optional[str]:
    try:
        return for_stage(state, stage).attach(state, stage)
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
        stage.add_session_id(started.claude_session_id)


def poll(state: Any, merge: Callable[[Path, int], Any]) -> list[dict[str, Any]]:
    """What the run's stages reported since the last look, for launchers whose
    sessions report through git (``remote``: fetch each stage's branch, file its
    questions, merge a completed one through the gate with ``merge``, which is
    :func:`autorun_py.merge.merge`, passed in: merge sits above the launchers).
    The monitor calls it once per check; a run without such stages costs nothing."""
    from autorun_py.state import IN_PROGRESS

    stages = getattr(state, "stages", {})
    if not any(
        st.status == IN_PROGRESS and stage_launcher_name(state, st) == "remote"
        for st in stages.values()
    ):
        return []
    from autorun_py.launchers.remote_poll import poll_run

    return [f.to_json() for f in poll_run(Path(state.orch_dir), merge)]


__all__ = [
    "DEFAULT",
    "Launcher",
    "LauncherCap",
    "NAMES",
    "Started",
    "assign",
    "attach_hint",
    "check_name",
    "for_run",
    "for_stage",
    "from_value",
    "get",
    "kill_target",
    "launcher_name",
    "monitor_waiting",
    "parse_spec",
    "place",
    "poll",
    "record_started",
    "run_caps",
    "run_launcher_names",
    "running_counts",
    "set_run_launchers",
    "spec_text",
    "stage_alive",
    "stage_launcher_name",
    "stage_uses_tmux",
    "stage_waiting",
    "stop_stage",
    "uses_tmux",
]
