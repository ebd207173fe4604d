"""Recovery of an interrupted merge from its recorded intent (see
:mod:`autorun_py.gitmerge`): finish it or roll it back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from autorun_py import git as g
from autorun_py.errors import AutorunError
from autorun_py.gitmerge.conflict import (
    _registered_worktree,
    _settle_resolution,
    abort_merge,
)
from autorun_py.gitmerge.outcome import (
    _NO_HOOKS,
    MergeKind,
    MergeOutcome,
)
from autorun_py.gitmerge.refs import (
    _branch_tip,
    _nul_list,
)


def recover_merge(
    repo: Path,
    base_branch: str,
    stage_branch: str,
    intent: dict[str, Any],
    *,
    merge_worktree: Path,
) -> MergeOutcome | None:
    """Finish or roll back the interrupted merge ``intent`` describes.

    MERGED when the merge is (now) on the base; None when nothing of it is
    left in a checkout or ref (the caller merges again, continuing from a
    committed resolution where there is one). Raises AutorunError, changing
    nothing, when the user changed things since in a way that makes neither
    safe (the message names the checkout).
    """
    repo = Path(repo)
    mw = Path(merge_worktree)
    step = intent.get("step")
    if step == "advancing":
        return _recover_advancing(repo, base_branch, stage_branch, intent)
    if step == "resolved":
        resolved, head = str(intent.get("resolved", "")), str(intent.get("head", ""))
        if resolved and _registered_worktree(repo, mw) is not None and mw.exists():
            _settle_resolution(mw, resolved, head)
        return None
    if step == "conflict_setup":
        resolved = str(intent.get("resolved") or "")
        if _registered_worktree(repo, mw) is None:
            g.run_git(["worktree", "prune"], repo, check=False)
        elif resolved and mw.exists():
            # back to the committed resolution the replay started from
            if g.run_git(["rev-parse", "--verify", "--quiet", "MERGE_HEAD"], mw, check=False).ok:
                g.run_git(["merge", "--abort"], mw, check=False)
            g.run_git([*_NO_HOOKS, "reset", "-q", "--hard", resolved], mw)
        else:
            abort_merge(repo, mw)
        return None
    return None  # verifying, or a step this version does not know: nothing was touched


def _checkout_side(ck: Path, old: str, new: str, incoming: set[str]) -> str:
    """'old' / 'new': the checkout's index holds ``old``'s or ``new``'s entries
    for every path the merge changes (the user's own changes never overlap them:
    that was checked before); 'mixed' otherwise."""
    if not incoming:
        return "new"
    for side, commit in (("new", new), ("old", old)):
        out = g.run_git(["diff-index", "--cached", "--name-only", "-z", commit], ck).stdout
        if not incoming.intersection(_nul_list(out)):
            return side
    return "mixed"


def _recover_advancing(
    repo: Path, base_branch: str, stage_branch: str, intent: dict[str, Any]
) -> MergeOutcome | None:
    old, new = str(intent["old"]), str(intent["new"])
    checkouts = [Path(str(p)) for p in intent.get("checkouts") or []]
    tip = _branch_tip(repo, base_branch)
    if g.is_ancestor(new, tip, repo):
        return MergeOutcome(
            MergeKind.MERGED,
            base_branch,
            stage_branch,
            merge_commit=new,
            previous_tip=old,
            updated_checkouts=tuple(checkouts),
        )
    incoming = set(
        _nul_list(g.git_out(["diff", "--name-only", "-z", "--no-renames", old, new], repo))
    )
    present = [ck for ck in checkouts if ck.exists()]
    sides = {ck: _checkout_side(ck, old, new, incoming) for ck in present}
    now_checked_out = {
        os.path.realpath(wt.path)
        for wt in g.list_worktrees(repo)
        if wt.branch == base_branch and not wt.prunable and wt.path.exists()
    }
    if (
        tip == old
        and present
        and all(side == "new" for side in sides.values())
        and now_checked_out == {os.path.realpath(ck) for ck in present}
    ):
        # killed between carrying the checkouts and moving the base: finish
        reflog = "autorun: finish an interrupted merge"
        res = g.run_git(
            ["update-ref", "-m", reflog, f"refs/heads/{base_branch}", new, old], repo, check=False
        )
        if res.ok:
            return MergeOutcome(
                MergeKind.MERGED,
                base_branch,
                stage_branch,
                merge_commit=new,
                previous_tip=old,
                updated_checkouts=tuple(present),
            )
    for ck, side in sides.items():
        if side == "old":
            continue
        head = g.run_git(["rev-parse", "--verify", "HEAD"], ck, check=False).stdout.strip()
        if side == "mixed" or head != old:
            raise AutorunError(
                f"an interrupted merge of {stage_branch} left {ck} part-way between "
                f"{old[:12]} and {new[:12]}, and it changed since; autorun leaves it alone: "
                f"check `git status` there (`git read-tree -m -u {new[:12]} {old[:12]}` "
                "puts the files the merge changed back)"
            )
        res = g.run_git(["read-tree", "-m", "-u", new, old], ck, check=False)
        if not res.ok:
            detail = res.stderr.strip().splitlines()
            raise AutorunError(
                f"cannot roll back the interrupted merge of {stage_branch} in {ck}: "
                f"{detail[-1] if detail else 'git read-tree failed'}"
            )
    return None
