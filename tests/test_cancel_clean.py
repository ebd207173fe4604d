"""`autorun cancel` (a stage, a whole run) and `autorun clean` (issue 15 item 3):
real git, real tmux on a private socket, the stand-in agent."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from autorun_py.schedule import StageView, ready_stages
from autorun_py.supervisor import monitor_pid
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
from tests.helpers import orchestrate_plan as _orchestrate
from tests.helpers import read_status as _status


def _at_gate(log: Path, n: int) -> bool:
    return log.exists() and f"stage {n} waiting at work gate" in log.read_text()


def _cli_json(args: list[str], cwd: Path) -> Any:
    proc = run_cli([*args, "--json"], cwd, check=True)
    return json.loads(proc.stdout)


def test_cancelled_is_terminal_for_the_scheduler() -> None:
    views = {
        1: StageView("cancelled", ()),
        2: StageView("pending", (1,)),
        3: StageView("pending", ()),
    }
    assert ready_stages(views, schedule="dataflow", waves=[[1, 3], [2]]) == [3]
    # A wave whose only open stage was cancelled no longer holds the next one back.
    views = {1: StageView("cancelled", ()), 2: StageView("pending", ())}
    assert ready_stages(views, schedule="waves", waves=[[1], [2]]) == [2]


@pytest.mark.usefixtures("tmux_socket")
def test_cancel_one_stage_keeps_the_rest_going_and_retry_brings_it_back(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    log = tmp_path / "standin.log"
    standin_env(monkeypatch, gate=str(gates), log=str(log))
    orch = _orchestrate(
        repo, [(1, "Held", []), (2, "Needs one", [1]), (3, "Other", [])], "--no-monitor"
    )
    wait_until(lambda: _at_gate(log, 1) and _at_gate(log, 3), what="both stages at their gates")
    before = _status(orch)["stages"]
    out = _cli_json(["cancel", orch.name, "--stage", "1"], repo)
    assert out["cancelled"] == [1] and out["was_running"] == [1] and out["blocked"] == [2]
    assert out["sessions_killed"] == [before["1"]["session"]]
    assert out["run_status"] == "running" and out["monitor_stopped"] is None
    tmux = Tmux.from_env()
    assert not tmux.has_session(before["1"]["session"])
    assert tmux.has_session(before["3"]["session"])  # the other stage goes on
    st = _status(orch)["stages"]
    assert [st[k]["status"] for k in "123"] == ["cancelled", "blocked", "in_progress"]
    # Kept for inspection.
    assert Path(before["1"]["worktree"]).is_dir()
    assert git(repo, "branch", "--list", before["1"]["branch"])
    text = run_cli(["status", orch.name], repo, check=True).stdout
    assert "■   1" in text and "cancelled" in text
    # Idempotent.
    again = _cli_json(["cancel", orch.name, "--stage", "1"], repo)
    assert again["changed"] is False and again["cancelled"] == []
    assert [e["type"] for e in read_events(orch)].count("stage_cancelled") == 1
    # Retry: the stage runs again and what needs it waits for it again.
    run_cli(["retry", orch.name, "1"], repo, check=True)
    st = _status(orch)["stages"]
    assert st["1"]["status"] == "in_progress" and st["2"]["status"] == "pending"
    for n in (1, 2, 3):
        (gates / f"stage-{n}").touch()
    raw = wait_finished(orch)
    assert raw["status"] == "completed", {k: v["status"] for k, v in raw["stages"].items()}


@pytest.mark.usefixtures("tmux_socket")
def test_cancel_the_run_stops_sessions_and_monitor_and_leaves_foreign_sessions(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, autorun_home: Path
) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    log = tmp_path / "standin.log"
    standin_env(monkeypatch, gate=str(gates), log=str(log))
    monkeypatch.setenv("AUTORUN_MONITOR_INTERVAL", "0.2")
    monkeypatch.setenv("AUTORUN_MONITOR_GAP", "0.1")
    orch = _orchestrate(repo, [(1, "Held", []), (2, "Never started", [1])])
    wait_until(lambda: _at_gate(log, 1), what="stage 1 at its gate")
    pid = wait_until(
        lambda: [e["pid"] for e in read_events(orch) if e["type"] == "monitor_started"],
        what="the monitor",
    )[0]
    session = _status(orch)["stages"]["1"]["session"]
    out = _cli_json(["cancel", orch.name], repo)
    assert out["cancelled"] == [1, 2] and out["was_running"] == [1]
    mon_events = [e for e in read_events(orch) if e["type"].startswith("monitor_")]
    mon_log = "".join(p.read_text() for p in (autorun_home / "logs").glob("*monitor.log"))
    assert out["monitor_stopped"] == pid, (out, mon_events, mon_log, _status(orch)["monitor"])
    assert out["run_status"] == "cancelled"
    assert monitor_pid(orch) is None
    tmux = Tmux.from_env()
    assert not tmux.has_session(session)
    raw = _status(orch)
    assert raw["status"] == "cancelled"
    assert [raw["stages"][k]["status"] for k in "12"] == ["cancelled", "cancelled"]
    done = [e for e in read_events(orch) if e["type"] == "orchestration_complete"]
    assert done[-1]["result"] == "cancelled" and done[-1]["cancelled"] == 2
    assert (autorun_home / "reports" / f"{orch.name}.md").is_file()
    assert Path(raw["stages"]["1"]["worktree"]).is_dir()  # kept
    summary = run_cli(["list"], repo, check=True).stdout
    assert "cancelled" in summary
    # A session of that name that this run did not start is left alone.
    subprocess.run(
        ["tmux", "-L", os.environ["AUTORUN_TMUX_SOCKET"], "new-session", "-d", "-s", session],
        check=True,
    )
    again = _cli_json(["cancel", orch.name], repo)
    assert again["changed"] is False and again["sessions_left"] == [session]
    assert tmux.has_session(session)
    tmux.kill_session(session)
    # Retrying a stage of the cancelled run brings back the stages it would have started.
    (gates / "stage-2").touch()
    run_cli(["retry", orch.name, "1"], repo, check=True)
    assert _status(orch)["stages"]["2"]["status"] == "pending"
    (gates / "stage-1").touch()
    raw = wait_finished(orch)
    assert raw["status"] == "completed"
    wait_until(lambda: monitor_pid(orch) is None, what="the new monitor to finish")


@pytest.mark.usefixtures("tmux_socket")
def test_clean_removes_only_what_the_run_left_and_keeps_its_record(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, autorun_home: Path
) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    log = tmp_path / "standin.log"
    standin_env(monkeypatch, gate=str(gates), log=str(log))
    orch = _orchestrate(
        repo, [(1, "Retried", []), (2, "After it", [1]), (3, "Cancelled", [])], "--no-monitor"
    )
    run = orch.name
    wait_until(lambda: _at_gate(log, 1) and _at_gate(log, 3), what="stages at their gates")
    # The user's own things, in and next to autorun's namespace.
    git(repo, "branch", "feature")
    git(repo, "worktree", "add", "-q", str(tmp_path / "my-wt"), "feature")
    git(repo, "branch", f"autorun/{run}/notes")
    # Refused while running: nothing changes.
    refused = run_cli(["clean", run], repo)
    assert refused.returncode == 1 and "still running" in refused.stderr
    assert refused.stderr.count("\n") == 1
    st = _status(orch)["stages"]
    first_branch, wt3 = st["1"]["branch"], Path(st["3"]["worktree"])
    run_cli(["cancel", run, "--stage", "1"], repo, check=True)
    run_cli(["retry", run, "1"], repo, check=True)  # a new branch: the first is a leftover
    assert _status(orch)["stages"]["1"]["branch"] != first_branch
    run_cli(["cancel", run, "--stage", "3"], repo, check=True)
    (gates / "stage-1").touch()
    (gates / "stage-2").touch()
    raw = wait_finished(orch)
    assert [raw["stages"][k]["status"] for k in "123"] == ["completed", "completed", "cancelled"]
    branch3 = raw["stages"]["3"]["branch"]
    run_cli(["report", run], repo, check=True)
    # An uncommitted file in a kept worktree keeps it (and its branch), unless --force.
    (wt3 / "draft.txt").write_text("not committed\n")
    wait_until(lambda: not Tmux.from_env().list_sessions(), what="sessions to close")
    out = _cli_json(["clean", run], repo)
    assert str(wt3) not in out["worktrees_removed"] and wt3.is_dir()
    assert any("uncommitted changes" in k for k in out["kept"])
    assert first_branch in out["branches_deleted"]
    assert any(k.startswith(f"branch {branch3}:") for k in out["kept"])
    assert any(k.startswith(f"branch autorun/{run}/notes:") for k in out["kept"])
    out = _cli_json(["clean", run, "--force"], repo)
    assert out["worktrees_removed"] == [str(wt3)] and out["branches_deleted"] == [branch3]
    assert not wt3.exists()
    branches = git(repo, "branch", "--list", "--format=%(refname:short)").split()
    assert sorted(branches) == sorted(["main", "feature", f"autorun/{run}/notes"])
    assert (tmp_path / "my-wt" / "README.md").is_file()  # the user's worktree
    assert len(git(repo, "worktree", "list").splitlines()) == 2
    # The run's record stays; a second clean has nothing to do.
    assert (orch / "status.json").is_file() and (orch / "events.jsonl").is_file()
    assert (autorun_home / "reports" / f"{run}.md").is_file()
    again = _cli_json(["clean", run], repo)
    assert again["changed"] is False
    assert run_cli(["status", run], repo).returncode == 0
    # --purge: the record goes too, and only it.
    purged = _cli_json(["clean", run, "--purge"], repo)
    assert str(orch) in purged["files_removed"]
    assert not orch.exists() and not (autorun_home / "reports" / f"{run}.md").exists()
    assert not list((autorun_home / "logs").glob("master-plan_stage-*.log"))
    assert git(repo, "rev-parse", "--verify", "feature")


@pytest.mark.usefixtures("tmux_socket")
def test_clean_of_a_demo_run_removes_its_scratch_repo_and_nothing_else(
    tmp_path: Path, repo: Path
) -> None:
    import sys

    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "mine.txt").write_text("the user's\n")
    proc = subprocess.run(
        [sys.executable, "-m", "autorun_py", "demo", "--dir", str(demo)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    env = {"AUTORUN_HOME": str(demo / "autorun-home")}
    out = json.loads(run_cli(["clean", "master-plan", "--json"], repo, env=env, check=True).stdout)
    assert str(demo / "textstats") in out["files_removed"]
    assert not (demo / "textstats").exists() and not (demo / "claude-config").exists()
    assert (demo / "autorun-home" / "orchestration" / "master-plan" / "status.json").is_file()
    run_cli(["clean", "master-plan", "--purge"], repo, env=env, check=True)
    assert sorted(p.name for p in demo.iterdir()) == ["mine.txt"]


@pytest.mark.usefixtures("tmux_socket")
def test_clean_all_finished_leaves_running_runs_alone(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    log = tmp_path / "standin.log"
    standin_env(monkeypatch, gate=str(gates), log=str(log), fail="1")
    done = _orchestrate(repo, [(1, "Fails", [])], "--no-monitor")
    (gates / "stage-1").touch()
    wait_finished(done)
    held = run_cli(
        ["orchestrate", str(write_plan(tmp_path, [(2, "Held", [])], name="other.md")), "--json"]
        + ["--no-monitor"],
        repo,
        check=True,
    )
    running = Path(json.loads(held.stdout)["orch_dir"])
    wait_until(lambda: _at_gate(log, 2), what="the other run's stage at its gate")
    failed_wt = Path(_status(done)["stages"]["1"]["worktree"])
    out = _cli_json(["clean", "--all-finished"], repo)
    assert [r["run"] for r in out] == [done.name]
    assert out[0]["worktrees_removed"] == [str(failed_wt)]
    assert any("stage 1 is failed; `autorun retry" in k for k in out[0]["kept"])  # its branch
    st = _status(running)["stages"]["2"]
    assert st["status"] == "in_progress" and Path(st["worktree"]).is_dir()
    assert Tmux.from_env().has_session(st["session"])


@pytest.mark.usefixtures("tmux_socket")
def test_purge_keeps_logs_another_run_of_the_same_slug_wrote(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, autorun_home: Path
) -> None:
    """Two projects with a plan of the same name: the second run reuses the first's
    project slug once it has finished, and so its log names. Purging one run must not
    delete logs the other wrote."""
    standin_env(monkeypatch, log=str(tmp_path / "standin.log"))
    first = _orchestrate(repo, [(1, "One", [])], "--no-monitor")
    wait_finished(first)
    # Its session ends shortly after its merge; then its slug is free again.
    wait_until(lambda: not Tmux.from_env().list_sessions(), what="the first run's session")
    other = tmp_path / "other" / "project"
    other.mkdir(parents=True)
    git(other, "init", "-q", "-b", "main")
    (other / "README.md").write_text("# other\n")
    git(other, "add", "README.md")
    git(other, "commit", "-q", "-m", "initial commit")
    second = _orchestrate(other, [(1, "Two", [])], "--no-monitor")
    wait_finished(second)
    assert _status(first)["project_slug"] == _status(second)["project_slug"]
    # The status view names the run a command takes, not only the plan.
    assert second.name != first.name
    header = run_cli(["status", second.name], other, check=True).stdout.splitlines()[0]
    assert header.startswith(f"{second.name} (plan "), header
    assert _cli_json(["status", second.name], other)["run"] == second.name
    slug = _status(first)["project_slug"]
    shared = autorun_home / "logs" / f"{slug}_stage-1.log"
    wait_until(shared.exists, what="the shared pane log")
    wait_until(lambda: not Tmux.from_env().list_sessions(), what="sessions to close")
    out = _cli_json(["clean", second.name, "--purge"], other)
    assert not second.exists()
    assert shared.exists(), out
    assert any(k.startswith(f"{shared}: also written by run {first.name}") for k in out["kept"])
    # The last run of that slug takes its logs with it.
    out = _cli_json(["clean", first.name, "--purge"], repo)
    assert not shared.exists() and str(shared) in out["files_removed"]
