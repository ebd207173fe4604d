"""The per-repository merge lock (one file lock per git common directory, shared
by every run and worktree of the repository)."""

from __future__ import annotations

from pathlib import Path

from autorun_py import git as g
from autorun_py.paths import layout


class MergeLock:
    """An :class:`autorun_py.fsutil.Lock` on one repository's merge lock file; a
    timeout becomes an :class:`AutorunError` with exit code ``TIMEOUT``."""

    def __init__(self, path: Path, repo: Path, timeout: float) -> None:
        from autorun_py.fsutil import Lock

        self.lock_file = path
        self.repo = repo
        self.timeout = timeout
        self._lock = Lock(path, timeout=timeout)

    @property
    def is_locked(self) -> bool:
        return self._lock.is_locked

    def acquire(self, timeout: float | None = None) -> MergeLock:
        wait = self.timeout if timeout is None else timeout
        self._lock.message = (
            f"another merge into {self.repo} still holds the merge lock after {wait:g}s"
        )
        self._lock.acquire(wait)
        return self

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> MergeLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def repo_merge_lock(repo: Path, timeout: float = 600) -> MergeLock:
    """The lock serialising merges into one repository, across orchestrations:
    ``$AUTORUN_HOME/locks/merge-<sha1 of the git common dir>.lock``."""
    key = _sha1_hex(str(g.common_dir(repo)).encode("utf-8"))
    path = layout().merge_lock(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    return MergeLock(path, Path(repo), timeout)


def _sha1_hex(data: bytes) -> str:
    """SHA-1 of ``data``, hex: CPython's built-in ``_sha1`` when there is one (the same
    digest as :mod:`hashlib`'s, without loading OpenSSL at every merge: ~4 ms, issue
    16), else :mod:`hashlib`."""
    try:
        from _sha1 import sha1  # type: ignore[import-not-found]
    except ImportError:
        from hashlib import sha1
    return str(sha1(data).hexdigest())
