"""Moving the base: the ``advancing`` intent, ``read-tree -m -u`` of every
checkout of the base, and the compare-and-swap ``update-ref``; rolled back when
anything fails (see :mod:`autorun_py.gitmerge` for the guarantees)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autorun_py import git as g
from autorun_py import worktrees
from autorun_py.errors import GitError
from autorun_py.gitmerge.carry import (
    _being_rebased,
    _changed_paths,
    _in_the_way,
    _operation_in_progress,
    _overlapping,
    _paths_in_git_error,
)
from autorun_py.gitmerge.outcome import (
    Journal,
    MergeKind,
    MergeOutcome,
    _no_journal,
)
from autorun_py.gitmerge.refs import (
    _branch_tip,
    _list,
    _worktree_status,
)


def _advance_base(
    repo: Path,
    base_branch: str,
    stage_branch: str,
    old: str,
    new: str,
    message: str,
    *,
    journal: Journal | None = None,
    extra: dict[str, Any] | None = None,
    known: worktrees.Listing | None = None,
) -> MergeOutcome | None:
    """Move the base from ``old`` to ``new`` (CAS), carrying checked-out work
    trees along. MERGED, BLOCKED, or None when the base moved meanwhile.

    ``known``: the worktrees as listed after ``old`` was read (listed now when
    None); a checkout whose HEAD there is not ``old`` means the base moved.
    The ``advancing`` intent is recorded after every check and before the
    first checkout or ref changes (see :func:`recover_merge`)."""
    blocked = None
    checkouts: list[Path] = []
    known = known or worktrees.listing(repo)
    rebasing = _being_rebased(repo, known, base_branch)
    if rebasing is not None:
        where, what = rebasing
        return MergeOutcome(
            MergeKind.BLOCKED,
            base_branch,
            stage_branch,
            previous_tip=old,
            blocked_checkout=where,
            blocked_reason=f"{base_branch} is being {what} in {where}",
        )
    for wt in known.entries:
        if wt.branch != base_branch or wt.prunable or not wt.path.exists():
            continue
        if wt.head != old:
            return None  # somebody committed in between: start over
        checkouts.append(wt.path)

    incoming, added, deleted = _changed_paths(repo, old, new) if checkouts else ([], [], [])
    for ck in checkouts:
        # `git status` refreshes the index's stat data (and writes it) first, as
        # `update-index --refresh` would, so `read-tree -m -u` below sees clean
        # files as clean.
        dirty, unmerged = _worktree_status(ck)
        if unmerged:
            blocked = (ck, tuple(unmerged), "an unfinished merge")
            break
        operation = _operation_in_progress(ck)
        if operation is not None:
            blocked = (ck, (), f"an unfinished {operation}")
            break
        hit = _overlapping(dirty, incoming)
        # untracked or ignored files (or directories holding them) where the
        # merge puts a file or a directory: git would overwrite or delete them
        in_way = [p for p in _in_the_way(ck, added, deleted) if p not in hit]
        if hit or in_way:
            if not in_way:
                cause = "your uncommitted changes"
            elif not hit:
                cause = "untracked or ignored files in the way"
            else:
                cause = "your uncommitted changes and untracked or ignored files in the way"
            blocked = (ck, tuple(sorted({*hit, *in_way})), cause)
            break
    if blocked is not None:
        return _blocked(base_branch, stage_branch, old, *blocked)

    (journal or _no_journal)(
        {
            **(extra or {}),
            "step": "advancing",
            "base_branch": base_branch,
            "old": old,
            "new": new,
            "checkouts": [str(ck) for ck in checkouts],
        }
    )
    moved: list[Path] = []

    def rollback() -> None:
        for ck in reversed(moved):
            g.run_git(["read-tree", "-m", "-u", new, old], ck, check=False)

    for ck in checkouts:
        res = g.run_git(["read-tree", "-m", "-u", old, new], ck, check=False)
        if not res.ok:
            rollback()
            files = _paths_in_git_error(res.stderr)
            if files:
                reason = "your uncommitted changes"
            else:
                detail = res.stderr.strip().splitlines()
                reason = f"git read-tree: {detail[-1] if detail else 'failed'}"
            return _blocked(base_branch, stage_branch, old, ck, files, reason)
        moved.append(ck)

    reflog = "autorun: " + message.strip().splitlines()[0] if message.strip() else "autorun merge"
    res = g.run_git(
        ["update-ref", "-m", reflog, f"refs/heads/{base_branch}", new, old], repo, check=False
    )
    if not res.ok:
        rollback()
        if _branch_tip(repo, base_branch) != old:
            return None
        raise GitError(list(res.argv), res.returncode, res.stderr)
    return MergeOutcome(
        MergeKind.MERGED,
        base_branch,
        stage_branch,
        merge_commit=new,
        previous_tip=old,
        updated_checkouts=tuple(moved),
    )


def _blocked(
    base_branch: str,
    stage_branch: str,
    old: str,
    checkout: Path,
    files: tuple[str, ...],
    cause: str,
) -> MergeOutcome:
    where = f" in {_list(files)}" if files else ""
    return MergeOutcome(
        MergeKind.BLOCKED,
        base_branch,
        stage_branch,
        previous_tip=old,
        blocked_files=files,
        blocked_checkout=checkout,
        blocked_reason=f"merge blocked by {cause}{where} (checkout {checkout})",
    )
