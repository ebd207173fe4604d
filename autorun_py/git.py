"""The one wrapper for git subprocess calls.

Every git invocation goes through :func:`run_git`: an argv list (never a shell
string), a fixed environment that keeps git from prompting or paging, and a
:class:`~autorun_py.errors.GitError` carrying the command and its stderr.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from autorun_py.errors import AutorunError, GitError

PathLike = Union[str, Path]


@dataclass(frozen=True)
class GitResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _git_env(extra: Optional[Mapping[str, str]]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_PAGER": "cat",
            "PAGER": "cat",
            "GIT_EDITOR": "true",
            "LC_ALL": "C",
        }
    )
    if extra:
        env.update(extra)
    return env


def run_git(
    args: Sequence[str],
    cwd: PathLike,
    *,
    check: bool = True,
    input: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
) -> GitResult:
    """Run ``git -C cwd <args>``; raise GitError on a non-zero exit when ``check``."""
    argv = ["git", "-C", str(cwd), *args]
    try:
        proc = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            env=_git_env(env),
            check=False,
        )
    except FileNotFoundError as exc:
        raise AutorunError("git is not installed or not on PATH") from exc
    result = GitResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise GitError(argv, proc.returncode, proc.stderr, stdout=proc.stdout)
    return result


def git_out(args: Sequence[str], cwd: PathLike, *, input: Optional[str] = None) -> str:
    """stdout of a git call that must succeed, without the trailing newline."""
    return run_git(args, cwd, input=input).stdout.rstrip("\n")


def repo_root(cwd: PathLike) -> Path:
    """The top level of the work tree containing ``cwd``; a clear error outside git."""
    res = run_git(["rev-parse", "--show-toplevel"], cwd, check=False)
    if not res.ok:
        raise AutorunError(f"{cwd} is not inside a git repository (run autorun from your project)")
    return Path(res.stdout.strip()).resolve()


def common_dir(cwd: PathLike) -> Path:
    """The repository's shared .git directory (the same for every worktree)."""
    out = git_out(["rev-parse", "--path-format=absolute", "--git-common-dir"], cwd)
    return Path(out).resolve()


def main_worktree(cwd: PathLike) -> Path:
    """The repository's main work tree, even when called from a linked worktree."""
    for wt in list_worktrees(cwd):
        return wt.path
    return repo_root(cwd)


def current_branch(cwd: PathLike) -> Optional[str]:
    """The checked-out branch name, or None on a detached HEAD."""
    res = run_git(["symbolic-ref", "--quiet", "--short", "HEAD"], cwd, check=False)
    return res.stdout.strip() if res.ok else None


def has_commits(cwd: PathLike) -> bool:
    return run_git(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], cwd, check=False).ok


def rev_parse(rev: str, cwd: PathLike) -> str:
    return git_out(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd)


def branch_exists(branch: str, cwd: PathLike) -> bool:
    return run_git(["show-ref", "--verify", "--quiet", f"refs/heads/{branch}"], cwd, check=False).ok


def is_ancestor(ancestor: str, descendant: str, cwd: PathLike) -> bool:
    res = run_git(["merge-base", "--is-ancestor", ancestor, descendant], cwd, check=False)
    if res.returncode not in (0, 1):
        raise GitError(list(res.argv), res.returncode, res.stderr)
    return res.returncode == 0


@dataclass(frozen=True)
class Worktree:
    path: Path
    head: Optional[str]
    branch: Optional[str]  # short name, None when detached or bare
    locked: bool
    prunable: bool


def list_worktrees(cwd: PathLike) -> list[Worktree]:
    out = run_git(["worktree", "list", "--porcelain", "-z"], cwd).stdout
    result: list[Worktree] = []
    fields: dict[str, str] = {}
    for item in out.split("\0"):
        if item == "":
            if fields:
                branch = fields.get("branch")
                if branch and branch.startswith("refs/heads/"):
                    branch = branch[len("refs/heads/") :]
                result.append(
                    Worktree(
                        path=Path(fields["worktree"]),
                        head=fields.get("HEAD"),
                        branch=branch,
                        locked="locked" in fields,
                        prunable="prunable" in fields,
                    )
                )
                fields = {}
            continue
        key, _, value = item.partition(" ")
        fields[key] = value
    return result
