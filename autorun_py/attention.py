"""What waits for a person besides review questions: the inbox's other entries.

A stage waiting at a permission prompt, or stalled in a way the engine cannot
resolve, gets one JSON file ``$AUTORUN_HOME/inbox/<run>-stage-<n>.json``
(``autorun review list`` shows them after the review files; the status view
shows the stage's record) and a notification on every channel there is: a
message on each client attached to autorun's tmux server and a desktop
notification where there is a desktop. An entry is removed when the session
goes on, or the stage is merged.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from autorun_py import paths
from autorun_py.events import utc_now


def inbox_dir() -> Path:
    return paths.layout().inbox


def _entry_path(orch_dir: Path, number: int) -> Path:
    return inbox_dir() / f"{Path(orch_dir).name}-stage-{number}.json"


def add(orch_dir: Path, number: int, kind: str, message: str, attach: str) -> Path:
    """Write (or replace) the stage's inbox entry."""
    from autorun_py.state import write_json_atomic

    path = _entry_path(orch_dir, number)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        path,
        {
            "run": Path(orch_dir).name,
            "orch_dir": str(orch_dir),
            "stage": number,
            "kind": kind,
            "message": message,
            "attach": attach,
            "since": utc_now(),
        },
    )
    return path


def remove(orch_dir: Path, number: int) -> bool:
    try:
        _entry_path(orch_dir, number).unlink()
    except OSError:
        return False
    return True


def entries() -> list[dict[str, Any]]:
    """Every inbox entry, oldest first (unreadable files are skipped)."""
    out: list[dict[str, Any]] = []
    d = inbox_dir()
    if not d.is_dir():
        return out
    for p in sorted(d.glob("*.json")):
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(p.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                data["path"] = str(p)
                out.append(data)
    return sorted(out, key=lambda e: str(e.get("since", "")))


def notify(message: str, *, title: str = "autorun") -> list[str]:
    """Tell the person: tmux clients of autorun's server, the desktop (``title`` is
    the desktop notification's). Returns the channels used; never raises."""
    used: list[str] = []
    with contextlib.suppress(Exception):
        from autorun_py.tmux import Tmux

        tmux = Tmux.from_env()
        proc = tmux.run(["list-clients", "-F", "#{client_name}"], check=False)
        clients = [c for c in proc.stdout.splitlines() if c] if proc.returncode == 0 else []
        for client in clients:
            tmux.run(["display-message", "-c", client, message], check=False)
        if clients:
            used.append("tmux")
    from autorun_py.proc import has_desktop

    desktop = has_desktop()
    argv: list[str] = []
    if desktop and sys.platform == "darwin" and shutil.which("osascript"):
        argv = ["osascript", "-e", "on run argv", "-e",
                "display notification (item 2 of argv) with title (item 1 of argv)",
                "-e", "end run", title, message]  # fmt: skip
    elif desktop and shutil.which("notify-send"):
        argv = ["notify-send", "--app-name=autorun", title, message]
    if argv:
        from autorun_py.errors import AutorunError
        from autorun_py.proc import run

        with contextlib.suppress(AutorunError):
            run(argv, timeout=3, capture=False)
            used.append("desktop")
    return used
