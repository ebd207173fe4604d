"""Stopping a run: ``autorun cancel RUN [--stage N]``.

The intent is recorded first, in one status transaction under the repository's
merge lock (so no merge of this repository is half-way through its git part):
what was running or waiting becomes ``cancelled`` (with ``--stage``: that stage,
and its pending descendants become ``blocked``; otherwise every pending or
running stage, and the run ends ``cancelled``). Then the sessions of every
cancelled stage that this run started are killed (a session of that name that
another run or the user started is left alone) and, for a whole run, its
monitor is stopped. Branches and worktrees are kept for inspection (``autorun
clean`` removes them). Running it again finishes what a killed first call left:
idempotent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from autorun_py.errors import AutorunError
from autorun_py.state import (
    CANCELLED,
    IN_PROGRESS,
    PENDING,
    RUN_CANCELLED,
    RUN_RUNNING,
    StatusStore,
    block_descendants,
    end_run,
    finish_if_done,
    transition,
)
from autorun_py.tmux import Tmux


@dataclass
class CancelResult:
    orch_dir: str
    run: str
    stage: Optional[int]
    cancelled: list[int] = field(default_factory=list)  # by this call
    was_running: list[int] = field(default_factory=list)
    blocked: list[int] = field(default_factory=list)
    sessions_killed: list[str] = field(default_factory=list)
    sessions_left: list[str] = field(default_factory=list)  # not this run's: untouched
    monitor_stopped: Optional[int] = None
    run_status: str = ""
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "orch_dir": self.orch_dir,
            "run": self.run,
            "stage": self.stage,
            "cancelled": self.cancelled,
            "was_running": self.was_running,
            "blocked": self.blocked,
            "sessions_killed": self.sessions_killed,
            "sessions_left": self.sessions_left,
            "monitor_stopped": self.monitor_stopped,
            "run_status": self.run_status,
            "changed": bool(self.cancelled or self.sessions_killed or self.monitor_stopped),
        }

    def to_text(self) -> str:
        lines = []
        if self.cancelled:
            running = (
                f" (running: {', '.join(map(str, self.was_running))})" if self.was_running else ""
            )
            lines.append(f"cancelled stage(s) {', '.join(map(str, self.cancelled))}{running}")
        elif self.note:
            lines.append(self.note)
        if self.blocked:
            lines.append(f"blocked (they need it): {', '.join(map(str, self.blocked))}")
        if self.sessions_killed:
            lines.append(f"sessions ended: {', '.join(self.sessions_killed)}")
        for name in self.sessions_left:
            lines.append(f"left alone: tmux session {name} (not this run's)")
        if self.monitor_stopped:
            lines.append(f"monitor stopped (pid {self.monitor_stopped})")
        lines.append(
            f"run {self.run}: {self.run_status}. Branches and worktrees are kept; "
            f"`autorun retry {self.run} N` starts a stage again, "
            f"`autorun clean {self.run}` removes them"
        )
        return "\n".join(lines)


def cancel(orch_dir: Path, stage: Optional[int] = None) -> CancelResult:
    """Cancel a run (or one stage of it); see the module doc."""
    from autorun_py import gitmerge

    orch_dir = Path(orch_dir)
    store = StatusStore(orch_dir)
    probe = store.read()
    if stage is not None:
        probe.stage(stage)  # an unknown stage: one clear error, nothing changed
    result = CancelResult(orch_dir=str(orch_dir), run=orch_dir.name, stage=stage)
    with gitmerge.repo_merge_lock(Path(probe.project_root)), store.transaction() as txn:
        state = txn.state
        if stage is None:
            targets = [
                n for n, s in sorted(state.stages.items()) if s.status in (PENDING, IN_PROGRESS)
            ]
        else:
            st = state.stage(stage)
            targets = [stage] if st.status in (PENDING, IN_PROGRESS) else []
            if not targets:
                result.note = f"stage {stage} ({st.name}) is {st.status}; nothing to cancel"
        for n in targets:
            previous = state.stages[n].status
            if previous == IN_PROGRESS:
                result.was_running.append(n)
            transition(txn, n, CANCELLED, source="cancel", previous=previous)
        result.cancelled = targets
        if stage is not None:
            if targets:
                result.blocked = block_descendants(txn, stage)
                finish_if_done(txn)
        elif state.status == RUN_RUNNING:
            end_run(txn, RUN_CANCELLED)
        elif not targets:
            result.note = f"run {orch_dir.name} is {state.status}; nothing to cancel"
        result.run_status = state.status
        wanted = stage
        sessions = [
            s.session
            for n, s in sorted(state.stages.items())
            if s.status == CANCELLED and s.session and (wanted is None or n == wanted)
        ]
        monitor = dict(state.monitor)
    # The state says cancelled; now end what still runs (again, after a killed call).
    tmux = Tmux.from_env()
    for name in sessions:
        with contextlib.suppress(AutorunError):
            if not tmux.has_session(name):
                continue
            if tmux.kill_owned_session(name, str(orch_dir)):
                result.sessions_killed.append(name)
            else:
                result.sessions_left.append(name)
    if stage is None:
        result.monitor_stopped = _stop_monitor(orch_dir, monitor)
        if result.cancelled:
            from autorun_py.report import write_report

            with contextlib.suppress(AutorunError, OSError):
                write_report(orch_dir)  # the monitor would have written it at the end
    return result


def _stop_monitor(orch_dir: Path, monitor: dict[str, Any], wait: float = 10.0) -> Optional[int]:
    """SIGTERM the run's monitor when it is alive and holds the run's monitor lock."""
    from autorun_py.monitor import monitor_pid

    pid = monitor.get("pid")
    if not isinstance(pid, int) or pid <= 0 or monitor_pid(orch_dir) != pid:
        return None  # no monitor, or that pid is not (any more) this run's monitor
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and monitor_pid(orch_dir) is not None:
        time.sleep(0.05)
    return pid
