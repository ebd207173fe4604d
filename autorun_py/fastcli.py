"""A lean path for the bookkeeping calls a stage makes at every step.

``autorun phase [ORCH STAGE] PHASE started|completed [--current N] [--total M]
[--plan-file P]`` and ``autorun context [--json] [--shell]`` run here without
click and without the CLI modules (issue 16: start-up was most of their cost).
Only a call that is plainly well formed is taken; anything else (``--help``, an
unknown option, a bad value, a place the session's own ``AUTORUN_ORCH_DIR`` /
``AUTORUN_STAGE`` does not name, ``--debug``) returns ``None`` *before anything
is read or written*, and the full CLI handles it with its usual messages. What
is done here is exactly what the click commands do: the same library calls, the
same lock, fsyncs and checks, the same output and exit codes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, Optional

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
        if "--json" in args:
            import json

            text = json.dumps(ctx.to_json(), indent=2, ensure_ascii=False)
        elif "--shell" in args:
            text = ctx.to_shell()
        else:
            text = ctx.to_text()
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        return 0

    return run


_COMMANDS = {"phase": _phase, "context": _context}


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
        where = f"{os.fsdecode(exc.filename)}: " if exc.filename is not None else ""
        sys.stderr.write(f"autorun: error: {where}{exc.strerror or exc}\n")
        return 1
