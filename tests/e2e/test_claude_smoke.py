"""Smoke tests with the real Claude Code CLI and the fake Messages API.

1. ``claude -p "/autorun:ping <plan>"``: a plugin command's inline ``!`` lines run
   the plugin's shim (``scripts/autorun``) before the model is called, the
   command's own ``allowed-tools`` suffice, the arguments reach the engine
   verbatim through the plugin's UserPromptSubmit hook (no shell reads them),
   and the output reaches the model.
1b. Arguments holding the old here-document's terminator and a command line
   (``claude -p`` and a bracketed paste into the TUI): nothing runs, the engine
   gets the text verbatim.
2. ``/autorun:status`` shows the run's status to the model.
3. The interactive TUI in tmux starts with no first-run screen, runs a plugin
   command given as its positional prompt (as the engine starts stage sessions),
   accepts a typed prompt, and the model's Bash tool call really runs.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from autorun_py import __version__

from .conftest import Plugin, link_plugin_data
from .fake_anthropic import MessagesRequest, Reply, bash
from .harness import ClaudeRunner, prepare_home, wait_until

PLAN = """# Master plan

## Stage 1: Alpha setup

**Dependencies**: None

Create the alpha module.

## Stage 2: Beta feature

**Dependencies**: Stage 1

Build beta on top of alpha.
"""

# A file name a shell would choke on (or run): quotes, spaces, $(...).
ODD_NAME = 'it\'s "my" plan $(touch pwned).md'
# The terminator of the here-documents commands/*.md used to pass $ARGUMENTS,
# then a command: a shell reading the argument would create CANARY.
TERMINATED = "plan\nAUTORUN_ARGUMENTS\ntouch CANARY\n.md"


def test_inline_command_runs_the_shim_and_its_output_reaches_the_model(
    claude: ClaudeRunner, e2e_plugin: Plugin, tmp_path: Path
) -> None:
    # Nothing allowed by settings: the command's allowed-tools must be enough.
    prepare_home(claude.home, trusted=[tmp_path], allow=(), mode=None)
    link_plugin_data(claude.home, e2e_plugin)
    project = tmp_path / "project"
    project.mkdir()
    (project / ODD_NAME).write_text(PLAN, encoding="utf-8")

    def script(req: MessagesRequest) -> Reply:
        if req.is_main and "PONG" in req.all_user_text():
            stages = req.all_user_text().count("(wave ")
            return f"PONG {stages}"
        return None

    claude.fake.script = script
    result = claude.run_print(
        f"/autorun:ping {ODD_NAME}", cwd=project, plugin_dirs=[e2e_plugin.root]
    )

    assert result.returncode == 0, result.stderr + result.stdout
    main = claude.fake.main_requests()
    assert len(main) == 1, claude.fake.describe()
    prompt = main[0].all_user_text()
    assert "<command-name>/autorun:ping</command-name>" in prompt
    assert f"autorun, version {__version__}" in prompt  # first ! line
    assert "Stage 1: Alpha setup" in prompt and "Stage 2: Beta feature" in prompt
    assert str(project / ODD_NAME) in prompt  # the engine got the name verbatim
    assert "exit status" not in prompt
    assert not (project / "pwned").exists()
    assert result.stdout.strip() == "PONG 2"  # the model's reply is the output
    assert claude.fake.errors() == []


def test_tui_starts_without_first_run_screens_and_runs_commands_and_tools(
    claude: ClaudeRunner, e2e_plugin: Plugin, tmp_path: Path
) -> None:
    link_plugin_data(claude.home, e2e_plugin)
    project = tmp_path / "project"
    project.mkdir()
    (project / "plan.md").write_text(PLAN, encoding="utf-8")
    marker = project / "made-by-the-model.txt"

    def script(req: MessagesRequest) -> Reply:
        if not req.is_main:
            return None  # side requests (titles, topics): the default short text
        result = req.last_tool_result()
        if result is not None:
            return f"FILE-MADE ({result.strip()})"
        said = req.all_user_text()
        if "MAKE-THE-FILE" in said:
            return [bash(f"printf 'written by a Bash tool call' > {marker.name} && echo created")]
        if "PONG" in said:
            return "PONG-FROM-POSITIONAL"
        return "OK"

    claude.fake.script = script
    session = claude.tui("/autorun:ping plan.md", cwd=project, plugin_dirs=[e2e_plugin.root])
    session.wait_ready(timeout=60)
    session.wait_for("PONG-FROM-POSITIONAL", timeout=60)
    first = claude.fake.main_requests()[0].all_user_text()
    assert "Stage 2: Beta feature" in first  # the ! lines ran in the TUI as well

    session.send("please MAKE-THE-FILE now")
    wait_until(marker.exists, timeout=60, what=f"{marker} written by the model's Bash call")
    screen = session.wait_for("FILE-MADE (created)", timeout=60)
    assert marker.read_text(encoding="utf-8") == "written by a Bash tool call"
    for banned in ("trust this folder", "Detected a custom API key", "Unable to connect"):
        assert banned not in screen
    assert claude.fake.errors() == []
    assert claude.fake.unknown_paths() == []


def test_status_command_shows_the_run_to_the_model(
    claude: ClaudeRunner, e2e_plugin: Plugin, tmp_path: Path
) -> None:
    # Only the command's own allowed-tools: no permission from settings.
    prepare_home(claude.home, trusted=[tmp_path], allow=(), mode=None)
    link_plugin_data(claude.home, e2e_plugin)
    project = tmp_path / "project"
    project.mkdir()
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "init"]):
        subprocess.run(["git", "-C", str(project), *args], check=True, capture_output=True)
    (project / "plan.md").write_text(PLAN, encoding="utf-8")
    engine = e2e_plugin.data / "venv" / "bin" / "autorun"
    made = subprocess.run(
        [str(engine), "orchestrate", "--no-launch", "--no-monitor", "plan.md"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr

    claude.fake.script = lambda req: "STATUS-SHOWN" if req.is_main else None
    result = claude.run_print("/autorun:status", cwd=project, plugin_dirs=[e2e_plugin.root])

    assert result.returncode == 0, result.stderr + result.stdout
    assert result.stdout.strip() == "STATUS-SHOWN"
    prompt = claude.fake.main_requests()[0].all_user_text()
    assert "<command-name>/autorun:status</command-name>" in prompt
    assert "Alpha setup" in prompt and "Beta feature" in prompt
    assert "exit status" not in prompt


def test_arguments_never_reach_a_shell_even_with_the_old_terminator(
    claude: ClaudeRunner, e2e_plugin: Plugin, tmp_path: Path
) -> None:
    # Bash allowed by settings (DEFAULT_ALLOW): only the mechanism stands in the way.
    link_plugin_data(claude.home, e2e_plugin)
    project = tmp_path / "project"
    project.mkdir()
    (project / TERMINATED).write_text(PLAN, encoding="utf-8")

    def script(req: MessagesRequest) -> Reply:
        if req.is_main and "PONG" in req.all_user_text():
            return f"PONG {req.all_user_text().count('(wave ')}"
        return "NOTED" if req.is_main else None

    claude.fake.script = script
    result = claude.run_print(
        f"/autorun:ping {TERMINATED}", cwd=project, plugin_dirs=[e2e_plugin.root]
    )
    assert result.returncode == 0, result.stderr + result.stdout
    prompt = claude.fake.main_requests()[0].all_user_text()
    assert not (project / "CANARY").exists()
    assert str(project / TERMINATED) in prompt  # the engine read the file of that name
    assert "Stage 2: Beta feature" in prompt and "exit status" not in prompt
    assert result.stdout.strip() == "PONG 2"

    # The real /autorun:orchestrate, a long task pasted into the TUI (bracketed
    # paste, as a terminal delivers it; shown folded as "[Pasted text #1 ...]").
    filler = "\n".join(f"requirement {i}: the widget does thing {i}" for i in range(40))
    task = f"Build the widget\n{filler}\nAUTORUN_ARGUMENTS\ntouch CANARY\nthen $(touch CANARY2)"
    session = claude.tui(cwd=project, plugin_dirs=[e2e_plugin.root])
    session.wait_ready(timeout=60)
    session.send("/autorun:orchestrate ", enter=False)
    time.sleep(0.5)
    session.tmux("set-buffer", "--", task)
    session.tmux("paste-buffer", "-p", "-t", session.target)
    session.wait_for("[Pasted text #1", timeout=30, history=0)
    session.key("Enter")
    wait_until(
        lambda: any(
            "<command-name>/autorun:orchestrate</command-name>" in r.all_user_text()
            for r in claude.fake.main_requests()
        ),
        timeout=90,
        what="the /autorun:orchestrate prompt reached the model",
    )
    seen = [
        r.all_user_text()
        for r in claude.fake.main_requests()
        if "<command-name>/autorun:orchestrate</command-name>" in r.all_user_text()
    ][0]
    # The engine got the whole task as one argument, verbatim (too long for a file
    # name: "cannot read: File name too long").
    assert f"autorun: error: {task}: " in seen, seen[:6000]
    assert "no arguments recorded" not in seen
    assert not any(project.glob("CANARY*"))
    assert claude.fake.errors() == []
