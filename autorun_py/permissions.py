"""Will the stage sessions stop at permission prompts? (docs/permissions.md)

An unattended run needs a Claude Code permission mode that never waits for a
person: auto mode (a Claude plan), ``dontAsk`` with an allow list, or
``bypassPermissions`` in a sandbox. This module works out which mode the stage
sessions get (autorun's ``agent_args`` and ``permission_mode``, else Claude
Code's settings files, else Claude Code's default) and says, in one line,
whether that mode stops at prompts. ``orchestrate`` prints it as a warning and
``doctor`` as a check.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from autorun_py import paths, proc
from autorun_py.config import Config

DOCS = "docs/permissions.md"
MODES = ("acceptEdits", "auto", "bypassPermissions", "manual", "dontAsk", "plan", "default")


@dataclass(frozen=True)
class PermissionCheck:
    """Whether unattended stage sessions would stop at permission prompts, and why."""
    mode: str  # the effective mode ("auto" when nothing is configured)
    source: str  # where it came from
    stops: bool  # True: an unattended session will wait at a prompt (or cannot work)
    detail: str  # one line: what happens, and what to do


def _read_settings(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def settings_files(project: Optional[Path]) -> list[Path]:
    """Claude Code's settings files, lowest precedence first."""
    out = [paths.claude_config_dir() / "settings.json"]
    if project is not None:
        out += [project / ".claude" / "settings.json", project / ".claude" / "settings.local.json"]
    return out


def _flag_value(args: Sequence[str], *names: str) -> Optional[str]:
    value: Optional[str] = None
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                value = args[i + 1]
            elif arg.startswith(name + "="):
                value = arg.split("=", 1)[1]
    return value


def check_permissions(config: Config, project: Optional[Path] = None) -> PermissionCheck:
    """The permission mode of stage sessions started with ``config`` in ``project``."""
    args = list(config.agent_args)
    allow: list[str] = []
    skip_prompt = False
    mode: Optional[str] = None
    source = ""
    for path in settings_files(project):
        settings = _read_settings(path)
        perms = settings.get("permissions")
        if isinstance(perms, dict):
            if isinstance(perms.get("allow"), list):
                allow += [str(a) for a in perms["allow"]]
            if isinstance(perms.get("defaultMode"), str):
                mode, source = perms["defaultMode"], f"{path} defaultMode"
        if settings.get("skipDangerousModePermissionPrompt") is True:
            skip_prompt = True
    tools = _flag_value(args, "--allowedTools", "--allowed-tools")
    if tools:
        allow += tools.replace(",", " ").split()
    if config.permission_mode:
        mode, source = config.permission_mode, config.permission_source
    flag = _flag_value(args, "--permission-mode")
    if flag:
        mode, source = flag, "autorun agent_args --permission-mode"
    if "--dangerously-skip-permissions" in args:
        mode, source = "bypassPermissions", "autorun agent_args --dangerously-skip-permissions"
    if mode is None:
        mode, source = "auto", "Claude Code's default"
    return _verdict(mode, source, allow, skip_prompt)


def _verdict(mode: str, source: str, allow: list[str], skip_prompt: bool) -> PermissionCheck:
    def result(stops: bool, detail: str) -> PermissionCheck:
        return PermissionCheck(mode, source, stops, f"{mode} ({source}): {detail}")

    bash_allowed = any(a == "Bash" or a.startswith("Bash(") for a in allow)
    if mode in ("manual", "default"):
        return result(True, f"stage sessions wait at every permission prompt; see {DOCS}")
    if mode == "acceptEdits":
        if "Bash" in allow:
            return result(False, "file edits accepted, every Bash command allowed")
        return result(
            True,
            "stage sessions stop at the first command not in permissions.allow (a test run, "
            f"a build); use dontAsk with an allow list, auto, or a sandbox: see {DOCS}",
        )
    if mode == "plan":
        return result(True, f"plan mode never edits files, so no stage can do its work; see {DOCS}")
    if mode == "dontAsk":
        if not allow:
            return result(
                True,
                "no permissions.allow list, so every tool call is refused and stages fail; "
                f"list the tools and commands your stages need: see {DOCS}",
            )
        extra = "" if bash_allowed else "; no Bash rule, so every shell command is refused"
        return result(False, f"never prompts; refuses what the allow list lacks{extra}")
    if mode == "bypassPermissions":
        problems = []
        # IS_SANDBOX: what the stage sessions inherit (tmux.FORWARD_EXACT)
        sandbox = proc.inherited("IS_SANDBOX").get("IS_SANDBOX")
        if hasattr(os, "geteuid") and os.geteuid() == 0 and sandbox != "1":
            problems.append("as root Claude Code refuses it unless IS_SANDBOX=1")
        if not skip_prompt:
            problems.append(
                "its warning screen waits for an answer unless ~/.claude/settings.json has "
                '"skipDangerousModePermissionPrompt": true'
            )
        if problems:
            return result(True, "; ".join(problems) + f"; see {DOCS}")
        return result(False, "no permission checks at all: only for a disposable sandbox")
    if mode == "auto":
        return result(
            False,
            "never prompts on a Claude plan; its safety check (on Anthropic's servers) may "
            "refuse a risky action",
        )
    return result(True, f"not a permission mode Claude Code knows ({', '.join(MODES[:-1])})")


def is_claude_code(config: Config) -> bool:
    """Whether the agent is Claude Code (the stand-in and other agents have no prompts)."""
    return Path(config.agent).name.startswith("claude")


def project_root(cwd: Path) -> Optional[Path]:
    """The repository holding ``cwd`` (where Claude Code reads ``.claude/settings.json``)."""
    for d in (cwd, *cwd.parents):
        if (d / ".git").exists():
            return d
    return None


def unattended_warning(config: Config, cwd: Path) -> Optional[str]:
    """One line for ``orchestrate`` when stage sessions will stop at prompts, else None."""
    if not is_claude_code(config):
        return None
    check = check_permissions(config, project_root(cwd))
    if not check.stops:
        return None
    return f"Claude Code's permission mode for stage sessions is {check.detail}"
