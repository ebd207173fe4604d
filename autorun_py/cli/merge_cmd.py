"""`autorun merge`."""

from __future__ import annotations

import sys
from typing import Optional

import click


@click.command("merge")
@click.argument("orch", required=False)
@click.argument("stage", type=int, required=False)
@click.option("--continue", "cont", is_flag=True, help="Finish after resolving the conflicts.")
@click.option("--abort", is_flag=True, help="Drop the conflicted merge attempt.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def merge(
    orch: Optional[str], stage: Optional[int], cont: bool, abort: bool, as_json: bool
) -> Optional[int]:
    """Merge STAGE's branch into the run's base branch and start what became ready.

    Without ORCH and STAGE: the stage this worktree (or tmux session) belongs to.

    Exit 3: conflicts to resolve in the merge worktree, then --continue.
    Exit 4: blocked by your uncommitted changes in the base checkout.
    Exit 5: the candidate failed the run's verify command (the merge gate); the
    base did not move; the output shows the command, its result, the end of its
    output and its log.
    """
    from autorun_py.errors import UsageError
    from autorun_py.fastcli import run_merge

    if cont and abort:
        raise UsageError("--continue and --abort exclude each other")
    action = "continue" if cont else "abort" if abort else "merge"
    if orch is not None and stage is None:
        raise UsageError("give both ORCH and STAGE, or neither (to merge this worktree's stage)")
    code = run_merge(orch, stage, action, as_json)  # the lean path's body, the same output
    if code:
        sys.exit(code)
    return None
