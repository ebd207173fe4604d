"""The merge gate's parts: where the verify command comes from, running it on one
exact commit in a verification worktree (timeout kills the process group, a log,
the user's checkout untouched), and what orchestrate/status/--dry-run show."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from autorun_py import gate
from autorun_py.config import load_config
from autorun_py.errors import AutorunError
from autorun_py.plan import parse_plan
from tests.helpers import git, run_cli, write_plan


def _wt(name: str) -> Path:
    """A verification worktree path under $AUTORUN_HOME/worktrees/<run>/."""
    return Path(os.environ["AUTORUN_HOME"]) / "worktrees" / "test-run" / name


def _head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD")


def _status(repo: Path) -> str:
    return git(repo, "status", "--porcelain=v1", "--untracked-files=all", "--ignored")


def test_green_and_red_verdicts_with_log_and_tail(repo: Path, tmp_path: Path) -> None:
    commit = _head(repo)
    wt = _wt("verify-a")
    log = tmp_path / "logs" / "a.log"
    green = gate.run_verify(
        repo, commit, "test -f README.md && echo fine", timeout=30, worktree=wt, log=log
    )
    assert green.passed and green.exit_status == 0 and not green.timed_out
    assert "fine" in green.tail and "fine" in log.read_text()
    assert not wt.exists()
    lines = "; ".join(f"echo line-{i}" for i in range(100))
    red = gate.run_verify(
        repo, commit, f"{lines}; exit 3", timeout=30, worktree=wt, log=tmp_path / "b.log"
    )
    assert not red.passed and red.exit_status == 3 and red.describe() == "exit status 3"
    tail = red.tail.splitlines()
    assert "line-99" in red.tail and "line-20" not in red.tail
    assert len(tail) <= gate.TAIL_LINES
    assert not wt.exists()
    assert str(wt) not in git(repo, "worktree", "list")


def test_verify_runs_on_the_exact_commit_not_the_checkout(repo: Path, tmp_path: Path) -> None:
    first = _head(repo)
    (repo / "new.txt").write_text("later\n")
    git(repo, "add", "new.txt")
    git(repo, "commit", "-q", "-m", "later")
    verdict = gate.run_verify(
        repo,
        first,
        'test ! -e new.txt && test "$(git rev-parse HEAD)" = "$AUTORUN_VERIFY_COMMIT"',
        timeout=30,
        worktree=_wt("verify-b"),
        log=tmp_path / "v.log",
    )
    assert verdict.passed, verdict.tail


def test_a_hanging_verify_is_killed_at_its_timeout(repo: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    t0 = time.monotonic()
    verdict = gate.run_verify(
        repo,
        _head(repo),
        f"sleep 300 & echo $! > {pidfile}; echo started; wait",
        timeout=1.5,
        worktree=_wt("verify-b"),
        log=tmp_path / "hang.log",
    )
    took = time.monotonic() - t0
    assert not verdict.passed and verdict.timed_out and verdict.exit_status is None
    assert "timeout" in verdict.describe()
    assert took < 1.5 + 10
    child = int(pidfile.read_text())
    # the whole process group is gone, the background child too
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the verify command's child {child} survived its timeout")
    assert "killed at its timeout" in (tmp_path / "hang.log").read_text()
    assert not _wt("verify-b").exists()


def test_verification_worktrees_live_only_under_autorun_home(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(AutorunError, match="not under"):
        gate.run_verify(
            repo, _head(repo), "true", timeout=5, worktree=tmp_path / "x", log=tmp_path / "l"
        )
    assert not (tmp_path / "x").exists()


def test_leftover_files_never_reach_the_users_checkout(repo: Path, tmp_path: Path) -> None:
    (repo / ".gitignore").write_text("build/\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-q", "-m", "ignore build")
    (repo / "mine.txt").write_text("the user's own untracked file\n")
    before = _status(repo)
    wt = _wt("verify-x")
    verdict = gate.run_verify(
        repo,
        _head(repo),
        "mkdir -p build && echo out > build/artifact && echo junk > leftover.txt "
        "&& echo changed > README.md && git add leftover.txt",
        timeout=30,
        worktree=wt,
        log=tmp_path / "left.log",
    )
    assert verdict.passed, verdict.tail
    assert _status(repo) == before
    assert not (repo / "leftover.txt").exists() and not (repo / "build").exists()
    assert (repo / "README.md").read_text() == "# project\n"
    assert (repo / "mine.txt").read_text() == "the user's own untracked file\n"
    assert not wt.exists()
    assert len(git(repo, "worktree", "list").splitlines()) == 1


def test_sources_command_line_over_plan_over_config(autorun_home: Path, tmp_path: Path) -> None:
    assert not gate.resolve_spec(config=load_config(os.environ)).gated
    autorun_home.mkdir(parents=True, exist_ok=True)
    (autorun_home / "config.json").write_text(
        json.dumps({"verify": "make check", "verify_timeout": 60})
    )
    spec = gate.resolve_spec(config=load_config(os.environ))
    assert (spec.command, spec.timeout, spec.source) == ("make check", 60.0, "config")
    plan = parse_plan(
        "---\nverify: pytest -q\nverify_timeout: 120\nverify_attempts: 2\n---\n"
        "# Plan\n\n## Stage 1: A\n\n**Dependencies**: None\n\nDo A.\n",
        tmp_path / "plan.md",
    )
    assert plan.front_matter["verify"] == "pytest -q" and len(plan.stages) == 1
    spec = gate.resolve_spec(front_matter=plan.front_matter, config=load_config(os.environ))
    assert (spec.command, spec.timeout, spec.attempts, spec.source) == (
        "pytest -q",
        120.0,
        2,
        "plan",
    )
    spec = gate.resolve_spec(
        command_line="true", front_matter=plan.front_matter, config=load_config(os.environ)
    )
    assert (spec.command, spec.source) == ("true", "command line")
    assert not gate.resolve_spec(
        command_line="", front_matter=plan.front_matter, config=load_config(os.environ)
    ).gated
    with pytest.raises(AutorunError, match="verify_timeout"):
        gate.resolve_spec(
            front_matter={"verify": "x", "verify_timeout": "soon"}, config=load_config(os.environ)
        )
    quoted = parse_plan(
        '---\nverify: "pytest -q && ruff check ."\n---\n## Stage 1: A\nDepends on: None\nA\n',
        tmp_path / "p.md",
    )
    assert quoted.front_matter["verify"] == "pytest -q && ruff check ."


def test_orchestrate_dry_run_and_status_show_the_gate(repo: Path, tmux_socket: str) -> None:
    plan = write_plan(repo.parent, [(1, "A", [])])
    text = plan.read_text()
    plan.write_text("---\nverify: python3 -c pass\n---\n" + text)
    dry = run_cli(["orchestrate", str(plan), "--dry-run"], repo)
    assert dry.returncode == 0, dry.stderr
    assert "Merge gate:    `python3 -c pass` (from the plan" in dry.stdout
    over = run_cli(["orchestrate", str(plan), "--dry-run", "--verify", "true", "--json"], repo)
    assert json.loads(over.stdout)["verify"]["command"] == "true"
    off = run_cli(["orchestrate", str(plan), "--dry-run", "--verify", ""], repo)
    assert "Merge gate:    not gated" in off.stdout
    made = run_cli(["orchestrate", str(plan), "--no-launch", "--no-monitor"], repo)
    assert made.returncode == 0, made.stderr
    orch = next((Path(os.environ["AUTORUN_HOME"]) / "orchestration").iterdir())
    raw = json.loads((orch / "status.json").read_text())
    assert raw["verify"]["command"] == "python3 -c pass" and raw["verify"]["attempts"] == 3
    status = run_cli(["status", str(orch)], repo)
    assert "merge gate: python3 -c pass" in status.stdout
    assert json.loads(run_cli(["status", str(orch), "--json"], repo).stdout)["verify"][
        "command"
    ] == ("python3 -c pass")
