"""`autorun merge`."""

from __future__ import annotations

import os
import sys
from typing import Optional

import click

from autorun_py.cli._out import echo_json


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
    from autorun_py.errors import AutorunError, ExitCode, UsageError
    from autorun_py.merge import merge as do_merge
    from autorun_py.rundir import resolve

    if cont and abort:
        raise UsageError("--continue and --abort exclude each other")
    action = "continue" if cont else "abort" if abort else "merge"
    if orch is None or stage is None:
        if orch is not None:
            raise UsageError(
                "give both ORCH and STAGE, or neither (to merge this worktree's stage)"
            )
        from pathlib import Path

        from autorun_py.stage import find_context

        try:
            here = Path.cwd()
        except OSError:  # the merged stage's worktree was removed under this shell
            here = Path(os.environ.get("PWD") or "/")
        ctx = find_context(here, include_done=True, environ=os.environ)
        orch, stage = ctx.orch_dir, ctx.stage
    import signal

    def stop(signum: int, frame: object) -> None:
        # Killed from outside (Claude Code ending the command, a closed terminal):
        # unwind, so the verify command's process group and worktree go too.
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    try:
        report = do_merge(
            resolve(orch),
            stage,
            action=action,
            progress=lambda line: click.echo(line, err=True),
            claude_shell=bool(os.environ.get("CLAUDECODE")),
        )
    except AutorunError as exc:
        if exc.exit_code is ExitCode.TIMEOUT:  # exit 5 of `autorun merge` means a red gate
            exc.exit_code = ExitCode.FAILURE
        raise
    if as_json:
        echo_json(report.to_json())
    else:
        click.echo(report.to_text())
    sys.stdout.flush()
    if report.exit_code:
        sys.exit(int(report.exit_code))
    return None
