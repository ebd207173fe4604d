"""A golden check of the installed Claude Code CLI's ``--help`` for every flag and
command the launchers use (``autorun_py.launchers.background.CLI_FLAGS``), so a
release that renames or drops one fails here instead of in a run. Observed with
2.1.332 (docs/claude-code.md, "Background sessions")."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from autorun_py.launchers.background import CLI_COMMANDS, CLI_FLAGS
from autorun_py.launchers.remote import CLI_FLAGS as REMOTE_FLAGS
from autorun_py.launchers.remote import HIDDEN_FLAGS

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


def test_every_flag_the_remote_launcher_passes_is_in_the_help(claude_bin: Path) -> None:
    """The remote launcher's flags (``autorun_py.launchers.remote.CLI_FLAGS``); its
    ``--ref`` is accepted but hidden from ``--help`` (checked below by calling it)."""
    top = _help(claude_bin)
    for flag in REMOTE_FLAGS:
        assert re.search(rf"^\s+(?:-\w, )?{re.escape(flag)}\b", top, re.M), flag
    assert re.search(r"--environment <environment_id>", top)
    assert re.search(r"--cloud \[description\|session_id\|url\]", top)
    assert re.search(r'"json"', top)
    for flag in HIDDEN_FLAGS:
        assert not re.search(rf"^\s+{re.escape(flag)}\b", top, re.M), f"{flag} is listed now"


def _cloud_call(claude: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # No claude.ai login in the test's HOME: the CLI answers before any connection
    # (and anything it tried would meet a closed loopback port).
    env = clean_env()
    env["ANTHROPIC_BASE_URL"] = "http://127.0.0.1:9"
    return subprocess.run([str(claude), *args], capture_output=True, text=True, timeout=60, env=env)


def test_the_remote_calls_parse_and_answer_json_as_the_stand_in_assumes(claude_bin: Path) -> None:
    """What tests/remote_standin/claude mirrors, as far as it shows without a pool:
    ``--ref`` parses (an unknown option is refused), a malformed environment id and
    session id get their own errors, and ``--output-format json`` answers one JSON
    object with ``ok`` (``session_id`` for ``--cloud``)."""
    made = _cloud_call(
        claude_bin, "-p", "hi", "--environment", "ccpool_x", "--ref", "autorun/x/stage-1",
        "--name", "n", "--output-format", "json",
    )  # fmt: skip
    assert made.returncode != 0 and "unknown option" not in made.stderr, made.stderr
    answer = json.loads(made.stdout.strip().splitlines()[-1])
    assert answer["ok"] is False and "login" in answer["error"], answer
    wrong = _cloud_call(claude_bin, "-p", "hi", "--environment", "ccpool_x", "--refx", "b")
    assert "unknown option '--refx'" in wrong.stderr
    bad_env = _cloud_call(
        claude_bin, "-p", "hi", "--environment", "pool", "--output-format", "json"
    )
    assert 'expects a self-hosted environment id (ccpool_...), got "pool"' in bad_env.stderr
    sent = _cloud_call(claude_bin, "-p", "hi", "--cloud", "session_01ab", "--output-format", "json")
    reply = json.loads(sent.stdout.strip().splitlines()[0])
    assert sent.returncode != 0 and reply["ok"] is False and reply["session_id"] == "session_01ab"
    bad_id = _cloud_call(claude_bin, "-p", "hi", "--cloud", "sess_1")
    assert "is not a cloud session ID or URL" in bad_id.stderr
