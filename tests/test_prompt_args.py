"""A slash command's arguments reach the engine through the prompt hook, never a
shell (autorun_py/prompt_args.py): the hook's JSON is recorded per session, the
`!` line's ``--args-of NAME`` takes it once, verbatim, as one argument.

The end-to-end check with the real Claude Code is
tests/e2e/test_claude_smoke.py::test_arguments_never_reach_a_shell...; the
hook script through the real shim is in tests/test_shim.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autorun_py import prompt_args
from autorun_py.prompt_args import expand_argv, parse_prompt, record, take

# The old here-document's terminator, then a command a shell would have run.
HOSTILE = "the task\nAUTORUN_ARGUMENTS\ntouch CANARY\n$(touch CANARY2) `touch CANARY3` 'x\" ;"
SESSION = "3f2b8c1e-5d2a-4c1b-9a7e-0123456789ab"


def hook_input(prompt: str, session: str = SESSION) -> str:
    # What Claude Code 2.1.332 writes on the hook's stdin (observed).
    return json.dumps(
        {
            "session_id": session,
            "transcript_path": f"/h/.claude/projects/-p/{session}.jsonl",
            "cwd": "/p",
            "prompt_id": "b04879c6-ebb8-493c-80f7-50b1ca711d8c",
            "permission_mode": "dontAsk",
            "hook_event_name": "UserPromptSubmit",
            "prompt": prompt,
        }
    )


def test_parse_prompt_takes_what_claude_code_substitutes_for_arguments() -> None:
    assert parse_prompt("/autorun:orchestrate plan.md") == prompt_args.PromptArgs(
        "orchestrate", "plan.md"
    )
    # Observed: leading spaces and the trailing newline are not in $ARGUMENTS,
    # inner newlines and spaces are.
    got = parse_prompt("/autorun:status   two  spaces\n line2 ' \"\n")
    assert got == prompt_args.PromptArgs("status", "two  spaces\n line2 ' \"")
    assert parse_prompt("/autorun:status") == prompt_args.PromptArgs("status", "")
    assert parse_prompt("/autorun:status\n") == prompt_args.PromptArgs("status", "")
    for other in ("hello", "/autorunx:status a", "/autorun:status-x", "please /autorun:status"):
        got = parse_prompt(other)
        assert got is None or got.command == "status-x", other


def test_hostile_arguments_are_recorded_and_taken_verbatim_once() -> None:
    path = record(hook_input(f"/autorun:orchestrate {HOSTILE}"))
    assert path is not None and path.is_file()
    assert path.stat().st_mode & 0o077 == 0  # only the user reads their prompt
    assert take(SESSION, "orchestrate") == HOSTILE.strip()
    assert not path.exists()
    assert take(SESSION, "orchestrate") is None  # good for one `!` line


def test_a_record_is_only_for_its_own_command_and_while_fresh() -> None:
    record(hook_input("/autorun:status run-a"))
    assert take(SESSION, "orchestrate") is None  # another command: dropped
    assert take(SESSION, "status") is None
    record(hook_input("/autorun:status run-a"), now=1000.0)
    assert take(SESSION, "status", now=1000.0 + prompt_args.MAX_AGE + 1) is None
    record(hook_input("/autorun:status run-a"))
    assert take("another-session", "status") is None
    assert take(SESSION, "status") == "run-a"


def test_other_prompts_and_bad_input_record_nothing(autorun_home: Path) -> None:
    for text in (
        hook_input("explain this function"),
        hook_input("/autorun:status x", session="../../etc/passwd"),
        hook_input("/autorun:status x", session=""),
        "not json",
        json.dumps(["/autorun:status x"]),
        json.dumps({"session_id": SESSION, "prompt": 3}),
    ):
        assert record(text) is None
    assert not (autorun_home / "prompts").exists() or not any((autorun_home / "prompts").iterdir())
    assert take("../../etc/passwd", "status") is None


def test_expand_argv_appends_one_positional_argument(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"CLAUDE_CODE_SESSION_ID": SESSION}
    record(hook_input("/autorun:start --help me"))
    # Even text that looks like an option stays one positional argument.
    assert expand_argv(["--args-of", "start", "stage", "start"], env) == [
        "stage",
        "start",
        "--",
        "--help me",
    ]
    record(hook_input("/autorun:status"))
    assert expand_argv(["--args-of", "status", "status"], env) == ["status"]
    assert capsys.readouterr().err == ""
    # No record (e.g. the model ran the command through its Skill tool): said, not guessed.
    assert expand_argv(["--args-of", "status", "status"], env) == ["status"]
    assert "no arguments recorded for /autorun:status" in capsys.readouterr().err
    assert expand_argv(["status", "x"], env) == ["status", "x"]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300))
def test_any_argument_text_round_trips(text: str) -> None:
    prompt = "/autorun:orchestrate " + text
    expected = parse_prompt(prompt)
    assert expected is not None
    record(hook_input(prompt))
    assert take(SESSION, "orchestrate") == expected.arguments == text.strip()


def test_the_engine_gets_the_argument_through_real_processes(tmp_path: Path) -> None:
    """The hook's command, then the `!` line's, as separate processes; the
    argument names a file that does not exist, and the error shows it verbatim."""
    env = dict(os.environ, CLAUDE_CODE_SESSION_ID=SESSION)
    hook = subprocess.run(
        [sys.executable, "-m", "autorun_py", "hook", "user-prompt-submit"],
        input=hook_input(f"/autorun:ping {HOSTILE}"),
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert hook.returncode == 0 and hook.stdout == "", hook.stderr
    line = subprocess.run(
        [sys.executable, "-m", "autorun_py", "--args-of", "ping", "plan", "check"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert line.returncode == 1, line.stderr
    assert f"{HOSTILE.strip()}: no such file" in line.stderr  # the whole text, one argument
    assert not any(tmp_path.glob("CANARY*"))


def test_an_unwritable_home_is_one_line_and_never_blocks_the_prompt(tmp_path: Path) -> None:
    home = tmp_path / "home-is-a-file"
    home.write_text("")
    env = dict(os.environ, AUTORUN_HOME=str(home))
    hook = subprocess.run(
        [sys.executable, "-m", "autorun_py", "hook", "user-prompt-submit"],
        input=hook_input("/autorun:status x"),
        capture_output=True,
        text=True,
        env=env,
    )
    assert hook.returncode == 0 and hook.stdout == ""
    assert hook.stderr.startswith("autorun: hook: cannot record the arguments")
    assert len(hook.stderr.splitlines()) == 1 and "Traceback" not in hook.stderr
