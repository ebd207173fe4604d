"""`autorun cancel` and `autorun clean`."""

from __future__ import annotations

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
    from autorun_py.orchestration import resolve

    result = do_cancel(resolve(orch), stage)
    if as_json:
        echo_json(result.to_json())
    else:
        click.echo(result.to_text())
