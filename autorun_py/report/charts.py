"""The report's Mermaid diagrams: the run's timeline (``gantt``) and the dependency
graph with the critical path marked (``flowchart``)."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from autorun_py.mermaid import gantt_text
from autorun_py.mermaid import label as mermaid_label
from autorun_py.report.times import _ts
from autorun_py.state import BLOCKED, CANCELLED, COMPLETED, FAILED, IN_PROGRESS
from autorun_py.timeutil import format_duration

if TYPE_CHECKING:
    from autorun_py.report.model import RunReport


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
