"""The launcher interface: chosen per run and kept in status.json, the background
launcher's argv (no secret in it), and the tmux launcher as the default whose
sessions the status view says how to attach to. The background launcher's real
behaviour is tests/e2e/test_background_e2e.py (the real Claude Code CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autorun_py import launchers
from autorun_py.config import load_config
from autorun_py.errors import AutorunError
from autorun_py.launchers.background import bg_argv
from tests.helpers import cli_json, run_cli, standin_env, wait_finished, write_plan


def test_bg_argv_keeps_the_agent_settings_and_passes_only_autorun_variables() -> None:
    argv = [
        "claude",
        "--plugin-dir",
        "/p",
        "--model",
        "sonnet",
        "--permission-mode",
        "dontAsk",
        "--session-id",
        "1234",
        "/autorun:start /x/stage-1-context.md",
    ]
    env = {
        "AUTORUN_ORCH_DIR": "/o",
        "AUTORUN_STAGE": "1",
        "ANTHROPIC_API_KEY": "sk-secret",
        "PATH": "/bin",
        "IS_SANDBOX": "1",
    }
    out = bg_argv(argv, "slug_stage-1-s1", env)
    assert out[:4] == ["claude", "--bg", "--name", "slug_stage-1-s1"]
    settings = json.loads(out[out.index("--settings") + 1])
    assert settings == {"env": {"AUTORUN_ORCH_DIR": "/o", "AUTORUN_STAGE": "1", "IS_SANDBOX": "1"}}
    assert "sk-secret" not in " ".join(out)
    assert "--session-id" not in out and "1234" not in out  # the daemon picks the id
    for flag, value in (("--plugin-dir", "/p"), ("--model", "sonnet")):
        assert out[out.index(flag) + 1] == value
    assert out[out.index("--permission-mode") + 1] == "dontAsk"
    assert out[-1] == "/autorun:start /x/stage-1-context.md"


def test_launcher_from_config_and_environment_and_a_bad_name_is_one_error(
    autorun_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_config().launcher == "tmux"
    autorun_home.mkdir(parents=True, exist_ok=True)
    (autorun_home / "config.json").write_text('{"launcher": "background"}')
    assert load_config().launcher == "background"
    monkeypatch.setenv("AUTORUN_LAUNCHER", "tmux")
    assert load_config().launcher == "tmux"
    monkeypatch.setenv("AUTORUN_LAUNCHER", "carrier-pigeon")
    with pytest.raises(AutorunError, match="launcher must be one of tmux, background"):
        load_config()
    with pytest.raises(AutorunError, match="unknown launcher"):
        launchers.check_name("carrier-pigeon")


def test_orchestrate_records_the_launcher_and_rejects_an_unknown_one(repo: Path) -> None:
    write_plan(repo, [(1, "Alpha", [])])
    out = cli_json(
        ["orchestrate", "master_plan.md", "--launcher", "background", "--no-launch"], repo
    )
    raw = json.loads(Path(out["status_file"]).read_text())
    assert raw["launcher"] == "background"
    assert cli_json(["status", Path(out["orch_dir"]).name], repo)["launcher"] == "background"
    bad = run_cli(["orchestrate", "master_plan.md", "--launcher", "nope"], repo)
    assert bad.returncode == 2 and "nope" in bad.stderr


def test_tmux_is_the_default_and_the_status_view_says_how_to_attach(
    repo: Path, tmux_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin_env(monkeypatch, delay="3-3")
    write_plan(repo, [(1, "Alpha", [])])
    out = cli_json(["orchestrate", "master_plan.md", "--no-monitor"], repo)
    orch = Path(out["orch_dir"])
    assert json.loads((orch / "status.json").read_text())["launcher"] == "tmux"
    view = cli_json(["status", orch.name], repo)
    row = view["stages"][0]
    assert view["launcher"] == "tmux"
    assert row["attach"] == f"tmux -L {tmux_socket} attach -t {row['session']}"
    assert row["session_alive"] is True
    text = run_cli(["status", orch.name], repo).stdout
    assert f"attach -t {row['session']}" in text
    assert wait_finished(orch)["status"] == "completed"
