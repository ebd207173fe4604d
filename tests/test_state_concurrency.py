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

from autorun_py.plan import load_plan
from autorun_py.rundir import create_orchestration
from autorun_py.state import StatusStore
from benchmarks.contention import drill
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
    from benchmarks.contention import prepare

    prepare(orch, [1, 2])
    rng = random.Random(1234)
    kills = 0
    committed = 0  # the newest revision any writer has reported so far
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
        first = procs[0].stdout.readline() if procs[0].stdout else ""  # writing has begun
        time.sleep(rng.random() * 0.02)  # then a random moment, mid-write or not
        for p in procs:
            p.send_signal(signal.SIGKILL)
        outs = [first] + [""] * (len(procs) - 1)
        for i, p in enumerate(procs):
            out, _ = p.communicate()
            outs[i] += out
            kills += 1
        for out in outs:
            committed = max([committed, *(int(x) for x in out.split())])
        raw = json.loads((orch / "status.json").read_text())  # always parses
        # It holds the last committed state: at least the newest reported revision,
        # and at most one unreported commit per writer beyond it.
        assert committed <= raw["revision"] <= committed + len(procs)
        committed = raw["revision"]
    store = StatusStore(orch)
    state = store.read()
    assert state.stages[1].status == "in_progress"
    # Temp files of writers killed mid-write are swept (resume does this).
    leftovers = len(list(orch.glob(".status.json.*.tmp")))
    assert store.clean_stale_temps() == leftovers
    assert not list(orch.glob(".status.json.*.tmp"))
    # Every complete event line is valid JSON (a torn tail at most).
    lines = (orch / "events.jsonl").read_text().splitlines()
    assert all(json.loads(x) for x in lines[:-1])
