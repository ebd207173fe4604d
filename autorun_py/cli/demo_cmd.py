"""`autorun demo`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import click


@click.command("demo")
@click.option("--dir", "root", type=click.Path(path_type=Path), help="Scratch directory to use.")
@click.option(
    "--timeout",
    type=float,
    default=60.0,
    show_default=True,
    help="Give up (exit 1) if the sample run has not finished after SECONDS.",
)
@click.option(
    "--max-parallel",
    type=click.IntRange(min=1),
    help="Cap on stages running at once (default: no cap; the stand-in agent is light).",
)
@click.option("--delay", default="0.5-2.5", show_default=True, help="Stand-in work, seconds.")
def demo(root: Optional[Path], timeout: float, max_parallel: Optional[int], delay: str) -> None:
    """Run a 6-stage sample plan on a scratch repo with a stand-in agent."""
    from autorun_py.demo import after_commands, check_demo, gate_lines, run_demo
    from autorun_py.summary import final_summary

    tty = sys.stdout.isatty()
    last = [""]

    def show(text: str) -> None:
        if text.startswith("\x00"):  # a status frame
            frame = text[1:]
            if tty:
                click.echo("\x1b[H\x1b[2J" + frame)
            elif frame != last[0]:
                click.echo(frame + "\n")
            last[0] = frame
        else:
            click.echo(text + "\n")

    result = run_demo(root=root, timeout=timeout, delay=delay, max_parallel=max_parallel, show=show)
    from autorun_py.state import StatusStore

    if result.orch_dir is not None:
        state = StatusStore(result.orch_dir).read()
        click.echo("\n" + final_summary(state))
        click.echo("\n" + "\n".join(gate_lines(result)))
    click.echo(
        f"\nDemo {'completed' if result.ok else 'did NOT complete'} in {result.seconds:.1f}s.\n"
        f"  Repository: {result.repo}\n"
        f"  State:      {result.orch_dir}\n"
        f"  Logs:       {result.home / 'logs'}\n"
        "\nLook around afterwards (these work from any directory):"
    )
    for line in after_commands(result, os.environ):
        click.echo(f"  {line}")
    check_demo(result)
