"""The texts a person reads at the start and end of a run, in the seed's shape."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

from autorun_py import paths
from autorun_py.gate import spec_of
from autorun_py.launchers import stage_launcher_name
from autorun_py.state import COMPLETED, PENDING, RunState
from autorun_py.timeutil import format_duration
from autorun_py.view import elapsed_seconds


def _tmux_prefix() -> str:
    from autorun_py.tmux import Tmux

    return Tmux.from_env().shell_prefix()


def launchers_text(state: RunState) -> str:
    """The run's launchers in placement order with their caps: ``tmux (at most 2),
    background (at most 4)``; one without a cap: ``tmux``."""
    from autorun_py.launchers import run_caps

    return ", ".join(
        c.name if c.max_parallel is None else f"{c.name} (at most {c.max_parallel})"
        for c in run_caps(state)
    )


def launch_summary(
    state: RunState,
    launched: Sequence[int],
    *,
    dry_run: bool = False,
    cap_reason: str = "",
    hints: bool = True,
) -> str:
    """The seed's launch summary; ``hints``: with the monitor log, tmux and status lines."""
    orch = state.orch_dir.rstrip("/") + "/"
    waves = "[" + ", ".join("[" + ",".join(map(str, w)) + "]" for w in state.waves) + "]"
    head = (
        "Orchestration plan (dry run, nothing started):" if dry_run else "Orchestration launched:"
    )
    lines = [
        head,
        f"  Master Plan:   {state.plan_path}",
        f"  Plan Name:     {state.plan_name}",
        f"  Orchestration: {orch}",
        f"  Status File:   {Path(state.orch_dir) / 'status.json'}",
        f"  Base Branch:   {state.base_branch}",
        f"  Total Stages:  {len(state.stages)}",
        f"  Total Waves:   {len(state.waves)}",
        f"  Waves:         {waves}",
        f"  Schedule:      {state.schedule}"
        + (f", at most {state.max_parallel} at once" if state.max_parallel else ", no cap")
        + (f" ({cap_reason})" if cap_reason and state.max_parallel else ""),
        f"  Merge gate:    {spec_of(state).describe()}",
        f"  Launchers:     {launchers_text(state)}",
        "",
    ]
    first_wave = state.waves[0] if state.waves else []
    verb = "to launch" if dry_run else "launched"
    if sorted(launched) == sorted(first_wave):
        lines.append(f"Wave 1 {verb} ({len(launched)} stages):")
    else:
        lines.append(f"{'To launch' if dry_run else 'Launched'} now ({len(launched)} stages):")
    for n in launched:
        st = state.stages[n]
        lines += [
            f"  Stage {n}: {st.name}",
            f"    Branch:   {st.branch or '-'}",
            f"    Session:  {st.session or '-'}",
            f"    Launcher: {stage_launcher_name(state, st)}",
            f"    Worktree: {st.worktree or '-'}",
            "    Pipeline: start → triage → appropriate pipeline → merge",
        ]
    pending = [
        n for n in sorted(state.stages) if n not in launched and state.stages[n].status == PENDING
    ]
    if pending:
        lines += ["", "Pending (each starts as soon as its own dependencies are merged):"]
        for i, wave in enumerate(state.waves, start=1):
            rest = [n for n in wave if n in pending]
            if rest:
                lines.append(f"  Wave {i}: stages {', '.join(map(str, rest))}")
    if not hints:
        return "\n".join(lines)
    from autorun_py import launchers

    tm = _tmux_prefix()
    lines += ["", f"Monitor log: {paths.layout().monitor_log(state.project_slug)}"]
    for name in launchers.run_launcher_names(state):
        if name == "tmux":
            lines.append(f"Sessions:    {tm} list-sessions | grep {state.project_slug}")
        else:
            lines.append(f"Sessions:    claude agents  (launcher {name})")
    if launched:
        first = state.stages[launched[0]]
        if launchers.stage_uses_tmux(state, first):
            lines.append(f"Attach:      {tm} attach -t {shlex.quote(first.session or '')}")
        else:
            hint = launchers.attach_hint(state, first)
            if hint:
                lines.append(f"Attach:      {hint}")
    lines += [
        f"Status:      autorun status {Path(state.orch_dir).name}  "
        f"(or cat {Path(state.orch_dir) / 'status.json'})",
    ]
    return "\n".join(lines)


def final_summary(state: RunState, base_tip: str = "") -> str:
    counts = state.counts()
    if counts[COMPLETED] == len(state.stages):
        head = "Orchestration complete:"
    elif state.status == "cancelled":
        head = "Orchestration cancelled:"
    else:
        head = "Orchestration finished with failures:"
    others = ", ".join(
        f"{counts[k]} {k}" for k in ("failed", "blocked", "cancelled") if counts.get(k)
    )
    lines = [
        head,
        f"  Master Plan:   {state.plan_path}",
        f"  Plan Name:     {state.plan_name}",
        f"  Orchestration: {state.orch_dir.rstrip('/')}/",
        f"  Base Branch:   {state.base_branch}"
        + (f" (now at {base_tip[:12]})" if base_tip else ""),
        f"  Merged:        {counts[COMPLETED]}/{len(state.stages)} stages"
        + (f", {others}" if others else ""),
        "  Duration:      "
        + format_duration(elapsed_seconds(state.created_at, state.completed_at)),
        "",
    ]
    for n in sorted(state.stages):
        st = state.stages[n]
        took = format_duration(elapsed_seconds(st.started_at, st.completed_at or st.failed_at))
        if st.status == COMPLETED:
            lines.append(f"  Stage {n}: {st.name} — merged {(st.merge_commit or '')[:12]} ({took})")
        else:
            why = f": {st.failure}" if st.failure else ""
            lines.append(f"  Stage {n}: {st.name} — {st.status}{why}")
    lines += ["", f"Events: {Path(state.orch_dir) / 'events.jsonl'}"]
    return "\n".join(lines)
