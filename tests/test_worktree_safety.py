"""autorun never destroys, leaks or mis-merges the user's work (issue 11).

The three reproductions of the issue, each from a fresh ``AUTORUN_HOME``; the
refusals of :mod:`autorun_py.worktrees` (only registered linked worktrees of
the run's repository under ``$AUTORUN_HOME/worktrees/<run>/``; only the run's
own ``autorun/<run>/...`` branches); ``stage start`` from a place that is not
the stage's worktree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autorun_py import paths, worktrees
from autorun_py.errors import AutorunError
from autorun_py.state import StatusStore
from tests.helpers import git, run_cli, write_plan


def _orchestrate_no_launch(repo: Path, stages: list[tuple[int, str, list[int]]]) -> Path:
    plan = write_plan(repo.parent, stages)
    out = run_cli(
        ["orchestrate", str(plan), "--no-launch", "--no-monitor", "--json"], repo, check=True
    )
    return Path(json.loads(out.stdout)["orch_dir"])


def _ctx(orch: Path, n: int) -> str:
    return str(orch / "stages" / f"stage-{n}-context.md")


def _tree_snapshot(root: Path) -> dict[str, bytes]:
    out = {}
    for p in sorted(root.rglob("*")):
        if ".git" in p.relative_to(root).parts:
            continue  # the work tree, not git's own bookkeeping
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


# --------------------------------------------------------------------------- reproductions


def test_retry_never_deletes_the_users_repository(repo: Path, quiet_agent: None) -> None:
    orch = _orchestrate_no_launch(repo, [(1, "Only", [])])
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "mine.txt").write_text("the user's own file\n")
    before = _tree_snapshot(repo)
    run_cli(["stage", "start", _ctx(orch, 1)], repo)
    run_cli(["stage", "fail", orch.name, "1", "--reason", "x"], repo)
    run_cli(["retry", orch.name, "1"], repo)
    assert (repo / ".git").is_dir(), "the project's .git was deleted"
    assert _tree_snapshot(repo) == before
    assert git(repo, "branch", "--show-current") == "feature"


def test_resume_never_removes_an_unrelated_repository(
    repo: Path, tmp_path: Path, quiet_agent: None, tmux_socket: str
) -> None:
    orch = _orchestrate_no_launch(repo, [(1, "Only", [])])
    other = tmp_path / "V"
    other.mkdir()
    git(other, "init", "-q", "-b", "main")
    (other / "history.txt").write_text("v1\n")
    git(other, "add", "history.txt")
    git(other, "commit", "-q", "-m", "V's history")
    git(other, "checkout", "-q", "-b", "work")
    (other / "uncommitted.txt").write_text("not committed anywhere\n")
    before = _tree_snapshot(other)
    head = git(other, "rev-parse", "HEAD")
    # The user's own shell in tmux, inside V, runs `stage start`.
    pane = subprocess.run(
        ["tmux", "-L", tmux_socket, "new-session", "-d", "-P", "-F", "#{pane_id}"]
        + ["-s", "users-shell", "-c", str(other), "sleep 600"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    run_cli(["stage", "start", _ctx(orch, 1)], other, env={"TMUX": "x", "TMUX_PANE": pane})
    subprocess.run(["tmux", "-L", tmux_socket, "kill-server"], capture_output=True, check=False)
    run_cli(["resume", str(orch), "--no-monitor"], repo)
    assert (other / ".git").is_dir(), "V's .git was deleted"
    assert _tree_snapshot(other) == before
    assert git(other, "rev-parse", "HEAD") == head


def test_merge_never_merges_the_callers_branch(repo: Path, quiet_agent: None) -> None:
    orch = _orchestrate_no_launch(repo, [(1, "Only", [])])
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "wip.txt").write_text("half done\n")
    git(repo, "add", "wip.txt")
    git(repo, "commit", "-q", "-m", "WIP not for main")
    run_cli(["stage", "start", _ctx(orch, 1)], repo)
    git(repo, "checkout", "-q", "main")
    run_cli(["merge", orch.name, "1"], repo)
    assert "WIP not for main" not in git(repo, "log", "--format=%s", "main")
    assert not (repo / "wip.txt").exists()


# --------------------------------------------------------------------------- stage start


def test_stage_start_elsewhere_is_refused_and_records_nothing(
    repo: Path, tmp_path: Path, quiet_agent: None
) -> None:
    orch = _orchestrate_no_launch(repo, [(1, "Only", [])])
    git(repo, "checkout", "-q", "-b", "feature")
    before = (orch / "status.json").read_bytes()
    proc = run_cli(["stage", "start", _ctx(orch, 1)], repo)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "stage 1 has no worktree yet" in proc.stderr and "launch-ready" in proc.stderr
    assert (orch / "status.json").read_bytes() == before
    # Once launched, only its own worktree (or a directory inside it) registers.
    run_cli(["launch-ready", str(orch)], repo, check=True)
    st = StatusStore(orch).read().stages[1]
    assert st.worktree and st.branch and st.branch.startswith(f"autorun/{orch.name}/")
    proc = run_cli(["stage", "start", _ctx(orch, 1)], repo)
    assert proc.returncode == 1 and f"is not stage 1's worktree ({st.worktree})" in proc.stderr
    mine = tmp_path / "my-own-worktree"
    git(repo, "worktree", "add", "-q", "-b", "mine", str(mine), "main")
    proc = run_cli(["stage", "start", _ctx(orch, 1)], mine)
    assert proc.returncode == 1 and "is not stage 1's worktree" in proc.stderr
    after = StatusStore(orch).read().stages[1]
    assert (after.worktree, after.branch) == (st.worktree, st.branch)
    sub = Path(st.worktree) / "sub"
    sub.mkdir()
    proc = run_cli(["stage", "start", _ctx(orch, 1), "--json"], sub)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["branch"] == st.branch


# --------------------------------------------------------------------------- legacy state


def _force_stage(orch: Path, n: int, **fields: object) -> None:
    raw = json.loads((orch / "status.json").read_text())
    raw["stages"][str(n)].update(fields)
    (orch / "status.json").write_text(json.dumps(raw))


def test_a_state_naming_the_users_checkout_is_never_deleted_or_merged(
    repo: Path, tmp_path: Path, quiet_agent: None
) -> None:
    """status.json written by an older autorun (or by hand) that names the user's
    checkout and branch: retry, resume and merge refuse instead of acting."""
    orch = _orchestrate_no_launch(repo, [(1, "Only", [])])
    git(repo, "checkout", "-q", "-b", "feature")
    git(repo, "commit", "-q", "--allow-empty", "-m", "WIP not for main")
    git(repo, "checkout", "-q", "main")
    before = _tree_snapshot(repo)
    _force_stage(orch, 1, status="in_progress", worktree=str(repo), branch="feature")
    proc = run_cli(["merge", orch.name, "1"], repo)
    assert proc.returncode == 1 and "not a branch autorun created" in proc.stderr
    assert "WIP not for main" not in git(repo, "log", "--format=%s", "main")
    run_cli(["resume", str(orch), "--no-monitor"], repo)
    assert _tree_snapshot(repo) == before
    _force_stage(orch, 1, status="failed", worktree=str(repo), branch="feature")
    run_cli(["retry", orch.name, "1"], repo)
    assert (repo / ".git").is_dir() and _tree_snapshot(repo) == before
    assert git(repo, "rev-parse", "--verify", "feature")


# --------------------------------------------------------------------------- the module


def _run_root(run: str) -> Path:
    return paths.layout().worktrees / run


def test_remove_refuses_everything_it_did_not_create(repo: Path, tmp_path: Path) -> None:
    run = "demo-run"
    wt = _run_root(run) / "stage-1"
    worktrees.create(repo, wt, f"autorun/{run}/stage-1-x", "main", run=run)
    assert (wt / ".git").is_file()
    # the main worktree, a plain directory, a linked worktree outside the root
    outside = tmp_path / "outside"
    git(repo, "worktree", "add", "-q", "-b", "mine", str(outside), "main")
    plain = _run_root(run) / "plain"
    plain.mkdir()
    (plain / "f").write_text("x")
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q", "-b", "main")
    git(other, "commit", "-q", "--allow-empty", "-m", "o")
    foreign = _run_root(run) / "foreign"
    git(other, "worktree", "add", "-q", "-b", "f", str(foreign), "main")
    link = _run_root(run) / "link"
    link.symlink_to(outside)
    for path, why in (
        (repo, "not under"),
        (outside, "not under"),
        (plain, "not a registered linked worktree"),
        (foreign, "not a registered linked worktree"),
        (link, "not under"),
        (_run_root(run), "not under"),
        (_run_root("other-run") / "stage-1", "not under"),
        (paths.autorun_home(), "not under"),
    ):
        with pytest.raises(AutorunError, match=why):
            worktrees.remove(repo, path, run=run)
    assert (repo / ".git").is_dir() and (outside / ".git").is_file()
    assert (plain / "f").exists() and (foreign / ".git").is_file() and link.is_symlink()
    # ... and removes its own, also when locked and holding untracked files.
    git(repo, "worktree", "lock", str(wt))
    (wt / "untracked.txt").write_text("u")
    worktrees.remove(repo, wt, run=run)
    assert not wt.exists()
    assert str(wt) not in git(repo, "worktree", "list")
    worktrees.remove(repo, wt, run=run)  # gone already: nothing to do


def test_remove_refuses_the_main_worktree_even_under_the_root(tmp_path: Path) -> None:
    run = "r"
    inner = _run_root(run) / "stage-1"
    inner.mkdir(parents=True)
    git(inner, "init", "-q", "-b", "main")
    git(inner, "commit", "-q", "--allow-empty", "-m", "x")
    with pytest.raises(AutorunError, match="main worktree"):
        worktrees.remove(inner, inner, run=run)
    assert (inner / ".git").is_dir()


def test_create_clears_only_its_own_leftovers(repo: Path, tmp_path: Path) -> None:
    run = "r"
    wt = _run_root(run) / "stage-1"
    worktrees.create(repo, wt, f"autorun/{run}/stage-1-a", "main", run=run)
    # a registered leftover of an earlier attempt is replaced, its branch kept
    worktrees.create(repo, wt, f"autorun/{run}/stage-1-a-retry1", "main", run=run)
    assert git(wt, "branch", "--show-current") == f"autorun/{run}/stage-1-a-retry1"
    assert git(repo, "rev-parse", "--verify", f"autorun/{run}/stage-1-a")
    # a directory git no longer knows (its registration pruned) is an orphan of ours
    shutil.rmtree(repo / ".git" / "worktrees" / "stage-1")
    assert worktrees.ensure(repo, wt, f"autorun/{run}/stage-1-a-retry1", "main", run=run)
    assert git(wt, "branch", "--show-current") == f"autorun/{run}/stage-1-a-retry1"
    assert not worktrees.ensure(repo, wt, f"autorun/{run}/stage-1-a-retry1", "main", run=run)
    # a repository placed there is not ours to delete
    rogue = _run_root(run) / "stage-2"
    rogue.mkdir()
    git(rogue, "init", "-q")
    with pytest.raises(AutorunError, match="not autorun's"):
        worktrees.create(repo, rogue, f"autorun/{run}/stage-2-b", "main", run=run)
    assert (rogue / ".git").is_dir()
    with pytest.raises(AutorunError, match="not a branch autorun created"):
        worktrees.create(repo, _run_root(run) / "stage-3", "feature", "main", run=run)
    with pytest.raises(AutorunError, match="not under"):
        worktrees.create(repo, tmp_path / "x", f"autorun/{run}/stage-3", "main", run=run)


def test_create_where_a_registered_worktree_vanished(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stage worktree whose directory someone deleted is still registered: git's
    `worktree add` refuses its path until `worktree prune`, which runs only then
    (read from the admin dirs' gitdir files, issue 16)."""
    from autorun_py import git as gitmod

    run = "r"
    wt = _run_root(run) / "stage-1"
    calls: list[list[str]] = []
    real_run_git = gitmod.run_git

    def counting(args: list[str], *a: object, **k: object) -> gitmod.GitResult:
        calls.append(list(args))
        return real_run_git(args, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(gitmod, "run_git", counting)
    worktrees.create(repo, wt, f"autorun/{run}/stage-1-a", "main", run=run)
    assert ["worktree", "prune"] not in calls  # nothing registered there
    shutil.rmtree(wt)
    assert "stage-1" in os.listdir(repo / ".git" / "worktrees")  # still registered
    calls.clear()
    worktrees.create(repo, wt, f"autorun/{run}/stage-1-b", "main", run=run)
    assert ["worktree", "prune"] in calls
    assert git(wt, "branch", "--show-current") == f"autorun/{run}/stage-1-b"
    # another worktree's registration at another path does not call for a prune
    other = _run_root(run) / "stage-2"
    calls.clear()
    worktrees.create(repo, other, f"autorun/{run}/stage-2-a", "main", run=run)
    assert ["worktree", "prune"] not in calls


def test_detached_worktrees_for_merges_and_verification(repo: Path) -> None:
    run = "r"
    mw = _run_root(run) / "verify-1"
    head = git(repo, "rev-parse", "HEAD")
    worktrees.create_detached(repo, mw, head)
    assert git(mw, "rev-parse", "HEAD") == head
    assert git(mw, "branch", "--show-current") == ""
    assert [w.path for w in worktrees.list_run(repo, run)] == [mw.resolve()]
    worktrees.remove(repo, mw)
    assert not mw.exists() and worktrees.list_run(repo, run) == []


def test_branch_deletion_only_of_the_runs_own_merged_branches(repo: Path) -> None:
    run = "r"
    mine = f"autorun/{run}/stage-1-x"
    wt = _run_root(run) / "stage-1"
    worktrees.create(repo, wt, mine, "main", run=run)
    git(wt, "commit", "-q", "--allow-empty", "-m", "work")
    git(repo, "branch", "feature")
    git(repo, "branch", "autorun/other-run/stage-1-x")
    with pytest.raises(AutorunError, match="not a branch autorun created"):
        worktrees.delete_branch(repo, "feature", run=run)
    with pytest.raises(AutorunError, match="not a branch autorun created"):
        worktrees.delete_branch(repo, "autorun/other-run/stage-1-x", run=run)
    assert worktrees.delete_branch(repo, mine, run=run, merged_into="main") is False  # unmerged
    git(repo, "merge", "-q", "--no-edit", mine)
    assert worktrees.delete_branch(repo, mine, run=run, merged_into="main") is False  # checked out
    worktrees.remove(repo, wt, run=run)
    assert worktrees.delete_branch(repo, mine, run=run, merged_into="main") is True
    assert git(repo, "branch", "--list", mine) == ""
    assert worktrees.delete_branch(repo, mine, run=run, merged_into="main") is False
    assert git(repo, "rev-parse", "--verify", "feature")


def test_try_remove_never_raises(repo: Path, tmp_path: Path) -> None:
    warn = worktrees.try_remove(repo, repo, run="r")
    assert warn is not None and "not under" in warn and (repo / ".git").is_dir()
    assert worktrees.try_remove(repo, _run_root("r") / "absent", run="r") is None
    assert os.path.isdir(repo)


def test_the_delayed_clean_up_refuses_what_autorun_did_not_create(
    repo: Path, tmp_path: Path
) -> None:
    from autorun_py import killer

    git(repo, "branch", "feature")
    orch = paths.layout().orchestration / "some-run"
    before = _tree_snapshot(repo)
    args = ["-", "0", "--owner", str(orch), "--then-clean", str(repo), str(repo), "feature", "main"]
    assert killer.main(args) == 0
    assert (repo / ".git").is_dir() and _tree_snapshot(repo) == before
    assert git(repo, "rev-parse", "--verify", "feature")
    # and without --owner it cleans nothing at all
    wt = _run_root("some-run") / "stage-1"
    worktrees.create(repo, wt, "autorun/some-run/stage-1-x", "main", run="some-run")
    killer.main(["-", "0", "--then-clean", str(repo), str(wt), "", "main"])
    assert wt.is_dir()
    killer.main(["-", "0", "--owner", str(orch), "--then-clean", str(repo), str(wt), "", "main"])
    assert not wt.exists()
    # after a merge: the branch goes only while it points at the merged tip
    branch = "autorun/some-run/stage-2-x"
    for moved in (True, False):
        wt = _run_root("some-run") / "stage-2"
        worktrees.create(repo, wt, branch, "main", run="some-run")
        merged = git(repo, "rev-parse", "main")
        if moved:
            git(wt, "commit", "-q", "--allow-empty", "-m", "work after the merge")
        clean = ["--then-clean", str(repo), str(wt), branch, "main", "--merged-tip", merged]
        assert killer.main(["-", "0", "--owner", str(orch), *clean]) == 0
        assert not wt.exists()
        assert (git(repo, "branch", "--list", branch) != "") is moved
        git(repo, "branch", "-D", branch, check=False)


# --------------------------------------------------------------------------- SIGKILL


def test_launch_killed_at_every_git_step_is_brought_back_by_resume(
    tmp_path: Path, tmux_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``launch-ready`` SIGKILLed before each of its git calls (a git wrapper first
    on PATH kills its parent): ``resume`` then brings the stage up in autorun's own
    worktree on its own branch, and nothing else is touched."""
    from tests.killharness import WRAPPER

    monkeypatch.setenv("AUTORUN_CLAUDE", sys.executable)
    monkeypatch.setenv("AUTORUN_AGENT_ARGS", "-c 'import time; time.sleep(600)'")
    wrap = tmp_path / "gitwrap"
    wrap.mkdir()
    (wrap / "git").write_text(WRAPPER)
    (wrap / "git").chmod(0o755)
    real_git = shutil.which("git")
    assert real_git
    k, finished = 0, False
    while not finished:
        k += 1
        assert k < 60, "launch-ready never ran to the end"
        d = tmp_path / f"k{k}"
        project = d / "project"
        project.mkdir(parents=True)
        git(project, "init", "-q", "-b", "main")
        (project / "mine.txt").write_text("the user's\n")
        # a .worktreeinclude makes launch call git after the worktree exists, too
        (project / ".gitignore").write_text("local.env\n")
        (project / ".worktreeinclude").write_text("local.env\n")
        (project / "local.env").write_text("SECRET=1\n")
        git(project, "add", "mine.txt", ".gitignore", ".worktreeinclude")
        git(project, "commit", "-q", "-m", "init")
        before = _tree_snapshot(project)
        plan = write_plan(d, [(1, "Only", [])], name=f"plan-k{k}.md")
        out = run_cli(["orchestrate", str(plan), "--no-launch", "--no-monitor", "--json"], project)
        orch = Path(json.loads(out.stdout)["orch_dir"])
        env = {
            "PATH": f"{wrap}{os.pathsep}{os.environ['PATH']}",
            "KILLGIT_AT": str(k),
            "KILLGIT_REAL": real_git,
            "KILLGIT_COUNT": str(d / "count"),
            "KILLGIT_LOG": str(d / "log"),
        }
        killed = run_cli(["launch-ready", str(orch)], project, env=env)
        finished = killed.returncode == 0
        if not finished:
            assert killed.returncode == -9, killed.stderr
            run_cli(["resume", str(orch), "--no-monitor"], project, check=True)
        st = StatusStore(orch).read().stages[1]
        assert st.status == "in_progress", (k, st.status, st.failure)
        assert st.worktree and st.branch and st.branch.startswith(f"autorun/{orch.name}/")
        wt = Path(st.worktree)
        assert worktrees.is_valid(project, wt), k
        assert git(wt, "branch", "--show-current") == st.branch
        assert [w.path for w in worktrees.list_run(project, orch.name)] == [wt.resolve()]
        assert sorted(p.name for p in worktrees.run_root(orch.name).iterdir()) == ["stage-1"]
        assert _tree_snapshot(project) == before
        assert git(project, "branch", "--show-current") == "main"
        assert session_alive_for(st.session, str(orch)), k
        assert (wt / "local.env").read_text() == "SECRET=1\n"
    print(f"launch-ready killed at each of its {k - 1} git calls; resume recovered every one")
    assert k > 4  # there were git steps to kill at, also after the worktree was made


def session_alive_for(name: str | None, orch: str) -> bool:
    from autorun_py.tmux import Tmux

    return Tmux.from_env().session_alive(name, orch)


def test_kill_server_of_a_private_tmux_takes_its_socket_and_nothing_else(
    tmux_socket: str, tmp_path: Path
) -> None:
    import os

    from autorun_py.tmux import Tmux

    tmux = Tmux(tmux_socket)
    tmux.run(["new-session", "-d", "-s", "held", "sleep", "30"])
    where = Path(tmux.out(["display-message", "-p", "#{socket_path}"]).strip())
    assert where.exists()
    tmux.kill_server()
    assert not where.exists()
    # a regular file, or a socket of another name, is never deleted
    fake = tmp_path / "tmux-0" / tmux_socket
    fake.parent.mkdir()
    fake.write_text("mine\n")
    with pytest.raises(AutorunError):
        worktrees.remove_tmux_socket(fake, tmux_socket)
    with pytest.raises(AutorunError):
        worktrees.remove_tmux_socket(fake, "other")
    assert fake.read_text() == "mine\n" and os.path.exists(fake)


def test_a_listing_read_earlier_never_lets_remove_delete_what_took_its_place(
    repo: Path, tmp_path: Path
) -> None:
    """A merge lists the worktrees once and removes the stage worktree on that
    listing; if the worktree went and something else took its place meanwhile, the
    files are deleted only after the registration was read again."""
    run = "r"
    wt = _run_root(run) / "stage-1"
    worktrees.create(repo, wt, f"autorun/{run}/stage-1-x", "main", run=run)
    stale = worktrees.listing(repo)
    git(repo, "worktree", "remove", "--force", str(wt))
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q", "-b", "main")
    git(other, "commit", "-q", "--allow-empty", "-m", "o")
    git(other, "worktree", "add", "-q", "-b", "f", str(wt), "main")
    (wt / "theirs.txt").write_text("theirs\n")
    with pytest.raises(AutorunError, match="not a registered linked worktree"):
        worktrees.remove(repo, wt, run=run, known=stale)
    assert (wt / "theirs.txt").read_text() == "theirs\n" and (wt / ".git").is_file()
    # on a listing that is still true, one `git worktree remove` and it is gone
    mine = _run_root(run) / "stage-2"
    worktrees.create(repo, mine, f"autorun/{run}/stage-2-x", "main", run=run)
    known = worktrees.listing(repo)
    worktrees.remove(repo, mine, run=run, known=known)
    assert not mine.exists() and known.find(mine.resolve()) == (None, False)


def test_branch_deleted_on_a_known_merged_tip_only_while_it_points_there(repo: Path) -> None:
    run = "r"
    mine = f"autorun/{run}/stage-1-x"
    git(repo, "branch", mine)
    merged = git(repo, "rev-parse", mine)
    git(repo, "commit", "-q", "--allow-empty", "-m", "base moves on")
    wt = _run_root(run) / "stage-1"
    worktrees.attach(repo, wt, mine, run=run)
    git(wt, "commit", "-q", "--allow-empty", "-m", "stage work after the merge")
    worktrees.remove(repo, wt, run=run)
    # the branch gained a commit after `merged`: compare-and-delete refuses, nothing lost
    assert worktrees.delete_branch(repo, mine, run=run, merged_tip=merged) is False
    assert git(repo, "rev-parse", mine) != merged
    git(repo, "branch", "-f", mine, merged)
    git(repo, "config", f"branch.{mine}.note", "x")
    assert worktrees.delete_branch(repo, mine, run=run, merged_tip=merged) is True
    assert git(repo, "branch", "--list", mine) == ""
    assert mine not in (repo / ".git" / "config").read_text()  # its config section went too
