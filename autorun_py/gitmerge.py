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
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from autorun_py import git as g
from autorun_py import worktrees
from autorun_py.errors import AutorunError, ExitCode, GitError
from autorun_py.paths import layout

# Our own git operations in the merge worktree never run the user's hooks (a
# post-checkout hook that installs dependencies would run on every merge).
_NO_HOOKS = ["-c", "core.hooksPath=/dev/null"]
# Conflict markers with the merge base section help the model resolve.
_MERGE_CONFIG = [*_NO_HOOKS, "-c", "merge.conflictStyle=diff3", "-c", "rerere.enabled=false"]
_MAX_ATTEMPTS = 5

# Records a merge's intent before it acts (see the module doc); merge.py writes
# it into status.json.
Journal = Callable[[dict[str, Any]], None]


def _no_journal(intent: dict[str, Any]) -> None:
    return None


_DIFF_LINES = 40  # per side in a resolution summary


class MergeKind(str, enum.Enum):
    MERGED = "merged"
    ALREADY_MERGED = "already_merged"
    CONFLICT = "conflict"
    BLOCKED = "blocked"
    VERIFY_FAILED = "verify_failed"  # the candidate failed the merge gate; the base did not move


# The merge gate (autorun_py/gate.py): called with the exact candidate commit and
# the base tip it was built on; True lets the base move to that commit.
Verify = Callable[[str, str], bool]


@dataclass(frozen=True)
class ConflictFile:
    path: str
    # "sha subject" of the commits on each side since the merge base that touched the file
    base_commits: list[str] = field(default_factory=list)
    stage_commits: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MergeOutcome:
    kind: MergeKind
    base_branch: str
    stage_branch: str
    merge_commit: str | None = None  # new base tip (MERGED / ALREADY_MERGED)
    previous_tip: str | None = None
    conflicts: tuple[ConflictFile, ...] = ()  # CONFLICT
    merge_worktree: Path | None = None  # CONFLICT: where the model resolves
    blocked_files: tuple[str, ...] = ()  # BLOCKED: the user's dirty files the merge would change
    blocked_checkout: Path | None = None
    updated_checkouts: tuple[Path, ...] = ()  # work trees that moved to the new tip
    blocked_reason: str = ""  # BLOCKED: one line for people
    resolution_summary: str = ""  # continue_merge: Markdown for conflicts.md
    candidate: str | None = None  # VERIFY_FAILED: the commit that failed
    # MERGED / ALREADY_MERGED: the stage tip the base now holds (the branch may be
    # deleted while it still points there) and the worktrees as this merge read them
    stage_tip: str | None = None
    worktrees: worktrees.Listing | None = field(default=None, compare=False, repr=False)

    @property
    def exit_code(self) -> ExitCode:
        if self.kind is MergeKind.CONFLICT:
            return ExitCode.MERGE_CONFLICT
        if self.kind is MergeKind.BLOCKED:
            return ExitCode.MERGE_BLOCKED
        if self.kind is MergeKind.VERIFY_FAILED:
            return ExitCode.VERIFY_FAILED
        return ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (for ``--json``)."""
        return {
            "kind": self.kind.value,
            "base_branch": self.base_branch,
            "stage_branch": self.stage_branch,
            "merge_commit": self.merge_commit,
            "previous_tip": self.previous_tip,
            "conflicts": [
                {"path": c.path, "base_commits": c.base_commits, "stage_commits": c.stage_commits}
                for c in self.conflicts
            ],
            "merge_worktree": None if self.merge_worktree is None else str(self.merge_worktree),
            "blocked_files": list(self.blocked_files),
            "blocked_checkout": (
                None if self.blocked_checkout is None else str(self.blocked_checkout)
            ),
            "blocked_reason": self.blocked_reason,
            "updated_checkouts": [str(p) for p in self.updated_checkouts],
            "candidate": self.candidate,
        }


# -- the per-repository lock ---------------------------------------------------


class MergeLock:
    """An :class:`autorun_py.fsutil.Lock` on one repository's merge lock file; a
    timeout becomes an :class:`AutorunError` with exit code ``TIMEOUT``."""

    def __init__(self, path: Path, repo: Path, timeout: float) -> None:
        from autorun_py.fsutil import Lock

        self.lock_file = path
        self.repo = repo
        self.timeout = timeout
        self._lock = Lock(path, timeout=timeout)

    @property
    def is_locked(self) -> bool:
        return self._lock.is_locked

    def acquire(self, timeout: float | None = None) -> MergeLock:
        wait = self.timeout if timeout is None else timeout
        self._lock.message = (
            f"another merge into {self.repo} still holds the merge lock after {wait:g}s"
        )
        self._lock.acquire(wait)
        return self

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> MergeLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def repo_merge_lock(repo: Path, timeout: float = 600) -> MergeLock:
    """The lock serialising merges into one repository, across orchestrations:
    ``$AUTORUN_HOME/locks/merge-<sha1 of the git common dir>.lock``."""
    key = hashlib.sha1(str(g.common_dir(repo)).encode("utf-8")).hexdigest()
    path = layout().merge_lock(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    return MergeLock(path, Path(repo), timeout)


# -- checks the caller makes before merging ------------------------------------


def stage_commits_ahead(
    repo: Path, stage_branch: str, start_commit: str, *, tip: str | None = None
) -> int:
    """How many commits the stage branch has beyond its start point (``tip``: its
    tip as the caller read it, e.g. by :func:`read_tips`)."""
    if tip is None:
        _require_branch(repo, stage_branch, "stage")
        tip = f"refs/heads/{stage_branch}"
    elif tip == start_commit:
        return 0
    out = g.git_out(["rev-list", "--count", f"{start_commit}..{tip}"], repo)
    return int(out)


@dataclass(frozen=True)
class Tips:
    """Both branches' tips (and the base's tree), read by one ``for-each-ref``."""

    base: str
    base_tree: str
    stage: str


def read_tips(repo: Path, base_branch: str, stage_branch: str) -> Tips:
    """:class:`Tips` of both branches; the "branch ... does not exist" error for a
    missing one (before anything is done)."""
    want = {f"refs/heads/{base_branch}": "base", f"refs/heads/{stage_branch}": "stage"}
    out = g.git_out(
        [
            "for-each-ref",
            "--format=%(refname)%00%(objecttype)%00%(objectname)%00%(tree)",
            *want,
        ],
        repo,
    )
    found: dict[str, tuple[str, str]] = {}
    for line in out.splitlines():
        parts = line.split("\0")
        if len(parts) == 4 and parts[0] in want and parts[1] == "commit":
            found[want[parts[0]]] = (parts[2], parts[3])
    if len(found) < 2 or base_branch == stage_branch:
        # missing, or not plainly a commit (a tag object...): the one-ref-at-a-time way
        base = _existing_tip(repo, base_branch, "base")
        stage = _existing_tip(repo, stage_branch, "stage")
        tree = g.git_out(["rev-parse", "--verify", f"{base}^{{tree}}"], repo)
        return Tips(base, tree, stage)
    return Tips(found["base"][0], found["base"][1], found["stage"][0])


def worktree_dirty_files(worktree: Path) -> list[str]:
    """Paths with uncommitted changes: staged, unstaged, and untracked (not
    ignored); both sides of a rename. Sorted, relative to the work tree."""
    return _worktree_status(worktree)[0]


_UNMERGED = {"DD", "AU", "UD", "UA", "DU", "AA", "UU"}


def _worktree_status(worktree: Path) -> tuple[list[str], list[str]]:
    """(dirty paths as :func:`worktree_dirty_files`, unmerged paths), from one
    ``git status``."""
    out = g.run_git(
        ["status", "--porcelain=v1", "-z", "--untracked-files=all", "--ignore-submodules=none"],
        worktree,
    ).stdout
    paths: set[str] = set()
    unmerged: set[str] = set()
    items = out.split("\0")
    i = 0
    while i < len(items):
        item = items[i]
        i += 1
        if len(item) < 4:
            continue
        status, path = item[:2], item[3:]
        paths.add(path)
        if status in _UNMERGED:
            unmerged.add(path)
        if "R" in status or "C" in status:
            if i < len(items) and items[i]:
                paths.add(items[i])
            i += 1
    return sorted(paths), sorted(unmerged)


# -- merging -------------------------------------------------------------------


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
    if state == "conflict":
        raise AutorunError(
            f"an earlier merge of {stage_branch} into {base_branch} is waiting for its conflicts "
            f"to be resolved in {merge_worktree}: finish it with --continue or drop it with --abort"
        )
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


# -- recovery of an interrupted merge -------------------------------------------


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


def conflict_resolution_summary(merge_worktree: Path, files: Sequence[str]) -> str:
    """Markdown for ``conflicts.md``: per file, what the resolution kept from
    each side (lines each side changed since the merge base that survive) and
    the diff of the resolution against each side.

    Works while the resolution is staged (``MERGE_HEAD`` present) and after it
    was committed in the merge worktree (``HEAD`` is the merge commit).
    """
    mw = Path(merge_worktree)
    has_merge_head = g.run_git(
        ["rev-parse", "--verify", "--quiet", "MERGE_HEAD"], mw, check=False
    ).ok
    if has_merge_head:
        ours = g.git_out(["rev-parse", "HEAD"], mw)
        theirs = g.git_out(["rev-parse", "MERGE_HEAD"], mw)
        result_spec = ":"  # the index
    else:
        ours = g.git_out(["rev-parse", "HEAD^1"], mw)
        theirs = g.git_out(["rev-parse", "HEAD^2"], mw)
        result_spec = g.git_out(["rev-parse", "HEAD"], mw) + ":"
    mb_res = g.run_git(["merge-base", ours, theirs], mw, check=False)
    base = mb_res.stdout.strip() if mb_res.ok else ""
    short = {c: g.git_out(["rev-parse", "--short", c], mw) for c in (ours, theirs)}

    parts: list[str] = []
    for path in files:
        result = _blob_lines(mw, result_spec + path)
        base_lines = (_blob_lines(mw, f"{base}:{path}") if base else None) or []
        kept_set = set(result or [])
        lines = [f"#### `{path}`", ""]
        if result is None:
            lines.append("- resolution: the file was deleted")
        for label, side in (("base branch", ours), ("stage", theirs)):
            side_lines = _blob_lines(mw, f"{side}:{path}")
            if side_lines is None:
                lines.append(f"- {label} (`{short[side]}`): had deleted the file")
                continue
            changed = _changed_lines(base_lines, side_lines)
            kept = sum(1 for ln in changed if ln in kept_set)
            lines.append(
                f"- {label} (`{short[side]}`): kept {kept} of the {len(changed)} lines "
                "it changed since the merge base"
            )
        for label, side in (("base branch", ours), ("stage", theirs)):
            diff = _diff_against(mw, side, path, has_merge_head, result_spec)
            lines += ["", f"Resolution compared with the {label} side:", ""]
            if not diff:
                lines.append("(identical: this side was kept as is)")
            else:
                lines += ["```diff", *diff, "```"]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + ("\n" if parts else "")


# -- internals: refs and commits -----------------------------------------------


def _require_branch(repo: Path, branch: str, what: str) -> None:
    if not g.branch_exists(branch, repo):
        raise AutorunError(f"{what} branch {branch!r} does not exist in {repo}")


def _existing_tip(repo: Path, branch: str, what: str) -> str:
    """The branch's tip; the :func:`_require_branch` error when it does not exist."""
    res = g.run_git(
        ["rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}"], repo, check=False
    )
    if not res.ok:
        raise AutorunError(f"{what} branch {branch!r} does not exist in {repo}")
    return res.stdout.strip()


def _branch_tip(repo: Path, branch: str) -> str:
    return g.git_out(["rev-parse", "--verify", f"refs/heads/{branch}^{{commit}}"], repo)


def _merge_tree(repo: Path, ours: str, theirs: str) -> tuple[str, list[str]]:
    """(tree, conflicted paths) of merging ``theirs`` into ``ours``."""
    res = g.run_git(
        ["merge-tree", "--write-tree", "--name-only", "-z", "--no-messages", ours, theirs],
        repo,
        check=False,
    )
    if res.returncode not in (0, 1):
        raise GitError(list(res.argv), res.returncode, res.stderr)
    items = [x for x in res.stdout.split("\0") if x]
    tree, files = items[0], list(dict.fromkeys(items[1:]))
    return tree, (files if res.returncode == 1 else [])


def _commit_tree(repo: Path, tree: str, parents: Sequence[str], message: str) -> str:
    args = ["commit-tree", tree]
    for p in parents:
        args += ["-p", p]
    # The message goes through stdin: it may contain anything.
    return g.git_out([*args, "-F", "-"], repo, input=message.rstrip("\n") + "\n")


def _merge_commit_of(repo: Path, stage_tip: str, base_tip: str) -> str:
    """The merge commit on the base that brought ``stage_tip`` in (else the tip)."""
    out = g.run_git(
        [
            "rev-list",
            "--reverse",
            "--merges",
            "--parents",
            "--ancestry-path",
            f"{stage_tip}..{base_tip}",
        ],
        repo,
        check=False,
    ).stdout
    for line in out.splitlines():
        shas = line.split()
        if stage_tip in shas[2:]:
            return shas[0]
    return base_tip


# -- internals: worktrees ------------------------------------------------------


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


def _unmerged_files(worktree: Path) -> list[str]:
    out = g.run_git(["diff", "--name-only", "-z", "--diff-filter=U"], worktree).stdout
    return sorted(set(_nul_list(out)))


def _nul_list(out: str) -> list[str]:
    return [x for x in out.split("\0") if x]


def _list(paths: Sequence[str]) -> str:
    return ", ".join(paths)


def _commits_touching(repo: Path, since: str, tip: str, path: str) -> list[str]:
    out = g.run_git(
        ["log", "--format=%h %s", f"{since}..{tip}", "--", path], repo, check=False
    ).stdout
    return [line for line in out.splitlines() if line]


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


def _verify_failed(base_branch: str, stage_branch: str, base_tip: str, new: str) -> MergeOutcome:
    return MergeOutcome(
        MergeKind.VERIFY_FAILED,
        base_branch,
        stage_branch,
        previous_tip=base_tip,
        candidate=new,
    )


def _with_summary(outcome: MergeOutcome, summary: str) -> MergeOutcome:
    if not summary:
        return outcome
    import dataclasses

    return dataclasses.replace(outcome, resolution_summary=summary)


# -- internals: moving the base ------------------------------------------------


def _git_dir(worktree: Path) -> Path | None:
    """A work tree's own git directory, read from its ``.git`` (a directory, or
    a ``gitdir:`` file for a linked work tree) without running git; None when
    that is not plain (the caller asks git)."""
    dot = worktree / ".git"
    try:
        if dot.is_dir():
            return dot
        text = dot.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("gitdir:") or len(text.splitlines()) != 1:
        return None
    target = Path(text[len("gitdir:") :].strip())
    git_dir = target if target.is_absolute() else worktree / target
    return git_dir if (git_dir / "HEAD").is_file() else None


_IN_PROGRESS = (
    ("rebase-merge", "head-name", "rebased"),
    ("rebase-apply", "head-name", "rebased"),
    ("BISECT_START", "", "bisected"),
)


def _in_progress_on(git_dir: Path, branch: str, names: Sequence[str] | None = None) -> str | None:
    """'rebased' / 'bisected' when the work tree whose git directory is
    ``git_dir`` is rebasing or bisecting ``branch`` (``names``: that directory's
    entries, when the caller listed it already)."""
    ref = f"refs/heads/{branch}"
    for entry, inner, what in _IN_PROGRESS:
        if names is not None and entry not in names:
            continue
        try:
            text = (git_dir / entry / inner if inner else git_dir / entry).read_text(
                encoding="utf-8"
            )
        except (OSError, UnicodeDecodeError):
            continue
        if text.strip() in (ref, branch):
            return what
    return None


def _being_rebased(repo: Path, known: worktrees.Listing, branch: str) -> tuple[Path, str] | None:
    """(work tree, 'rebased' / 'bisected') for the first worktree in ``known``,
    not on ``branch`` itself, that is rebasing or bisecting ``branch``.

    One directory listing per worktree, in the repository's own git directory
    (``<common>/worktrees/<id>``, the main worktree's is ``<common>``): only a
    worktree with a rebase or bisect under way is looked at further, so many
    worktrees cost little (no file of each worktree is opened)."""
    common = g.common_dir(repo)
    admin: list[Path] = [common]
    with contextlib.suppress(OSError):
        admin += [Path(e.path) for e in os.scandir(common / "worktrees") if e.is_dir()]
    markers = {entry for entry, _, _ in _IN_PROGRESS}
    hits: dict[str, str] = {}  # resolved work tree path -> what
    for i, git_dir in enumerate(admin):
        try:
            names = [n for n in os.listdir(git_dir) if n in markers]
        except OSError:
            continue
        if not names:
            continue
        what = _in_progress_on(git_dir, branch, names)
        if what is None:
            continue
        if i == 0:
            where = known.entries[0].path if known.entries else Path(repo)
        else:
            try:
                dot_git = (git_dir / "gitdir").read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError):
                continue
            where = Path(dot_git).parent
        hits[os.path.realpath(where)] = what
    if not hits:
        return None
    for wt in known.entries:
        if wt.prunable or wt.branch == branch:
            continue
        what = hits.get(os.path.realpath(wt.path))
        if what is not None and wt.path.exists():
            return wt.path, what
    return None


def _operation_in_progress(worktree: Path) -> str | None:
    git_dir = _git_dir(worktree) or Path(
        g.git_out(["rev-parse", "--path-format=absolute", "--git-dir"], worktree)
    )
    for name, what in (
        ("MERGE_HEAD", "merge"),
        ("CHERRY_PICK_HEAD", "cherry-pick"),
        ("REVERT_HEAD", "revert"),
        ("rebase-merge", "rebase"),
        ("rebase-apply", "rebase or am"),
    ):
        if (git_dir / name).exists():
            return what
    return None


def _overlapping(dirty: Sequence[str], incoming: Sequence[str]) -> list[str]:
    """Dirty paths equal to an incoming path, or a file/directory prefix of one."""
    inc = set(incoming)
    out: set[str] = set()
    for d in dirty:
        d = d.rstrip("/")
        if d in inc:
            out.add(d)
            continue
        prefix = d + "/"
        if any(p.startswith(prefix) for p in inc):
            out.add(d)
            continue
        parts = d.split("/")
        if any("/".join(parts[:i]) in inc for i in range(1, len(parts))):
            out.add(d)
    return sorted(out)


def _in_the_way(ck: Path, added: Sequence[str], deleted: Sequence[str]) -> list[str]:
    """Paths in checkout ``ck`` that carrying it forward would overwrite or
    delete although git does not track them (untracked or ignored files).

    For every file the merge adds: each parent directory it needs that exists
    as a file or symlink git does not track (``local.conf`` for an added
    ``local.conf/a.txt``), and the file's own path when it exists as an
    untracked file or symlink, or as a directory holding anything that is not a
    tracked file the merge deletes (a tracked directory that becomes a file,
    with the user's files inside). ``deleted`` are the paths the merge deletes:
    the only tracked ones an added path can meet.
    """
    gone = set(deleted)
    hits: set[str] = set()
    seen: set[str] = set()
    for p in added:
        parts = p.split("/")
        for i in range(1, len(parts)):
            q = "/".join(parts[:i])
            if q in seen:
                continue  # a real directory, checked already
            full = ck / q
            if os.path.islink(full) or (os.path.lexists(full) and not os.path.isdir(full)):
                if q not in gone:
                    hits.add(q)
                break
            seen.add(q)
        full = ck / p
        if not os.path.lexists(full):
            continue
        if os.path.isdir(full) and not os.path.islink(full):
            if _holds_untracked(ck, p, gone):
                hits.add(p)
        elif p not in gone:
            hits.add(p)
    return sorted(hits)


def _holds_untracked(ck: Path, directory: str, tracked: set[str]) -> bool:
    """True when ``ck/directory`` holds a file or symlink not in ``tracked``."""
    for root, dirs, files in os.walk(ck / directory):
        links = [d for d in dirs if os.path.islink(os.path.join(root, d))]
        for name in [*files, *links]:
            rel = os.path.relpath(os.path.join(root, name), ck).replace(os.sep, "/")
            if rel not in tracked:
                return True
    return False


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


def _changed_paths(repo: Path, old: str, new: str) -> tuple[list[str], list[str], list[str]]:
    """(every path, the added ones, the deleted ones) from ``old`` to ``new``,
    by one ``git diff --name-status`` (no renames)."""
    out = g.git_out(["diff", "--name-status", "-z", "--no-renames", old, new], repo)
    items = out.split("\0")
    every: list[str] = []
    added: list[str] = []
    deleted: list[str] = []
    for status, path in zip(items[0::2], items[1::2]):
        if not path:
            continue
        every.append(path)
        if status.startswith("A"):
            added.append(path)
        elif status.startswith("D"):
            deleted.append(path)
    return every, added, deleted


def _paths_in_git_error(stderr: str) -> tuple[str, ...]:
    """The paths git names in a refusal ("Entry 'x' not uptodate", "Untracked
    working tree file 'x' would be overwritten", or a tab-indented list)."""
    import re

    found: set[str] = set()
    for ln in stderr.splitlines():
        m = re.search(r"(?:Entry|file) '(.+)' (?:not uptodate|would be)", ln)
        if m:
            found.add(m.group(1))
        elif ln.startswith("\t"):
            found.add(ln.strip())
    return tuple(sorted(found))


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


# -- internals: conflict markers and summaries ---------------------------------


def _blob_lines(cwd: Path, spec: str) -> list[str] | None:
    res = g.run_git(["cat-file", "-p", spec], cwd, check=False)
    if not res.ok:
        return None
    return res.stdout.splitlines()


def _index_has_markers(mw: Path, path: str) -> bool:
    lines = _blob_lines(mw, ":" + path)
    if lines is None:
        return False
    for ln in lines:
        for marker in ("<<<<<<<", ">>>>>>>", "|||||||"):
            if ln.startswith(marker) and (len(ln) == 7 or ln[7] == " "):
                return True
    return False


def _changed_lines(base: list[str], side: list[str]) -> list[str]:
    """Lines ``side`` added relative to ``base`` (non-blank, in order)."""
    import difflib

    out: list[str] = []
    matcher = difflib.SequenceMatcher(a=base, b=side, autojunk=False)
    for tag, _i1, _i2, j1, j2 in matcher.get_opcodes():
        if tag in ("replace", "insert"):
            out += [ln for ln in side[j1:j2] if ln.strip()]
    return out


def _diff_against(mw: Path, side: str, path: str, staged: bool, result_spec: str) -> list[str]:
    if staged:
        args = ["diff", "--cached", "--no-color", "-U1", side, "--", path]
    else:
        args = ["diff", "--no-color", "-U1", side, result_spec.rstrip(":"), "--", path]
    out = g.run_git(args, mw, check=False).stdout.splitlines()
    body = [ln for ln in out if not ln.startswith(("diff --git", "index ", "--- ", "+++ "))]
    if len(body) > _DIFF_LINES:
        body = [*body[:_DIFF_LINES], f"... ({len(body) - _DIFF_LINES} more lines)"]
    return body
