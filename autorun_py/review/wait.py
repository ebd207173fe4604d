"""``review wait``: block until the user has answered, then return the answers.

Done means: every question has an answer and the file then stayed unchanged
for ``settle`` seconds (an autosaving editor saves mid-sentence; the next save
restarts the count), or the user ticked the file's done box (at once, the
questions left empty stay unanswered). Any other save (one answer of two, a
half-written file) only updates the progress line on stderr.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Any, Callable, Optional

from autorun_py.errors import AutorunError, ExitCode
from autorun_py.events import append_event
from autorun_py.review.format import parse_review
from autorun_py.review.inbox import mark_answered, registered_waiter
from autorun_py.review.model import Answer, ReviewDoc
from autorun_py.review.notify import how_to_answer, notify_user, open_for_user
from autorun_py.review.store import read_text, resolve
from autorun_py.timeutil import format_duration

DEFAULT_SETTLE = 3.0


def _progress_line(doc: ReviewDoc, path: Path) -> str:
    n = len(doc.answers)
    line = f"{doc.answered}/{n} answered in {path}"
    if doc.problems:
        line += " (" + "; ".join(doc.problems) + ")"
    return line


def wait_for_answers(
    path: Path,
    timeout: Optional[float] = None,
    *,
    notify: bool = True,
    open_file: bool = True,
    progress: Optional[Callable[[str], None]] = None,
    force_polling: bool = False,
    heartbeat: float = 60.0,
    settle: float = DEFAULT_SETTLE,
) -> list[Answer]:
    """Block until the review in ``path`` is done (module docstring); return its answers.

    Returns at once when it already is. Raises AutorunError with
    ExitCode.TIMEOUT after ``timeout`` seconds, and AutorunError when the file
    is deleted (and not re-created within a second) or replaced by something
    that is not a file. ``force_polling`` skips the native observer (the CLI sets
    it when ``$AUTORUN_REVIEW_POLL`` is set).
    """
    from autorun_py.review.watch import ChangeWatcher

    path = resolve(Path(path))
    say: Callable[[str], None] = progress if progress is not None else (lambda _msg: None)
    started = time.monotonic()
    deadline = None if timeout is None else started + max(0.0, timeout)

    with ChangeWatcher(path, force_polling=force_polling) as watcher:
        doc = parse_review(read_text(path))
        if not doc.answers:
            raise AutorunError(
                "no questions to answer: not a review file (see `autorun review new`)",
                path=path,
            )
        if doc.complete:
            mark_answered(path)
            return list(doc.answers)
        with registered_waiter(path, doc.meta):
            say(f"Waiting for answers to {len(doc.answers)} question(s) in {path}")
            say(how_to_answer(path))
            if open_file and open_for_user(path):
                say("Opened it with the desktop's default application.")
            if notify:
                notify_user(path, doc.meta, len(doc.answers))
            doc = _wait_loop(path, doc, watcher, deadline, started, say, heartbeat, settle)
    mark_answered(path)
    meta = doc.meta
    if meta is not None and meta.orch_dir is not None and meta.orch_dir.is_dir():
        try:
            append_event(
                meta.orch_dir,
                "review_answered",
                stage=meta.stage,
                review_file=str(path),
                questions=len(doc.answers),
                answered=doc.answered,
            )
        except OSError:
            pass
    return list(doc.answers)


def _read_now(path: Path, watcher: Any) -> Optional[str]:
    """The file's text after a change, or None when it is gone for now. Deleted
    (and not back within a second) or replaced by a non-file: AutorunError."""
    if not os.path.lexists(path):
        # Some editors delete and re-create; give them a moment.
        grace_end = time.monotonic() + 1.0
        while not os.path.lexists(path) and time.monotonic() < grace_end:
            watcher.wait(min(0.1, max(0.0, grace_end - time.monotonic())))
        if not os.path.lexists(path):
            raise AutorunError("the review file was deleted while waiting for answers", path=path)
        watcher.settle()
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None  # gone again: the next wake-up decides
    except OSError as exc:
        raise AutorunError(f"cannot read review file: {exc.strerror}", path=path) from None
    if stat.S_ISDIR(mode):
        raise AutorunError(
            "the review file was replaced by a directory while waiting for answers", path=path
        )
    if not stat.S_ISREG(mode):  # a FIFO or a device would block or never end
        raise AutorunError(
            "the review file was replaced by something that is not a file "
            "while waiting for answers",
            path=path,
        )
    try:
        return read_text(path)
    except AutorunError:
        if not os.path.lexists(path):
            return None  # gone again: the next wake-up decides
        raise


def _wait_loop(
    path: Path,
    doc: ReviewDoc,
    watcher: Any,
    deadline: Optional[float],
    started: float,
    say: Callable[[str], None],
    heartbeat: float,
    settle: float,
) -> ReviewDoc:
    shown = (doc.answered, doc.done, doc.problems)
    next_beat = started + heartbeat
    ready_at: Optional[float] = None  # every answer in: return then, unless saved again
    while True:
        now = time.monotonic()
        if ready_at is not None and now >= ready_at:
            return doc
        if deadline is not None and now >= deadline:
            raise AutorunError(
                f"not answered after {format_duration(now - started)} (timed out; "
                f"{doc.answered}/{len(doc.answers)} answered); run `autorun review wait` "
                "again to keep waiting",
                path=path,
                exit_code=ExitCode.TIMEOUT,
            )
        if now >= next_beat:
            say(f"Still waiting: {_progress_line(doc, path)} ({format_duration(now - started)})")
            next_beat = now + heartbeat
        step = min(1.0, next_beat - now)
        for limit in (deadline, ready_at):
            if limit is not None:
                step = min(step, limit - now)
        if not watcher.wait(max(0.0, step)):
            continue
        watcher.settle()
        text = _read_now(path, watcher)
        if text is None:
            continue
        doc = parse_review(text)
        state = (doc.answered, doc.done, doc.problems)
        if state != shown:
            if doc.answers:
                say(_progress_line(doc, path))
            else:
                say(f"No questions in {path} now (half-written?); still waiting")
            shown = state
        if doc.done and doc.answers:
            return doc
        if doc.complete:
            if ready_at is None and settle > 0:
                say(
                    f"Every question has an answer: going on in {settle:g}s unless the file "
                    "changes again (tick the done box to go on at once)"
                )
            ready_at = time.monotonic() + max(0.0, settle)
        else:
            ready_at = None
