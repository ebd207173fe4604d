"""Conflicts: the detached merge worktree where the model resolves them, its
states (absent, conflict, resolved, stale), ``--continue`` and ``--abort``, and
putting a committed resolution on the base."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from autorun_py import git as g
from autorun_py import worktrees
from autorun_py.errors import AutorunError, GitError
from autorun_py.gitmerge.advance import (
    _advance_base,
)
from autorun_py.gitmerge.outcome import (
    _MAX_ATTEMPTS,
    _MERGE_CONFIG,
    _NO_HOOKS,
    ConflictFile,
    Journal,
    MergeKind,
    MergeOutcome,
    Verify,
    _no_journal,
    _verify_failed,
    _with_summary,
)
from autorun_py.gitmerge.refs import (
    _branch_tip,
    _commit_tree,
    _commits_touching,
    _list,
    _merge_commit_of,
    _merge_tree,
    _nul_list,
    _require_branch,
    _unmerged_files,
)
from autorun_py.gitmerge.summary import (
    _index_has_markers,
    conflict_resolution_summary,
)


def _same_path(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _registered_worktree(
    repo: Path, path: Path, known: worktrees.Listing | None = None
) -> g.Worktree | None:
    known = known or worktrees.listing(repo)
    wt, _ = known.find(Path(os.path.realpath(path)))
    if wt is not None:
        return wt
    for wt in known.entries:  # the same directory by another path (a bind mount)
        if wt.path.name == Path(path).name and _same_path(wt.path, Path(path)):
            return wt
    return None


def _merge_worktree_state(repo: Path, mw: Path, known: worktrees.Listing | None = None) -> str:
    """absent | conflict | resolved | stale (ours, no merge in progress)."""
    known = known or worktrees.listing(repo)
    wt = _registered_worktree(repo, mw, known)
    if wt is None:
        if mw.exists() and any(mw.iterdir()):
            raise AutorunError(f"{mw} exists and is not a merge worktree of {repo}; remove it")
        return "absent"
    if known.entries and _same_path(wt.path, known.entries[0].path):
        raise AutorunError(f"{mw} is the repository's main work tree, not a merge worktree")
    if not mw.exists():
        return "stale"
    if wt.branch is not None:
        raise AutorunError(
            f"{mw} has branch {wt.branch} checked out; it is not an autorun merge worktree"
        )
    if g.run_git(["rev-parse", "--verify", "--quiet", "MERGE_HEAD"], mw, check=False).ok:
        return "conflict"
    parents = g.run_git(["rev-parse", "--verify", "--quiet", "HEAD^2"], mw, check=False)
    return "resolved" if parents.ok else "stale"


def _remove_worktree(repo: Path, path: Path, known: worktrees.Listing | None = None) -> None:
    """Remove a merge worktree (also when locked) through the one owner of
    worktrees, which refuses anything autorun did not create."""
    worktrees.remove(repo, path, known=known)


def continue_merge(
    repo: Path,
    base_branch: str,
    stage_branch: str,
    *,
    merge_worktree: Path,
    message: str,
    journal: Journal | None = None,
    verify: Optional[Verify] = None,
) -> MergeOutcome:
    """Commit the model's resolution in ``merge_worktree`` and move the base.

    Refused while files are unmerged, still carry conflict markers, or have
    unstaged changes. If the base moved meanwhile, the resolved commit is merged
    onto the new tip (CONFLICT again if that conflicts). The merge worktree is
    removed once the base holds the merge; on BLOCKED it keeps the committed
    resolution for the next attempt.
    """
    repo = Path(repo)
    merge_worktree = Path(merge_worktree)
    _require_branch(repo, base_branch, "base")
    _require_branch(repo, stage_branch, "stage")
    state = _merge_worktree_state(repo, merge_worktree)
    journal = journal or _no_journal
    if state == "resolved":
        return _finish_resolved(
            repo, base_branch, stage_branch, merge_worktree, message, "", journal, verify
        )
    if state != "conflict":
        raise AutorunError(
            f"no conflicted merge of {stage_branch} is waiting in {merge_worktree} "
            "(run the merge again)"
        )
    mw = merge_worktree
    head = g.git_out(["rev-parse", "--verify", "HEAD"], mw)
    merge_head = g.git_out(["rev-parse", "--verify", "MERGE_HEAD"], mw)

    if not g.is_ancestor(_branch_tip(repo, stage_branch), merge_head, repo):
        raise AutorunError(
            f"{stage_branch} gained commits after the conflict was set up in {mw}: "
            "drop the attempt with --abort and merge again"
        )
    unmerged = _unmerged_files(mw)
    if unmerged:
        raise AutorunError(
            f"still unmerged in {mw}: {_list(unmerged)} (resolve them and `git add` them)"
        )
    _, conflicted = _merge_tree(repo, head, merge_head)
    marked = [p for p in conflicted if _index_has_markers(mw, p)]
    if marked:
        raise AutorunError(f"conflict markers left in {mw}: {_list(marked)}")
    unstaged = _nul_list(g.run_git(["diff", "--name-only", "-z"], mw).stdout)
    if unstaged:
        raise AutorunError(
            f"unstaged changes in {mw}: {_list(unstaged)} (`git add` them, or restore them)"
        )
    summary = conflict_resolution_summary(mw, conflicted)
    tree = g.git_out(["write-tree"], mw)
    resolved = _commit_tree(repo, tree, [head, merge_head], message)
    # The intent names the resolution before the worktree is switched to it
    # (``merge --quit`` drops MERGE_HEAD): a kill in between loses nothing.
    journal({"step": "resolved", "resolved": resolved, "head": head, "summary": summary})
    _settle_resolution(mw, resolved, head)
    return _finish_resolved(repo, base_branch, stage_branch, mw, message, summary, journal, verify)


def _settle_resolution(mw: Path, resolved: str, head: str) -> None:
    """Make the merge worktree hold the committed resolution: no MERGE_HEAD,
    HEAD at ``resolved`` (its index already is ``resolved``'s tree)."""
    current = g.git_out(["rev-parse", "--verify", "HEAD"], mw)
    if current == resolved:
        if g.run_git(["rev-parse", "--verify", "--quiet", "MERGE_HEAD"], mw, check=False).ok:
            g.run_git(["merge", "--quit"], mw)
        return
    if g.run_git(["rev-parse", "--verify", "--quiet", "MERGE_HEAD"], mw, check=False).ok:
        g.run_git(["merge", "--quit"], mw)
    g.run_git(["update-ref", "--no-deref", "HEAD", resolved, current], mw)


def abort_merge(repo: Path, merge_worktree: Path) -> None:
    """Drop a conflicted (or blocked) attempt: remove its merge worktree."""
    merge_worktree = Path(merge_worktree)
    if _registered_worktree(repo, merge_worktree) is None:
        if merge_worktree.exists():
            raise AutorunError(
                f"{merge_worktree} is not a merge worktree of {repo}; not removing it"
            )
        g.run_git(["worktree", "prune"], repo, check=False)
        return
    _merge_worktree_state(repo, merge_worktree)  # refuses anything but a merge worktree
    _remove_worktree(repo, merge_worktree)


def _start_conflict(
    repo: Path,
    base_branch: str,
    stage_branch: str,
    base_tip: str,
    theirs: str,
    mw: Path,
    message: str,
    journal: Journal,
    verify: Optional[Verify] = None,
) -> MergeOutcome:
    """Replay the conflicted merge in a fresh merge worktree at ``base_tip``."""
    journal({"step": "conflict_setup", "base_branch": base_branch, "old": base_tip})
    worktrees.create_detached(repo, mw, base_tip)
    return _conflict_in(
        repo, base_branch, stage_branch, base_tip, theirs, mw, message, journal, verify
    )


def _conflict_in(
    repo: Path,
    base_branch: str,
    stage_branch: str,
    base_tip: str,
    theirs: str,
    mw: Path,
    message: str,
    journal: Journal,
    verify: Optional[Verify] = None,
) -> MergeOutcome:
    res = g.run_git(
        [*_MERGE_CONFIG, "merge", "--no-ff", "--no-commit", "-m", message, theirs], mw, check=False
    )
    files = _unmerged_files(mw)
    if not files:
        if (
            not res.ok
            and not g.run_git(
                ["rev-parse", "--verify", "--quiet", "MERGE_HEAD"], mw, check=False
            ).ok
        ):
            _remove_worktree(repo, mw)
            raise GitError(list(res.argv), res.returncode, res.stderr)
        # merge-tree saw a conflict that `git merge` resolved on its own:
        # commit it like a resolution.
        return continue_merge(
            repo,
            base_branch,
            stage_branch,
            merge_worktree=mw,
            message=message,
            journal=journal,
            verify=verify,
        )
    return _conflict_outcome(repo, base_branch, stage_branch, base_tip, theirs, mw, files)


def _conflict_outcome(
    repo: Path,
    base_branch: str,
    stage_branch: str,
    base_tip: str,
    theirs: str,
    mw: Path,
    files: list[str],
) -> MergeOutcome:
    """The CONFLICT outcome of ``files`` in the merge of ``theirs`` onto ``base_tip``:
    for each, the commits on both sides since their merge base that touched it."""
    mb_res = g.run_git(["merge-base", base_tip, theirs], repo, check=False)
    mb = mb_res.stdout.strip()
    conflicts = tuple(
        ConflictFile(
            path=p,
            base_commits=_commits_touching(repo, mb, base_tip, p) if mb else [],
            stage_commits=_commits_touching(repo, mb, theirs, p) if mb else [],
        )
        for p in files
    )
    return MergeOutcome(
        MergeKind.CONFLICT,
        base_branch,
        stage_branch,
        previous_tip=base_tip,
        conflicts=conflicts,
        merge_worktree=mw,
    )


def waiting_conflict(repo: Path, base_branch: str, stage_branch: str, mw: Path) -> MergeOutcome:
    """The conflicted merge already waiting in ``mw`` (its state ``conflict``), shown
    again: the files still unmerged there, and the commits on each side that touched
    them. Nothing is changed (a second ``autorun merge`` re-shows the conflict)."""
    heads = g.git_out(["rev-parse", "HEAD", "MERGE_HEAD"], mw).split()
    if len(heads) != 2:
        raise AutorunError(f"cannot read the merge waiting in {mw}")
    base_tip, theirs = heads
    files = _unmerged_files(mw)
    return _conflict_outcome(repo, base_branch, stage_branch, base_tip, theirs, mw, files)


def _finish_resolved(
    repo: Path,
    base_branch: str,
    stage_branch: str,
    mw: Path,
    message: str,
    summary: str,
    journal: Journal,
    verify: Optional[Verify] = None,
) -> MergeOutcome:
    """The merge worktree's HEAD is a committed resolution: put it on the base
    (through the gate; a red resolution is dropped with its merge worktree, so
    the stage fixes its branch and merges again)."""
    resolved = g.git_out(["rev-parse", "--verify", "HEAD"], mw)
    stage_tip = _branch_tip(repo, stage_branch)
    if not g.is_ancestor(stage_tip, resolved, repo):
        raise AutorunError(
            f"{stage_branch} gained commits after its conflict was resolved in {mw}: "
            "drop the attempt with --abort and merge again"
        )
    first_parent = g.git_out(["rev-parse", "--verify", f"{resolved}^1"], mw)
    second_parent = g.git_out(["rev-parse", "--verify", f"{resolved}^2"], mw)
    for _ in range(_MAX_ATTEMPTS):
        base_tip = _branch_tip(repo, base_branch)
        if g.is_ancestor(resolved, base_tip, repo):
            _remove_worktree(repo, mw)
            return MergeOutcome(
                MergeKind.ALREADY_MERGED,
                base_branch,
                stage_branch,
                merge_commit=_merge_commit_of(repo, stage_tip, base_tip),
                previous_tip=base_tip,
                resolution_summary=summary,
            )
        if base_tip == first_parent:
            new = resolved
        else:
            # The base moved since the conflict: merge the resolution onto it.
            tree, conflicted = _merge_tree(repo, base_tip, resolved)
            if conflicted:
                journal(
                    {
                        "step": "conflict_setup",
                        "base_branch": base_branch,
                        "old": base_tip,
                        "resolved": resolved,
                        "summary": summary,
                    }
                )
                g.run_git([*_NO_HOOKS, "checkout", "-q", "--detach", base_tip], mw)
                out = _conflict_in(
                    repo,
                    base_branch,
                    stage_branch,
                    base_tip,
                    resolved,
                    mw,
                    message,
                    journal,
                    verify,
                )
                return _with_summary(out, summary)
            new = _commit_tree(repo, tree, [base_tip, second_parent], message)
        if verify is not None:
            journal({"step": "verifying", "candidate": new, "old": base_tip})
            if not verify(new, base_tip):
                _remove_worktree(repo, mw)
                return _with_summary(
                    _verify_failed(base_branch, stage_branch, base_tip, new), summary
                )
        outcome = _advance_base(
            repo,
            base_branch,
            stage_branch,
            base_tip,
            new,
            message,
            journal=journal,
            extra={"resolved": resolved, "summary": summary},
        )
        if outcome is None:
            continue
        if outcome.kind is MergeKind.MERGED:
            _remove_worktree(repo, mw)
        return _with_summary(outcome, summary)
    raise AutorunError(
        f"{base_branch} kept moving while merging {stage_branch} ({_MAX_ATTEMPTS} attempts); "
        "try again"
    )
