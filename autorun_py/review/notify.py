"""Telling the user that a session waits for their answers: tmux clients, the
terminal bell, a desktop notification, the run's events; opening the file."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from autorun_py.errors import AutorunError
from autorun_py.events import append_event
from autorun_py.review.model import ReviewMeta
from autorun_py.review.store import run_name


def has_desktop() -> bool:
    from autorun_py.proc import has_desktop as desktop

    return desktop()


def how_to_answer(path: Path) -> str:
    return (
        f"Open {path} in your editor, write each answer between its two `answer` "
        "comment lines, and save; autorun goes on once every question has an answer, "
        "or when you tick the `- [ ] done` box at the end."
    )


def open_for_user(path: Path) -> bool:
    """Open the file in the platform's default application, where a desktop exists.

    Never blocks; returns whether an opener was started."""
    if not has_desktop():
        return False
    opener = "open" if sys.platform == "darwin" else "xdg-open"
    exe = shutil.which(opener)
    if exe is None:
        return False
    from autorun_py.proc import spawn

    try:
        spawn([exe, str(path)])
    except AutorunError:
        return False
    return True


def notify_user(
    path: Path, meta: ReviewMeta | None, questions: int, *, bell: bool = True
) -> list[str]:
    """Tell the user a session waits on them, through every channel that exists.

    Returns the channels used: ``tmux`` (a message on each attached client of
    autorun's tmux server), ``bell`` (stderr is a terminal), ``desktop``
    (notify-send / osascript with a desktop session), ``events`` (the run's
    events.jsonl). Failures are silent: a notification never breaks a wait.
    """
    used: list[str] = []
    where = ""
    if meta is not None and meta.orch_dir is not None:
        where = run_name(meta.orch_dir)
        if meta.stage is not None:
            where += f" stage {meta.stage}"
    title = meta.title if meta is not None and meta.title else path.name
    message = f"autorun: {where + ' ' if where else ''}waits for your answers ({title}): {path}"

    if bell:
        try:
            if sys.stderr.isatty():
                sys.stderr.write("\a")
                sys.stderr.flush()
                used.append("bell")
        except (OSError, ValueError):
            pass

    from autorun_py.attention import notify

    used += notify(message, title="autorun: answers needed")

    if meta is not None and meta.orch_dir is not None and meta.orch_dir.is_dir():
        try:
            append_event(
                meta.orch_dir,
                "review_waiting",
                stage=meta.stage,
                review_file=str(path),
                questions=questions,
            )
            used.append("events")
        except OSError:
            pass
    return used
