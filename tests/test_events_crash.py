"""No event is ever lost: a writer SIGKILLed between its status.json write and
its events.jsonl append (or between two event lines) leaves its events in the
status file's journal; the next reader, transaction, resume or monitor check
appends exactly the missing ones, once, in order."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from autorun_py.plan import load_plan
from autorun_py.rundir import create_orchestration
from autorun_py.state import IN_PROGRESS, StatusStore, transition
from tests.helpers import read_events, run_cli, write_plan

DIAMOND = [(1, "Ingest", []), (2, "Parse", [1]), (3, "Index", [1]), (4, "Serve", [2, 3])]

# A real process failing stage 1: stage_failed, three stage_blocked, then
# orchestration_complete (every stage is terminal), in one transaction.
FAIL_STAGE_1 = """
import sys
from pathlib import Path
from autorun_py.state import StatusStore, fail_stage, store
store.KILL_AT = sys.argv[2] if len(sys.argv) > 2 else None
with StatusStore(Path(sys.argv[1])).transaction() as txn:
    fail_stage(txn, 1, "boom")
print("done")
"""
EXPECTED = ["stage_failed", "stage_blocked", "stage_blocked", "stage_blocked"]


@pytest.fixture
def orch(repo: Path) -> Path:
    plan = write_plan(repo, DIAMOND)
    state = create_orchestration(load_plan(plan), repo)
    orch = Path(state.orch_dir)
    with StatusStore(orch).transaction() as txn:
        transition(txn, 1, IN_PROGRESS)
    return orch


def _fail_stage_1(orch: Path, kill_at: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", FAIL_STAGE_1, str(orch), *([kill_at] if kill_at else [])],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _tail_types(orch: Path, after: int) -> list[str]:
    return [e["type"] for e in read_events(orch)[after:]]


@pytest.mark.parametrize("point", ["state:after-status-write", "events:between-lines"])
def test_kill_after_the_state_write_loses_no_event(orch: Path, point: str) -> None:
    before = len(read_events(orch))
    proc = _fail_stage_1(orch, point)
    assert proc.returncode == -9, proc.stderr  # really killed there
    assert StatusStore(orch).read().stages[1].status == "failed"  # committed
    logged = _tail_types(orch, before)
    if point == "state:after-status-write":
        assert logged == []  # the kill landed between the two writes
    else:
        assert logged == ["stage_failed"]  # one line written, the rest not
    # A reader (the real CLI) flushes the journal; a second reader adds nothing.
    out = run_cli(["events", str(orch), "--json"], orch, check=True)
    types = [json.loads(x)["type"] for x in out.stdout.splitlines()][before:]
    assert types == [*EXPECTED, "orchestration_complete"]
    run_cli(["events", str(orch), "--json"], orch, check=True)
    # The next transaction does not write them again either.
    with StatusStore(orch).transaction() as txn:
        txn.emit("probe")
    assert _tail_types(orch, before) == [*EXPECTED, "orchestration_complete", "probe"]


def test_next_transaction_flushes_before_its_own_events(orch: Path) -> None:
    before = len(read_events(orch))
    assert _fail_stage_1(orch, "state:after-status-write").returncode == -9
    with StatusStore(orch).transaction() as txn:
        txn.emit("probe")
    assert _tail_types(orch, before) == [*EXPECTED, "orchestration_complete", "probe"]
    stamps = Counter(json.dumps(e, sort_keys=True) for e in read_events(orch))
    assert max(stamps.values()) == 1


def test_follow_ends_although_the_writer_died_before_orchestration_complete(
    orch: Path,
) -> None:
    assert _fail_stage_1(orch, "state:after-status-write").returncode == -9
    assert "orchestration_complete" not in _tail_types(orch, 0)
    # Without the journal this waits forever: nothing else will ever write.
    out = run_cli(["events", str(orch), "--follow", "--notable"], orch, check=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1].startswith("autorun: run ")
    assert _tail_types(orch, 0).count("orchestration_complete") == 1


def test_unkilled_writer_and_journal_shape(orch: Path) -> None:
    before = len(read_events(orch))
    proc = _fail_stage_1(orch, None)
    assert proc.returncode == 0, proc.stderr
    raw = json.loads((orch / "status.json").read_text())
    journal = raw["event_journal"]
    assert [e["type"] for e in journal["events"]] == [*EXPECTED, "orchestration_complete"]
    assert journal["offset"] == len(
        b"".join(x + b"\n" for x in (orch / "events.jsonl").read_bytes().splitlines()[:before])
    )
    assert _tail_types(orch, before) == [*EXPECTED, "orchestration_complete"]
    assert run_cli(["events", str(orch), "--json"], orch, check=True).stdout.count("\n") == len(
        read_events(orch)
    )
