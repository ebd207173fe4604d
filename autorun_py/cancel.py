"""Stopping a run and cleaning up after it: ``autorun cancel``, ``autorun clean``.

``cancel RUN [--stage N]``:

The intent is recorded first, in one status transaction under the repository's
merge lock (so no merge of this repository is half-way through its git part):
what was running or waiting becomes ``cancelled`` (with ``--stage``: that stage,
and its pending descendants become ``blocked``; otherwise every pending or
running stage, and the run ends ``cancelled``). Then the sessions of every
cancelled stage that this run started are killed (a session of that name that
another run or the user started is left alone) and, for a whole run, its
monitor is stopped. Branches and worktrees are kept for inspection (``autorun
clean`` removes them). Running it again finishes what a killed first call left:
idempotent.
"""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from autorun_py import launchers
from autorun_py.errors import AutorunError
from autorun_py.state import (
    CANCELLED,
    IN_PROGRESS,
    PENDING,
    RUN_CANCELLED,
    RUN_RUNNING,
    StatusStore,
    block_descendants,
    end_run,
    finish_if_done,
    transition,
)
from autorun_py.tmux import Tmux


@dataclass
class CancelResult:
    """What `autorun cancel` did to a run (or to one stage of it)."""
    orch_dir: str
    run: str
    stage: Optional[int]
    cancelled: list[int] = field(default_factory=list)  # by this call
    was_running: list[int] = field(default_factory=list)
    blocked: list[int] = field(default_factory=list)
    sessions_killed: list[str] = field(default_factory=list)
    sessions_left: list[str] = field(default_factory=list)  # not this run's: untouched
    monitor_stopped: Optional[int] = None
    run_status: str = ""
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "orch_dir": self.orch_dir,
            "run": self.run,
            "stage": self.stage,
            "cancelled": self.cancelled,
            "was_running": self.was_running,
            "blocked": self.blocked,
            "sessions_killed": self.sessions_killed,
            "sessions_left": self.sessions_left,
            "monitor_stopped": self.monitor_stopped,
            "run_status": self.run_status,
            "changed": bool(self.cancelled or self.sessions_killed or self.monitor_stopped),
        }

    def to_text(self) -> str:
        lines = []
        if self.cancelled:
            running = (
                f" (running: {', '.join(map(str, self.was_running))})" if self.was_running else ""
            )
            lines.append(f"cancelled stage(s) {', '.join(map(str, self.cancelled))}{running}")
        elif self.note:
            lines.append(self.note)
        if self.blocked:
            lines.append(f"blocked (they need it): {', '.join(map(str, self.blocked))}")
        if self.sessions_killed:
            lines.append(f"sessions ended: {', '.join(self.sessions_killed)}")
        for name in self.sessions_left:
            lines.append(f"left alone: tmux session {name} (not this run's)")
        if self.monitor_stopped:
            lines.append(f"monitor stopped (pid {self.monitor_stopped})")
        lines.append(
            f"run {self.run}: {self.run_status}. Branches and worktrees are kept; "
            f"`autorun retry {self.run} N` starts a stage again"
            + (
                f", `autorun clean {self.run}` removes them"
                if self.run_status != "running"
                else f" (`autorun clean {self.run}` removes them once the run has finished)"
            )
        )
        return "\n".join(lines)


def cancel(
    orch_dir: Path, stage: Optional[int] = None, *, environ: Mapping[str, str]
) -> CancelResult:
    """Cancel a run (or one stage of it); see the module doc."""
    from autorun_py import gitmerge

    orch_dir = Path(orch_dir)
    store = StatusStore(orch_dir)
    probe = store.read()
    if stage is not None:
        probe.stage(stage)  # an unknown stage: one clear error, nothing changed
    result = CancelResult(orch_dir=str(orch_dir), run=orch_dir.name, stage=stage)
    from autorun_py.supervisor import monitor_pid

    watching = monitor_pid(orch_dir) if stage is None else None  # before it sees the cancel
    from autorun_py.recovery import settle_merge_intents

    running = [n for n, s in probe.stages.items() if s.status == IN_PROGRESS]
    settle_merge_intents(
        orch_dir, running if stage is None else [stage], source="cancel", environ=environ
    )
    with gitmerge.repo_merge_lock(Path(probe.project_root)), store.transaction() as txn:
        state = txn.state
        pending_intent = [
            n for n, s in state.stages.items() if s.merge_intent and (stage is None or n == stage)
        ]
        if pending_intent:  # a merge died after the settling above: nothing changed
            raise AutorunError(
                f"a merge of stage {pending_intent[0]} was interrupted just now; "
                "run the cancel again (it finishes or rolls that merge back first)"
            )
        if stage is None:
            targets = [
                n for n, s in sorted(state.stages.items()) if s.status in (PENDING, IN_PROGRESS)
            ]
        else:
            st = state.stage(stage)
            targets = [stage] if st.status in (PENDING, IN_PROGRESS) else []
            if not targets:
                result.note = f"stage {stage} ({st.name}) is {st.status}; nothing to cancel"
        for n in targets:
            previous = state.stages[n].status
            if previous == IN_PROGRESS:
                result.was_running.append(n)
            transition(txn, n, CANCELLED, source="cancel", previous=previous)
        result.cancelled = targets
        if stage is not None:
            if targets:
                result.blocked = block_descendants(txn, stage)
                finish_if_done(txn)
        elif state.status == RUN_RUNNING:
            end_run(txn, RUN_CANCELLED)
        elif not targets:
            result.note = f"run {orch_dir.name} is {state.status}; nothing to cancel"
        result.run_status = state.status
        wanted = stage
        ended = [
            s
            for n, s in sorted(state.stages.items())
            if s.status == CANCELLED and (wanted is None or n == wanted)
        ]
        # each stage's sessions through its own launcher (a run may mix them)
        sessions = [s.session for s in ended if s.session and launchers.stage_uses_tmux(state, s)]
        monitor = dict(state.monitor)
        others = [copy.deepcopy(s) for s in ended if not launchers.stage_uses_tmux(state, s)]
        run_state = copy.deepcopy(state)
    # The state says cancelled; now end what still runs (again, after a killed call).
    for st in others:
        with contextlib.suppress(AutorunError):
            result.sessions_killed += launchers.stop_stage(run_state, st)
    tmux = Tmux.from_env()
    for name in sessions:
        with contextlib.suppress(AutorunError):
            if not tmux.has_session(name):
                continue
            if tmux.kill_owned_session(name, str(orch_dir)):
                result.sessions_killed.append(name)
            else:
                result.sessions_left.append(name)
    if stage is None:
        result.monitor_stopped = _stop_monitor(orch_dir, monitor, watching)
        if result.cancelled:
            from autorun_py.report import write_report

            with contextlib.suppress(AutorunError, OSError):
                write_report(orch_dir)  # the monitor would have written it at the end
    return result


def _stop_monitor(
    orch_dir: Path, monitor: dict[str, Any], watching: Optional[int], wait: float = 10.0
) -> Optional[int]:
    """End the run's monitor: it sees the run cancelled at its next look and exits; a
    SIGTERM makes it now (only to the pid it recorded, while it holds the run's monitor
    lock). Returns the pid of the monitor that was running, once it is gone."""
    from autorun_py.supervisor import monitor_pid

    if watching is None and monitor_pid(orch_dir) is None:
        return None  # none was running
    pid = monitor.get("pid")
    if isinstance(pid, int) and pid > 0 and monitor_pid(orch_dir) == pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and monitor_pid(orch_dir) is not None:
        time.sleep(0.05)
    if monitor_pid(orch_dir) is not None:
        return None  # still there: the status view says so
    if watching is not None and watching > 0:
        return watching
    return pid if isinstance(pid, int) and pid > 0 else None


# --------------------------------------------------------------------------- clean


@dataclass
class CleanResult:
    """What `autorun clean` did: sessions ended, worktrees, branches and files removed, what it
    kept and why."""
    orch_dir: str
    run: str
    sessions_killed: list[str] = field(default_factory=list)
    worktrees_removed: list[str] = field(default_factory=list)
    branches_deleted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # with the reason, one line each
    files_removed: list[str] = field(default_factory=list)
    skipped: str = ""  # the run was not cleaned, and why

    def to_json(self) -> dict[str, Any]:
        return {
            "orch_dir": self.orch_dir,
            "run": self.run,
            "sessions_killed": self.sessions_killed,
            "worktrees_removed": self.worktrees_removed,
            "branches_deleted": self.branches_deleted,
            "kept": self.kept,
            "files_removed": self.files_removed,
            "skipped": self.skipped or None,
            "changed": bool(
                self.sessions_killed
                or self.worktrees_removed
                or self.branches_deleted
                or self.files_removed
            ),
        }

    def to_text(self) -> str:
        if self.skipped:
            return f"{self.run}: not cleaned: {self.skipped}"
        done = []
        for what, items in (
            ("session(s) ended", self.sessions_killed),
            ("worktree(s) removed", self.worktrees_removed),
            ("branch(es) deleted", self.branches_deleted),
            ("file(s) and folder(s) removed", self.files_removed),
        ):
            if items:
                done.append(f"{len(items)} {what}")
        lines = [f"{self.run}: " + (", ".join(done) if done else "nothing left to clean")]
        lines += [f"  kept: {k}" for k in self.kept]
        return "\n".join(lines)


def _stage_of_branch(branch: str, run: str) -> Optional[int]:
    import re

    m = re.match(re.escape(f"autorun/{run}/") + r"stage-(\d+)(?:-|$)", branch)
    return int(m.group(1)) if m else None


def clean(orch_dir: Path, *, purge: bool = False, force: bool = False) -> CleanResult:
    """``autorun clean RUN``: remove what a finished (or cancelled) run left behind.

    Ends the tmux sessions this run started; removes its worktrees (through
    :mod:`autorun_py.worktrees`; one with uncommitted changes is kept unless
    ``force``); deletes the branches of merged and cancelled stages, earlier
    attempts included (a failed stage's branches are kept: they may hold work);
    removes the demo's scratch repository when the run is a demo's. Keeps
    ``status.json``, the events and the report unless ``purge``. Never touches what
    autorun did not create. Idempotent.
    """
    from autorun_py import git, worktrees
    from autorun_py.launch import log_path
    from autorun_py.paths import layout
    from autorun_py.state import COMPLETED, FAILED
    from autorun_py.supervisor import monitor_log_path

    orch_dir = Path(orch_dir)
    state = StatusStore(orch_dir).read()
    run = orch_dir.name
    result = CleanResult(orch_dir=str(orch_dir), run=run)
    if state.status == RUN_RUNNING and not state.is_finished():
        busy = [n for n, s in sorted(state.stages.items()) if s.status in (PENDING, IN_PROGRESS)]
        result.skipped = (
            f"it is still running (stages {', '.join(map(str, busy))} pending or in "
            f"progress); `autorun cancel {run}` first"
        )
        return result
    from autorun_py.supervisor import monitor_pid

    if monitor_pid(orch_dir) is not None:
        # The run is finished; its monitor would end at its next look. End it now.
        _stop_monitor(orch_dir, dict(state.monitor), None)
        if monitor_pid(orch_dir) is not None:
            result.skipped = "its monitor is still running (it ends by itself in a moment)"
            return result
    from autorun_py.launchers.background import stage_ids, stop_ids

    ids = [i for st in state.stages.values() for i in stage_ids(st)]
    if ids:  # the run's background sessions (of any stage that had one): stopped, removed
        with contextlib.suppress(AutorunError):
            result.sessions_killed += stop_ids(ids, remove=True)
    tmux = Tmux.from_env()
    for name in tmux.list_sessions():
        with contextlib.suppress(AutorunError):
            if tmux.kill_owned_session(name, str(orch_dir)):
                result.sessions_killed.append(name)
    repo = Path(state.project_root)
    have_repo = (repo / ".git").exists()
    if have_repo:
        for wt in worktrees.list_run(repo, run):
            if not force:
                dirty = git.run_git(["status", "--porcelain"], wt.path, check=False)
                if dirty.ok and dirty.stdout.strip():
                    result.kept.append(
                        f"{wt.path}: uncommitted changes (commit or discard them, or "
                        f"`autorun clean {run} --force`)"
                    )
                    continue
            warn = worktrees.try_remove(repo, wt.path, run=run)
            if warn:
                result.kept.append(warn)
            else:
                result.worktrees_removed.append(str(wt.path))
        refs = git.run_git(
            ["for-each-ref", "--format=%(refname:short)", f"refs/heads/autorun/{run}/"],
            repo,
            check=False,
        )
        for branch in refs.stdout.split() if refs.ok else []:
            if not worktrees.is_own_branch(branch, run):
                continue
            n = _stage_of_branch(branch, run)
            st = state.stages.get(n) if n is not None else None
            if st is None or st.status not in (COMPLETED, CANCELLED):
                why = f"stage {n} is {st.status}" if st is not None else "no stage of the run"
                if st is not None and st.status == FAILED:
                    why += f"; `autorun retry {run} {n}` or delete it yourself"
                result.kept.append(f"branch {branch}: {why}")
                continue
            if worktrees.try_delete_branch(repo, branch, run=run):
                result.branches_deleted.append(branch)
            elif git.branch_exists(branch, repo):
                result.kept.append(f"branch {branch}: a worktree still has it checked out")
    if have_repo:  # the run's stage branches on the git remote (the remote launcher's)
        from autorun_py.launchers.remote import clean_remote_branches

        with contextlib.suppress(AutorunError):
            deleted, kept = clean_remote_branches(state)
            result.branches_deleted += deleted
            result.kept += kept
    scratch = worktrees.demo_scratch(repo)
    if scratch is not None:
        with contextlib.suppress(OSError):
            result.files_removed += worktrees.remove_demo_scratch(scratch, purge=False)
    if purge:
        candidates = [
            layout().report_base(run).with_suffix(".md"),
            layout().report_base(run).with_suffix(".json"),
        ]
        # Pane and monitor logs are named after the project slug, which a later run
        # of a plan with the same name reuses: they go only with the last such run.
        sharing = _runs_sharing_slug(orch_dir, state.project_slug)
        logs = [monitor_log_path(state), *(log_path(state, n) for n in state.stages)]
        if sharing:
            result.kept += [
                f"{p}: also written by run {', '.join(sharing)} (same project slug)"
                for p in logs
                if p.exists()
            ]
        else:
            candidates += logs
        for path in candidates:
            try:
                if worktrees.remove_home_file(path):
                    result.files_removed.append(str(path))
            except (AutorunError, OSError) as exc:
                result.kept.append(f"{path}: {exc}")
        if worktrees.remove_run_dir(orch_dir):
            result.files_removed.append(str(orch_dir))
        if scratch is not None:
            with contextlib.suppress(OSError):
                result.files_removed += worktrees.remove_demo_scratch(scratch, purge=True)
    return result


def _runs_sharing_slug(orch_dir: Path, slug: str) -> list[str]:
    """The other runs under ``$AUTORUN_HOME`` whose project slug is ``slug``."""
    from autorun_py.rundir import all_orchestrations

    out = []
    for d in all_orchestrations():
        if Path(d).resolve() == Path(orch_dir).resolve():
            continue
        try:
            other = StatusStore(Path(d)).read()
        except AutorunError:
            out.append(Path(d).name)  # unreadable: keep what may be its logs
            continue
        if other.project_slug == slug:
            out.append(Path(d).name)
    return out


def clean_all_finished(*, purge: bool = False, force: bool = False) -> list[CleanResult]:
    """``autorun clean --all-finished``: :func:`clean` every run that is not running."""
    from autorun_py.rundir import all_orchestrations

    out = []
    for d in all_orchestrations():
        try:
            state = StatusStore(d).read()
        except AutorunError as exc:
            out.append(CleanResult(orch_dir=str(d), run=d.name, skipped=str(exc)))
            continue
        if state.status == RUN_RUNNING and not state.is_finished():
            continue
        try:
            out.append(clean(d, purge=purge, force=force))
        except AutorunError as exc:
            out.append(CleanResult(orch_dir=str(d), run=d.name, skipped=str(exc)))
    return out
