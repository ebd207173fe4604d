"""The report as Markdown (``$AUTORUN_HOME/reports/<run>.md``)."""

from __future__ import annotations

from autorun_py import transcripts
from autorun_py.report.charts import dependency_graph, gantt
from autorun_py.report.model import RunReport
from autorun_py.state import BLOCKED, FAILED, PHASES
from autorun_py.timeutil import format_duration
from autorun_py.transcripts import TokenUsage


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


def _where_lines(report: RunReport) -> list[str]:
    """Where each stage ran: its launcher, its sessions, how to look at it."""
    caps = ", ".join(
        str(c.get("name")) + (f" (at most {c['max_parallel']})" if c.get("max_parallel") else "")
        for c in report.launchers
    )
    lines = ["", "## Where each stage ran", ""]
    if caps:
        lines += [f"Launchers: {caps}.", ""]
    lines += [
        "| # | Stage | Launcher | Sessions | Attach (while it runs) |",
        "|---|---|---|---|---|",
    ]
    for s in report.stages:
        sessions = ", ".join(f"`{_cell(x)}`" for x in s.sessions) or "-"
        attach = f"`{_cell(s.attach)}`" if s.attach else "-"
        lines.append(
            f"| {s.number} | {_cell(s.name)} | {s.launcher or '(not started)'} | "
            f"{sessions} | {attach} |"
        )
    return lines


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
    lines += _where_lines(report)
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
