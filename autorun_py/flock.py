"""An exclusive lock file that waits without polling (issue 16).

:class:`FlockLock` takes ``flock(LOCK_EX)`` on a lock file, the same kernel
lock ``filelock.FileLock`` takes on the same path, so both kinds of holder
exclude each other. It costs no ``filelock`` import (most of a bookkeeping
call's start-up) and, when the lock is busy, it *blocks* in the kernel and
wakes the moment the holder lets go: in the main thread a blocking ``flock``
with a one-shot ``SIGALRM`` timer for the timeout; elsewhere (a thread, or a
timer already in use) short polls that back off from 1 ms. Closing the file
(or the process dying, SIGKILL included) releases the lock.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Optional, Union

_FLAGS = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)


class LockTimeout(Exception):
    """The lock was still held by someone else when the timeout ran out."""


class _Alarm(Exception):
    pass


def _raise_alarm(signum: int, frame: Any) -> None:
    raise _Alarm()


def _can_alarm() -> bool:
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGALRM) not in (signal.SIG_DFL, signal.SIG_IGN, None):
        return False  # someone else's handler
    return signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def _try(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise
    return True


def _wait_blocking(fd: int, timeout: float) -> bool:
    """Block in flock(LOCK_EX) for at most ``timeout`` s (main thread only)."""
    old = signal.signal(signal.SIGALRM, _raise_alarm)
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, max(timeout, 0.001))
            fcntl.flock(fd, fcntl.LOCK_EX)
            signal.setitimer(signal.ITIMER_REAL, 0)
            return True
        except _Alarm:
            return False
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, old)


def _wait_polling(fd: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        if _try(fd):
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(pause, left))
        pause = min(pause * 2, 0.02)


class FlockLock:
    """``FlockLock(path, timeout=...)``: ``acquire()`` / ``release()`` or ``with``.

    Not re-entrant: a second holder in the same process waits like any other
    (as two ``filelock.FileLock`` objects on one path do)."""

    def __init__(self, path: Union[str, Path], timeout: float = 60.0) -> None:
        self.path = str(path)
        self.timeout = timeout
        self._fd: Optional[int] = None

    @property
    def is_locked(self) -> bool:
        return self._fd is not None

    def acquire(self, timeout: Optional[float] = None, *, blocking: bool = True) -> FlockLock:
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already locked by this object")
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            fd = os.open(self.path, _FLAGS, 0o644)
            try:
                got = _try(fd)
                if not got and blocking and wait > 0:
                    left = deadline - time.monotonic()
                    if left > 0:
                        got = _wait_blocking(fd, left) if _can_alarm() else _wait_polling(fd, left)
                if got and os.fstat(fd).st_nlink == 0:
                    # The lock file was removed while we waited: lock the new one.
                    os.close(fd)
                    continue
            except _Alarm:  # the timer fired just as flock returned
                got = False
            except BaseException:
                os.close(fd)
                raise
            if not got:
                os.close(fd)
                raise LockTimeout(self.path)
            self._fd = fd
            return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def __enter__(self) -> FlockLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
