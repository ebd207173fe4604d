"""status.json under contention and under SIGKILL."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from autorun_py.contention import drill
from autorun_py.orchestration import create_orchestration
from autorun_py.plan import load_plan
from autorun_py.state import StatusStore
from tests.helpers import write_plan


def _orch(repo: Path, n: int) -> Path:
    plan = write_plan(repo, [(i, f"Stage {i}", []) for i in range(1, n + 1)])
    return Path(create_orchestration(load_plan(plan), repo).orch_dir)


def test_16_writers_100_updates_each_with_a_reader(repo: Path) -> None:
    orch = _orch(repo, 16)
    result = drill(orch, list(range(1, 17)), 100)
    assert result.revision_delta == 1600  # no lost update
    assert result.phase_events == 1600  # one event per update
    assert result.bad_event_lines == 0
    assert result.bad_reads == 0 and result.reads > 0
    assert result.final_current == {n: 100 for n in range(1, 17)}


WRITER = r"""
import sys
from pathlib import Path
from autorun_py.state import StatusStore, update_phase
store = StatusStore(Path(sys.argv[1]))
stage = int(sys.argv[2])
i = 0
while True:
    i += 1
    with store.transaction() as txn:
        update_phase(txn, stage, "implement", "started", current=i, total=10**9)
        rev = txn.state.revision + 1
    sys.stdout.write(f"{rev}\n")
    sys.stdout.flush()
"""


def test_sigkill_never_corrupts_and_keeps_last_commit(repo: Path) -> None:
    orch = _orch(repo, 2)
    from autorun_py.contention import prepare

    prepare(orch, [1, 2])
    rng = random.Random(1234)
    kills = 0
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    while kills < 200:
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, str(orch), str(stage)],
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            for stage in (1, 2)
        ]
        time.sleep(0.12 + rng.random() * 0.08)  # import time plus some writes
        for p in procs:
            p.send_signal(signal.SIGKILL)
        committed = 0
        for p in procs:
            out, _ = p.communicate()
            revs = [int(x) for x in out.split()]
            committed = max([committed, *revs])
            kills += 1
        raw = json.loads((orch / "status.json").read_text())  # always parses
        # Holds the last committed state: the newest revision any writer reported
        # (or one more, committed after its print was cut short by the kill).
        assert raw["revision"] >= committed
        assert raw["revision"] <= committed + 2
    state = StatusStore(orch).read()
    assert state.stages[1].status == "in_progress"
    # Every complete event line is valid JSON (a torn tail at most).
    lines = (orch / "events.jsonl").read_text().splitlines()
    assert all(json.loads(x) for x in lines[:-1])
