"""Launching and scheduling with real git, a private tmux server and a stand-in agent."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from autorun_py.config import load_config
from autorun_py.orchestrate import run_orchestrate
from autorun_py.state import StatusStore
from autorun_py.tmux import Tmux
from tests.helpers import (
    git,
    read_events,
    run_cli,
    standin_env,
    wait_finished,
    wait_until,
    write_plan,
)

# A diamond (1 -> 2,3 -> 4) and a long chain (5 -> 6 -> 7 is too long for 6 stages:
# 1 -> 5 -> 6 hangs off the diamond's root).
SIX = [
    (1, "Root", []),
    (2, "Left", [1]),
    (3, "Right", [1]),
    (4, "Join", [2, 3]),
    (5, "Chain A", [1]),
    (6, "Chain B", [5]),
]


def _max_running(events: list[dict[str, object]]) -> int:
    running, peak = set(), 0
    for ev in events:
        if ev["type"] == "stage_started":
            running.add(ev["stage"])
        elif ev["type"] in ("stage_completed", "stage_failed"):
            running.discard(ev["stage"])
        peak = max(peak, len(running))
    return peak


def test_six_stage_plan_completes_exactly_once(
    repo: Path, tmux_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin_env(monkeypatch)
    plan = write_plan(repo, SIX)
    outcome = run_orchestrate(plan, repo, monitor=False, config=load_config(os.environ))
    assert outcome.launched == [1]
    orch = Path(outcome.orch_dir)
    wait_finished(orch)
    # status.json is written before the transaction's events are appended: wait for the
    # event this test reads, not for the state (which may say "completed" first).
    wait_until(
        lambda: any(ev["type"] == "orchestration_complete" for ev in read_events(orch)),
        timeout=30,
        what="the orchestration_complete event",
    )
    raw = StatusStore(orch).read_raw()
    assert raw["status"] == "completed"
    events = read_events(orch)
    launches = Counter(ev["stage"] for ev in events if ev["type"] == "stage_launched")
    assert launches == {n: 1 for n in range(1, 7)}  # no stage launched twice
    merges = Counter(ev["stage"] for ev in events if ev["type"] == "merge_complete")
    assert merges == {n: 1 for n in range(1, 7)}
    assert events[-1]["type"] == "orchestration_complete"
    # Every stage branched from a base that already held all its dependencies' merges.
    for key, st in raw["stages"].items():
        for dep in st["depends_on"]:
            dep_merge = raw["stages"][str(dep)]["merge_commit"]
            assert (
                subprocess.run(
                    [
                        "git",
                        "-C",
                        str(repo),
                        "merge-base",
                        "--is-ancestor",
                        dep_merge,
                        st["start_commit"],
                    ]
                ).returncode
                == 0
            ), f"stage {key} started before stage {dep} was merged"
    # The work is on main, one merge commit per stage, and the user's checkout followed.
    assert git(repo, "rev-parse", "HEAD") == git(repo, "rev-parse", "main")
    for n in range(1, 7):
        assert (repo / "stages" / f"stage-{n}.md").is_file()
    assert len(git(repo, "log", "--merges", "--oneline").splitlines()) == 6
    assert git(repo, "status", "--porcelain") == "?? master_plan.md"  # the plan itself
    # Worktrees and branches are cleaned up (the last merge does it after the run's
    # completion is recorded, so wait for it).
    wait_until(
        lambda: (
            len(git(repo, "worktree", "list").splitlines()) == 1
            and git(repo, "branch", "--list", "autorun/*") == ""
        ),
        timeout=30,
        what="the last stage's worktree and branch to be removed",
    )
    # Each pane's output was logged; sessions close after their merge returned.
    logs = Path(os.environ["AUTORUN_HOME"]) / "logs"
    for n in range(1, 7):
        assert "stand-in agent" in (logs / f"master-plan_stage-{n}.log").read_text()
    tmux = Tmux(tmux_socket)
    deadline = time.monotonic() + 10
    while tmux.list_sessions() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert tmux.list_sessions() == []


def test_max_parallel_cap_and_longest_path_first(
    repo: Path, tmux_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin_env(monkeypatch, delay="0.3-0.5")
    stages = [(1, "Short", []), (2, "Chain head", []), (3, "Chain mid", [2]), (4, "Tail", [3])]
    plan = write_plan(repo, stages)
    outcome = run_orchestrate(
        plan, repo, max_parallel=1, monitor=False, config=load_config(os.environ)
    )
    assert outcome.launched == [2]  # on the longest remaining path
    orch = Path(outcome.orch_dir)
    assert wait_finished(orch)["status"] == "completed"
    events = read_events(orch)
    assert _max_running(events) == 1
    order = [ev["stage"] for ev in events if ev["type"] == "stage_launched"]
    assert order == [2, 3, 1, 4]  # remaining path 3, then 2 > 1, then ties by number


def test_waves_schedule_keeps_the_barrier(
    repo: Path, tmux_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin_env(monkeypatch)
    plan = write_plan(repo, SIX)
    outcome = run_orchestrate(
        plan, repo, schedule="waves", monitor=False, config=load_config(os.environ)
    )
    orch = Path(outcome.orch_dir)
    raw = wait_finished(orch)
    assert raw["status"] == "completed" and raw["schedule"] == "waves"
    events = read_events(orch)
    waves = raw["waves"]
    wave_of = {n: i for i, w in enumerate(waves) for n in w}
    done: set[int] = set()
    for ev in events:
        if ev["type"] == "stage_completed":
            done.add(ev["stage"])
        if ev["type"] == "stage_launched":
            earlier = {n for w in waves[: wave_of[ev["stage"]]] for n in w}
            assert earlier <= done, f"stage {ev['stage']} launched before its wave barrier"


def test_dry_run_touches_nothing_and_json(repo: Path, autorun_home: Path) -> None:
    plan = write_plan(repo, SIX)
    proc = run_cli(["orchestrate", str(plan), "--dry-run", "--json"], repo)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["launched"] == [1] and data["pending"] == [2, 3, 4, 5, 6] and data["dry_run"]
    assert not (autorun_home / "orchestration").exists() or not any(
        (autorun_home / "orchestration").iterdir()
    )
    text = run_cli(["orchestrate", str(plan), "--dry-run"], repo).stdout
    assert "Wave 1 to launch (1 stages)" in text and "Wave 2: stages 2, 3, 5" in text


def test_orchestrate_json_and_summary(
    repo: Path, tmux_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTORUN_CLAUDE", "true")  # an agent that does nothing
    plan = write_plan(repo, SIX)
    proc = run_cli(["orchestrate", str(plan), "--json", "--no-monitor"], repo)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) == {
        "orch_dir",
        "status_file",
        "launched",
        "pending",
        "max_parallel",
        "max_parallel_reason",
        "verify",  # the merge gate (null command: not gated)
        "launchers",  # the run's launchers with their caps
        "placed",  # each launched stage's launcher
    }
    assert data["launchers"] == [{"name": "tmux", "max_parallel": None}]
    assert data["placed"] == {"1": "tmux"}
    assert data["verify"]["command"] is None
    assert data["launched"] == [1] and data["pending"] == [2, 3, 4, 5, 6]
    st = json.loads(Path(data["status_file"]).read_text())["stages"]["1"]
    assert st["status"] == "in_progress" and st["session"] == "master-plan_stage-1"
    assert st["claude_session_id"] and st["branch"].startswith("autorun/master-plan/stage-1-")
    # Launching again is idempotent.
    again = json.loads(run_cli(["launch-ready", data["orch_dir"], "--json"], repo).stdout)
    assert again["launched"] == [] and again["running"] == [1]


def test_hostile_names_never_reach_a_shell(
    repo: Path, tmux_socket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    canary = tmp_path / "CANARY"
    standin_env(monkeypatch)
    evil = f"$(touch {canary}) `touch {canary}` \"q\" 'x' ; touch {canary} &"
    plan_dir = tmp_path / "plans $(touch CANARY)"
    plan_dir.mkdir()
    plan = write_plan(
        plan_dir, [(1, evil, []), (2, f"then {evil}", [1])], name="wave_3 $(touch x) `y` plan.md"
    )
    proc = run_cli(["orchestrate", str(plan), "--no-monitor"], repo)
    assert proc.returncode == 0, proc.stderr
    orch = Path(_only_run())
    raw = wait_finished(orch)
    assert raw["status"] == "completed"
    assert not canary.exists() and not (repo / "CANARY").exists()
    assert raw["project_slug"] and all(c.isalnum() or c == "-" for c in raw["project_slug"])


def _only_run() -> str:
    root = Path(os.environ["AUTORUN_HOME"]) / "orchestration"
    (run,) = [p for p in root.iterdir() if (p / "status.json").exists()]
    return str(run)


def test_environment_reaches_sessions_of_an_older_server(
    repo: Path, tmux_socket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A server started earlier, with another environment.
    subprocess.run(
        ["tmux", "-L", tmux_socket, "new-session", "-d", "-s", "old"],
        env={"PATH": os.environ["PATH"], "HOME": "/nonexistent"},
        check=True,
    )
    out = tmp_path / "env.txt"
    agent = tmp_path / "agent.sh"
    agent.write_text(f"#!/bin/sh\nenv > '{out}'\n")
    agent.chmod(0o755)
    monkeypatch.setenv("AUTORUN_CLAUDE", str(agent))
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("CLAUDE_CODE_MARKER", "yes")
    plan = write_plan(repo, [(1, "Only", [])])
    run_orchestrate(plan, repo, monitor=False, config=load_config(os.environ))
    for _ in range(100):
        if out.exists() and out.read_text():
            break
        import time

        time.sleep(0.05)
    env = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9"
    assert env["CLAUDE_CODE_MARKER"] == "yes"
    assert env["HOME"] == os.environ["HOME"]
    assert env["AUTORUN_STAGE"] == "1"


def test_failed_launch_is_put_back_and_retried(
    repo: Path, tmux_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin_env(monkeypatch)
    # The branch the first attempt wants already exists: `git worktree add -b` fails.
    git(repo, "branch", "autorun/master-plan/stage-1-only")
    plan = write_plan(repo, [(1, "Only", [])])
    outcome = run_orchestrate(plan, repo, monitor=False, config=load_config(os.environ))
    assert outcome.launched == [] and outcome.launch_failed
    orch = Path(outcome.orch_dir)
    st = StatusStore(orch).read().stages[1]
    assert st.status == "pending" and st.launch_attempts == 1
    assert any(ev["type"] == "launch_failed" for ev in read_events(orch))
    res = run_cli(["launch-ready", str(orch), "--json"], repo)
    assert json.loads(res.stdout)["launched"] == [1]
    raw = wait_finished(orch)
    assert raw["status"] == "completed"
    assert raw["stages"]["1"]["branch"].endswith("-retry1")


def test_chain_opens_a_window_without_a_shell(
    repo: Path, tmux_socket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    log = tmp_path / "standin.log"
    standin_env(monkeypatch, log=str(log))
    canary = tmp_path / "CANARY"
    Tmux(tmux_socket).new_session("host", ["sleep", "30"], cwd=repo)
    text = f"/autorun:implement_plan notes $(touch {canary}) `touch {canary}` 'a b'"
    proc = run_cli(
        ["chain", text, "--window", "implement", "--session", "host", "--cwd", str(repo), "--json"],
        repo,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["session"] == "host" and data["argv"][-1] == text
    windows = Tmux(tmux_socket).out(["list-windows", "-t", "=host", "-F", "#{window_name}"])
    assert "implement" in windows.splitlines()
    for _ in range(100):
        if log.exists() and "prompt=" in log.read_text():
            break
        import time

        time.sleep(0.05)
    assert repr(text) in log.read_text()  # arrived verbatim
    assert not canary.exists()


def test_worktreeinclude_copies_ignored_files(
    repo: Path, tmux_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTORUN_CLAUDE", "true")
    (repo / ".gitignore").write_text(".env\nsecrets/\nbuild/\n")
    (repo / ".worktreeinclude").write_text(".env\nsecrets/\n")
    git(repo, "add", ".gitignore", ".worktreeinclude")
    git(repo, "commit", "-q", "-m", "ignore rules")
    (repo / ".env").write_text("TOKEN=1\n")
    (repo / "secrets").mkdir()
    (repo / "secrets" / "key.pem").write_text("key\n")
    (repo / "build").mkdir()
    (repo / "build" / "out.bin").write_text("big\n")  # ignored but not included
    plan = write_plan(repo.parent, [(1, "Only", [])])
    orch = Path(run_orchestrate(plan, repo, monitor=False, config=load_config(os.environ)).orch_dir)
    wt = Path(StatusStore(orch).read().stages[1].worktree or "")
    assert (wt / ".env").read_text() == "TOKEN=1\n"
    assert (wt / "secrets" / "key.pem").read_text() == "key\n"
    assert not (wt / "build").exists()


def test_agent_argv_from_config_and_environment(
    autorun_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autorun_py.config import agent_argv, load_config

    autorun_home.mkdir(parents=True, exist_ok=True)
    (autorun_home / "config.json").write_text(
        json.dumps(
            {
                "agent": "my-claude",
                "permission_mode": "acceptEdits",
                "models": {"start": "sonnet", "research": "opus"},
                "agent_args": ["--verbose"],
            }
        )
    )
    cfg = load_config(os.environ)
    argv = agent_argv(cfg, "/autorun:start /x/stage-1-context.md", phase="start", session_id="abc")
    assert argv == [
        "my-claude",
        "--verbose",
        "--model",
        "sonnet",
        "--permission-mode",
        "acceptEdits",
        "--session-id",
        "abc",
        "/autorun:start /x/stage-1-context.md",
    ]
    monkeypatch.setenv("AUTORUN_CLAUDE", "/opt/claude")
    monkeypatch.setenv("AUTORUN_MODEL_RESEARCH", "haiku")
    cfg = load_config(os.environ)
    assert agent_argv(cfg, "p", phase="research", resume="r1")[:1] == ["/opt/claude"]
    assert "haiku" in agent_argv(cfg, "p", phase="research")
    assert agent_argv(cfg, "p", phase="x", resume="r1")[-3:] == ["--resume", "r1", "p"]
    (autorun_home / "config.json").write_text("{not json")
    with pytest.raises(Exception, match="config.json"):
        load_config(os.environ)


def test_tmux_single_word_command_is_not_a_shell_line(tmux_socket: str, tmp_path: Path) -> None:
    canary = tmp_path / "CANARY"
    weird = tmp_path / "prog; touch CANARY"  # run with cwd tmp_path: a shell would touch it
    weird.write_text(f"#!/bin/sh\necho ran > '{tmp_path}/ran'\n")
    weird.chmod(0o755)
    Tmux(tmux_socket).new_session("one", [str(weird)], cwd=tmp_path)
    deadline = time.monotonic() + 10
    while not (tmp_path / "ran").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (tmp_path / "ran").exists() and not canary.exists()


def _wait_for(cond: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_kill_later_runs_before_in_the_same_call_or_alone(tmux_socket: str, tmp_path: Path) -> None:
    """`autorun chain --close-caller` pipes the new pane's log in the call that
    schedules the caller's kill; the pipe is set up also when nothing is killed
    (the caller gone, or not the run's)."""
    from autorun_py.tmux import pipe_pane_args

    tmux = Tmux(tmux_socket)
    caller = tmux.new_session("host", ["sleep", "60"], cwd=tmp_path)
    cases = []
    for name, target, owner in (
        ("killed", caller, None),
        ("gone", "%99999", None),
        ("not-owned", caller, str(tmp_path / "another-run")),
    ):
        pane = tmux.new_window("host", ["cat"], cwd=tmp_path, window=name)
        log = tmp_path / f"{name}.log"
        scheduled = tmux.kill_later(
            target, 0.2 if name == "killed" else 60, session=False, owner=owner,
            before=pipe_pane_args(pane, log),
        )  # fmt: skip
        cases.append((name, scheduled, pane, log))
    assert [(n, s) for n, s, _, _ in cases] == [
        ("killed", True),
        ("gone", False),
        ("not-owned", False),
    ]
    for name, _, pane, log in cases:
        tmux.send_keys(pane, f"hello-{name}")
        _wait_for(
            lambda log=log, word=f"hello-{name}": log.exists() and word in log.read_text(),
            f"{name}'s log",
        )

    def caller_gone() -> bool:
        panes = tmux.out(["list-panes", "-s", "-t", "=host", "-F", "#{pane_id}"]).split()
        return caller not in panes

    _wait_for(caller_gone, "the caller's pane to be killed")
