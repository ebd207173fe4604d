"""The ``autorun`` command line: a thin edge over the library.

Subcommands live in their own modules and are imported only when invoked, so
``autorun --help`` and ``autorun plan check`` never pay for watchdog & co.
The error boundary is :func:`main`, and nowhere else: an
:class:`~autorun_py.errors.AutorunError` becomes one line on stderr and its
exit code; an ``OSError`` (a full or read-only disk, a file that cannot be
read), a ``UnicodeError`` or a JSON error from a user's file becomes one line
naming the file; anything unexpected one line and a hint to run with
``--debug`` (``AUTORUN_DEBUG=1``), which prints the traceback and logs every
git, tmux and process call.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any, NoReturn, Optional

import click

from autorun_py import __version__
from autorun_py.errors import AutorunError, ExitCode, os_error_line

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


class LazyGroup(click.Group):  # type: ignore[misc]  # click is untyped to mypy (pyproject)
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


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        from autorun_py import proc

        proc.set_debug(True)
        os.environ["AUTORUN_DEBUG"] = "1"  # for the processes autorun starts


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="autorun")
@click.option(
    "--debug",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_set_debug,
    help="Log every git, tmux and process call; print tracebacks (also AUTORUN_DEBUG=1).",
)
def cli() -> None:
    """autorun: run a staged master plan as parallel Claude Code sessions.

    Each stage gets its own git worktree and tmux session; finished stages are
    merged back into the branch the run started from, and the stages waiting on
    them start.
    """


def _debug_from_env() -> bool:
    return os.environ.get("AUTORUN_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def _debugging() -> bool:
    mod = sys.modules.get("autorun_py.proc")
    return bool(mod is not None and mod.debug_enabled())


def _fail(line: str, code: int) -> NoReturn:
    if _debugging():
        import traceback

        traceback.print_exc()
    click.echo(line, err=True)  # verbatim: a path may hold any character
    sys.exit(code)


def main(argv: Optional[list[str]] = None) -> None:
    """Console entry point: run the click group; the one place errors become lines."""
    args = sys.argv[1:] if argv is None else list(argv)
    if _debug_from_env():
        from autorun_py import proc

        proc.set_debug(True)
    try:
        if args[:1] == ["--args-of"]:
            # A slash command's `!` line: its arguments come from the prompt hook,
            # never through a shell (autorun_py/prompt_args.py).
            from autorun_py.prompt_args import expand_argv

            args = expand_argv(args, os.environ)
        rv: Any = cli.main(args=args, prog_name="autorun", standalone_mode=False)
    except AutorunError as exc:
        _fail(f"autorun: error: {exc}", int(exc.exit_code))
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
    except OSError as exc:
        _fail(os_error_line(exc), int(ExitCode.FAILURE))
    except UnicodeError as exc:
        _fail(f"autorun: error: text that is not valid UTF-8: {exc}", int(ExitCode.FAILURE))
    except RecursionError:
        _fail("autorun: error: input nested too deeply", int(ExitCode.FAILURE))
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        import json

        if isinstance(exc, json.JSONDecodeError):  # from a user's file
            _fail(f"autorun: error: not valid JSON: {exc}", int(ExitCode.FAILURE))
        detail = str(exc).strip().splitlines()
        _fail(
            f"autorun: internal error: {type(exc).__name__}"
            + (f": {detail[0]}" if detail else "")
            + ("" if _debugging() else " (run with --debug for the traceback)"),
            int(ExitCode.FAILURE),
        )
    sys.exit(rv if isinstance(rv, int) else 0)
