"""Gathering a run's figures for the report: ``status.json``, ``events.jsonl``, git
and Claude Code's transcripts, into a :class:`~autorun_py.report.model.RunReport`."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from autorun_py import git, launchers, transcripts
from autorun_py.errors import AutorunError
from autorun_py.events import read_events
from autorun_py.gate import spec_of
from autorun_py.report.model import GitStats, PhaseTime, RunReport, StageReport, _now, _ts
from autorun_py.state import (
    BLOCKED,
    CANCELLED,
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    PHASES,
    StageState,
    StatusStore,
)
from autorun_py.timeutil import format_utc
from autorun_py.transcripts import TokenUsage

# Events that start a wait (not work) of a stage, and what ends each kind.
_WAIT_ENDS = {
    "stalled": {"chained", "merge_complete", "stall_reported", "stage_restarted", "stop_progress"},
    "limit": {"usage_limit_continue_sent", "usage_limit_over", "chained", "merge_complete"},
    "permission": {"attention_cleared", "chained", "merge_complete"},
    "dead": {"stage_restarted", "merge_complete"},
}


def wait_intervals(
    events: Sequence[Mapping[str, Any]], number: int, end: datetime.datetime
) -> list[tuple[str, datetime.datetime, datetime.datetime]]:
    """When stage ``number`` waited instead of working: stalled (a stop refused again
    without progress, or the monitor found it idle), a limit, a permission prompt,
    a dead session until its restart."""
    out: list[tuple[str, datetime.datetime, datetime.datetime]] = []
    open_: dict[str, datetime.datetime] = {}
    for ev in events:
        if ev.get("stage") != number:
            continue
        t = str(ev.get("type", ""))
        ts = _ts(ev.get("ts"))
        if ts is None:
            continue
        if t == "stop_refused" and int(ev.get("refusal", 1) or 1) == 1:
            t = "stop_progress"  # the count started again: it had moved on
        for kind, ends in _WAIT_ENDS.items():
            if t in ends and kind in open_:
                out.append((kind, open_.pop(kind), ts))
        start = {
            "stop_refused": "stalled",
            "stall_detected": "stalled",
            "usage_limit_detected": "limit",
            "permission_waiting": "permission",
            "session_dead": "dead",
        }.get(t)
        if start and start not in open_:
            open_[start] = ts
    for kind, since in open_.items():
        out.append((kind, since, max(since, end)))
    return out


def _overlap(a0: datetime.datetime, a1: datetime.datetime, b0: datetime.datetime,
             b1: datetime.datetime) -> float:  # fmt: skip
    return max(0.0, (min(a1, b1) - max(a0, b0)).total_seconds())


def _phases(st: StageState, end: datetime.datetime) -> list[PhaseTime]:
    out = []
    for name in PHASES:
        ph = st.phases.get(name)
        if ph is None or not ph.started_at:
            continue
        s = _ts(ph.started_at)
        e = _ts(ph.completed_at) or end
        if s is None:
            continue
        out.append(
            PhaseTime(
                name,
                ph.started_at,
                ph.completed_at,
                max(0.0, (e - s).total_seconds()),
                ph.completed_at is None,
            )
        )
    out.sort(key=lambda p: p.started_at)
    return out


def _numstat(repo: Path, a: str, b: str) -> tuple[int, int, int]:
    out = git.git_out(["diff", "--numstat", "--no-renames", a, b], repo)
    files = added = deleted = 0
    for line in out.splitlines():
        parts = line.split("\t", 2)
        if len(parts) < 3:
            continue
        files += 1
        added += int(parts[0]) if parts[0].isdigit() else 0
        deleted += int(parts[1]) if parts[1].isdigit() else 0
    return files, added, deleted


def git_stats(repo: Path, st: StageState) -> Optional[GitStats]:
    """Commits and lines a stage brought: its merge's first-parent diff (or, not merged
    yet, its branch against its start commit). None when git cannot tell."""
    if not repo.is_dir():
        return None
    try:
        if st.merge_commit:
            parents = git.git_out(["rev-list", "--parents", "-n", "1", st.merge_commit], repo)
            ids = parents.split()
            if len(ids) == 3:
                first, second = ids[1], ids[2]
                n = int(git.git_out(["rev-list", "--count", f"{first}..{second}"], repo))
                return GitStats(n, *_numstat(repo, first, st.merge_commit))
            if st.start_commit:
                n = int(git.git_out(["rev-list", "--count", f"{st.start_commit}..{ids[0]}"], repo))
                return GitStats(n, *_numstat(repo, st.start_commit, ids[0]))
            return None
        if st.branch and st.start_commit and git.branch_exists(st.branch, repo):
            tip = f"refs/heads/{st.branch}"
            n = int(git.git_out(["rev-list", "--count", f"{st.start_commit}..{tip}"], repo))
            return GitStats(n, *_numstat(repo, st.start_commit, tip))
    except (AutorunError, ValueError):
        return None
    return None


def _known_transcripts(st: StageState) -> list[str]:
    """The transcript paths the stage's SessionStart hooks recorded (not guessed)."""
    raw = st.extra.get("claude_transcripts")
    return [v for v in raw.values() if isinstance(v, str)] if isinstance(raw, dict) else []


def _session_ids(st: StageState, events: Sequence[Mapping[str, Any]]) -> list[str]:
    ids: dict[str, None] = dict.fromkeys(st.session_ids)
    if st.claude_session_id:
        ids.setdefault(st.claude_session_id, None)
    for ev in events:
        if ev.get("stage") == st.number and isinstance(ev.get("claude_session_id"), str):
            ids.setdefault(ev["claude_session_id"], None)
    return list(ids)


def _last_field(events: list[dict[str, Any]], n: int, kind: str, key: str) -> Optional[str]:
    for e in reversed(events):
        if e.get("type") == kind and e.get("stage") == n and e.get(key):
            return str(e[key])
    return None


def _blocked_by(events: list[dict[str, Any]], n: int) -> Optional[int]:
    value = _last_field(events, n, "stage_blocked", "blocked_by")
    return int(value) if value is not None and value.isdigit() else None


def build_report(orch_dir: Path) -> RunReport:
    """Everything the report shows, from status.json, events.jsonl, git and transcripts."""
    from autorun_py.graph import critical_path
    from autorun_py.launch import worktree_path
    from autorun_py.simulate import lower_bound

    orch_dir = Path(orch_dir)
    state = StatusStore(orch_dir).read()
    events = read_events(orch_dir)
    now = _now()
    created = _ts(state.created_at) or now
    end = _ts(state.completed_at) if state.completed_at else None
    finished = state.is_finished()
    if end is None:
        ends = [
            _ts(s.completed_at or s.failed_at)
            for s in state.stages.values()
            if s.status in (COMPLETED, FAILED, CANCELLED)
        ]
        end = max([e for e in ends if e is not None], default=None) if finished else now
        end = end or now
    repo = Path(state.project_root)
    since = created - datetime.timedelta(minutes=10)
    stages: list[StageReport] = []
    for n in sorted(state.stages):
        st = state.stages[n]
        start = _ts(st.started_at)
        stop = _ts(st.completed_at or st.failed_at)
        if start is not None and stop is None and st.status == IN_PROGRESS:
            stop = end
        seconds = (stop - start).total_seconds() if start and stop else None
        conflict_events = [
            e for e in events if e.get("type") == "merge_conflict" and e.get("stage") == n
        ]
        files: list[str] = []
        for e in conflict_events:
            for f in e.get("files") or []:
                if isinstance(f, str) and f not in files:
                    files.append(f)
        worktrees = {str(worktree_path(state, st))}
        if st.worktree:
            worktrees.add(st.worktree)
        usage = transcripts.read_usage(
            transcripts.stage_transcripts(
                sorted(worktrees), _session_ids(st, events), _known_transcripts(st)
            ),
            since=since,
        )
        waits_at = wait_intervals(events, n, stop or end)
        waits: dict[str, float] = {}
        for kind, w0, w1 in waits_at:
            waits[kind] = waits.get(kind, 0.0) + max(0.0, (w1 - w0).total_seconds())
        phases = _phases(st, stop or end)
        for ph in phases:  # phase time is work: the waits inside it are not
            p0 = _ts(ph.started_at)
            p1 = _ts(ph.completed_at) or (stop or end)
            if p0 is not None:
                ph.seconds = max(
                    0.0, ph.seconds - sum(_overlap(p0, p1, w0, w1) for _k, w0, w1 in waits_at)
                )
        stages.append(
            StageReport(
                waits=waits,
                number=n,
                name=st.name,
                status=st.status,
                depends_on=list(st.depends_on),
                started_at=st.started_at,
                ended_at=(format_utc(stop) if stop else None),
                seconds=seconds,
                phases=phases,
                git=git_stats(repo, st),
                merge_commit=st.merge_commit,
                conflicts=max(st.count("conflicts"), len(conflict_events)),
                conflict_files=files,
                nudges=st.count("nudges"),
                restarts=st.count("restarts"),
                limit_waits=st.count("limit_waits"),
                usage=usage,
                failure=(st.failure or _last_field(events, n, "stage_failed", "reason"))
                if st.status == FAILED
                else st.failure,
                blocked_by=_blocked_by(events, n) if st.status == BLOCKED else None,
                gate=_gate_figures(events, n),
                **_where(state, st),
            )
        )
    # Work only: a stage's waits (stalled, limits, permission, dead) are not what a
    # better schedule could have overlapped.
    durations = {s.number: s.work_seconds for s in stages if s.work_seconds is not None}
    deps = {n: [d for d in state.stages[n].depends_on if d in durations] for n in sorted(durations)}
    cp = critical_path(deps, durations) if deps else []
    for s in stages:
        s.critical = s.number in cp
    wall = max(0.0, (end - created).total_seconds())
    busy = sum(durations.values())
    bound = lower_bound(deps, durations, state.max_parallel) if deps else 0.0
    total = TokenUsage()
    by_model: dict[str, TokenUsage] = {}
    for s in stages:
        total.add(s.usage.total)
        for model, u in s.usage.by_model.items():
            by_model.setdefault(model, TokenUsage()).add(u)
    counts: dict[str, int] = {}
    for e in events:
        kind = str(e.get("type", ""))
        counts[kind] = counts.get(kind, 0) + 1
    return RunReport(
        run=orch_dir.name,
        plan_name=state.plan_name,
        plan_path=state.plan_path,
        orch_dir=str(orch_dir),
        project_root=state.project_root,
        base_branch=state.base_branch,
        status=state.status,
        schedule=state.schedule,
        max_parallel=state.max_parallel,
        started_at=format_utc(created),
        ended_at=format_utc(end),
        finished=finished,
        wall_seconds=wall,
        busy_seconds=busy,
        parallelism=busy / wall if wall > 0 else 0.0,
        bound_seconds=bound,
        bound_parallelism=busy / bound if bound > 0 else 0.0,
        critical_path=cp,
        planned_critical_path=list(state.critical_path),
        stages=stages,
        total=total,
        by_model=by_model,
        unpriced_models=sorted(m for m, u in by_model.items() if u.unpriced_responses),
        events=dict(sorted(counts.items())),
        verify_command=spec_of(state).command,
        launchers=_run_launchers(state),
    )


def _run_launchers(state: Any) -> list[dict[str, Any]]:
    try:
        return [c.to_raw() for c in launchers.run_caps(state)]
    except AutorunError:
        return []


def _where(state: Any, st: StageState) -> dict[str, Any]:
    """Where a stage ran: its launcher, the sessions that ran it, how to look at it."""
    if not st.launched_at and st.status not in (IN_PROGRESS, COMPLETED, FAILED):
        return {}
    name = launchers.stage_launcher_name(state, st)
    handles = st.extra.get("launcher_handles")
    sessions = [h for h in handles if isinstance(h, str)] if isinstance(handles, list) else []
    if name == "tmux" and st.session:
        sessions = [st.session]
    return {"launcher": name, "sessions": sessions, "attach": launchers.attach_hint(state, st)}


def _gate_figures(events: Sequence[Mapping[str, Any]], number: int) -> dict[str, Any]:
    """The merge gate's work on one stage, from verify_passed / verify_failed events."""
    runs = [
        e
        for e in events
        if e.get("type") in ("verify_passed", "verify_failed") and e.get("stage") == number
    ]
    red = [e for e in runs if e.get("type") == "verify_failed"]
    return {
        "runs": len(runs),
        "failures": len(red),
        "timeouts": sum(1 for e in red if e.get("timed_out")),
        "seconds": round(sum(float(e.get("seconds") or 0) for e in runs), 3),
    }
