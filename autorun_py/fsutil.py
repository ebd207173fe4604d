"""The one lock helper and the one atomic write, and bounded reads of files a
user (or an attacker) may have replaced.

* :class:`Lock`: an exclusive ``flock`` on a lock file (:mod:`autorun_py.flock`:
  the same kernel lock as ``filelock.FileLock``'s, which is never imported; a
  busy lock is waited for in the kernel, not polled); a timeout and a lock file
  that cannot be created become one :class:`AutorunError` naming the lock file.
* :func:`write_text_atomic`: a temp file with a unique name in the target's
  directory, written, flushed and fsynced, ``os.replace``-d over the target,
  then the directory fsynced. A reader sees the old or the new file, a crash
  leaves at most a ``.<name>.*.tmp`` file. A symlink placed at the target is
  refused, and a full, read-only or forbidden disk is one error naming the path
  with the target unchanged.
* :func:`append_nofollow`: append bytes to a log file without following a
  symlink placed there.
* :func:`read_text_bounded`: read a regular file of at most ``limit`` bytes as
  UTF-8 without blocking on a FIFO or reading a device without end.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Optional, Union

from autorun_py.errors import AutorunError, ExitCode

PathLike = Union[str, Path]

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _reason(exc: OSError, *, nofollow: bool = True) -> str:
    if nofollow and exc.errno == errno.ELOOP:
        return "is a symlink; autorun does not write through symlinks"
    return exc.strerror or str(exc)


# --------------------------------------------------------------------------- locks


class Lock:
    """One lock file; ``with Lock(path, timeout=...)`` or acquire/release.

    :meth:`try_acquire` asks without waiting. ``message`` is what a timeout
    says (the lock file is named after it).
    """

    def __init__(
        self,
        path: PathLike,
        *,
        timeout: float = 60.0,
        message: str = "",
        exit_code: Optional[ExitCode] = None,
    ) -> None:
        from autorun_py.flock import FlockLock

        self.path = Path(path)
        self.timeout = timeout
        self.message = message
        self.exit_code = exit_code
        self._lock = FlockLock(self.path, timeout=timeout)

    @property
    def is_locked(self) -> bool:
        return self._lock.is_locked

    def acquire(self, timeout: Optional[float] = None) -> Lock:
        from autorun_py.flock import LockTimeout

        wait = self.timeout if timeout is None else timeout
        try:
            self._lock.acquire(wait)
        except LockTimeout:
            raise AutorunError(
                self.message or f"timed out after {wait:g}s waiting for the lock",
                path=self.path,
                exit_code=self.exit_code or ExitCode.TIMEOUT,
            ) from None
        except OSError as exc:
            raise AutorunError(f"cannot take the lock: {_reason(exc)}", path=self.path) from None
        return self

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; never wait."""
        from autorun_py.flock import LockTimeout

        try:
            self._lock.acquire(0, blocking=False)
        except LockTimeout:
            return False
        except OSError as exc:
            raise AutorunError(f"cannot take the lock: {_reason(exc)}", path=self.path) from None
        return True

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> Lock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# --------------------------------------------------------------------------- writes


def fsync_dir(directory: PathLike) -> None:
    """fsync a directory so a rename in it survives a power cut (best effort)."""
    try:
        dfd = os.open(str(directory), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def refuse_symlink(path: PathLike) -> None:
    """An error naming ``path`` when a symlink has been placed there."""
    if os.path.islink(path):
        raise AutorunError(
            "is a symlink; autorun does not write through symlinks (remove it)", path=path
        )


_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC


def _mkstemp(path: Path) -> tuple[int, str]:
    """``tempfile.mkstemp(prefix=".<name>.", suffix=".tmp", dir=<its directory>)``
    without importing tempfile (and shutil, random: a bookkeeping call's start-up):
    a new file, 0o600, created exclusively under a random name."""
    for _ in range(100):
        tmp = os.path.join(str(path.parent), f".{path.name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(tmp, _TMP_FLAGS, 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path.parent))


def write_bytes_atomic(path: PathLike, data: bytes, *, mode: Optional[int] = None) -> None:
    """Replace ``path`` with ``data`` atomically (see the module docstring)."""
    path = Path(path)
    refuse_symlink(path)
    tmp: Optional[str] = None
    try:
        fd, tmp = _mkstemp(path)
        try:
            if mode is not None:  # the temp file's own is 0o600
                os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise AutorunError(f"cannot write: {_reason(exc)}", path=path) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    fsync_dir(path.parent)


def write_text_atomic(path: PathLike, text: str, *, mode: Optional[int] = None) -> None:
    write_bytes_atomic(path, text.encode("utf-8"), mode=mode)


def append_lines(
    path: PathLike,
    lines: Sequence[bytes],
    *,
    fsync: bool = True,
    between_lines: Optional[Callable[[], Any]] = None,
) -> None:
    """Append each of ``lines`` with one ``write`` on an ``O_APPEND`` descriptor
    (concurrent writers never interleave a line), then fsync once. A symlink at
    ``path`` is refused (``O_NOFOLLOW``), as is anything but a regular file."""
    path = Path(path)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC
    try:
        fd = os.open(str(path), flags, 0o644)
    except OSError as exc:
        raise AutorunError(f"cannot append: {_reason(exc)}", path=path) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise AutorunError("cannot append: not a regular file", path=path)
        for i, data in enumerate(lines):
            if i and between_lines is not None:
                between_lines()  # a test's kill point
            os.write(fd, data)
        if fsync:
            os.fsync(fd)
    except OSError as exc:
        raise AutorunError(f"cannot append: {_reason(exc)}", path=path) from None
    finally:
        os.close(fd)


def append_nofollow(path: PathLike, data: bytes, *, fsync: bool = True) -> None:
    """Append one line (see :func:`append_lines`)."""
    append_lines(path, [data], fsync=fsync)


# --------------------------------------------------------------------------- reads


def read_bytes_bounded(path: PathLike, limit: int, *, follow_symlinks: bool = True) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    Opened without blocking (a FIFO is refused, not waited on), checked to be a
    regular file after opening (a device such as /dev/zero is refused), and
    read at most ``limit + 1`` bytes (a file growing while read is refused).
    Raises :class:`AutorunError` naming the path; ``FileNotFoundError`` passes
    through for callers that treat a missing file specially.
    """
    path = Path(path)
    flags = os.O_RDONLY | _O_NONBLOCK | _O_CLOEXEC | (0 if follow_symlinks else _O_NOFOLLOW)
    try:
        fd = os.open(str(path), flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks:
            raise AutorunError("is a symlink; autorun does not follow it", path=path) from None
        raise AutorunError(f"cannot read: {_reason(exc, nofollow=False)}", path=path) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise AutorunError("is a directory, not a file", path=path)
        if not stat.S_ISREG(st.st_mode):
            kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device or special file"
            raise AutorunError(f"is {kind}, not a regular file", path=path)
        if st.st_size > limit:
            raise AutorunError(
                f"is too large ({st.st_size} bytes; the limit is {_human(limit)})", path=path
            )
        chunks = []
        total = 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise AutorunError(f"is too large (the limit is {_human(limit)})", path=path)
        return b"".join(chunks)
    except OSError as exc:
        raise AutorunError(f"cannot read: {_reason(exc, nofollow=False)}", path=path) from None
    finally:
        os.close(fd)


def read_text_bounded(path: PathLike, limit: int, *, follow_symlinks: bool = True) -> str:
    """:func:`read_bytes_bounded` decoded as UTF-8 (an error names the byte offset)."""
    data = read_bytes_bounded(path, limit, follow_symlinks=follow_symlinks)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise AutorunError(
            f"is not UTF-8 text (invalid byte 0x{data[exc.start]:02x} at offset {exc.start})",
            path=path,
            line=line,
        ) from None


def _human(n: int) -> str:
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n >= 1 << 10 and n % (1 << 10) == 0:
        return f"{n >> 10} KiB"
    return f"{n} bytes"


__all__ = [
    "Lock",
    "append_nofollow",
    "fsync_dir",
    "read_bytes_bounded",
    "read_text_bounded",
    "refuse_symlink",
    "write_bytes_atomic",
    "write_text_atomic",
]
