"""The lean path for `phase`, `context`, `stage start`, `chain` and `merge`
(autorun_py/fastcli.py): the same result, output and exit codes as the click
commands, without their imports."""

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


def test_stage_start_lean_same_output_as_click(repo: Path, orch: Path) -> None:
    wt = _stage_in_worktree(repo, orch, 1)
    ctx_file = StatusStore(orch).read().stages[1].context_file
    for flags in ([], ["--json"], ["--shell"], ["--json", "--shell"]):
        fast = run_cli(["stage", "start", ctx_file, *flags], wt)
        slow = _click(["stage", "start", ctx_file, *flags], wt)
        assert fast.returncode == slow.returncode == 0, fast.stderr + slow.stderr
        assert fast.stdout == slow.stdout and fast.stderr == slow.stderr
    assert "## Scope" in run_cli(["stage", "start", ctx_file], wt).stdout  # the context file
    st = StatusStore(orch).read().stages[1]
    assert st.status == IN_PROGRESS and st.phase("triage").started_at
    # From anywhere else: the same refusal, nothing changed.
    before = (orch / "status.json").read_bytes()
    fast = run_cli(["stage", "start", ctx_file], repo)
    slow = _click(["stage", "start", ctx_file], repo)
    assert fast.returncode == slow.returncode == 1 and fast.stderr == slow.stderr
    assert "is not stage 1's worktree" in fast.stderr
    assert (orch / "status.json").read_bytes() == before
    heavy = {"click", "autorun_py.cli", "autorun_py.rundir", "autorun_py.git"}
    assert not heavy & _modules(["stage", "start", ctx_file, "--json"], wt, {})


def test_merge_lean_same_output_and_exit_codes_as_click(repo: Path, orch: Path) -> None:
    wt = _stage_in_worktree(repo, orch, 1)
    env = _env(orch, 1)
    # No commits yet: the same refusal both ways, nothing changed.
    before = (orch / "status.json").read_bytes()
    fast = run_cli(["merge", "--json"], wt, env=env)
    slow = _click(["merge", "--json"], wt, env=env)
    assert (fast.returncode, fast.stdout) == (slow.returncode, slow.stdout)
    assert fast.stderr == slow.stderr
    assert fast.returncode != 0 and "Traceback" not in fast.stderr
    assert (orch / "status.json").read_bytes() == before
    (wt / "one.txt").write_text("one\n")
    subprocess.run(["git", "add", "-A"], cwd=wt, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "one"], cwd=wt, check=True)
    heavy = {"click", "autorun_py.cli"}
    assert not heavy & _modules(["merge", str(orch), "1", "--json"], repo, {})  # merges it
    st = StatusStore(orch).read().stages[1]
    assert st.status == "completed" and st.merge_commit
    for args in (["merge", str(orch), "1"], ["merge", str(orch), "1", "--json"]):
        fast, slow = run_cli(args, repo), _click(args, repo)
        assert fast.returncode == slow.returncode == 0
        assert fast.stdout == slow.stdout and "already merged" in fast.stdout
    for args in (["merge", str(orch)], ["merge", str(orch), "x"], ["merge", "--bogus"]):
        fast, slow = run_cli(args, repo), _click(args, repo)
        assert (fast.returncode, fast.stderr) == (slow.returncode, slow.stderr) and fast.returncode


@pytest.mark.usefixtures("tmux_socket")
def test_chain_lean_same_output_as_click(
    repo: Path, orch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shlex

    from autorun_py.tmux import Tmux

    wt = _stage_in_worktree(repo, orch, 1)
    monkeypatch.setenv("AUTORUN_CLAUDE", sys.executable)
    monkeypatch.setenv("AUTORUN_AGENT_ARGS", shlex.join(["-c", "import time; time.sleep(60)"]))
    tmux = Tmux.from_env()
    tmux.new_session("host", ["sleep", "60"], cwd=wt, env={"AUTORUN_ORCH_DIR": str(orch)})
    with StatusStore(orch).transaction() as txn:
        txn.state.stages[1].session = "host"
    env = _env(orch, 1)
    args = ["chain", "/autorun:merge", "--window", "merge", "--json"]
    assert not {"click", "autorun_py.cli"} & _modules(args, wt, env)  # opens the window
    windows = tmux.out(["list-windows", "-t", "=host", "-F", "#{window_name}"]).splitlines()
    assert windows.count("merge") == 1
    st = StatusStore(orch).read().stages[1]
    assert st.extra["chained_to"] == {"command": "/autorun:merge", "window": "merge"}
    assert st.phase("implement").completed_at  # the hand-off ends the implementation
    # The same step again: nothing to do, said the same way by both.
    for flags in ([], ["--json"]):
        argv = ["chain", "/autorun:merge", "--window=merge", *flags]
        fast, slow = run_cli(argv, wt, env=env), _click(argv, wt, env=env)
        assert fast.returncode == slow.returncode == 0, fast.stderr + slow.stderr
        assert fast.stdout == slow.stdout and fast.stderr == slow.stderr
    assert "already running" in run_cli(argv[:-1], wt, env=env).stdout
    windows = tmux.out(["list-windows", "-t", "=host", "-F", "#{window_name}"]).splitlines()
    assert windows.count("merge") == 1
