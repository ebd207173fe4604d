"""A lean path for the calls a stage makes at every step.

``autorun phase [ORCH STAGE] PHASE started|completed [--current N] [--total M]
[--plan-file P]``, ``autorun context [--json] [--shell]``, and the three calls of
every stage's protocol (commands/*.md): ``autorun stage start CONTEXT_FILE
[--json] [--shell]``, ``autorun chain COMMAND --window W [--close-caller]
[--json]`` and ``autorun merge [ORCH STAGE] [--json]`` run here without click
and without the CLI modules (issue 16: start-up was most of their cost).
Only a call that is plainly well formed is taken; anything else (``--help``, an
unknown option, a bad value, a place the session's own ``AUTORUN_ORCH_DIR`` /
``AUTORUN_STAGE`` does not name, ``--debug``) returns ``None`` *before anything
is read or written*, and the full CLI handles it with its usual messages. What
is done here is exactly what the click commands do: the same library calls, the
same lock, fsyncs and checks, the same output and exit codes.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional

_ACTIONS = ("started", "completed")
_PHASES = ("triage", "research", "create_plan", "implement", "merge")


def _nonneg(text: str) -> Optional[int]:
    return int(text) if text.isdigit() and text.isascii() else None


def _orch_dir(ref: str) -> Optional[Path]:
    """What :func:`autorun_py.rundir.resolve` finds for a path or a name,
    or ``None`` (the full CLI then says what is wrong)."""
    if not ref:
        return None
    p = Path(ref).expanduser()
    if (p / "status.json").is_file():
        return p.resolve()
    if p.name == "status.json" and p.is_file():
        return p.parent.resolve()
    if "/" not in ref and ref not in (".", ".."):
        from autorun_py import paths

        cand = paths.layout().run_dir(ref)
        if (cand / "status.json").is_file():
            return cand
    return None


def _phase(args: list[str]) -> Optional[Callable[[], int]]:
    pos: list[str] = []
    opts: dict[str, str] = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("-"):
            name, eq, value = a.partition("=")
            if name not in ("--current", "--total", "--plan-file") or name in opts:
                return None
            if not eq:
                if i + 1 >= len(args):
                    return None
                i += 1
                value = args[i]
            opts[name] = value
        else:
            pos.append(a)
        i += 1
    current = total = None
    if "--current" in opts:
        current = _nonneg(opts["--current"])
        if current is None:
            return None
    if "--total" in opts:
        total = _nonneg(opts["--total"])
        if total is None:
            return None
    plan_file = opts.get("--plan-file")
    if plan_file == "":
        return None
    if len(pos) == 4:
        orch = _orch_dir(pos[0])
        if orch is None or not (pos[1].isdigit() and pos[1].isascii()):
            return None
        stage, name, action = int(pos[1]), pos[2], pos[3]
    elif len(pos) == 2:
        name, action = pos
        orch, stage = None, 0
    else:
        return None
    if name not in _PHASES or action not in _ACTIONS:
        return None
    if orch is None:
        from autorun_py.stage import context_from_env

        ctx = context_from_env(Path.cwd().resolve(), False, os.environ)
        if ctx is None:
            return None  # not the session's own stage here: the full lookup
        orch, stage = Path(ctx.orch_dir), ctx.stage
    orch_dir, number = orch, stage

    def run() -> int:
        from autorun_py.state import StatusStore, update_phase

        with StatusStore(orch_dir).transaction() as txn:
            st = update_phase(txn, number, name, action, current=current, total=total)
            if plan_file is not None:
                st.plan_file = str(Path(plan_file).expanduser().resolve())
        return 0

    return run


def _context(args: list[str]) -> Optional[Callable[[], int]]:
    if any(a not in ("--json", "--shell") for a in args):
        return None
    from autorun_py.stage import context_from_env

    ctx = context_from_env(Path.cwd().resolve(), False, os.environ)
    if ctx is None:
        return None

    def run() -> int:
        _print_context(ctx, set(args), full=False)
        return 0

    return run


def _flags(args: list[str], allowed: tuple[str, ...]) -> Optional[tuple[list[str], set[str]]]:
    """(positionals, flags) when ``args`` holds only the ``allowed`` flags (each at
    most once) and positionals (after ``--``: positionals only), else None."""
    pos: list[str] = []
    flags: set[str] = set()
    for i, a in enumerate(args):
        if a == "--":
            pos += args[i + 1 :]
            break
        if a.startswith("-") and a != "-":
            if a not in allowed or a in flags:
                return None
            flags.add(a)
        else:
            pos.append(a)
    return pos, flags


def _print_context(ctx: Any, flags: set[str], *, full: bool) -> None:
    if "--json" in flags:
        text = json.dumps(ctx.to_json(), indent=2, ensure_ascii=False)
    elif "--shell" in flags:
        text = ctx.to_shell()
    else:
        text = ctx.to_text(with_context_file=full)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _stage(args: list[str]) -> Optional[Callable[[], int]]:
    if args[:1] != ["start"]:
        return None
    parsed = _flags(args[1:], ("--json", "--shell"))
    if parsed is None or len(parsed[0]) != 1:
        return None
    (context_file,), flags = parsed

    def run() -> int:
        from autorun_py.stage import register_stage

        session = os.environ.get("AUTORUN_TMUX_SESSION") or None
        ctx = register_stage(Path(context_file), Path.cwd(), session=session)
        _print_context(ctx, flags, full=True)
        return 0

    return run


def _chain(args: list[str]) -> Optional[Callable[[], int]]:
    rest: list[str] = []
    window: Optional[str] = None
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--window" or a.startswith("--window="):
            if window is not None:
                return None
            if a == "--window":
                if i + 1 >= len(args):
                    return None
                i += 1
                window = args[i]
            else:
                window = a.partition("=")[2]
        else:
            rest.append(a)
        i += 1
    parsed = _flags(rest, ("--close-caller", "--json"))
    if window is None or parsed is None or len(parsed[0]) != 1:
        return None
    (command,), flags = parsed
    win = window

    def run() -> int:

        from autorun_py.chain import chain

        result = chain(
            command,
            window=win,
            session=None,
            cwd=None,
            close_caller="--close-caller" in flags,
            phase=None,
            environ=os.environ,
        )
        sys.stdout.write(chain_text(result, command, "--json" in flags) + "\n")
        sys.stdout.flush()
        return 0

    return run


def chain_text(result: Any, command: str, as_json: bool) -> str:
    """What ``autorun chain`` prints (here and in the click command)."""
    from dataclasses import asdict

    if as_json:
        return json.dumps(asdict(result), indent=2, ensure_ascii=False)
    if result.merged:
        return f"merged by the engine ({command!r} needs no session of its own):\n{result.merged}"
    if result.already:
        return f"{command!r} is already running (or done) for this stage: nothing to do"
    return f"opened {command!r} in {result.session}:{result.window} ({result.pane})"


def _merge(args: list[str]) -> Optional[Callable[[], int]]:
    parsed = _flags(args, ("--json",))
    if parsed is None:
        return None
    pos, flags = parsed
    if len(pos) not in (0, 2) or (pos and not (pos[1].isdigit() and pos[1].isascii())):
        return None
    ref, number = (pos[0], int(pos[1])) if pos else (None, None)

    def run() -> int:
        return run_merge(ref, number, "merge", "--json" in flags)

    return run


def run_merge(orch: Optional[str], stage: Optional[int], action: str, as_json: bool) -> int:
    """``autorun merge``'s body (here and in the click command): the stage named, or
    the one this worktree belongs to; its report printed; its exit code."""
    from autorun_py.config import load_config
    from autorun_py.errors import AutorunError, ExitCode
    from autorun_py.merge import merge
    from autorun_py.rundir import resolve

    if orch is None or stage is None:
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

    def progress(line: str) -> None:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    try:
        report = merge(
            resolve(orch),
            stage,
            action=action,
            progress=progress,
            claude_shell=bool(os.environ.get("CLAUDECODE")),
            config=load_config(os.environ),
        )
    except AutorunError as exc:
        if exc.exit_code is ExitCode.TIMEOUT:  # exit 5 of `autorun merge` means a red gate
            exc.exit_code = ExitCode.FAILURE
        raise
    if as_json:
        text = json.dumps(report.to_json(), indent=2, ensure_ascii=False)
    else:
        text = report.to_text()
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    return int(report.exit_code)


_COMMANDS = {
    "phase": _phase,
    "context": _context,
    "stage": _stage,
    "chain": _chain,
    "merge": _merge,
}


def _debugging() -> bool:
    return os.environ.get("AUTORUN_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def try_run(argv: list[str]) -> Optional[int]:
    """Run ``argv`` (without the program name) on the lean path and return its
    exit code, or ``None`` when the full CLI should handle it (nothing done)."""
    if not argv or argv[0] not in _COMMANDS or _debugging():
        return None
    from autorun_py.errors import AutorunError

    try:
        run = _COMMANDS[argv[0]](argv[1:])
    except AutorunError:
        return None  # the full CLI reports it the usual way
    if run is None:
        return None
    try:
        return run()
    except AutorunError as exc:
        sys.stderr.write(f"autorun: error: {exc}\n")
        return int(exc.exit_code)
    except BrokenPipeError:
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("autorun: interrupted\n")
        return 130
    except OSError as exc:
        from autorun_py.errors import os_error_line

        sys.stderr.write(os_error_line(exc) + "\n")
        return 1
    except UnicodeError as exc:
        sys.stderr.write(f"autorun: error: text that is not valid UTF-8: {exc}\n")
        return 1
    except RecursionError:
        sys.stderr.write("autorun: error: input nested too deeply\n")
        return 1
    except json.JSONDecodeError as exc:  # from a user's file
        sys.stderr.write(f"autorun: error: not valid JSON: {exc}\n")
        return 1
    except Exception as exc:  # noqa: BLE001 - the last line of defence, as the CLI's
        detail = str(exc).strip().splitlines()
        sys.stderr.write(
            f"autorun: internal error: {type(exc).__name__}"
            + (f": {detail[0]}" if detail else "")
            + " (run with --debug for the traceback)\n"
        )
        return 1
