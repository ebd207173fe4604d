"""Runs never touch each other's sessions (issue 11 item 5), and an interrupted
``orchestrate`` leaves no ``.creating-*`` directory behind for good (item 10).

- Two ``orchestrate`` processes started together for plans with the same slug
  (``wave1-token-design-audit.md`` and ``wave2-token-cost-audit.md`` both give
  ``token-audit``) always get different slugs: slugs are allocated under a lock.
- A run never kills or types into a tmux session whose ``AUTORUN_ORCH_DIR`` is
  not its own: launch (the "kill the leftover session of that name" step),
  undoing a failed launch, retry, the monitor's nudges and recovery, and the
  delayed killer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autorun_py import killer, launch, paths
from autorun_py.config import load_config
from autorun_py.errors import AutorunError
from autorun_py.plan import load_plan
from autorun_py.rundir import create_orchestration, sweep_creating
from autorun_py.stalls import type_continue
from autorun_py.state import StatusStore
from autorun_py.tmux import Tmux
from tests.helpers import git, wait_until, write_plan

PLANS = ("wave1-token-design-audit.md", "wave2-token-cost-audit.md")


def _orchestrate_proc(plan: Path, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "autorun_py", "orchestrate", str(plan)]
        + ["--no-launch", "--no-monitor", "--json"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_concurrent_orchestrates_always_get_different_slugs(tmp_path: Path) -> None:
    rounds = 20
    slugs: list[str] = []
    for i in range(rounds):
        d = tmp_path / f"round{i}"
        d.mkdir()
        project = d / "project"
        project.mkdir()
        git(project, "init", "-q", "-b", "main")
        git(project, "commit", "-q", "--allow-empty", "-m", "init")
        plans = [write_plan(d, [(1, "Only", [])], name=name) for name in PLANS]
        procs = [_orchestrate_proc(p, project) for p in plans]
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            orch = Path(json.loads(out)["orch_dir"])
            slugs.append(json.loads((orch / "status.json").read_text())["project_slug"])
    assert len(slugs) == 2 * rounds
    assert len(set(slugs)) == len(slugs), sorted(slugs)
    assert "token-audit" in slugs
    # Nothing half-made is left behind.
    assert not list(paths.layout().orchestration.glob(".creating-*"))


def test_interrupted_orchestrate_leftovers_are_swept(repo: Path) -> None:
    root = paths.layout().orchestration
    root.mkdir(parents=True, exist_ok=True)
    # a killed creator (its pid is gone), an old one of an earlier version (no pid),
    # a fresh one of a live process, and a lookalike that is not a directory
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone = root / f".creating-plan.pid{dead.pid}-abc"
    (gone / "stages").mkdir(parents=True)
    (gone / "status.json").write_text("{}")
    old = root / ".creating-plan-xyz123"
    old.mkdir()
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    live = root / f".creating-plan.pid{os.getpid()}-def"
    live.mkdir()
    fresh = root / ".creating-plan-q1w2e3"
    fresh.mkdir()
    not_dir = root / ".creating-file"
    not_dir.write_text("x")
    outside = repo / "keep"
    outside.mkdir()
    link = root / f".creating-link.pid{dead.pid}-x"
    link.symlink_to(outside)
    swept = sweep_creating()
    assert sorted(p.name for p in swept) == sorted([gone.name, old.name])
    assert not gone.exists() and not old.exists()
    assert live.is_dir() and fresh.is_dir() and not_dir.is_file()
    assert link.is_symlink() and outside.is_dir()
    # orchestrate sweeps too (under its lock)
    live.rename(root / f".creating-plan.pid{dead.pid}-ghi")
    create_orchestration(load_plan(write_plan(repo, [(1, "Only", [])])), repo)
    assert not (root / f".creating-plan.pid{dead.pid}-ghi").exists()
    assert fresh.is_dir()


# --------------------------------------------------------------------------- sessions


def test_a_slug_whose_session_names_are_taken_is_stepped_over(repo: Path, tmux_socket: str) -> None:
    tmux = Tmux.from_env()
    tmux.new_session("token-audit_stage-1", ["sleep", "600"], cwd=repo)
    plan = write_plan(repo.parent, [(1, "Only", [])], name=PLANS[0])
    assert create_orchestration(load_plan(plan), repo).project_slug == "token-audit-2"
    assert tmux.has_session("token-audit_stage-1")


def _run(repo: Path, name: str) -> Path:
    plan = write_plan(repo.parent, [(1, "Only", [])], name=name)
    return Path(create_orchestration(load_plan(plan), repo).orch_dir)


def test_run_b_never_kills_or_types_into_run_a_session(
    repo: Path, tmux_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTORUN_CLAUDE", "true")
    tmux = Tmux.from_env()
    run_a, run_b = _run(repo, "plan-a.md"), _run(repo, "plan-b.md")
    # As the old slug race made them: both runs with the same slug.
    slug = StatusStore(run_a).read().project_slug
    with StatusStore(run_b).transaction() as txn:
        txn.state.project_slug = slug
    name = f"{slug}_stage-1"
    pane = tmux.new_session(
        name,
        [sys.executable, "-c", "import time; time.sleep(600)"],
        cwd=repo,
        env={"AUTORUN_ORCH_DIR": str(run_a)},
    )
    assert tmux.owned_by(name, str(run_a)) and not tmux.owned_by(name, str(run_b))

    def a_alive() -> bool:
        return tmux.session_alive(name, str(run_a)) and tmux.list_panes(name)[0]["pane_id"] == pane

    # launch of B: its stage session has A's session's name; refused, A's session lives
    res = launch.launch_ready(run_b, config=load_config(os.environ))
    assert res.launched == [] and res.failed
    assert "belongs to run" in res.failed[0][1] and str(run_a) in res.failed[0][1]
    assert a_alive()
    # B's monitor does not see it as its own, and cannot type into it
    assert not tmux.session_alive(name, str(run_b)) and tmux.live_pane(name, str(run_b)) is None
    with pytest.raises(AutorunError, match="not in a session of this run"):
        type_continue(tmux, pane, owner=str(run_b))
    # B's delayed killer (after a merge) leaves it alone; A's own one kills it
    assert killer.main([name, "0", "--session", "--owner", str(run_b)]) == 0
    assert a_alive()
    assert not tmux.kill_owned_session(name, str(run_b)) and a_alive()
    # a session that is nobody's run (the user's own) is left alone too
    tmux.new_session("users", [sys.executable, "-c", "import time; time.sleep(600)"], cwd=repo)
    assert killer.main(["users", "0", "--session", "--owner", str(run_b)]) == 0
    assert tmux.has_session("users")
    assert killer.main([name, "0", "--session", "--owner", str(run_a)]) == 0
    wait_until(lambda: not tmux.has_session(name), what="A's session killed by A")


def test_the_tmux_side_delayed_kill_keeps_to_the_owner_and_skips_recovery(
    repo: Path, tmux_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill_later without clean-up: tmux kills the target itself (no killer process),
    only a session or pane of the owner's run, and the session-closed hook starts no
    recovery for a session ended so (a session killed otherwise still gets one)."""
    monkeypatch.setenv("AUTORUN_CLAUDE", "true")
    tmux = Tmux.from_env()
    plan_a = write_plan(repo.parent, [(1, "One", []), (2, "Two", [])], name="plan-a.md")
    run_a = Path(create_orchestration(load_plan(plan_a), repo).orch_dir)
    run_b = _run(repo, "plan-b.md")
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
    names = {}
    for n in (1, 2):  # two running stages of A, each in its session
        names[n] = f"a-stage-{n}"
        tmux.new_session(names[n], sleeper, cwd=repo, env={"AUTORUN_ORCH_DIR": str(run_a)})
    with StatusStore(run_a).transaction() as txn:
        for n in (1, 2):
            txn.state.stages[n].status = "in_progress"
            txn.state.stages[n].session = names[n]
    tmux.new_session("users", sleeper, cwd=repo)
    launch.watch_session_close(tmux)
    # B's leaves A's session alone; nobody's session is left alone
    launch.kill_later(names[1], 0, session=True, owner=str(run_b))
    launch.kill_later("users", 0, session=True, owner=str(run_b))
    pane = tmux.list_panes(names[2])[0]["pane_id"]
    launch.kill_later(pane, 0, owner=str(run_b))
    time.sleep(0.5)
    assert tmux.has_session(names[1]) and tmux.has_session("users")
    assert tmux.list_panes(names[2])[0]["pane_id"] == pane
    # A's own: gone, after the delay, with no recovery started for it
    t0 = time.monotonic()
    launch.kill_later(names[1], 0.3, session=True, owner=str(run_a))
    assert tmux.has_session(names[1])
    wait_until(lambda: not tmux.has_session(names[1]), what="A's session killed by A")
    assert time.monotonic() - t0 >= 0.25
    assert tmux.has_session("users")
    # the control: a session that just ends is looked at by the hook
    tmux.kill_session(names[2])
    hooks_log = paths.layout().hooks_log
    wait_until(
        lambda: hooks_log.exists() and f"session {names[2]}" in hooks_log.read_text(),
        what="the session-closed hook for the session that ended",
    )
    assert f"session {names[1]}" not in hooks_log.read_text()
    assert "autorun-done-" not in hooks_log.read_text()


def test_a_new_session_does_not_inherit_autorun_settings_the_server_started_with(
    tmux_socket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The private server outlives the command that started it (exit-empty off): a
    session started later gets that command's AUTORUN_* settings, not the server's."""
    from autorun_py.tmux import Tmux

    monkeypatch.setenv("AUTORUN_STANDIN_FAIL", "2")
    tmux = Tmux(tmux_socket)
    tmux.run(["new-session", "-d", "-s", "first", "sleep", "30"])  # the server, with FAIL
    assert "AUTORUN_STANDIN_FAIL=2" in tmux.run(["show-environment", "-g"]).stdout
    monkeypatch.delenv("AUTORUN_STANDIN_FAIL")
    out = tmp_path / "env.txt"
    tmux.new_session(
        "second",
        ["sh", "-c", f'printf "%s" "${{AUTORUN_STANDIN_FAIL-unset}}" > {out}; sleep 30'],
        cwd=tmp_path,
        env={"AUTORUN_ORCH_DIR": str(tmp_path)},
    )
    deadline = time.monotonic() + 10
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert out.read_text() == ""  # blank, not "2" (autorun reads empty as unset)
