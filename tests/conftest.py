"""Shared fixtures: every test runs with a private AUTORUN_HOME and HOME, a
private tmux socket, and a git identity, so nothing touches the real
~/.autorun, ~/.claude or the user's tmux server.

The tmux server on a test's socket (started by the test itself or by any autorun
code it runs) is killed after the test and its socket file unlinked, whether or
not the test asked for the ``tmux_socket`` fixture; the one helper for that is
:func:`end_tmux_server`. Git in tests goes through :func:`git` (tests/helpers.py
re-exports it)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import git


def tmux_socket_path(name: str) -> Path:
    """Where tmux keeps the socket of ``tmux -L name`` (``$TMUX_TMPDIR/tmux-<uid>/``)."""
    return Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.getuid()}" / name


def end_tmux_server(name: str) -> None:
    """Kill the tmux server on socket ``name`` (if any) and unlink its socket file.

    A killed stage session is recovered at once (tmux's session-closed hook, Claude
    Code's SessionEnd hook, both detached): so that no recovery outlives the test on
    a new server, the test's runs are put out of its reach first (the orchestration
    directory renamed) and the server's session-closed hooks unset."""
    path = tmux_socket_path(name)
    if not path.exists():
        return
    home = os.environ.get("AUTORUN_HOME")
    if home:
        runs = Path(home) / "orchestration"
        with contextlib.suppress(OSError):
            if runs.is_dir() and not runs.is_symlink():
                runs.rename(runs.with_name("orchestration.ended"))
    subprocess.run(
        ["tmux", "-L", name, "set-hook", "-gu", "session-closed"], capture_output=True, check=False
    )
    subprocess.run(["tmux", "-L", name, "kill-server"], capture_output=True, check=False)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


@pytest.fixture(autouse=True)
def isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AUTORUN_HOME", str(home / ".autorun"))
    # The shim's venv cache and install-cli's link directory follow HOME too.
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("XDG_BIN_HOME", raising=False)
    monkeypatch.delenv("AUTORUN_SHIM", raising=False)
    monkeypatch.setenv("GIT_AUTHOR_NAME", "autorun test")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "test@autorun.invalid")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "autorun test")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "test@autorun.invalid")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    (home / ".gitconfig").write_text(
        "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n"
    )
    # Never talk to the user's tmux server from a test.
    socket = f"autorun-test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("AUTORUN_TMUX_SOCKET", socket)
    monkeypatch.delenv("TMUX", raising=False)
    monkeypatch.delenv("TMUX_PANE", raising=False)
    # Tests may be run from inside Claude Code; its shell marker changes how a
    # merge cleans up (see autorun_py/merge.py), so tests start without it.
    monkeypatch.delenv("CLAUDECODE", raising=False)
    # No pause between session starts (a test that measures it sets its own), and the
    # machine's default parallel cap only where a test asks for it.
    monkeypatch.setenv("AUTORUN_LAUNCH_STAGGER", "0")
    monkeypatch.delenv("AUTORUN_MAX_PARALLEL", raising=False)
    yield home
    end_tmux_server(socket)


@pytest.fixture
def autorun_home(isolated_home: Path) -> Path:
    return Path(os.environ["AUTORUN_HOME"])


@pytest.fixture
def tmux_socket(isolated_home: Path) -> Iterator[str]:
    """The private tmux socket name of this test; its server is killed and its socket
    unlinked afterwards (by ``isolated_home``, for every test)."""
    yield os.environ["AUTORUN_TMUX_SOCKET"]


@pytest.fixture
def quiet_agent(monkeypatch: pytest.MonkeyPatch, tmux_socket: str) -> None:
    """Stages are launched (worktree, branch, session) but the agent does nothing: it
    sits idle until its session is ended, as a model that has not answered yet does.
    (An agent that exits at once ends its session, and the session-closed recovery
    would then restart or fail the stage while the test works on it.)"""
    import shlex
    import sys

    monkeypatch.setenv("AUTORUN_CLAUDE", sys.executable)
    monkeypatch.setenv("AUTORUN_AGENT_ARGS", shlex.join(["-c", "import time; time.sleep(3600)"]))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository on branch main with one commit."""
    path = tmp_path / "project"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("# project\n")
    git(path, "add", "README.md")
    git(path, "commit", "-q", "-m", "initial commit")
    return path
