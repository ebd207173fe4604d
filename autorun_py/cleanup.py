"""Deferred clean-up of a merged stage's worktree and branch (issue 16).

A merge run from Claude Code's shell inside the stage's own worktree (its chain,
or ``/autorun:merge``) cannot remove that worktree at once: Claude Code checks
its shell's working directory after every command, and a successful merge would
become a failed command. The stage's session is then ended by the tmux server
~2 s later (no process waits for it), and the stage is marked in the same status
transaction that completes it: ``cleanup_tip`` (the stage tip its merge put on
the base) in the stage's ``status.json`` entry. The run's next merge removes
the worktrees and branches of marked stages whose sessions are gone, through
:mod:`autorun_py.worktrees` (only what autorun created for the run; the branch
only while it still points at that tip), and unmarks them. The run's last merge
leaves that to one detached killer (:mod:`autorun_py.killer` ``--sweep``), which
waits for the sessions to end. Before, each such merge started a killer process
of its own.

Killed at any point, nothing is lost: a mark without its removal is swept by the
next merge or the killer; a removal without its unmarking is idempotent.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from autorun_py import worktrees
from autorun_py.state import COMPLETED, RunState, StageState, StatusStore

CLEANUP_KEY = "cleanup_tip"


def mark(stage: StageState, merged_tip: Optional[str]) -> None:
    """Leave ``stage``'s worktree and branch to a later sweep (in the transaction
    that completes it)."""
    stage.extra[CLEANUP_KEY] = merged_tip or ""


def pending(state: RunState, *, skip: Optional[int] = None) -> list[StageState]:
    """The merged stages whose worktree or branch still waits for its removal. A
    stage never looked up since the state was read is not converted to see that
    (its text says; every merge asks, at any number of stages)."""
    stages = state.stages
    out = []
    for n in stages:
        if n == skip or stages.status_of(n) != COMPLETED:
            continue
        text = stages.text_of(n)
        if text is not None and f'"{CLEANUP_KEY}"' not in text:
            continue
        st = stages[n]
        if CLEANUP_KEY in st.extra:
            out.append(st)
    return out


def sweep(
    orch_dir: Path,
    state: RunState,
    *,
    skip: Optional[int] = None,
    known: Optional[worktrees.Listing] = None,
) -> list[int]:
    """Remove the worktrees and branches of the marked stages whose sessions are
    gone (one tmux call for all of them); unmark them. ``skip``: a stage of this
    very call (its own shell is still in its worktree). Returns the stages done."""
    todo = pending(state, skip=skip)
    if not todo:
        return []
    from autorun_py.tmux import Tmux

    alive = set(Tmux.from_env().list_sessions())
    repo = Path(state.project_root)
    done: list[int] = []
    for st in todo:
        if st.session and st.session in alive:
            continue  # its shell may still be in the worktree: a later sweep
        if st.worktree:
            worktrees.try_remove(repo, Path(st.worktree), run=state.orch_dir, known=known)
            if Path(st.worktree).exists():
                continue
        if st.branch:
            worktrees.try_delete_branch(
                repo,
                st.branch,
                run=state.orch_dir,
                merged_into=state.base_branch,
                merged_tip=str(st.extra.get(CLEANUP_KEY) or "") or None,
                known=known,
            )
        done.append(st.number)
    if done:
        with StatusStore(orch_dir).transaction() as txn:
            for n in done:
                txn.state.stage(n).extra.pop(CLEANUP_KEY, None)
    return done


def sweep_until_done(orch_dir: Path, timeout: float = 15.0) -> None:
    """The run's last sweep: until every marked stage is done (their sessions end
    ~2 s after their merges) or ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        state = StatusStore(orch_dir).read()
        if not pending(state):
            return
        sweep(orch_dir, state)
        if time.monotonic() > deadline:
            return
        time.sleep(0.5)
