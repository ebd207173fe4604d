"""The carry-forward rules: what in a checked-out base (or another worktree)
stops the merge from moving it. Uncommitted changes to a path the merge brings,
untracked or ignored files in the way of one, an unfinished merge, cherry-pick,
revert or rebase in the checkout, the base being rebased or bisected elsewhere."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from autorun_py import git as g
from autorun_py import worktrees


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
