"""The default parallel cap comes from the machine, can be overridden, is shown; and
session starts are spaced out."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from autorun_py import capacity
from autorun_py.capacity import resolve_max_parallel
from autorun_py.config import load_config
from autorun_py.errors import AutorunError
from autorun_py.orchestrate import run_orchestrate
from tests.helpers import run_cli, standin_env, wait_finished, write_plan

WIDE = [(n, f"Part {n}", []) for n in range(1, 41)]  # 40 independent stages


def test_machine_default_from_cores_and_memory() -> None:
    cap = capacity.machine_default()
    cores = capacity.cpu_cores()
    mem, _ = capacity.available_memory_mb()
    assert 1 <= cap.value <= cores * capacity.SESSIONS_PER_CORE
    if mem is not None:
        assert cap.value == max(1, min(cores * 2, mem // capacity.SESSION_MB))
        assert f"{mem / 1024:.1f} GB" in cap.reason
    assert f"{cores} core(s)" in cap.reason


def test_flag_then_environment_then_config_then_machine() -> None:
    assert resolve_max_parallel(3, "5", 7) == capacity.ParallelCap(3, "--max-parallel")
    assert resolve_max_parallel(None, "5", 7) == capacity.ParallelCap(5, "AUTORUN_MAX_PARALLEL")
    assert resolve_max_parallel(None, "", 7) == capacity.ParallelCap(7, "config max_parallel")
    machine = resolve_max_parallel(None, None, None)
    assert machine.value == capacity.machine_default().value
    assert machine.reason.startswith("machine default: min(")
    for bad in ("0", "-2", "many"):
        with pytest.raises(AutorunError, match="AUTORUN_MAX_PARALLEL must be a positive"):
            resolve_max_parallel(None, bad, None)


def test_orchestrate_caps_a_wide_plan_by_default_and_says_why(repo: Path) -> None:
    plan = write_plan(repo, WIDE)
    expected = capacity.machine_default().value
    out = run_cli(["orchestrate", str(plan), "--dry-run", "--json"], repo, check=True).stdout
    data = json.loads(out)
    assert len(data["launched"]) == expected < 40
    assert data["max_parallel"] == expected
    assert data["max_parallel_reason"].startswith("machine default: min(")
    text = run_cli(["orchestrate", str(plan), "--dry-run"], repo, check=True).stdout
    assert f"at most {expected} at once (machine default: min(" in text
    # Overrides: the environment, the config, the flag (which wins).
    env = {"AUTORUN_MAX_PARALLEL": "3"}
    data = json.loads(
        run_cli(["orchestrate", str(plan), "--dry-run", "--json"], repo, env=env).stdout
    )
    assert (len(data["launched"]), data["max_parallel_reason"]) == (3, "AUTORUN_MAX_PARALLEL")
    home = Path(os.environ["AUTORUN_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.json").write_text('{"max_parallel": 2}')
    data = json.loads(run_cli(["orchestrate", str(plan), "--dry-run", "--json"], repo).stdout)
    assert (len(data["launched"]), data["max_parallel_reason"]) == (2, "config max_parallel")
    argv = ["orchestrate", str(plan), "--dry-run", "--json", "--max-parallel", "5"]
    data = json.loads(run_cli(argv, repo, env=env).stdout)
    assert (len(data["launched"]), data["max_parallel_reason"]) == (5, "--max-parallel")
    (home / "config.json").write_text('{"max_parallel": 0}')
    proc = run_cli(["orchestrate", str(plan), "--dry-run"], repo)
    assert proc.returncode == 1 and "max_parallel must be a positive" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_status_view_shows_the_cap(repo: Path) -> None:
    plan = write_plan(repo, WIDE[:3])
    run_cli(["orchestrate", str(plan), "--no-launch", "--max-parallel", "2"], repo, check=True)
    assert "schedule dataflow (max 2)" in run_cli(["status"], repo, check=True).stdout


def test_session_starts_are_staggered(
    repo: Path, tmux_socket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "standin.log"
    standin_env(monkeypatch, log=str(log))
    monkeypatch.setenv("AUTORUN_LAUNCH_STAGGER", "1.5")
    plan = write_plan(repo, WIDE[:3])
    outcome = run_orchestrate(
        plan, repo, max_parallel=3, monitor=False, config=load_config(os.environ)
    )
    assert outcome.launched == [1, 2, 3]
    assert wait_finished(Path(outcome.orch_dir))["status"] == "completed"
    starts = sorted(
        float(line.split()[0])
        for line in log.read_text().splitlines()
        if "stand-in agent: prompt='/autorun:start" in line
    )
    assert len(starts) == 3
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert min(gaps) >= 1.3, gaps


def test_launch_stagger_config_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from autorun_py.config import load_config

    monkeypatch.setenv("AUTORUN_LAUNCH_STAGGER", "soon")
    with pytest.raises(AutorunError, match="launch_stagger must be a number of seconds"):
        load_config(os.environ)
    monkeypatch.setenv("AUTORUN_LAUNCH_STAGGER", "0.5")
    assert load_config(os.environ).launch_stagger == 0.5
    monkeypatch.delenv("AUTORUN_LAUNCH_STAGGER")
    assert load_config(os.environ).launch_stagger == 2.0
