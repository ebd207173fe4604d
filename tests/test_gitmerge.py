"""The git merge engine, on real repositories: clean merges, conflicts and
their resolution, the user's checkout (clean, dirty elsewhere, dirty in an
incoming file, on another branch), clean-up, and the per-repository lock."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from autorun_py.errors import AutorunError, ExitCode
from autorun_py.gitmerge import (
    MergeKind,
    abort_merge,
    conflict_resolution_summary,
    continue_merge,
    merge_stage,
    repo_merge_lock,
    stage_commits_ahead,
    worktree_dirty_files,
)
from tests.helpers import git

LINES = [f"line {i}\n" for i in range(1, 21)]


def commit(cwd: Path, files: dict[str, str], msg: str) -> str:
    for name, content in files.items():
        p = cwd / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content, encoding="utf-8")
        git(cwd, "add", "--", name)
    git(cwd, "commit", "-q", "-m", msg)
    return git(cwd, "rev-parse", "HEAD")


def stage(repo: Path, name: str, files: dict[str, str], msg: str = "") -> Path:
    """A stage worktree on a new branch `name` off main, with one commit."""
    wt = repo.parent / f"wt {name} é"
    git(repo, "worktree", "add", "-q", "-b", name, str(wt), "main")
    commit(wt, files, msg or f"{name}: edit {', '.join(files)}")
    return wt


def edited(index: int, text: str) -> str:
    lines = list(LINES)
    lines[index] = text + "\n"
    return "".join(lines)


@pytest.fixture
def base(repo: Path) -> Path:
    """The repo with a 20-line file on main, its checkout on main and clean."""
    commit(repo, {"notes.txt": "".join(LINES), "other.txt": "other\n"}, "add notes")
    return repo


def tip(repo: Path, ref: str = "main") -> str:
    return git(repo, "rev-parse", ref)


def mw_path(tmp_path: Path, name: str) -> Path:
    """Merge worktrees live where autorun makes them (only there does it remove them)."""
    return Path(os.environ["AUTORUN_HOME"]) / "worktrees" / "test run ü" / name


# -- clean merges ----------------------------------------------------------------


def test_clean_merge_moves_clean_checkout(base: Path, tmp_path: Path) -> None:
    stage(base, "stage-1", {"notes.txt": edited(0, "stage one"), "new dir/añadido.txt": "x\n"})
    old, stage_tip = tip(base), tip(base, "stage-1")
    out = merge_stage(
        base,
        "main",
        "stage-1",
        message="Merge stage 1: 'quotes' $(x)",
        merge_worktree=mw_path(tmp_path, "s1"),
    )
    assert out.kind is MergeKind.MERGED and out.exit_code is ExitCode.OK
    assert out.previous_tip == old and out.merge_commit == tip(base)
    assert git(base, "rev-parse", "main^1", "main^2").split() == [old, stage_tip]
    assert git(base, "log", "-1", "--format=%s") == "Merge stage 1: 'quotes' $(x)"
    assert out.updated_checkouts == (base,)
    assert (base / "new dir" / "añadido.txt").read_text() == "x\n"
    assert (base / "notes.txt").read_text().startswith("stage one\n")
    assert git(base, "status", "--porcelain") == ""
    assert not mw_path(tmp_path, "s1").exists()


def test_fast_forwardable_stage_still_gets_a_merge_commit(base: Path, tmp_path: Path) -> None:
    git(base, "checkout", "-q", "-b", "elsewhere")  # base not checked out anywhere
    stage(base, "stage-1", {"a.txt": "a\n"})
    out = merge_stage(base, "main", "stage-1", message="m", merge_worktree=mw_path(tmp_path, "s"))
    assert out.kind is MergeKind.MERGED and out.updated_checkouts == ()
    assert len(git(base, "rev-list", "--parents", "-1", "main").split()) == 3


def test_already_merged_is_a_no_op(base: Path, tmp_path: Path) -> None:
    stage(base, "stage-1", {"a.txt": "a\n"})
    first = merge_stage(base, "main", "stage-1", message="m", merge_worktree=mw_path(tmp_path, "s"))
    commit(base, {"later.txt": "later\n"}, "later work")
    again = merge_stage(base, "main", "stage-1", message="m", merge_worktree=mw_path(tmp_path, "s"))
    assert again.kind is MergeKind.ALREADY_MERGED
    assert again.merge_commit == first.merge_commit
    assert again.previous_tip == tip(base)


def test_no_commits_and_dirty_stage_are_detectable(base: Path) -> None:
    wt = base.parent / "wt empty"
    start = tip(base)
    git(base, "worktree", "add", "-q", "-b", "stage-e", str(wt), "main")
    assert stage_commits_ahead(base, "stage-e", start) == 0
    assert worktree_dirty_files(wt) == []
    (wt / "README.md").write_text("changed\n")
    (wt / "new file ü.txt").write_text("n\n")
    (wt / "other.txt").write_text("staged\n")
    git(wt, "add", "other.txt")
    git(wt, "mv", "notes.txt", "renamed.txt")
    assert worktree_dirty_files(wt) == sorted(
        ["README.md", "new file ü.txt", "other.txt", "notes.txt", "renamed.txt"]
    )
    commit(wt, {"x.txt": "x\n"}, "one")
    assert stage_commits_ahead(base, "stage-e", start) == 1


def test_missing_branch_is_a_clear_error(base: Path, tmp_path: Path) -> None:
    with pytest.raises(AutorunError, match="stage branch 'nope' does not exist"):
        merge_stage(base, "main", "nope", message="m", merge_worktree=mw_path(tmp_path, "s"))


# -- the user's checkout -----------------------------------------------------------


def test_dirty_checkout_elsewhere_moves_with_changes_intact(base: Path, tmp_path: Path) -> None:
    stage(base, "stage-1", {"notes.txt": edited(0, "stage one"), "added.txt": "added\n"})
    # unstaged edit, staged edit, staged new file, untracked file (spaces, unicode, CRLF, no EOL)
    commit(base, {"dir x/ünï code.txt": "tracked\n"}, "more files")
    stage_old = tip(base, "stage-1")
    (base / "README.md").write_bytes(b"# project\r\nuser edit, no newline")
    (base / "other.txt").write_bytes(b"staged by user\n")
    git(base, "add", "other.txt")
    (base / "other.txt").write_bytes(b"staged by user\nplus unstaged\n")
    (base / "dir x" / "ünï code.txt").write_bytes(b"edited \xc3\xbc\n")
    (base / "brand new.txt").write_bytes(b"\x00\x01binary")
    git(base, "add", "brand new.txt")
    (base / "untracked file.txt").write_bytes(b"scratch\n")
    before_bytes = {
        p: (base / p).read_bytes()
        for p in [
            "README.md",
            "other.txt",
            "dir x/ünï code.txt",
            "brand new.txt",
            "untracked file.txt",
        ]
    }
    staged_before = git(base, "diff", "--cached", "--name-status")

    old = tip(base)
    out = merge_stage(base, "main", "stage-1", message="m", merge_worktree=mw_path(tmp_path, "s"))
    assert out.kind is MergeKind.MERGED and out.updated_checkouts == (base,)
    assert tip(base) == out.merge_commit != old
    assert git(base, "rev-parse", "main^2") == stage_old
    for p, data in before_bytes.items():
        assert (base / p).read_bytes() == data, p
    assert git(base, "diff", "--cached", "--name-status") == staged_before
    assert git(base, "show", ":other.txt") == "staged by user"
    assert (base / "notes.txt").read_text().startswith("stage one\n")
    assert (base / "added.txt").read_text() == "added\n"
    # only the user's own changes are left as changes
    assert worktree_dirty_files(base) == sorted(before_bytes)


def test_dirty_incoming_file_blocks_until_committed(base: Path, tmp_path: Path) -> None:
    stage(base, "stage-1", {"notes.txt": edited(0, "stage one")})
    user_bytes = edited(19, "user edit at the end").encode()
    (base / "notes.txt").write_bytes(user_bytes)
    old = tip(base)
    out = merge_stage(base, "main", "stage-1", message="m", merge_worktree=mw_path(tmp_path, "s"))
    assert out.kind is MergeKind.BLOCKED and out.exit_code is ExitCode.MERGE_BLOCKED
    assert out.blocked_files == ("notes.txt",) and out.blocked_checkout == base
    assert "uncommitted changes in notes.txt" in out.blocked_reason
    assert tip(base) == old
    assert (base / "notes.txt").read_bytes() == user_bytes
    assert not mw_path(tmp_path, "s").exists()

    git(base, "commit", "-q", "-am", "user commits")
    out = merge_stage(base, "main", "stage-1", message="m", merge_worktree=mw_path(tmp_path, "s"))
    assert out.kind is MergeKind.MERGED
    text = (base / "notes.txt").read_text()
    assert text.startswith("stage one\n") and text.endswith("user edit at the end\n")
    assert git(base, "status", "--porcelain") == ""


def test_staged_incoming_file_blocks_until_stashed(base: Path, tmp_path: Path) -> None:
    stage(base, "stage-1", {"other.txt": "stage\n"})
    (base / "other.txt").write_text("user\n")
    git(base, "add", "other.txt")
    out = merge_stage(base, "main", "stage-1", message="m", merge_worktree=mw_path(tmp_path, "s"))
    assert out.kind is MergeKind.BLOCKED and out.blocked_files == ("other.txt",)
    assert git(base, "show", ":other.txt") == "user"
    git(base, "stash", "-q")
    out = merge_stage(base, "main", "stage-1", message="m", merge_worktree=mw_path(tmp_path, "s"))
    assert out.kind is MergeKind.MERGED
    assert (base / "other.txt").read_text() == "stage\n"


def test_untracked_file_in_the_way_blocks(base: Path, tmp_path: Path) -> None:
    stage(base, "stage-1", {"docs/guide.md": "stage\n", "build": "file\n"})
    (base / "docs").mkdir()
    (base / "docs" / "guide.md").write_text("mine\n")
    (base / ".gitignore").write_text("build/\n")
    (base / "build").mkdir()
    (base / "build" / "out.o").write_text("ignored output\n")
    old = tip(base)
    out = merge_stage(base, "main", "stage-1", message="m", merge_worktree=mw_path(tmp_path, "s"))
    assert out.kind is MergeKind.BLOCKED
    assert set(out.blocked_files) == {"docs/guide.md", "build"}
    assert tip(base) == old
    assert (base / "docs" / "guide.md").read_text() == "mine\n"
    assert (base / "build" / "out.o").read_text() == "ignored output\n"


def test_checkout_on_another_branch_is_untouched(base: Path, tmp_path: Path) -> None:
    stage(base, "stage-1", {"notes.txt": edited(0, "stage one")})
    git(base, "checkout", "-q", "-b", "feature")
    (base / "notes.txt").write_text("the user's own edit\n")
    (base / "scratch.txt").write_text("scratch\n")
    head, index = tip(base, "HEAD"), git(base, "ls-files", "-s")
    old = tip(base)
    out = merge_stage(base, "main", "stage-1", message="m", merge_worktree=mw_path(tmp_path, "s"))
    assert out.kind is MergeKind.MERGED and out.updated_checkouts == ()
    assert tip(base) != old
    assert git(base, "symbolic-ref", "--short", "HEAD") == "feature"
    assert tip(base, "HEAD") == head and git(base, "ls-files", "-s") == index
    assert (base / "notes.txt").read_text() == "the user's own edit\n"
    assert (base / "scratch.txt").read_text() == "scratch\n"


# -- conflicts ---------------------------------------------------------------------


def conflicting_stages(base: Path, tmp_path: Path) -> Path:
    """stage-1 merged (edits line 3), stage-2 edits the same line: conflict."""
    stage(base, "stage-1", {"notes.txt": edited(2, "from stage one")}, "stage one: line 3")
    stage(
        base,
        "stage-2",
        {"notes.txt": edited(2, "from stage two"), "s2.txt": "s2\n"},
        "stage two: line 3",
    )
    out = merge_stage(
        base, "main", "stage-1", message="Merge stage 1", merge_worktree=mw_path(tmp_path, "s1")
    )
    assert out.kind is MergeKind.MERGED
    return mw_path(tmp_path, "s2")


def resolve(mw: Path, text: str) -> None:
    (mw / "notes.txt").write_text(text)
    git(mw, "add", "notes.txt")


def test_conflict_then_continue_lands_both_sides(base: Path, tmp_path: Path) -> None:
    mw = conflicting_stages(base, tmp_path)
    before = tip(base)
    files_before = (base / "notes.txt").read_bytes()
    out = merge_stage(base, "main", "stage-2", message="Merge stage 2", merge_worktree=mw)
    assert out.kind is MergeKind.CONFLICT and out.exit_code is ExitCode.MERGE_CONFLICT
    assert out.merge_worktree == mw and out.previous_tip == before
    assert [c.path for c in out.conflicts] == ["notes.txt"]
    (conflict,) = out.conflicts
    assert [s.split(" ", 1)[1] for s in conflict.base_commits] == ["stage one: line 3"]
    assert [s.split(" ", 1)[1] for s in conflict.stage_commits] == ["stage two: line 3"]
    # base untouched, user's checkout untouched, markers in the merge worktree
    assert tip(base) == before and (base / "notes.txt").read_bytes() == files_before
    assert git(base, "status", "--porcelain") == ""
    marked = (mw / "notes.txt").read_text()
    assert "<<<<<<<" in marked and "from stage one" in marked and "from stage two" in marked
    assert "UU notes.txt" in git(mw, "status", "--porcelain")
    # A second merge while the conflict waits shows it again and changes nothing.
    again = merge_stage(base, "main", "stage-2", message="m", merge_worktree=mw)
    assert again.kind is MergeKind.CONFLICT and again.merge_worktree == mw
    assert again.previous_tip == before and again.conflicts == out.conflicts
    assert "UU notes.txt" in git(mw, "status", "--porcelain") and tip(base) == before

    resolve(mw, edited(2, "from stage one and from stage two"))
    summary = conflict_resolution_summary(mw, ["notes.txt"])
    assert "`notes.txt`" in summary
    assert "-from stage one" in summary and "-from stage two" in summary
    assert "+from stage one and from stage two" in summary

    done = continue_merge(base, "main", "stage-2", merge_worktree=mw, message="Merge stage 2")
    assert done.kind is MergeKind.MERGED and done.merge_commit == tip(base)
    assert done.resolution_summary == summary
    assert git(base, "rev-parse", "main^1", "main^2").split() == [before, tip(base, "stage-2")]
    assert (base / "notes.txt").read_text() == edited(2, "from stage one and from stage two")
    assert (base / "s2.txt").read_text() == "s2\n"
    assert git(base, "status", "--porcelain") == ""
    assert not mw.exists()
    assert str(mw) not in git(base, "worktree", "list")
    again = merge_stage(base, "main", "stage-2", message="m", merge_worktree=mw)
    assert again.kind is MergeKind.ALREADY_MERGED and again.merge_commit == done.merge_commit


def test_summary_reports_what_each_side_kept(base: Path, tmp_path: Path) -> None:
    mw = conflicting_stages(base, tmp_path)
    merge_stage(base, "main", "stage-2", message="m", merge_worktree=mw)
    resolve(mw, edited(2, "from stage two"))  # keep the stage's side only
    summary = conflict_resolution_summary(mw, ["notes.txt"])
    assert "base branch" in summary and "kept 0 of the 1 lines" in summary
    assert "stage (" in summary and "kept 1 of the 1 lines" in summary
    assert "(identical: this side was kept as is)" in summary


def test_continue_refuses_unresolved_work(base: Path, tmp_path: Path) -> None:
    mw = conflicting_stages(base, tmp_path)
    merge_stage(base, "main", "stage-2", message="m", merge_worktree=mw)
    before = tip(base)
    with pytest.raises(AutorunError, match="still unmerged in .*notes.txt"):
        continue_merge(base, "main", "stage-2", merge_worktree=mw, message="m")
    git(mw, "add", "notes.txt")  # staged with the markers still in
    with pytest.raises(AutorunError, match="conflict markers left in .*notes.txt"):
        continue_merge(base, "main", "stage-2", merge_worktree=mw, message="m")
    resolve(mw, edited(2, "both"))
    (mw / "other.txt").write_text("forgot to stage\n")
    with pytest.raises(AutorunError, match="unstaged changes in .*other.txt"):
        continue_merge(base, "main", "stage-2", merge_worktree=mw, message="m")
    assert tip(base) == before and mw.exists()
    git(mw, "add", "other.txt")
    out = continue_merge(base, "main", "stage-2", merge_worktree=mw, message="m")
    assert out.kind is MergeKind.MERGED
    assert (base / "other.txt").read_text() == "forgot to stage\n"


def test_abort_cleans_up(base: Path, tmp_path: Path) -> None:
    mw = conflicting_stages(base, tmp_path)
    before = tip(base)
    merge_stage(base, "main", "stage-2", message="m", merge_worktree=mw)
    abort_merge(base, mw)
    assert not mw.exists() and str(mw) not in git(base, "worktree", "list")
    assert tip(base) == before and git(base, "status", "--porcelain") == ""
    abort_merge(base, mw)  # nothing left: a no-op
    with pytest.raises(AutorunError, match="no conflicted merge"):
        continue_merge(base, "main", "stage-2", merge_worktree=mw, message="m")
    out = merge_stage(base, "main", "stage-2", message="m", merge_worktree=mw)
    assert out.kind is MergeKind.CONFLICT


def test_base_moved_cleanly_before_continue(base: Path, tmp_path: Path) -> None:
    mw = conflicting_stages(base, tmp_path)
    merge_stage(base, "main", "stage-2", message="Merge stage 2", merge_worktree=mw)
    stage(base, "stage-3", {"three.txt": "3\n"})
    moved = merge_stage(
        base, "main", "stage-3", message="Merge stage 3", merge_worktree=mw_path(tmp_path, "s3")
    )
    assert moved.kind is MergeKind.MERGED
    resolve(mw, edited(2, "one+two"))
    out = continue_merge(base, "main", "stage-2", merge_worktree=mw, message="Merge stage 2")
    assert out.kind is MergeKind.MERGED and out.previous_tip == moved.merge_commit
    # one merge commit for the stage, on top of the moved base
    assert git(base, "rev-parse", "main^1", "main^2").split() == [
        moved.merge_commit,
        tip(base, "stage-2"),
    ]
    assert (base / "notes.txt").read_text() == edited(2, "one+two")
    assert (base / "three.txt").read_text() == "3\n"
    assert not mw.exists()


def test_base_moved_into_the_resolution_conflicts_again(base: Path, tmp_path: Path) -> None:
    mw = conflicting_stages(base, tmp_path)
    merge_stage(base, "main", "stage-2", message="m2", merge_worktree=mw)
    commit(base, {"notes.txt": edited(2, "the user rewrote line 3")}, "user: line 3")
    resolve(mw, edited(2, "one+two"))
    before = tip(base)
    out = continue_merge(base, "main", "stage-2", merge_worktree=mw, message="m2")
    assert out.kind is MergeKind.CONFLICT and [c.path for c in out.conflicts] == ["notes.txt"]
    assert out.resolution_summary  # the first resolution is still reported
    assert tip(base) == before
    assert "the user rewrote line 3" in (mw / "notes.txt").read_text()
    resolve(mw, edited(2, "user+one+two"))
    done = continue_merge(base, "main", "stage-2", merge_worktree=mw, message="m2")
    assert done.kind is MergeKind.MERGED
    assert (base / "notes.txt").read_text() == edited(2, "user+one+two")
    assert git(base, "merge-base", "--is-ancestor", "stage-2", "main") == ""
    assert not mw.exists()


def test_blocked_continue_keeps_the_resolution(base: Path, tmp_path: Path) -> None:
    mw = conflicting_stages(base, tmp_path)
    merge_stage(base, "main", "stage-2", message="m2", merge_worktree=mw)
    resolve(mw, edited(2, "one+two"))
    user_bytes = b"user scribbles\n"
    (base / "notes.txt").write_bytes(user_bytes)
    before = tip(base)
    out = continue_merge(base, "main", "stage-2", merge_worktree=mw, message="m2")
    assert out.kind is MergeKind.BLOCKED and out.blocked_files == ("notes.txt",)
    assert tip(base) == before and (base / "notes.txt").read_bytes() == user_bytes
    assert mw.exists()
    git(base, "stash", "-q")
    done = merge_stage(base, "main", "stage-2", message="m2", merge_worktree=mw)
    assert done.kind is MergeKind.MERGED
    assert (base / "notes.txt").read_text() == edited(2, "one+two")
    assert not mw.exists()


# -- the lock ------------------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from autorun_py.gitmerge import repo_merge_lock
    repo, log, hold = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
    with repo_merge_lock(repo, timeout=30):
        start = time.time()
        with open(log, "a") as f:
            f.write(f"start {start}\\n")
        time.sleep(hold)
        with open(log, "a") as f:
            f.write(f"end {time.time()}\\n")
    """
)


def test_lock_serialises_processes_across_worktrees(base: Path, tmp_path: Path) -> None:
    wt = stage(base, "stage-1", {"a.txt": "a\n"})
    log = tmp_path / "lock.log"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    procs = [
        subprocess.Popen([sys.executable, "-c", HOLDER, str(where), str(log), "0.4"], env=env)
        for where in (base, wt)  # same repository seen from two work trees
    ]
    assert [p.wait(timeout=30) for p in procs] == [0, 0]
    events = [line.split() for line in log.read_text().splitlines()]
    assert [e[0] for e in events] == ["start", "end", "start", "end"]
    assert float(events[2][1]) >= float(events[1][1])


def test_lock_timeout_is_an_autorun_error(base: Path, tmp_path: Path) -> None:
    log = tmp_path / "lock.log"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(base), str(log), "3"], env=env)
    try:
        deadline = time.time() + 10
        while not log.exists() and time.time() < deadline:
            time.sleep(0.02)
        lock = repo_merge_lock(base, timeout=0.2)
        with pytest.raises(AutorunError) as err:
            lock.acquire()
        assert err.value.exit_code is ExitCode.TIMEOUT
        assert "merge lock" in str(err.value)
    finally:
        holder.kill()
        holder.wait()
    other = tmp_path / "other repo"
    other.mkdir()
    git(other, "init", "-q")
    assert repo_merge_lock(other).lock_file != repo_merge_lock(base).lock_file
    with repo_merge_lock(base, timeout=5) as held:
        assert held.is_locked


def test_conflict_in_unicode_path_with_spaces(base: Path, tmp_path: Path) -> None:
    name = "dir x/ünï côde.txt"
    commit(base, {name: "orig\n"}, "add unicode file")
    stage(base, "stage-1", {name: "one\n"})
    stage(base, "stage-2", {name: "two\n"})
    merge_stage(base, "main", "stage-1", message="m1", merge_worktree=mw_path(tmp_path, "s 1"))
    mw = mw_path(tmp_path, "s 2")
    out = merge_stage(base, "main", "stage-2", message="m2", merge_worktree=mw)
    assert out.kind is MergeKind.CONFLICT and [c.path for c in out.conflicts] == [name]
    (mw / name).write_text("one\ntwo\n")
    git(mw, "add", "--", name)
    assert f"`{name}`" in conflict_resolution_summary(mw, [name])
    assert continue_merge(base, "main", "stage-2", merge_worktree=mw, message="m2").kind is (
        MergeKind.MERGED
    )
    assert (base / name).read_text() == "one\ntwo\n"


def test_base_being_rebased_blocks(base: Path, tmp_path: Path) -> None:
    stage(base, "stage-1", {"a.txt": "a\n"})
    commit(base, {"mine.txt": "mine\n"}, "user commit")
    subprocess.run(
        [
            "git",
            "-C",
            str(base),
            "-c",
            "sequence.editor=sed -i -e s/^pick/edit/",
            "rebase",
            "-q",
            "-i",
            "HEAD~1",
        ],
        capture_output=True,
        check=True,
    )
    old = tip(base)
    out = merge_stage(base, "main", "stage-1", message="m", merge_worktree=mw_path(tmp_path, "s"))
    assert out.kind is MergeKind.BLOCKED and "main is being rebased" in out.blocked_reason
    assert tip(base) == old


@pytest.mark.parametrize("checked_out", [True, False])
def test_advance_refuses_a_stale_old_tip(base: Path, checked_out: bool) -> None:
    """The base moves by compare-and-swap: a merge computed on an old tip never lands."""
    from autorun_py.gitmerge import _advance_base

    first = tip(base)
    later = commit(base, {"x.txt": "x\n"}, "user commits meanwhile")
    if not checked_out:
        git(base, "checkout", "-q", "-b", "elsewhere")
    wt = stage(base, "stage-1", {"a.txt": "a\n"})
    tree = git(wt, "rev-parse", "HEAD^{tree}")
    new = git(base, "commit-tree", tree, "-p", first, "-m", "computed on a stale tip")
    assert _advance_base(base, "main", "stage-1", first, new, "m") is None
    assert tip(base) == later and git(base, "status", "--porcelain") == ""
    assert (base / "x.txt").exists() and not (base / "a.txt").exists()


def test_never_removes_the_users_checkout(base: Path, tmp_path: Path) -> None:
    git(base, "checkout", "-q", "--detach")
    with pytest.raises(AutorunError, match="main work tree"):
        abort_merge(base, base)
    with pytest.raises(AutorunError, match="main work tree"):
        merge_stage(base, "main", "main", message="m", merge_worktree=base)
    assert (base / "README.md").exists() and (base / ".git").exists()
    wt = stage(base, "stage-1", {"a.txt": "a\n"})
    with pytest.raises(AutorunError, match="has branch stage-1 checked out"):
        abort_merge(base, wt)
    assert (wt / "a.txt").exists()


def test_unfinished_operation_in_checkout_blocks(base: Path, tmp_path: Path) -> None:
    stage(base, "stage-1", {"a.txt": "a\n"})
    git(base, "checkout", "-q", "-b", "side")
    commit(base, {"side.txt": "side\n"}, "side work")
    git(base, "checkout", "-q", "main")
    git(base, "merge", "-q", "--no-ff", "--no-commit", "side")  # the user's own merge, clean
    old = tip(base)
    out = merge_stage(base, "main", "stage-1", message="m", merge_worktree=mw_path(tmp_path, "s"))
    assert out.kind is MergeKind.BLOCKED and "an unfinished merge" in out.blocked_reason
    assert tip(base) == old and git(base, "rev-parse", "MERGE_HEAD") == tip(base, "side")


def test_continue_refuses_when_the_stage_moved_on(base: Path, tmp_path: Path) -> None:
    mw = conflicting_stages(base, tmp_path)
    merge_stage(base, "main", "stage-2", message="m", merge_worktree=mw)
    resolve(mw, edited(2, "both"))
    commit(base.parent / "wt stage-2 é", {"late.txt": "late\n"}, "late stage work")
    with pytest.raises(AutorunError, match="gained commits"):
        continue_merge(base, "main", "stage-2", merge_worktree=mw, message="m")
    abort_merge(base, mw)
    out = merge_stage(base, "main", "stage-2", message="m", merge_worktree=mw)
    assert out.kind is MergeKind.CONFLICT


# -- untracked and ignored files are never overwritten or deleted ------------------


def _snapshot(ck: Path) -> dict[str, bytes]:
    """Every file and symlink under the checkout (outside .git), with its bytes."""
    out: dict[str, bytes] = {}
    for root, dirs, files in os.walk(ck):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            full = os.path.join(root, name)
            rel = os.path.relpath(full, ck)
            out[rel] = (
                os.readlink(full).encode() if os.path.islink(full) else Path(full).read_bytes()
            )
    return out


@pytest.mark.parametrize("ignored", [True, False])
def test_file_where_the_merge_needs_a_directory_blocks(
    base: Path, tmp_path: Path, ignored: bool
) -> None:
    # The stage adds local.conf/a.txt; the user's local.conf is a file (their only copy).
    wt = base.parent / "wt-s1"
    git(base, "worktree", "add", "-q", "-b", "stage-1", str(wt), "main")
    (wt / "local.conf").mkdir()
    (wt / "local.conf" / "a.txt").write_text("stage\n")
    git(wt, "add", "-f", "local.conf/a.txt")
    git(wt, "commit", "-q", "-m", "stage adds local.conf/a.txt")
    if ignored:
        (base / ".git" / "info" / "exclude").write_text("local.conf\n")
    (base / "local.conf").write_text("password=hunter2\n")
    before, status = _snapshot(base), git(base, "status", "--porcelain", "--ignored")
    old = tip(base)
    out = merge_stage(base, "main", "stage-1", message="m", merge_worktree=mw_path(tmp_path, "s"))
    assert out.kind is MergeKind.BLOCKED, out
    assert out.blocked_files == ("local.conf",)
    if ignored:
        assert "untracked or ignored files in the way in local.conf" in out.blocked_reason
    else:  # untracked: one of the user's uncommitted changes
        assert "uncommitted changes in local.conf" in out.blocked_reason
    assert tip(base) == old
    assert _snapshot(base) == before
    assert git(base, "status", "--porcelain", "--ignored") == status
    # moved away, the merge goes through
    (base / "local.conf").rename(tmp_path / "kept.conf")
    out = merge_stage(base, "main", "stage-1", message="m", merge_worktree=mw_path(tmp_path, "s"))
    assert out.kind is MergeKind.MERGED
    assert (base / "local.conf" / "a.txt").read_text() == "stage\n"


def test_deep_parent_and_symlink_in_the_way_block(base: Path, tmp_path: Path) -> None:
    stage(base, "stage-1", {"a/b/c/d.txt": "stage\n", "lnk/x.txt": "stage\n"})
    (base / "a").mkdir()
    (base / "a" / "b").write_text("mine\n")
    (base / "elsewhere").mkdir()
    (base / "lnk").symlink_to(base / "elsewhere")
    (base / ".git" / "info" / "exclude").write_text("a/\nlnk\nelsewhere/\n")
    before = _snapshot(base)
    old = tip(base)
    out = merge_stage(base, "main", "stage-1", message="m", merge_worktree=mw_path(tmp_path, "s"))
    assert out.kind is MergeKind.BLOCKED and out.blocked_files == ("a/b", "lnk")
    assert tip(base) == old and _snapshot(base) == before
    assert not (base / "elsewhere" / "x.txt").exists()


@pytest.mark.parametrize("ignored", [True, False])
def test_directory_becoming_a_file_keeps_the_users_files_inside(
    base: Path, tmp_path: Path, ignored: bool
) -> None:
    commit(base, {"tool/main.py": "print(1)\n"}, "a tracked directory")
    wt = base.parent / "wt-s1"
    git(base, "worktree", "add", "-q", "-b", "stage-1", str(wt), "main")
    git(wt, "rm", "-q", "-r", "tool")
    (wt / "tool").write_text("#!/bin/sh\n")
    git(wt, "add", "tool")
    git(wt, "commit", "-q", "-m", "tool becomes a script")
    if ignored:
        (base / ".git" / "info" / "exclude").write_text("*.pyc\n")
    (base / "tool" / "cache.pyc").write_bytes(b"\x00user data")
    before = _snapshot(base)
    old = tip(base)
    out = merge_stage(base, "main", "stage-1", message="m", merge_worktree=mw_path(tmp_path, "s"))
    assert out.kind is MergeKind.BLOCKED, out
    assert out.blocked_files == (("tool",) if ignored else ("tool", "tool/cache.pyc"))
    assert tip(base) == old and _snapshot(base) == before
    # without the user's file inside, the tracked directory becomes the file
    (base / "tool" / "cache.pyc").unlink()
    out = merge_stage(base, "main", "stage-1", message="m", merge_worktree=mw_path(tmp_path, "s"))
    assert out.kind is MergeKind.MERGED
    assert (base / "tool").read_text() == "#!/bin/sh\n"
    assert git(base, "status", "--porcelain") == ""


def test_untracked_directory_on_the_path_is_fine(base: Path, tmp_path: Path) -> None:
    stage(base, "stage-1", {"notes/new.txt": "stage\n"})
    (base / "notes").mkdir()
    (base / "notes" / "mine.txt").write_text("mine\n")
    out = merge_stage(base, "main", "stage-1", message="m", merge_worktree=mw_path(tmp_path, "s"))
    assert out.kind is MergeKind.MERGED
    assert (base / "notes" / "mine.txt").read_text() == "mine\n"
    assert (base / "notes" / "new.txt").read_text() == "stage\n"


# -- its cost ------------------------------------------------------------------------


def _merge_and_clean_up_calls(repo: Path, run: str, others: int) -> list[list[str]]:
    """The git calls of one clean merge into a checked-out base and its clean-up
    (as ``autorun merge`` does it), with ``others`` more worktrees in the repository."""
    from autorun_py import git as g
    from autorun_py import worktrees

    for i in range(others):
        git(repo, "worktree", "add", "-q", "--detach", str(repo.parent / f"other-{run}-{i}"))
    branch = f"autorun/{run}/stage-1-x"
    wt = worktrees.create(
        repo,
        Path(os.environ["AUTORUN_HOME"]) / "worktrees" / run / "stage-1",
        branch,
        "main",
        run=run,
    )
    commit(wt, {f"{run}.txt": "work\n"}, "stage work")
    calls: list[list[str]] = []
    real = g.run_git

    def counting(args: list[str], cwd: object, **kw: object) -> g.GitResult:
        calls.append(list(args))
        return real(args, cwd, **kw)  # type: ignore[arg-type]

    mp = pytest.MonkeyPatch()
    mp.setattr(g, "run_git", counting)
    try:
        out = merge_stage(
            repo, "main", branch, message="m", merge_worktree=mw_path(repo, f"merge-{run}")
        )
        assert out.kind is MergeKind.MERGED and out.updated_checkouts == (repo,)
        assert worktrees.try_remove(repo, wt, run=run, known=out.worktrees) is None
        assert worktrees.try_delete_branch(
            repo,
            branch,
            run=run,
            merged_into="main",
            merged_tip=out.stage_tip,
            known=out.worktrees,
        )
    finally:
        mp.undo()
    assert not wt.exists() and git(repo, "branch", "--list", branch) == ""
    assert (repo / f"{run}.txt").read_text() == "work\n"  # the checkout was carried
    return calls


def test_a_merge_lists_the_worktrees_once_and_costs_the_same_with_many(base: Path) -> None:
    """Issue 16: one `git worktree list` per merge (its clean-up included), no git
    call per other worktree, and at most 15 git calls in all."""
    few = _merge_and_clean_up_calls(base, "few", 0)
    many = _merge_and_clean_up_calls(base, "many", 24)
    assert [c[0] for c in few] == [c[0] for c in many]
    assert sum(c[:2] == ["worktree", "list"] for c in many) == 1
    assert len(many) <= 15, many


def test_the_common_dir_read_from_files_is_what_git_says(base: Path, tmp_path: Path) -> None:
    from autorun_py import git as g

    linked = tmp_path / "linked wt"
    git(base, "worktree", "add", "-q", "--detach", str(linked))
    (base / "sub").mkdir()
    for where in (base, linked):
        asked = git(where, "rev-parse", "--path-format=absolute", "--git-common-dir")
        assert g.common_dir_from_files(where) == Path(asked).resolve()
        assert g.common_dir(where) == Path(asked).resolve()
    assert g.common_dir_from_files(base / "sub") is None  # not a top level: git is asked
    assert g.common_dir(base / "sub") == (base / ".git").resolve()
