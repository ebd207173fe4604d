"""The ``tmux`` launcher (the default): each stage in a session of autorun's tmux
server, named ``<slug>_stage-N``, owned by the run (``AUTORUN_ORCH_DIR`` in the
session's environment). :func:`start_session` starts one (replacing a leftover of
the same run) through :mod:`autorun_py.tmux`, with the server's ``session-closed``
hook (:func:`watch_session_close`); :class:`TmuxLauncher` is their face towards
the interface (:mod:`autorun_py.launch` builds the argv and the environment)."""

from __future__ import annotations

import contextlib
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from autorun_py import paths, proc
from autorun_py.errors import AutorunError
from autorun_py.launchers import Started
from autorun_py.tmux import OWNER_VAR, Tmux, pipe_pane_args


def start_session(
    tmux: Tmux,
    name: str,
    argv: list[str],
    *,
    cwd: Path,
    window: str,
    env: dict[str, str],
    log_file: Path,
) -> str:
    """Start the stage's session, replacing a leftover one of the same run (``env``'s
    ``AUTORUN_ORCH_DIR``); a session of that name owned by anyone else is refused."""
    owner = env[OWNER_VAR]
    exists, read = tmux.probe_session(name)
    server_env: Optional[str] = read
    if exists:
        tmux.require_free_or_owned(name, owner)
        tmux.kill_owned_session(name, owner)
        server_env = None  # (read again: the kill may have ended the server)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    # The pane's log, and the session-closed hook, in the tmux call that starts the
    # session (one tmux process instead of four, issue 16).
    after = [pipe_pane_args(f"={name}:", log_file)]
    # ``env`` forwards this process's AUTORUN_* (tmux.forwarded_env): the switch too.
    if env.get("AUTORUN_SESSION_CLOSED_HOOK", "1") != "0":
        after += session_close_hook(tmux)
    return tmux.new_session(
        name, argv, cwd=cwd, window=window, env=env, after=after, server_env=server_env
    )


def watch_session_close(tmux: Tmux) -> None:
    """A tmux ``session-closed`` hook on the server: a stage session that ends without
    running Claude Code's hooks (a killed process) is recovered at once
    (``autorun hook tmux-closed <session>``, see :mod:`autorun_py.hooks`). Set under
    an index of its own per ``$AUTORUN_HOME``, so other hooks of the server stay.
    ``AUTORUN_SESSION_CLOSED_HOOK=0`` leaves it out (the monitor alone recovers)."""
    first, *rest = session_close_hook(tmux)
    tmux.run(first)
    for more in rest:
        tmux.run(more, check=False)


def session_close_hook(tmux: Tmux) -> list[list[str]]:
    """The tmux commands of :func:`watch_session_close`: the hook, and for autorun's
    own server that it outlives its last session."""
    import binascii

    home = str(paths.autorun_home())
    index = 1000 + binascii.crc32(home.encode()) % 9000
    env = ["env", f"AUTORUN_HOME={home}"]
    for key, value in proc.inherited("AUTORUN_TMUX_SOCKET", "HOME", "PATH").items():
        env.append(f"{key}={value}")
    argv = [*env, sys.executable, "-I", "-m", "autorun_py", "hook", "tmux-closed"]
    # tmux expands #{...} in the command: a literal '#' is '##'.
    # In the background (`&`): tmux ends when its last session closed and kills the
    # jobs it still runs; a child already detached from the job lives on.
    cmd = " ".join(shlex.quote(a).replace("#", "##") for a in argv)
    cmd += " '#{hook_session_name}' </dev/null >/dev/null 2>&1 &"
    # A session autorun ended on purpose after its merge (Tmux.kill_later renames
    # it autorun-done-N first) needs no recovery: tmux skips it, no process starts.
    hook = f"run-shell -b {shlex.quote(cmd)}"
    hook = f"if-shell -F '#{{m:autorun-done-*,#{{hook_session_name}}}}' '' {shlex.quote(hook)}"
    cmds = [["set-hook", "-g", f"session-closed[{index}]", hook]]
    if tmux.socket:
        # autorun's own server (AUTORUN_TMUX_SOCKET): it must outlive its last
        # session, or the hook of that session's close dies with it. (The default
        # server is the user's: left as it is; their own sessions keep it up.)
        cmds.append(["set-option", "-s", "exit-empty", "off"])
    return cmds


@dataclass
class TmuxLauncher:
    """Stages as sessions of autorun's tmux server (the default launcher)."""
    tmux: Tmux
    name: str = "tmux"

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
        pane = start_session(
            self.tmux, stage.session, argv, cwd=cwd, window=window, env=env, log_file=log_file
        )
        return Started(pane)

    def alive(self, state: Any, stage: Any) -> bool:
        return self.tmux.session_alive(stage.session, state.orch_dir)

    def waiting(self, state: Any, stage: Any) -> Optional[str]:
        """What the monitor (its pane classifier) and the hooks recorded of the stage:
        a permission prompt, a usage-limit wait, a stall (``status.json`` ``monitor``)."""
        from autorun_py.launchers import monitor_waiting

        return monitor_waiting(state, stage)

    def stop(self, state: Any, stage: Any) -> list[str]:
        name = stage.session
        with contextlib.suppress(AutorunError):
            if name and self.tmux.kill_owned_session(name, state.orch_dir):
                return [name]
        return []

    def attach(self, state: Any, stage: Any) -> Optional[str]:
        if not stage.session:
            return None
        return f"{self.tmux.shell_prefix()} attach -t {shlex.quote(stage.session)}"

    def kill_target(self, state: Any, stage: Any) -> Optional[str]:
        return str(stage.session) if stage.session else None
