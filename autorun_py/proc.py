"""The one wrapper for starting processes (git and tmux go through it too).

Every child process autorun starts comes from here: :func:`run` (wait for it,
capture its output, optional timeout), :func:`spawn` (detached: a new session,
no terminal, nothing waits for it) and :func:`start` (a child the caller polls).
Argv lists only, never a shell string. With debug on (``autorun --debug`` or
``AUTORUN_DEBUG=1``, read at the CLI edge, which calls :func:`set_debug`) each
call is logged on stderr with its argv, exit status and duration.
"""

from __future__ import annotations

import functools
import os
import select
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Optional, Union

from autorun_py.errors import AutorunError, ExitCode

PathLike = Union[str, Path]

_debug = False


def set_debug(on: bool) -> None:
    """Log every process call on stderr from now on (the CLI edge decides)."""
    global _debug
    _debug = on


def debug_enabled() -> bool:
    return _debug


def debug(message: str) -> None:
    if _debug:
        try:
            sys.stderr.write(f"autorun: debug: {message}\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


def pid_alive(pid: object) -> bool:
    """Whether a process with this pid exists (signal 0; a process that is not ours
    to signal exists too). Anything but a positive int is no process."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _log_call(argv: Sequence[str], status: str, started: float) -> None:
    if _debug:
        ms = (time.monotonic() - started) * 1000
        debug(f"{shlex.join(argv)} -> {status} ({ms:.1f} ms)")


def _runnable(path: str) -> bool:
    return os.path.exists(path) and os.access(path, os.X_OK) and not os.path.isdir(path)


@functools.lru_cache(maxsize=32)
def _which(name: str, path_env: Optional[str]) -> Optional[str]:
    """What ``shutil.which(name, path=path_env)`` finds on POSIX, without importing
    :mod:`shutil` (and the compression modules it loads) in every process."""
    if os.path.dirname(name):
        return name if _runnable(name) else None
    if path_env is None:
        try:
            path_env = os.confstr("CS_PATH")
        except (AttributeError, ValueError):
            path_env = os.defpath
    if not path_env:
        return None
    seen: set[str] = set()
    for folder in path_env.split(os.pathsep):
        if folder in seen:
            continue
        seen.add(folder)
        cand = os.path.join(folder, name)
        if _runnable(cand):
            return cand
    return None


def which(name: str) -> Optional[str]:
    """``shutil.which``, looked up once per program name and ``PATH``."""
    return _which(name, os.environ.get("PATH"))


def child_env(
    overrides: Optional[Mapping[str, str]] = None, *, drop: Sequence[str] = ()
) -> dict[str, str]:
    """A child's environment: this process's, without ``drop``, plus ``overrides``.

    The one place a library module gets a copy of the process environment for a
    process it starts (the values a library function itself depends on are read at
    the CLI edge and passed in)."""
    env = {k: v for k, v in os.environ.items() if k not in drop}
    if overrides:
        env.update(overrides)
    return env


def inherited(*names: str) -> dict[str, str]:
    """The set, non-empty ones of ``names`` in this process's environment, as a
    child started with an environment of its own should get them."""
    return {k: os.environ[k] for k in names if os.environ.get(k)}


def has_desktop() -> bool:
    """Whether a child started from here reaches a desktop (macOS, ``DISPLAY``
    or ``WAYLAND_DISPLAY``): desktop notifications are worth trying."""
    if sys.platform == "darwin":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class CommandNotFound(AutorunError):
    """The program to run does not exist (or is not executable)."""


class CommandTimeout(AutorunError):
    exit_code = ExitCode.TIMEOUT


@dataclass(frozen=True)
class Result:
    """A finished process: its argv, exit status, output and duration."""
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run(
    argv: Sequence[str],
    *,
    cwd: Optional[PathLike] = None,
    env: Optional[Mapping[str, str]] = None,
    input: Optional[str] = None,
    timeout: Optional[float] = None,
    capture: bool = True,
) -> Result:
    """Run ``argv`` to its end and return its exit status and (captured) output.

    stdin is ``input`` or nothing (never the terminal). A missing program raises
    :class:`CommandNotFound`, a timeout (the child is killed) :class:`CommandTimeout`.
    """
    argv = [str(a) for a in argv]
    started = time.monotonic()
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    try:
        proc = subprocess.run(  # noqa: S603 - argv list, no shell
            argv,
            cwd=None if cwd is None else str(cwd),
            env=None if env is None else dict(env),
            input=input,
            stdin=subprocess.DEVNULL if input is None else None,
            stdout=out,
            stderr=out,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        _log_call(argv, "not found", started)
        raise CommandNotFound(f"{argv[0]} is not installed or not on PATH") from None
    except PermissionError as exc:
        _log_call(argv, "not executable", started)
        raise CommandNotFound(f"{argv[0]} cannot be run: {exc.strerror}") from None
    except subprocess.TimeoutExpired:
        _log_call(argv, f"killed after {timeout:g}s", started)
        raise CommandTimeout(f"`{shlex.join(argv)}` did not finish within {timeout:g}s") from None
    _log_call(argv, f"exit {proc.returncode}", started)
    return Result(
        tuple(argv),
        proc.returncode,
        proc.stdout or "",
        proc.stderr or "",
        time.monotonic() - started,
    )


def spawn(
    argv: Sequence[str],
    *,
    cwd: Optional[PathLike] = None,
    env: Optional[Mapping[str, str]] = None,
    output: Optional[IO[bytes]] = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` detached (its own session, stdin from /dev/null, output to
    ``output`` or nowhere); the caller may poll it, nothing needs to wait for it."""
    argv = [str(a) for a in argv]
    started = time.monotonic()
    try:
        child = subprocess.Popen(  # noqa: S603 - argv list, no shell
            argv,
            cwd=None if cwd is None else str(cwd),
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=output if output is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if output is not None else subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        _log_call(argv, f"not started ({exc.strerror})", started)
        raise CommandNotFound(f"{argv[0]} cannot be started: {exc.strerror}") from None
    _log_call(argv, f"detached pid {child.pid}", started)
    return child


Child = subprocess.Popen  # a started child: poll(), wait(), pid, returncode


def wait(child: subprocess.Popen[bytes], timeout: float) -> Optional[int]:
    """Wait up to ``timeout`` seconds for ``child``; its exit status, or None.

    Wakes the moment the child exits: the kernel signals its pidfd
    (``os.pidfd_open``, Linux 5.3+), so nothing sleeps in a loop (``Popen.wait``
    with a timeout polls every 50 ms); elsewhere it falls back to that."""
    if child.returncode is not None:
        return child.returncode
    opener = getattr(os, "pidfd_open", None)
    if opener is not None and timeout > 0:
        try:
            fd = opener(child.pid)
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                select.select([fd], [], [], timeout)
            finally:
                os.close(fd)
            return child.poll()
    try:
        return child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def start(
    argv: Sequence[str],
    *,
    cwd: Optional[PathLike] = None,
    env: Optional[Mapping[str, str]] = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as a child the caller polls or waits for (output discarded)."""
    argv = [str(a) for a in argv]
    started = time.monotonic()
    try:
        child = subprocess.Popen(  # noqa: S603 - argv list, no shell
            argv,
            cwd=None if cwd is None else str(cwd),
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except OSError as exc:
        _log_call(argv, f"not started ({exc.strerror})", started)
        raise CommandNotFound(f"{argv[0]} cannot be started: {exc.strerror}") from None
    _log_call(argv, f"started pid {child.pid}", started)
    return child


__all__ = [
    "CommandNotFound",
    "CommandTimeout",
    "Result",
    "debug",
    "debug_enabled",
    "run",
    "set_debug",
    "spawn",
    "start",
    "wait",
    "which",
]
