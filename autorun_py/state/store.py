"""``status.json`` of one run: one file lock, locked read-modify-write
transactions, lock-free reads, atomic writes (the package docstring has the
commit order)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

from autorun_py import fsutil
from autorun_py.errors import AutorunError, ExitCode
from autorun_py.eventlog import event_line, flush_journal, log_size, make_event, write_lines
from autorun_py.state.codec import dumps_readable, parse_full, read_state, render_state
from autorun_py.state.run import (
    RunState,
)
from autorun_py.state.stage import (
    STATUS_FILE,
)

JOURNAL_KEY = "event_journal"  # the last transaction's events (see autorun_py.events)
# Tests only: a crash test's own process names a point here to be SIGKILLed at
# (the commit order of a transaction); nothing else ever sets it.
KILL_AT: Optional[str] = None
MAX_STATUS_BYTES = 64 << 20


def _kill_point(name: str) -> None:
    """SIGKILL this process here when :data:`KILL_AT` names this point (crash tests
    of the commit order)."""
    if KILL_AT == name:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


T = TypeVar("T")


@dataclass
class PendingEvent:
    """An event a transaction emits, written with the status it goes with."""
    type: str
    fields: dict[str, Any]


class Transaction:
    """What a caller sees inside :meth:`StatusStore.transaction`."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self.events: list[PendingEvent] = []

    def emit(self, event_type: str, **fields: Any) -> None:
        self.events.append(PendingEvent(event_type, fields))


class StatusStore:
    """``status.json`` of one orchestration: locked read-modify-write, lock-free reads."""

    def __init__(self, orch_dir: Path, *, lock_timeout: float = 60.0) -> None:
        self.orch_dir = Path(orch_dir)
        self.path = self.orch_dir / STATUS_FILE
        self.lock_path = self.orch_dir / (STATUS_FILE + ".lock")
        self.lock_timeout = lock_timeout

    def exists(self) -> bool:
        return self.path.is_file()

    def read(self, *, lazy: bool = False) -> RunState:
        """The run, every field checked (no lock: the old file or the new one).

        ``lazy`` (a stage's own calls: chain, merge, launch): in a file of 12 KiB or
        more (about 15 stages, ``codec.FAST_MIN_CHARS``) each stage's status and
        dependencies are checked now, the rest of a stage when it is first looked up
        (:func:`~autorun_py.state.codec.read_state`), so a call that looks at a few
        stages costs the same at any number of stages."""
        return read_state(self._read_text(), self.path, lazy=lazy)

    def read_raw(self) -> dict[str, Any]:
        """The file as parsed JSON (checked to be an object, nothing more)."""
        return parse_full(self._read_text(), self.path)

    def _read_text(self) -> str:
        try:
            # never a symlink, a FIFO or a device; bounded
            return fsutil.read_text_bounded(self.path, MAX_STATUS_BYTES, follow_symlinks=False)
        except FileNotFoundError:
            raise AutorunError(
                "no status.json here: not an orchestration directory", path=self.orch_dir
            ) from None

    def _lock(self) -> fsutil.Lock:
        # Blocks in flock and wakes as the holder lets go (no polls); the same
        # kernel lock as filelock's on this path (autorun_py/flock.py).
        lock = fsutil.Lock(
            self.lock_path,
            timeout=self.lock_timeout,
            message=f"timed out after {self.lock_timeout:.0f}s waiting for the status lock",
            exit_code=ExitCode.FAILURE,
        )
        return lock.acquire()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Lock, read, let the caller mutate, write atomically, append events; unlock.

        Crash-safe order (see :mod:`autorun_py.events`): the previous
        transaction's journal is flushed first; the new ``status.json`` carries
        this transaction's events in ``event_journal`` (the commit point); then
        they are appended to ``events.jsonl``.
        """
        lock = self._lock()
        try:
            # the events go where status.json is, never through a symlink placed
            # there: refused before anything changes
            fsutil.refuse_symlink(self.orch_dir / "events.jsonl")
            # each stage's status and dependencies checked, the rest of a stage
            # when the caller first looks it up (autorun_py.state.codec)
            txn = Transaction(read_state(self._read_text(), self.path, lazy=True))
            state = txn.state
            flush_journal(self.orch_dir, state.extra.pop(JOURNAL_KEY, None))
            yield txn
            state = txn.state
            state.revision += 1
            state.current_wave = state.lowest_open_wave()
            events = [
                make_event(
                    self.orch_dir,
                    ev.type,
                    plan_name=state.plan_name,
                    project_slug=state.project_slug,
                    **ev.fields,
                )
                for ev in txn.events
            ]
            journal = {"offset": log_size(self.orch_dir), "events": events}
            text = render_state(state, **{JOURNAL_KEY: journal})
            fsutil.write_text_atomic(self.path, text)
            _kill_point("state:after-status-write")
            write_lines(self.orch_dir, [event_line(ev) for ev in events], _kill_point)
        finally:
            lock.release()

    def flush_events(self) -> int:
        """Append the events of a committed transaction that a killed writer
        left in ``status.json``'s journal; return how many (under the lock)."""
        lock = self._lock()
        try:
            return flush_journal(self.orch_dir, self.read_raw().get(JOURNAL_KEY))
        finally:
            lock.release()

    def clean_stale_temps(self) -> int:
        """Remove temp files left by writers killed mid-write; return how many.

        Under the lock: a live writer's temp file is never taken from under it.
        """
        lock = self._lock()
        try:
            n = 0
            for p in self.orch_dir.glob(f".{STATUS_FILE}.*.tmp"):
                with contextlib.suppress(OSError):
                    p.unlink()
                    n += 1
            return n
        finally:
            lock.release()

    def update(self, fn: Callable[[Transaction], T]) -> T:
        with self.transaction() as txn:
            return fn(txn)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temp file in the same directory, fsync, and rename over ``path``
    (:func:`autorun_py.fsutil.write_text_atomic`: never through a symlink)."""
    fsutil.write_text_atomic(Path(path), dumps_readable(data))
