"""The monitor: reading panes, reset times, and the integration scenarios on a
private tmux server with the stand-in agent (idle prompt, usage limit, review
wait, the nudge limit, dead sessions and the circuit breaker, the lock)."""

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

from autorun_py.monitor import classify_pane, monitor_pid, parse_reset_time, spawn_monitor
from autorun_py.tmux import Tmux
from tests.helpers import events_of as _events
from tests.helpers import fast_standin as _standin
from tests.helpers import log_lines as _log_lines
from tests.helpers import read_status as _status
from tests.helpers import run_cli, wait_until, write_plan

PANES = Path(__file__).parent / "fixtures" / "transcripts" / "panes"

# --------------------------------------------------------------------------- reset times

LONDON = "Europe/London"


def _local(y: int, mo: int, d: int, h: int, mi: int = 0, s: int = 0) -> datetime.datetime:
    return datetime.datetime(y, mo, d, h, mi, s).astimezone()


NOW = _local(2026, 3, 10, 14, 20, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Claude usage limit reached. Your limit will reset at 3pm.", _local(2026, 3, 10, 15)),
        ("5-hour limit reached ∙ resets 3:45pm", _local(2026, 3, 10, 15, 45)),
        ("You've hit your session limit · resets 4:05 PM", _local(2026, 3, 10, 16, 5)),
        ("limit reached · resets 15:30", _local(2026, 3, 10, 15, 30)),
        ("usage limit reached, resets 2:30:15pm", _local(2026, 3, 10, 14, 30, 15)),
        # already past today: tomorrow
        ("Your limit will reset at 9am.", _local(2026, 3, 11, 9)),
        ("resets 11:59am", _local(2026, 3, 11, 11, 59)),
        # just past (printed times are rounded): now, not tomorrow
        ("resets 2:17pm", _local(2026, 3, 10, 14, 17)),
        ("You've hit your weekly limit · resets Mar 12, 3pm", _local(2026, 3, 12, 15)),
        ("resets Jan 5 at 9am", _local(2027, 1, 5, 9)),
        ("You've hit your fast limit · resets in 2h 30m", NOW + datetime.timedelta(minutes=150)),
        ("resets in 45 minutes", NOW + datetime.timedelta(minutes=45)),
    ],
)
def test_parse_reset_time_local(text: str, expected: datetime.datetime) -> None:
    assert parse_reset_time(text, NOW) == expected


def test_parse_reset_time_named_zone_and_unknown_zone() -> None:
    from zoneinfo import ZoneInfo

    now = datetime.datetime(2026, 7, 1, 12, 0, tzinfo=datetime.timezone.utc)
    got = parse_reset_time("Your limit will reset at 3pm (Europe/London).", now)
    assert got == datetime.datetime(2026, 7, 1, 15, 0, tzinfo=ZoneInfo(LONDON))
    assert got is not None and got.astimezone(datetime.timezone.utc).hour == 14  # BST
    ny = parse_reset_time("resets 9:30am (America/New_York)", now)  # 08:00 there: later today
    assert ny == datetime.datetime(2026, 7, 1, 9, 30, tzinfo=ZoneInfo("America/New_York"))
    # An unknown zone name falls back to the local zone of `now`.
    assert parse_reset_time("resets 3pm (Mars/Olympus)", now) == now.replace(hour=15)


@pytest.mark.parametrize(
    "text",
    [
        "Claude usage limit reached.",
        "resets 5 times a day",
        "reset the counter at 25:00",
        "nothing to see here",
    ],
)
def test_parse_reset_time_none(text: str) -> None:
    assert parse_reset_time(text, NOW) is None


# --------------------------------------------------------------------------- panes


def test_classify_real_claude_code_screens() -> None:
    """Screens of Claude Code 2.1.330 captured with tmux (record_panes.py)."""
    now = datetime.datetime.now().astimezone()
    assert classify_pane((PANES / "idle.txt").read_text(), now).kind == "idle"
    assert classify_pane((PANES / "busy.txt").read_text(), now).kind == "busy"
    assert classify_pane((PANES / "dialog.txt").read_text(), now).kind == "dialog"


def test_classify_usage_limit_and_its_occurrences() -> None:
    now = _local(2026, 3, 10, 14, 0)
    idle = (PANES / "idle.txt").read_text().splitlines()
    msg = "  ⎿  Claude usage limit reached. Your limit will reset at 3pm (Europe/London)."
    screen = "\n".join(idle[:-6] + [msg] + idle[-6:])
    view = classify_pane(screen, now)
    assert view.kind == "usage_limit"
    assert view.limit_line == msg.strip() and view.limit_count == 1
    assert view.reset_at is not None and view.reset_at.hour == 15
    twice = classify_pane("\n".join(idle[:-6] + [msg, "", msg] + idle[-6:]), now)
    assert twice.limit_count == 2
    # Busy wins over an old limit message; a context limit is not a usage limit.
    busy = (PANES / "busy.txt").read_text().splitlines()
    assert classify_pane("\n".join(busy[:-6] + [msg] + busy[-6:]), now).kind == "busy"
    ctx = "Context limit reached · /compact or /clear to continue"
    assert classify_pane("\n".join(idle[:-6] + [ctx] + idle[-6:]), now).kind == "idle"
    # The old box prompt and a shell-ish output are told apart.
    assert classify_pane("│ > \n│ ? for shortcuts", now).kind == "idle"
    assert classify_pane("compiling...\n[42/100]", now).kind == "other"


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
