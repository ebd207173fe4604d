"""Packaging with the real Claude Code CLI: the manifests validate with no
warning, the commands stay within their token budgets, and a fresh HOME can add
the repository's marketplace, install the plugin and run a whole orchestration
with it (no --plugin-dir, no manual step)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .autorun_model import AutorunModel
from .harness import REPO, ClaudeRunner
from .runs import RunWatch, check_three_stage_run, prepare_autorun_home, start_three_stage_project
from .wheelhouse import build_wheelhouse, offline_pip_env

# On-invoke budgets from `claude plugin details` (tokens).
BUDGETS = {"orchestrate": 1200, "start": 1600, "merge": 1000}


def claude_cli(claude: ClaudeRunner, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(claude.claude), *args],
        cwd=str(cwd),
        env=claude.env(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def on_invoke_costs(details: str) -> dict[str, float]:
    """component -> on-invoke tokens, from `claude plugin details` output."""
    costs: dict[str, float] = {}
    number = r"(?:~|<\s*)([\d.]+)(k?)"
    in_table = False
    for line in details.splitlines():
        if re.match(r"\s+component\s+always-on\s+on-invoke", line):
            in_table = True
            continue
        match = re.match(rf"\s+(\S+)\s+{number}\s+{number}\s*$", line) if in_table else None
        if match:
            value = float(match.group(4)) * (1000 if match.group(5) else 1)
            costs[match.group(1)] = value
    return costs


def test_the_manifests_validate_strictly_for_the_plugin_directory(claude: ClaudeRunner) -> None:
    proc = claude_cli(
        claude, "plugin", "validate", "--strict", "--profile", "directory", ".", cwd=REPO
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation passed" in proc.stdout
    assert "\u26a0" not in proc.stdout  # no warning sign (--strict would fail on one anyway)
    assert "autorun-events" in proc.stdout  # the monitor was read


def test_commands_stay_within_their_token_budgets(claude: ClaudeRunner) -> None:
    proc = claude_cli(claude, "--plugin-dir", str(REPO), "plugin", "details", "autorun", cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    costs = on_invoke_costs(proc.stdout)
    commands = {p.stem for p in (REPO / "commands").glob("*.md")}
    assert set(costs) == commands, proc.stdout
    for name, budget in BUDGETS.items():
        if name in costs:
            assert costs[name] <= budget, f"{name}: ~{costs[name]:.0f} tokens > {budget}"


def test_a_fresh_home_installs_from_the_marketplace_and_runs_a_whole_orchestration(
    claude: ClaudeRunner, tmp_path: Path, tmux_socket: str
) -> None:
    """No --plugin-dir and no prepared venv: the plugin installed from the
    repository's marketplace builds its environment on first use, and the engine
    starts plain ``claude`` (found on PATH) for every stage, which finds the
    installed plugin's commands."""
    # A clone (committed files only), as `marketplace add owner/repo` would fetch.
    clone = tmp_path / "autorun-clone"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{REPO}", str(clone)],
        check=True,
        capture_output=True,
    )
    # The shim's first use inside Claude Code installs from a local wheelhouse.
    claude.extra_env.update(offline_pip_env(build_wheelhouse(tmp_path / "wheels")))
    claude.extra_env["AUTORUN_TMUX_SOCKET"] = tmux_socket
    project, initial = start_three_stage_project(tmp_path / "project")
    # Before `plugin install`, which adds enabledPlugins to ~/.claude/settings.json.
    prepare_autorun_home(claude.home, trusted=[project])

    added = claude_cli(claude, "plugin", "marketplace", "add", str(clone), cwd=project)
    assert added.returncode == 0, added.stdout + added.stderr
    installed = claude_cli(claude, "plugin", "install", "autorun@autorun", cwd=project)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    listed = claude_cli(claude, "plugin", "list", cwd=project)
    assert "autorun@autorun" in listed.stdout and "enabled" in listed.stdout

    # /autorun:status first: the shim builds its venv (no run yet, so the engine
    # says so and exits 1, shown to the model as a line).
    claude.fake.script = lambda req: "STATUS-SEEN" if req.is_main else None
    result = claude.run_print("/autorun:status", cwd=project, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "STATUS-SEEN"
    prompt = claude.fake.main_requests()[0].all_user_text()
    data = claude.home / ".claude" / "plugins" / "data" / "autorun-autorun"
    assert (data / "venv" / ".autorun-stamp").is_file(), prompt
    assert "no orchestrations under" in prompt
    assert "autorun: exit status 1" in prompt

    # The whole three-stage run with the installed plugin.
    env = claude.env()
    del env["AUTORUN_CLAUDE"]  # plain `claude`, from PATH
    assert "AUTORUN_PLUGIN_DIR" not in env
    model = AutorunModel()
    claude.fake.script = model
    watch = RunWatch(claude, project, model)
    try:
        watch.orchestrate("plan.md", env=env)
        check_three_stage_run(watch, initial)
        assert watch.wait_orchestrator_exit() == 0, watch.diagnostics()
        # Every session ran the installed plugin's commands: its data folder is the
        # installed one (a --plugin-dir plugin's is autorun-inline), its root the
        # marketplace's folder (for a marketplace added from a local folder,
        # ${CLAUDE_PLUGIN_ROOT} is that folder, not the copy in plugins/cache).
        r_lines = {
            m.group(1)
            for r in claude.fake.main_requests()
            for m in [re.search(r"`R` means `(.+?)`", r.first_user_text())]
            if m
        }
        assert r_lines == {f'"{clone}/scripts/autorun" --data-dir "{data}"'}, r_lines
    finally:
        watch.stop()
