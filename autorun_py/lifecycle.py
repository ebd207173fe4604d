"""Stage failure and retry (of a failed or a cancelled stage)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autorun_py import launchers, worktrees
from autorun_py.errors import AutorunError
from autorun_py.graph import descendants
from autorun_py.state import (
    BLOCKED,
    CANCELLED,
    FAILED,
    PENDING,
    RUN_RUNNING,
    StatusStore,
    fail_stage,
    transition,
)
from autorun_py.tmux import Tmux

if TYPE_CHECKING:
    from autorun_py.config import Config


def fail(orch_dir: Path, number: int, reason: str, *, environ: Mapping[str, str]) -> dict[str, Any]:
    """Mark a stage failed; block its pending descendants. Branch and worktree are kept.
    ``environ``: the caller's, for the configuration an interrupted merge needs."""
    if not reason.strip():
        raise AutorunError("give a reason: --reason TEXT")
    from autorun_py.recovery import settle_merge_intents

    settle_merge_intents(orch_dir, [number], source="stage fail", environ=environ)
    with StatusStore(orch_dir).transaction() as txn:
        blocked = fail_stage(txn, number, reason.strip())
        stage = txn.state.stages[number]
        return {
            "stage": number,
            "status": stage.status,
            "blocked": blocked,
            "branch": stage.branch,
            "worktree": stage.worktree,
        }


def retry(orch_dir: Path, number: int, *, config: Config) -> dict[str, Any]:
    """Put a failed or cancelled stage back to pending, unblock what it blocked (and
    the stages a cancelled run never started that wait on it), and launch what is ready.

    The old worktree is removed (its branch stays, with any commits); the new
    attempt branches from the base branch's current tip.
    """
    from autorun_py.launch import launch_ready

    store = StatusStore(orch_dir)
    with store.transaction() as txn:
        state = txn.state
        stage = state.stage(number)
        if stage.status not in (FAILED, CANCELLED):
            raise AutorunError(
                f"stage {number} ({stage.name}) is {stage.status}; only a failed or cancelled "
                "stage is retried"
            )
        old_worktree, old_session = stage.worktree, stage.session
        if not launchers.stage_uses_tmux(state, stage):  # another launcher ends its own
            with contextlib.suppress(AutorunError):
                launchers.stop_stage(state, stage)
            old_session = None
        transition(txn, number, PENDING, reason="retry")
        stage.failure = None
        stage.merge_state = None
        stage.merge_detail = {}
        deps = state.deps()
        below = set(descendants(deps, number))
        # Stages a cancelled run never started, waiting on this one: they wait again.
        revived = {
            d
            for d in below
            if state.stages[d].status == CANCELLED and not state.stages[d].launched_at
        }
        failed = {
            n
            for n, s in state.stages.items()
            if s.status in (FAILED, CANCELLED) and n not in revived
        }
        still_blocked = set().union(*(descendants(deps, f) for f in failed)) if failed else set()
        unblocked = []
        for d in sorted(below):
            if d in still_blocked:
                continue
            if state.stages[d].status == BLOCKED or d in revived:
                transition(txn, d, PENDING, reason=f"stage {number} retried")
                unblocked.append(d)
        if state.status != RUN_RUNNING:
            state.status = RUN_RUNNING
            state.completed_at = None
        txn.emit("stage_retry", stage=number, unblocked=unblocked)
        repo = Path(state.project_root)
    if old_session:
        with contextlib.suppress(AutorunError):
            Tmux.from_env().kill_owned_session(old_session, str(orch_dir))
    warnings = []
    if old_worktree:
        # Only a worktree autorun created for this run; anything else stays.
        warn = worktrees.try_remove(repo, Path(old_worktree), run=str(orch_dir))
        if warn:
            warnings.append(warn)
    result = launch_ready(orch_dir, config=config)
    out: dict[str, Any] = {
        "stage": number,
        "unblocked": unblocked,
        "launched": result.launched,
        "launch_failed": [{"stage": n, "error": e} for n, e in result.failed],
    }
    if warnings:
        out["warnings"] = warnings
    return out
