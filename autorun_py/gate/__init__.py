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

The package: :mod:`.spec` (the verify spec and where it comes from),
:mod:`.verify` (one verification of one commit); here, the merge side:
:class:`StageGate` (verify a candidate, recorded in the run), :func:`red` (a red
verdict's attempts), :func:`merge_lock` (the merge lock, through the speculative
queue for a gated merge). Import from here.

While a gated merge waits in the queue, it waits for the lock in the kernel
(taken the moment the holder lets go) in 0.5 s slices, and between slices reads
its queue entry: a result the queue's leader settled is seen within 0.5 s.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from autorun_py.errors import AutorunError
from autorun_py.gate.spec import (
    DEFAULT_ATTEMPTS,
    DEFAULT_PARALLEL,
    DEFAULT_TIMEOUT,
    VerifySpec,
    resolve_spec,
    spec_of,
)
from autorun_py.state import IN_PROGRESS, StatusStore, fail_stage

if TYPE_CHECKING:
    from autorun_py.gate.verify import (
        TAIL_LINES,
        Verdict,
        run_command,
        run_verify,
        verification_worktree,
        verify_log_path,
        verify_worktree_path,
    )
    from autorun_py.merge import MergeReport
    from autorun_py.merge_queue import Entry

__all__ = [
    "DEFAULT_ATTEMPTS",
    "DEFAULT_PARALLEL",
    "DEFAULT_TIMEOUT",
    "TAIL_LINES",
    "StageGate",
    "Verdict",
    "VerifySpec",
    "merge_lock",
    "red",
    "red_text",
    "resolve_spec",
    "run_command",
    "run_verify",
    "spec_of",
    "verification_worktree",
    "verify_log_path",
    "verify_worktree_path",
]

# The verification side (gate/verify.py) is imported on first use: an ungated
# merge never needs it (issue 16: a merge's CPU).
_VERIFY_NAMES = frozenset(
    {
        "TAIL_LINES",
        "Verdict",
        "run_command",
        "run_verify",
        "verification_worktree",
        "verify_log_path",
        "verify_worktree_path",
    }
)


def __getattr__(name: str) -> Any:
    if name in _VERIFY_NAMES:
        import importlib

        return getattr(importlib.import_module("autorun_py.gate.verify"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
        from autorun_py.gate.verify import run_verify, verify_log_path, verify_worktree_path

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
            st.bump("verify_runs")
            fields = {
                "stage": n,
                "candidate": candidate,
                "seconds": round(verdict.seconds, 3),
                "log": str(log),
            }
            if verdict.passed:
                txn.emit("verify_passed", **fields)
            else:
                st.bump("verify_failures")
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
        used = st.count("verify_failures")
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
    from autorun_py.gate.verify import TAIL_LINES

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
    from autorun_py.gitmerge import repo_merge_lock

    lock = repo_merge_lock(repo) if lock_timeout is None else repo_merge_lock(repo, lock_timeout)
    if not spec.gated:
        with lock:
            yield None
        return
    from autorun_py import merge_queue  # a gated merge only (issue 16: an ungated merge's CPU)

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
