"""`autorun cancel` and `autorun clean`."""

from __future__ import annotations

import os
from typing import Optional

import click

from autorun_py.cli._out import echo_json


@click.command("cancel")
@click.argument("orch", metavar="RUN")
@click.option(
    "--stage", "stage", type=int, help="Cancel only this stage (and block what needs it)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as one JSON object.")
def cancel(orch: str, stage: Optional[int], as_json: bool) -> None:
    """Stop RUN (or one stage): end its sessions and monitor, mark what was running
    or waiting `cancelled`. Branches and worktrees are kept; idempotent."""
    from autorun_py.cancel import cancel as do_cancel
    from autorun_py.rundir import resolve

    result = do_cancel(resolve(orch), stage, environ=os.environ)
    if as_json:
        echo_json(result.to_json())
    else:
        click.echo(result.to_text())


@click.command("clean")
@click.argument("orch", metavar="RUN", required=False)
@click.option("--all-finished", is_flag=True, help="Every run that is not running.")
@click.option(
    "--purge", is_flag=True, help="Also remove status.json, the events, the report and the logs."
)
@click.option("--force", is_flag=True, help="Also remove worktrees with uncommitted changes.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def clean(orch: Optional[str], all_finished: bool, purge: bool, force: bool, as_json: bool) -> None:
    """Remove what a finished or cancelled RUN left: its tmux sessions, worktrees, the
    branches of merged and cancelled stages (earlier attempts too), a demo's scratch
    repository. Keeps status.json, the events and the report unless --purge. Only
    ever what autorun created; idempotent."""
    from autorun_py.cancel import clean as do_clean
    from autorun_py.cancel import clean_all_finished
    from autorun_py.errors import AutorunError, UsageError
    from autorun_py.rundir import resolve

    if bool(orch) == all_finished:
        raise UsageError("name a RUN or give --all-finished (not both)")
    if all_finished:
        results = clean_all_finished(purge=purge, force=force)
        if as_json:
            echo_json([r.to_json() for r in results])
        else:
            click.echo("\n".join(r.to_text() for r in results) or "no finished runs to clean")
        return
    result = do_clean(resolve(orch), purge=purge, force=force)
    if as_json:
        echo_json(result.to_json())
        if result.skipped:
            raise SystemExit(1)
    elif result.skipped:
        raise AutorunError(result.to_text())
    else:
        click.echo(result.to_text())
