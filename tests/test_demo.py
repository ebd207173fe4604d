"""`autorun demo` prints only commands that work afterwards, and never writes into
the real ~/.claude (issue 15 item 7, issue 11 item 10)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest


def _after_lines(out: str) -> list[str]:
    lines = out.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("Look around afterwards"))
    return [ln.strip() for ln in lines[start + 1 :] if ln.startswith("  ") and ln.strip()]


@pytest.mark.usefixtures("tmux_socket")
def test_every_command_the_demo_prints_works_afterwards_and_claude_is_untouched(
    tmp_path: Path, isolated_home: Path
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "autorun_py", "demo", "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    # No hint that cannot work after the demo: its tmux server and monitor are gone.
    for gone in ("Monitor log:", "Sessions:", "Attach:", "tmux -L"):
        assert gone not in proc.stdout
    # The stand-in's transcripts went to the demo's own config dir.
    assert list((tmp_path / "demo" / "claude-config" / "projects").glob("*/*.jsonl"))
    commands = _after_lines(proc.stdout)
    assert len(commands) == 5, commands
    # Run each from elsewhere, without the demo's AUTORUN_HOME or tmux socket: each
    # line carries what it needs.
    base = {k: v for k, v in os.environ.items() if k not in ("AUTORUN_HOME",)}
    base["AUTORUN_TMUX_SOCKET"] = "autorun-test-no-such-server"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    outputs = []
    for line in commands:
        words = shlex.split(line)
        env = dict(base)
        while "=" in words[0] and not words[0].startswith("/"):
            key, _, value = words.pop(0).partition("=")
            env[key] = value
        if words[0] == "autorun":  # on PATH only when installed; the same engine
            words = [sys.executable, "-m", "autorun_py", *words[1:]]
        run = subprocess.run(
            words, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, f"{line}\n{run.stdout}\n{run.stderr}"
        outputs.append(run.stdout)
    status, events, report, log, _clean = outputs
    assert "6/6 merged" in status and "[completed]" in status
    assert "finished (completed)" in events
    assert "Report:" in report
    assert len([ln for ln in log.splitlines() if "Merge" in ln or "merge" in ln]) >= 6
    # The stand-in's transcripts went to the demo's own config dir, not ~/.claude.
    assert not (isolated_home / ".claude").exists()
    # The last command cleaned the demo away.
    assert not (tmp_path / "demo").exists()
