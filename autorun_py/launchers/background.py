"""The ``background`` launcher: each stage as a Claude Code background session.

What it relies on was observed with Claude Code 2.1.332 (docs/claude-code.md,
"Background sessions"; ``tests/test_cli_golden.py`` checks the flags):

- ``claude --bg --name N [options] "<prompt>"`` in the stage's worktree prints
  ``backgrounded · <id> · N``; the on-demand supervisor (daemon) runs it. The
  daemon ignores ``--session-id`` (it picks the conversation id; ``<id>`` is its
  first 8 characters) and gives every session **its own environment, not the
  caller's**: the stage's ``AUTORUN_*`` variables go in ``--settings
  '{"env": {...}}'`` (never a secret: only ``AUTORUN_*`` and ``IS_SANDBOX``).
- ``claude agents --json --all`` lists each session: ``id``, ``sessionId``,
  ``cwd``, ``name``, ``state`` (working, blocked, stopped, ...), ``status``
  (busy, idle) and, while its process runs, ``pid``. A killed session keeps
  ``state: working`` but loses its ``pid``: alive means a pid that runs.
- ``claude stop <id>`` ends one (its conversation is kept); ``claude rm <id>``
  drops it from the list; ``claude --bg --resume <sessionId> "<prompt>"`` wakes
  a stopped one under the same id with its saved options (recovery: stop, then
  that; ``claude respawn <id>`` restarts one but sends it nothing).

This module is the one wrapper for those ``claude`` calls (argv lists only).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from autorun_py import proc
from autorun_py.errors import AutorunError
from autorun_py.launchers import Started

# Every Claude Code flag and command the launchers pass (agent_argv's too), by
# subcommand ("" = the top level): tests/e2e/test_claude_flags.py checks each
# against the installed CLI's --help.
CLI_FLAGS: dict[str, tuple[str, ...]] = {
    "": (
        "--bg",
        "--name",
        "--settings",
        "--resume",
        "--session-id",
        "--plugin-dir",
        "--model",
        "--permission-mode",
    ),
    "agents": ("--json", "--all", "--cwd"),
    "daemon": ("stop", "--any"),
}
CLI_COMMANDS = ("agents", "attach", "logs", "stop", "rm", "respawn")

BG_LINE = re.compile(r"backgrounded\s+\S+\s+([0-9a-f]{6,})")
# Variables of an enclosing Claude Code session that must not reach the daemon
# (a `!` line or Bash call of the orchestrating session runs autorun).
SCRUB = (
    "CLAUDECODE",
    "CLAUDE_CODE_SESSION_ID",
    "CLAUDE_CODE_ENTRYPOINT",
    "CLAUDE_PID",
    "CLAUDE_EFFORT",
    "TMUX",
    "TMUX_PANE",
)
# Besides AUTORUN_*: what a stage's environment may carry that is no secret
# (bypass mode as root; a gated merge's longer Bash timeouts, launch.gate_session_env).
SETTINGS_VARS = ("IS_SANDBOX", "BASH_DEFAULT_TIMEOUT_MS", "BASH_MAX_TIMEOUT_MS")
ENDED = ("stopped", "done", "failed", "completed", "exited")
LIST_TTL = 1.0  # seconds a listing is reused (one monitor check asks once)


def _agent() -> str:
    """The agent executable, as the environment the agent is started with
    (:func:`claude_env`) names it over ``config.json``: the launcher's listing and
    stop calls have no configuration passed to them (a start uses its argv's)."""
    from autorun_py.config import load_config, require_agent

    return require_agent(load_config(claude_env()))


def claude_env() -> dict[str, str]:
    return proc.child_env(drop=SCRUB)


def run_claude(
    args: list[str], *, cwd: Optional[Path] = None, timeout: float = 60, agent: Optional[str] = None
) -> proc.Result:
    argv = [agent or _agent(), *args]
    try:
        return proc.run(argv, cwd=cwd, env=claude_env(), timeout=timeout)
    except AutorunError as exc:  # not installed, or did not finish in time
        raise AutorunError(f"`claude {' '.join(args[:2])}` failed: {exc}") from None


_cache: dict[str, tuple[float, list[dict[str, Any]]]] = {}


def list_sessions(*, fresh: bool = False) -> list[dict[str, Any]]:
    """``claude agents --json --all``: every background session Claude Code knows."""
    now = time.monotonic()
    hit = _cache.get("all")
    if hit and not fresh and now - hit[0] < LIST_TTL:
        return hit[1]
    proc = run_claude(["agents", "--json", "--all"])
    if proc.returncode != 0:
        raise AutorunError(f"`claude agents --json --all` failed: {proc.stderr.strip()[-300:]}")
    try:
        data = json.loads(proc.stdout or "[]")
    except ValueError:
        raise AutorunError("`claude agents --json --all` printed no JSON array") from None
    rows = [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []
    _cache["all"] = (time.monotonic(), rows)
    return rows


def find(short_id: str, rows: Optional[list[dict[str, Any]]] = None) -> Optional[dict[str, Any]]:
    for row in list_sessions() if rows is None else rows:
        if row.get("id") == short_id:
            return row
    return None


def _pid_runs(pid: Any) -> bool:
    return isinstance(pid, int) and pid > 1 and proc.pid_alive(pid)


def row_alive(row: Optional[dict[str, Any]]) -> bool:
    if row is None or str(row.get("state", "")) in ENDED:
        return False
    return _pid_runs(row.get("pid"))


def row_waiting(row: Optional[dict[str, Any]]) -> Optional[str]:
    """What a ``claude agents --json`` row says the session waits for: a session whose
    ``status`` is ``waiting`` carries ``waitingFor`` (e.g. ``input needed``, ``dialog
    open``; read in 2.1.332's code of the listing); ``state: blocked`` waits for the user."""
    what = row.get("waitingFor") if row else None
    if isinstance(what, str) and what.strip():
        return f"{what.strip()} (claude agents)"
    if row and row.get("state") == "blocked":
        return "blocked (claude agents: waits for input or a permission)"
    return None


def bg_argv(argv: list[str], name: str, env: dict[str, str]) -> list[str]:
    """``agent_argv``'s argv as a background start: ``--bg --name`` and the stage's
    variables in ``--settings``; ``--session-id`` dropped (the daemon picks it)."""
    rest = list(argv[1:])
    if "--session-id" in rest:
        i = rest.index("--session-id")
        del rest[i : i + 2]
    stage_vars = {
        k: v for k, v in sorted(env.items()) if k.startswith("AUTORUN_") or k in SETTINGS_VARS
    }
    settings = json.dumps({"env": stage_vars}, sort_keys=True)
    return [argv[0], "--bg", "--name", name, "--settings", settings, *rest]


def start_background(
    argv: list[str], *, name: str, cwd: Path, env: dict[str, str], log_file: Optional[Path] = None
) -> Started:
    full = bg_argv(argv, name, env)
    # Nothing is written to ``log_file``: its last write is how recovery tells a
    # session that died at once (autorun_py.recovery.session_lifetime); a background
    # session's output is `claude logs <id>`.
    proc = run_claude(full[1:], cwd=cwd, agent=full[0], timeout=120)
    match = BG_LINE.search(proc.stdout)
    if proc.returncode != 0 or not match:
        tail = (proc.stderr.strip() or proc.stdout.strip())[-300:]
        raise AutorunError(
            f"`claude --bg` did not start a background session (exit {proc.returncode}): {tail}"
        )
    return Started(match.group(1), wait_running(match.group(1)))


def wait_running(short: str, timeout: float = 20.0) -> Optional[str]:
    """Wait until the session is listed with a running process (right after a
    start it is listed without one for a moment: a recoverer must not take that for
    a dead session); return its Claude session id."""
    session_id: Optional[str] = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = find(short, list_sessions(fresh=True))
        if row and isinstance(row.get("sessionId"), str):
            session_id = row["sessionId"]
            if row_alive(row):
                break
        time.sleep(0.3)
    return session_id


def stop_ids(ids: list[str], *, remove: bool = False, force: bool = False) -> list[str]:
    """``claude stop`` each (and ``claude rm`` with ``remove``); the ids ended.
    ``force``: also one without a process (killed: the supervisor would restart it)."""
    done = []
    for sid in ids:
        with contextlib.suppress(AutorunError):
            row = find(sid, list_sessions(fresh=True))
            if row is None:
                continue
            ended = str(row.get("state", "")) in ENDED
            if (row_alive(row) or (force and not ended)) and run_claude(
                ["stop", sid]
            ).returncode == 0:
                done.append(sid)
            if remove:
                run_claude(["rm", sid])
    _cache.clear()
    return done


def stage_ids(stage: Any) -> list[str]:
    ids = stage.extra.get("launcher_handles") or []
    return [str(i) for i in ids if isinstance(i, str) and i]


def current_id(stage: Any) -> Optional[str]:
    handle = stage.extra.get("launcher_handle")
    return str(handle) if isinstance(handle, str) and handle else None


@dataclass
class BackgroundLauncher:
    """Stages as Claude Code background sessions (``claude --bg``)."""
    name: str = "background"
    _rows: Optional[list[dict[str, Any]]] = field(default=None, repr=False)

    def start(
        self,
        state: Any,
        stage: Any,
        argv: list[str],
        *,
        cwd: Path,
        window: str,
        env: dict[str, str],
        log_file: Path,
        replace: bool = False,
    ) -> Started:
        name = f"{stage.session or state.project_slug}-{window}"
        current = current_id(stage)
        row = find(current, list_sessions(fresh=True)) if current and replace else None
        if current and row is not None:
            # A recovery of a session Claude Code still lists. Its supervisor
            # restarts a killed session by itself (after ~12 s): never a second one.
            if "--resume" in argv and row_alive(row):
                sid = row.get("sessionId")
                return Started(current, sid if isinstance(sid, str) else None)
            # Stopped first: then the supervisor leaves it alone, and `--bg --resume`
            # wakes that same session with the prompt (of one Claude Code still
            # counts as running it would start a copy). `claude respawn` restarts
            # it too, but sends nothing: the session would sit at its prompt.
            stop_ids([current], force=True)
        return start_background(argv, name=name, cwd=cwd, env=env, log_file=log_file)

    def _row(self, stage: Any) -> Optional[dict[str, Any]]:
        sid = current_id(stage)
        return find(sid) if sid else None

    def alive(self, state: Any, stage: Any) -> bool:
        try:
            return row_alive(self._row(stage))
        except AutorunError:
            return True  # cannot tell: never restart a session that may be running

    def waiting(self, state: Any, stage: Any) -> Optional[str]:
        with contextlib.suppress(AutorunError):
            return row_waiting(self._row(stage))
        return None

    def stop(self, state: Any, stage: Any) -> list[str]:
        return stop_ids(stage_ids(stage))

    def attach(self, state: Any, stage: Any) -> Optional[str]:
        sid = current_id(stage)
        return f"claude attach {sid}" if sid else None

    def kill_target(self, state: Any, stage: Any) -> Optional[str]:
        ids = stage_ids(stage)
        return "bg:" + ",".join(ids) if ids else None
