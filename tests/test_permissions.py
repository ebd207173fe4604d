"""Which permission mode stage sessions get, and whether an unattended run stops at
its prompts: orchestrate warns, doctor checks (docs/permissions.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import autorun_py.config
from autorun_py.config import Config
from autorun_py.permissions import check_permissions
from tests.helpers import run_cli, write_plan


def settings(path: Path, data: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def user_settings() -> Path:
    return Path(os.environ["HOME"]) / ".claude" / "settings.json"


@pytest.fixture(autouse=True)
def _no_claude_config_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    monkeypatch.delenv("IS_SANDBOX", raising=False)


def test_modes_that_stop_and_modes_that_do_not(repo: Path) -> None:
    assert not check_permissions(Config()).stops  # Claude Code's default: auto
    assert check_permissions(Config()).source == "Claude Code's default"
    for mode in ("acceptEdits", "manual", "default", "plan", "dontAsk", "nonsense"):
        check = check_permissions(Config(permission_mode=mode))
        assert check.stops, mode
        assert check.source == "autorun config permission_mode"
    assert (
        "first command not in permissions.allow"
        in check_permissions(Config(permission_mode="acceptEdits")).detail
    )
    # dontAsk works once there is an allow list: in the project's settings, or as a flag.
    settings(repo / ".claude" / "settings.json", {"permissions": {"allow": ["Read", "Bash"]}})
    assert not check_permissions(Config(permission_mode="dontAsk"), repo).stops
    flags = Config(agent_args=("--permission-mode", "dontAsk", "--allowedTools", "Read Edit"))
    check = check_permissions(flags)
    assert (check.mode, check.stops) == ("dontAsk", False)
    assert "no Bash rule" in check.detail
    # The settings' defaultMode counts when autorun sets none.
    settings(user_settings(), {"permissions": {"defaultMode": "acceptEdits"}})
    check = check_permissions(Config())
    assert (check.mode, check.stops) == ("acceptEdits", True)
    assert check.source.endswith("settings.json defaultMode")


def test_bypass_needs_the_sandbox_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    bypass = Config(agent_args=("--dangerously-skip-permissions",))
    check = check_permissions(bypass)
    assert check.mode == "bypassPermissions" and check.stops
    assert "skipDangerousModePermissionPrompt" in check.detail
    settings(user_settings(), {"skipDangerousModePermissionPrompt": True})
    monkeypatch.setenv("IS_SANDBOX", "1")
    assert not check_permissions(bypass).stops


def test_config_example_is_a_mode_for_unattended_runs() -> None:
    doc = autorun_py.config.__doc__ or ""
    example = json.loads(doc.split("```json")[1].split("```")[0])
    assert example["permission_mode"] not in ("acceptEdits", "manual", "default", "plan")


def test_orchestrate_warns_in_one_line(repo: Path, tmp_path: Path) -> None:
    plan = write_plan(repo, [(1, "One", [])])
    claude = tmp_path / "bin" / "claude"  # never started: --dry-run
    claude.parent.mkdir()
    claude.write_text("#!/bin/sh\nexit 0\n")
    claude.chmod(0o755)
    env = {"AUTORUN_CLAUDE": str(claude), "AUTORUN_PERMISSION_MODE": "acceptEdits"}
    proc = run_cli(["orchestrate", str(plan), "--dry-run"], repo, env=env)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1
    assert warnings[0].startswith(
        "autorun: warning: Claude Code's permission mode for stage sessions is acceptEdits "
        "(AUTORUN_PERMISSION_MODE): stage sessions stop at the first command"
    )
    assert "docs/permissions.md" in warnings[0]
    env["AUTORUN_PERMISSION_MODE"] = "auto"
    proc = run_cli(["orchestrate", str(plan), "--dry-run"], repo, env=env)
    assert proc.returncode == 0 and "warning" not in proc.stderr


def test_doctor_checks_the_permission_mode(repo: Path, tmp_path: Path) -> None:
    claude = tmp_path / "bin" / "claude"
    claude.parent.mkdir()
    claude.write_text("#!/bin/sh\necho '2.1.332 (Claude Code)'\n")
    claude.chmod(0o755)
    env = {"AUTORUN_CLAUDE": str(claude), "AUTORUN_PERMISSION_MODE": "plan"}
    out = run_cli(["doctor", "--json"], repo, env=env).stdout
    (check,) = [c for c in json.loads(out)["checks"] if c["name"] == "permissions"]
    assert check["status"] == "warning" and check["version"] == "plan"
    assert "never edits files" in check["detail"]
    text = run_cli(["doctor"], repo, env=env).stdout
    assert "warning  permissions" in text and "docs/permissions.md" in text
    env["AUTORUN_PERMISSION_MODE"] = "dontAsk"
    settings(repo / ".claude" / "settings.json", {"permissions": {"allow": ["Bash"]}})
    out = run_cli(["doctor", "--json"], repo, env=env).stdout
    (check,) = [c for c in json.loads(out)["checks"] if c["name"] == "permissions"]
    assert check["status"] == "ok"
