"""Wake up when one file changes: watchdog (inotify/FSEvents/...) with a polling fallback.

Imported lazily by :func:`autorun_py.review.wait_for_answers`, so ``autorun --help``
never pays for watchdog. The watcher watches the file's *directory*, so a save
that writes a new file and renames it over the old one (vim, most IDEs) is seen
as well as an in-place write. It only says "something may have changed"; the
caller re-reads the file and decides whether the change matters.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Optional

# A stat signature: inode, size, mtime. None when the file does not exist.
Signature = Optional[tuple[int, int, int]]

POLL_INTERVAL = 0.1
# Event types that are only reads (our own re-reads produce them).
_IGNORED_EVENT_TYPES = frozenset({"opened", "closed_no_write"})
# Event types after which the file is complete: closed after writing, renamed into place.
_COMPLETE_EVENT_TYPES = frozenset({"closed", "moved"})


def signature(path: Path) -> Signature:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class ChangeWatcher:
    """Signals changes to one file. Use as a context manager.

    ``method`` is ``"watchdog:<ObserverClass>"`` when a native observer runs,
    ``"polling"`` otherwise (forced, or the observer could not start: no
    inotify instances left, unsupported file system, ...).
    """

    def __init__(self, path: Path, *, force_polling: bool = False) -> None:
        self.path = Path(path)
        self._name = self.path.name
        self._flag = threading.Event()
        self._observer: Any = None
        self._last_sig: Signature = signature(self.path)
        self._last_event = ""  # type of the last observer event about the file
        self.method = "polling"
        if not force_polling:
            self._start_observer()

    def _start_observer(self) -> None:
        try:
            from watchdog.events import FileSystemEvent, FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:  # pragma: no cover - watchdog is a dependency
            return
        # watchdog warns through logging's last-resort handler (stderr) about
        # events that arrive while it stops; they are of no interest here.
        wd_logger = logging.getLogger("watchdog")
        if not wd_logger.handlers:
            wd_logger.addHandler(logging.NullHandler())
        name = self._name
        flag = self._flag
        watcher = self

        class _Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.is_directory or event.event_type in _IGNORED_EVENT_TYPES:
                    return
                for raw in (event.src_path, getattr(event, "dest_path", "")):
                    if raw and os.path.basename(os.fsdecode(raw)) == name:
                        watcher._last_event = event.event_type
                        flag.set()
                        return

        observer = Observer()
        try:
            observer.schedule(_Handler(), str(self.path.parent), recursive=False)
            observer.start()
        except Exception:  # noqa: BLE001 - any failure means: poll instead
            try:
                observer.stop()
            except Exception:  # noqa: BLE001
                pass
            return
        self._observer = observer
        self.method = f"watchdog:{type(observer).__name__}"

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds; True when the file may have changed."""
        deadline = time.monotonic() + max(0.0, timeout)
        if self._observer is not None:
            if self._flag.wait(max(0.0, timeout)):
                self._flag.clear()
                self._last_sig = signature(self.path)
                return True
            # Safety net for missed events (network file systems, overflow).
            return self._stat_changed()
        while True:
            if self._stat_changed():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(POLL_INTERVAL, left))

    def _stat_changed(self) -> bool:
        sig = signature(self.path)
        if sig != self._last_sig:
            self._last_sig = sig
            return True
        return False

    def settle(self, quiet: float = 0.03, limit: float = 0.5) -> None:
        """Wait until no change was seen for ``quiet`` seconds (at most ``limit``),
        so a file caught half-written is read again once the writer is done.

        When the last event says the writer is done (closed after writing, or
        renamed into place), a much shorter quiet period is enough."""
        end = time.monotonic() + limit
        while time.monotonic() < end:
            done = self._observer is not None and self._last_event in _COMPLETE_EVENT_TYPES
            step = min(quiet / 10 if done else quiet, max(0.0, end - time.monotonic()))
            if not self.wait(step):
                return

    def close(self) -> None:
        observer = self._observer
        self._observer = None
        if observer is not None:
            observer.stop()
            observer.join(timeout=2.0)

    def __enter__(self) -> ChangeWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
