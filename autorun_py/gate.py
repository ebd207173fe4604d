"""The merge gate: the base branch only moves to a commit that passed the project's checks.

* :class:`VerifySpec`: the run's verify command, its timeout and the attempts a
  stage gets. Sources, first wins per field: ``autorun orchestrate --verify CMD``,
  the plan's front matter (``verify: pytest -q``, ``verify_timeout: 900``,
  ``verify_attempts: 3``), ``verify`` in ``$AUTORUN_HOME/config.json``. Stored in
  ``status.json`` under ``"verify"`` (``command`` null: the run is not gated).
* :func:`run_verify`: check one exact commit out in a detached verification
  worktree (``$AUTORUN_HOME/worktrees/<run>/verify-...``), run the command there
  through ``/bin/sh -c`` (the one place autorun hands text to a shell: the user
  wrote a shell command), with a timeout that kills the whole process group,
  output to a log file under the run's directory; the worktree is removed
  afterwards, whatever the command left in it. The user's checkout is never the
  cwd and never touched.

The merge side (build candidate, verify, compare-and-swap the base to that same
commit) is in :mod:`autorun_py.merge` and :mod:`autorun_py.gitmerge`; the
speculative queue for several waiting stages is :mod:`autorun_py.merge_queue`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from autorun_py import paths
from autorun_py import proc as _proc
from autorun_py.errors import AutorunError
from autorun_py.state import IN_PROGRESS, StatusStore, fail_stage

if TYPE_CHECKING:
    from autorun_py.merge import MergeReport
    from autorun_py.merge_queue import Entry

DEFAULT_TIMEOUT = 900.0
DEFAULT_ATTEMPTS = 3
DEFAULT_PARALLEL = 4
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
class VerifySpec:
    command: Optional[str] = None
    timeout: float = DEFAULT_TIMEOUT
    attempts: int = DEFAULT_ATTEMPTS
    source: Optional[str] = None  # "command line" | "plan" | "config"
    parallel: int = DEFAULT_PARALLEL  # speculative candidates verified at once

    @property
    def gated(self) -> bool:
        return bool(self.command)

    def to_raw(self) -> dict[str, Any]:
        return {
            "command": self.command or None,
            "timeout": self.timeout,
            "attempts": self.attempts,
            "parallel": self.parallel,
            "source": self.source if self.command else None,
        }

    @classmethod
    def from_raw(cls, raw: Any) -> VerifySpec:
        if not isinstance(raw, dict) or not raw.get("command"):
            return cls()
        try:
            return cls(
                command=str(raw["command"]),
                timeout=float(raw.get("timeout") or DEFAULT_TIMEOUT),
                attempts=max(1, int(raw.get("attempts") or DEFAULT_ATTEMPTS)),
                parallel=max(1, int(raw.get("parallel") or DEFAULT_PARALLEL)),
                source=str(raw.get("source") or "") or None,
            )
        except (TypeError, ValueError):
            raise AutorunError("status.json: verify must be {command, timeout, attempts}") from None

    def describe(self) -> str:
        if not self.command:
            return (
                "not gated (no verify command: stages merge without a check; give one with "
                "--verify CMD, `verify:` in the plan's front matter, or config.json)"
            )
        return (
            f"`{self.command}` (from the {self.source or 'run'}; timeout {self.timeout:g}s, "
            f"{self.attempts} attempt(s) per stage)"
        )


def _positive(value: Any, what: str, where: str, *, integer: bool = False) -> float:
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise AutorunError(
            f"{what} must be a {'whole ' if integer else ''}number", path=where
        ) from None
    if number <= 0:
        raise AutorunError(f"{what} must be positive", path=where)
    return number


def resolve_spec(
    *,
    command_line: Optional[str] = None,
    command_line_timeout: Optional[float] = None,
    front_matter: Optional[Mapping[str, str]] = None,
    plan_path: Optional[Path] = None,
) -> VerifySpec:
    """The run's verify spec: command line over plan front matter over config."""
    from autorun_py.config import load_config

    front = dict(front_matter or {})
    config = load_config()
    config_path = str(paths.layout().config_file)
    plan_where = str(plan_path or "plan")
    command: Optional[str] = None
    source: Optional[str] = None
    for value, src in (
        (command_line, "command line"),
        (front.get("verify"), "plan"),
        (config.verify, "config"),
    ):
        if value is not None:
            command, source = value.strip(), src
            break
    timeout = DEFAULT_TIMEOUT
    if command_line_timeout is not None:
        timeout = _positive(command_line_timeout, "--verify-timeout", "command line")
    elif front.get("verify_timeout"):
        timeout = _positive(front["verify_timeout"], "verify_timeout (front matter)", plan_where)
    elif config.verify_timeout is not None:
        timeout = _positive(config.verify_timeout, "verify_timeout", config_path)
    attempts = DEFAULT_ATTEMPTS
    if front.get("verify_attempts"):
        attempts = int(
            _positive(
                front["verify_attempts"], "verify_attempts (front matter)", plan_where, integer=True
            )
        )
    elif config.verify_attempts is not None:
        attempts = int(
            _positive(config.verify_attempts, "verify_attempts", config_path, integer=True)
        )
    parallel = DEFAULT_PARALLEL
    if front.get("verify_parallel"):
        parallel = int(
            _positive(
                front["verify_parallel"], "verify_parallel (front matter)", plan_where, integer=True
            )
        )
    elif config.verify_parallel is not None:
        parallel = int(
            _positive(config.verify_parallel, "verify_parallel", config_path, integer=True)
        )
    if not command:
        return VerifySpec(timeout=timeout, attempts=attempts, parallel=parallel)
    return VerifySpec(
        command=command, timeout=timeout, attempts=attempts, source=source, parallel=parallel
    )


def spec_of(state: Any) -> VerifySpec:
    """The verify spec stored in a run's state (``RunState.extra["verify"]``)."""
    return VerifySpec.from_raw(getattr(state, "extra", {}).get("verify"))


# -- one verification ------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
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


# -- the merge side (used by autorun_py/merge.py) ---------------------------------


class StageGate:
    """The merge gate of one stage's merge: verify a candidate commit, recording
    ``verify_started`` / ``verify_passed`` / ``verify_failed`` (with durations) and
    the ``verifying`` merge state in the run's status."""

    def __init__(
        self,
        orch_dir: Path,
        number: int,
        spec: VerifySpec,
        repo: Path,
        progress: Optional[Callable[[str], None]] = None,
    ) -> None:
        self.orch_dir = Path(orch_dir)
        self.number = number
        self.spec = spec
        self.repo = repo
        self.progress = progress
        self.verdicts: list[Verdict] = []

    def __call__(self, candidate: str, base_tip: str) -> bool:
        return self.verify(candidate, base_tip).passed

    def verify(
        self, candidate: str, base_tip: str, cancel: Optional[threading.Event] = None
    ) -> Verdict:
        """Verify ``candidate`` (built on ``base_tip``), recording it in the run."""
        assert self.spec.command
        n, command = self.number, self.spec.command
        label = f"stage-{n}"
        log = verify_log_path(self.orch_dir, label, candidate)
        store = StatusStore(self.orch_dir)
        with store.transaction() as txn:
            st = txn.state.stage(n)
            st.merge_state, st.merge_detail = "verifying", {"candidate": candidate, "log": str(log)}
            txn.emit(
                "verify_started",
                stage=n,
                candidate=candidate,
                base_tip=base_tip,
                command=command,
                log=str(log),
            )
        say = self.progress
        if say is not None:
            say(f"autorun: verifying stage {n}: `{command}` on {candidate[:12]} (log {log})")

        def tick(seconds: float) -> None:
            if say is not None and int(seconds) % 10 == 0:
                say(f"autorun: verifying stage {n}: {seconds:.0f}s")

        verdict = run_verify(
            self.repo,
            candidate,
            command,
            timeout=self.spec.timeout,
            worktree=verify_worktree_path(self.orch_dir, label, candidate),
            log=log,
            progress=tick,
            cancel=cancel,
        )
        if cancel is not None and cancel.is_set() and not verdict.passed:
            with store.transaction() as txn:
                st = txn.state.stage(n)
                st.merge_state, st.merge_detail = None, {}
                txn.emit("verify_cancelled", stage=n, candidate=candidate, log=str(log))
            return verdict
        self.verdicts.append(verdict)
        with store.transaction() as txn:
            st = txn.state.stage(n)
            st.merge_state, st.merge_detail = None, {}
            st.counters["verify_runs"] = st.counters.get("verify_runs", 0) + 1
            fields = {
                "stage": n,
                "candidate": candidate,
                "seconds": round(verdict.seconds, 3),
                "log": str(log),
            }
            if verdict.passed:
                txn.emit("verify_passed", **fields)
            else:
                st.counters["verify_failures"] = st.counters.get("verify_failures", 0) + 1
                txn.emit(
                    "verify_failed",
                    **fields,
                    exit_status=verdict.exit_status,
                    timed_out=verdict.timed_out,
                )
        if say is not None:
            say(
                f"autorun: stage {n} "
                + ("passed" if verdict.passed else f"failed ({verdict.describe()})")
                + f" the merge gate in {verdict.seconds:.1f}s"
            )
        return verdict


def red(
    orch_dir: Path, number: int, spec: VerifySpec, verdict: Verdict, report: MergeReport
) -> None:
    """A red candidate goes back to its stage; after ``attempts`` the stage fails."""
    store = StatusStore(orch_dir)
    with store.transaction() as txn:
        st = txn.state.stage(number)
        used = st.counters.get("verify_failures", 0)
        st.merge_intent = None  # a red candidate touched nothing (its "verifying" step)
        final = used >= spec.attempts and st.status == IN_PROGRESS
        if final:
            reason = (
                f"failed the merge gate {used} time(s): `{verdict.command}` "
                f"{verdict.describe()} (log {verdict.log})"
            )
            fail_stage(txn, number, reason)
    report.result = "verify_failed"
    report.verify = {
        **verdict.to_json(),
        "result": verdict.describe(),
        "attempt": used,
        "attempts": spec.attempts,
        "stage_failed": final,
    }
    report.message = (
        f"stage {number} ({report.name}) failed the merge gate: `{verdict.command}` "
        f"{verdict.describe()} on the candidate merge; {report.base_branch} is unchanged"
    )


def red_text(report: MergeReport) -> list[str]:
    v = report.verify or {}
    lines = [
        f"command:     {v.get('command')}",
        f"result:      {v.get('result')}",
        f"candidate:   {v.get('commit')} (base {report.base_branch} + this stage's branch)",
        f"log:         {v.get('log')}",
        f"--- last {TAIL_LINES} lines of its output ---",
        v.get("tail") or "(no output)",
        "--- end of output ---",
    ]
    used, allowed = v.get("attempt", 0), v.get("attempts", 0)
    if v.get("stage_failed"):
        lines.append(
            f"Attempt {used} of {allowed}: the stage is now marked failed; its branch and "
            "worktree are kept. Stop here."
        )
    else:
        lines.append(
            f"Attempt {used} of {allowed}. The base branch did not move. Fix the failure on "
            f"this stage's branch (if it comes from work already on {report.base_branch}, "
            f"first `git merge {report.base_branch}` in this worktree), commit, and merge again."
        )
    return lines


@contextlib.contextmanager
def merge_lock(
    repo: Path,
    spec: VerifySpec,
    progress: Optional[Callable[[str], None]],
    entry: Optional[Entry] = None,
    *,
    lock_timeout: Optional[float] = None,
) -> Iterator[Optional[dict[str, Any]]]:
    """The repository's merge lock, for a gated merge through the merge queue.

    Ungated: the lock, as always (yields None). Gated with a queue ``entry``
    (:class:`autorun_py.merge_queue.Entry`): wait in the queue; yields the
    entry's result when a leader settled it (``merged``: complete it as already
    merged; ``red``: the verdict), possibly without the lock, or None with the
    lock held (merge alone, as without a queue). A leader that finds others
    waiting verifies them all speculatively first (:func:`merge_queue.speculate`).
    """
    from autorun_py import merge_queue
    from autorun_py.gitmerge import repo_merge_lock

    lock = repo_merge_lock(repo) if lock_timeout is None else repo_merge_lock(repo, lock_timeout)
    if not spec.gated:
        with lock:
            yield None
        return
    queue = merge_queue.Queue(repo) if entry is not None else None
    if queue is not None and entry is not None:
        queue.add(entry)
    try:
        deadline = time.monotonic() + max(lock.timeout, 4 * spec.timeout)
        said = 0.0
        settled: Optional[dict[str, Any]] = None
        while True:
            try:
                lock.acquire(timeout=min(0.5, max(0.0, deadline - time.monotonic())))
                break
            except AutorunError:
                if queue is not None and entry is not None:
                    mine = queue.get(entry.id)
                    result = mine.result if mine is not None else None
                    if result is not None and result.get("kind") == merge_queue.DEFERRED:
                        queue.set_result(entry.id, None, alone=True)  # merge alone, later
                    elif result is not None:
                        settled = result
                        break
                if time.monotonic() >= deadline:
                    raise
                if progress is not None and time.monotonic() - said >= 30:
                    progress(
                        "autorun: waiting in the merge queue (other candidates are being verified)"
                    )
                    said = time.monotonic()
        if settled is not None:
            yield settled
            return
        try:
            result = None
            if queue is not None and entry is not None:
                mine = queue.get(entry.id)
                result = mine.result if mine is not None else None
                if result is None and not (mine is not None and mine.alone):
                    batch = queue.batch_for(entry)
                    if batch:
                        merge_queue.speculate_or_defer(
                            repo,
                            queue,
                            batch,
                            verify=lambda e, cand, parent, cancel: StageGate(
                                Path(e.orch_dir), e.stage, spec, repo, progress
                            ).verify(cand, parent, cancel),
                            parallel=spec.parallel,
                            say=progress,
                            leader=entry,
                        )
                        mine = queue.get(entry.id)
                        result = mine.result if mine is not None else None
                if result is not None and result.get("kind") == merge_queue.DEFERRED:
                    result = None  # merge alone now, under the lock
            yield result
        finally:
            lock.release()
    finally:
        if queue is not None and entry is not None:
            queue.remove(entry.id)
