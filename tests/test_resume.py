"""`autorun resume` on a private tmux server with the stand-in agent: the whole
server killed mid-run, a merge that died after its git part, a stage claimed
but never started, stages left ready, and the monitor it starts."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Callable

import pytest

from autorun_py import gitmerge
from autorun_py.launch import claim
from autorun_py.merge import merge_worktree_path
from autorun_py.state import StatusStore
from autorun_py.supervisor import monitor_pid
from autorun_py.tmux import Tmux
from tests.helpers import events_of as _events
from tests.helpers import fast_standin as _standin
from tests.helpers import git, run_cli, wait_until, write_plan
from tests.helpers import log_lines as _log
from tests.helpers import read_status as _status


def _wait(pred: Callable[[], Any], timeout: float = 40, what: str = "") -> Any:
    return wait_until(pred, timeout, what)


def _resume(orch: Path, repo: Path, *args: str) -> dict[str, Any]:
    proc = run_cli(["resume", str(orch), "--json", *args], repo, check=True)
    return dict(json.loads(proc.stdout))


def _finished(orch: Path) -> bool:
    """Every stage ended, and the last transaction's events are written too."""
    stages = _status(orch)["stages"].values()
    ended = all(s["status"] in ("completed", "failed", "blocked") for s in stages)
    return ended and bool(_events(orch, "orchestration_complete"))


def _merges(repo: Path) -> list[int]:
    subjects = git(repo, "log", "--merges", "--format=%s", "main").splitlines()
    return sorted(int(m.group(1)) for s in subjects if (m := re.match(r"Merge stage (\d+):", s)))


@pytest.mark.usefixtures("tmux_socket")
def test_kill_the_tmux_server_mid_run_then_resume_merges_every_stage_once(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "standin.log"
    gates = tmp_path / "gates"
    gates.mkdir()
    _standin(monkeypatch, log, gate=str(gates))
    plan = write_plan(
        tmp_path, [(1, "Core", []), (2, "Left", [1]), (3, "Right", [1]), (4, "Join", [2, 3])]
    )
    out = run_cli(["orchestrate", str(plan), "--no-monitor", "--json"], repo, check=True).stdout
    orch = Path(json.loads(out)["orch_dir"])
    (gates / "stage-1").touch()
    _wait(
        lambda: _log(log, "stage 2 waiting at work gate") and _log(log, "stage 3 waiting at work"),
        what="stages 2 and 3 mid-run",
    )
    before = _status(orch)["stages"]
    sids = {n: before[str(n)]["claude_session_id"] for n in (2, 3)}
    tmux = Tmux.from_env()
    # The machine "reboots": every session is gone, and no hook runs. (A tmux
    # kill-server runs the session-closed hook, whose recovery could restart a
    # stage before resume looks: the hook's own recovery is tested in test_hooks.)
    tmux.run(["set-hook", "-gu", "session-closed"])
    tmux.kill_server()
    assert tmux.list_sessions() == []
    assert {n: s["status"] for n, s in _status(orch)["stages"].items()} == {
        "1": "completed",
        "2": "in_progress",
        "3": "in_progress",
        "4": "pending",
    }

    first = _resume(orch, repo, "--no-monitor")
    assert {a["stage"]: (a["action"], a.get("mode")) for a in first["actions"]} == {
        2: ("resumed", "resume"),
        3: ("resumed", "resume"),
    }
    assert first["changed"] and first["launched"] == []
    for n in (2, 3):  # the same Claude conversation, in the same worktree
        _wait(lambda n=n: _log(log, f"resume={sids[n]!r}"), what=f"stage {n} resumed")
        _wait(lambda n=n: len(_log(log, f"stage {n} waiting at work gate")) == 2)
    restarted = {e["stage"]: e for e in _events(orch, "stage_restarted")}
    assert {n: restarted[n]["claude_session_id"] for n in (2, 3)} == sids
    assert not any(e["worktree_recreated"] for e in restarted.values())

    # A second resume right after finds live sessions and changes nothing.
    status_text = (orch / "status.json").read_text()
    events_text = (orch / "events.jsonl").read_text()
    second = _resume(orch, repo, "--no-monitor")
    assert second["actions"] == [] and second["launched"] == [] and not second["changed"]
    assert second["alive"] == [2, 3]
    assert (orch / "status.json").read_text() == status_text
    assert (orch / "events.jsonl").read_text() == events_text

    for n in (2, 3, 4):
        (gates / f"stage-{n}").touch()
    _wait(lambda: _finished(orch), what="the run to finish")
    final = _status(orch)
    assert final["status"] == "completed"
    merged = [e["stage"] for e in _events(orch, "merge_complete")]
    assert sorted(merged) == [1, 2, 3, 4]
    assert sorted(e["stage"] for e in _events(orch, "stage_launched")) == [1, 2, 3, 4]
    assert _merges(repo) == [1, 2, 3, 4]
    for n in (1, 2, 3, 4):
        assert (repo / "stages" / f"stage-{n}.md").is_file()
    assert final["stages"]["2"]["counters"]["restarts"] == 1

    # The report counts the restarts, and the stand-in's transcripts.
    rep = json.loads(run_cli(["report", str(orch), "--json"], repo, check=True).stdout)
    by = {s["number"]: s for s in rep["stages"]}
    assert by[2]["restarts"] == 1 and by[3]["restarts"] == 1 and by[1]["restarts"] == 0
    for n in (1, 2, 3, 4):
        assert by[n]["git"]["commits"] == 1 and by[n]["git"]["lines_added"] == 3
        assert by[n]["git"]["files_changed"] == 1
    # Stage 2 wrote to its conversation twice (first run and resumed run): the same
    # file; its merge was done by its chain (no merge window, no conversation of its own).
    sessions = by[2]["tokens"]["sessions"]
    assert len(by[2]["tokens"]["files"]) == 1 and set(sessions) == {sids[2]}, by[2]["tokens"]


@pytest.mark.usefixtures("tmux_socket")
def test_resume_finishes_a_merge_that_died_after_its_git_part(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "standin.log"
    gates = tmp_path / "gates"
    gates.mkdir()
    (gates / "stage-2").touch()
    _standin(monkeypatch, log, merge_gate=str(gates))
    plan = write_plan(tmp_path, [(1, "First", []), (2, "Second", [1])])
    out = run_cli(["orchestrate", str(plan), "--no-monitor", "--json"], repo, check=True).stdout
    orch = Path(json.loads(out)["orch_dir"])
    _wait(lambda: _log(log, "stage 1 waiting at merge gate"), what="stage 1 committed")
    # This test is about resume: without the session-closed hook, no recovery that
    # the killed sessions set off can finish the merge before resume does.
    tmux = Tmux.from_env()
    tmux.run(["set-hook", "-gu", "session-closed"])
    assert "autorun" not in tmux.run(["show-hooks", "-g"]).stdout
    tmux.kill_server()
    # `autorun merge` got as far as moving the base branch, then died.
    state = StatusStore(orch).read()
    st = state.stages[1]
    assert st.branch
    with gitmerge.repo_merge_lock(repo):
        outcome = gitmerge.merge_stage(
            repo,
            "main",
            st.branch,
            message="Merge stage 1: First",
            merge_worktree=merge_worktree_path(state, 1),
        )
    assert outcome.kind is gitmerge.MergeKind.MERGED
    assert _status(orch)["stages"]["1"]["status"] == "in_progress"

    result = _resume(orch, repo, "--no-monitor")
    assert [(a["stage"], a["action"]) for a in result["actions"]] == [(1, "merged")]
    _wait(lambda: _finished(orch), what="the run to finish")
    final = _status(orch)
    assert final["status"] == "completed"
    assert final["stages"]["1"]["merge_commit"] == outcome.merge_commit
    assert [e["stage"] for e in _events(orch, "merge_complete")] == [1, 2]
    assert _merges(repo) == [1, 2]  # no second merge commit for stage 1


@pytest.mark.usefixtures("tmux_socket")
def test_resume_starts_claimed_and_ready_stages_and_the_monitor_once(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, autorun_home: Path
) -> None:
    log = tmp_path / "standin.log"
    gates = tmp_path / "gates"
    gates.mkdir()
    _standin(monkeypatch, log, gate=str(gates))
    monkeypatch.setenv("AUTORUN_MONITOR_INTERVAL", "0.2")
    monkeypatch.setenv("AUTORUN_MONITOR_GAP", "0.1")
    plan = write_plan(tmp_path, [(1, "Alpha", []), (2, "Beta", []), (3, "Gamma", [1, 2])])
    out = run_cli(["orchestrate", str(plan), "--no-launch", "--json"], repo, check=True).stdout
    orch = Path(json.loads(out)["orch_dir"])
    # A launcher that claimed stage 1 and died before starting it; stage 2 never claimed.
    with StatusStore(orch).transaction() as txn:
        assert claim(txn, [1]) == [1]
    result = _resume(orch, repo)
    assert [(a["stage"], a["action"]) for a in result["actions"]] == [(1, "started")]
    assert result["launched"] == [2]
    gap = _events(orch, "wave_gap_detected")
    assert [(e["stages"], e["source"]) for e in gap] == [([2], "resume")]
    pid = result["monitor_pid"]
    assert result["monitor_started"] and isinstance(pid, int)
    try:
        again = _resume(orch, repo)
        assert again["monitor_pid"] == pid and not again["monitor_started"]
        assert again["actions"] == [] and again["launched"] == []
        for n in (1, 2, 3):
            (gates / f"stage-{n}").touch()
        _wait(lambda: _finished(orch), what="the run to complete")
        _wait(lambda: monitor_pid(orch) is None, what="the monitor to exit")
    finally:
        if monitor_pid(orch) is not None:
            os.kill(pid, 15)
    assert _merges(repo) == [1, 2, 3]
    assert (autorun_home / "reports" / f"{orch.name}.md").is_file()
    assert (
        run_cli(["resume", str(orch)], repo, check=True)
        .stdout.strip()
        .endswith("the run is finished; nothing to resume")
    )
