"""A slash command's arguments, handed to the engine without any shell reading them.

Claude Code pastes ``$ARGUMENTS`` into a command's ``!`` lines as raw text, so a
shell would parse whatever the user typed (a here-document only moves the
problem to its terminator line). Instead (observed with Claude Code 2.1.332,
docs/claude-code.md "Arguments without a shell"):

1. The plugin's ``UserPromptSubmit`` hook (``hooks/hooks.json`` ->
   ``scripts/prompt-hook``) receives the prompt as JSON on stdin *before* the
   command's ``!`` lines run, the raw ``/autorun:<name> <arguments>`` text
   included. :func:`record` keeps the arguments of an autorun command in
   ``$AUTORUN_HOME/prompts/<session id>.json`` (mode 0600).
2. The ``!`` line runs ``autorun --args-of <name> <engine command...>`` with no
   ``$ARGUMENTS`` in it; :func:`take` reads the record of this session
   (``CLAUDE_CODE_SESSION_ID``, the hook's ``session_id``), removes it, and the
   arguments become ONE last argv element.

A record is used once, only by the command it was written for, and only while
fresh (:data:`MAX_AGE`): a command the model starts through its Skill tool
(no hook runs then) never gets the arguments of an earlier prompt.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from autorun_py.paths import layout

# `/autorun:<name>` at the start of the prompt, then whitespace or the end.
_COMMAND = re.compile(r"\A\s*/autorun:([A-Za-z0-9_-]+)(?=\s|\Z)(.*)\Z", re.S)
_SESSION = re.compile(r"\A[A-Za-z0-9_-]{1,128}\Z")
MAX_AGE = 600.0  # seconds between the hook and the `!` line (normally milliseconds)
_SWEEP_AGE = 86400.0  # records of `!` lines that never ran


@dataclass(frozen=True)
class PromptArgs:
    """A slash command's name and the arguments Claude Code gave it."""
    command: str  # the slash command's name without the plugin: "orchestrate"
    arguments: str  # what Claude Code substitutes for $ARGUMENTS (trimmed)


def prompts_dir() -> Path:
    return layout().prompts


def parse_prompt(prompt: str) -> Optional[PromptArgs]:
    """The autorun command in a submitted prompt, or None when it is not one.

    ``$ARGUMENTS`` is the text after the command name with surrounding
    whitespace removed (observed: a trailing newline and leading spaces are not
    part of it; inner newlines and spaces are)."""
    m = _COMMAND.match(prompt)
    if m is None:
        return None
    return PromptArgs(m.group(1), m.group(2).strip())


def _record_path(session_id: str) -> Optional[Path]:
    if not _SESSION.match(session_id):
        return None
    return prompts_dir() / f"{session_id}.json"


def record(hook_input: str, *, now: Optional[float] = None) -> Optional[Path]:
    """Handle one ``UserPromptSubmit`` hook input (the JSON Claude Code writes on
    the hook's stdin). Keeps the arguments of an autorun command for the
    session's ``!`` lines; anything else is ignored. Returns the record's path."""
    try:
        data: Any = json.loads(hook_input)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    prompt, session_id = data.get("prompt"), data.get("session_id")
    if not isinstance(prompt, str) or not isinstance(session_id, str):
        return None
    parsed = parse_prompt(prompt)
    path = _record_path(session_id)
    if parsed is None or path is None:
        return None
    from autorun_py.state import write_json_atomic  # the one atomic-write helper

    stamp = time.time() if now is None else now
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_json_atomic(
        path,
        {
            "command": parsed.command,
            "arguments": parsed.arguments,
            "prompt_id": data.get("prompt_id"),
            "recorded_at": stamp,
        },
    )
    _sweep(path.parent, stamp)
    return path


def _sweep(directory: Path, now: float) -> None:
    """Remove records whose ``!`` line never ran (a day old)."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            with contextlib.suppress(OSError):
                if entry.name.endswith(".json") and now - entry.stat().st_mtime > _SWEEP_AGE:
                    os.unlink(entry.path)


def take(session_id: Optional[str], command: str, *, now: Optional[float] = None) -> Optional[str]:
    """The arguments the hook recorded for ``/autorun:<command>`` in this session,
    or None when there is no usable record (then the command runs without). The
    record is removed either way: it is good for one ``!`` line."""
    if not session_id:
        return None
    path = _record_path(session_id)
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    with contextlib.suppress(OSError):
        path.unlink()
    try:
        data: Any = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("command") != command:
        return None
    arguments, stamp = data.get("arguments"), data.get("recorded_at")
    if not isinstance(arguments, str) or not isinstance(stamp, (int, float)):
        return None
    if (time.time() if now is None else now) - stamp > MAX_AGE:
        return None
    return arguments


def expand_argv(argv: list[str], environ: Mapping[str, str]) -> list[str]:
    """``--args-of NAME rest...`` -> ``rest... -- <arguments>``: always one
    positional argument, even when it starts with ``-`` (nothing appended for
    empty arguments); ``environ`` (the process environment) names the Claude Code
    session. A missing record is said on stderr, for the model."""
    if len(argv) < 2 or argv[0] != "--args-of":
        return argv
    name, rest = argv[1], argv[2:]
    arguments = take(environ.get("CLAUDE_CODE_SESSION_ID"), name)
    if arguments is None:
        import sys

        print(
            f"autorun: no arguments recorded for /autorun:{name} in this session (the "
            "plugin's UserPromptSubmit hook did not run for it); going on without them",
            file=sys.stderr,
        )
        return rest
    return [*rest, "--", arguments] if arguments else rest
