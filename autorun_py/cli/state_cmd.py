"""State commands: phase, events, context, status, list, stage start/fail, retry."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

import click

from autorun_py.cli._out import echo_err, echo_json
from autorun_py.state import PHASES


def _orch(ref: Optional[str]) -> Path:
    from autorun_py.rundir import resolve

    return resolve(ref)


@click.command("phase")
@click.argument("args", nargs=-1, metavar="[ORCH STAGE] PHASE started|completed")
@click.option("--current", type=click.IntRange(min=0), help="Implementation phase reached.")
@click.option("--total", type=click.IntRange(min=0), help="Implementation phases in the plan.")
@click.option("--plan-file", type=click.Path(path_type=Path), help="Record the stage's plan file.")
def phase(
    args: tuple[str, ...],
    current: Optional[int],
    total: Optional[int],
    plan_file: Optional[Path],
) -> None:
    """Record that a stage's PHASE started or completed.

    Without ORCH and STAGE: the stage this worktree (or tmux session) belongs to.
    PHASE is one of: triage, research, create_plan, implement, merge.
    """
    from autorun_py.errors import UsageError
    from autorun_py.state import StatusStore, update_phase

    if len(args) == 4:
        orch_dir, stage_text, name, action = _orch(args[0]), args[1], args[2], args[3]
        if not stage_text.isdigit():
            raise UsageError(f"STAGE must be a stage number, not {stage_text!r}")
        stage = int(stage_text)
    elif len(args) == 2:
        from autorun_py.stage import find_context

        ctx = find_context(Path.cwd(), environ=os.environ)
        orch_dir, stage, name, action = Path(ctx.orch_dir), ctx.stage, args[0], args[1]
    else:
        raise UsageError("usage: autorun phase [ORCH STAGE] PHASE started|completed")
    if name not in PHASES:
        raise UsageError(f"unknown phase {name!r} (one of: {', '.join(PHASES)})")
    if action not in ("started", "completed"):
        raise UsageError(f"unknown action {action!r} (started or completed)")
    with StatusStore(orch_dir).transaction() as txn:
        st = update_phase(txn, stage, name, action, current=current, total=total)
        if plan_file is not None:
            st.plan_file = str(plan_file.expanduser().resolve())


def _event_line(ev: dict[str, Any]) -> str:
    skip = {"ts", "type", "plan_name", "project_slug", "orch_dir"}
    rest = " ".join(f"{k}={v}" for k, v in ev.items() if k not in skip)
    return f"{ev.get('ts', '')}  {ev.get('type', '?'):<22} {rest}".rstrip()


@click.command("events")
@click.argument("orch", required=False)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events as they come.")
@click.option(
    "--forever", is_flag=True, help="With --follow: keep following after the run ends (Ctrl-C)."
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="With --follow: stop once the run is finished and no event came for this long "
    "(default 3; a retry after the end keeps the follower going).",
)
@click.option("--new", "only_new", is_flag=True, help="With --follow: skip events already logged.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option(
    "--notable",
    is_flag=True,
    help="Only what a person (or the orchestrating session) acts on, one line each.",
)
@click.option(
    "--wait",
    "wait_run",
    is_flag=True,
    help="Without ORCH: wait until this repository has a running orchestration.",
)
def events(
    orch: Optional[str],
    follow: bool,
    forever: bool,
    grace: Optional[float],
    only_new: bool,
    as_json: bool,
    notable: bool,
    wait_run: bool,
) -> None:
    """Print a run's events (events.jsonl)."""
    import json

    from autorun_py.events import (
        FOLLOW_GRACE,
        follow_events,
        follow_run,
        notable_line,
        read_events,
    )
    from autorun_py.state import StatusStore

    orch_dir = _wait_for_run() if (wait_run and orch is None) else _orch(orch)
    StatusStore(orch_dir).read()  # a broken run is one clear error, not a log without a run

    def show(ev: dict[str, Any]) -> None:
        if notable:
            line = notable_line(ev)
            if line is None:
                return
            click.echo(line)
        else:
            click.echo(json.dumps(ev, ensure_ascii=False) if as_json else _event_line(ev))
        sys.stdout.flush()

    if not follow:
        for ev in read_events(orch_dir):
            show(ev)
        return
    if forever:
        for ev in follow_events(orch_dir, from_start=not only_new):
            show(ev)
        return
    for ev in follow_run(
        orch_dir,
        lambda: _run_finished(orch_dir),
        from_start=not only_new,
        grace=FOLLOW_GRACE if grace is None else grace,
    ):
        show(ev)


def _run_finished(orch_dir: Path) -> bool:
    """The run's state says it is over (an unreadable state keeps the follower going)."""
    from autorun_py.errors import AutorunError
    from autorun_py.state import RUN_RUNNING, StatusStore

    try:
        state = StatusStore(orch_dir).read()
    except AutorunError:
        return False
    return state.status != RUN_RUNNING and state.is_finished()


def _wait_for_run(poll: float = 1.0) -> Path:
    """The running orchestration of this repository, waiting until there is one."""
    from autorun_py.errors import AutorunError
    from autorun_py.rundir import current_orchestration, is_running

    while True:
        try:
            found = current_orchestration(Path.cwd())
            if is_running(found):
                return found
        except AutorunError:
            pass
        time.sleep(poll)


def _print_context(ctx: Any, as_json: bool, as_shell: bool, *, full: bool = False) -> None:
    if as_json:
        echo_json(ctx.to_json())
    elif as_shell:
        click.echo(ctx.to_shell())
    else:
        click.echo(ctx.to_text(with_context_file=full))


@click.command("context")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.option("--shell", "as_shell", is_flag=True, help="KEY=value lines, safe to eval.")
def context(as_json: bool, as_shell: bool) -> None:
    """Print the running stage this directory (or tmux session) belongs to; exit 1 if none."""
    from autorun_py.stage import find_context

    _print_context(find_context(Path.cwd(), environ=os.environ), as_json, as_shell)


@click.group("stage")
def stage() -> None:
    """Register a stage's session, or mark a stage failed."""


@stage.command("start")
@click.argument("context_file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.option("--shell", "as_shell", is_flag=True, help="KEY=value lines, safe to eval.")
def stage_start(context_file: Path, as_json: bool, as_shell: bool) -> None:
    """Register this session as the stage of CONTEXT_FILE and print its context."""
    from autorun_py.stage import register_stage

    session = os.environ.get("AUTORUN_TMUX_SESSION") or None  # set by the launch
    ctx = register_stage(context_file, Path.cwd(), session=session)
    _print_context(ctx, as_json, as_shell, full=True)


@stage.command("fail")
@click.argument("orch")
@click.argument("number", type=int)
@click.option("--reason", required=True, help="Why the stage failed (shown in the status view).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def stage_fail(orch: str, number: int, reason: str, as_json: bool) -> None:
    """Mark a stage failed; its descendants become blocked, other stages go on."""
    from autorun_py.lifecycle import fail

    result = fail(_orch(orch), number, reason, environ=os.environ)
    if as_json:
        echo_json(result)
    else:
        blocked = result["blocked"]
        click.echo(
            f"stage {number} marked failed"
            + (f"; blocked: {', '.join(map(str, blocked))}" if blocked else "")
            + f". Its branch and worktree are kept; retry with `autorun retry {orch} {number}`."
        )


@click.command("retry")
@click.argument("orch")
@click.argument("number", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def retry(orch: str, number: int, as_json: bool) -> None:
    """Start a failed or cancelled stage again from the current tip of the base branch."""
    from autorun_py.config import load_config
    from autorun_py.lifecycle import retry as do_retry

    result = do_retry(_orch(orch), number, config=load_config(os.environ))
    if as_json:
        echo_json(result)
    else:
        click.echo(f"stage {number} reset; launched: {result['launched'] or 'none'}")
        for warning in result.get("warnings", []):
            echo_err(f"autorun: warning: {warning}")


@click.command("status")
@click.argument("orch", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.option("--watch", "-w", is_flag=True, help="Redraw until the run ends.")
@click.option(
    "--interval",
    type=float,
    default=1.0,
    show_default=True,
    help="With --watch: seconds between two refreshes.",
)
def status(orch: Optional[str], as_json: bool, watch: bool, interval: float) -> None:
    """Show one run: stages, phases, progress, waves, what is ready or blocked."""
    from autorun_py.view import render_status, status_summary

    orch_dir = _orch(orch)
    if not watch:
        summary = status_summary(orch_dir)
        if as_json:
            echo_json(summary)
        else:
            click.echo(render_status(summary))
        return
    tty = sys.stdout.isatty()
    while True:
        summary = status_summary(orch_dir)
        if as_json:
            import json

            click.echo(json.dumps(summary, ensure_ascii=False))
        else:
            if tty:
                click.echo("\x1b[H\x1b[2J", nl=False)
            click.echo(render_status(summary))
            if not tty:
                click.echo("")
        sys.stdout.flush()
        if summary["finished"]:
            return
        time.sleep(interval)


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def list_cmd(as_json: bool) -> None:
    """List every orchestration under $AUTORUN_HOME."""
    from autorun_py.view import list_runs, render_runs

    runs = list_runs()
    if as_json:
        echo_json(runs)
    else:
        click.echo(render_runs(runs))


__all__ = ["context", "echo_err", "events", "list_cmd", "phase", "retry", "stage", "status"]
