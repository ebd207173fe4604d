"""The inbox: which review files wait for the user, and who is blocked on them.

* ``review/.waiting/<file name>.<token>.json`` + ``.lock``: a ``review wait`` in
  progress. The waiter takes the lock first, writes the record, and holds the
  lock until it returns; a record whose lock nobody holds is stale (its waiter
  died) and is removed. Liveness is the held lock, never a pid (pids are reused).
* ``review/.answered/<file name>.json``: a wait returned answers.

A review is **answered** when every answer is non-empty, its done box is ticked
or a wait on it returned; otherwise **waiting** (a live ``review wait`` blocks
on it) or **open** (nobody blocked on it right now).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, TypedDict

from autorun_py.errors import AutorunError
from autorun_py.paths import layout
from autorun_py.review.format import parse_review
from autorun_py.review.model import ReviewMeta
from autorun_py.review.store import (
    HeldLock,
    answered_dir,
    lock_is_held,
    read_json,
    read_text,
    resolve,
    run_name,
    same_path,
    waiting_dir,
)
from autorun_py.state import write_json_atomic
from autorun_py.timeutil import parse_utc_iso, utc_iso

_FILENAME_TIME_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}-\d{6})-")


class WaiterJSON(TypedDict):
    pid: int  # shown to the user; liveness is the lock
    file: str
    started_at: str
    orch_dir: Optional[str]
    stage: Optional[int]


@dataclass(frozen=True)
class ReviewInfo:
    """One review file as the inbox, the status view and the monitor see it."""

    path: Path
    title: str
    created_at: str  # ISO 8601, UTC
    orch_dir: Optional[Path]
    run: Optional[str]  # the run's plan name
    stage: Optional[int]
    questions: int
    unanswered: int
    answered: bool
    waiting_pids: tuple[int, ...] = field(default=())
    waiting_since: Optional[str] = None

    @property
    def state(self) -> str:
        if self.answered:
            return "answered"
        return "waiting" if self.waiting_pids else "open"

    def age_seconds(self, now: Optional[float] = None) -> float:
        now = time.time() if now is None else now
        created = parse_utc_iso(self.created_at)
        return max(0.0, now - created) if created is not None else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "title": self.title,
            "created_at": self.created_at,
            "age_seconds": round(self.age_seconds(), 1),
            "state": self.state,
            "run": self.run,
            "orch_dir": None if self.orch_dir is None else str(self.orch_dir),
            "stage": self.stage,
            "questions": self.questions,
            "unanswered": self.unanswered,
            "waiting_pids": list(self.waiting_pids),
            "waiting_since": self.waiting_since,
        }


# --------------------------------------------------------------------------- waiters


@contextlib.contextmanager
def registered_waiter(path: Path, meta: Optional[ReviewMeta]) -> Iterator[Path]:
    """Announce a ``review wait`` on ``path`` for as long as the block runs."""
    token = secrets.token_hex(6)
    record = waiting_dir() / f"{path.name}.{token}.json"
    lock = HeldLock(record.with_suffix(".lock"))  # held before the record exists
    try:
        waiter: WaiterJSON = {
            "pid": os.getpid(),
            "file": str(path),
            "started_at": utc_iso(),
            "orch_dir": None if meta is None or meta.orch_dir is None else str(meta.orch_dir),
            "stage": None if meta is None else meta.stage,
        }
        try:
            record.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(record, waiter)
            yield record
        finally:  # also when a signal ends the wait inside the write
            with contextlib.suppress(OSError):
                record.unlink()
    finally:
        lock.release()


def live_waiters() -> list[WaiterJSON]:
    """Records of waits in progress (stale ones are removed on the way)."""
    out: list[WaiterJSON] = []
    try:
        entries = sorted(waiting_dir().iterdir())
    except OSError:
        return out
    for entry in entries:
        if not entry.name.endswith(".json") or entry.name.startswith("."):
            continue
        lock = entry.with_suffix(".lock")
        if not lock_is_held(lock):
            # Its waiter died (or is just returning): nobody waits on it any more.
            for stale in (entry, lock):
                with contextlib.suppress(OSError):
                    stale.unlink()
            continue
        raw = read_json(entry)
        if not isinstance(raw, dict):
            continue
        stage, orch, pid = raw.get("stage"), raw.get("orch_dir"), raw.get("pid")
        out.append(
            {
                "pid": pid if isinstance(pid, int) else 0,
                "file": str(raw.get("file") or ""),
                "started_at": str(raw.get("started_at") or ""),
                "orch_dir": orch if isinstance(orch, str) else None,
                "stage": stage if isinstance(stage, int) else None,
            }
        )
    return out


def mark_answered(path: Path) -> None:
    with contextlib.suppress(OSError, AutorunError):
        answered_dir().mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            answered_dir() / f"{path.name}.json", {"file": str(path), "answered_at": utc_iso()}
        )


def _answered_files() -> set[str]:
    out: set[str] = set()
    try:
        entries = list(answered_dir().iterdir())
    except OSError:
        return out
    for entry in entries:
        raw = read_json(entry)
        if isinstance(raw, dict) and isinstance(raw.get("file"), str):
            out.add(os.path.normpath(raw["file"]))
    return out


# --------------------------------------------------------------------------- the inbox


def _created_at(path: Path, meta: Optional[ReviewMeta]) -> str:
    if meta is not None and meta.created_at:
        return meta.created_at
    stamp = _FILENAME_TIME_RE.match(path.name)
    ts: Optional[float] = None
    if stamp:
        try:
            ts = datetime.datetime.strptime(stamp.group(1), "%Y-%m-%d-%H%M%S").timestamp()
        except ValueError:
            ts = None
    if ts is None:
        try:
            ts = path.stat().st_mtime
        except OSError:
            ts = time.time()
    return utc_iso(ts)


def review_info(path: Path, *, waiters: Optional[list[WaiterJSON]] = None) -> ReviewInfo:
    """The inbox view of one review file."""
    path = resolve(Path(path))
    text = read_text(path)
    doc = parse_review(text)
    meta = doc.meta
    if waiters is None:
        waiters = live_waiters()
    mine = [w for w in waiters if same_path(Path(w["file"]), path)]
    done_by_wait = os.path.normpath(str(path)) in _answered_files()
    title = meta.title if meta is not None and meta.title else ""
    if not title:
        from autorun_py.review.legacy import title_of

        title = title_of(text) or path.stem
    orch_dir = meta.orch_dir if meta is not None else None
    return ReviewInfo(
        path=path,
        title=title,
        created_at=_created_at(path, meta),
        orch_dir=orch_dir,
        run=None if orch_dir is None else run_name(orch_dir),
        stage=None if meta is None else meta.stage,
        questions=len(doc.answers),
        unanswered=len(doc.answers) - doc.answered,
        answered=doc.complete or (bool(doc.answers) and done_by_wait),
        waiting_pids=tuple(w["pid"] for w in mine),
        waiting_since=min((w["started_at"] for w in mine), default=None),
    )


def list_reviews(include_answered: bool = False) -> list[ReviewInfo]:
    """Every review under ``$AUTORUN_HOME/review`` (plus files elsewhere that a
    live ``review wait`` blocks on), oldest first; answered ones only on request."""
    waiters = live_waiters()
    files: dict[str, Path] = {}
    try:
        for entry in layout().review.iterdir():
            if entry.suffix == ".md" and not entry.name.startswith(".") and entry.is_file():
                files[os.path.normpath(str(entry))] = entry
    except OSError:
        pass
    for w in waiters:
        files.setdefault(os.path.normpath(w["file"]), Path(w["file"]))
    answered_by_wait = _answered_files()
    out: list[ReviewInfo] = []
    for key, entry in files.items():
        if not include_answered and key in answered_by_wait:
            continue
        try:
            info = review_info(entry, waiters=waiters)
        except AutorunError:
            continue  # vanished meanwhile
        if info.answered and not include_answered:
            continue
        out.append(info)
    out.sort(key=lambda r: (r.created_at, str(r.path)))
    return out


def waiting_reviews_for(orch_dir: Path) -> list[ReviewInfo]:
    """The unanswered reviews of one run (for its status view)."""
    target = resolve(Path(orch_dir))
    return [r for r in list_reviews() if same_path(r.orch_dir, target)]


def is_stage_waiting(orch_dir: Path, stage: int) -> bool:
    """True while a live ``review wait`` of that run's stage blocks on the user.

    Cheap (reads only the waiter records): meant for the monitor's stall check."""
    target = resolve(Path(orch_dir))
    for w in live_waiters():
        if w["stage"] == stage and w["orch_dir"] and same_path(Path(w["orch_dir"]), target):
            return True
    return False
