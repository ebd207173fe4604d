"""The side channels of a run's state, typed: the monitor's record
(``status.json``'s ``monitor``, and its per-stage ``monitor.stages.<n>`` that the
monitor and the hooks share) and a stage's counters.

They are JSON objects that keep their keys in the order they were set (so an
existing file is rewritten byte for byte); these TypedDicts give each key its
name and type, so that mypy checks every call site (a misspelt key is an error,
not a record nobody reads).
"""

from __future__ import annotations

from typing import Any, Literal, Optional, TypedDict

# A stage's counters (``stages.<n>.counters``), shown by ``status`` and the report.
CounterName = Literal[
    "nudges",  # the monitor nudged a stalled session
    "restarts",  # recovery restarted a dead session
    "limit_waits",  # a usage limit was waited out
    "conflicts",  # a merge conflicted
    "verify_runs",  # the merge gate ran the verify command
    "verify_failures",  # ... and it failed
    "stop_refusals",  # the Stop hook refused a stop
]


class LimitRecord(TypedDict, total=False):
    """A usage limit being waited out (from the pane or from the hook)."""

    line: Optional[str]
    count: int
    reset_at: Optional[str]
    until: str  # never continue before it
    named: bool  # the limit named its reset time
    source: str  # "hook" when the StopFailure hook saw it
    kind: str
    at: str


class StageWatch(TypedDict, total=False):
    """``monitor.stages.<n>``: what the monitor and the hooks remember of a stage."""

    nudge_streak: int  # nudges since the pane last changed
    stall_reported: bool
    dialog_reported: bool
    review_waiting: bool
    limit: LimitRecord
    limit_backoff: Any  # seconds, doubling per limit up to a cap
    limit_handled: dict[str, Any]  # the pane's limit line already handled
    attention: dict[str, Any]  # what the session waits for (a permission, a question)
    blocked_fp: str  # the blocked merge last retried (recovery)
    refusals: int  # Stop-hook refusals of the same state
    fingerprint: str  # that state
    last_stop_at: str


class MonitorState(TypedDict, total=False):
    """``monitor``: the run's monitor process and its per-stage records."""

    pid: Optional[int]
    started_at: str
    interval: float
    gap: float
    exited_at: Optional[str]
    exit_reason: Optional[str]
    disabled: bool  # `orchestrate --no-monitor`: later launches start none
    stages: dict[str, StageWatch]


def stage_watch(monitor: MonitorState, number: int) -> StageWatch:
    """The monitor's record of stage ``number`` inside ``monitor`` (made if missing)."""
    stages = monitor.setdefault("stages", {})
    rec = stages.setdefault(str(number), {})
    assert isinstance(rec, dict)
    return rec
