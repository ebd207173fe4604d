"""Concurrency drills on the status store, shared by the test suite
(``tests/test_state_concurrency.py``) and ``benchmarks/state_contention.py``:
many writers doing ``autorun phase``-level updates while a reader parses
``status.json`` in a loop. A drill, not part of the engine: it lives here, not
in ``autorun_py``."""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autorun_py.state import IN_PROGRESS, StatusStore, transition, update_phase


def prepare(orch_dir: Path, stages: list[int]) -> None:
    with StatusStore(orch_dir).transaction() as txn:
        for n in stages:
            if txn.state.stages[n].status != IN_PROGRESS:
                transition(txn, n, IN_PROGRESS)


def _writer(orch_dir: str, stage: int, updates: int, start: Any) -> None:
    start.wait()
    store = StatusStore(Path(orch_dir), lock_timeout=300)
    for i in range(1, updates + 1):
        with store.transaction() as txn:
            update_phase(txn, stage, "implement", "started", current=i, total=updates)


def _reader(orch_dir: str, stop: Any, out: Any) -> None:
    path = Path(orch_dir) / "status.json"
    reads = bad = 0
    while not stop.is_set():
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            bad += 1
        reads += 1
    out.put((reads, bad))


@dataclass
class DrillResult:
    writers: int
    updates_each: int
    seconds: float
    reads: int
    bad_reads: int
    revision_delta: int
    phase_events: int
    bad_event_lines: int
    final_current: dict[int, int]

    @property
    def updates_per_second(self) -> float:
        return self.writers * self.updates_each / self.seconds


def drill(orch_dir: Path, stages: list[int], updates_each: int) -> DrillResult:
    """One writer process per stage, ``updates_each`` locked updates each, one reader."""
    prepare(orch_dir, stages)
    store = StatusStore(orch_dir)
    rev0 = store.read().revision
    ev_path = orch_dir / "events.jsonl"
    ev_before = sum(1 for line in ev_path.read_text().splitlines() if '"phase_status"' in line)
    ctx = mp.get_context("spawn")
    start, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    reader = ctx.Process(target=_reader, args=(str(orch_dir), stop, out))
    writers = [
        ctx.Process(target=_writer, args=(str(orch_dir), n, updates_each, start)) for n in stages
    ]
    reader.start()
    for w in writers:
        w.start()
    time.sleep(0.5)  # let every writer import and reach the barrier
    t0 = time.perf_counter()
    start.set()
    for w in writers:
        w.join()
    seconds = time.perf_counter() - t0
    stop.set()
    reads, bad = out.get(timeout=60)
    reader.join()
    state = store.read()
    phase_events = bad_lines = 0
    for line in ev_path.read_text().splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            bad_lines += 1
            continue
        if ev.get("type") == "phase_status":
            phase_events += 1
    return DrillResult(
        writers=len(stages),
        updates_each=updates_each,
        seconds=seconds,
        reads=reads,
        bad_reads=bad,
        revision_delta=state.revision - rev0,
        phase_events=phase_events - ev_before,
        bad_event_lines=bad_lines,
        final_current={
            n: int(state.stages[n].phases["implement"].current_phase or 0) for n in stages
        },
    )
