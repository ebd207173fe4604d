"""The one wrapper for git subprocess calls.

Every git invocation goes through :func:`run_git`: an argv list (never a shell
string) run by :mod:`autorun_py.proc`, a fixed environment that keeps git from
prompting or paging, and a :class:`~autorun_py.errors.GitError` carrying the
command and its stderr.

The environment cannot redirect git: the variables that locate a repository
(``GIT_DIR``, ``GIT_WORK_TREE``, ``GIT_INDEX_FILE``, ... which git exports into
the hooks it runs) are dropped, by pre-commit's rule (:func:`no_git_env`), so
``git -C <dir>`` always means the repository at ``<dir>``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from autorun_py import proc
from autorun_py.errors import AutorunError, GitError

PathLike = Union[str, Path]


@dataclass(frozen=True)
class GitResult:
    """A finished git call: its argv, exit status and output."""
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


# pre-commit's no_git_env (pre_commit/git.py): every GIT_* variable goes, except
# these, which do not name a repository (transport, auth, ad-hoc config).
_KEEP_GIT_VARS = frozenset(
    {
        "GIT_EXEC_PATH",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_SSL_CAINFO",
        "GIT_SSL_NO_VERIFY",
        "GIT_CONFIG_COUNT",
        "GIT_HTTP_PROXY_AUTHMETHOD",
        "GIT_ALLOW_PROTOCOL",
        "GIT_ASKPASS",
        # autorun's additions: it commits (merges) as the user, so the user's
        # identity and user-level configuration stay; they locate no repository.
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
        "GIT_CONFIG_GLOBAL",
        "GIT_CONFIG_SYSTEM",
        "GIT_CONFIG_NOSYSTEM",
    }
)
_KEEP_GIT_PREFIXES = ("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_")


def no_git_env(environ: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """``environ`` (default ``os.environ``) without the variables that redirect git:
    ``GIT_DIR``, ``GIT_WORK_TREE``, ``GIT_INDEX_FILE``, ``GIT_OBJECT_DIRECTORY``,
    ``GIT_COMMON_DIR``, ``GIT_NAMESPACE``, ``GIT_CEILING_DIRECTORIES``, ..."""
    env = os.environ if environ is None else environ
    return {
        k: v
        for k, v in env.items()
        if not k.startswith("GIT_") or k in _KEEP_GIT_VARS or k.startswith(_KEEP_GIT_PREFIXES)
    }


def _git_env(extra: Optional[Mapping[str, str]]) -> dict[str, str]:
    env = no_git_env()
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
        res = proc.run(argv, input=input, env=_git_env(env))
    except proc.CommandNotFound as exc:
        raise AutorunError("git is not installed or not on PATH") from exc
    result = GitResult(res.argv, res.returncode, res.stdout, res.stderr)
    if check and res.returncode != 0:
        raise GitError(argv, res.returncode, res.stderr, stdout=res.stdout)
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
    """The repository's shared .git directory (the same for every worktree):
    read from ``cwd/.git`` when ``cwd`` is a work tree's top level
    (:func:`common_dir_from_files`), else asked of git."""
    found = common_dir_from_files(cwd)
    if found is not None:
        return found
    out = git_out(["rev-parse", "--path-format=absolute", "--git-common-dir"], cwd)
    return Path(out).resolve()


def _read_small(path: Path) -> Optional[str]:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read(4096)
    except (OSError, UnicodeDecodeError):
        return None


def common_dir_from_files(cwd: PathLike) -> Optional[Path]:
    """What ``git rev-parse --git-common-dir`` says for a work tree's top level,
    read from its ``.git`` (a repository directory, or a ``gitdir:`` file and the
    git directory's ``commondir``) without running git; None when ``cwd`` has no
    plain ``.git`` of its own (a subdirectory, anything unusual: ask git)."""
    dot = Path(cwd) / ".git"
    if dot.is_dir() and not dot.is_symlink():
        git_dir = dot
    else:
        text = _read_small(dot)
        if text is None or not text.startswith("gitdir:") or len(text.splitlines()) != 1:
            return None
        target = Path(text[len("gitdir:") :].strip())
        git_dir = target if target.is_absolute() else Path(cwd) / target
    common = git_dir
    link = _read_small(git_dir / "commondir")
    if link is not None:
        if len(link.splitlines()) != 1 or not link.strip():
            return None
        target = Path(link.strip())
        common = target if target.is_absolute() else git_dir / target
    elif (git_dir / "commondir").exists():
        return None
    if not ((git_dir / "HEAD").is_file() and (common / "objects").is_dir()):
        return None
    return common.resolve()


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
    """One entry of `git worktree list --porcelain`."""
    path: Path
    head: Optional[str]
    branch: Optional[str]  # short name, None when detached or bare
    locked: bool
    prunable: bool


def identity_problem(cwd: PathLike) -> Optional[str]:
    """None when git can tell who commits in ``cwd`` (what every stage's commit and
    every merge needs); else git's own reason, in one line."""
    res = run_git(["var", "GIT_COMMITTER_IDENT"], cwd, check=False)
    if res.ok:
        return None
    lines = [ln.strip() for ln in res.stderr.splitlines() if ln.strip()]
    fatal = [ln for ln in lines if ln.startswith("fatal:")]
    return (fatal or lines or ["git cannot tell who commits"])[-1].removeprefix("fatal: ")


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
