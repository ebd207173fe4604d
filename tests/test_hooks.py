"""``autorun hook <event>``: the plugin's Claude Code hooks, on a real run (the
stand-in agent in tmux on a private socket, real git), and the event names the
emitters and ``events --notable`` share."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from autorun_py.events import NOTABLE_TYPES, notable_line
from tests.helpers import git, run_cli, standin_env, wait_until, write_plan

ROOT = Path(__file__).resolve().parents[1]


def _emitted_types() -> set[str]:
    """Every event type a literal in autorun_py emits."""
    pattern = re.compile(
        r"""(?:\bemit\(|_emit\(\s*result,|append_event\(\s*[\w.]+,)\s*["']([a-z_]+)["']"""
    )
    found: set[str] = set()
    for path in (ROOT / "autorun_py").rglob("*.py"):
        found.update(pattern.findall(path.read_text(encoding="utf-8")))
    return found


def test_every_notable_event_type_is_emitted_and_printed() -> None:
    emitted = _emitted_types()
    assert {"merge_complete", "stall_reported", "chained"} <= emitted  # the scan works
    missing = [t for t in NOTABLE_TYPES if t not in emitted]
    assert missing == [], f"listed as notable but never emitted: {missing}"
    for t in NOTABLE_TYPES:
        assert notable_line({"type": t, "stage": 1, "blocked_by": 2}) is not None, t
    # Types that are emitted and printed by notable_line are all in the list.
    for t in sorted(emitted):
        if notable_line({"type": t, "stage": 1, "blocked_by": 2}) is not None:
            assert t in NOTABLE_TYPES, t
    # The monitor's stall (its answers to a quiet pane, stalls.py) goes through the
    # same notable event as the Stop hook's.
    monitor = "".join(
        (ROOT / "autorun_py" / name).read_text(encoding="utf-8")
        for name in ("monitor.py", "stalls.py")
    )
    assert "stall_limit_reached" not in monitor and "unstick(" in monitor


def _hook(
    event: str, payload: dict[str, Any], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ)
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "autorun_py", "hook", event],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        env=full,
        cwd=cwd,
        timeout=60,
    )


def test_hook_outside_a_stage_does_nothing(tmp_path: Path) -> None:
    env = {"AUTORUN_ORCH_DIR": "", "AUTORUN_STAGE": ""}
    for event in ("Stop", "StopFailure", "Notification", "SessionStart", "SessionEnd"):
        proc = _hook(event, {"session_id": "x"}, env, tmp_path)
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", ""), event


def _status(orch: Path) -> dict[str, Any]:
    return dict(json.loads((orch / "status.json").read_text()))


def _events(orch: Path, kind: str) -> list[dict[str, Any]]:
    lines = (orch / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["type"] == kind]


@pytest.fixture
def stuck_stage(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, dict[str, str], dict[str, Any]]:
    """A run whose one stage sits at its prompt (the stand-in, stuck)."""
    standin_env(monkeypatch, delay="0.05-0.1", log=str(tmp_path / "standin.log"), stuck="1")
    # A test kills the session right after its start: not an agent that cannot
    # start (the early-death rule), for the tmux server the run starts.
    monkeypatch.setenv("AUTORUN_MONITOR_EARLY_DEATH", "0")
    plan = write_plan(repo.parent, [(1, "Stuck one", [])])
    proc = run_cli(["orchestrate", str(plan), "--no-monitor", "--json"], repo, check=True)
    orch = Path(json.loads(proc.stdout)["orch_dir"])
    st = _status(orch)["stages"]["1"]
    env = {"AUTORUN_ORCH_DIR": str(orch), "AUTORUN_STAGE": "1", "AUTORUN_STOP_REFUSALS": "2"}
    return orch, env, st


@pytest.mark.usefixtures("tmux_socket")
def test_stop_is_refused_with_the_next_step_then_the_engine_merges(
    stuck_stage: tuple[Path, dict[str, str], dict[str, Any]], repo: Path
) -> None:
    orch, env, st = stuck_stage
    wt = Path(st["worktree"])
    wait_until(lambda: (wt / ".git").exists(), what="the stage worktree")
    payload = {"session_id": st["claude_session_id"], "stop_hook_active": False}

    out = _hook("Stop", payload, env, wt)
    decision = json.loads(out.stdout)
    assert decision["decision"] == "block"
    assert "has no commits yet" in decision["reason"] and "refusal 1 of 2" in decision["reason"]

    (wt / "work.md").write_text("half done\n", encoding="utf-8")
    reason = json.loads(_hook("Stop", payload, env, wt).stdout)["reason"]
    assert f"uncommitted changes in {wt} (work.md)" in reason and "git add -A" in reason
    assert "refusal 1 of 2" in reason  # progress: the count starts again

    git(wt, "add", "-A")
    git(wt, "commit", "-q", "-m", "work")
    reason = json.loads(_hook("Stop", payload, env, wt).stdout)["reason"]
    assert "stage 1 has 1 commit(s) and a clean worktree" in reason
    assert 'chain "/autorun:merge" --window merge --close-caller' in reason

    # An older session of the stage (it chained away) may stop.
    assert _hook("Stop", {"session_id": "older"}, env, wt).stdout == ""

    assert "refusal 2 of 2" in json.loads(_hook("Stop", payload, env, wt).stdout)["reason"]
    started = time.monotonic()
    assert _hook("Stop", payload, env, wt).stdout == ""  # the bound: let it stop, unstick it
    wait_until(
        lambda: _status(orch)["stages"]["1"]["status"] == "completed",
        timeout=60,
        what="the engine to merge the stalled stage",
    )
    took = time.monotonic() - started
    stalled = _events(orch, "stall_reported")
    assert len(stalled) == 1 and stalled[0]["action"] == "merge", stalled
    assert len(_events(orch, "merge_complete")) == 1
    assert "stalled" in (notable_line(stalled[0]) or "")
    print(f"stall -> merged by the engine in {took:.2f}s")

    # A merged stage: `autorun merge` without arguments says so and exits 0, from
    # the stage's environment even once its worktree is gone.
    proc = run_cli(["merge"], repo, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "already merged" in proc.stdout
    # ... and the Stop hook lets every later stop through.
    assert _hook("Stop", payload, env, repo).stdout == ""


@pytest.mark.usefixtures("tmux_socket")
def test_permission_request_is_an_inbox_entry_and_stop_failure_a_limit_wait(
    stuck_stage: tuple[Path, dict[str, str], dict[str, Any]], repo: Path
) -> None:
    orch, env, st = stuck_stage
    payload = {
        "session_id": st["claude_session_id"],
        "hook_event_name": "PermissionRequest",
        "tool_name": "Bash",
        "tool_input": {"command": "python3 -c 'print(42)'"},
    }
    assert _hook("PermissionRequest", payload, env, repo).returncode == 0
    waiting = _events(orch, "permission_waiting")
    assert len(waiting) == 1 and waiting[0]["tool"] == "Bash"
    line = notable_line(waiting[0]) or ""
    assert "stage 1 (Stuck one) waits for your permission to run Bash" in line
    assert "attach -t" in line
    inbox = json.loads(run_cli(["review", "list", "--json"], repo, check=True).stdout)
    text = run_cli(["review", "list"], repo, check=True).stdout
    assert "waits for your permission" in text, (inbox, text)
    status = run_cli(["status", str(orch)], repo, check=True).stdout
    assert "waits for your permission: Bash" in status, status
    # The later Notification of the same prompt tells nobody twice.
    note = {"session_id": st["claude_session_id"], "notification_type": "permission_prompt"}
    _hook("Notification", note, env, repo)
    assert len(_events(orch, "permission_waiting")) == 1

    failure = {"session_id": st["claude_session_id"], "error": "rate_limit",
               "last_assistant_message": "API Error: Request rejected (429)"}  # fmt: skip
    _hook("StopFailure", failure, env, repo)
    ev = _events(orch, "usage_limit_detected")
    assert len(ev) == 1 and ev[0]["kind"] == "rate_limit" and ev[0]["wait_until"]
    status = run_cli(["status", str(orch)], repo, check=True).stdout
    assert "rate_limit: waiting until" in status, status

    # A turn that ends normally (its Stop hook) ends both waits.
    _hook("Stop", {"session_id": st["claude_session_id"]}, env, repo)
    rec = _status(orch)["monitor"]["stages"]["1"]
    assert "limit" not in rec and "attention" not in rec
    assert "waits for your permission" not in run_cli(["review", "list"], repo).stdout


def test_report_counts_waits_as_waits_not_phase_time() -> None:
    import datetime

    from autorun_py.report import wait_intervals

    def ev(ts: str, kind: str, **kw: Any) -> dict[str, Any]:
        return {"ts": f"2026-01-01T00:{ts}Z", "type": kind, "stage": 1, **kw}

    events = [
        ev("00:10", "stop_refused", refusal=1),  # told once: still work
        ev("00:20", "stop_refused", refusal=2),  # refused again without progress: stalled
        ev("00:30", "stop_refused", refusal=3),
        ev("02:20", "stall_reported", action="merge"),  # the engine took over
        ev("03:00", "usage_limit_detected"),
        ev("04:00", "usage_limit_continue_sent"),
        ev("05:00", "permission_waiting"),
        ev("05:30", "attention_cleared"),
        ev("06:00", "session_dead"),
        ev("06:05", "stage_restarted"),
        {"ts": "2026-01-01T00:00:00Z", "type": "stall_detected", "stage": 2},
    ]
    end = datetime.datetime(2026, 1, 1, 0, 10, tzinfo=datetime.timezone.utc)
    got = {k: (b - a).total_seconds() for k, a, b in wait_intervals(events, 1, end)}
    assert got == {"stalled": 120.0, "limit": 60.0, "permission": 30.0, "dead": 5.0}


@pytest.mark.usefixtures("tmux_socket")
def test_a_killed_session_is_recovered_by_tmux_session_closed_hook(
    stuck_stage: tuple[Path, dict[str, str], dict[str, Any]],
) -> None:
    import signal

    from autorun_py.tmux import Tmux

    orch, _env, st = stuck_stage
    tmux = Tmux.from_env()
    wait_until(lambda: tmux.has_session(st["session"]), what="the stage session")
    hooks = tmux.run(["show-hooks", "-g"]).stdout
    assert "session-closed[" in hooks and "hook tmux-closed" in hooks
    pid = int(tmux.list_panes(st["session"])[0]["pid"])
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)  # no Claude Code hook runs for this
    wait_until(
        lambda: _events(orch, "stage_restarted"), timeout=30, what="the stage to be restarted"
    )
    took = time.monotonic() - killed
    ev = _events(orch, "stage_restarted")[0]
    assert ev["source"] == "tmux session-closed hook", ev
    print(f"SIGKILL -> restarted by tmux's session-closed hook in {took:.2f}s")
    assert took < 15
