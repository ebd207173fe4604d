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

One job per module: :mod:`.model` (the figures), :mod:`.collect` (gathering them),
:mod:`.charts` (the Mermaid timeline and graph), :mod:`.markdown` (the Markdown),
:mod:`.times` (reading timestamps, below the others);
this module writes the files. Every name is importable from here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from autorun_py import fsutil, paths
from autorun_py.mermaid import gantt_text
from autorun_py.mermaid import label as mermaid_label
from autorun_py.report.charts import dependency_graph, gantt
from autorun_py.report.collect import build_report, git_stats, wait_intervals
from autorun_py.report.markdown import render_markdown
from autorun_py.report.model import GitStats, PhaseTime, RunReport, StageReport, _now, _ts
from autorun_py.state import write_json_atomic


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
    "GitStats",
    "PhaseTime",
    "RunReport",
    "StageReport",
    "build_report",
    "dependency_graph",
    "gantt",
    "gantt_text",
    "git_stats",
    "mermaid_label",
    "render_markdown",
    "report_paths",
    "wait_intervals",
    "write_report",
    "_now",
    "_ts",
]
