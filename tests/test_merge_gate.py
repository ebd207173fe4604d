"""The merge gate end to end (real git, real tmux, stand-in agents): stage 1 renames
``greet`` to ``hello`` and updates its callers; stage 2, in parallel, adds a module
that calls ``greet``. Neither conflicts. With a verify command the base only ever
holds commits that pass it; without one, both land and the base does not import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autorun_py import gate
from autorun_py.config import load_config
from autorun_py.orchestrate import run_orchestrate
from autorun_py.state import StatusStore
from tests.helpers import (
    git,
    read_events,
    run_cli,
    standin_env,
    wait_finished,
    wait_until,
    write_plan,
)

CHECK = """\
import importlib, pkgutil, app
for m in pkgutil.iter_modules(app.__path__):
    importlib.import_module("app." + m.name)
print("all modules import")
"""
VERIFY = f"{sys.executable} check.py"

GREETING_OLD = 'def greet(name):\n    return "hi " + name\n'
MAIN_OLD = "from app.greeting import greet\n\n\ndef run():\n    return greet('you')\n"
GREETING_NEW = 'def hello(name):\n    return "hi " + name\n'
MAIN_NEW = "from app.greeting import hello\n\n\ndef run():\n    return hello('you')\n"
WELCOME_OLD = "from app.greeting import greet\n\n\ndef welcome():\n    return greet('new')\n"
WELCOME_NEW = "from app.greeting import hello\n\n\ndef welcome():\n    return hello('new')\n"


@pytest.fixture
def project(repo: Path) -> Path:
    for rel, text in {
        "app/__init__.py": "",
        "app/greeting.py": GREETING_OLD,
        "app/main.py": MAIN_OLD,
        "check.py": CHECK,
    }.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "app with greet")
    return repo


def _plan(project: Path, verify: str | None, attempts: int = 3) -> Path:
    plan = write_plan(
        project.parent,
        [(1, "Rename greet", []), (2, "New caller", []), (3, "Notes", [])],
    )
    if verify is not None:
        front = f"---\nverify: {verify}\nverify_timeout: 60\nverify_attempts: {attempts}\n---\n"
        plan.write_text(front + plan.read_text())
    return plan


def _tree(root: Path, fix: bool) -> Path:
    tree = root / "tree"
    files = {
        "stage-1/app/greeting.py": GREETING_NEW,
        "stage-1/app/main.py": MAIN_NEW,
        "stage-2/app/welcome.py": WELCOME_OLD,
        "stage-3/notes.md": "# notes\n",
    }
    if fix:
        files["stage-2-fix/app/welcome.py"] = WELCOME_NEW
    for rel, text in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text)
    return tree


def _first_parent_commits(repo: Path, since: str) -> list[str]:
    return git(repo, "rev-list", "--first-parent", f"{since}..main").split()


def _all_pass(repo: Path, since: str, tmp: Path) -> list[str]:
    """The first-parent commits of main since ``since`` that fail the verify command."""
    bad = []
    for c in _first_parent_commits(repo, since):
        v = gate.run_verify(
            repo,
            c,
            VERIFY,
            timeout=60,
            worktree=gate.verify_worktree_path(tmp / "check-run", "check", c),
            log=tmp / f"{c}.log",
        )
        if not v.passed:
            bad.append(c)
    return bad


def _run_pair(project: Path, tmp_path: Path, *, verify: str | None, fix: bool) -> Path:
    hold = tmp_path / "hold"
    hold.mkdir()
    (hold / "stage-1").touch()
    (hold / "stage-3").touch()
    orch = Path(
        run_orchestrate(
            _plan(project, verify, attempts=2), project, config=load_config(os.environ)
        ).orch_dir
    )
    wait_until(
        lambda: StatusStore(orch).read().stages[1].status == "completed",
        timeout=60,
        what="stage 1 merged",
    )
    (hold / "stage-2").touch()  # stage 2 merges after the rename is on main
    wait_finished(orch, timeout=120)
    return orch


@pytest.fixture
def pair_env(monkeypatch: pytest.MonkeyPatch, tmux_socket: str, tmp_path: Path) -> None:
    standin_env(
        monkeypatch,
        merge_gate=str(tmp_path / "hold"),
        tree=str(_tree(tmp_path, fix=True)),
        log=str(tmp_path / "standin.log"),
    )


def test_gate_sends_the_new_caller_back_and_its_fix_lands(
    project: Path, tmp_path: Path, pair_env: None
) -> None:
    base = git(project, "rev-parse", "main")
    orch = _run_pair(project, tmp_path, verify=VERIFY, fix=True)
    raw = json.loads((orch / "status.json").read_text())
    assert {n: s["status"] for n, s in raw["stages"].items()} == {
        "1": "completed",
        "2": "completed",
        "3": "completed",
    }
    assert raw["stages"]["2"]["counters"]["verify_failures"] == 1
    events = read_events(orch)
    failed = [e for e in events if e["type"] == "verify_failed"]
    assert [e["stage"] for e in failed] == [2]
    assert "cannot import name 'greet'" in Path(failed[0]["log"]).read_text()
    passed = [e for e in events if e["type"] == "verify_passed"]
    assert sorted(e["stage"] for e in passed) == [1, 2, 3]
    assert all(e["seconds"] >= 0 for e in passed + failed)
    log = (tmp_path / "standin.log").read_text()
    assert "stage 2 sent back by the merge gate" in log and "merged main in and fixed" in log
    assert _all_pass(project, base, tmp_path) == []
    assert (project / "app" / "welcome.py").read_text() == WELCOME_NEW  # checkout carried
    report = run_cli(["report", str(orch), "--json"], project)
    assert report.returncode == 0, report.stderr
    stages = {s["number"]: s for s in json.loads(report.stdout)["stages"]}
    assert stages[2]["gate"]["failures"] == 1 and stages[2]["gate"]["runs"] == 2
    assert stages[1]["gate"]["seconds"] > 0


def test_a_stage_that_gives_up_is_failed_and_the_others_merge(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tmux_socket: str
) -> None:
    standin_env(
        monkeypatch,
        merge_gate=str(tmp_path / "hold"),
        tree=str(_tree(tmp_path, fix=False)),
    )
    base = git(project, "rev-parse", "main")
    orch = _run_pair(project, tmp_path, verify=VERIFY, fix=False)
    raw = json.loads((orch / "status.json").read_text())
    assert raw["stages"]["1"]["status"] == "completed"
    assert raw["stages"]["3"]["status"] == "completed"
    st2 = raw["stages"]["2"]
    assert st2["status"] == "failed" and "merge gate 2 time(s)" in st2["failure"]
    assert st2["counters"]["verify_failures"] == 2
    assert _all_pass(project, base, tmp_path) == []
    assert not (project / "app" / "welcome.py").exists()


def test_without_a_verify_command_both_land_and_the_base_breaks(
    project: Path, tmp_path: Path, pair_env: None
) -> None:
    """Today's behaviour, documented: no gate, no check."""
    base = git(project, "rev-parse", "main")
    orch = _run_pair(project, tmp_path, verify=None, fix=True)
    raw = json.loads((orch / "status.json").read_text())
    assert all(s["status"] == "completed" for s in raw["stages"].values())
    assert not [e for e in read_events(orch) if e["type"].startswith("verify_")]
    assert _all_pass(project, base, tmp_path) != []  # main does not import any more
    out = subprocess.run([sys.executable, "check.py"], cwd=project, capture_output=True, text=True)
    assert out.returncode != 0 and "cannot import name 'greet'" in out.stderr


def _commit_files(wt: Path, files: dict[str, str], msg: str) -> None:
    for rel, text in files.items():
        (wt / rel).parent.mkdir(parents=True, exist_ok=True)
        (wt / rel).write_text(text)
    git(wt, "add", "-A")
    git(wt, "commit", "-q", "-m", msg)


def test_merge_exits_5_with_the_failing_import_then_lands_after_a_fix(
    project: Path, quiet_agent: None
) -> None:
    orch = Path(
        run_orchestrate(
            _plan(project, VERIFY), project, monitor=False, config=load_config(os.environ)
        ).orch_dir
    )
    st = StatusStore(orch).read().stages
    wt1, wt2 = Path(st[1].worktree or ""), Path(st[2].worktree or "")
    _commit_files(wt1, {"app/greeting.py": GREETING_NEW, "app/main.py": MAIN_NEW}, "rename")
    _commit_files(wt2, {"app/welcome.py": WELCOME_OLD}, "new caller")
    first = run_cli(["merge", str(orch), "1"], project)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "verifying stage 1" in first.stderr  # progress while the session waits
    tip = git(project, "rev-parse", "main")
    red = run_cli(["merge", str(orch), "2"], project)
    assert red.returncode == 5, red.stdout + red.stderr
    assert "failed the merge gate" in red.stdout and VERIFY in red.stdout
    assert "exit status 1" in red.stdout
    assert "ImportError: cannot import name 'greet'" in red.stdout
    assert "log:" in red.stdout and "Attempt 1 of 3" in red.stdout
    assert git(project, "rev-parse", "main") == tip  # the base did not move
    assert not (project / "app" / "welcome.py").exists()
    again = json.loads(run_cli(["merge", str(orch), "2", "--json"], project).stdout)
    assert again["exit_code"] == 5 and again["verify"]["attempt"] == 2
    assert Path(again["verify"]["log"]).is_file()
    # The model merges the base in, fixes its code, and merges again.
    git(wt2, "merge", "-q", "--no-edit", "main")
    _commit_files(wt2, {"app/welcome.py": WELCOME_NEW}, "call hello")
    done = run_cli(["merge", str(orch), "2", "--json"], project)
    assert done.returncode == 0, done.stdout + done.stderr
    merged = json.loads(done.stdout)["merge_commit"]
    assert git(project, "rev-parse", "main") == merged
    verified = [e["candidate"] for e in read_events(orch) if e["type"] == "verify_passed"]
    assert merged in verified  # the base moved to exactly the commit that passed
    assert StatusStore(orch).read().stages[2].merge_state is None


def test_status_shows_verifying_and_a_base_that_moved_meanwhile_is_verified_again(
    project: Path, quiet_agent: None, tmp_path: Path
) -> None:
    flag = tmp_path / "flags"
    flag.mkdir()
    wait_go = f"touch {flag}/started; while [ ! -f {flag}/go ]; do sleep 0.05; done"
    plan = _plan(project, f'"{wait_go}"')
    orch = Path(
        run_orchestrate(plan, project, monitor=False, config=load_config(os.environ)).orch_dir
    )
    wt = Path(StatusStore(orch).read().stages[3].worktree or "")
    _commit_files(wt, {"notes.md": "# notes\n"}, "notes")
    proc = subprocess.Popen(
        [sys.executable, "-m", "autorun_py", "merge", str(orch), "3", "--json"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: (flag / "started").exists(), timeout=60, what="verify started")
    status = run_cli(["status", str(orch)], project)
    assert "verifying" in status.stdout, status.stdout
    row = json.loads(run_cli(["status", str(orch), "--json"], project).stdout)["stages"][2]
    assert row["merge_state"] == "verifying"
    # the user commits on main while the candidate is being verified
    (project / "user.txt").write_text("mine\n")
    git(project, "add", "user.txt")
    git(project, "commit", "-q", "-m", "the user's own commit")
    user_tip = git(project, "rev-parse", "main")
    (flag / "go").touch()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    merged = json.loads(out)["merge_commit"]
    assert git(project, "rev-parse", "main") == merged
    assert git(project, "rev-parse", f"{merged}^1") == user_tip  # rebuilt on the new tip
    events = read_events(orch)
    started = [e["candidate"] for e in events if e["type"] == "verify_started"]
    passed = [e["candidate"] for e in events if e["type"] == "verify_passed"]
    assert len(started) == 2 and started[-1] == merged and merged in passed
    assert (project / "notes.md").is_file() and (project / "user.txt").is_file()


def test_a_hanging_verify_is_red_at_its_timeout(project: Path, quiet_agent: None) -> None:
    plan = _plan(project, "sleep 300")
    plan.write_text(plan.read_text().replace("verify_timeout: 60", "verify_timeout: 1"))
    orch = Path(
        run_orchestrate(plan, project, monitor=False, config=load_config(os.environ)).orch_dir
    )
    wt = Path(StatusStore(orch).read().stages[3].worktree or "")
    _commit_files(wt, {"notes.md": "# notes\n"}, "notes")
    tip = git(project, "rev-parse", "main")
    red = run_cli(["merge", str(orch), "3"], project)
    assert red.returncode == 5, red.stdout + red.stderr
    assert "killed at its timeout" in red.stdout
    assert git(project, "rev-parse", "main") == tip
    ev = [e for e in read_events(orch) if e["type"] == "verify_failed"]
    assert ev and ev[0]["timed_out"] is True and ev[0]["exit_status"] is None


def test_a_killed_merge_takes_its_verify_command_and_worktree_along(
    project: Path, quiet_agent: None, tmp_path: Path
) -> None:
    import os
    import signal

    pidfile = tmp_path / "verify.pid"
    plan = _plan(project, f'"sleep 300 & echo $! > {pidfile}; wait"')
    orch = Path(
        run_orchestrate(plan, project, monitor=False, config=load_config(os.environ)).orch_dir
    )
    wt = Path(StatusStore(orch).read().stages[3].worktree or "")
    _commit_files(wt, {"notes.md": "# notes\n"}, "notes")
    before = git(project, "worktree", "list")
    tip = git(project, "rev-parse", "main")
    proc = subprocess.Popen(
        [sys.executable, "-m", "autorun_py", "merge", str(orch), "3"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout=60)
    child = int(pidfile.read_text())
    proc.send_signal(signal.SIGTERM)  # e.g. Claude Code ending the command
    proc.communicate(timeout=60)
    assert proc.returncode == 130

    def gone() -> bool:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return True
        return False

    wait_until(gone, timeout=10, what="the verify command's child to be killed")
    assert git(project, "worktree", "list") == before  # the verification worktree went
    assert git(project, "rev-parse", "main") == tip
    assert run_cli(["merge", str(orch), "3", "--help"], project).returncode == 0


def test_stage_sessions_of_a_gated_run_get_time_for_the_merge(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autorun_py.launch import gate_session_env

    monkeypatch.delenv("BASH_DEFAULT_TIMEOUT_MS", raising=False)
    monkeypatch.setenv("BASH_MAX_TIMEOUT_MS", "999")
    gated = run_orchestrate(
        _plan(project, "true"), project, launch=False, monitor=False, config=load_config(os.environ)
    )
    env = gate_session_env(StatusStore(Path(gated.orch_dir)).read())
    assert env == {
        "BASH_DEFAULT_TIMEOUT_MS": str((4 * 60 + 600) * 1000),
        "BASH_MAX_TIMEOUT_MS": "999",
    }
