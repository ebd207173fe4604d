"""`autorun orchestrate` and `autorun launch-ready`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import click

from autorun_py.cli._out import echo_err, echo_json


def _launcher_option(
    ctx: click.Context, param: click.Parameter, value: Optional[str]
) -> Optional[str]:
    if value is None:
        return None
    from autorun_py.errors import AutorunError
    from autorun_py.launchers import parse_spec, spec_text

    try:
        return spec_text(parse_spec(value, "--launcher"))
    except AutorunError as exc:
        raise click.BadParameter(str(exc).removeprefix("--launcher: ")) from None


@click.command("orchestrate")
@click.argument("plan_path", metavar="PLAN", type=click.Path(path_type=Path))
@click.option(
    "--max-parallel",
    type=click.IntRange(min=1),
    help="Cap on stages running at once (default: AUTORUN_MAX_PARALLEL, else the config's "
    "max_parallel, else min(cores x 2, available memory / 600 MB); the summary says which).",
)
@click.option(
    "--schedule",
    type=click.Choice(["dataflow", "waves"]),
    default="dataflow",
    show_default=True,
    help="dataflow: a stage starts once its own dependencies are merged; "
    "waves: a stage also waits until every stage of the waves before it is merged.",
)
@click.option(
    "--launcher",
    metavar="NAME[=CAP],...",
    default=None,
    callback=_launcher_option,
    help="What runs each stage's session: tmux (a tmux session each), background "
    "(Claude Code background sessions, `claude --bg`) or remote (cloud sessions on your "
    "self-hosted environment); several with a cap each, e.g. "
    "tmux=2,background=4: each stage goes to the first with a free slot. Default: "
    "AUTORUN_LAUNCHER, else the config's launcher(s), else tmux. Kept for the whole run "
    "(docs/scale-out.md).",
)
@click.option(
    "--remote-environment",
    metavar="ID",
    help="The remote launcher's self-hosted environment (ccpool_...; over the plan's "
    "`remote.environment:` front matter and config.json's remote.environment).",
)
@click.option(
    "--remote-git-remote",
    metavar="NAME",
    help="The git remote the remote launcher pushes the stages' branches to "
    "(default: remote.git_remote of the plan or config, else origin).",
)
@click.option("--dry-run", is_flag=True, help="Print what would happen; touch nothing.")
@click.option("--no-launch", is_flag=True, help="Create the orchestration but start no stage.")
@click.option("--no-monitor", is_flag=True, help="Do not start the background monitor.")
@click.option(
    "--verify",
    "verify",
    metavar="CMD",
    help="Shell command a merge candidate must pass before the base branch moves to it "
    "(over the plan's `verify:` front matter and config.json; '' turns the gate off).",
)
@click.option(
    "--verify-timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Kill the verify command after SECONDS (default 900); counts as a failure.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def orchestrate(
    plan_path: Path,
    max_parallel: Optional[int],
    schedule: str,
    launcher: Optional[str],
    remote_environment: Optional[str],
    remote_git_remote: Optional[str],
    dry_run: bool,
    no_launch: bool,
    no_monitor: bool,
    verify: Optional[str],
    verify_timeout: Optional[float],
    as_json: bool,
) -> None:
    """Create an orchestration for PLAN and launch every stage that is ready."""
    from autorun_py.capacity import resolve_max_parallel
    from autorun_py.config import load_config
    from autorun_py.launchers import parse_spec
    from autorun_py.orchestrate import run_orchestrate
    from autorun_py.permissions import unattended_warning
    from autorun_py.plan import PlanError

    config = load_config(os.environ)
    launcher = launcher or config.launcher
    cap = resolve_max_parallel(
        max_parallel,
        os.environ.get("AUTORUN_MAX_PARALLEL"),
        config.max_parallel,
        launcher_caps=[c.max_parallel for c in parse_spec(launcher)],
    )
    warning = unattended_warning(config, Path.cwd())
    if warning:
        echo_err(f"autorun: warning: {warning}")
    try:
        outcome = run_orchestrate(
            plan_path,
            Path.cwd(),
            max_parallel=cap.value,
            max_parallel_reason=cap.reason,
            schedule=schedule,
            launcher=launcher,
            dry_run=dry_run,
            launch=not no_launch,
            monitor=not no_monitor,
            verify=verify,
            verify_timeout=verify_timeout,
            remote_environment=remote_environment,
            remote_git_remote=remote_git_remote,
            config=config,
        )
    except PlanError as exc:
        if as_json:
            echo_json({"errors": [{"line": p.line, "message": p.message} for p in exc.problems]})
            sys.exit(1)
        raise
    if not dry_run:
        from autorun_py.install import first_run_link

        linked = first_run_link(os.environ)  # the first run through the shim puts `autorun` on PATH
        if linked is not None:
            for line in linked.to_text().splitlines():
                echo_err(f"autorun: {line}")
    if as_json:
        echo_json(outcome.to_json())
        return
    for warning in outcome.plan_warnings:  # e.g. a dependency read from a stage's name
        echo_err(f"autorun: warning: {warning}")
    click.echo(outcome.text)
    for n, err in outcome.launch_failed:
        echo_err(f"autorun: stage {n} failed to launch (will be retried): {err}")


@click.command("launch-ready")
@click.argument("orch", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def launch_ready(orch: Optional[str], as_json: bool) -> None:
    """Launch whatever is ready and not running (idempotent)."""
    from autorun_py.config import load_config
    from autorun_py.launch import launch_ready as do_launch
    from autorun_py.rundir import resolve

    result = do_launch(resolve(orch), config=load_config(os.environ))
    if as_json:
        echo_json(
            {
                "launched": result.launched,
                "failed": [{"stage": n, "error": e} for n, e in result.failed],
                "running": result.running,
                "pending": result.pending,
            }
        )
        return
    click.echo(
        f"launched: {', '.join(map(str, result.launched)) or 'none'}; "
        f"running: {', '.join(map(str, result.running)) or 'none'}; "
        f"pending: {', '.join(map(str, result.pending)) or 'none'}"
    )
    for n, err in result.failed:
        echo_err(f"autorun: stage {n} failed to launch: {err}")


@click.command("chain")
@click.argument("command")
@click.option("--window", required=True, help="Name of the new tmux window (e.g. implement).")
@click.option("--session", help="tmux session to open it in (default: the stage's or this one).")
@click.option("--cwd", type=click.Path(path_type=Path, file_okay=False), help="Working directory.")
@click.option("--phase", help="Pipeline phase, for the per-phase model (default: from --window).")
@click.option("--close-caller", is_flag=True, help="Close the calling tmux pane afterwards.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def chain(
    command: str,
    window: str,
    session: Optional[str],
    cwd: Optional[Path],
    phase: Optional[str],
    close_caller: bool,
    as_json: bool,
) -> None:
    """Open the next pipeline step COMMAND (a slash command) in a new tmux window."""
    from autorun_py.chain import chain as do_chain

    result = do_chain(
        command,
        window=window,
        session=session,
        cwd=cwd,
        close_caller=close_caller,
        phase=phase,
        environ=os.environ,
    )
    from autorun_py.fastcli import chain_text

    click.echo(chain_text(result, command, as_json))
