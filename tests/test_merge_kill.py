"""SIGKILL `autorun merge` at every git step it makes, then recover.

A `git` wrapper first on PATH kills the engine (its parent) and itself at the
Nth git invocation of the command; the list of steps is recorded from an
unkilled run of the same merge. After each kill the recovery (`autorun resume
--no-monitor` when a merge was in flight, else the merge again) must leave:
the base branch moved forwards once (never backwards), the user's checkout at
exactly the merged result (or untouched when it is on another branch), the
stage merged exactly once (one merge commit on the first-parent chain, one
merge_complete event) and no merge intent left. See tests/killharness.py.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.killharness import KINDS, Scenario, run_one


@pytest.mark.parametrize("kind", KINDS)
def test_kill_at_every_git_step(kind: str, tmp_path: Path, quiet_agent: None) -> None:
    sc = Scenario(tmp_path / kind, kind, in_process=True)
    steps = sc.record_steps()
    # the steps that change something are among them
    assert any(s.startswith("update-ref") for s in steps)
    if kind != "elsewhere":
        assert "read-tree#1" in steps
    if kind == "continue":
        assert "merge#1" in steps  # merge --quit
    failures = []
    recoveries: dict[str, int] = {}
    for n, step in enumerate(steps, start=1):
        out = run_one(sc, kill_at=n)
        assert out["killed"], f"not killed at {step}"
        recoveries[out["recovery"]] = recoveries.get(out["recovery"], 0) + 1
        if out["violations"]:
            failures.append(f"kill at {step} (git call {n}): {out['violations']}")
    assert not failures, "\n".join(failures)
    assert recoveries.get("resume", 0) > 0  # some kills left a merge in flight
    # one past the end: the wrapper never fires and the merge just works
    out = run_one(sc, kill_at=len(steps) + 1)
    assert not out["killed"] and out["recovery"] == "already_completed"
    assert not out["violations"]
    assert signal.SIGKILL  # the wrapper's signal


def test_the_two_reported_kills(tmp_path: Path, quiet_agent: None) -> None:
    """Issue 11's reproductions: a kill between `read-tree -m -u` and
    `update-ref` (the checkout carried, the base not moved), and a kill in
    `merge --continue` right after `merge --quit`. Both recover with the real
    CLI; neither blames the user's changes or reports "gained commits"."""
    carried = Scenario(tmp_path / "carried", "carried")
    steps = carried.record_steps()
    carried.reset()
    assert carried.kill_at(steps.index("update-ref#1") + 1) == -signal.SIGKILL
    raw = (carried.orch / "status.json").read_text()
    assert '"step": "advancing"' in raw
    proc = carried.cli(carried.merge_argv())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "uncommitted" not in proc.stdout and '"recovered": "advancing"' in proc.stdout
    assert carried.check() == []

    cont = Scenario(tmp_path / "continue", "continue")
    steps = cont.record_steps()
    cont.reset()
    after_quit = steps.index("merge#1") + 2  # the git call after `merge --quit`
    assert cont.kill_at(after_quit) == -signal.SIGKILL
    proc = cont.cli(cont.merge_argv())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "gained commits" not in proc.stdout + proc.stderr
    assert cont.check() == []
    assert "BASE\nSTAGE" in (cont.repo / "shared.txt").read_text()  # the resolution kept


def test_a_monitor_check_finishes_an_interrupted_merge(tmp_path: Path, quiet_agent: None) -> None:
    sc = Scenario(tmp_path / "carried", "carried")
    steps = sc.record_steps()
    sc.reset()
    # killed after carrying the checkout, before moving the base
    assert sc.kill_at(steps.index("update-ref#1") + 1) == -signal.SIGKILL
    assert sc.check() != []  # not merged yet: the checkout holds the stage's files
    proc = sc.cli(["monitor", str(sc.orch), "--once", "--quiet", "--gap", "0"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sc.check() == []


@pytest.mark.parametrize("command", ["cancel", "stage fail"])
def test_cancel_or_fail_after_a_killed_merge_finishes_it_first(
    command: str, tmp_path: Path, quiet_agent: None
) -> None:
    """A stage cancelled or failed while a killed merge's intent is recorded must not
    strand the user's checkout (carried forward, base not moved): the interrupted
    merge is finished or rolled back before the stage leaves in_progress."""
    sc = Scenario(tmp_path / "carried", "carried")
    steps = sc.record_steps()
    sc.reset()
    assert sc.kill_at(steps.index("update-ref#1") + 1) == -signal.SIGKILL
    assert sc.check() != []  # the checkout holds the stage's files, the base has not moved
    if command == "cancel":
        argv = ["cancel", str(sc.orch), "--stage", "1", "--json"]
    else:
        argv = ["stage", "fail", str(sc.orch), "1", "--reason", "gave up"]
    proc = sc.cli(argv)
    assert "Traceback" not in proc.stdout + proc.stderr
    assert sc.check() == [], proc.stdout + proc.stderr  # merged exactly once, checkout at it
    raw = (sc.orch / "status.json").read_text()
    assert '"merge_intent": null' in raw or '"merge_intent"' not in raw
