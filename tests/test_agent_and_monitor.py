"""A missing agent is refused before anything is made; a session that dies at once
is reported with its log instead of being restarted; every command that starts a
session makes sure the run's monitor runs; the status view says whether each
running stage's session is alive and when it last did anything (issue 15, items 1
and 4). Real git, real tmux on a private socket, the stand-in agent."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import pytest

from autorun_py.supervisor import monitor_pid
from autorun_py.tmux import Tmux
from tests.helpers import orchestrate_plan as _orchestrate
from tests.helpers import read_events, run_cli, standin_env, wait_until, write_plan
from tests.helpers import read_status as _status


def _kill_monitor(orch: Path) -> None:
    pid = monitor_pid(orch)
    if pid is not None and pid > 0:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        wait_until(lambda: monitor_pid(orch) is None, what="the monitor to stop")


# --------------------------------------------------------------------------- item 1


@pytest.mark.usefixtures("tmux_socket")
def test_orchestrate_refuses_a_missing_agent_and_makes_nothing(
    repo: Path, autorun_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTORUN_CLAUDE", "claude-not-installed-here")
    plan = write_plan(repo.parent, [(1, "Alpha", [])])
    proc = run_cli(["orchestrate", str(plan)], repo)
    assert proc.returncode == 1, proc.stdout
    assert "Orchestration launched" not in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "'claude-not-installed-here' ($AUTORUN_CLAUDE) was not found on PATH" in lines[0]
    assert "autorun doctor" in lines[0] and "no run was created" in lines[0]
    assert not (autorun_home / "orchestration").exists() or not list(
        (autorun_home / "orchestration").iterdir()
    )
    assert not (autorun_home / "worktrees").exists()
    assert Tmux.from_env().list_sessions() == []

    # The configured agent, by path: the message names the config file.
    monkeypatch.delenv("AUTORUN_CLAUDE")
    autorun_home.mkdir(parents=True, exist_ok=True)
    (autorun_home / "config.json").write_text(json.dumps({"agent": "/nowhere/bin/claude"}))
    proc = run_cli(["orchestrate", str(plan)], repo)
    assert proc.returncode == 1
    assert "'/nowhere/bin/claude' (`agent` in " in proc.stderr
    assert "config.json) was not found at that path" in proc.stderr

    # doctor names the same lookup and how to install it.
    doc = run_cli(["doctor", "--json"], repo)
    claude = next(c for c in json.loads(doc.stdout)["checks"] if c["name"] == "claude")
    assert claude["status"] == "missing" and claude["install"]["debian"]


@pytest.mark.usefixtures("tmux_socket")
def test_a_launch_without_the_agent_is_put_back_with_the_reason(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin_env(monkeypatch)
    orch = _orchestrate(repo, [(1, "Alpha", [])], "--no-launch", "--no-monitor")
    monkeypatch.setenv("AUTORUN_CLAUDE", "claude-gone-meanwhile")
    proc = run_cli(["launch-ready", str(orch)], repo)
    assert "stage 1 failed to launch: the agent 'claude-gone-meanwhile'" in proc.stderr
    st = _status(orch)["stages"]["1"]
    assert st["status"] == "pending"
    assert not Path(st["worktree"]).exists()
    assert Tmux.from_env().list_sessions() == []


@pytest.mark.usefixtures("tmux_socket")
def test_a_session_that_dies_at_once_is_failed_with_its_last_log_lines(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin_env(monkeypatch, crash="1", log=str(tmp_path / "standin.log"))
    orch = _orchestrate(repo, [(1, "Crashes at once", []), (2, "After it", [1])], "--no-monitor")
    session = _status(orch)["stages"]["1"]["session"]
    tmux = Tmux.from_env()
    wait_until(lambda: not tmux.has_session(session), what="the session to die")
    run_cli(["monitor", str(orch), "--once", "--gap", "0.1", "--quiet"], repo, check=True)
    st = _status(orch)["stages"]
    assert st["1"]["status"] == "failed", st["1"]
    failure = st["1"]["failure"]
    assert "after it started, so it is not restarted" in failure
    assert "stage 1 crashing" in failure  # the pane log's last lines
    assert st["2"]["status"] == "blocked"
    types = [e["type"] for e in read_events(orch)]
    assert "stage_restarted" not in types and "session_died_early" in types
    # The status view shows the whole reason, wrapped, not cut off.
    text = run_cli(["status", str(orch)], repo, check=True).stdout
    assert "stage 1 crashing" in " ".join(ln.strip() for ln in text.splitlines())


# --------------------------------------------------------------------------- item 4


@pytest.mark.usefixtures("tmux_socket")
def test_retry_after_the_monitor_exited_starts_one(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    standin_env(monkeypatch, fail="1", gate=str(gates))
    monkeypatch.setenv("AUTORUN_MONITOR_INTERVAL", "0.2")
    monkeypatch.setenv("AUTORUN_MONITOR_GAP", "0.1")
    (gates / "stage-1").touch()
    orch = _orchestrate(repo, [(1, "Fails first", [])])
    try:
        wait_until(lambda: _status(orch)["status"] == "finished_with_failures", what="failure")
        wait_until(lambda: monitor_pid(orch) is None, what="the monitor to exit")
        assert len([e for e in read_events(orch) if e["type"] == "monitor_started"]) == 1
        (gates / "stage-1").unlink()  # the retried stage waits at its gate
        proc = run_cli(["retry", str(orch), "1"], repo, check=True)
        assert "launched: [1]" in proc.stdout
        started = wait_until(
            lambda: [e for e in read_events(orch) if e["type"] == "monitor_started"][1:],
            what="a monitor for the retried stage",
        )
        pid = started[-1]["pid"]
        assert len(started) == 1 and monitor_pid(orch) == pid
        # A second command that starts sessions finds it and starts no other.
        run_cli(["launch-ready", str(orch)], repo, check=True)
        assert monitor_pid(orch) == pid
    finally:
        _kill_monitor(orch)


@pytest.mark.usefixtures("tmux_socket")
def test_no_monitor_runs_stay_without_one(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    standin_env(monkeypatch, fail="1")
    orch = _orchestrate(repo, [(1, "Fails", [])], "--no-monitor")
    wait_until(lambda: _status(orch)["status"] == "finished_with_failures", what="failure")
    run_cli(["retry", str(orch), "1"], repo, check=True)
    assert monitor_pid(orch) is None
    assert not [e for e in read_events(orch) if e["type"] == "monitor_started"]


@pytest.mark.usefixtures("tmux_socket")
def test_status_shows_whether_each_session_is_alive_and_its_last_activity(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    log = tmp_path / "standin.log"
    standin_env(monkeypatch, gate=str(gates), log=str(log))
    orch = _orchestrate(repo, [(1, "Held", []), (2, "Held too", [])], "--no-monitor")
    wait_until(lambda: log.exists() and log.read_text().count("waiting at work gate") == 2)
    summary = json.loads(run_cli(["status", str(orch), "--json"], repo, check=True).stdout)
    rows = {r["number"]: r for r in summary["stages"]}
    assert rows[1]["session_alive"] is True and rows[2]["session_alive"] is True
    assert rows[1]["last_activity"] and rows[1]["idle_seconds"] < 120
    assert summary["monitor"] == {"running": False, "pid": None, "disabled": True}
    tmux = Tmux.from_env()
    # tmux's session-closed hook would recover it at once; here nothing recovers it.
    tmux.run(["set-hook", "-gu", "session-closed"])
    assert tmux.kill_session(rows[2]["session"])
    wait_until(lambda: not tmux.has_session(rows[2]["session"]), what="the session to end")
    summary = json.loads(run_cli(["status", str(orch), "--json"], repo, check=True).stdout)
    after = {r["number"]: r for r in summary["stages"]}
    sessions = tmux.list_sessions()
    assert after[1]["session_alive"] is True, (after[1], sessions)
    assert after[2]["session_alive"] is False, (after[2], sessions)
    text = run_cli(["status", str(orch)], repo, check=True).stdout
    assert "session alive, last output" in text, text
    assert "session GONE (last output" in text, text
    assert "monitor: not running, so nothing restarts a dead session" in text


@pytest.mark.usefixtures("tmux_socket")
def test_the_background_monitor_reports_an_early_death_within_seconds(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The default pace (a check a minute, snapshots a minute apart) must not delay it.
    monkeypatch.setenv("AUTORUN_MONITOR_INTERVAL", "60")
    monkeypatch.setenv("AUTORUN_MONITOR_GAP", "60")
    gates = tmp_path / "gates"
    gates.mkdir()
    log = tmp_path / "standin.log"
    standin_env(monkeypatch, crash="2", gate=str(gates), log=str(log))
    orch = _orchestrate(repo, [(1, "Held", []), (2, "Crashes", [])])
    try:
        wait_until(
            lambda: _status(orch)["stages"]["2"]["status"] == "failed",
            timeout=20,
            what="the crash to be reported",
        )
        st = _status(orch)["stages"]
        assert "stage 2 crashing" in st["2"]["failure"]
        assert st["1"]["status"] == "in_progress"  # the other stage goes on
    finally:
        _kill_monitor(orch)
