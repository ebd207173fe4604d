"""autorun doctor: each tool with its version, install commands for what is
missing or too old, exit 1 when something required is missing. Runs the real
CLI in a subprocess with a PATH the test controls."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from autorun_py.doctor import parse_version


def tool(bindir: Path, name: str, output: str) -> None:
    """A stand-in executable that prints ``output`` as its version."""
    path = bindir / name
    path.write_text(f"#!/bin/sh\necho '{output}'\n", encoding="utf-8")
    path.chmod(0o755)


def link(bindir: Path, name: str) -> None:
    found = shutil.which(name)
    assert found, f"{name} is needed by this test"
    (bindir / name).symlink_to(found)


@pytest.fixture
def bindir(tmp_path: Path) -> Path:
    path = tmp_path / "bin"
    path.mkdir()
    # The real interpreter (a pyenv shim would need pyenv on PATH).
    (path / "python3").symlink_to(Path(sys.executable).resolve())
    return path


def doctor(bindir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ, PATH=str(bindir), **env)
    full.pop("AUTORUN_CLAUDE", None)
    full.pop("AUTORUN_PYTHON", None)
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "autorun_py", "doctor", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


def checks(proc: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    data = json.loads(proc.stdout)
    return {c["name"]: c for c in data["checks"]}


def test_everything_present_prints_versions_and_exits_0(bindir: Path) -> None:
    link(bindir, "git")
    link(bindir, "tmux")
    tool(bindir, "claude", "2.1.330 (Claude Code)")
    shim = Path(__file__).resolve().parent.parent / "scripts" / "autorun"
    (bindir / "autorun").symlink_to(shim)  # as `autorun install-cli` makes it
    proc = doctor(bindir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    git_version = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout
    expected_git = ".".join(str(v) for v in parse_version(git_version) or ())
    lines = {
        line.split()[1]: line for line in proc.stdout.splitlines()[1:-1] if line.startswith("  ok")
    }
    assert set(lines) >= {
        "python",
        "python3",
        "git",
        "tmux",
        "claude",
        "environment",
        "AUTORUN_HOME",
        "autorun",
    }
    assert f"({bindir / 'autorun'}) - -> {shim}" in lines["autorun"]
    assert expected_git in lines["git"]
    assert "2.1.330" in lines["claude"] and str(bindir / "claude") in lines["claude"]
    assert proc.stdout.rstrip().endswith("everything autorun needs is here")

    data = json.loads(doctor(bindir, "--json").stdout)
    assert data["ok"] is True
    assert all(c["status"] == "ok" for c in data["checks"]), data


def test_missing_tools_are_named_with_install_commands_and_exit_1(bindir: Path) -> None:
    proc = doctor(bindir)  # python3 only: no git, tmux or claude
    assert proc.returncode == 1
    out = proc.stdout
    for name in ("git", "tmux", "claude"):
        assert any(line.split()[:2] == ["MISSING", name] for line in out.splitlines()), out
    assert "brew install tmux" in out and "sudo apt-get install tmux" in out
    assert "brew install git" in out and "sudo apt-get install git" in out
    assert "npm install -g @anthropic-ai/claude-code" in out
    assert out.rstrip().endswith("missing or unusable: git, tmux, claude")

    js = doctor(bindir, "--json")
    assert js.returncode == 1
    found = checks(js)
    assert found["tmux"]["status"] == "missing"
    assert found["tmux"]["install"] == {
        "macos": "brew install tmux",
        "debian": "sudo apt-get install tmux",
    }
    assert found["python"]["status"] == "ok" and found["AUTORUN_HOME"]["status"] == "ok"


def test_git_too_old_for_merge_tree_write_tree(bindir: Path) -> None:
    tool(bindir, "git", "git version 2.34.1")
    tool(bindir, "tmux", "tmux 3.2a")
    tool(bindir, "claude", "2.1.330 (Claude Code)")
    proc = doctor(bindir, "--json")
    assert proc.returncode == 1
    found = checks(proc)
    assert found["git"]["status"] == "outdated"
    assert found["git"]["version"] == "2.34.1"
    assert "needs >= 2.38" in found["git"]["detail"]
    assert found["tmux"]["status"] == "ok" and found["tmux"]["version"] == "3.2"

    text = doctor(bindir).stdout
    assert "TOO OLD  git" in text and "git merge-tree --write-tree" in text


def test_old_tmux_and_the_configured_agent(bindir: Path, tmp_path: Path) -> None:
    link(bindir, "git")
    tool(bindir, "tmux", "tmux 2.9a")
    agent = tmp_path / "agents" / "my-claude"
    agent.parent.mkdir()
    tool(agent.parent, "my-claude", "9.8.7 (Claude Code)")
    found = checks(doctor(bindir, "--json", AUTORUN_CLAUDE=str(agent)))
    assert found["tmux"]["status"] == "outdated" and found["tmux"]["version"] == "2.9"
    assert found["claude"]["status"] == "ok"
    assert found["claude"]["version"] == "9.8.7" and found["claude"]["path"] == str(agent)


def test_unwritable_autorun_home_is_reported(bindir: Path, tmp_path: Path) -> None:
    link(bindir, "git")
    link(bindir, "tmux")
    tool(bindir, "claude", "2.1.330 (Claude Code)")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = doctor(bindir, "--json", AUTORUN_HOME=str(blocker / "autorun"))
    assert proc.returncode == 1
    assert checks(proc)["AUTORUN_HOME"]["status"] == "broken"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("git version 2.39.5", (2, 39, 5)),
        ("git version 2.39.3 (Apple Git-145)", (2, 39, 3)),
        ("tmux 3.3a", (3, 3)),
        ("tmux next-3.4", (3, 4)),
        ("2.1.330 (Claude Code)", (2, 1, 330)),
        ("tmux master", None),
    ],
)
def test_parse_version(text: str, expected: tuple[int, ...] | None) -> None:
    assert parse_version(text) == expected


def test_no_git_identity_is_reported_and_orchestrate_refuses_before_making_a_run(
    bindir: Path, tmp_path: Path, autorun_home: Path
) -> None:
    """Every stage commits: with no git identity each would fail at its first commit."""
    link(bindir, "git")
    link(bindir, "tmux")
    tool(bindir, "claude", "2.1.332 (Claude Code)")
    nobody = tmp_path / "nobody"
    nobody.mkdir()
    env = {
        "HOME": str(nobody),
        "GIT_CONFIG_GLOBAL": str(nobody / ".gitconfig"),
        "GIT_AUTHOR_NAME": "",
        "GIT_AUTHOR_EMAIL": "",
        "GIT_COMMITTER_NAME": "",
        "GIT_COMMITTER_EMAIL": "",
        "EMAIL": "",
    }
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("GIT_AUTHOR", "GIT_COMMITTER"))
    }
    base.pop("EMAIL", None)
    full = {**base, **{k: v for k, v in env.items() if v}, "PATH": str(bindir)}
    proc = subprocess.run(
        [sys.executable, "-m", "autorun_py", "doctor", "--json"],
        env=full,
        cwd=nobody,
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = checks(proc)["git-identity"]
    assert proc.returncode == 1 and found["status"] == "broken", proc.stdout
    assert "git config --global user.email" in found["install"]["debian"]
    # orchestrate: one line, exit 1, nothing made
    repo = tmp_path / "project"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], env=full, check=True)
    (repo / "plan.md").write_text("# P\n\n## Stage 1: One\n\n**Dependencies**: None\n\nWork.\n")
    proc = subprocess.run(
        [sys.executable, "-m", "autorun_py", "orchestrate", "plan.md", "--no-monitor"],
        env=full,
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "git cannot commit here" in proc.stderr and "no run was created" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (autorun_home / "orchestration").exists() or not any(
        (autorun_home / "orchestration").iterdir()
    )
