"""``autorun plan``: check a master plan and show its dependency graph.

Thin commands over :mod:`autorun_py.plan`; nothing heavy is imported here, so
``autorun plan check`` starts fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from autorun_py.errors import AutorunError
from autorun_py.plan import PlanError, load_plan, render_dot, render_mermaid, render_text

_PLAN_ARG = click.argument("plan_path", metavar="PLAN", type=click.Path(path_type=Path))


def _print_problems(exc: PlanError) -> None:
    for problem in exc.problems:
        click.echo(f"autorun: error: {problem.format(exc.path)}", err=True)


@click.group()
def plan() -> None:
    """Check a master plan and show its dependency graph."""


@plan.command("check")
@_PLAN_ARG
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (stdout).")
def check(plan_path: Path, as_json: bool) -> int:
    """Parse and validate PLAN; print its stages, waves and critical path.

    Exit status: 0 valid, 1 invalid plan (every problem is listed with its line),
    2 wrong usage.
    """
    try:
        result = load_plan(plan_path)
    except PlanError as exc:
        if as_json:
            errors = [{"line": p.line, "message": p.message} for p in exc.problems]
            click.echo(json.dumps({"errors": errors}))
        else:
            _print_problems(exc)
        return int(exc.exit_code)
    except AutorunError as exc:
        if not as_json:
            raise
        click.echo(json.dumps({"errors": [{"line": exc.line, "message": str(exc)}]}))
        return int(exc.exit_code)
    if as_json:
        click.echo(json.dumps(result.to_json()))
        return 0
    click.echo(render_text(result), nl=False)
    for warning in result.warnings:
        click.echo(f"autorun: warning: {result.path}: {warning}", err=True)
    return 0


@plan.command("show")
@_PLAN_ARG
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot"]),
    default="mermaid",
    show_default=True,
    help="Graph syntax to print.",
)
def show(plan_path: Path, fmt: str) -> int:
    """Print PLAN's dependency graph (Mermaid or Graphviz DOT); critical path highlighted."""
    try:
        result = load_plan(plan_path)
    except PlanError as exc:
        _print_problems(exc)
        return int(exc.exit_code)
    click.echo(render_mermaid(result) if fmt == "mermaid" else render_dot(result), nl=False)
    return 0
