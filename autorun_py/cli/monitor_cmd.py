"""`autorun monitor`, `autorun resume` and `autorun report`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import click

from autorun_py.cli._out import echo_json


def _orch(ref: Optional[str]) -> Path:
    from autorun_py.rundir import resolve

    return resolve(ref)


@click.command("monitor")
@click.argument("orch", required=False)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.01),
    default=None,
    help="Seconds between checks [default: $AUTORUN_MONITOR_INTERVAL or 60].",
)
@click.option(
    "--gap",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds between a check's two pane snapshots [default: $AUTORUN_MONITOR_GAP or 60].",
)
@click.option("--once", is_flag=True, help="Run one check and exit.")
@click.option(
    "--max-nudges",
    type=click.IntRange(min=0),
    default=None,
    help="`continue`s in a row per idle stage before it is only reported [default: 5].",
)
@click.option(
    "--max-restarts",
    type=click.IntRange(min=0),
    default=None,
    help="Restarts of a dead session before the stage is marked failed [default: 3].",
)
@click.option(
    "--limit-margin",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds to wait past a usage limit's reset time [default: 60].",
)
@click.option(
    "--limit-backoff",
    type=click.FloatRange(min=0),
    default=None,
    help="First wait when a usage-limit message names no reset time; doubles [default: 300].",
)
@click.option(
    "--early-death",
    type=click.FloatRange(min=0),
    default=None,
    help="A session whose log went quiet this many seconds after its start is failed with "
    "its last lines instead of restarted; 0: always restart [default: 15].",
)
@click.option("--quiet", is_flag=True, help="Write findings to the monitor log only.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON at the end.")
def monitor(
    orch: Optional[str],
    interval: Optional[float],
    gap: Optional[float],
    once: bool,
    max_nudges: Optional[int],
    max_restarts: Optional[int],
    limit_margin: Optional[float],
    limit_backoff: Optional[float],
    early_death: Optional[float],
    quiet: bool,
    as_json: bool,
) -> None:
    """Keep a run going: continue idle or rate-limited sessions, restart dead ones,
    launch stages left behind; write the report when every stage has ended.

    One monitor per run: a second one exits at once (status 0)."""
    from autorun_py.cli.monitor_env import monitor_options
    from autorun_py.handoff import engine_command
    from autorun_py.monitor import run_monitor

    opts = monitor_options(
        os.environ,
        engine=engine_command(os.environ),
        interval=interval,
        gap=gap,
        once=once,
        max_nudges=max_nudges,
        max_restarts=max_restarts,
        limit_margin=limit_margin,
        limit_backoff=limit_backoff,
        early_death=early_death,
    )

    def show(line: str) -> None:
        click.echo(line)
        sys.stdout.flush()

    outcome = run_monitor(
        _orch(orch), opts, environ=os.environ, echo=None if (quiet or as_json) else show
    )
    if as_json:
        echo_json(outcome.to_json())
        return
    if outcome.already_running:
        pid = f" (pid {outcome.pid})" if outcome.pid and outcome.pid > 0 else ""
        click.echo(f"a monitor is already running for this run{pid}; nothing to do")
    elif outcome.report and not quiet:
        click.echo(f"run finished; report: {outcome.report}")


@click.command("resume")
@click.argument("orch", required=False)
@click.option("--no-monitor", is_flag=True, help="Do not start the background monitor.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def resume(orch: Optional[str], no_monitor: bool, as_json: bool) -> None:
    """Bring a run back after a crash or a reboot (idempotent).

    Stages whose sessions are gone resume their Claude sessions in their
    worktrees, interrupted merges are finished (or handed to the model), ready
    stages are launched, and the monitor is started."""
    from autorun_py.config import load_config
    from autorun_py.resume import resume_run

    result = resume_run(_orch(orch), monitor=not no_monitor, config=load_config(os.environ))
    if as_json:
        echo_json(result.to_json())
    else:
        click.echo(result.to_text())


@click.command("report")
@click.argument("orch", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the report's JSON.")
def report(orch: Optional[str], as_json: bool) -> None:
    """Write the run report (Markdown with Mermaid charts, and JSON) under
    $AUTORUN_HOME/reports/: durations, parallelism, commits, conflicts, nudges,
    restarts, tokens and cost."""
    import json

    from autorun_py.report import write_report

    md, js = write_report(_orch(orch))
    if as_json:
        click.echo(js.read_text(encoding="utf-8").rstrip("\n"))
        return
    data = json.loads(js.read_text(encoding="utf-8"))
    tokens = data["tokens"]
    click.echo(f"Report: {md}")
    click.echo(f"JSON:   {js}")
    click.echo(
        f"{len(data['stages'])} stages, wall {data['wall_seconds']:.0f}s, parallelism "
        f"{data['parallelism']:.2f} (bound {data['bound_parallelism']:.2f}), "
        f"{tokens['total_tokens']:,} tokens, ${tokens['cost_usd']:.4f}"
    )
