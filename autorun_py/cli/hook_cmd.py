"""``autorun hook ...``: what the plugin's Claude Code hooks (hooks/hooks.json) run.

Each reads the hook's JSON input on stdin. A hook's stdout becomes context for
the model, so these print nothing there, and they never block a prompt.
"""

from __future__ import annotations

import sys

import click


@click.group("hook", hidden=False)
def hook() -> None:
    """Claude Code hooks of the autorun plugin (run by hooks/hooks.json)."""


@hook.command("user-prompt-submit")
def user_prompt_submit() -> None:
    """Keep the arguments of an /autorun:<command> prompt for its `!` lines
    (so that no shell ever reads them; see autorun_py/prompt_args.py)."""
    from autorun_py.errors import AutorunError
    from autorun_py.prompt_args import record

    try:
        record(sys.stdin.read())
    except (OSError, AutorunError) as exc:
        # Never block the prompt: the `!` line then says no arguments were recorded.
        click.echo(f"autorun: hook: cannot record the arguments: {exc}", err=True)
