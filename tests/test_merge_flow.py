"""`autorun merge` on a run: conflicts hand-off, refusals, blocked merges,
simultaneous merges, failure and retry, and the demo."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from autorun_py.config import load_config
from autorun_py.orchestrate import run_orchestrate
from autorun_py.state import StatusStore
from tests.helpers import git, read_events, run_cli, standin_env, wait_finished, write_plan


def _commit_in(wt: Path, rel: str, text: str, msg: str) -> None:
    (wt / rel).parent.mkdir(parents=True, exist_ok=True)
    (wt / rel).write_text(text)
    git(wt, "add", "-A")
    git(wt, "commit", "-q", "-m", msg)


def test_conflict_hand_off_and_continue(repo: Path, quiet_agent: None) -> None:
    (repo / "shared.txt").write_text("line 1\nline 2\nline 3\n")
    git(repo, "add", "shared.txt")
    git(repo, "commit", "-q", "-m", "shared file")
    plan = write_plan(repo.parent, [(1, "Alpha", []), (2, "Beta", []), (3, "After", [1, 2])])
    orch = Path(run_orchestrate(plan, repo, monitor=False, config=load_config(os.environ)).orch_dir)
    st = StatusStore(orch).read().stages
    _commit_in(Path(st[1].worktree or ""), "shared.txt", "line 1\nALPHA\nline 3\n", "alpha")
    _commit_in(Path(st[2].worktree or ""), "shared.txt", "line 1\nBETA\nline 3\n", "beta")
    first = run_cli(["merge", str(orch), "1", "--json"], repo)
    assert first.returncode == 0, first.stderr
    base_after_first = git(repo, "rev-parse", "main")
    proc = run_cli(["merge", str(orch), "2", "--json"], repo)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert data["result"] == "conflict"
    assert [c["path"] for c in data["conflicts"]] == ["shared.txt"]
    touched = {t["stage"] for t in data["conflicts"][0]["touched_by"]}
    assert touched == {1, 2}
    assert "Do the work of Alpha" in data["conflicts"][0]["touched_by"][0]["scope"]
    assert git(repo, "rev-parse", "main") == base_after_first  # base untouched
    assert (repo / "shared.txt").read_text() == "line 1\nALPHA\nline 3\n"
    assert StatusStore(orch).read().stages[2].merge_state == "conflict"
    # The model resolves in the merge worktree, keeping both sides, and continues.
    mw = Path(data["merge_worktree"])
    (mw / "shared.txt").write_text("line 1\nALPHA\nBETA\nline 3\n")
    git(mw, "add", "shared.txt")
    done = run_cli(["merge", str(orch), "2", "--continue", "--json"], repo)
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout)
    assert out["result"] == "merged" and out["launched"] == [3]
    assert (repo / "shared.txt").read_text() == "line 1\nALPHA\nBETA\nline 3\n"
    conflicts_md = (orch / "conflicts.md").read_text()
    assert "Stage 2: Beta" in conflicts_md and "shared.txt" in conflicts_md
    types = [ev["type"] for ev in read_events(orch)]
    assert types.count("merge_conflict") == 1 and types.count("merge_complete") == 2
    # Re-running the merge of a merged stage is a no-op that says so.
    again = run_cli(["merge", str(orch), "2"], repo)
    assert again.returncode == 0 and "already merged" in again.stdout


def test_abort_drops_the_attempt(repo: Path, quiet_agent: None) -> None:
    (repo / "f.txt").write_text("a\n")
    git(repo, "add", "f.txt")
    git(repo, "commit", "-q", "-m", "f")
    plan = write_plan(repo.parent, [(1, "A", []), (2, "B", [])])
    orch = Path(run_orchestrate(plan, repo, monitor=False, config=load_config(os.environ)).orch_dir)
    st = StatusStore(orch).read().stages
    _commit_in(Path(st[1].worktree or ""), "f.txt", "one\n", "1")
    _commit_in(Path(st[2].worktree or ""), "f.txt", "two\n", "2")
    assert run_cli(["merge", str(orch), "1"], repo).returncode == 0
    proc = run_cli(["merge", str(orch), "2", "--json"], repo)
    assert proc.returncode == 3
    mw = Path(json.loads(proc.stdout)["merge_worktree"])
    assert run_cli(["merge", str(orch), "2", "--abort"], repo).returncode == 0
    assert not mw.exists()
    assert StatusStore(orch).read().stages[2].merge_state is None


def test_stage_without_commits_or_with_dirty_worktree_is_refused(
    repo: Path, quiet_agent: None
) -> None:
    plan = write_plan(repo.parent, [(1, "Nothing yet", [])])
    orch = Path(run_orchestrate(plan, repo, monitor=False, config=load_config(os.environ)).orch_dir)
    proc = run_cli(["merge", str(orch), "1"], repo)
    assert proc.returncode == 1 and "no commits" in proc.stderr
    wt = Path(StatusStore(orch).read().stages[1].worktree or "")
    _commit_in(wt, "a.txt", "a\n", "a")
    (wt / "b.txt").write_text("uncommitted\n")
    proc = run_cli(["merge", str(orch), "1"], repo)
    assert proc.returncode == 1 and "uncommitted changes" in proc.stderr and "b.txt" in proc.stderr
    assert StatusStore(orch).read().stages[1].status == "in_progress"


def test_blocked_by_user_changes_then_completes(repo: Path, quiet_agent: None) -> None:
    (repo / "notes.txt").write_text("v1\n")
    git(repo, "add", "notes.txt")
    git(repo, "commit", "-q", "-m", "notes")
    plan = write_plan(repo.parent, [(1, "Edit notes", []), (2, "Next", [1])])
    orch = Path(run_orchestrate(plan, repo, monitor=False, config=load_config(os.environ)).orch_dir)
    wt = Path(StatusStore(orch).read().stages[1].worktree or "")
    _commit_in(wt, "notes.txt", "v2 from stage\n", "stage edits notes")
    (repo / "notes.txt").write_text("my own edit\n")  # the user's uncommitted change
    tip = git(repo, "rev-parse", "main")
    proc = run_cli(["merge", str(orch), "1", "--json"], repo)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["blocked_files"] == ["notes.txt"]
    assert git(repo, "rev-parse", "main") == tip
    assert (repo / "notes.txt").read_text() == "my own edit\n"
    assert StatusStore(orch).read().stages[1].merge_state == "blocked"
    # The user commits; the next attempt goes through and starts stage 2.
    git(repo, "commit", "-q", "-am", "my edit")
    from autorun_py.recovery import retry_blocked_if_changed

    retried = retry_blocked_if_changed(orch, source="test", config=load_config(os.environ))
    assert [r.action for r in retried] in (["merged"], ["conflict"])


def test_five_simultaneous_merges_launch_each_next_stage_once(
    repo: Path, quiet_agent: None
) -> None:
    stages = [(n, f"Wide {n}", []) for n in range(1, 6)]
    stages += [(n + 5, f"After {n}", [n]) for n in range(1, 6)]
    stages += [(11, "Join", [1, 2, 3, 4, 5])]
    plan = write_plan(repo.parent, stages)
    orch = Path(run_orchestrate(plan, repo, monitor=False, config=load_config(os.environ)).orch_dir)
    st = StatusStore(orch).read().stages
    for n in range(1, 6):
        _commit_in(Path(st[n].worktree or ""), f"wide/{n}.txt", f"{n}\n", f"wide {n}")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "autorun_py", "merge", str(orch), str(n), "--json"],
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(1, 6)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), results
    state = StatusStore(orch).read()
    assert all(state.stages[n].status == "completed" for n in range(1, 6))
    launches = Counter(ev["stage"] for ev in read_events(orch) if ev["type"] == "stage_launched")
    assert launches == {n: 1 for n in range(1, 12)}
    assert all(state.stages[n].status == "in_progress" for n in range(6, 12))
    for n in range(1, 6):
        assert (repo / "wide" / f"{n}.txt").read_text() == f"{n}\n"
    assert json.loads((orch / "status.json").read_text())["revision"] == state.revision


def test_fail_blocks_descendants_others_complete_then_retry(
    repo: Path, tmux_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin_env(monkeypatch, fail="2")
    stages = [
        (1, "Root", []),
        (2, "Breaks", [1]),
        (3, "Fine", [1]),
        (4, "Needs 2", [2]),
        (5, "Independent", []),
    ]
    plan = write_plan(repo.parent, stages)
    orch = Path(run_orchestrate(plan, repo, monitor=False, config=load_config(os.environ)).orch_dir)
    raw = wait_finished(orch)
    statuses = {k: v["status"] for k, v in raw["stages"].items()}
    assert statuses == {
        "1": "completed",
        "2": "failed",
        "3": "completed",
        "4": "blocked",
        "5": "completed",
    }
    assert raw["status"] == "finished_with_failures"
    failed_wt = raw["stages"]["2"]["worktree"]
    assert Path(failed_wt).is_dir()  # kept for inspection
    monkeypatch.delenv("AUTORUN_STANDIN_FAIL")
    proc = run_cli(["retry", str(orch), "2", "--json"], repo)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "stage": 2,
        "unblocked": [4],
        "launched": [2],
        "launch_failed": [],
    }
    raw = wait_finished(orch)
    assert raw["status"] == "completed"
    assert all(s["status"] == "completed" for s in raw["stages"].values())
    assert (repo / "stages" / "stage-4.md").is_file()


def test_demo_completes(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "autorun_py", "demo", "--dir", str(tmp_path / "demo")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out[-3000:] + err
    assert "Demo completed" in out and "Merged:        6/6 stages" in out
    repo = tmp_path / "demo" / "textstats"
    # one merge per stage on main (stage 4's own branch may hold a merge of main too)
    assert len(git(repo, "log", "--merges", "--first-parent", "--oneline").splitlines()) == 6
    # the merge gate sent stage 4 back once; it fixed itself; main imports
    assert re.search(r"Merge gate .*: [6-9] candidate\(s\) passed, 1 sent back", out)
    assert "stage 4 was sent back (exit status 1)" in out
    check = subprocess.run([sys.executable, "check.py"], cwd=repo, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert "words(text)" in (repo / "textstats" / "api.py").read_text()
    # The demo's private tmux server is gone.
    sockets = subprocess.run(["tmux", "-L", f"autorun-demo-{proc.pid}", "ls"], capture_output=True)
    assert sockets.returncode != 0


def test_merge_without_arguments_merges_this_worktrees_stage(repo: Path, quiet_agent: None) -> None:
    plan = write_plan(repo.parent, [(1, "Here", []), (2, "Next", [1])])
    orch = Path(run_orchestrate(plan, repo, monitor=False, config=load_config(os.environ)).orch_dir)
    wt = Path(StatusStore(orch).read().stages[1].worktree or "")
    _commit_in(wt, "here.txt", "here\n", "here")
    proc = run_cli(["merge", "--json"], wt)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["launched"] == [2]
    assert run_cli(["merge", str(orch)], repo).returncode == 2  # ORCH without STAGE
    # `stage start` prints the context file (scope included) for the model.
    wt2 = Path(StatusStore(orch).read().stages[2].worktree or "")
    out = run_cli(["stage", "start", str(orch / "stages" / "stage-2-context.md")], wt2).stdout
    assert "## Scope" in out and "Do the work of Next." in out and "/autorun:merge" in out


def test_notable_events_and_phase_from_the_worktree(repo: Path, quiet_agent: None) -> None:
    plan = write_plan(repo.parent, [(1, "Here", []), (2, "Next", [1])])
    orch = Path(run_orchestrate(plan, repo, monitor=False, config=load_config(os.environ)).orch_dir)
    wt = Path(StatusStore(orch).read().stages[1].worktree or "")
    run_cli(["stage", "start", str(orch / "stages" / "stage-1-context.md")], wt)
    assert StatusStore(orch).read().stages[1].phases["triage"].started_at
    plan_md = wt.parent / "p.md"
    plan_md.write_text("# plan\n")
    proc = run_cli(["phase", "create_plan", "completed", "--plan-file", str(plan_md)], wt)
    assert proc.returncode == 0, proc.stderr
    st = StatusStore(orch).read().stages[1]
    assert st.plan_file == str(plan_md.resolve()) and st.phases["create_plan"].completed_at
    assert run_cli(["phase", "bogus", "started"], wt).returncode == 2
    _commit_in(wt, "x.txt", "x\n", "x")
    assert run_cli(["merge"], wt).returncode == 0
    lines = run_cli(["events", str(orch), "--notable"], repo).stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("autorun: stage 1 (Here) merged into main ")
    assert lines[0].endswith("; started 2")
    # --wait finds the running run of this repository.
    proc = run_cli(["events", "--wait", "--notable"], repo)
    assert proc.returncode == 0 and proc.stdout.splitlines() == lines


def test_question_from_a_stage_shows_in_its_status(repo: Path, quiet_agent: None) -> None:
    plan = write_plan(repo.parent, [(1, "Asks", [])])
    orch = Path(run_orchestrate(plan, repo, monitor=False, config=load_config(os.environ)).orch_dir)
    wt = Path(StatusStore(orch).read().stages[1].worktree or "")
    proc = run_cli(
        ["review", "new", "--title", "Which DB?", "--question", "Postgres or SQLite?", "--json"], wt
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["stage"] == 1 and data["orch_dir"] == str(orch)
    status = json.loads(run_cli(["status", str(orch), "--json"], repo).stdout)
    assert [(r["stage"], r["path"]) for r in status["reviews_waiting"]] == [(1, data["path"])]
    assert "waiting for your answer: stage 1" in run_cli(["status", str(orch)], repo).stdout
