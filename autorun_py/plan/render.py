"""The master plan rendered: a Mermaid flowchart, Graphviz dot, and text."""

from __future__ import annotations

from autorun_py import graph
from autorun_py.mermaid import label as mermaid_label
from autorun_py.plan.grammar import _CONTROL
from autorun_py.plan.model import Plan

# --------------------------------------------------------------------------- rendering


def render_mermaid(plan: Plan) -> str:
    """The dependency graph as a Mermaid flowchart; critical-path edges are thick."""
    crit_edges = set(zip(plan.critical_path, plan.critical_path[1:]))
    out = ["flowchart TD"]
    for s in plan.stages:
        out.append(f'    s{s.number}["{mermaid_label(f"Stage {s.number}: {s.name}")}"]')
    for s in plan.stages:
        for d in s.depends_on:
            arrow = "==>" if (d, s.number) in crit_edges else "-->"
            out.append(f"    s{d} {arrow} s{s.number}")
    if plan.critical_path:
        out.append("    classDef critical stroke-width:3px,stroke:#d33")
        out.append("    class " + ",".join(f"s{n}" for n in plan.critical_path) + " critical")
    return "\n".join(out) + "\n"


def _dot_string(text: str) -> str:
    text = _CONTROL.sub(" ", text)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_dot(plan: Plan) -> str:
    """The dependency graph as a Graphviz DOT digraph; critical-path edges are bold red."""
    crit_nodes = set(plan.critical_path)
    crit_edges = set(zip(plan.critical_path, plan.critical_path[1:]))
    out = [f"digraph {_dot_string(plan.name)} {{", "    rankdir=TB;", "    node [shape=box];"]
    for s in plan.stages:
        attrs = f"label={_dot_string(f'Stage {s.number}: {s.name}')}"
        if s.number in crit_nodes:
            attrs += ", penwidth=2, color=red"
        out.append(f"    s{s.number} [{attrs}];")
    for s in plan.stages:
        for d in s.depends_on:
            style = " [penwidth=2, color=red]" if (d, s.number) in crit_edges else ""
            out.append(f"    s{d} -> s{s.number}{style};")
    out.append("}")
    return "\n".join(out) + "\n"


def render_text(plan: Plan) -> str:
    """A person's view of the plan: stages with dependencies, waves, critical path."""
    out = [
        f"Plan:          {plan.name}",
        f"File:          {plan.path}",
        f"Project slug:  {plan.slug}",
        f"Stages:        {len(plan.stages)} in {len(plan.waves)} wave(s)",
        "",
    ]
    wave_of = graph.wave_of(plan.waves)
    for s in plan.stages:
        deps = ", ".join(str(d) for d in s.depends_on) or "none"
        est = f"  [{s.estimate_hours:g}h]" if s.estimate_hours is not None else ""
        out.append(
            f"  Stage {s.number}: {_CONTROL.sub(' ', s.name)}{est}  "
            f"(wave {wave_of[s.number]}; depends on: {deps})"
        )
    out.append("")
    out.append("Waves:")
    for i, wave in enumerate(plan.waves, 1):
        out.append(f"  Wave {i}: stage(s) {', '.join(str(n) for n in wave)}")
    out.append("")
    if plan.has_estimates():
        total = graph.path_length(plan.critical_path, plan.weights())
        length = f"{total:g}h estimated"
    else:
        length = f"{len(plan.critical_path)} stage(s)"
    out.append(f"Critical path: {' -> '.join(str(n) for n in plan.critical_path)} ({length})")
    return "\n".join(out) + "\n"
