"""A stage's legal moves and what each one records (stamps, events), inside a
:meth:`~autorun_py.state.store.StatusStore.transaction`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from autorun_py.errors import AutorunError
from autorun_py.eventlog import utc_now
from autorun_py.state.schema import RUN_COMPLETED, RUN_FINISHED_WITH_FAILURES, RUN_RUNNING
from autorun_py.state.stage import (
    BLOCKED,
    CANCELLED,
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    PENDING,
    PHASES,
    STATUS_FILE,
    StageState,
)
from autorun_py.state.store import Transaction

# Legal stage transitions: from -> allowed targets.
TRANSITIONS: dict[str, frozenset[str]] = {
    # pending -> failed: its launch keeps failing; -> cancelled: `autorun cancel`
    PENDING: frozenset({IN_PROGRESS, BLOCKED, FAILED, CANCELLED}),
    IN_PROGRESS: frozenset({COMPLETED, FAILED, PENDING, CANCELLED}),  # -> pending: launch failed
    FAILED: frozenset({PENDING}),  # retry
    BLOCKED: frozenset({PENDING}),  # the failed (or cancelled) ancestor is retried
    CANCELLED: frozenset({PENDING}),  # retry
    COMPLETED: frozenset(),
}


def transition(txn: Transaction, number: int, target: str, **event_fields: Any) -> StageState:
    """Move stage ``number`` to ``target``, rejecting illegal moves; stamps and events."""
    state = txn.state
    stage = state.stage(number)
    if target not in TRANSITIONS.get(stage.status, frozenset()):
        raise AutorunError(
            f"stage {number} ({stage.name}) is {stage.status}; it cannot become {target}",
            path=Path(state.orch_dir) / STATUS_FILE,
        )
    now = utc_now()
    previous = stage.status
    stage.status = target
    if target == IN_PROGRESS:
        stage.started_at = stage.started_at or now
        stage.failure = None
        txn.emit("stage_started", stage=number, name=stage.name, **event_fields)
    elif target == COMPLETED:
        stage.completed_at = now
        stage.merge_state = None
        txn.emit("stage_completed", stage=number, name=stage.name, **event_fields)
    elif target == FAILED:
        stage.failed_at = now
        txn.emit("stage_failed", stage=number, name=stage.name, **event_fields)
    elif target == BLOCKED:
        txn.emit("stage_blocked", stage=number, name=stage.name, **event_fields)
    elif target == CANCELLED:
        stage.failed_at = now  # when it ended without a merge (durations use it)
        stage.extra["cancelled_at"] = now
        txn.emit("stage_cancelled", stage=number, name=stage.name, **event_fields)
    elif target == PENDING:
        txn.emit("stage_reset", stage=number, name=stage.name, previous=previous, **event_fields)
    return stage


def update_phase(
    txn: Transaction,
    number: int,
    phase: str,
    action: str,
    *,
    current: Optional[int] = None,
    total: Optional[int] = None,
) -> StageState:
    """Record a phase start or end (``autorun phase``); the stage must be in progress."""
    if phase not in PHASES:
        raise AutorunError(f"unknown phase {phase!r} (phases: {', '.join(PHASES)})")
    if action not in ("started", "completed"):
        raise AutorunError(f"unknown phase action {action!r} (started or completed)")
    stage = txn.state.stage(number)
    if stage.status != IN_PROGRESS:
        raise AutorunError(
            f"stage {number} ({stage.name}) is {stage.status}; phases are recorded only "
            "for a stage in progress",
            path=Path(txn.state.orch_dir) / STATUS_FILE,
        )
    ph = stage.phase(phase)
    now = utc_now()
    if action == "started":
        if ph.started_at is None or ph.completed_at is not None:
            ph.started_at = now
            ph.completed_at = None
    else:
        ph.started_at = ph.started_at or now
        ph.completed_at = now
    if current is not None:
        ph.current_phase = current
    if total is not None:
        ph.total_phases = total
    fields: dict[str, Any] = {"stage": number, "phase": phase, "status": action}
    if current is not None:
        fields["current_phase"] = current
    if total is not None:
        fields["total_phases"] = total
    txn.emit("phase_status", **fields)
    return stage


def block_descendants(txn: Transaction, number: int) -> list[int]:
    """Mark every pending descendant of ``number`` blocked; return them."""
    from autorun_py.graph import descendants

    blocked = []
    for d in sorted(descendants(txn.state.deps(), number)):
        if txn.state.stages.status_of(d) == PENDING:
            transition(txn, d, BLOCKED, blocked_by=number)
            blocked.append(d)
    return blocked


def fail_stage(txn: Transaction, number: int, reason: str) -> list[int]:
    """Mark a stage failed (keeping its branch and worktree) and block its descendants."""
    stage = transition(txn, number, FAILED, reason=reason)
    stage.failure = reason
    blocked = block_descendants(txn, number)
    finish_if_done(txn)
    return blocked


def finish_if_done(txn: Transaction) -> bool:
    """When every stage is terminal, mark the run finished (once) and say so."""
    state = txn.state
    if state.status != RUN_RUNNING or not state.is_finished():
        return False
    counts = state.counts()
    end_run(
        txn,
        RUN_COMPLETED if counts[COMPLETED] == len(state.stages) else RUN_FINISHED_WITH_FAILURES,
    )
    return True


def end_run(txn: Transaction, result: str) -> None:
    """Mark the run ended with ``result`` (completed, finished_with_failures, cancelled)."""
    state = txn.state
    counts = state.counts()
    state.status = result
    state.completed_at = utc_now()
    txn.emit(
        "orchestration_complete",
        result=result,
        completed=counts[COMPLETED],
        failed=counts[FAILED],
        blocked=counts[BLOCKED],
        cancelled=counts[CANCELLED],
        total_stages=len(state.stages),
    )
