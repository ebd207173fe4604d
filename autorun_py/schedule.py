"""The scheduling policy: which pending stages to start now.

Pure functions, no I/O. The real launcher calls :func:`select_launches` while
holding the status lock; the simulator (:mod:`autorun_py.simulate`) calls the
very same function, so what ``autorun simulate`` shows is what a run does.

Two schedules:

``dataflow`` (default)
    A stage is ready the moment every stage it depends on is ``completed``.
``waves``
    The seed's strict barrier: additionally, every stage of every earlier wave
    must be terminal (``completed``, ``failed`` or ``blocked``).

When more stages are ready than there are free slots (``max_parallel`` minus
the stages ``in_progress``), the ones with the longest remaining path
(``autorun_py.graph.remaining_path``) start first; ties go to the smaller stage
number, so every decision is deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from autorun_py.errors import AutorunError
from autorun_py.statuses import COMPLETED, IN_PROGRESS, PENDING, STATUSES, TERMINAL

__all__ = [
    "DEFAULT_SCHEDULE",
    "SCHEDULES",
    "STATUSES",
    "TERMINAL",
    "ReadyTracker",
    "StageView",
    "check_max_parallel",
    "check_schedule",
    "current_wave",
    "pick_launches",
    "ready_stages",
    "select_launches",
]

SCHEDULES: tuple[str, ...] = ("dataflow", "waves")
DEFAULT_SCHEDULE = "dataflow"


@dataclass(frozen=True)
class StageView:
    """What the policy needs to know about one stage."""

    status: str  # "pending" | "in_progress" | "completed" | "failed" | "blocked" | "cancelled"
    depends_on: tuple[int, ...]


def check_schedule(schedule: str) -> str:
    if schedule not in SCHEDULES:
        raise AutorunError(
            f"unknown schedule {schedule!r} (expected one of: {', '.join(SCHEDULES)})"
        )
    return schedule


def check_max_parallel(max_parallel: int | None) -> int | None:
    if max_parallel is not None and (isinstance(max_parallel, bool) or max_parallel < 1):
        raise AutorunError(f"max parallel must be a positive number of stages, not {max_parallel}")
    return max_parallel


def _first_open_wave(stages: Mapping[int, StageView], waves: Sequence[Sequence[int]]) -> int:
    """0-based index of the lowest wave with a non-terminal stage; len(waves) if none."""
    for i, wave in enumerate(waves):
        for n in wave:
            view = stages.get(n)
            if view is None:
                raise AutorunError(f"wave {i + 1} lists stage {n}, which is not in the plan")
            if view.status not in TERMINAL:
                return i
    return len(waves)


def ready_stages(
    stages: Mapping[int, StageView], *, schedule: str, waves: Sequence[Sequence[int]]
) -> list[int]:
    """Pending stages that may start now, in stage-number order.

    A stage is ready when it is ``pending`` and all its dependencies are
    ``completed``; under ``waves`` also every stage of every earlier wave must
    be terminal.
    """
    check_schedule(schedule)
    wave_index: dict[int, int] = {}
    open_wave = 0
    if schedule == "waves":
        wave_index = {n: i for i, wave in enumerate(waves) for n in wave}
        open_wave = _first_open_wave(stages, waves)
    ready: list[int] = []
    for n in sorted(stages):
        view = stages[n]
        if view.status != PENDING:
            continue
        ok = True
        for d in view.depends_on:
            dep = stages.get(d)
            if dep is None:
                raise AutorunError(f"stage {n} depends on stage {d}, which is not in the plan")
            if dep.status != COMPLETED:
                ok = False
                break
        if not ok:
            continue
        if schedule == "waves":
            if n not in wave_index:
                raise AutorunError(f"stage {n} is in no wave")
            # Every earlier wave is terminal <=> this stage's wave is the lowest open one.
            if wave_index[n] > open_wave:
                continue
        ready.append(n)
    return ready


def select_launches(
    stages: Mapping[int, StageView],
    *,
    schedule: str,
    waves: Sequence[Sequence[int]],
    priority: Mapping[int, float],
    max_parallel: int | None,
) -> list[int]:
    """The ready stages to start now, best first.

    Free slots are ``max_parallel`` minus the stages ``in_progress`` (unlimited
    when ``max_parallel`` is None). Ready stages are ordered by ``priority``
    (higher first; a stage missing from it counts as 0), then by stage number.
    """
    check_max_parallel(max_parallel)
    ready = ready_stages(stages, schedule=schedule, waves=waves)
    running = sum(1 for v in stages.values() if v.status == IN_PROGRESS)
    return pick_launches(ready, priority=priority, max_parallel=max_parallel, running=running)


def pick_launches(
    ready: Sequence[int],
    *,
    priority: Mapping[int, float],
    max_parallel: int | None,
    running: int,
) -> list[int]:
    """Of the ``ready`` stages, the ones to start with ``running`` already going."""
    order = sorted(ready, key=lambda n: (-priority.get(n, 0.0), n))
    if max_parallel is None:
        return order
    return order[: max(0, max_parallel - running)]


class ReadyTracker:
    """:func:`ready_stages`, kept up to date as stages change status.

    For a caller that makes many decisions on one run (the simulator): each
    status change costs the stage's dependants, and asking costs the ready
    stages, instead of a scan of every stage per decision. It answers exactly
    what :func:`ready_stages` answers for the same statuses (a property test
    keeps the two equal).
    """

    def __init__(
        self, stages: Mapping[int, StageView], *, schedule: str, waves: Sequence[Sequence[int]]
    ) -> None:
        check_schedule(schedule)
        self._schedule = schedule
        self._status = {n: v.status for n, v in stages.items()}
        self._dependants: dict[int, list[int]] = {n: [] for n in stages}
        self._unmet: dict[int, int] = {}
        for n in sorted(stages):
            for d in stages[n].depends_on:
                if d not in stages:
                    raise AutorunError(f"stage {n} depends on stage {d}, which is not in the plan")
                self._dependants[d].append(n)
            self._unmet[n] = sum(1 for d in stages[n].depends_on if stages[d].status != COMPLETED)
        self._ready = {
            n for n, st in self._status.items() if st == PENDING and not self._unmet[n]
        }
        self._wave_of: dict[int, int] = {}
        self._open_in_wave: list[int] = []
        self._open_wave = 0
        if schedule == "waves":
            for i, wave in enumerate(waves):
                for n in wave:
                    if n not in stages:
                        raise AutorunError(
                            f"wave {i + 1} lists stage {n}, which is not in the plan"
                        )
                    self._wave_of[n] = i
                self._open_in_wave.append(sum(1 for n in wave if self._status[n] not in TERMINAL))
            for n in stages:
                if n not in self._wave_of:
                    raise AutorunError(f"stage {n} is in no wave")
            self._advance_wave()

    def _advance_wave(self) -> None:
        while self._open_wave < len(self._open_in_wave) and not self._open_in_wave[self._open_wave]:
            self._open_wave += 1

    def set_status(self, number: int, status: str) -> None:
        old = self._status[number]
        if old == status:
            return
        self._status[number] = status
        if status == PENDING and not self._unmet[number]:
            self._ready.add(number)
        else:
            self._ready.discard(number)
        if (old == COMPLETED) != (status == COMPLETED):
            step = -1 if status == COMPLETED else 1
            for m in self._dependants[number]:
                self._unmet[m] += step
                if self._unmet[m] == 0 and self._status[m] == PENDING:
                    self._ready.add(m)
                else:
                    self._ready.discard(m)
        if self._schedule == "waves" and (old in TERMINAL) != (status in TERMINAL):
            i = self._wave_of[number]
            self._open_in_wave[i] += -1 if status in TERMINAL else 1
            if status not in TERMINAL and i < self._open_wave:
                self._open_wave = i
            self._advance_wave()

    def ready(self) -> list[int]:
        """Pending stages that may start now, in stage-number order."""
        if self._schedule == "waves":
            return sorted(n for n in self._ready if self._wave_of[n] <= self._open_wave)
        return sorted(self._ready)


def current_wave(stages: Mapping[int, StageView], waves: Sequence[Sequence[int]]) -> int:
    """1-based number of the lowest wave that still has a non-terminal stage.

    When every stage is terminal, the last wave's number (``len(waves)``).
    """
    i = _first_open_wave(stages, waves)
    return min(i + 1, len(waves))
