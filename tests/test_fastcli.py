"""The lean path for `phase` and `context` (autorun_py/fastcli.py): the same
result, output and exit codes as the click commands, without their imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest

from autorun_py.plan import load_plan
from autorun_py.rundir import create_orchestration
from autorun_py.state import IN_PROGRESS, StatusStore, transition
from tests.helpers import run_cli, write_plan

CHAIN = [(1, "Ingest", []), (2, "Parse", [1])]


@pytest.fixture
def orch(repo: Path) -> Path:
    plan = write_plan(repo, CHAIN)
    return Path(create_orchestration(load_plan(plan), repo).orch_dir)


def _stage_in_worktree(repo: Path, orch: Path, n: int) -> Path:
    from autorun_py import launch, worktrees

    with StatusStore(orch).transaction() as txn:
        st = txn.state.stages[n]
        st.branch = launch.branch_name(txn.state, st)
        st.worktree = str(launch.worktree_path(txn.state, st))
        transition(txn, n, IN_PROGRESS)
    return worktrees.create(repo, Path(st.worktree), st.branch, "main", run=str(orch))


def _click(
    args: list[str], cwd: Path, env: Optional[dict[str, str]] = None
) -> subprocess.CompletedProcess[str]:
    """The same call through the full click CLI (never the lean path)."""
    import os

    full = dict(os.environ, **(env or {}))
    return subprocess.run(
        [sys.executable, "-c", "from autorun_py.cli import main; main()", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _env(orch: Path, n: int) -> dict[str, str]:
    return {"AUTORUN_ORCH_DIR": str(orch), "AUTORUN_STAGE": str(n)}


def _modules(args: list[str], cwd: Path, env: dict[str, str]) -> set[str]:
    import os

    code = (
        "import sys, runpy, atexit, json\n"
        "atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))\n"
        "sys.argv = ['autorun', *sys.argv[1:]]\n"
        "runpy.run_module('autorun_py', run_name='__main__')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stderr.strip().splitlines()[-1]))


def test_context_same_output_as_click(repo: Path, orch: Path) -> None:
    wt = _stage_in_worktree(repo, orch, 1)
    env = _env(orch, 1)
    for flags in ([], ["--json"], ["--shell"], ["--json", "--shell"]):
        fast = run_cli(["context", *flags], wt, env=env)
        slow = _click(["context", *flags], wt, env=env)
        assert fast.returncode == slow.returncode == 0, fast.stderr + slow.stderr
        assert fast.stdout == slow.stdout and fast.stderr == slow.stderr
    heavy = {"click", "filelock", "autorun_py.rundir", "autorun_py.git", "autorun_py.tmux"}
    assert not heavy & _modules(["context", "--json"], wt, env)


def test_context_elsewhere_falls_back_to_the_search(tmp_path: Path, repo: Path, orch: Path) -> None:
    wt = _stage_in_worktree(repo, orch, 1)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The session's own stage, but not its worktree: the full lookup says so.
    proc = run_cli(["context"], elsewhere, env=_env(orch, 1))
    assert proc.returncode == 1 and "belongs to no running orchestration" in proc.stderr
    # No session variables: the search finds the stage from its worktree.
    proc = run_cli(["context", "--json"], wt, env={"AUTORUN_ORCH_DIR": "", "AUTORUN_STAGE": ""})
    assert proc.returncode == 0 and json.loads(proc.stdout)["stage"] == 1


def test_phase_lean_records_like_click(repo: Path, orch: Path) -> None:
    wt = _stage_in_worktree(repo, orch, 1)
    env = _env(orch, 1)
    proc = run_cli(["phase", "implement", "started", "--current", "1", "--total=3"], wt, env=env)
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == "", proc.stderr
    ph = StatusStore(orch).read().stages[1].phase("implement")
    assert ph.started_at and ph.current_phase == 1 and ph.total_phases == 3
    plan_md = wt / "p.md"
    plan_md.write_text("plan\n")
    proc = run_cli(["phase", str(orch), "1", "create_plan", "completed", "--plan-file", "p.md"], wt)
    assert proc.returncode == 0, proc.stderr
    st = StatusStore(orch).read().stages[1]
    assert st.plan_file == str(plan_md.resolve()) and st.phase("create_plan").completed_at
    proc = run_cli(["phase", orch.name, "1", "implement", "completed"], repo)
    assert proc.returncode == 0, proc.stderr
    assert StatusStore(orch).read().stages[1].phase("implement").completed_at
    events = [json.loads(x) for x in (orch / "events.jsonl").read_text().splitlines()]
    assert [e["phase"] for e in events if e["type"] == "phase_status"] == [
        "implement",
        "create_plan",
        "implement",
    ]
    heavy = {"click", "filelock", "autorun_py.rundir", "autorun_py.git", "autorun_py.tmux"}
    assert not heavy & _modules(["phase", "triage", "completed"], wt, env)


@pytest.mark.parametrize(
    "args",
    [
        ["phase", "{orch}", "2", "implement", "started"],  # stage 2 is pending
        ["phase", "{orch}", "9", "implement", "started"],
        ["phase", "{orch}", "1", "dancing", "started"],
        ["phase", "{orch}", "1", "implement", "begun"],
        ["phase", "{orch}", "x", "implement", "started"],
        ["phase", "nosuchrun", "1", "implement", "started"],
        ["phase", "{orch}", "1", "implement", "started", "--current", "-1"],
        ["phase", "{orch}", "1", "implement", "started", "--bogus"],
        ["phase", "{orch}", "1", "implement", "started", "--current"],
        ["phase", "implement"],
        ["phase", "--help"],
        ["context", "--bogus"],
    ],
)
def test_errors_and_odd_calls_match_click(repo: Path, orch: Path, args: list[str]) -> None:
    _stage_in_worktree(repo, orch, 1)
    argv = [a.replace("{orch}", str(orch)) for a in args]
    before = (orch / "status.json").read_bytes()
    fast = run_cli(argv, repo)
    after = (orch / "status.json").read_bytes()
    slow = _click(argv, repo)
    assert (fast.returncode, fast.stdout) == (slow.returncode, slow.stdout)
    assert fast.stderr == slow.stderr
    if fast.returncode:
        assert before == after and "Traceback" not in fast.stderr
