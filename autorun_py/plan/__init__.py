"""The master plan: parser, model and validation.

A master plan is Markdown. The parser reads markdown-it-py block tokens (so a
stage heading inside a code fence or an HTML comment is not a stage) and
understands the shapes people and models actually write:

* stage headings at any level: ``## Stage 3: Name`` (also ``Stage 3 — Name``,
  ``Stage 3 - Name``, ``Stage 3. Name``), each followed somewhere in its section
  by a dependency line (``**Dependencies**: None``, ``Depends on: Stage 1,
  Stage 2``, ``- Depends on: Stages 1 and 2``, ``Dependencies: 3, 4``,
  ``Dependencies: Stage 1 (Ingest)``, ``Depends on: nothing`` / ``—`` / ``n/a``,
  or ``Dependencies:`` followed by a list); the rest of the section, as its
  original Markdown source, is the stage's scope;
* stages grouped under ``## Wave N`` headings (the declared wave is a hint: the
  computed waves are authoritative and a contradiction is a warning);
* a summary table with columns like ``Stage | Name | Depends on`` (optionally
  ``Estimate``, ``Wave``, ``Scope``), with the scopes in stage sections below it.

Validation is strict on real errors (no stages, duplicate numbers, a stage
depending on itself or on a missing stage, a cycle, unreadable dependencies, a
file that is not UTF-8 text) and forgiving on formatting; every problem names
its line. Non-fatal oddities become warnings.

The package: :mod:`~autorun_py.plan.grammar` (the patterns and value parsers),
:mod:`~autorun_py.plan.parser` (reading a file, ``_Parser``),
:mod:`~autorun_py.plan.model` (``Plan``, ``Stage``, ``PlanError``) and
:mod:`~autorun_py.plan.render` (Mermaid, dot, text). Import from here.
"""

from __future__ import annotations

from autorun_py.plan.grammar import (
    DEPENDENCY_FORMS,
    MAX_RANGE,
    MAX_STAGE_NUMBER,
    parse_dependency_value,
    parse_estimate,
)
from autorun_py.plan.model import Plan, PlanError, PlanProblem, Stage, front_matter_values
from autorun_py.plan.parser import PLAN_SIZE_LIMIT, decode_plan_bytes, load_plan, parse_plan
from autorun_py.plan.render import render_dot, render_mermaid, render_text

__all__ = [
    "DEPENDENCY_FORMS",
    "MAX_RANGE",
    "MAX_STAGE_NUMBER",
    "PLAN_SIZE_LIMIT",
    "Plan",
    "PlanError",
    "PlanProblem",
    "Stage",
    "decode_plan_bytes",
    "front_matter_values",
    "load_plan",
    "parse_dependency_value",
    "parse_estimate",
    "parse_plan",
    "render_dot",
    "render_mermaid",
    "render_text",
]
