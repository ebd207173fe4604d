"""``autorun merge``: integrate a finished stage, then start what became ready.

The git work (merge without the user's checkout, conflict worktree, carrying a
checked-out base forward) is :mod:`autorun_py.gitmerge`; this module holds the
run's side: refusals, the per-repository merge lock, the stage's completion
and the launches it unlocks (claimed in the same status transaction, so each
next stage starts exactly once), the conflict hand-off, ``conflicts.md``, the
final summary, and clean-up.

Why one module of ~650 lines: it is one command's flow under the merge lock
(recover an interrupted merge, then abort / continue / merge, then record the
outcome and clean up), and its correctness is the order of its status
transactions (the intent before each git step, the outcome and the launches it
unlocks in one transaction). Every function here serves that flow and nothing
else calls them; split, the order would be spread over files a reader must
hold together. The git side is :mod:`autorun_py.gitmerge` (a package), the gate
:mod:`autorun_py.gate`.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from autorun_py import cleanup, gate, git, gitmerge, launchers, paths, worktrees
from autorun_py.config import Config
from autorun_py.errors import AutorunError, ExitCode
from autorun_py.events import utc_now
from autorun_py.gitmerge import MergeKind, MergeOutcome
from autorun_py.launch import claim, kill_later, select_ready, start_claimed
from autorun_py.merge_intent import intent_journal
from autorun_py.state import (
    COMPLETED,
    IN_PROGRESS,
    RunState,
    StageState,
    StatusStore,
    Transaction,
    finish_if_done,
    transition,
    update_phase,
)
from autorun_py.tmux import Tmux


@dataclass
class MergeReport:
    """What `autorun merge` did (its output, as text and as JSON, and its exit code)."""
    orch_dir: str
    stage: int
    name: str
    result: str  # merged | already_merged | conflict | blocked | aborted | none | verify_failed
    message: str
    merge_commit: Optional[str] = None
    base_branch: str = ""
    branch: Optional[str] = None
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    merge_worktree: Optional[str] = None
    blocked_files: list[str] = field(default_factory=list)
    launched: list[int] = field(default_factory=list)
    launch_failed: list[tuple[int, str]] = field(default_factory=list)
    run_complete: bool = False
    summary: Optional[str] = None
    warnings: list[str] = field(default_factory=list)
    recovered: str = ""  # the step of an interrupted merge this call finished first
    verify: Optional[dict[str, Any]] = None  # the merge gate's last verdict on this merge

    @property
    def exit_code(self) -> ExitCode:
        if self.result == "conflict":
            return ExitCode.MERGE_CONFLICT
        if self.result == "blocked":
            return ExitCode.MERGE_BLOCKED
        if self.result == "verify_failed":
            return ExitCode.VERIFY_FAILED
        return ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        return {
            "orch_dir": self.orch_dir,
            "stage": self.stage,
            "name": self.name,
            "result": self.result,
            "message": self.message,
            "merge_commit": self.merge_commit,
            "base_branch": self.base_branch,
            "branch": self.branch,
            "conflicts": self.conflicts,
            "merge_worktree": self.merge_worktree,
            "blocked_files": self.blocked_files,
            "launched": self.launched,
            "launch_failed": [{"stage": n, "error": e} for n, e in self.launch_failed],
            "run_complete": self.run_complete,
            "summary": self.summary,
            "warnings": self.warnings,
            "recovered": self.recovered or None,
            "verify": self.verify,
            "exit_code": int(self.exit_code),
        }

    def to_text(self) -> str:
        lines = [self.message]
        if self.result == "verify_failed" and self.verify:
            lines += gate.red_text(self)
        if self.result == "conflict":
            lines.append(f"Resolve in: {self.merge_worktree}")
            for c in self.conflicts:
                lines.append(f"  conflicted: {c['path']}")
                for t in c["touched_by"]:
                    lines.append(f"    touched by stage {t['stage']} ({t['name']})")
            lines.append(
                "Edit the files there, `git add` them, then run "
                f"`autorun merge {self.orch_dir} {self.stage} --continue` "
                f"(or --abort to drop the attempt)."
            )
            for c in self.conflicts:
                for t in c["touched_by"]:
                    if t.get("scope"):
                        lines += ["", f"--- scope of stage {t['stage']} ({t['name']}) ---"]
                        lines.append(t["scope"])
                        if t.get("plan_file"):
                            lines.append(f"(plan: {t['plan_file']})")
                break
        if self.launched:
            lines.append("Started: " + ", ".join(f"stage {n}" for n in self.launched))
        for n, err in self.launch_failed:
            lines.append(f"Stage {n} failed to launch (will be retried): {err}")
        for w in self.warnings:
            lines.append(f"warning: {w}")
        if self.summary:
            lines += ["", self.summary]
        return "\n".join(lines)


def merge_worktree_path(state: RunState, number: int) -> Path:
    return paths.layout().merge_worktree(Path(state.orch_dir).name, number)


def read_scope(context_file: str) -> str:
    """The Scope section of a stage context file."""
    try:
        text = Path(context_file).read_text(encoding="utf-8")
    except OSError:
        return ""
    m = re.search(r"^## Scope\n(.*?)^## Dependencies\n", text, flags=re.S | re.M)
    return m.group(1).strip() if m else ""


def _merge_message(state: RunState, stage: StageState) -> str:
    return (
        f"Merge stage {stage.number}: {stage.name}\n\n"
        f"autorun orchestration {state.plan_name} ({Path(state.orch_dir).name}), "
        f"branch {stage.branch}"
    )


def _touched_by(state: RunState, number: int, path: str) -> list[dict[str, Any]]:
    """The stages whose work touched ``path``: merged ones, and this one."""
    repo = Path(state.project_root)
    out = []
    for n in sorted(state.stages):
        st = state.stages[n]
        hit = False
        if n == number:
            hit = True
        elif st.status == COMPLETED and st.merge_commit:
            res = git.run_git(
                ["diff", "--name-only", f"{st.merge_commit}^1", st.merge_commit, "--", path],
                repo,
                check=False,
            )
            hit = res.ok and bool(res.stdout.strip())
        if hit:
            out.append(
                {
                    "stage": n,
                    "name": st.name,
                    "scope": read_scope(st.context_file),
                    "plan_file": st.plan_file,
                }
            )
    return out


def _wave_events(txn: Transaction, number: int, wave_before: int) -> None:
    state = txn.state
    for i, wave in enumerate(state.waves, start=1):
        if number in wave and all(state.stages.status_of(n) == COMPLETED for n in wave):
            txn.emit("wave_complete", wave=i, stages=list(wave))
    wave_after = state.lowest_open_wave()
    if wave_after != wave_before and not state.is_finished():
        txn.emit("wave_started", wave=wave_after, stages=list(state.waves[wave_after - 1]))


def _complete(
    orch_dir: Path,
    number: int,
    outcome: MergeOutcome,
    report: MergeReport,
    claude_shell: bool,
    config: Config,
    phase_open: bool = False,
) -> None:
    """Mark the stage merged, claim what became ready, launch it, clean up."""
    store = StatusStore(orch_dir)
    with store.transaction() as txn:
        state = txn.state
        st = state.stage(number)
        if st.status == COMPLETED:
            report.result, report.merge_commit = "already_merged", st.merge_commit
            report.message = f"stage {number} ({st.name}) is already merged ({st.merge_commit})"
            return
        wave_before = state.lowest_open_wave()
        if phase_open:  # no intent recorded the merge phase's start (already merged)
            update_phase(txn, number, "merge", "started")
        update_phase(txn, number, "merge", "completed")
        st.merge_commit = outcome.merge_commit
        st.merge_state = None
        st.merge_detail = {}
        st.merge_intent = None
        transition(txn, number, COMPLETED, merge_commit=outcome.merge_commit)
        _wave_events(txn, number, wave_before)
        upcoming = select_ready(state)  # what claim() below starts, for the event
        txn.emit(
            "merge_complete",
            stage=number,
            name=st.name,
            branch=st.branch,
            base_branch=state.base_branch,
            merge_commit=outcome.merge_commit,
            previous_tip=outcome.previous_tip,
            updated_checkouts=[str(p) for p in outcome.updated_checkouts],
            next=upcoming,
        )
        claimed = claim(txn, picked=upcoming)
        report.run_complete = finish_if_done(txn)
        repo = Path(state.project_root)
        worktree, branch = st.worktree, st.branch
        session = launchers.kill_target(state, st)  # whichever launcher runs it
        kill = bool(session) and not config.keep_sessions
        # `autorun merge` (or the chain) runs in the stage's worktree, and Claude
        # Code checks its shell's working directory after every command: removing it
        # now would make this successful merge a failed command. It goes once the
        # session is gone: swept by the run's next merge (autorun_py.cleanup), or,
        # after the last one (or for a session no tmux kill ends), by the killer.
        in_shell = bool(worktree) and claude_shell and _cwd_inside(Path(worktree or "."))
        deferred = in_shell and kill and not report.run_complete
        deferred = deferred and not str(session).startswith("bg:")
        if deferred:
            cleanup.mark(st, outcome.stage_tip)
    report.merge_commit = outcome.merge_commit
    if claimed:
        res = start_claimed(orch_dir, claimed, config=config)
        report.launched, report.launch_failed = res.launched, res.failed
    # Clean-up: last, and never fatal.
    known = outcome.worktrees
    swept_later = False  # the killer sweeps the run's marked stages (its last merge)
    if deferred and session:
        with contextlib.suppress(AutorunError, OSError):
            Tmux.from_env().kill_later(session, 2.0, session=True, owner=state.orch_dir)
        kill = False
        worktree = branch = None
    elif in_shell and worktree:
        swept_later = report.run_complete
        with contextlib.suppress(OSError):
            kill_later(
                session if kill and session else "-",
                2.0,
                session=True,
                owner=state.orch_dir,
                then_clean=(str(repo), worktree, branch or "", state.base_branch),
                merged_tip=outcome.stage_tip,
                sweep=report.run_complete,
            )
        kill = False
        worktree = branch = None
    # Stages merged earlier whose sessions are gone: their worktrees now; after the
    # run's last merge, those whose sessions are still ending by a killer.
    with contextlib.suppress(AutorunError, OSError):
        done = cleanup.sweep(orch_dir, state, skip=number, known=known)
        left = [st for st in cleanup.pending(state, skip=number) if st.number not in done]
        if left and report.run_complete and not swept_later:
            kill_later("-", 0.0, owner=state.orch_dir, sweep=True)
    # The worktrees as the merge listed them, and the stage tip it put on the base
    # (the branch goes only while it still points there): no second look needed.
    if worktree:
        warn = worktrees.try_remove(repo, Path(worktree), run=state.orch_dir, known=known)
        if warn:
            report.warnings.append(warn)
    if branch and not worktrees.try_delete_branch(
        repo,
        branch,
        run=state.orch_dir,
        merged_into=state.base_branch,
        merged_tip=outcome.stage_tip,
        known=known,
    ):
        report.warnings.append(f"branch {branch} kept (not fully merged into the base)")
    if kill and session:
        with contextlib.suppress(AutorunError, OSError):
            kill_later(session, 2.0, session=True, owner=state.orch_dir)
    if report.run_complete:
        from autorun_py.summary import final_summary  # the last merge only (issue 16: CPU)

        final = store.read()
        tip = ""
        with contextlib.suppress(AutorunError):
            tip = git.rev_parse(f"refs/heads/{final.base_branch}", repo)
        report.summary = final_summary(final, tip)


def _cwd_inside(worktree: Path) -> bool:
    """True when this process's working directory is in ``worktree``."""
    try:
        here = Path.cwd().resolve()
    except OSError:
        return False
    wt = worktree.resolve()
    return here == wt or wt in here.parents


def _append_conflicts_md(
    state: RunState, stage: StageState, outcome: MergeOutcome, summary: str
) -> None:
    """One section per merged resolution; written once even when a merge
    killed after writing it is finished by the next command."""
    path = Path(state.orch_dir) / "conflicts.md"
    new = not path.exists()
    line = f"Merged {stage.branch} into {state.base_branch} as {outcome.merge_commit}.\n"
    if not new:
        try:
            if line in path.read_text(encoding="utf-8"):
                return
        except OSError:
            pass
    with open(path, "a", encoding="utf-8") as fh:
        if new:
            fh.write(f"# Merge conflicts resolved in {state.plan_name}\n\n")
        fh.write(f"## Stage {stage.number}: {stage.name} — {utc_now()}\n\n{line}\n")
        fh.write(summary.strip() + "\n\n")


def _clear_intent(store: StatusStore, number: int) -> None:
    with store.transaction() as txn:
        txn.state.stage(number).merge_intent = None


def _finish_abort(store: StatusStore, repo: Path, mw: Path, number: int) -> None:
    gitmerge.abort_merge(repo, mw)
    with store.transaction() as txn:
        st = txn.state.stage(number)
        st.merge_state, st.merge_detail, st.merge_intent = None, {}, None
        txn.emit("merge_aborted", stage=number)


def merge(
    orch_dir: Path,
    number: int,
    *,
    action: str = "merge",
    lock_timeout: Optional[float] = None,
    progress: Optional[Callable[[str], None]] = None,
    claude_shell: bool = False,
    config: Config,
    seen_ahead: Optional[tuple[str, str, int]] = None,
) -> MergeReport:
    """Merge (or ``continue``/``abort`` a conflicted merge of) stage ``number``.

    ``claude_shell``: this runs from a Claude Code shell (``CLAUDECODE=1``, an inline
    ``!`` command or a Bash tool call; read at the CLI edge): when its working
    directory is in the stage's worktree, that worktree is removed once the session
    is gone, not at once. ``config``: the user's configuration as the CLI edge loaded
    it (``keep_sessions``; how the stages this merge makes ready are started).

    Under the repository's merge lock an interrupted merge of the stage (its
    ``merge_intent``: the process that recorded it is dead, as it no longer
    holds the lock) is finished or rolled back first
    (:func:`autorun_py.gitmerge.recover_merge`); ``action="recover"`` then
    completes what the interrupted command was doing, and does nothing when no
    merge was interrupted. Merge intent steps: ``conflict_setup``,
    ``resolved``, ``verifying`` (reserved for a merge gate between building the
    candidate and moving the base), ``advancing``, and ``aborting`` (recorded
    here before the merge worktree of ``--abort`` is removed).

    With a verify command in the run (:mod:`autorun_py.gate`), the base moves only
    to a candidate that passed it (through the merge queue,
    :mod:`autorun_py.merge_queue`); ``progress`` gets a line now and then while
    the gate runs or waits. ``seen_ahead``: (the stage's start, its branch's tip, the
    commits between them) as the caller just counted them (the chain's ``git
    log``): not counted again while the start and the tip are still those.
    """
    store = StatusStore(orch_dir)
    state = store.read(lazy=True)
    stage = state.stage(number)
    report = MergeReport(
        orch_dir=str(orch_dir),
        stage=number,
        name=stage.name,
        result="merged",
        message="",
        base_branch=state.base_branch,
        branch=stage.branch,
    )

    def already(st: StageState) -> MergeReport:
        report.result, report.merge_commit = "already_merged", st.merge_commit
        report.message = (
            f"stage {number} ({st.name}) is already merged into {state.base_branch} "
            f"({st.merge_commit}); nothing to do"
        )
        return report

    if stage.status == COMPLETED:
        return already(stage)
    if stage.status != IN_PROGRESS:
        raise AutorunError(
            f"stage {number} ({stage.name}) is {stage.status}; only a stage in progress is merged"
        )
    if not stage.branch:
        raise AutorunError(f"stage {number} has no branch recorded; was it ever started?")
    # Only the branch autorun created for the stage at its launch, never another.
    worktrees.require_own_branch(stage.branch, state.orch_dir)
    repo = Path(state.project_root)
    mw = merge_worktree_path(state, number)
    message = _merge_message(state, stage)
    spec = gate.spec_of(state)
    verify = gate.StageGate(orch_dir, number, spec, repo, progress) if spec.gated else None
    entry = None
    if spec.gated and action == "merge" and not mw.exists() and not stage.merge_intent:
        from autorun_py.merge_queue import Entry

        entry = Entry(
            orch_dir=str(orch_dir),
            stage=number,
            branch=stage.branch,
            base_branch=state.base_branch,
            command=spec.command or "",
            message=message,
        )
    with gate.merge_lock(repo, spec, progress, entry, lock_timeout=lock_timeout) as queued:
        if queued is not None:  # settled by the merge queue's leader
            return _queued(orch_dir, state, number, spec, queued, report, claude_shell, config)
        stage = store.read(lazy=True).stage(number)  # as it is now that no other merge runs
        if stage.status == COMPLETED:
            return already(stage)
        if stage.status != IN_PROGRESS and not stage.merge_intent:
            # `autorun cancel` (under this lock) got there while this merge waited.
            raise AutorunError(f"stage {number} ({stage.name}) is {stage.status}; it is not merged")
        assert stage.branch
        carried_summary = ""
        intent = stage.merge_intent
        if intent:
            report.recovered = str(intent.get("step") or "")
            carried_summary = str(intent.get("summary") or "")
            if action == "recover":
                action = str(intent.get("action") or "merge")
            if intent.get("step") == "aborting":
                _finish_abort(store, repo, mw, number)
                if action in ("abort", "continue"):
                    report.result = "aborted"
                    report.message = (
                        f"merge of stage {number} aborted; the base branch is unchanged"
                    )
                    return report
            else:
                recovered = gitmerge.recover_merge(
                    repo, state.base_branch, stage.branch, intent, merge_worktree=mw
                )
                if recovered is not None:
                    return _merged(
                        orch_dir,
                        state,
                        stage,
                        recovered,
                        report,
                        carried_summary,
                        claude_shell,
                        config,
                    )
                _clear_intent(store, number)
        elif action == "recover":
            report.result = "none"
            report.message = f"stage {number} has no interrupted merge"
            return report
        journal = intent_journal(store, number, action)
        phase_open: list[bool] = []  # the merge phase's start not yet recorded
        if action == "abort":
            journal({"step": "aborting"})
            _finish_abort(store, repo, mw, number)
            report.result = "aborted"
            report.message = f"merge of stage {number} aborted; the base branch is unchanged"
            return report
        if action == "continue":
            if not mw.exists():
                raise AutorunError(
                    f"stage {number} has no conflicted merge to continue "
                    f"(run `autorun merge {orch_dir} {number}`)"
                )
            outcome = gitmerge.continue_merge(
                repo,
                state.base_branch,
                stage.branch,
                merge_worktree=mw,
                message=message,
                journal=journal,
                verify=verify,
            )
        else:
            tips = None
            if not mw.exists():
                tips = gitmerge.read_tips(repo, state.base_branch, stage.branch)
                _refuse_unmergeable(repo, state, stage, tips.stage, seen_ahead)
            phase_open.append(True)

            def start_phase(txn: Transaction) -> None:
                update_phase(txn, number, "merge", "started")
                phase_open.clear()

            # The merge phase's start goes with the first intent (recorded before
            # any step that touches the base or a checkout), else with the outcome:
            # one status transaction fewer per merge (issue 16).
            journal = intent_journal(store, number, action, first=start_phase)
            outcome = gitmerge.merge_stage(
                repo,
                state.base_branch,
                stage.branch,
                message=message,
                merge_worktree=mw,
                journal=journal,
                verify=verify,
                tips=tips,
            )
        if outcome.kind is MergeKind.VERIFY_FAILED:
            assert verify is not None and verify.verdicts
            gate.red(orch_dir, number, verify.spec, verify.verdicts[-1], report)
            return report
        if outcome.kind in (MergeKind.MERGED, MergeKind.ALREADY_MERGED):
            return _merged(
                orch_dir,
                state,
                stage,
                outcome,
                report,
                carried_summary,
                claude_shell,
                config,
                phase_open=bool(phase_open),
            )
        if outcome.kind is MergeKind.CONFLICT:
            report.result = "conflict"
            report.merge_worktree = str(outcome.merge_worktree)
            report.conflicts = [
                {
                    "path": c.path,
                    "base_commits": c.base_commits,
                    "stage_commits": c.stage_commits,
                    "touched_by": _touched_by(state, number, c.path),
                }
                for c in outcome.conflicts
            ]
            report.message = (
                f"stage {number} ({stage.name}) conflicts with {state.base_branch} in "
                f"{len(outcome.conflicts)} file(s); the base branch is unchanged"
            )
            if stage.merge_state == "conflict":
                # The conflict already waiting, shown again (a second `autorun
                # merge`, the merge window after an in-place attempt): not a new one.
                report.message = (
                    f"stage {number} ({stage.name}) still conflicts with {state.base_branch}: "
                    f"{len(outcome.conflicts)} file(s) unresolved in its merge worktree; "
                    "the base branch is unchanged"
                )
                return report
            with store.transaction() as txn:
                if phase_open:
                    update_phase(txn, number, "merge", "started")
                st = txn.state.stage(number)
                st.merge_state = "conflict"
                st.merge_intent = None
                st.merge_detail = {
                    "merge_worktree": report.merge_worktree,
                    "files": [c.path for c in outcome.conflicts],
                }
                st.bump("conflicts")
                txn.emit(
                    "merge_conflict",
                    stage=number,
                    files=[c.path for c in outcome.conflicts],
                    merge_worktree=report.merge_worktree,
                )
            return report
        # BLOCKED by the user's uncommitted changes.
        report.result = "blocked"
        report.blocked_files = list(outcome.blocked_files)
        report.message = outcome.blocked_reason or (
            "merge blocked by your uncommitted changes in " + ", ".join(outcome.blocked_files)
        )
        report.message += (
            "; commit or stash them and the merge completes on the next "
            "`autorun merge`, `autorun resume` or monitor check"
        )
        with store.transaction() as txn:
            if phase_open:
                update_phase(txn, number, "merge", "started")
            st = txn.state.stage(number)
            first = st.merge_state != "blocked"
            st.merge_state = "blocked"
            st.merge_intent = None
            st.merge_detail = {
                "files": report.blocked_files,
                "checkout": str(outcome.blocked_checkout or ""),
                "reason": outcome.blocked_reason,
            }
            if first:
                txn.emit(
                    "merge_blocked",
                    stage=number,
                    files=report.blocked_files,
                    checkout=str(outcome.blocked_checkout or ""),
                )
        if first:
            _notify(f"autorun: stage {number} merge waits for your uncommitted changes")
        return report


def _merged(
    orch_dir: Path,
    state: RunState,
    stage: StageState,
    outcome: MergeOutcome,
    report: MergeReport,
    carried_summary: str,
    claude_shell: bool,
    config: Config,
    *,
    phase_open: bool = False,
) -> MergeReport:
    summary = outcome.resolution_summary or carried_summary
    if summary:
        _append_conflicts_md(state, stage, outcome, summary)
    _complete(orch_dir, stage.number, outcome, report, claude_shell, config, phase_open)
    if report.result == "merged":
        report.message = (
            f"stage {stage.number} ({stage.name}) merged into {state.base_branch} "
            f"as {(outcome.merge_commit or '')[:12]}"
        )
        if report.recovered:
            report.message += f" (finished an interrupted merge: {report.recovered})"
    return report


def _queued(
    orch_dir: Path,
    state: RunState,
    number: int,
    spec: gate.VerifySpec,
    result: dict[str, Any],
    report: MergeReport,
    claude_shell: bool,
    config: Config,
) -> MergeReport:
    """A merge the queue's leader settled: red (exit 5), or on the base already."""
    if result.get("kind") == "red":
        gate.red(orch_dir, number, spec, gate.Verdict.from_json(result["verdict"]), report)
        return report
    stage = StatusStore(orch_dir).read().stage(number)
    outcome = MergeOutcome(
        MergeKind.MERGED,
        state.base_branch,
        stage.branch or "",
        merge_commit=str(result["merge_commit"]),
        previous_tip=str(result.get("previous_tip") or ""),
    )
    with StatusStore(orch_dir).transaction() as txn:
        if txn.state.stage(number).status == IN_PROGRESS:
            update_phase(txn, number, "merge", "started")
    return _merged(orch_dir, state, stage, outcome, report, "", claude_shell, config)


def _refuse_unmergeable(
    repo: Path,
    state: RunState,
    stage: StageState,
    tip: Optional[str] = None,
    seen_ahead: Optional[tuple[str, str, int]] = None,
) -> None:
    assert stage.branch
    if stage.worktree and Path(stage.worktree).is_dir():
        dirty = gitmerge.worktree_dirty_files(Path(stage.worktree))
        if dirty:
            shown = ", ".join(dirty[:10]) + (" ..." if len(dirty) > 10 else "")
            raise AutorunError(
                f"stage {stage.number} has uncommitted changes in its worktree "
                f"{stage.worktree}: {shown}; commit them (or `autorun stage fail`) before merging"
            )
    start = stage.start_commit
    if not start:
        start = git.git_out(["merge-base", stage.branch, state.base_branch], repo)
    if seen_ahead is not None and seen_ahead[:2] == (stage.start_commit, tip):
        ahead = seen_ahead[2]  # counted from this start at this very tip
    else:
        ahead = gitmerge.stage_commits_ahead(repo, stage.branch, start, tip=tip)
    if ahead == 0:
        raise AutorunError(
            f"stage {stage.number} ({stage.name}) has no commits on {stage.branch} beyond "
            f"its start point {start[:12]}; commit the work, or report the stage failed "
            f"with `autorun stage fail {state.orch_dir} {stage.number} --reason ...`"
        )


def _notify(message: str) -> None:
    with contextlib.suppress(Exception):
        tmux = Tmux.from_env()
        if tmux.list_sessions():
            tmux.display_message(None, message)
