"""Claude Code is pinned: one version, in scripts/claude-code-version, used by the
installer (so .ci/run) and named by the docs; a script tries the latest release."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIN_FILE = ROOT / "scripts" / "claude-code-version"
INSTALL = ROOT / "scripts" / "install-claude-code.sh"
CHECK_LATEST = ROOT / "scripts" / "check-latest-claude-code"


def pin() -> str:
    text = PIN_FILE.read_text(encoding="utf-8")
    assert re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+\n", text), text
    return text.strip()


def test_one_pin_named_by_the_docs_and_used_by_ci() -> None:
    version = pin()
    assert f"Claude Code {version}**" in (ROOT / "docs" / "claude-code.md").read_text()
    assert "scripts/install-claude-code.sh" in (ROOT / ".ci" / "run").read_text()
    assert "claude-code-version" in INSTALL.read_text()
    assert "CLAUDE_CODE_VERSION:-latest" not in INSTALL.read_text()


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
def test_installer_installs_the_pinned_version(tmp_path: Path) -> None:
    # An empty prefix, and npm offline with an empty cache: the install is attempted
    # (and fails without a network), naming the version it asked for.
    env = dict(os.environ, AUTORUN_NODE_PREFIX=str(tmp_path / "prefix"))
    env.pop("CLAUDE_CODE_VERSION", None)
    env["npm_config_offline"] = "true"
    env["npm_config_cache"] = str(tmp_path / "npm-cache")
    proc = subprocess.run(
        ["sh", str(INSTALL)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode != 0
    assert f"installing @anthropic-ai/claude-code@{pin()} into {tmp_path / 'prefix'}" in (
        proc.stderr
    )


def test_installer_keeps_an_installed_pin() -> None:
    installed = ROOT / ".node" / "node_modules" / ".bin" / "claude"
    if not installed.exists():
        pytest.skip("Claude Code is not installed in .node (scripts/install-claude-code.sh)")
    have = subprocess.run(
        [str(installed), "--version"], capture_output=True, text=True, timeout=60
    ).stdout.split()[0]
    assert have == pin(), f".node has Claude Code {have}; the pin is {pin()}"
    env = dict(os.environ, npm_config_offline="true")
    env.pop("CLAUDE_CODE_VERSION", None)
    proc = subprocess.run(
        ["sh", str(INSTALL)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(installed)
    assert "installing" not in proc.stderr


def test_check_latest_script_parses_and_explains_itself() -> None:
    assert os.access(CHECK_LATEST, os.X_OK)
    assert subprocess.run(["sh", "-n", str(CHECK_LATEST)]).returncode == 0
    proc = subprocess.run([str(CHECK_LATEST), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "e2e" in proc.stdout and "claude-code-version" in proc.stdout
