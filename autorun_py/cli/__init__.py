"""The ``autorun`` command line: a thin edge over the library.

Subcommands live in their own modules and are imported only when invoked, so
``autorun --help`` and ``autorun plan check`` never pay for watchdog & co.
Every :class:`~autorun_py.errors.AutorunError` becomes one line on stderr and
its exit code here, and nowhere else.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Optional

import click

from autorun_py import __version__
from autorun_py.errors import AutorunError, ExitCode

# name -> ("module:attribute", short help). Help text lives here so that
# `autorun --help` lists every command without importing any of them.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "orchestrate": (
        "autorun_py.cli.orchestrate_cmd:orchestrate",
        "Create an orchestration for a plan and launch the ready stages.",
    ),
    "launch-ready": (
        "autorun_py.cli.orchestrate_cmd:launch_ready",
        "Launch whatever is ready and not running (idempotent).",
    ),
    "chain": ("autorun_py.cli.orchestrate_cmd:chain", "Open the next pipeline step in a window."),
    "demo": ("autorun_py.cli.demo_cmd:demo", "Run a sample orchestration on a scratch repo."),
    "merge": ("autorun_py.cli.merge_cmd:merge", "Merge a finished stage and start what is ready."),
    "phase": ("autorun_py.cli.state_cmd:phase", "Record a stage phase start or end."),
    "events": ("autorun_py.cli.state_cmd:events", "Print (or follow) a run's events."),
    "context": ("autorun_py.cli.state_cmd:context", "Print the stage this place belongs to."),
    "stage": ("autorun_py.cli.state_cmd:stage", "Register a stage session, or fail a stage."),
    "retry": ("autorun_py.cli.state_cmd:retry", "Start a failed or cancelled stage again."),
    "cancel": (
        "autorun_py.cli.cancel_cmd:cancel",
        "Stop a run or one stage (sessions, monitor); keeps branches and worktrees.",
    ),
    "clean": (
        "autorun_py.cli.cancel_cmd:clean",
        "Remove a finished run's worktrees, branches and sessions (only autorun's own).",
    ),
    "status": ("autorun_py.cli.state_cmd:status", "Show one run's status (or --watch it)."),
    "list": ("autorun_py.cli.state_cmd:list_cmd", "List every orchestration."),
    "doctor": ("autorun_py.cli.doctor_cmd:doctor", "Check that what autorun needs is installed."),
    "install-cli": (
        "autorun_py.cli.install_cmd:install_cli",
        "Put `autorun` on PATH (a link in ~/.local/bin to the plugin's shim).",
    ),
    "plan": ("autorun_py.cli.plan_cmd:plan", "Check a master plan and show its dependency graph."),
    "simulate": ("autorun_py.cli.simulate_cmd:simulate", "Simulate how a plan would be scheduled."),
    "monitor": ("autorun_py.cli.monitor_cmd:monitor", "Keep a run going unattended."),
    "resume": ("autorun_py.cli.monitor_cmd:resume", "Bring a run back after a crash or reboot."),
    "report": ("autorun_py.cli.monitor_cmd:report", "Write a run's report: time, work, cost."),
    "hook": ("autorun_py.cli.hook_cmd:hook", "Claude Code hooks of the plugin (hooks/hooks.json)."),
    "review": (
        "autorun_py.cli.review_cmd:review",
        "Ask the user questions in a review file and wait for their answers.",
    ),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        if cmd_name in LAZY_COMMANDS:
            target = LAZY_COMMANDS[cmd_name][0]
            module_name, attr = target.split(":")
            cmd = getattr(importlib.import_module(module_name), attr)
            assert isinstance(cmd, click.Command)
            return cmd
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, LAZY_COMMANDS[name][1]) for name in sorted(LAZY_COMMANDS)]
        for name in super().list_commands(ctx):
            cmd = super().get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit=80)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(sorted(rows))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="autorun")
def cli() -> None:
    """autorun: run a staged master plan as parallel Claude Code sessions.

    Each stage gets its own git worktree and tmux session; finished stages are
    merged back into the branch the run started from, and the stages waiting on
    them start.
    """


def main(argv: Optional[list[str]] = None) -> None:
    """Console entry point: run the click group, map domain errors to exit codes."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        if args[:1] == ["--args-of"]:
            # A slash command's `!` line: its arguments come from the prompt hook,
            # never through a shell (autorun_py/prompt_args.py).
            from autorun_py.prompt_args import expand_argv

            args = expand_argv(args)
        rv: Any = cli.main(args=args, prog_name="autorun", standalone_mode=False)
    except AutorunError as exc:
        click.echo(f"autorun: error: {exc}", err=True)
        sys.exit(int(exc.exit_code))
    except click.exceptions.Abort:
        click.echo("autorun: interrupted", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    except click.ClickException as exc:
        exc.show()
        sys.exit(int(ExitCode.USAGE) if isinstance(exc, click.UsageError) else exc.exit_code)
    except KeyboardInterrupt:
        click.echo("autorun: interrupted", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    except BrokenPipeError:
        sys.exit(int(ExitCode.FAILURE))
    sys.exit(rv if isinstance(rv, int) else 0)
