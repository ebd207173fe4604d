"""The status view of a run (``autorun status``) and of all runs (``autorun list``)."""

from __future__ import annotations

import datetime
import textwrap
from pathlib import Path
from typing import Any, Optional

from autorun_py.errors import AutorunError
from autorun_py.gate import spec_of
from autorun_py.launchers import stage_launcher_name
from autorun_py.rundir import all_orchestrations
from autorun_py.state import (
    BLOCKED,
    CANCELLED,
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    PENDING,
    RunState,
    StageState,
    StatusStore,
)
from autorun_py.timeutil import format_duration, parse_utc, utc_iso

_ICON = {
    PENDING: "·",
    IN_PROGRESS: "▶",
    COMPLETED: "✔",
    FAILED: "✘",
    BLOCKED: "⊘",
    CANCELLED: "■",
}


def elapsed_seconds(start: Optional[str], end: Optional[str] = None) -> Optional[float]:
    s = parse_utc(start)
    if s is None:
        return None
    e = parse_utc(end) or datetime.datetime.now(datetime.timezone.utc)
    return max(0.0, (e - s).total_seconds())


def _waiting_reviews(orch_dir: Path) -> list[dict[str, Any]]:
    """Questions of this run still waiting for the user."""
    from autorun_py.review import waiting_reviews_for

    return [
        {"stage": info.stage, "path": str(info.path), "title": info.title}
        for info in waiting_reviews_for(orch_dir)
    ]


def tmux_sessions() -> Optional[dict[str, float]]:
    """Every session of autorun's tmux server with its last activity (epoch seconds);
    None when tmux cannot be asked."""
    from autorun_py.tmux import Tmux

    try:
        proc = Tmux.from_env().run(
            ["list-sessions", "-F", "#{session_name}\t#{session_activity}"], check=False
        )
    except AutorunError:
        return None
    out: dict[str, float] = {}
    if proc.returncode != 0:
        return out  # no server: no sessions
    for line in proc.stdout.splitlines():
        name, _, activity = line.partition("\t")
        try:
            out[name] = float(activity)
        except ValueError:
            out[name] = 0.0
    return out


def liveness(
    state: RunState, stage: StageState, sessions: Optional[dict[str, float]]
) -> dict[str, Any]:
    """For a stage in progress: is its session alive, and when did it last do
    anything (its pane log's last write or tmux's activity time, the later)."""
    if stage.status != IN_PROGRESS:
        return {"session_alive": None, "last_activity": None, "idle_seconds": None}
    from autorun_py.launch import log_path

    alive = None if sessions is None else bool(stage.session and stage.session in sessions)
    from autorun_py import launchers

    if not launchers.stage_uses_tmux(state, stage):  # liveness from the stage's launcher
        try:
            alive = launchers.stage_alive(None, state, stage)
        except AutorunError:
            alive = None
    stamps = []
    try:
        stamps.append(log_path(state, stage.number).stat().st_mtime)
    except OSError:
        pass
    if sessions and stage.session and sessions.get(stage.session):
        stamps.append(sessions[stage.session])
    if not stamps:
        return {"session_alive": alive, "last_activity": None, "idle_seconds": None}
    last = max(stamps)
    idle = max(0.0, datetime.datetime.now(datetime.timezone.utc).timestamp() - last)
    return {
        "session_alive": alive,
        "last_activity": utc_iso(last),
        "idle_seconds": round(idle, 1),
    }


def stage_row(
    state: RunState, stage: StageState, sessions: Optional[dict[str, float]] = None
) -> dict[str, Any]:
    impl = stage.phases.get("implement")
    progress = None
    if impl and impl.total_phases:
        progress = f"{impl.current_phase or 0}/{impl.total_phases}"
    waiting_on = [d for d in stage.depends_on if state.stages[d].status != COMPLETED]
    return {
        "number": stage.number,
        "name": stage.name,
        "status": stage.status,
        "phase": stage.current_phase(),
        "implement_progress": progress,
        "branch": stage.branch,
        "session": stage.session,
        "launcher": stage_launcher_name(state, stage) if stage.status != PENDING else None,
        "attach": _attach(state, stage),
        "waiting_for": _waiting_for(state, stage),
        "worktree": stage.worktree,
        "elapsed_seconds": elapsed_seconds(stage.started_at, stage.completed_at or stage.failed_at)
        if stage.status != PENDING
        else None,
        "depends_on": list(stage.depends_on),
        "waiting_on": waiting_on,
        "merge_state": stage.merge_state,
        "merge_commit": stage.merge_commit,
        "verify_failures": stage.count("verify_failures"),
        "failure": stage.failure,
        **monitor_fields(state, stage),
        **liveness(state, stage, sessions),
    }


def _waiting_for(state: RunState, stage: StageState) -> Optional[str]:
    """What the stage's session waits for, when its launcher knows (background:
    ``claude agents``' state; tmux: the monitor's classifier, in ``attention``)."""
    if stage.status != IN_PROGRESS:
        return None
    from autorun_py.launchers import stage_waiting

    return stage_waiting(state, stage)


def _attach(state: RunState, stage: StageState) -> Optional[str]:
    """How to look at the stage's session (``tmux attach -t ...``, ``claude attach
    <id>``), while it runs."""
    if stage.status != IN_PROGRESS:
        return None
    from autorun_py.launchers import attach_hint

    return attach_hint(state, stage)


def monitor_fields(state: RunState, stage: StageState) -> dict[str, Any]:
    """What the monitor knows of a stage: a usage-limit wait, nudges, restarts."""
    rec = (state.monitor.get("stages") or {}).get(str(stage.number)) or {}
    limit = rec.get("limit") if isinstance(rec, dict) else None
    attention = rec.get("attention") if isinstance(rec, dict) else None
    return {
        "usage_limit_kind": limit.get("kind") if isinstance(limit, dict) else None,
        "attention": attention if isinstance(attention, dict) else None,
        "usage_limit_until": limit.get("until") if isinstance(limit, dict) else None,
        "usage_limit_reset_at": limit.get("reset_at") if isinstance(limit, dict) else None,
        "nudges": stage.count("nudges"),
        "restarts": stage.count("restarts"),
        "stalled": bool(isinstance(rec, dict) and rec.get("stall_reported")),
    }


def status_summary(orch_dir: Path) -> dict[str, Any]:
    """Everything the status view shows, as one JSON-able object."""
    state = StatusStore(orch_dir).read()
    counts = state.counts()
    total = len(state.stages)
    running = any(s.status == IN_PROGRESS for s in state.stages.values())
    from autorun_py.launchers import launcher_name, run_caps, stage_uses_tmux

    caps = run_caps(state)
    from autorun_py.launchers import running_counts

    busy = running_counts(state)
    tmux_running = any(
        s.status == IN_PROGRESS and stage_uses_tmux(state, s) for s in state.stages.values()
    )
    sessions = tmux_sessions() if running and tmux_running else {}
    stages = [stage_row(state, state.stages[n], sessions) for n in sorted(state.stages)]
    from autorun_py.supervisor import monitor_alive

    pid = monitor_alive(state)
    return {
        "run": Path(state.orch_dir).name,
        "plan_name": state.plan_name,
        "plan_path": state.plan_path,
        "project_slug": state.project_slug,
        "project_root": state.project_root,
        "base_branch": state.base_branch,
        "orch_dir": state.orch_dir,
        "status": state.status,
        "schedule": state.schedule,
        "launcher": launcher_name(state),
        "launchers": [
            {**c.to_raw(), "running": busy.get(c.name, 0)} for c in caps
        ],  # each with its cap and how many of its stages run now
        "max_parallel": state.max_parallel,
        "created_at": state.created_at,
        "elapsed_seconds": elapsed_seconds(state.created_at, state.completed_at),
        "current_wave": state.current_wave,
        "waves": state.waves,
        "critical_path": state.critical_path,
        "verify": spec_of(state).to_raw(),
        "counts": counts,
        "progress": {"completed": counts[COMPLETED], "total": total},
        "ready": state.ready(),
        "blocked": sorted(n for n, s in state.stages.items() if s.status == BLOCKED),
        "stages": stages,
        "reviews_waiting": _waiting_reviews(Path(orch_dir)),
        "finished": state.is_finished(),
        "monitor": {
            "running": pid is not None,
            "pid": pid,
            "disabled": bool(state.monitor.get("disabled")),
        },
    }


def render_status(summary: dict[str, Any], *, width: int = 100) -> str:
    done, total = summary["progress"]["completed"], summary["progress"]["total"]
    bar_w = 30
    filled = int(bar_w * done / total) if total else 0
    # The run's name is what every command takes; a second run of a plan is `<plan>-2`.
    run = summary.get("run") or summary["plan_name"]
    title = run if run == summary["plan_name"] else f"{run} (plan {summary['plan_name']})"
    lines = [
        f"{title}  [{summary['status']}]  "
        f"{summary['project_root']} → {summary['base_branch']}",
        f"[{'█' * filled}{'░' * (bar_w - filled)}] {done}/{total} merged   "
        f"elapsed {format_duration(summary['elapsed_seconds'])}   "
        f"wave {summary['current_wave']}/{len(summary['waves'])}   "
        f"schedule {summary['schedule']}"
        + (f" (max {summary['max_parallel']})" if summary["max_parallel"] else ""),
        "",
        f"  {'#':>3}  {'stage':<28} {'status':<12} {'phase':<12} {'impl':<6} {'time':>7}  "
        f"{'session / branch'}",
    ]
    for row in summary["stages"]:
        name = row["name"] if len(row["name"]) <= 28 else row["name"][:27] + "…"
        status = row["status"]
        if row["merge_state"] == "verifying":
            status = "verifying"  # the merge gate runs the verify command on its candidate
        elif row["merge_state"]:
            status = f"merge:{row['merge_state']}"
        phase = row["phase"] or (
            "waiting" if row["status"] == PENDING and row["waiting_on"] else ""
        )
        where = row["session"] or row["branch"] or ""
        if row["status"] == PENDING and row["waiting_on"]:
            where = "after " + ", ".join(map(str, row["waiting_on"]))
        lines.append(
            f"{_ICON.get(row['status'], '?')} {row['number']:>3}  {name:<28} {status:<12} "
            f"{phase:<12} {row['implement_progress'] or '':<6} "
            f"{format_duration(row['elapsed_seconds']):>7}  {where}"
        )
        if row["failure"]:
            # Wrapped, never cut: the reason is what the user acts on.
            wrapped = textwrap.wrap(
                f"failure: {row['failure']}",
                width=max(40, width - 8),
                break_long_words=True,
                break_on_hyphens=False,
            )
            lines += [("        " + w) for w in wrapped]
        lines += _session_lines(row, summary)
        lines += _monitor_lines(row)
    lines.append("")
    gate = summary.get("verify") or {}
    if gate.get("command"):
        lines.append(f"merge gate: {gate['command']} (timeout {gate.get('timeout', 0):g}s)")
    else:
        lines.append("merge gate: none (not gated)")
    lines.append(f"launchers: {_launchers_text(summary)}")
    waves = "  ".join(f"{i}:{w}" for i, w in enumerate(summary["waves"], start=1))
    lines.append(f"waves: {waves}")
    if summary["critical_path"]:
        lines.append("critical path: " + " -> ".join(map(str, summary["critical_path"])))
    if summary["ready"]:
        lines.append("ready to start: " + ", ".join(map(str, summary["ready"])))
    if summary["blocked"]:
        blocked = ", ".join(map(str, summary["blocked"]))
        lines.append(f"blocked (a stage they need failed or was cancelled): {blocked}")
    mon = summary.get("monitor") or {}
    if summary["status"] == "running" and not summary["finished"]:
        if mon.get("running"):
            lines.append(f"monitor: running (pid {mon['pid']})")
        else:
            lines.append(
                "monitor: not running, so nothing restarts a dead session; start it with "
                f"`autorun resume {Path(summary['orch_dir']).name}`"
            )
    for rv in summary["reviews_waiting"]:
        stage = f"stage {rv['stage']}: " if rv.get("stage") is not None else ""
        lines.append(f"? waiting for your answer: {stage}{rv['path']}")
    return "\n".join(line[:width] if len(line) > width else line for line in lines)


def _launchers_text(summary: dict[str, Any]) -> str:
    caps = summary.get("launchers") or [{"name": summary.get("launcher") or "tmux"}]
    parts = []
    for c in caps:
        bits = [f"{c['running']} running"] if c.get("running") else []
        if c.get("max_parallel"):
            bits.insert(0, f"at most {c['max_parallel']}")
        parts.append(str(c["name"]) + (f" ({', '.join(bits)})" if bits else ""))
    return ", ".join(parts)


def _session_lines(row: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    if row["status"] != IN_PROGRESS or row.get("session_alive") is None:
        return []
    idle = row.get("idle_seconds")
    last = f"last output {format_duration(idle)} ago" if idle is not None else "no output yet"
    on = f" [{row['launcher']}]" if row.get("launcher") else ""
    # the monitor's own lines (_monitor_lines) say more of what it recorded itself
    known = row.get("attention") or row.get("usage_limit_until") or row.get("stalled")
    waiting = [f"        waits for: {row['waiting_for']}"] if row.get("waiting_for") else []
    waiting = [] if known else waiting
    if row["session_alive"]:
        attach = [f"        attach: {row['attach']}"] if row.get("attach") else []
        return [f"        session alive, {last}{on}", *waiting, *attach]
    return [f"        session GONE ({last}){on}", *waiting]


def _monitor_lines(row: dict[str, Any]) -> list[str]:
    out = []
    until = parse_utc(row.get("usage_limit_until"))
    if until is not None and row["status"] == IN_PROGRESS:
        local = until.astimezone().strftime("%H:%M:%S")
        left = format_duration(
            max(0.0, (until - datetime.datetime.now(datetime.timezone.utc)).total_seconds())
        )
        kind = row.get("usage_limit_kind") or "usage limit"
        out.append(f"        {kind}: waiting until {local} ({left} left), then continue")
    att = row.get("attention")
    if att and row["status"] == IN_PROGRESS:
        what = str(att.get("tool") or "a tool") + (
            f" ({att['detail']})" if att.get("detail") else ""
        )
        out.append(f"        waits for your permission: {what}; answer in `{att.get('attach')}`")
    if row.get("stalled") and row["status"] == IN_PROGRESS:
        out.append("        stalled at its prompt after the monitor's continues: look at it")
    bits = []
    if row.get("nudges"):
        bits.append(f"{row['nudges']} continue(s) sent")
    if row.get("restarts"):
        bits.append(f"{row['restarts']} restart(s)")
    if bits:
        out.append("        monitor: " + ", ".join(bits))
    return out


def list_runs() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for d in all_orchestrations():
        try:
            st = StatusStore(d).read()
        except AutorunError as exc:
            out.append({"orch_dir": str(d), "name": d.name, "error": str(exc)})
            continue
        counts = st.counts()
        out.append(
            {
                "orch_dir": str(d),
                "name": d.name,
                "plan_name": st.plan_name,
                "project_root": st.project_root,
                "base_branch": st.base_branch,
                "status": st.status,
                "created_at": st.created_at,
                "completed": counts[COMPLETED],
                "running": counts[IN_PROGRESS],
                "failed": counts[FAILED],
                "cancelled": counts[CANCELLED],
                "total": len(st.stages),
            }
        )
    return out


def render_runs(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return "no orchestrations yet (start one with `autorun orchestrate PLAN`)"
    lines = [f"{'run':<28} {'status':<24} {'merged':>7} {'running':>8}  project"]
    for r in runs:
        if "error" in r:
            lines.append(f"{r['name']:<28} unreadable: {r['error']}")
            continue
        lines.append(
            f"{r['name']:<28} {r['status']:<24} {r['completed']:>3}/{r['total']:<3} "
            f"{r['running']:>8}  {r['project_root']} ({r['base_branch']})"
        )
    return "\n".join(lines)
