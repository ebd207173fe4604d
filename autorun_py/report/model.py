"""The report's data: a run's figures (:class:`RunReport`) and each stage's
(:class:`StageReport`), as the collector builds them and the renderers read them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from autorun_py import transcripts
from autorun_py.report.times import _now as _now
from autorun_py.report.times import _ts as _ts
from autorun_py.timeutil import format_utc
from autorun_py.transcripts import TokenUsage, UsageSummary


@dataclass
class PhaseTime:
    """When one phase of a stage started and ended."""
    name: str
    started_at: str
    completed_at: Optional[str]
    seconds: float
    open: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "seconds": self.seconds,
            "open": self.open,
        }


@dataclass
class GitStats:
    """What a stage's branch changed."""
    commits: int
    files_changed: int
    lines_added: int
    lines_deleted: int

    def to_json(self) -> dict[str, int]:
        return {
            "commits": self.commits,
            "files_changed": self.files_changed,
            "lines_added": self.lines_added,
            "lines_deleted": self.lines_deleted,
        }


@dataclass
class StageReport:
    """One stage's figures for the report."""
    number: int
    name: str
    status: str
    depends_on: list[int]
    started_at: Optional[str]
    ended_at: Optional[str]
    seconds: Optional[float]
    phases: list[PhaseTime]
    git: Optional[GitStats]
    merge_commit: Optional[str]
    conflicts: int
    conflict_files: list[str]
    nudges: int
    restarts: int
    limit_waits: int
    usage: UsageSummary
    critical: bool = False
    failure: Optional[str] = None
    blocked_by: Optional[int] = None
    # the merge gate: verify runs, red ones, seconds spent verifying this stage's candidates
    gate: dict[str, Any] = field(default_factory=dict)
    # Seconds spent waiting, not working: stalled, limit, permission, dead.
    waits: dict[str, float] = field(default_factory=dict)
    # Where it ran: its launcher (None: never started), the sessions that ran it
    # (tmux session, background ids, cloud session ids) and how to look at it.
    launcher: Optional[str] = None
    sessions: list[str] = field(default_factory=list)
    attach: Optional[str] = None

    @property
    def work_seconds(self) -> Optional[float]:
        if self.seconds is None:
            return None
        return max(0.0, self.seconds - sum(self.waits.values()))

    def to_json(self) -> dict[str, Any]:
        return {
            "waits": {k: round(v, 1) for k, v in sorted(self.waits.items())},
            "work_seconds": self.work_seconds,
            "number": self.number,
            "name": self.name,
            "status": self.status,
            "depends_on": self.depends_on,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "seconds": self.seconds,
            "phases": [p.to_json() for p in self.phases],
            "git": None if self.git is None else self.git.to_json(),
            "merge_commit": self.merge_commit,
            "conflicts": self.conflicts,
            "conflict_files": self.conflict_files,
            "nudges": self.nudges,
            "restarts": self.restarts,
            "limit_waits": self.limit_waits,
            "tokens": self.usage.to_json(),
            "critical": self.critical,
            "failure": self.failure,
            "blocked_by": self.blocked_by,
            "gate": self.gate,
            "launcher": self.launcher,
            "sessions": self.sessions,
            "attach": self.attach,
        }


@dataclass
class RunReport:
    """A run's figures for the report."""
    run: str
    plan_name: str
    plan_path: str
    orch_dir: str
    project_root: str
    base_branch: str
    status: str
    schedule: str
    max_parallel: Optional[int]
    started_at: str
    ended_at: str
    finished: bool
    wall_seconds: float
    busy_seconds: float
    parallelism: float
    bound_seconds: float
    bound_parallelism: float
    critical_path: list[int]
    planned_critical_path: list[int]
    stages: list[StageReport]
    total: TokenUsage
    by_model: dict[str, TokenUsage]
    unpriced_models: list[str]
    events: dict[str, int]
    generated_at: str = field(default_factory=lambda: format_utc(_now()))
    verify_command: Optional[str] = None  # the merge gate's command (None: not gated)
    # the run's launchers in placement order with their caps ({"name", "max_parallel"})
    launchers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def efficiency(self) -> float:
        """The lower bound over the wall time (1.0: no schedule could have done better)."""
        return self.bound_seconds / self.wall_seconds if self.wall_seconds > 0 else 1.0

    def to_json(self) -> dict[str, Any]:
        from autorun_py.report.charts import dependency_graph, gantt  # they read this class

        return {
            "run": self.run,
            "plan_name": self.plan_name,
            "plan_path": self.plan_path,
            "orch_dir": self.orch_dir,
            "project_root": self.project_root,
            "base_branch": self.base_branch,
            "status": self.status,
            "schedule": self.schedule,
            "max_parallel": self.max_parallel,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "finished": self.finished,
            "wall_seconds": self.wall_seconds,
            "busy_seconds": self.busy_seconds,
            "parallelism": round(self.parallelism, 4),
            "bound_seconds": self.bound_seconds,
            "bound_parallelism": round(self.bound_parallelism, 4),
            "efficiency": round(self.efficiency, 4),
            "critical_path": self.critical_path,
            "planned_critical_path": self.planned_critical_path,
            "stages": [s.to_json() for s in self.stages],
            "tokens": self.total.to_json(),
            "tokens_by_model": {m: u.to_json() for m, u in sorted(self.by_model.items())},
            "unpriced_models": self.unpriced_models,
            "price_source": transcripts.PRICE_SOURCE,
            "events": self.events,
            "generated_at": self.generated_at,
            "verify_command": self.verify_command,
            "launchers": self.launchers,
            "gantt": gantt(self),
            "graph": dependency_graph(self),
        }
