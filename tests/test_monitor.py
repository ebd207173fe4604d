"""The monitor loop: the integration scenarios on a private tmux server with the
stand-in agent (idle prompt, usage limit, review wait, the nudge limit, dead
sessions and the circuit breaker, the lock). What a pane shows is
tests/test_panes.py."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from autorun_py.supervisor import monitor_pid, spawn_monitor
from autorun_py.tmux import Tmux
from tests.helpers import events_of as _events
from tests.helpers import fast_standin as _standin
from tests.helpers import log_lines as _log_lines
from tests.helpers import read_status as _status
from tests.helpers import run_cli, wait_until, write_plan

# --------------------------------------------------------------------------- runs


def _wait(pred: Callable[[], Any], timeout: float = 30, what: str = "") -> Any:
    return wait_until(pred, timeout, what)


def _orchestrate(repo: Path, stages: list[tuple[int, str, list[int]]]) -> Path:
    plan = write_plan(repo.parent, stages)
    proc = run_cli(["orchestrate", str(plan), "--no-monitor", "--json"], repo, check=True)
    return Path(json.loads(proc.stdout)["orch_dir"])


def _answer_review(home: Path) -> Path:
    files = sorted((home / "review").glob("*.md"))
    assert len(files) == 1, files
    from autorun_py.review.format import read_meta, start_marker

    text = files[0].read_text()
    meta = read_meta(text)
    assert meta is not None
    start = start_marker(1, meta.nonce) + "\n"
    # The answer between its marker lines, and the done box ticked (goes on at once).
    text = text.replace(start, start + "go left\n").replace("- [ ] done", "- [x] done")
    files[0].write_text(text)
    return files[0]


@pytest.mark.usefixtures("tmux_socket")
def test_monitor_continues_idle_waits_out_usage_limit_and_leaves_review_alone(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, autorun_home: Path
) -> None:
    log = tmp_path / "standin.log"
    _standin(monkeypatch, log, idle="1", limit="2:4", limit_seconds="1", review="3")
    orch = _orchestrate(repo, [(1, "Idle one", []), (2, "Limited one", []), (3, "Asking one", [])])
    _wait(lambda: _log_lines(log, "usage limit until"), what="the limit message")
    limit_line = _log_lines(log, "usage limit until")[0]
    printed = limit_line.split("usage limit until ")[1]
    monitor = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autorun_py",
            "monitor",
            str(orch),
            "--interval",
            "0.2",
            "--gap",
            "0.3",
            "--limit-margin",
            "0.5",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        from autorun_py.view import render_status, status_summary

        # The wait shows in the status view while it lasts.
        row = _wait(
            lambda: next(
                (
                    r
                    for r in status_summary(orch)["stages"]
                    if r["number"] == 2 and r["usage_limit_until"]
                ),
                None,
            ),
            what="the usage-limit wait in the status view",
        )
        assert "usage limit: waiting until" in render_status(status_summary(orch), width=200)
        # The review stays unanswered across several checks: never nudged.
        _wait(lambda: _events(orch, "stall_review_wait", 3), what="the review wait seen")
        time.sleep(1.5)  # several more checks while the question waits
        _answer_review(autorun_home)
        out, err = monitor.communicate(timeout=60)
    finally:
        if monitor.poll() is None:
            monitor.kill()
            monitor.wait()
    assert monitor.returncode == 0, err
    outcome = json.loads(out)
    assert outcome["finished"] and outcome["report"], outcome
    assert Path(outcome["report"]).is_file()
    status = _status(orch)
    assert {n: s["status"] for n, s in status["stages"].items()} == dict.fromkeys(
        ("1", "2", "3"), "completed"
    )
    # Stage 1: the idle prompt got `continue`, and went on.
    sent1 = _events(orch, "stall_continue_sent", 1)
    assert len(sent1) >= 1 and _events(orch, "stall_detected", 1)
    assert status["stages"]["1"]["counters"]["nudges"] == len(sent1)
    # Stage 2: left alone until the reset time it named, then continued.
    detected = _events(orch, "usage_limit_detected", 2)
    assert len(detected) == 1
    reset_at = datetime.datetime.strptime(detected[0]["reset_at"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc
    )
    assert reset_at.astimezone().strftime("%I:%M:%S%p").lstrip("0").lower() == printed
    assert row["usage_limit_reset_at"] == detected[0]["reset_at"]
    got = [float(ln.split()[0]) for ln in _log_lines(log, "got continue")]
    pid2 = [ln.split()[1] for ln in _log_lines(log, "usage limit until")][0]
    got2 = [float(ln.split()[0]) for ln in _log_lines(log, "got continue") if ln.split()[1] == pid2]
    assert len(got2) == 1 and got2[0] >= reset_at.timestamp() + 0.5, (got2, reset_at)
    assert not _events(orch, "stall_continue_sent", 2)
    assert len(_events(orch, "usage_limit_continue_sent", 2)) == 1
    # Stage 3: waiting on the review: never nudged, nothing typed into its pane.
    assert not _events(orch, "stall_continue_sent", 3)
    assert not _events(orch, "usage_limit_continue_sent", 3)
    assert len(got) == len(sent1) + 1
    # Every finding is in the monitor log too.
    mlog = (autorun_home / "logs" / f"{status['project_slug']}-monitor.log").read_text()
    for needle in (
        "stall_continue_sent stage=1",
        "usage_limit_detected stage=2",
        "usage_limit_continue_sent stage=2",
        "stall_review_wait stage=3",
        "report_written",
        "monitor_stopped",
    ):
        assert needle in mlog, needle


@pytest.mark.usefixtures("tmux_socket")
def test_nudges_stop_at_the_limit_and_the_stage_is_reported(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "standin.log"
    _standin(monkeypatch, log, stuck="1")
    orch = _orchestrate(repo, [(1, "Stuck one", [])])
    _wait(lambda: _log_lines(log, "stuck at prompt"), what="the stand-in at its prompt")
    once = ["monitor", str(orch), "--once", "--gap", "0.3", "--max-nudges", "2", "--quiet"]
    for i in range(4):
        time.sleep(0.2)
        run_cli(once, repo, check=True)
        if i < 2:
            _wait(lambda i=i: len(_log_lines(log, "got continue")) == i + 1, what="continue")
    assert len(_events(orch, "stall_continue_sent", 1)) == 2
    assert [e["nudge"] for e in _events(orch, "stall_continue_sent", 1)] == [1, 2]
    reported = _events(orch, "stall_reported", 1)
    assert len(reported) == 1 and reported[0]["nudges"] == 2
    time.sleep(0.5)
    assert len(_log_lines(log, "got continue")) == 2  # nothing typed after the limit
    st = _status(orch)["stages"]["1"]
    assert st["status"] == "in_progress" and st["counters"]["nudges"] == 2
    text = run_cli(["status", str(orch)], repo, check=True).stdout
    assert "stalled at its prompt" in text and "2 continue(s) sent" in text


@pytest.mark.usefixtures("tmux_socket")
def test_dead_session_is_resumed_then_failed_by_the_circuit_breaker(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "standin.log"
    _standin(monkeypatch, log, crash="1")
    # The monitor's own recovery is under test: no tmux session-closed hook racing it.
    monkeypatch.setenv("AUTORUN_SESSION_CLOSED_HOOK", "0")
    orch = _orchestrate(repo, [(1, "Crashing one", []), (2, "After it", [1])])
    st = _status(orch)["stages"]["1"]
    sid, session = st["claude_session_id"], st["session"]
    tmux = Tmux.from_env()
    once = ["monitor", str(orch), "--once", "--gap", "0.1", "--max-restarts", "2", "--quiet"]
    once += ["--early-death", "0"]  # restart even a session that died at once
    for i in range(3):
        _wait(lambda: not tmux.has_session(session), what="the session to die")
        run_cli(once, repo, check=True)
        if i < 2:
            _wait(lambda i=i: len(_log_lines(log, f"resume={sid!r}")) == i + 1, what="resume")
    restarts = _events(orch, "stage_restarted", 1)
    assert [(e["mode"], e["claude_session_id"], e["source"]) for e in restarts] == [
        ("resume", sid, "monitor")
    ] * 2
    assert len(_events(orch, "session_dead", 1)) == 3
    final = _status(orch)["stages"]
    assert final["1"]["status"] == "failed"
    assert "circuit breaker" in final["1"]["failure"]
    assert final["1"]["counters"]["restarts"] == 2
    assert final["2"]["status"] == "blocked"
    assert _status(orch)["status"] == "finished_with_failures"


@pytest.mark.usefixtures("tmux_socket")
def test_one_monitor_per_run(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, autorun_home: Path
) -> None:
    log = tmp_path / "standin.log"
    gates = tmp_path / "gates"
    gates.mkdir()
    _standin(monkeypatch, log, gate=str(gates))
    monkeypatch.setenv("AUTORUN_MONITOR_INTERVAL", "0.2")
    monkeypatch.setenv("AUTORUN_MONITOR_GAP", "0.1")
    orch = _orchestrate(repo, [(1, "Held one", [])])
    pid = spawn_monitor(orch)
    assert pid is not None
    try:
        _wait(lambda: monitor_pid(orch) == pid, what="the monitor to hold the lock")
        assert spawn_monitor(orch) is None
        second = run_cli(["monitor", str(orch), "--interval", "0.1", "--gap", "0"], repo)
        assert second.returncode == 0
        assert f"already running for this run (pid {pid})" in second.stdout
        (gates / "stage-1").touch()
        _wait(lambda: _status(orch)["status"] == "completed", what="the run to complete")
        _wait(lambda: monitor_pid(orch) is None, what="the monitor to exit")
    finally:
        if monitor_pid(orch) is not None:
            os.kill(pid, 15)
    assert (autorun_home / "reports" / f"{orch.name}.md").is_file()
    assert [e["pid"] for e in _events(orch, "monitor_started")] == [pid]
    stopped = _events(orch, "monitor_stopped")
    assert len(stopped) == 1 and "every stage" in stopped[0]["reason"]
