"""``autorun report``: where the time and the money of a run went.

Writes ``$AUTORUN_HOME/reports/<run>.md`` and ``<run>.json`` (``<run>`` is the
orchestration directory's name: the plan name, ``-2`` ... for later runs):

- per stage and per phase durations (``status.json`` timestamps);
- a Mermaid ``gantt`` chart of the run and a ``flowchart`` of the dependency
  graph with the critical path (by measured durations) marked;
- achieved parallelism (stage busy time over wall time) against the bound the
  graph allows for those durations (:func:`autorun_py.simulate.lower_bound`);
- commits and lines changed per stage (the first-parent diff of its merge);
- merge conflicts, nudges, usage-limit waits and restarts;
- tokens and cost per stage and in total, read from Claude Code's own session
  transcripts (:mod:`autorun_py.transcripts`, prices in its ``PRICES``).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from autorun_py import fsutil, git, paths, transcripts
from autorun_py.errors import AutorunError
from autorun_py.events import read_events
from autorun_py.gate import spec_of
from autorun_py.mermaid import gantt_text
from autorun_py.mermaid import label as mermaid_label
from autorun_py.state import (
    BLOCKED,
    CANCELLED,
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    PHASES,
    StageState,
    StatusStore,
    write_json_atomic,
)
from autorun_py.timeutil import format_duration, format_utc, parse_utc
from autorun_py.transcripts import TokenUsage, UsageSummary


def _ts(text: Optional[str]) -> Optional[datetime.datetime]:
    """The seed's format, or any ISO-8601 form a transcript uses."""
    return parse_utc(text) or transcripts.parse_ts(text)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


# --------------------------------------------------------------------------- model


@dataclass
class PhaseTime:
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
        }


@dataclass
class RunReport:
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

    @property
    def efficiency(self) -> float:
        """The lower bound over the wall time (1.0: no schedule could have done better)."""
        return self.bound_seconds / self.wall_seconds if self.wall_seconds > 0 else 1.0

    def to_json(self) -> dict[str, Any]:
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
            "gantt": gantt(self),
            "graph": dependency_graph(self),
        }


# --------------------------------------------------------------------------- gathering


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
    ids: dict[str, None] = {}
    raw = st.extra.get("claude_session_ids")
    if isinstance(raw, list):
        for x in raw:
            if isinstance(x, str):
                ids.setdefault(x, None)
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
                conflicts=max(st.counters.get("conflicts", 0), len(conflict_events)),
                conflict_files=files,
                nudges=st.counters.get("nudges", 0),
                restarts=st.counters.get("restarts", 0),
                limit_waits=st.counters.get("limit_waits", 0),
                usage=usage,
                failure=(st.failure or _last_field(events, n, "stage_failed", "reason"))
                if st.status == FAILED
                else st.failure,
                blocked_by=_blocked_by(events, n) if st.status == BLOCKED else None,
                gate=_gate_figures(events, n),
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
    )


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


# --------------------------------------------------------------------------- Mermaid


def _gantt_time(ts: datetime.datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S")


def gantt(report: RunReport) -> str:
    """The run as a Mermaid gantt chart: one section per stage, its phases as tasks."""
    wall = report.wall_seconds
    axis = "%H:%M:%S" if wall < 600 else ("%H:%M" if wall < 72000 else "%m-%d %H:%M")
    lines = [
        "gantt",
        f"    title {gantt_text(report.plan_name)} (UTC)",
        "    dateFormat YYYY-MM-DDTHH:mm:ss",
        f"    axisFormat {axis}",
    ]
    for s in report.stages:
        start = _ts(s.started_at)
        stop = _ts(s.ended_at)
        if start is None or stop is None:
            continue
        if stop <= start:
            stop = start + datetime.timedelta(seconds=1)
        tags = []
        if s.status == COMPLETED:
            tags.append("done")
        elif s.status == IN_PROGRESS:
            tags.append("active")
        if s.critical:
            tags.append("crit")
        suffix = "" if s.status in (COMPLETED, IN_PROGRESS) else f" ({s.status})"
        lines.append(f"    section {gantt_text(f'Stage {s.number} {s.name}')}")
        lines.append(
            f"    {gantt_text(f'stage {s.number}{suffix}')} :"
            + "".join(f"{t}, " for t in tags)
            + f"s{s.number}, {_gantt_time(start)}, {_gantt_time(stop)}"
        )
        for ph in s.phases:
            ps = _ts(ph.started_at)
            pe = _ts(ph.completed_at) or stop
            if ps is None:
                continue
            if pe <= ps:
                pe = ps + datetime.timedelta(seconds=1)
            tag = "active, " if ph.open and s.status == IN_PROGRESS else ""
            lines.append(
                f"    {gantt_text(ph.name)} :{tag}s{s.number}{ph.name.replace('_', '')}, "
                f"{_gantt_time(ps)}, {_gantt_time(pe)}"
            )
    return "\n".join(lines) + "\n"


def dependency_graph(report: RunReport) -> str:
    """The stage graph as a Mermaid flowchart; the critical path in red and bold."""
    lines = ["flowchart TD"]
    for s in report.stages:
        label = (
            mermaid_label(f"{s.number} · {s.name}")
            + "<br/>"
            + mermaid_label(f"{s.status}, {format_duration(s.seconds)}")
        )
        lines.append(f'    s{s.number}["{label}"]')
    edges: list[tuple[int, int]] = []
    for s in report.stages:
        for d in s.depends_on:
            edges.append((d, s.number))
            lines.append(f"    s{d} --> s{s.number}")
    cp = report.critical_path
    cp_edges = set(zip(cp, cp[1:]))
    lines.append("    classDef crit fill:#ffe3e3,stroke:#c92a2a,stroke-width:3px")
    lines.append("    classDef failed fill:#f1f3f5,stroke:#868e96,stroke-dasharray:4 2")
    if cp:
        lines.append("    class " + ",".join(f"s{n}" for n in cp) + " crit")
    bad = [s.number for s in report.stages if s.status in (FAILED, BLOCKED, CANCELLED)]
    if bad:
        lines.append("    class " + ",".join(f"s{n}" for n in bad) + " failed")
    for i, edge in enumerate(edges):
        if edge in cp_edges:
            lines.append(f"    linkStyle {i} stroke:#c92a2a,stroke-width:3px")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- Markdown


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _tokens(u: TokenUsage) -> str:
    return (
        f"{u.input_tokens:,} / {u.output_tokens:,} / "
        f"{u.cache_creation_input_tokens:,} / {u.cache_read_input_tokens:,}"
    )


def _cost(u: TokenUsage) -> str:
    text = f"${u.cost_usd:,.4f}"
    return text + (" (+unpriced)" if u.unpriced_responses else "")


def render_markdown(report: RunReport) -> str:
    counts: dict[str, int] = {}
    for s in report.stages:
        counts[s.status] = counts.get(s.status, 0) + 1
    state_line = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    cap = f"at most {report.max_parallel} at once" if report.max_parallel else "no cap"
    lines = [
        f"# Run report: {report.plan_name}",
        "",
        f"- **Plan**: `{report.plan_path}`",
        f"- **Project**: `{report.project_root}` → `{report.base_branch}`",
        f"- **Run**: `{report.orch_dir}` — {report.status}"
        + ("" if report.finished else " (still running: figures up to now)"),
        f"- **Time**: {report.started_at} → {report.ended_at} "
        f"(wall {format_duration(report.wall_seconds)})",
        f"- **Stages**: {len(report.stages)} ({state_line})",
        f"- **Parallelism**: achieved {report.parallelism:.2f} (stage time "
        f"{format_duration(report.busy_seconds)} over wall "
        f"{format_duration(report.wall_seconds)}); "
        f"the graph allows {report.bound_parallelism:.2f} for these durations "
        f"(shortest possible run {format_duration(report.bound_seconds)}, schedule "
        f"{report.schedule}, {cap}); wall time is {report.efficiency:.0%} efficient",
        "- **Critical path** (measured): "
        + (" → ".join(str(n) for n in report.critical_path) or "-")
        + (
            f"; planned: {' → '.join(str(n) for n in report.planned_critical_path)}"
            if report.planned_critical_path
            else ""
        ),
        f"- **Tokens** (input / output / cache write / cache read): {_tokens(report.total)} "
        f"in {report.total.responses:,} responses",
        f"- **Cost**: {_cost(report.total)}",
        "",
    ]
    failed = [s for s in report.stages if s.status == FAILED]
    blocked = [s for s in report.stages if s.status == BLOCKED]
    if failed or blocked:
        lines += ["## Failures", ""]
        for s in failed:
            reason = _cell(s.failure) if s.failure else "(no reason recorded)"
            lines.append(f"- Stage {s.number} ({_cell(s.name)}) **failed**: {reason}")
        for s in blocked:
            why = f"by the failure of stage {s.blocked_by}" if s.blocked_by else "by a failure"
            lines.append(f"- Stage {s.number} ({_cell(s.name)}) was blocked {why}")
        lines += [
            "",
            "Retry a failed stage with `autorun retry RUN STAGE` once its cause is fixed; "
            "the stages it blocked start again with it.",
            "",
        ]
    lines += [
        "## Timeline",
        "",
        "```mermaid",
        gantt(report).rstrip("\n"),
        "```",
        "",
        "## Dependency graph",
        "",
        "The critical path (the longest chain by measured stage time) is in red.",
        "",
        "```mermaid",
        dependency_graph(report).rstrip("\n"),
        "```",
        "",
        "## Stages",
        "",
        "| # | Stage | Status | Time | Commits | Files | +lines | −lines | Conflicts "
        "| Nudges | Limit waits | Restarts | Tokens in / out / cache w / cache r | Cost |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in report.stages:
        g = s.git
        name = _cell(s.name) + (" **(critical)**" if s.critical else "")
        lines.append(
            f"| {s.number} | {name} | {s.status} | {format_duration(s.seconds)} | "
            + (
                f"{g.commits} | {g.files_changed} | {g.lines_added} | {g.lines_deleted} | "
                if g
                else "- | - | - | - | "
            )
            + f"{s.conflicts} | {s.nudges} | {s.limit_waits} | {s.restarts} | "
            f"{_tokens(s.usage.total)} | {_cost(s.usage.total)} |"
        )
    lines += ["", "## Phases", "", "| # | Stage | " + " | ".join(PHASES) + " |"]
    lines.append("|---|---|" + "---|" * len(PHASES))
    for s in report.stages:
        by = {p.name: p for p in s.phases}
        cells = []
        for name in PHASES:
            p = by.get(name)
            cells.append(
                "-" if p is None else format_duration(p.seconds) + (" …" if p.open else "")
            )
        lines.append(f"| {s.number} | {_cell(s.name)} | " + " | ".join(cells) + " |")
    waited = [s for s in report.stages if s.waits]
    lines += ["", "## Waiting, not working", ""]
    if waited:
        lines.append("Not counted as phase time, nor in the parallelism and efficiency above.")
        lines.append("")
        for s in waited:
            parts = ", ".join(f"{k} {format_duration(v)}" for k, v in sorted(s.waits.items()))
            lines.append(f"- Stage {s.number} ({_cell(s.name)}): {parts}")
    else:
        lines.append("None: no stage stalled, waited for a limit or a permission, or died.")
    conflicted = [s for s in report.stages if s.conflicts]
    lines += ["", "## Merge conflicts", ""]
    if conflicted:
        for s in conflicted:
            files = ", ".join(f"`{f}`" for f in s.conflict_files) or "(files not recorded)"
            lines.append(f"- Stage {s.number} ({_cell(s.name)}): {s.conflicts} time(s): {files}")
    else:
        lines.append("None.")
    lines += ["", "## Merge gate", ""]
    if report.verify_command:
        lines += [
            f"Verify command: `{report.verify_command}`; the base branch only moved to "
            "candidates that passed it.",
            "",
            "| # | Stage | Verify runs | Failures | Timeouts | Gate time |",
            "|---|---|---|---|---|---|",
        ]
        for s in report.stages:
            gf = s.gate or {}
            lines.append(
                f"| {s.number} | {_cell(s.name)} | {gf.get('runs', 0)} | "
                f"{gf.get('failures', 0)} | {gf.get('timeouts', 0)} | "
                f"{format_duration(gf.get('seconds', 0.0))} |"
            )
    else:
        lines.append("Not gated: no verify command; merges were not checked.")
    lines += [
        "",
        "## Tokens and cost by model",
        "",
        "| Model | Responses | Input | Output | Cache write (1h) | Cache read | Cost |",
        "|---|---|---|---|---|---|---|",
    ]
    for model, u in sorted(report.by_model.items()):
        lines.append(
            f"| `{_cell(model)}` | {u.responses:,} | {u.input_tokens:,} | {u.output_tokens:,} | "
            f"{u.cache_creation_input_tokens:,} ({u.cache_creation_1h_tokens:,}) | "
            f"{u.cache_read_input_tokens:,} | {_cost(u)} |"
        )
    lines += [
        f"| **total** | {report.total.responses:,} | {report.total.input_tokens:,} | "
        f"{report.total.output_tokens:,} | {report.total.cache_creation_input_tokens:,} "
        f"({report.total.cache_creation_1h_tokens:,}) | "
        f"{report.total.cache_read_input_tokens:,} | {_cost(report.total)} |",
        "",
        f"Prices: {transcripts.PRICE_SOURCE}, US dollars per million tokens. Tokens come from "
        f"Claude Code's transcripts under `{transcripts.projects_dir()}` (each response counted "
        "once).",
    ]
    if report.unpriced_models:
        lines.append(
            "Not priced (unknown models, counted in tokens only): "
            + ", ".join(f"`{m}`" for m in report.unpriced_models)
        )
    missing = [s.number for s in report.stages if s.started_at and not s.usage.files]
    if missing:
        lines.append(
            "No transcript found for stage(s) " + ", ".join(map(str, missing)) + " (a stand-in "
            "agent, another machine, or transcripts removed)."
        )
    lines += ["", f"_Generated {report.generated_at} by `autorun report`._", ""]
    return "\n".join(lines)


def report_paths(orch_dir: Path) -> tuple[Path, Path]:
    base = paths.layout().report_base(Path(orch_dir).name)
    return base.with_suffix(".md"), base.with_suffix(".json")


def write_report(orch_dir: Path) -> tuple[Path, Path]:
    """Build the report and write its Markdown and JSON; return both paths."""
    report = build_report(orch_dir)
    md, js = report_paths(orch_dir)
    md.parent.mkdir(parents=True, exist_ok=True)
    fsutil.write_text_atomic(md, render_markdown(report), mode=0o644)
    write_json_atomic(js, report.to_json())
    return md, js


def load_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


__all__ = [
    "RunReport",
    "StageReport",
    "build_report",
    "dependency_graph",
    "gantt",
    "render_markdown",
    "write_report",
]
