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

SCHEDULES: tuple[str, ...] = ("dataflow", "waves")
DEFAULT_SCHEDULE = "dataflow"
STATUSES: tuple[str, ...] = ("pending", "in_progress", "completed", "failed", "blocked")
TERMINAL = frozenset({"completed", "failed", "blocked"})


@dataclass(frozen=True)
class StageView:
    """What the policy needs to know about one stage."""

    status: str  # "pending" | "in_progress" | "completed" | "failed" | "blocked"
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
        if view.status != "pending":
            continue
        ok = True
        for d in view.depends_on:
            dep = stages.get(d)
            if dep is None:
                raise AutorunError(f"stage {n} depends on stage {d}, which is not in the plan")
            if dep.status != "completed":
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
    ready.sort(key=lambda n: (-priority.get(n, 0.0), n))
    if max_parallel is None:
        return ready
    running = sum(1 for v in stages.values() if v.status == "in_progress")
    return ready[: max(0, max_parallel - running)]


def current_wave(stages: Mapping[int, StageView], waves: Sequence[Sequence[int]]) -> int:
    """1-based number of the lowest wave that still has a non-terminal stage.

    When every stage is terminal, the last wave's number (``len(waves)``).
    """
    i = _first_open_wave(stages, waves)
    return min(i + 1, len(waves))
