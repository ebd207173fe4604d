"""Review files on disk: creating one, reading one, and the small records other
processes read (``review/.waiting/``, ``review/.answered/``).

The records are written with the one atomic JSON write
(``state.write_json_atomic``, over ``fsutil``); the review package's held lock
(``HeldLock``) is here.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from autorun_py.errors import AutorunError, UsageError
from autorun_py.names import slug
from autorun_py.paths import layout
from autorun_py.review.format import new_meta, parse_review, render_review
from autorun_py.review.model import Answer, ReviewDoc
from autorun_py.timeutil import utc_iso

WAITING_DIR = ".waiting"
ANSWERED_DIR = ".answered"


def waiting_dir() -> Path:
    return layout().review / WAITING_DIR


def answered_dir() -> Path:
    return layout().review / ANSWERED_DIR


def resolve(path: Path) -> Path:
    return Path(os.path.abspath(Path(path).expanduser()))


def same_path(a: Optional[Path], b: Optional[Path]) -> bool:
    if a is None or b is None:
        return False
    return os.path.normpath(str(a)) == os.path.normpath(str(b))


# --------------------------------------------------------------------------- files


def read_json(path: Path) -> Any:
    from autorun_py.fsutil import read_text_bounded

    try:  # bounded, never blocks on a FIFO (a run's status.json, a waiter's record)
        return json.loads(read_text_bounded(path, 64 << 20))
    except (OSError, ValueError, RecursionError, AutorunError):
        return None


class HeldLock:
    """A lock file held by this process until :meth:`release` (a ``review wait``
    holds one while it waits; others ask :func:`lock_is_held`)."""

    def __init__(self, path: Path) -> None:
        from autorun_py.fsutil import Lock

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = Lock(path, timeout=5).acquire()

    def release(self) -> None:
        self._lock.release()
        with contextlib.suppress(OSError):
            self.path.unlink()


def lock_is_held(path: Path) -> bool:
    """True while some process holds ``path`` (a flock; dies with its holder,
    so a reused pid never looks alive)."""
    if not path.exists():
        return False
    from autorun_py.fsutil import Lock

    probe = Lock(path, timeout=0)
    try:
        if not probe.try_acquire():
            return True
    except AutorunError:
        return False
    probe.release()
    return False


def read_text(path: Path) -> str:
    """A review file's text; a missing, unreadable or replaced file is one
    AutorunError naming it."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode) and not path.is_dir():
            raise AutorunError("is not a regular file, not a review file", path=path)
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise AutorunError("no such review file", path=path) from None
    except IsADirectoryError:
        raise AutorunError("is a directory, not a review file", path=path) from None
    except OSError as exc:
        raise AutorunError(f"cannot read review file: {exc.strerror}", path=path) from None


def read_review(path: Path) -> ReviewDoc:
    return parse_review(read_text(Path(path)))


def read_answers(path: Path) -> list[Answer]:
    """Parse a review file; a missing file is an AutorunError naming it."""
    return list(read_review(path).answers)


# --------------------------------------------------------------------------- creating


def new_review(
    title: str,
    questions: Sequence[str],
    context: str = "",
    stage: Optional[tuple[Path, int]] = None,
    *,
    now: Optional[datetime.datetime] = None,
    directory: Optional[Path] = None,
) -> Path:
    """Write a new review file and return its path.

    The name is ``YYYY-MM-DD-HHMMSS-<slug>.md`` in local time; a second review in
    the same second (same title) gets ``-2``, ``-3`` ... The file appears
    complete and is never overwritten (written aside, then hard-linked into place).
    """
    if not title.strip():
        raise UsageError("a review needs a title (--title)")
    qs = [q for q in questions if q.strip()]
    if not qs:
        raise UsageError("a review needs at least one question (--question)")
    when = now or datetime.datetime.now()
    meta = new_meta(
        title,
        qs,
        context,
        created_at=utc_iso(when.timestamp()),
        orch_dir=None if stage is None else str(resolve(stage[0])),
        stage=None if stage is None else int(stage[1]),
    )
    text = render_review(title, qs, context, meta)
    folder = layout().review if directory is None else Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{when.strftime('%Y-%m-%d-%H%M%S')}-{slug(title, 40, 'review')}"
    fd, tmp = tempfile.mkstemp(prefix=".new-", suffix=".md", dir=str(folder))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        n = 1
        while True:
            target = folder / (f"{stem}.md" if n == 1 else f"{stem}-{n}.md")
            try:
                os.link(tmp, target)  # atomic, fails if the name is taken
                return target
            except FileExistsError:
                n += 1
    finally:
        os.unlink(tmp)


# --------------------------------------------------------------------------- runs


def run_name(orch_dir: Path) -> str:
    """The run's plan name (status.json), or the directory name."""
    raw = read_json(Path(orch_dir) / "status.json")
    if isinstance(raw, dict) and raw.get("plan_name"):
        return str(raw["plan_name"])
    return Path(orch_dir).name


def parse_stage_ref(text: str) -> tuple[Path, int]:
    """``ORCH:N`` -> (orchestration dir, stage). ORCH is a directory or a plan name."""
    orch, sep, num = text.rpartition(":")
    if not sep or not orch or not num.strip().isdigit() or int(num) < 1:
        raise UsageError(
            f"--stage must be ORCH:N (a run's directory or plan name, a stage number), got {text!r}"
        )
    candidate = Path(orch).expanduser()
    if "/" in orch or orch.startswith(".") or candidate.is_dir():
        orch_dir = resolve(candidate)
    else:
        orch_dir = layout().run_dir(orch)
    if not orch_dir.is_dir():
        raise UsageError(f"--stage: no orchestration directory {orch_dir}")
    return orch_dir, int(num)
