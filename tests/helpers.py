"""Helpers shared by tests: plan files, the CLI in a subprocess, git."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional


def write_plan(
    directory: Path,
    stages: Sequence[tuple[int, str, Sequence[int]]],
    name: str = "master_plan.md",
    scope: str = "Do the work of {name}.",
) -> Path:
    """A master plan with ``## Stage N: name`` sections and ``Depends on:`` lines."""
    parts = ["# Master plan\n"]
    for number, title, deps in stages:
        dep = ", ".join(f"Stage {d}" for d in deps) if deps else "None"
        parts.append(
            f"## Stage {number}: {title}\n\n**Dependencies**: {dep}\n\n"
            + scope.format(name=title, number=number)
            + "\n"
        )
    path = directory / name
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def run_cli(
    args: Sequence[str],
    cwd: Path,
    *,
    env: Optional[dict[str, str]] = None,
    check: bool = False,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = subprocess.run(
        [sys.executable, "-m", "autorun_py", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"autorun {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def cli_json(args: Sequence[str], cwd: Path, **kw: Any) -> Any:
    proc = run_cli([*args, "--json"], cwd, check=True, **kw)
    return json.loads(proc.stdout)


def git(cwd: Path, *args: str, check: bool = True) -> str:
    """The tests' one git helper: ``git -C cwd args...``, its stripped stdout."""
    return subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, text=True, check=check
    ).stdout.strip()


def standin_env(monkeypatch: Any, **extra: str) -> None:
    """Point autorun at the built-in stand-in agent (via the environment)."""
    import shlex

    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    monkeypatch.setenv("AUTORUN_CLAUDE", sys.executable)
    monkeypatch.setenv("AUTORUN_AGENT_ARGS", shlex.join(["-m", "autorun_py.standin"]))
    monkeypatch.setenv("AUTORUN_STANDIN_DELAY", extra.pop("delay", "0.05-0.3"))
    for key, value in extra.items():
        monkeypatch.setenv(f"AUTORUN_STANDIN_{key.upper()}", value)


def wait_finished(orch: Path, timeout: float = 60) -> dict[str, Any]:
    """Poll status.json until every stage is terminal; return the raw status."""
    import time

    deadline = time.monotonic() + timeout
    raw: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            raw = json.loads((orch / "status.json").read_text())
        except (OSError, ValueError):
            raw = {}
        stages = raw.get("stages", {})
        if stages and all(
            s["status"] in ("completed", "failed", "blocked", "cancelled") for s in stages.values()
        ):
            return raw
        time.sleep(0.2)
    raise AssertionError(
        f"run did not finish in {timeout}s: "
        + json.dumps({k: v["status"] for k, v in raw.get("stages", {}).items()})
    )


def read_events(orch: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (orch / "events.jsonl").read_text().splitlines() if x]


def events_of(orch: Path, kind: str, stage: Optional[int] = None) -> list[dict[str, Any]]:
    """The run's events of type ``kind`` (of one stage, if given), in order."""
    return [
        ev
        for ev in read_events(orch)
        if ev["type"] == kind and (stage is None or ev.get("stage") == stage)
    ]


def read_status(orch: Path) -> dict[str, Any]:
    """The run's status.json as written (raw JSON, not the state model)."""
    return dict(json.loads((orch / "status.json").read_text()))


def orchestrate_plan(
    repo: Path, stages: Sequence[tuple[int, str, Sequence[int]]], *args: str
) -> Path:
    """Write a plan next to ``repo``, ``autorun orchestrate`` it there; the run's dir."""
    plan = write_plan(repo.parent, stages)
    proc = run_cli(["orchestrate", str(plan), "--json", *args], repo, check=True)
    return Path(json.loads(proc.stdout)["orch_dir"])


def log_lines(log: Path, needle: str) -> list[str]:
    """The lines of ``log`` containing ``needle`` (none if it does not exist yet)."""
    if not log.exists():
        return []
    return [ln for ln in log.read_text().splitlines() if needle in ln]


def fast_standin(monkeypatch: Any, log: Path, **extra: str) -> None:
    """The stand-in agent with short work (0.05-0.1 s) and its log at ``log``."""
    standin_env(monkeypatch, delay="0.05-0.1", log=str(log), **extra)


def wait_until(pred: Any, timeout: float = 30, what: str = "") -> Any:
    """Poll ``pred()`` until it returns something truthy; return that value."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or pred}")
        time.sleep(0.05)
