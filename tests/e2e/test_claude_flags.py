"""A golden check of the installed Claude Code CLI's ``--help`` for every flag and
command the launchers use (``autorun_py.launchers.background.CLI_FLAGS``), so a
release that renames or drops one fails here instead of in a run. Observed with
2.1.332 (docs/claude-code.md, "Background sessions")."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from autorun_py.launchers.background import CLI_COMMANDS, CLI_FLAGS

from .harness import clean_env


def _help(claude: Path, *sub: str) -> str:
    proc = subprocess.run(
        [str(claude), *sub, "--help"], capture_output=True, text=True, timeout=60, env=clean_env()
    )
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("sub", sorted(CLI_FLAGS))
def test_every_flag_the_launchers_pass_is_in_the_help(claude_bin: Path, sub: str) -> None:
    text = _help(claude_bin, *([sub] if sub else []))
    for flag in CLI_FLAGS[sub]:
        if flag.startswith("-"):
            # an option line: "  --bg, --background  ..." or "  -n, --name <name>"
            pattern = rf"^\s+(?:-\w, )?(?:--[\w-]+, )?{re.escape(flag)}\b"
        else:
            pattern = rf"^\s+{re.escape(flag)}\b"  # a daemon subcommand
        assert re.search(pattern, text, re.M), f"claude {sub} --help has no {flag}:\n{text}"


def test_the_background_commands_exist_with_the_arguments_used(claude_bin: Path) -> None:
    top = _help(claude_bin)
    for cmd in CLI_COMMANDS:
        assert re.search(rf"^\s+{cmd}\b", top, re.M) or f"|{cmd} " in top, f"no {cmd}:\n{top}"
    assert "Usage: claude agents [options]" in _help(claude_bin, "agents")
    for cmd in ("attach", "logs"):
        assert f"Usage: claude {cmd} <id|name>" in _help(claude_bin, cmd)
    for cmd in ("stop", "rm"):
        assert f"Usage: claude {cmd} <id>" in _help(claude_bin, cmd)
    assert "Usage: claude respawn <id>|--all" in _help(claude_bin, "respawn")
    # --bg prints the id the other commands take, and manages the session id itself
    bg = re.search(r"--bg, --background(.+?)\n  -", top, re.S)
    assert bg and "Prints the id" in bg.group(1), top


def test_remote_flags_documented_in_scale_out_exist(claude_bin: Path) -> None:
    """docs/scale-out.md's remote launcher needs these (not built yet)."""
    top = _help(claude_bin)
    for flag in ("--environment", "--cloud", "--output-format", "--print"):
        assert re.search(rf"^\s+(?:-\w, )?{re.escape(flag)}\b", top, re.M), flag
    assert re.search(r"--environment <environment_id>", top)
    assert re.search(r'"json"', top)
