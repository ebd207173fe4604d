"""Fixtures for end-to-end tests with the real Claude Code CLI.

``claude_bin``: the binary, or the tests are skipped with the reason (.ci/run
installs it with scripts/install-claude-code.sh, so in CI they run).
``e2e_plugin``: a copy of the plugin plus the test-only commands of
tests/e2e/commands, its Python environment built once per session (from a local
wheelhouse: no network).
``fake_api``: the fake Messages API. ``claude``: a :class:`ClaudeRunner` on the
test's private HOME (first-run screens skipped, the pytest temp root trusted).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .fake_anthropic import FakeAnthropic
from .harness import ClaudeRunner, build_plugin, find_claude, prepare_home
from .wheelhouse import build_wheelhouse, offline_pip_env

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    path = find_claude()
    if path is None:
        pytest.skip(
            "Claude Code CLI not installed: run scripts/install-claude-code.sh "
            "(or set AUTORUN_TEST_CLAUDE to a claude binary)"
        )
    return path


@dataclass(frozen=True)
class Plugin:
    root: Path  # what --plugin-dir gets
    data: Path  # its prepared ${CLAUDE_PLUGIN_DATA} (the venv lives in data/venv)


@pytest.fixture(scope="session")
def e2e_plugin(tmp_path_factory: pytest.TempPathFactory) -> Plugin:
    root = build_plugin(
        tmp_path_factory.mktemp("plugin") / "autorun",
        extra_commands=sorted((HERE / "commands").glob("*.md")),
    )
    data = tmp_path_factory.mktemp("plugin-data")
    env = dict(os.environ)
    env.update(offline_pip_env(build_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))))
    env["AUTORUN_HOME"] = str(tmp_path_factory.mktemp("shim-home"))
    proc = subprocess.run(
        [str(root / "scripts" / "autorun"), "--data-dir", str(data), "--version"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, f"the shim could not build the plugin's venv:\n{proc.stderr}"
    return Plugin(root, data)


@pytest.fixture
def fake_api() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic().start()
    yield fake
    fake.stop()


@pytest.fixture
def claude(
    claude_bin: Path,
    fake_api: FakeAnthropic,
    isolated_home: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ClaudeRunner]:
    """Claude Code on this test's HOME, every folder under the pytest temp root trusted."""
    prepare_home(isolated_home, trusted=[tmp_path_factory.getbasetemp()])
    runner = ClaudeRunner(claude_bin, isolated_home, fake_api)
    yield runner
    runner.close()


def link_plugin_data(home: Path, plugin: Plugin, data_name: str = "autorun-inline") -> Path:
    """Point ``${CLAUDE_PLUGIN_DATA}`` (``~/.claude/plugins/data/<plugin>-inline`` for a
    --plugin-dir plugin) at the session's prepared data dir, so no test pays for the
    first-use install."""
    link = home / ".claude" / "plugins" / "data" / data_name
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to(plugin.data, target_is_directory=True)
    return link
