"""A stage's statuses, declared once: the state model (``state.py``) and the pure
scheduler (``schedule.py``) both import them from here (a module of constants,
so the bookkeeping calls that load ``state`` pay nothing for the scheduler)."""

from __future__ import annotations

PENDING = "pending"
IN_PROGRESS = "in_progress"
COMPLETED = "completed"
FAILED = "failed"
BLOCKED = "blocked"
CANCELLED = "cancelled"  # stopped by `autorun cancel`; its branch and worktree are kept
STATUSES: tuple[str, ...] = (PENDING, IN_PROGRESS, COMPLETED, FAILED, BLOCKED, CANCELLED)
TERMINAL = frozenset({COMPLETED, FAILED, BLOCKED, CANCELLED})
