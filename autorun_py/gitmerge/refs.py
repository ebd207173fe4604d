"""Reading refs and writing commits for a merge: both tips in one call
(:func:`read_tips`), the stage's commits, ``merge-tree``/``commit-tree``, a work
tree's dirty and unmerged paths."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from autorun_py import git as g
from autorun_py.errors import AutorunError, GitError


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
