"""``autorun doctor``: check what autorun needs (thin edge over autorun_py.doctor)."""

from __future__ import annotations

import os

import click

from autorun_py.cli._out import echo_json


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (stdout).")
def doctor(as_json: bool) -> int:
    """Check python3, git (>= 2.38), tmux, the claude CLI, autorun's Python
    environment and $AUTORUN_HOME; print each with its version, and how to install
    what is missing on macOS and Debian/Ubuntu.

    Exit status: 0 when everything required is there, 1 otherwise.
    """
    from autorun_py.doctor import render_text, run_doctor

    report = run_doctor(os.environ)
    if as_json:
        echo_json(report.to_json())
    else:
        click.echo(render_text(report), nl=False)
    return 0 if report.ok else 1
