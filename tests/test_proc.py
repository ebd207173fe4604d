"""The process wrappers: one funnel for processes, git that the environment
cannot redirect, debug logging of every call, one error boundary."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import click
import pytest

from autorun_py import proc
from autorun_py.git import no_git_env, repo_root
from tests.helpers import git, run_cli, write_plan

PACKAGE = Path(__file__).resolve().parent.parent / "autorun_py"


def test_no_raw_subprocess_outside_the_three_wrappers() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in ("git.py", "tmux.py", "proc.py"):
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\bsubprocess\.|^\s*import subprocess|from subprocess ", line):
                offenders.append(f"{rel}:{n}: {line.strip()}")
    assert offenders == []


def test_run_captures_and_times() -> None:
    code = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"
    res = proc.run([sys.executable, "-c", code])
    assert (res.returncode, res.stdout, res.stderr) == (3, "out\n", "err\n")
    assert res.duration > 0 and not res.ok


def test_run_missing_program_and_timeout_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(proc.CommandNotFound, match="no-such-program-here is not installed"):
        proc.run(["no-such-program-here"])
    with pytest.raises(proc.CommandTimeout, match="did not finish within 0.2s"):
        proc.run([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.2)


def test_spawn_is_detached(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    with open(out, "ab") as fh:
        pid = proc.spawn(
            [sys.executable, "-c", "import os; print(os.getsid(0) == os.getpid(), flush=True)"],
            output=fh,
        ).pid
    assert pid > 0
    from tests.helpers import wait_until

    wait_until(lambda: out.read_text().strip(), what="the detached child's output")
    assert out.read_text().strip() == "True"  # its own session


def test_no_git_env_follows_pre_commit() -> None:
    env = {
        "GIT_DIR": "/x/.git",
        "GIT_WORK_TREE": "/x",
        "GIT_INDEX_FILE": "/x/.git/index",
        "GIT_OBJECT_DIRECTORY": "/x/o",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES": "/y",
        "GIT_COMMON_DIR": "/x/.git",
        "GIT_NAMESPACE": "ns",
        "GIT_CEILING_DIRECTORIES": "/",
        "GIT_PREFIX": "sub/",
        "GIT_CONFIG_PARAMETERS": "'core.worktree'='/x'",
        "GIT_SSH_COMMAND": "ssh -i k",
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "user.name",
        "GIT_CONFIG_VALUE_0": "me",
        "GIT_ASKPASS": "/bin/askpass",
        "GIT_AUTHOR_NAME": "me",
        "PATH": "/bin",
    }
    assert sorted(no_git_env(env)) == [
        "GIT_ASKPASS",
        "GIT_AUTHOR_NAME",
        "GIT_CONFIG_COUNT",
        "GIT_CONFIG_KEY_0",
        "GIT_CONFIG_VALUE_0",
        "GIT_SSH_COMMAND",
        "PATH",
    ]


def test_git_env_cannot_redirect_the_wrapper(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q", "-b", "main")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    monkeypatch.setenv("GIT_INDEX_FILE", str(other / ".git" / "index"))
    assert repo_root(repo) == repo.resolve()


def test_autorun_called_from_a_git_hook_acts_on_the_right_repository(
    repo: Path, tmp_path: Path
) -> None:
    """A post-commit hook of another repository, committed with --git-dir and
    --work-tree (git exports GIT_DIR, GIT_WORK_TREE, GIT_INDEX_FILE into the
    hook), runs `autorun orchestrate` for the project: the run belongs to the
    project, at the project's commit, and the other repository is untouched."""
    write_plan(repo, [(1, "One", []), (2, "Two", [1])])
    git(repo, "add", "master_plan.md")
    git(repo, "commit", "-q", "-m", "plan")
    project_head = git(repo, "rev-parse", "HEAD")

    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q", "-b", "trunk")
    (other / "f.txt").write_text("x\n")
    hook = other / ".git" / "hooks" / "post-commit"
    out = tmp_path / "hook-out.json"
    envdump = tmp_path / "hook-env.txt"
    hook.write_text(
        "#!/bin/sh\n"
        f"env | grep '^GIT_' > '{envdump}'\n"
        f"export GIT_INDEX_FILE='{other}/.git/index'\n"
        f"cd '{repo}' && '{sys.executable}' -m autorun_py orchestrate master_plan.md "
        f"--no-launch --no-monitor --json > '{out}' 2>&1\n"
    )
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_DIR")}
    env["PYTHONPATH"] = str(PACKAGE.parent)
    import subprocess

    subprocess.run(
        ["git", f"--git-dir={other / '.git'}", f"--work-tree={other}", "add", "f.txt"],
        cwd=tmp_path,
        env=env,
        check=True,
    )
    subprocess.run(
        ["git", f"--git-dir={other / '.git'}", f"--work-tree={other}", "commit", "-q", "-m", "c"],
        cwd=tmp_path,
        env=env,
        check=True,
    )
    assert "GIT_DIR=" in envdump.read_text()  # the hook really ran in git's context
    result = json.loads(out.read_text())
    st = json.loads((Path(result["orch_dir"]) / "status.json").read_text())
    assert st["project_root"] == str(repo.resolve())
    assert st["base_branch"] == "main" and st["base_commit"] == project_head
    assert git(other, "branch", "--list") == "* trunk"  # nothing created there
    assert git(other, "worktree", "list", "--porcelain").count("worktree ") == 1


def test_debug_logs_every_git_call(repo: Path) -> None:
    write_plan(repo, [(1, "One", [])])
    res = run_cli(["--debug", "orchestrate", "master_plan.md", "--no-launch", "--no-monitor"], repo)
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("autorun: debug: ")]
    assert any(re.search(r"git -C \S+ rev-parse .* -> exit 0 \(\d+\.\d ms\)$", ln) for ln in lines)
    quiet = run_cli(["list"], repo)
    assert "debug" not in quiet.stderr
    env_on = run_cli(["list"], repo, env={"AUTORUN_DEBUG": "1"})
    assert env_on.returncode == 0
    # `list` runs no process; the flag is accepted and nothing else is printed
    assert "Traceback" not in env_on.stderr


def test_debug_env_logs_tmux_calls(repo: Path, tmux_socket: str) -> None:
    res = run_cli(["doctor", "--json"], repo, env={"AUTORUN_DEBUG": "1"})
    assert re.search(r"autorun: debug: \S*tmux -L \S+ -V -> exit 0", res.stderr), res.stderr


@pytest.fixture
def boom_command():  # type: ignore[no-untyped-def]
    from autorun_py.cli import cli

    @click.command("zz-boom", hidden=True)
    def boom() -> None:
        raise RuntimeError("kaboom\nsecond line")

    cli.add_command(boom)
    yield
    cli.commands.pop("zz-boom", None)


def test_unexpected_error_is_one_line_with_a_debug_hint(
    boom_command: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from autorun_py import cli

    monkeypatch.setenv("AUTORUN_DEBUG", "0")  # restored afterwards: --debug sets it

    with pytest.raises(SystemExit) as exc:
        cli.main(["zz-boom"])
    err = capsys.readouterr().err
    assert exc.value.code == 1
    assert err == (
        "autorun: internal error: RuntimeError: kaboom (run with --debug for the traceback)\n"
    )
    with pytest.raises(SystemExit):
        cli.main(["--debug", "zz-boom"])
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert err.rstrip().endswith("\nautorun: internal error: RuntimeError: kaboom")
    proc.set_debug(False)


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="no pidfd_open on this system")
def test_wait_wakes_when_the_child_exits_without_sleeping_in_a_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The merge gate waits for the verify command with proc.wait: woken by the
    child's exit through its pidfd, never by 50 ms polls (Popen.wait's timeout)."""
    import time

    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"proc.wait slept {seconds}s in a loop")

    child = proc.start([sys.executable, "-c", "import time; time.sleep(0.3)"])
    monkeypatch.setattr(time, "sleep", no_sleep)
    assert proc.wait(child, 0.01) is None  # still running: None after the timeout
    t0 = time.monotonic()
    assert proc.wait(child, 30) == 0
    assert time.monotonic() - t0 < 10
    assert proc.wait(child, 30) == 0  # and again, at once


def test_pid_alive_knows_a_live_a_reaped_and_a_bogus_pid() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: its pid names no process (until reused, which takes long)
    assert proc.pid_alive(os.getpid())
    assert proc.pid_alive(1)  # init: exists, not ours to signal
    assert not proc.pid_alive(child.pid)
    for bogus in (0, -1, True, "123", None):
        assert not proc.pid_alive(bogus)
