"""The git merge engine: merge a stage branch into the base branch without
using the user's checkout as the workspace.

* A clean merge is computed with ``git merge-tree --write-tree`` (no work tree at
  all) and recorded as one ``--no-ff`` merge commit per stage
  (``git commit-tree``).
* A conflicted merge is replayed in a dedicated, detached *merge worktree*
  (``git worktree add --detach`` + ``git merge --no-commit``) so the model has
  real conflict markers and ``git status``; the base branch does not move.
  :func:`continue_merge` commits the model's resolution, :func:`abort_merge`
  drops the attempt.
* The base branch moves in one compare-and-swap step
  (``git update-ref refs/heads/<base> <new> <old>``). Where it is checked out,
  git's own rule for a checked-out branch applies (as with
  ``receive.denyCurrentBranch=updateInstead``): the checkout moves to the new tip
  with ``git read-tree -m -u <old> <new>``, which carries the user's uncommitted
  changes over untouched; if those changes touch a file the merge brings in,
  nothing moves and the outcome is ``BLOCKED``. Untracked and ignored files are
  never overwritten or deleted: an untracked or ignored file (or symlink) where
  the merge needs a file or any parent directory of one (``local.conf`` for an
  added ``local.conf/a.txt``), or a directory the merge turns into a file that
  holds anything git does not track, is ``BLOCKED`` too, naming the path.
  A checkout on another branch is never touched; ``git checkout`` and
  ``git merge`` never run in the user's checkout.

Merge worktree states (``merge_worktree`` is chosen by the caller):

* absent: no attempt in progress;
* ``MERGE_HEAD`` present: a conflict waiting for the model (``--continue`` /
  ``--abort``);
* no ``MERGE_HEAD`` and ``HEAD`` a merge commit containing the stage tip: the
  resolution is committed but the base could not move yet (the user's
  uncommitted changes block it); the next :func:`merge_stage` or
  :func:`continue_merge` call finishes it.

Callers hold :func:`repo_merge_lock` around every call that changes state.

Crash safety: the merge intent. Every step that changes what the user or the
model can see is announced first through the caller's ``journal`` (merge.py
records it in the stage's ``merge_intent`` in ``status.json``, under the status
lock), so that after a SIGKILL anywhere :func:`recover_merge` (called under the
merge lock, so the recorded merge is certainly dead) finishes or rolls back
exactly what was started. The steps, in order:

* ``conflict_setup`` (``old``, and ``resolved``/``summary`` when an earlier
  resolution is being replayed onto a moved base): before the merge worktree
  is created or switched. Nobody was told of the conflict yet, so recovery
  removes a new merge worktree, or puts one holding a resolution back on it.
* ``resolved`` (``resolved``, ``head``, ``summary``): ``--continue`` committed
  the model's resolution as ``resolved``, before ``merge --quit`` and moving the
  merge worktree's HEAD to it. Recovery finishes those two steps; the
  resolution is never lost and never taken for a stage that "gained commits".
* ``verifying`` (reserved for the merge gate: ``old``, ``new``, the candidate):
  a candidate is being checked; nothing of the user's was touched, so recovery
  drops the step and the merge is simply done again.
* ``advancing`` (``old``, ``new``, ``checkouts``; ``resolved``/``summary`` when
  it finishes a resolution): every check passed, about to carry ``checkouts``
  from ``old`` to ``new`` (``read-tree -m -u``) and move the base
  (``update-ref`` CAS). Recovery: the base holds ``new`` → MERGED; the base is
  still at ``old`` and every checkout is at ``new`` → the base is moved
  (rolled forward); otherwise every checkout at ``new`` is carried back to
  ``old`` (rolled back) and the merge is done again. The user's index and files
  are therefore either as before or at the merged result; the base never moves
  backwards.

The caller clears the intent in the same transaction that records the outcome
(merged, conflict, blocked).

The package, one job per module (import from here): :mod:`.outcome` (what a
merge returns, the journal and gate types), :mod:`.lock` (the merge lock),
:mod:`.refs` (tips, ``merge-tree``/``commit-tree``, a work tree's status),
:mod:`.carry` (the carry-forward rules: what stops a checkout from moving),
:mod:`.advance` (carrying the checkouts and the compare-and-swap of the base),
:mod:`.conflict` (the merge worktree, ``--continue``/``--abort``),
:mod:`.summary` (the resolution summary for ``conflicts.md``), :mod:`.recover`
(finishing or rolling back an interrupted merge); :func:`merge_stage` is here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from autorun_py import git as g
from autorun_py import worktrees
from autorun_py.errors import AutorunError
from autorun_py.gitmerge.advance import _advance_base
from autorun_py.gitmerge.conflict import (
    _finish_resolved,
    _merge_worktree_state,
    _remove_worktree,
    _start_conflict,
    abort_merge,
    continue_merge,
    waiting_conflict,
)
from autorun_py.gitmerge.lock import MergeLock, repo_merge_lock
from autorun_py.gitmerge.outcome import (
    _MAX_ATTEMPTS,
    ConflictFile,
    Journal,
    MergeKind,
    MergeOutcome,
    Verify,
    _no_journal,
    _verify_failed,
)
from autorun_py.gitmerge.recover import recover_merge
from autorun_py.gitmerge.refs import (
    Tips,
    _branch_tip,
    _commit_tree,
    _merge_commit_of,
    _merge_tree,
    read_tips,
    stage_commits_ahead,
    worktree_dirty_files,
)
from autorun_py.gitmerge.summary import conflict_resolution_summary

__all__ = [
    "ConflictFile",
    "Journal",
    "MergeKind",
    "MergeLock",
    "MergeOutcome",
    "Tips",
    "Verify",
    "_advance_base",
    "_branch_tip",
    "_commit_tree",
    "_merge_tree",
    "abort_merge",
    "conflict_resolution_summary",
    "continue_merge",
    "merge_stage",
    "read_tips",
    "recover_merge",
    "repo_merge_lock",
    "stage_commits_ahead",
    "worktree_dirty_files",
]


def merge_stage(
    repo: Path,
    base_branch: str,
    stage_branch: str,
    *,
    message: str,
    merge_worktree: Path,
    journal: Journal | None = None,
    verify: Optional[Verify] = None,
    tips: Tips | None = None,
) -> MergeOutcome:
    """Merge ``stage_branch`` into ``base_branch`` (the caller holds the lock).

    MERGED / ALREADY_MERGED / BLOCKED leave no merge worktree behind; CONFLICT
    leaves the conflicted merge in ``merge_worktree``. An earlier attempt still
    waiting there is an error (``--continue`` or ``--abort`` it); one whose
    resolution is committed but was blocked is finished instead.

    With ``verify`` (the merge gate), the base moves only to a candidate that
    passed it, by the same compare-and-swap; if the base moved meanwhile the
    candidate is rebuilt on the new tip and verified again. A red candidate is
    VERIFY_FAILED and the base does not move.

    ``tips``: both tips as the caller read them under the lock (:func:`read_tips`).
    The repository's worktrees are listed once (:class:`worktrees.Listing`) and
    that listing serves the whole merge, the clean-up included.
    """
    repo = Path(repo)
    merge_worktree = Path(merge_worktree)
    # Both tips, read once: a missing branch is refused before anything is done.
    current: Tips | None = tips or read_tips(repo, base_branch, stage_branch)
    known = worktrees.listing(repo)
    state = _merge_worktree_state(repo, merge_worktree, known)
    if state == "conflict":  # an earlier attempt waits for its resolution: shown again
        return waiting_conflict(repo, base_branch, stage_branch, merge_worktree)
    journal = journal or _no_journal
    if state == "resolved":
        return _finish_resolved(
            repo, base_branch, stage_branch, merge_worktree, message, "", journal, verify
        )
    if state == "stale":
        _remove_worktree(repo, merge_worktree, known)

    for _ in range(_MAX_ATTEMPTS):
        if current is None:  # the base moved meanwhile: read both again, and the worktrees
            current = read_tips(repo, base_branch, stage_branch)
            known = worktrees.listing(repo)
        base_tip, stage_tip = current.base, current.stage
        tree, conflicted = _merge_tree(repo, base_tip, stage_tip)
        # A stage tip the base already holds merges to the base's own tree; only
        # then is the ancestry asked (a tree that differs rules it out).
        if tree == current.base_tree and g.is_ancestor(stage_tip, base_tip, repo):
            return MergeOutcome(
                MergeKind.ALREADY_MERGED,
                base_branch,
                stage_branch,
                merge_commit=_merge_commit_of(repo, stage_tip, base_tip),
                previous_tip=base_tip,
                stage_tip=stage_tip,
                worktrees=known,
            )
        current = None
        if conflicted:
            return _start_conflict(
                repo,
                base_branch,
                stage_branch,
                base_tip,
                stage_tip,
                merge_worktree,
                message,
                journal,
                verify,
            )
        new = _commit_tree(repo, tree, [base_tip, stage_tip], message)
        if verify is not None:
            journal({"step": "verifying", "candidate": new, "old": base_tip})
            if not verify(new, base_tip):
                return _verify_failed(base_branch, stage_branch, base_tip, new)
            known = worktrees.listing(repo)  # the verify took a while: read them again
        outcome = _advance_base(
            repo,
            base_branch,
            stage_branch,
            base_tip,
            new,
            message,
            journal=journal,
            known=known,
        )
        if outcome is not None:
            import dataclasses

            return dataclasses.replace(outcome, stage_tip=stage_tip, worktrees=known)
    raise AutorunError(
        f"{base_branch} kept moving while merging {stage_branch} ({_MAX_ATTEMPTS} attempts); "
        "try again"
    )
