"""The one owner of the worktrees and branches autorun creates.

Over 500 lines on purpose: every rule about what autorun may create or delete in
a repository is here and nowhere else (the rule that deleted a repository when
it had copies), so a reviewer reads one file to know what can be removed.

Every worktree autorun makes lives in ``$AUTORUN_HOME/worktrees/<run>/`` (the
run is the orchestration directory's name): stage worktrees on a branch
``autorun/<run>/stage-N-...``, and detached ones for conflicted merges
(``merge-stage-N``) and for verification (the merge gate). Nothing else in the
package creates or removes a worktree, deletes a directory tree, or deletes a
branch.

What :func:`remove` removes, and nothing else:

- a path whose resolved form is strictly inside the resolved
  ``$AUTORUN_HOME/worktrees/<run>/`` (a symlink placed there resolves outside
  and is refused; so is the run directory itself, and a run directory that is
  itself a symlink);
- that ``git worktree list --porcelain`` of the run's repository lists as a
  *linked* worktree (never the first entry, the main worktree), compared by
  resolved path.

Only then: ``git worktree remove --force --force`` (also when locked), and if
the directory is still there (files git would not delete) it is deleted, after
checking again that it is still under that root; then ``git worktree prune``.
Anything else raises :class:`~autorun_py.errors.AutorunError` with the reason.
A path that does not exist is nothing to remove (idempotent).

Re-creating a stage worktree (:func:`create`, :func:`ensure`) may find a
directory under the run's root that git no longer knows (an interrupted
``worktree add``, a registration pruned by hand). It is deleted only when it
holds no repository of its own (no ``.git`` directory) and its ``.git`` file,
if any, points at no existing git directory: a worktree of another repository
placed there is refused like everything else.

``autorun clean`` also removes, through this module only: a run's orchestration
directory (``--purge``; a real directory directly in ``$AUTORUN_HOME/orchestration``
with a status.json), its report and log files (directly in ``reports/``, ``logs/``),
and what ``autorun demo`` created in its scratch directory (the names its marker
file lists, never anything else there).

Branches: :func:`delete_branch` deletes only ``autorun/<run>/...`` branches
(the ones :func:`create` made), only when no worktree has them checked out,
and, with ``merged_into``, only when that branch holds all of it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from autorun_py import git, paths
from autorun_py.errors import AutorunError

# Hooks of the user's repository do not run in autorun's detached worktrees.
_NO_HOOKS = ["-c", f"core.hooksPath={os.devnull}"]


# --------------------------------------------------------------------------- names


def run_name(orch_dir: str | Path) -> str:
    """The run's name: its orchestration directory's name."""
    name = Path(orch_dir).name
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise AutorunError(f"not an orchestration directory: {orch_dir}")
    return name


def run_root(run: str) -> Path:
    """``$AUTORUN_HOME/worktrees/<run>`` (not created)."""
    return paths.layout().run_worktrees(run_name(run))


def branch_prefix(run: str) -> str:
    return f"autorun/{run_name(run)}/"


def is_own_branch(branch: Optional[str], run: str) -> bool:
    """True for a branch name autorun creates for ``run`` (``autorun/<run>/...``)."""
    prefix = branch_prefix(run)
    return bool(branch) and str(branch).startswith(prefix) and len(str(branch)) > len(prefix)


def require_own_branch(branch: Optional[str], run: str) -> str:
    if not branch or not is_own_branch(branch, run):
        raise AutorunError(
            f"{branch or '(no branch)'} is not a branch autorun created for run {run_name(run)} "
            f"(those are {branch_prefix(run)}...); autorun does not touch it"
        )
    return branch


# --------------------------------------------------------------------------- checks


def _real(p: str | Path) -> Path:
    return Path(os.path.realpath(str(p)))


def _checked_path(path: Path, run: Optional[str]) -> tuple[Path, str]:
    """(resolved path, run) after refusing anything outside the run's root."""
    run = run_name(run) if run is not None else None
    home_wt = _real(paths.layout().worktrees)
    real = _real(path)
    try:
        rel = real.relative_to(home_wt)
    except ValueError:
        rel = None
    where = f"{home_wt}/{run}/" if run else f"{home_wt}/<run>/"
    if rel is None or len(rel.parts) < 2:
        raise AutorunError(f"{path} is not under {where}; autorun did not create it")
    found = rel.parts[0]
    if run is not None and found != run:
        raise AutorunError(f"{path} is not under {where}; autorun did not create it")
    root = paths.layout().worktrees / found
    if os.path.islink(root) or _real(root) != home_wt / found:
        raise AutorunError(f"{root} is a symlink; not under {where}")
    return real, found


class Listing:
    """One ``git worktree list`` of a repository, read once and shared by the steps
    of one operation under the merge lock (a merge reads it once: its conflict
    worktree, the checkouts it carries, the stage worktree it removes and the
    branch it deletes). :func:`remove` drops what it removed from it.

    Looking a path up costs no system call per entry: git records a worktree's
    resolved path, so only entries with the same last component are resolved and
    compared (thousands of worktrees cost microseconds). A decision that deletes
    files never rests on it alone: when ``git worktree remove`` does not finish,
    :func:`remove` reads the registration again."""

    def __init__(self, repo: Path, entries: list[git.Worktree]) -> None:
        self.repo = Path(repo)
        self.entries = entries

    @classmethod
    def read(cls, repo: Path) -> Listing:
        return cls(repo, git.list_worktrees(repo))

    def _index(self, real: Path) -> Optional[int]:
        name = real.name
        for i, wt in enumerate(self.entries):
            if wt.path.name == name and (wt.path == real or _real(wt.path) == real):
                return i
        return None

    def find(self, real: Path) -> tuple[Optional[git.Worktree], bool]:
        """(the entry whose resolved path is ``real``, whether it is the main worktree)."""
        i = self._index(real)
        return (None, False) if i is None else (self.entries[i], i == 0)

    def discard(self, real: Path) -> None:
        i = self._index(real)
        if i is not None and i > 0:
            del self.entries[i]

    def checked_out(self, branch: str) -> bool:
        """True when a worktree has ``branch`` checked out."""
        return any(wt.branch == branch for wt in self.entries)


def listing(repo: Path) -> Listing:
    """The repository's worktrees, read now (``git worktree list --porcelain``)."""
    return Listing.read(repo)


def _registration(
    repo: Path, real: Path, known: Optional[Listing] = None
) -> tuple[Optional[git.Worktree], bool]:
    """(the worktree entry for ``real``, whether it is the main worktree)."""
    return (known or Listing.read(repo)).find(real)


def _refuse_unregistered(repo: Path, path: Path) -> AutorunError:
    return AutorunError(
        f"{path} is not a registered linked worktree of {repo}; autorun does not remove it"
    )


def _is_orphan(real: Path) -> bool:
    """A directory under our root that no repository claims (see the module doc)."""
    dotgit = real / ".git"
    if os.path.islink(dotgit) or dotgit.is_dir():
        return False
    if dotgit.is_file():
        try:
            text = dotgit.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            return False
        if not text.startswith("gitdir:"):
            return False
        target = Path(text[len("gitdir:") :].strip())
        if not target.is_absolute():
            target = real / target
        if target.exists():
            return False
    return True


def _delete_tree(real: Path, run: str) -> None:
    """Delete a directory tree, checked again right before to be under the run's root."""
    again, _ = _checked_path(real, run)
    if again != real or os.path.islink(real):
        raise AutorunError(f"{real} moved while autorun was removing it; left in place")
    _rmtree(real)


# --------------------------------------------------------------------------- removal


def remove(
    repo: Path, path: Path, *, run: Optional[str] = None, known: Optional[Listing] = None
) -> None:
    """Remove a worktree autorun created (see the module doc for what is refused).

    ``run`` defaults to the run directory ``path`` lies in. ``known``: the
    repository's worktrees as this operation read them (:class:`Listing`; read
    now when None); the removed one is dropped from it.
    """
    real, found = _checked_path(Path(path), run)
    if not os.path.lexists(real):
        git.run_git(["worktree", "prune"], repo, check=False)
        if known is not None:
            known.discard(real)
        return
    wt, is_main = _registration(repo, real, known)
    if is_main:
        raise AutorunError(f"{path} is the main worktree of {repo}; autorun never removes it")
    if wt is None:
        raise _refuse_unregistered(repo, Path(path))
    if wt.locked:
        git.run_git(["worktree", "unlock", str(real)], repo, check=False)
    res = git.run_git(["worktree", "remove", "--force", "--force", str(real)], repo, check=False)
    left = os.path.lexists(real)
    if left and known is not None:
        # Deleting files on a listing read earlier: only what git still registers
        # as this linked worktree, or what no repository claims (the module doc).
        again, again_main = _registration(repo, real)
        if again_main or (again is None and not _is_orphan(real)):
            raise _refuse_unregistered(repo, Path(path))
    if left:
        # files git would not delete (e.g. read-only directories); ours by the checks above
        try:
            _delete_tree(real, found)
        except OSError as exc:
            raise AutorunError(f"could not remove worktree {path}: {exc}") from None
    if left or not res.ok:
        git.run_git(["worktree", "prune"], repo, check=False)
    if known is not None:
        known.discard(real)


def try_remove(
    repo: Path, path: Path, *, run: Optional[str] = None, known: Optional[Listing] = None
) -> Optional[str]:
    """:func:`remove` that never raises: a one-line warning when it did not remove."""
    try:
        remove(repo, path, run=run, known=known)
    except (AutorunError, OSError) as exc:
        return str(exc)
    if os.path.lexists(path):
        return f"could not remove worktree {path}"
    return None


def _maybe_registered(repo: Path, real: Path) -> bool:
    """Whether the repository may still register a worktree at ``real`` (which is
    gone): ``git worktree add`` refuses such a path until ``git worktree prune``.
    Read from the ``gitdir`` file of each of its worktrees' admin directories, as
    git reads them, without running git (issue 16: one git call fewer per launch);
    True when unsure."""
    common = git.common_dir_from_files(repo)
    if common is None:
        return True
    admin = common / "worktrees"
    try:
        names = os.listdir(admin)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    for name in names:
        try:
            with open(admin / name / "gitdir", encoding="utf-8") as fh:
                text = fh.read(8192).strip()
        except FileNotFoundError:
            continue  # not a worktree to git either
        except (OSError, UnicodeDecodeError):
            return True
        if text.endswith("/.git"):
            text = text[: -len("/.git")]
        where = os.path.normpath(text if os.path.isabs(text) else admin / name / text)
        # git writes a worktree's real path: resolved again only when it may be ours
        # (256 worktrees: one realpath, not 256)
        if where == str(real) or (
            os.path.basename(where) == real.name and os.path.realpath(where) == str(real)
        ):
            return True
    return False


def _clear_slot(repo: Path, real: Path, run: str) -> None:
    """Make room for a new worktree at ``real``: our registered worktree or orphan only."""
    if not os.path.lexists(real):
        if _maybe_registered(repo, real):
            git.run_git(["worktree", "prune"], repo, check=False)
        return
    wt, is_main = _registration(repo, real)
    if wt is not None and not is_main:
        remove(repo, real, run=run)
        return
    if wt is None and real.is_dir() and not os.path.islink(real) and _is_orphan(real):
        _delete_tree(real, run)
        git.run_git(["worktree", "prune"], repo, check=False)
        return
    raise AutorunError(
        f"{real} is in the way of a stage worktree and is not autorun's "
        f"(not a registered linked worktree of {repo}); move it away"
    )


# --------------------------------------------------------------------------- creation


def create(repo: Path, path: Path, branch: str, start: str, *, run: str) -> Path:
    """A stage worktree at ``path`` on a new branch ``branch`` (``autorun/<run>/...``)
    from ``start``. A leftover of an earlier attempt in its place is removed (its
    branch keeps the commits)."""
    require_own_branch(branch, run)
    real, _ = _checked_path(Path(path), run)
    _clear_slot(repo, real, run)
    real.parent.mkdir(parents=True, exist_ok=True)
    git.run_git(["worktree", "add", "-b", branch, str(real), start], repo)
    return real


def attach(repo: Path, path: Path, branch: str, *, run: str) -> Path:
    """A stage worktree at ``path`` on the existing branch ``branch`` (autorun's own)."""
    require_own_branch(branch, run)
    real, _ = _checked_path(Path(path), run)
    _clear_slot(repo, real, run)
    real.parent.mkdir(parents=True, exist_ok=True)
    git.run_git(["worktree", "add", str(real), branch], repo)
    return real


def is_valid(repo: Path, path: Path) -> bool:
    """``path`` is a linked worktree of ``repo`` that exists."""
    real = _real(path)
    if not (real / ".git").exists():
        return False
    wt, is_main = _registration(repo, real)
    return wt is not None and not is_main


def ensure(repo: Path, path: Path, branch: str, start: str, *, run: str) -> bool:
    """Make sure the stage worktree exists on ``branch``; True when it was (re)created:
    from the branch when it exists, else a new branch from ``start``."""
    require_own_branch(branch, run)
    _checked_path(Path(path), run)
    if is_valid(repo, path):
        return False
    git.run_git(["worktree", "prune"], repo, check=False)
    if git.branch_exists(branch, repo):
        attach(repo, path, branch, run=run)
    else:
        create(repo, path, branch, start, run=run)
    return True


def create_detached(repo: Path, path: Path, commit: str, *, run: Optional[str] = None) -> Path:
    """A detached worktree at ``commit`` for a merge or a verification, with the
    repository's hooks off. ``path`` must be under ``$AUTORUN_HOME/worktrees/<run>/``;
    a leftover of ours in its place is removed first. Remove it with :func:`remove`."""
    real, found = _checked_path(Path(path), run)
    _clear_slot(repo, real, found)
    real.parent.mkdir(parents=True, exist_ok=True)
    git.run_git([*_NO_HOOKS, "worktree", "add", "--detach", str(real), commit], repo)
    return real


def list_run(repo: Path, run: str) -> list[git.Worktree]:
    """The linked worktrees of ``repo`` under the run's root."""
    root = _real(run_root(run))
    out = []
    for i, wt in enumerate(git.list_worktrees(repo)):
        real = _real(wt.path)
        if i > 0 and root in real.parents:
            out.append(git.Worktree(real, wt.head, wt.branch, wt.locked, wt.prunable))
    return out


# --------------------------------------------------------------------------- branches


def delete_branch(
    repo: Path,
    branch: str,
    *,
    run: str,
    merged_into: Optional[str] = None,
    merged_tip: Optional[str] = None,
    known: Optional[Listing] = None,
) -> bool:
    """Delete autorun's own branch ``branch`` (refused for any other: AutorunError).

    False (and nothing deleted) when it does not exist, a worktree has it checked
    out, or ``merged_into`` is given and does not hold all of it.

    ``merged_tip``: a commit the caller just put on ``merged_into`` (a merge's
    stage tip, under the merge lock): the branch is deleted only while it still
    points at exactly that commit (``update-ref -d`` compares and deletes in one
    step), so nothing needs to be read first. ``known``: the worktrees as this
    operation read them (:class:`Listing`).
    """
    require_own_branch(branch, run)
    if merged_tip is not None:
        tip = merged_tip
    else:
        found = git.run_git(
            ["rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}"],
            repo,
            check=False,
        )
        if not found.ok:
            return False  # no such branch
        tip = found.stdout.strip()
        if merged_into is not None:
            if not git.branch_exists(merged_into, repo):
                return False
            if not git.is_ancestor(tip, f"refs/heads/{merged_into}", repo):
                return False
    if (known or Listing.read(repo)).checked_out(branch):
        return False
    res = git.run_git(["update-ref", "-d", f"refs/heads/{branch}", tip], repo, check=False)
    if res.ok and _has_branch_config(repo, branch):
        git.run_git(["config", "--remove-section", f"branch.{branch}"], repo, check=False)
    return res.ok


def _has_branch_config(repo: Path, branch: str) -> bool:
    """Whether the repository's own config may have a ``[branch "<branch>"]`` section
    (``git config --remove-section`` edits only that file); True when unsure."""
    try:
        text = (git.common_dir(repo) / "config").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return True
    return branch in text


def try_delete_branch(
    repo: Path,
    branch: str,
    *,
    run: str,
    merged_into: Optional[str] = None,
    merged_tip: Optional[str] = None,
    known: Optional[Listing] = None,
) -> bool:
    """:func:`delete_branch` that never raises (False when not deleted)."""
    try:
        return delete_branch(
            repo, branch, run=run, merged_into=merged_into, merged_tip=merged_tip, known=known
        )
    except (AutorunError, OSError):
        return False


# --------------------------------------------------------------------------- temp dirs

CREATING_PREFIX = ".creating-"


def remove_creating_dir(path: Path) -> None:
    """Delete a half-made orchestration directory (``orchestration/.creating-*``,
    see :mod:`autorun_py.rundir`); anything else is refused."""
    root = _real(paths.layout().orchestration)
    p = Path(path)
    if (
        not p.name.startswith(CREATING_PREFIX)
        or _real(p.parent) != root
        or os.path.islink(p)
        or not p.is_dir()
    ):
        raise AutorunError(f"{path} is not a half-made orchestration directory of autorun's")
    _rmtree(p)


# --------------------------------------------------------------------------- clean

DEMO_MARKER = ".autorun-demo.json"


def remove_run_dir(orch_dir: Path) -> bool:
    """``clean --purge``: delete a run's orchestration directory (status.json, events,
    stage context files): only a real directory directly in ``$AUTORUN_HOME/orchestration``
    holding a status.json. False when it is already gone."""
    p = Path(orch_dir)
    if not os.path.lexists(p):
        return False
    if (
        _real(p.parent) != _real(paths.layout().orchestration)
        or os.path.islink(p)
        or not p.is_dir()
        or not (p / "status.json").is_file()
        or p.name.startswith(".")
    ):
        raise AutorunError(f"{p} is not a run directory of autorun's; left in place")
    _rmtree(p)
    return True


def remove_home_file(path: Path) -> bool:
    """Delete one file autorun wrote directly in ``$AUTORUN_HOME/reports`` or ``logs``
    (the link itself when it is one). False when it is already gone."""
    p = Path(path)
    if not os.path.lexists(p):
        return False
    allowed = {_real(paths.layout().reports), _real(paths.layout().logs)}
    if _real(p.parent) not in allowed or (p.is_dir() and not os.path.islink(p)):
        raise AutorunError(f"{p} is not a report or log file of autorun's; left in place")
    p.unlink()
    return True


def remove_tmux_socket(path: Path, name: str) -> bool:
    """Delete the socket file of a private tmux server autorun ran (``tmux -L name``)
    after that server was killed: only a socket named ``name`` in a ``tmux-<uid>``
    directory, never a regular file or another server's socket."""
    import stat

    p = Path(path)
    try:
        st = os.lstat(p)
    except OSError:
        return False
    if p.name != name or not p.parent.name.startswith("tmux-") or not stat.S_ISSOCK(st.st_mode):
        raise AutorunError(f"{p} is not the socket of autorun's tmux server {name}; left in place")
    p.unlink()
    return True


def demo_scratch(project_root: Path) -> Optional[Path]:
    """The scratch directory ``autorun demo`` made for a run of ``project_root``, when
    this ``$AUTORUN_HOME`` is that demo's own (its marker says what it created)."""
    root = Path(project_root).parent
    marker = root / DEMO_MARKER
    if os.path.islink(marker) or not marker.is_file() or os.path.islink(root):
        return None
    import json

    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("root") != str(_real(root)):
        return None
    if _real(paths.autorun_home()) != _real(root / str(data.get("home", ""))):
        return None
    return root


def remove_demo_scratch(root: Path, *, purge: bool) -> list[str]:
    """Delete what ``autorun demo`` created in its scratch directory ``root`` (the names
    its marker lists, never anything else); its ``AUTORUN_HOME`` and the marker only
    with ``purge``, then ``root`` itself when that left it empty. Returns what went."""
    import json

    marker = Path(root) / DEMO_MARKER
    if demo_scratch(Path(root) / "x") is None:
        raise AutorunError(f"{root} is not the scratch directory of this autorun demo")
    data = json.loads(marker.read_text(encoding="utf-8"))
    home = str(data.get("home", ""))
    removed = []
    for name in [str(n) for n in data.get("created", [])]:
        if not name or "/" in name or name in (".", "..", DEMO_MARKER):
            continue
        if name == home and not purge:
            continue
        p = Path(root) / name
        if not os.path.lexists(p):
            continue
        if os.path.islink(p) or not p.is_dir():
            p.unlink()
        else:
            _rmtree(p)
        removed.append(str(p))
    if purge:
        marker.unlink()
        try:
            os.rmdir(root)
            removed.append(str(root))
        except OSError:
            pass  # something of the user's is in there too: it stays
    return removed


def _rmtree(path: Path) -> None:
    """``shutil.rmtree`` (imported here, not by every process that imports this
    module: issue 16)."""
    import shutil

    shutil.rmtree(path)
