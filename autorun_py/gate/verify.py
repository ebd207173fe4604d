"""One verification: the exact commit checked out in a detached verification
worktree, the user's command run there through ``/bin/sh -c`` (the one shell
autorun runs), its process group killed at the timeout, its output logged; the
worktree removed afterwards (through :mod:`autorun_py.worktrees`)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from autorun_py import paths
from autorun_py import proc as _proc
from autorun_py.errors import AutorunError

TAIL_LINES = 60
_KILL_GRACE = 3.0  # seconds between SIGTERM and SIGKILL of the process group
_SHELL = "/bin/sh"
# git variables that would point the verify command's own git calls elsewhere
_GIT_LOCATION_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_COMMON_DIR",
    "GIT_PREFIX",
    "GIT_NAMESPACE",
)


@dataclass(frozen=True)
class Verdict:
    """The verify command's result on one candidate commit."""
    commit: str
    command: str
    passed: bool
    exit_status: Optional[int]  # None: killed at its timeout, or could not start
    timed_out: bool
    seconds: float
    log: Path
    tail: str  # the last TAIL_LINES lines of the command's output

    def describe(self) -> str:
        if self.timed_out:
            return f"killed at its timeout after {self.seconds:.0f}s"
        if self.exit_status is None:
            return "could not be started"
        return f"exit status {self.exit_status}"

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Verdict:
        return cls(
            commit=str(raw["commit"]),
            command=str(raw["command"]),
            passed=bool(raw["passed"]),
            exit_status=raw.get("exit_status"),
            timed_out=bool(raw.get("timed_out")),
            seconds=float(raw.get("seconds") or 0.0),
            log=Path(str(raw.get("log") or "")),
            tail=str(raw.get("tail") or ""),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "command": self.command,
            "passed": self.passed,
            "exit_status": self.exit_status,
            "timed_out": self.timed_out,
            "seconds": round(self.seconds, 3),
            "log": str(self.log),
            "tail": self.tail,
        }


def verify_worktree_path(orch_dir: Path, label: str, commit: str) -> Path:
    """``$AUTORUN_HOME/worktrees/<run>/verify-<label>-<sha>``."""
    return paths.layout().verify_worktree(Path(orch_dir).name, label, commit)


def verify_log_path(orch_dir: Path, label: str, commit: str) -> Path:
    """``<orch_dir>/verify/<label>-<sha>-<n>.log`` (a new file per run of the command)."""
    directory = Path(orch_dir) / "verify"
    for i in range(1, 10000):
        cand = directory / f"{label}-{commit[:12]}-{i}.log"
        if not cand.exists():
            return cand
    raise AutorunError(f"too many verify logs in {directory}")


@contextlib.contextmanager
def verification_worktree(repo: Path, path: Path, commit: str) -> Iterator[Path]:
    """A detached worktree of ``repo`` at ``commit`` for the verify command, removed
    afterwards with whatever the command left in it (both through
    :mod:`autorun_py.worktrees`, the one owner of autorun's worktrees)."""
    from autorun_py import worktrees

    wt = worktrees.create_detached(Path(repo), Path(path), commit)
    try:
        yield wt
    finally:
        worktrees.remove(Path(repo), wt)


def _verify_env(commit: str, worktree: Path) -> dict[str, str]:
    env = _proc.child_env(drop=_GIT_LOCATION_VARS)
    env["AUTORUN_VERIFY"] = "1"
    env["AUTORUN_VERIFY_COMMIT"] = commit
    env["PWD"] = str(worktree)
    return env


def _kill_group(pgid: int, proc: _proc.Child[bytes]) -> None:
    """SIGTERM the process group, then SIGKILL what is left of it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    _proc.wait(proc, _KILL_GRACE)  # wakes as soon as it is gone
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    proc.wait()


def _tail(log: Path, start: int, lines: int = TAIL_LINES) -> str:
    try:
        with open(log, "rb") as fh:
            fh.seek(start)
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def run_command(
    command: str,
    cwd: Path,
    *,
    timeout: float,
    log: Path,
    env: Mapping[str, str],
    progress: Optional[Callable[[float], None]] = None,
    cancel: Optional[threading.Event] = None,
) -> tuple[Optional[int], bool, float, int]:
    """Run the user's shell command in ``cwd``: (exit status or None, timed out,
    seconds, offset of its output in ``log``). The process group is killed at
    ``timeout`` (and any member left behind after the command exits)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(log, "ab") as fh:
        fh.write(f"# autorun verify: {command}\n# in {cwd}\n".encode())
        fh.flush()
        start = fh.tell()
        try:
            # The user's own shell command: the one shell autorun runs (see module doc).
            proc = _proc.spawn([_SHELL, "-c", command], cwd=cwd, env=env, output=fh)
        except AutorunError as exc:
            fh.write(f"# could not start {_SHELL}: {exc}\n".encode())
            return None, False, time.monotonic() - t0, start
        timed_out = False
        last = t0
        try:
            while True:
                # Woken by the command's exit (proc.wait), else at the next progress
                # line, the timeout, or (speculative queue) a look at ``cancel``.
                until = t0 + timeout if progress is None else min(t0 + timeout, last + 1.0)
                step = until - time.monotonic()
                if cancel is not None:
                    step = min(step, 0.1)
                if _proc.wait(proc, max(step, 0.001)) is not None:
                    break
                now = time.monotonic()
                if now - t0 >= timeout:
                    timed_out = True
                    break
                if cancel is not None and cancel.is_set():
                    break  # the speculative queue no longer needs this verdict
                if progress is not None and now - last >= 1.0:
                    last = now
                    progress(now - t0)
        except BaseException:
            _kill_group(proc.pid, proc)  # interrupted: the whole group goes with us
            fh.write(b"\n# interrupted\n")
            raise
        seconds = time.monotonic() - t0
        cancelled = cancel is not None and cancel.is_set() and proc.poll() is None
        _kill_group(proc.pid, proc)  # on a timeout, and whatever it left running
        status = None if timed_out else proc.returncode
        end = "killed at its timeout" if timed_out else f"exit status {status}"
        if cancelled:
            end = "cancelled (the speculative queue dropped this candidate)"
        fh.write(f"\n# {end} after {seconds:.1f}s\n".encode())
    return status, timed_out, seconds, start


def run_verify(
    repo: Path,
    commit: str,
    command: str,
    *,
    timeout: float,
    worktree: Path,
    log: Path,
    progress: Optional[Callable[[float], None]] = None,
    cancel: Optional[threading.Event] = None,
) -> Verdict:
    """Verify one exact commit: green only on exit status 0 within ``timeout``."""
    with verification_worktree(Path(repo), worktree, commit) as wt:
        status, timed_out, seconds, start = run_command(
            command,
            wt,
            timeout=timeout,
            log=log,
            env=_verify_env(commit, wt),
            progress=progress,
            cancel=cancel,
        )
    return Verdict(
        commit=commit,
        command=command,
        passed=status == 0 and not timed_out,
        exit_status=status,
        timed_out=timed_out,
        seconds=seconds,
        log=log,
        tail=_tail(log, start),
    )
