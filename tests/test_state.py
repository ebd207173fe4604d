"""Orchestration state: creation, refusals, lifecycle, phases, events, context, status."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from autorun_py.errors import AutorunError
from autorun_py.plan import load_plan
from autorun_py.rundir import check_component, create_orchestration
from autorun_py.state import (
    BLOCKED,
    COMPLETED,
    IN_PROGRESS,
    PENDING,
    RUN_RUNNING,
    STAGE_STATUSES,
    TRANSITIONS,
    StatusStore,
    fail_stage,
    transition,
    update_phase,
)
from tests.helpers import git, run_cli, write_plan

DIAMOND = [(1, "Ingest", []), (2, "Parse", [1]), (3, "Index", [1]), (4, "Serve", [2, 3])]

SEED_TOP = {
    "plan_path",
    "plan_name",
    "project_slug",
    "project_root",
    "base_branch",
    "created_at",
    "stages",
    "current_wave",
    "waves",
}
SEED_STAGE = {
    "status",
    "name",
    "depends_on",
    "branch",
    "context_file",
    "plan_file",
    "started_at",
    "completed_at",
    "phases",
}


@pytest.fixture
def orch(repo: Path) -> Path:
    plan = write_plan(repo, DIAMOND)
    state = create_orchestration(load_plan(plan), repo)
    return Path(state.orch_dir)


def test_creates_seed_files(repo: Path, autorun_home: Path) -> None:
    plan = write_plan(repo, DIAMOND, name="wave_2_master_plan.md")
    state = create_orchestration(load_plan(plan), repo)
    orch = Path(state.orch_dir)
    assert orch == autorun_home / "orchestration" / "wave-2-master-plan"
    raw = json.loads((orch / "status.json").read_text())
    assert SEED_TOP <= set(raw)
    assert raw["base_branch"] == "main"
    assert raw["project_root"] == str(repo.resolve())
    assert raw["plan_path"] == str(plan.resolve())
    assert raw["waves"] == [[1], [2, 3], [4]] and raw["current_wave"] == 1
    assert set(raw["stages"]) == {"1", "2", "3", "4"}
    for key, st in raw["stages"].items():
        assert SEED_STAGE <= set(st)
        assert st["status"] == "pending" and st["branch"] is None
        assert set(st["phases"]) >= {"research", "create_plan", "implement", "merge"}
        assert st["phases"]["implement"] == {
            "started_at": None,
            "completed_at": None,
            "current_phase": None,
            "total_phases": None,
        }
        assert st["context_file"] == str(orch / "stages" / f"stage-{key}-context.md")
    assert raw["stages"]["4"]["depends_on"] == [2, 3]
    ctx = (orch / "stages" / "stage-4-context.md").read_text()
    assert ctx == (
        "# Stage 4: Serve\n\n## Scope\n\nDo the work of Serve.\n\n## Dependencies\n\n"
        "- Depends on: Stage 2, Stage 3\n\n## Orchestration\n\n"
        f"orchestration_dir: {orch}/\nstage_number: 4\nstatus_file: {orch}/status.json\n"
        "base_branch: main\n"
    )
    assert "- Depends on: None" in (orch / "stages" / "stage-1-context.md").read_text()
    events = [json.loads(x) for x in (orch / "events.jsonl").read_text().splitlines()]
    assert len(events) == 1
    ev = events[0]
    assert ev["type"] == "orchestration_started"
    assert {
        "ts",
        "plan_name",
        "project_slug",
        "project_root",
        "total_stages",
        "total_waves",
        "waves",
        "orch_dir",
    } <= set(ev)
    assert ev["orch_dir"] == str(orch) and ev["total_stages"] == 4 and ev["total_waves"] == 3


def test_no_state_written_into_repo(repo: Path) -> None:
    plan = write_plan(repo, DIAMOND)
    git(repo, "add", "master_plan.md")
    git(repo, "commit", "-q", "-m", "plan")
    create_orchestration(load_plan(plan), repo)
    assert git(repo, "status", "--porcelain", "--ignored") == ""


def test_refuses_outside_git(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, DIAMOND)
    with pytest.raises(AutorunError, match="not inside a git repository"):
        create_orchestration(load_plan(plan), tmp_path)


def test_refuses_detached_head(repo: Path) -> None:
    plan = write_plan(repo, DIAMOND)
    git(repo, "checkout", "-q", "--detach")
    with pytest.raises(AutorunError, match="detached HEAD"):
        create_orchestration(load_plan(plan), repo)


def test_refuses_repo_without_commits(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    plan = write_plan(tmp_path, DIAMOND)
    with pytest.raises(AutorunError, match="no commits"):
        create_orchestration(load_plan(plan), tmp_path)


def test_cli_refusal_is_one_line(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, DIAMOND)
    proc = run_cli(["orchestrate", str(plan), "--no-launch"], tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "not inside a git repository" in proc.stderr


def test_running_run_is_never_overwritten(repo: Path, orch: Path) -> None:
    before = (orch / "status.json").read_bytes()
    plan = repo / "master_plan.md"
    with pytest.raises(AutorunError, match="still running.*autorun status"):
        create_orchestration(load_plan(plan), repo)
    assert (orch / "status.json").read_bytes() == before


def test_finished_run_gets_a_new_directory(repo: Path, orch: Path) -> None:
    store = StatusStore(orch)
    with store.transaction() as txn:
        fail_stage(txn, 1, "gave up")
        for n in (2, 3, 4):
            assert txn.state.stages[n].status == "blocked"
    assert store.read().status == "finished_with_failures"
    before = (orch / "status.json").read_bytes()
    second = create_orchestration(load_plan(repo / "master_plan.md"), repo)
    assert Path(second.orch_dir) == orch.parent / (orch.name + "-2")
    assert (orch / "status.json").read_bytes() == before
    # A third run while the second is running is refused.
    with pytest.raises(AutorunError, match="still running"):
        create_orchestration(load_plan(repo / "master_plan.md"), repo)


@pytest.mark.parametrize("name", ["..", ".", "a/b", "/etc", "x\\y", "", "UPPER", "a\0b", "-x"])
def test_plan_names_cannot_escape(name: str) -> None:
    with pytest.raises(AutorunError, match="unsafe"):
        check_component(name)


def test_every_illegal_transition_is_rejected(orch: Path) -> None:
    store = StatusStore(orch)
    for source in STAGE_STATUSES:
        for target in STAGE_STATUSES:
            with store.transaction() as txn:
                txn.state.stages[1].status = source
            before = store.read()
            if target in TRANSITIONS[source]:
                with store.transaction() as txn:
                    transition(txn, 1, target)
                assert store.read().stages[1].status == target
            else:
                with pytest.raises(AutorunError, match=f"is {source}; it cannot become {target}"):
                    with store.transaction() as txn:
                        transition(txn, 1, target)
                after = store.read()
                assert after.revision == before.revision  # nothing written
                assert after.stages[1].status == source


def test_transition_events_and_timestamps(orch: Path) -> None:
    store = StatusStore(orch)
    with store.transaction() as txn:
        transition(txn, 1, IN_PROGRESS)
        update_phase(txn, 1, "implement", "started", current=1, total=3)
    with store.transaction() as txn:
        update_phase(txn, 1, "implement", "completed", current=3, total=3)
        transition(txn, 1, COMPLETED)
    st = store.read().stages[1]
    assert st.started_at and st.completed_at
    impl = st.phases["implement"]
    assert impl.current_phase == 3 and impl.total_phases == 3 and impl.completed_at
    types = [json.loads(x)["type"] for x in (orch / "events.jsonl").read_text().splitlines()]
    assert types == [
        "orchestration_started",
        "stage_started",
        "phase_status",
        "phase_status",
        "stage_completed",
    ]
    for line in (orch / "events.jsonl").read_text().splitlines():
        ev = json.loads(line)
        assert {"ts", "type", "plan_name", "project_slug", "orch_dir"} <= set(ev)


def test_phase_rejected_unless_in_progress(orch: Path, repo: Path) -> None:
    proc = run_cli(["phase", str(orch), "1", "research", "started"], repo)
    assert proc.returncode == 1 and "is pending" in proc.stderr
    proc = run_cli(["phase", str(orch), "9", "research", "started"], repo)
    assert proc.returncode == 1 and "no stage 9" in proc.stderr
    proc = run_cli(["phase", str(orch), "1", "dancing", "started"], repo)
    assert proc.returncode == 2


def test_fail_blocks_descendants_only(orch: Path) -> None:
    store = StatusStore(orch)
    with store.transaction() as txn:
        transition(txn, 1, IN_PROGRESS)
        transition(txn, 1, COMPLETED)
        transition(txn, 2, IN_PROGRESS)
        transition(txn, 3, IN_PROGRESS)
    with store.transaction() as txn:
        blocked = fail_stage(txn, 2, "tests do not pass")
    assert blocked == [4]
    st = store.read()
    assert [st.stages[n].status for n in (1, 2, 3, 4)] == [
        COMPLETED,
        "failed",
        IN_PROGRESS,
        "blocked",
    ]
    assert st.stages[2].failure == "tests do not pass"
    assert st.status == "running"  # stage 3 still going


def test_migrates_a_seed_status_file(orch: Path) -> None:
    raw = json.loads((orch / "status.json").read_text())
    seed = {k: raw[k] for k in SEED_TOP}
    seed["stages"] = {k: {f: v[f] for f in SEED_STAGE} for k, v in raw["stages"].items()}
    (orch / "status.json").write_text(json.dumps(seed))
    state = StatusStore(orch).read()
    assert state.schema_version == 1 and state.schedule == "waves"
    with StatusStore(orch).transaction() as txn:
        transition(txn, 1, IN_PROGRESS)
    assert json.loads((orch / "status.json").read_text())["schema_version"] == 1


def test_newer_schema_is_refused(orch: Path) -> None:
    raw = json.loads((orch / "status.json").read_text())
    raw["schema_version"] = 99
    (orch / "status.json").write_text(json.dumps(raw))
    with pytest.raises(AutorunError, match="newer than this autorun"):
        StatusStore(orch).read()


def test_unknown_fields_survive_a_write(orch: Path) -> None:
    raw = json.loads((orch / "status.json").read_text())
    raw["future_field"] = {"x": 1}
    raw["stages"]["1"]["future_stage_field"] = [1, 2]
    (orch / "status.json").write_text(json.dumps(raw))
    with StatusStore(orch).transaction() as txn:
        transition(txn, 1, IN_PROGRESS)
    raw = json.loads((orch / "status.json").read_text())
    assert raw["future_field"] == {"x": 1}
    assert raw["stages"]["1"]["future_stage_field"] == [1, 2]


# --------------------------------------------------------------------------- stage / context


def _worktree(repo: Path, orch: Path, n: int) -> Path:
    """The stage's worktree and branch as launch's claim makes them (without tmux)."""
    from autorun_py import launch, worktrees

    with StatusStore(orch).transaction() as txn:
        st = txn.state.stages[n]
        st.branch = launch.branch_name(txn.state, st)
        st.worktree = str(launch.worktree_path(txn.state, st))
    return worktrees.create(repo, Path(st.worktree), st.branch, "main", run=str(orch))


def test_stage_start_registers_and_context_finds_it(repo: Path, orch: Path) -> None:
    wt = _worktree(repo, orch, 1)
    ctx_file = orch / "stages" / "stage-1-context.md"
    proc = run_cli(["stage", "start", str(ctx_file), "--json"], wt)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["stage"] == 1 and data["orch_dir"] == str(orch)
    assert data["worktree"] == str(wt.resolve())
    assert data["branch"] == f"autorun/{orch.name}/stage-1-ingest"
    assert data["chain_command"] == f"/autorun:merge {orch} 1"
    st = StatusStore(orch).read().stages[1]
    assert st.status == IN_PROGRESS and st.worktree == str(wt.resolve())
    # From a subdirectory of the worktree too; and --shell output evals.
    sub = wt / "deep" / "er"
    sub.mkdir(parents=True)
    proc = run_cli(["context", "--shell"], sub)
    assert proc.returncode == 0, proc.stderr
    out = subprocess.run(
        ["bash", "-c", proc.stdout + '\nprintf "%s|%s" "$AUTORUN_STAGE" "$AUTORUN_ORCH_DIR"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == f"1|{orch}"
    # Nothing written into the worktree.
    assert git(wt, "status", "--porcelain", "--ignored") == ""


def test_stage_start_refuses_unready_and_base_checkout(repo: Path, orch: Path) -> None:
    wt = _worktree(repo, orch, 4)
    proc = run_cli(["stage", "start", str(orch / "stages" / "stage-4-context.md")], wt)
    assert proc.returncode == 1 and "waits for stage(s) 2, 3" in proc.stderr
    proc = run_cli(["stage", "start", str(orch / "stages" / "stage-1-context.md")], repo)
    assert proc.returncode == 1 and "stage 1 has no worktree yet" in proc.stderr
    _worktree(repo, orch, 1)
    proc = run_cli(["stage", "start", str(orch / "stages" / "stage-1-context.md")], repo)
    assert proc.returncode == 1 and "is not stage 1's worktree" in proc.stderr
    assert StatusStore(orch).read().stages[1].status == PENDING


def test_context_outside_any_stage_exits_1(tmp_path: Path, orch: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = run_cli(["context"], elsewhere)
    assert proc.returncode == 1
    assert "belongs to no running orchestration" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_shell_output_quotes_hostile_names(repo: Path) -> None:
    canary = repo / "CANARY"
    stages = [(1, f"Break $(touch {canary}) `touch {canary}` 'q\" ; rm -rf x", [])]
    plan = write_plan(repo, stages)
    orch = Path(create_orchestration(load_plan(plan), repo).orch_dir)
    wt = _worktree(repo, orch, 1)
    proc = run_cli(["stage", "start", str(orch / "stages" / "stage-1-context.md"), "--shell"], wt)
    assert proc.returncode == 0, proc.stderr
    out = subprocess.run(
        ["bash", "-c", proc.stdout + '\nprintf "%s" "$AUTORUN_NAME"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == load_plan(plan).stages[0].name
    assert "$(touch" in out
    assert not canary.exists()
    assert shlex.split(proc.stdout)  # well-formed


def test_status_and_list(repo: Path, orch: Path) -> None:
    with StatusStore(orch).transaction() as txn:
        transition(txn, 1, IN_PROGRESS)
        update_phase(txn, 1, "implement", "started", current=2, total=5)
    proc = run_cli(["status", "--json"], repo)  # found from the repository
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["orch_dir"] == str(orch)
    assert data["progress"] == {"completed": 0, "total": 4}
    row = data["stages"][0]
    assert row["status"] == IN_PROGRESS and row["phase"] == "implement"
    assert row["implement_progress"] == "2/5"
    assert data["ready"] == [] and data["stages"][3]["waiting_on"] == [2, 3]
    human = run_cli(["status", orch.name], repo)
    assert human.returncode == 0 and "implement" in human.stdout and "2/5" in human.stdout
    runs = json.loads(run_cli(["list", "--json"], repo).stdout)
    assert [r["name"] for r in runs] == [orch.name] and runs[0]["running"] == 1
    # --watch ends by itself once the run is finished.
    with StatusStore(orch).transaction() as txn:
        fail_stage(txn, 1, "x")
    proc = run_cli(["status", orch.name, "--watch", "--interval", "0.1"], repo, timeout=20)
    assert proc.returncode == 0 and "failure: x" in proc.stdout


def test_events_cli_and_follow(repo: Path, orch: Path) -> None:
    proc = run_cli(["events", str(orch), "--json"], repo)
    assert json.loads(proc.stdout.splitlines()[0])["type"] == "orchestration_started"
    follower = subprocess.Popen(
        [sys.executable, "-m", "autorun_py", "events", str(orch), "--follow", "--json"]
        + ["--grace", "0.2"],
        cwd=repo,
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        with StatusStore(orch).transaction() as txn:
            fail_stage(txn, 1, "boom")  # blocks 2,3,4 -> run finished -> follow ends
        out, _ = follower.communicate(timeout=20)
    finally:
        follower.kill()
    types = [json.loads(x)["type"] for x in out.splitlines()]
    assert types[0] == "orchestration_started" and types[-1] == "orchestration_complete"
    assert types.count("stage_blocked") == 3


def _retry_in_state(orch: Path, number: int) -> None:
    """What ``autorun retry`` does to the state (without launching a session)."""
    with StatusStore(orch).transaction() as txn:
        transition(txn, number, PENDING, reason="retry")
        txn.state.stages[number].failure = None
        unblocked = []
        for n, st in sorted(txn.state.stages.items()):
            if st.status == BLOCKED:
                transition(txn, n, PENDING, reason=f"stage {number} retried")
                unblocked.append(n)
        txn.state.status = RUN_RUNNING
        txn.state.completed_at = None
        txn.emit("stage_retry", stage=number, unblocked=unblocked)


def test_follow_does_not_stop_at_a_completion_that_a_retry_reopened(repo: Path, orch: Path) -> None:
    with StatusStore(orch).transaction() as txn:
        fail_stage(txn, 1, "boom")  # the run finishes ...
    _retry_in_state(orch, 1)  # ... and is reopened by a retry
    with StatusStore(orch).transaction() as txn:
        transition(txn, 1, IN_PROGRESS)
    follower = subprocess.Popen(
        [sys.executable, "-m", "autorun_py", "events", str(orch), "--follow", "--json"]
        + ["--grace", "0.5"],
        cwd=repo,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        seen: list[str] = []
        for line in follower.stdout:  # everything logged so far, then still following
            seen.append(json.loads(line)["type"])
            if seen[-1] == "stage_started" or len(seen) > 50:
                break
        assert "stage_retry" in seen and follower.poll() is None
        with StatusStore(orch).transaction() as txn:
            fail_stage(txn, 1, "boom again")
        out, _ = follower.communicate(timeout=30)
    finally:
        follower.kill()
    types = seen + [json.loads(x)["type"] for x in out.splitlines()]
    assert types.count("orchestration_complete") == 2
    assert types[-1] == "orchestration_complete"
    assert types.index("stage_retry") < len(types) - 1
    assert follower.returncode == 0


def test_second_live_run_with_the_same_slug_gets_a_distinct_one(repo: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q", "-b", "main")
    git(other, "commit", "-q", "--allow-empty", "-m", "init")
    a = create_orchestration(load_plan(write_plan(repo, DIAMOND, name="x_plan.md")), repo)
    b = create_orchestration(load_plan(write_plan(other, DIAMOND, name="x-plan.md")), other)
    assert a.project_slug != b.project_slug
    assert Path(a.orch_dir).name == "x-plan" and Path(b.orch_dir).name == "x-plan-2"
    assert len(b.project_slug) <= 20
