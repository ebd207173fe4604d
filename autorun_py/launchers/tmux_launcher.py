"""The ``tmux`` launcher (the default): each stage in a session of autorun's tmux
server, named ``<slug>_stage-N``, owned by the run (``AUTORUN_ORCH_DIR`` in the
session's environment). The work is done by :mod:`autorun_py.launch` and
:mod:`autorun_py.tmux`; this class is their face towards the interface."""

from __future__ import annotations

import contextlib
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from autorun_py.errors import AutorunError
from autorun_py.launchers import Started
from autorun_py.tmux import Tmux


@dataclass
class TmuxLauncher:
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
        from autorun_py.launch import start_session

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
