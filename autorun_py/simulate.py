"""A discrete-event simulation of a run, driven by the real scheduling policy.

Each stage takes a fixed, known duration. At every instant at which stages
finish, all of them are marked ``completed`` first, and only then does the
policy pick which stages to start: the ready stages come from
:class:`autorun_py.schedule.ReadyTracker` (the launcher's
:func:`~autorun_py.schedule.ready_stages`, kept up to date per status change
instead of rescanning every stage per decision) and the choice among them from
:func:`~autorun_py.schedule.pick_launches`, the very function the launcher's
:func:`~autorun_py.schedule.select_launches` ends in. Deterministic: the same
input always gives the same timeline.
"""

from __future__ import annotations

import heapq
import json
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from autorun_py.errors import AutorunError
from autorun_py.graph import compute_waves, critical_path, find_cycle, remaining_path
from autorun_py.schedule import (
    SCHEDULES,
    ReadyTracker,
    StageView,
    check_max_parallel,
    check_schedule,
    pick_launches,
)


@dataclass(frozen=True)
class StageRun:
    """When a simulated stage started and ended."""
    stage: int
    start: float
    end: float


@dataclass(frozen=True)
class SimResult:
    """One simulated run: the schedule, the cap, and each stage's times."""
    schedule: str
    max_parallel: int | None
    runs: dict[int, StageRun]  # stage -> its start and end
    launch_order: list[int]  # stages in the order they were started
    makespan: float
    critical_path: float  # longest dependency chain by duration
    total_work: float  # sum of all durations
    lower_bound: float  # max(critical_path, total_work / max_parallel)

    @property
    def ratio(self) -> float:
        """Makespan over the lower bound (1.0 is optimal; 1.0 for an empty plan)."""
        if self.lower_bound <= 0:
            return 1.0
        return self.makespan / self.lower_bound


def _check(deps: Mapping[int, Sequence[int]], durations: Mapping[int, float]) -> None:
    for n, ds in deps.items():
        for d in ds:
            if d not in deps:
                raise AutorunError(f"stage {n} depends on stage {d}, which is not in the plan")
    cycle = find_cycle(deps)
    if cycle is not None:
        raise AutorunError("dependency cycle: " + " -> ".join(str(n) for n in cycle))
    for n in deps:
        if n not in durations:
            raise AutorunError(f"no duration for stage {n}")
        t = durations[n]
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t) or t < 0:
            raise AutorunError(f"stage {n}: duration must be a finite number >= 0, not {t!r}")


def critical_path_length(
    deps: Mapping[int, Sequence[int]], durations: Mapping[int, float]
) -> float:
    """Length of the longest dependency chain, summed in dependency order.

    Summed forwards (earliest finish = own duration + latest dependency finish),
    exactly as the simulator adds up start and end times, so an unconstrained
    dataflow run equals it to the last bit.
    """
    finish: dict[int, float] = {}
    for wave in compute_waves(deps):
        for n in wave:
            start = max((finish[d] for d in deps[n]), default=0.0)
            finish[n] = start + float(durations[n])
    return max(finish.values(), default=0.0)


def lower_bound(
    deps: Mapping[int, Sequence[int]],
    durations: Mapping[int, float],
    max_parallel: int | None,
) -> float:
    """No schedule beats ``max(critical path, total work / cap)``; no cap: the critical path."""
    cp = critical_path_length(deps, durations)
    if max_parallel is None:
        return cp
    total = math.fsum(float(durations[n]) for n in deps)
    return max(cp, total / max_parallel)


def simulate(
    deps: Mapping[int, Sequence[int]],
    durations: Mapping[int, float],
    *,
    schedule: str,
    max_parallel: int | None,
    waves: Sequence[Sequence[int]] | None = None,
    priority: Mapping[int, float] | None = None,
) -> SimResult:
    """Run the scheduler against known stage durations.

    ``waves`` defaults to the plan's topological waves; ``priority`` defaults
    to the remaining path by the given durations (pass the remaining path by
    the plan's estimates to see what the launcher, which only knows the
    estimates, would do when the real durations differ).
    """
    check_schedule(schedule)
    check_max_parallel(max_parallel)
    _check(deps, durations)
    dep_t = {n: tuple(sorted(set(ds))) for n, ds in deps.items()}
    wave_list = [list(w) for w in (waves if waves is not None else compute_waves(dep_t))]
    prio = dict(priority) if priority is not None else remaining_path(dep_t, durations)

    tracker = ReadyTracker(
        {n: StageView("pending", dep_t[n]) for n in dep_t}, schedule=schedule, waves=wave_list
    )
    runs: dict[int, StageRun] = {}
    order: list[int] = []
    running: list[tuple[float, int]] = []  # heap of (end, stage)
    now = 0.0
    done = 0
    while done < len(dep_t):
        for n in pick_launches(
            tracker.ready(), priority=prio, max_parallel=max_parallel, running=len(running)
        ):
            end = now + float(durations[n])
            tracker.set_status(n, "in_progress")
            runs[n] = StageRun(n, now, end)
            order.append(n)
            heapq.heappush(running, (end, n))
        if not running:
            stuck = sorted(n for n in dep_t if n not in runs)
            raise AutorunError(
                "the schedule never starts stages " + ", ".join(str(n) for n in stuck)
            )
        # Every stage that ends at this instant completes before the next decision.
        now = running[0][0]
        while running and running[0][0] == now:
            _, n = heapq.heappop(running)
            tracker.set_status(n, "completed")
            done += 1

    cp = critical_path_length(dep_t, durations)
    total = math.fsum(float(durations[n]) for n in dep_t)
    bound = cp if max_parallel is None else max(cp, total / max_parallel)
    makespan = max((r.end for r in runs.values()), default=0.0)
    return SimResult(
        schedule=schedule,
        max_parallel=max_parallel,
        runs=dict(sorted(runs.items())),
        launch_order=order,
        makespan=makespan,
        critical_path=cp,
        total_work=total,
        lower_bound=bound,
    )


def parse_durations(text: str, path: str, stages: Collection[int]) -> dict[int, float]:
    """``{"<stage>": seconds}`` for every stage; errors name ``path`` (and the line)."""
    try:
        raw: object = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AutorunError(f"not valid JSON: {exc.msg}", path=path, line=exc.lineno) from None
    if not isinstance(raw, dict):
        raise AutorunError('expected a JSON object {"<stage>": seconds}', path=path)
    known = set(stages)
    out: dict[int, float] = {}
    for key, value in raw.items():
        if not re.fullmatch(r"\s*[0-9]+\s*", key):
            raise AutorunError(f"{key!r} is not a stage number", path=path)
        n = int(key)
        if n not in known:
            raise AutorunError(f"the plan has no stage {n}", path=path)
        if n in out:
            raise AutorunError(f"stage {n} is given twice", path=path)
        if (
            not isinstance(value, (int, float))
            or isinstance(value, bool)
            or not math.isfinite(value)
            or value <= 0
        ):
            raise AutorunError(
                f"stage {n}: duration must be a positive number of seconds, not {value!r}",
                path=path,
            )
        out[n] = float(value)
    missing = sorted(known - set(out))
    if missing:
        raise AutorunError(
            "no duration for stage"
            + ("s " if len(missing) > 1 else " ")
            + ", ".join(str(n) for n in missing),
            path=path,
        )
    return out


@dataclass(frozen=True)
class PlanSimulation:
    """A simulation of a plan: its stages, the durations used, and each schedule's result."""
    plan_path: str
    names: dict[int, str]
    unit: str  # "seconds" (a --durations file) | "hours" (the plan's estimates) | "stages"
    durations: dict[int, float]
    durations_from: str  # a sentence for people
    priority_from: str
    critical_path: list[int]  # the longest chain by the simulated durations
    result: SimResult  # under the schedule asked for
    other: SimResult  # the same, under the other schedule


def simulate_plan(
    plan_path: Path,
    *,
    durations_file: Path | None = None,
    schedule: str = "dataflow",
    max_parallel: int | None = None,
) -> PlanSimulation:
    """Load a master plan and simulate it under ``schedule`` and under the other one.

    Durations come from ``durations_file`` (seconds), else from the plan's
    estimates (hours; stages without one count the median estimate), else 1
    per stage.
    Stages are ranked as the launcher ranks them: by the remaining path
    weighted by the plan's estimates, whatever the simulated durations are.
    """
    from autorun_py.plan import load_plan

    check_schedule(schedule)
    plan = load_plan(plan_path)
    deps = plan.deps()
    weights = plan.weights()
    estimated = [s.number for s in plan.stages if s.estimate_hours is not None]
    if durations_file is not None:
        try:
            text = durations_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise AutorunError(f"cannot read: {exc.strerror}", path=durations_file) from None
        except UnicodeDecodeError:
            raise AutorunError("not UTF-8 text", path=durations_file) from None
        durations = parse_durations(text, str(durations_file), deps)
        unit, source = "seconds", f"{durations_file} (seconds)"
    elif estimated:
        durations = dict(weights)
        unit, source = "hours", "the plan's estimates (hours)"
        if len(estimated) < len(deps):
            source += "; stages without one count the median estimate"
    else:
        durations = dict.fromkeys(deps, 1.0)
        unit, source = "stages", "1 per stage (the plan gives no estimates)"
    if estimated:
        prio_from = "longest remaining path by the plan's estimates"
    else:
        prio_from = "longest remaining path by stage count"
    prio = remaining_path(deps, weights)
    others = [s for s in SCHEDULES if s != schedule]
    res = simulate(
        deps,
        durations,
        schedule=schedule,
        max_parallel=max_parallel,
        waves=plan.waves,
        priority=prio,
    )
    other = simulate(
        deps,
        durations,
        schedule=others[0],
        max_parallel=max_parallel,
        waves=plan.waves,
        priority=prio,
    )
    return PlanSimulation(
        plan_path=str(plan_path),
        names={s.number: s.name for s in plan.stages},
        unit=unit,
        durations=dict(sorted(durations.items())),
        durations_from=source,
        priority_from=prio_from,
        critical_path=critical_path(deps, durations),
        result=res,
        other=other,
    )
