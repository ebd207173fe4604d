"""``autorun resume``: bring a run back after a crash or a reboot (idempotent).

:func:`resume_run` appends the events a killed writer left unappended, removes
temp files of writers killed mid-write, finishes or rolls back interrupted
merges and retries merges blocked by the user's changes when the base checkout
changed (:mod:`autorun_py.recovery`), recovers every stage in progress whose
session is gone (:func:`autorun_py.recovery.recover_dead_stage`), launches the
stages that are ready but not running (:func:`autorun_py.launch.launch_ready`),
and starts the monitor unless one runs (:mod:`autorun_py.supervisor`). A second
``resume`` right after the first finds live sessions and changes nothing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from autorun_py import cleanup, launchers
from autorun_py.config import Config
from autorun_py.errors import AutorunError
from autorun_py.events import ensure_flushed
from autorun_py.launch import launch_ready
from autorun_py.recovery import (
    Recovery,
    finish_interrupted_merges,
    recover_dead_stage,
    retry_blocked_if_changed,
)
from autorun_py.state import IN_PROGRESS, RUN_RUNNING, StatusStore
from autorun_py.supervisor import monitor_pid, spawn_monitor
from autorun_py.tmux import Tmux


@dataclass
class ResumeResult:
    """What `autorun resume` found and did."""
    orch_dir: str
    plan_name: str
    actions: list[Recovery] = field(default_factory=list)
    launched: list[int] = field(default_factory=list)
    alive: list[int] = field(default_factory=list)
    finished: bool = False
    monitor_pid: Optional[int] = None
    monitor_started: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "orch_dir": self.orch_dir,
            "plan_name": self.plan_name,
            "actions": [a.to_json() for a in self.actions],
            "launched": self.launched,
            "alive": self.alive,
            "finished": self.finished,
            "monitor_pid": self.monitor_pid,
            "monitor_started": self.monitor_started,
            "changed": bool(self.actions or self.launched),
        }

    def to_text(self) -> str:
        if self.finished:
            return f"{self.plan_name}: the run is finished; nothing to resume"
        lines = []
        for a in self.actions:
            lines.append(f"stage {a.stage}: {a.action}" + (f" — {a.detail}" if a.detail else ""))
        if self.launched:
            lines.append("launched (were ready): " + ", ".join(map(str, self.launched)))
        if self.alive:
            lines.append("still running: " + ", ".join(f"stage {n}" for n in self.alive))
        if not self.actions and not self.launched:
            lines.append(
                f"{self.plan_name}: every stage in progress has its session; nothing to do"
            )
        if self.monitor_pid is not None:
            verb = "started" if self.monitor_started else "already running"
            lines.append(f"monitor {verb} (pid {self.monitor_pid})")
        return "\n".join(lines)


def resume_run(
    orch_dir: Path,
    *,
    monitor: bool = True,
    config: Config,
    tmux: Optional[Tmux] = None,
) -> ResumeResult:
    """``autorun resume``: see the module doc. Idempotent. ``config``: the user's
    configuration as the CLI edge loaded it."""
    tmux = tmux or Tmux.from_env()
    store = StatusStore(orch_dir)
    ensure_flushed(orch_dir)  # events of a writer killed after its state write
    state = store.read()
    result = ResumeResult(orch_dir=str(orch_dir), plan_name=state.plan_name)
    watched = monitor_pid(orch_dir) is not None  # a launch below starts one when not
    with contextlib.suppress(AutorunError, OSError):  # merged stages' leftover worktrees
        cleanup.sweep(orch_dir, state)
    if state.status != RUN_RUNNING or state.is_finished():
        result.finished = True
        return result
    store.clean_stale_temps()  # left by writers killed mid-write
    result.actions += finish_interrupted_merges(orch_dir, source="resume", config=config)
    result.actions += retry_blocked_if_changed(orch_dir, source="resume", config=config)
    state = store.read()
    for n in sorted(state.stages):
        st = state.stages[n]
        if st.status != IN_PROGRESS or st.merge_state == "blocked":
            continue
        if launchers.stage_alive(tmux, state, st):
            result.alive.append(n)
            continue
        try:
            rec = recover_dead_stage(orch_dir, n, config=config, tmux=tmux, source="resume")
        except AutorunError as exc:  # one stage's refusal does not stop the others
            rec = Recovery(n, "error", str(exc))
        if rec.action != "skipped":
            result.actions.append(rec)
    result.launched = launch_ready(orch_dir, config=config, tmux=tmux, gap_source="resume").launched
    final = store.read()
    if result.actions or result.launched:
        with store.transaction() as txn:
            txn.emit(
                "run_resumed",
                actions=[a.to_json() for a in result.actions],
                launched=result.launched,
            )
    if final.is_finished():
        result.finished = True
    if monitor and not final.is_finished():
        pid = monitor_pid(orch_dir)
        if pid is None:
            pid = spawn_monitor(orch_dir)
        result.monitor_started = pid is not None and not watched
        result.monitor_pid = pid
    return result
