"""``autorun simulate``: run the scheduler against simulated stage durations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from autorun_py.schedule import DEFAULT_SCHEDULE, SCHEDULES
from autorun_py.simulate import PlanSimulation

BAR_WIDTH = 40
NAME_WIDTH = 28
UNIT_SUFFIX = {"hours": "h", "seconds": "s", "stages": ""}


def _num(x: float) -> str:
    return f"{x:.2f}"


def _bar(start: float, end: float, makespan: float) -> str:
    if makespan <= 0:
        return "|" + " " * BAR_WIDTH + "|"
    a = round(start / makespan * BAR_WIDTH)
    b = max(round(end / makespan * BAR_WIDTH), a + 1 if end > start else a)
    b = min(b, BAR_WIDTH)
    a = min(a, b)
    return "|" + " " * a + "#" * (b - a) + " " * (BAR_WIDTH - b) + "|"


def _name(name: str) -> str:
    name = " ".join(name.split())
    return name if len(name) <= NAME_WIDTH else name[: NAME_WIDTH - 3] + "..."


def render_text(sim: PlanSimulation) -> str:
    res, other = sim.result, sim.other
    u = UNIT_SUFFIX[sim.unit]
    unit = f" {u}" if u else ""
    cap = "unlimited" if res.max_parallel is None else str(res.max_parallel)
    lines = [
        f"{sim.plan_path}: {len(res.runs)} stages, schedule {res.schedule}, max parallel {cap}",
        f"durations: {sim.durations_from}",
        f"priority: {sim.priority_from}",
        "",
        f"{'stage':>5}  {'name':<{NAME_WIDTH}}  {'start':>8}  {'end':>8}",
    ]
    for n, run in res.runs.items():
        lines.append(
            f"{n:>5}  {_name(sim.names.get(n, '')):<{NAME_WIDTH}}  {_num(run.start):>8}  "
            f"{_num(run.end):>8}  {_bar(run.start, run.end, res.makespan)}"
        )
    path = " -> ".join(str(n) for n in sim.critical_path) or "empty plan"
    if res.max_parallel is not None and res.lower_bound > res.critical_path:
        slots = "slot" if res.max_parallel == 1 else "slots"
        why = f"total work {_num(res.total_work)}{unit} / {res.max_parallel} {slots}"
    else:
        why = "the critical path"
    if other.makespan > 0 and res.makespan > 0:
        diff = (other.makespan / res.makespan - 1) * 100
        cmp = f" ({diff:+.1f}% against {res.schedule})"
    else:
        cmp = ""
    label = 20
    lines += [
        "",
        f"{'makespan:':<{label}}{_num(res.makespan)}{unit}",
        f"{'critical path:':<{label}}{_num(res.critical_path)}{unit} ({path})",
        f"{'lower bound:':<{label}}{_num(res.lower_bound)}{unit} ({why})",
        f"{'ratio:':<{label}}{res.ratio:.3f}",
        f"{other.schedule + ' makespan:':<{label}}{_num(other.makespan)}{unit}{cmp}",
    ]
    return "\n".join(lines)


def to_json(sim: PlanSimulation) -> dict[str, Any]:
    res, other = sim.result, sim.other
    return {
        "plan": sim.plan_path,
        "schedule": res.schedule,
        "max_parallel": res.max_parallel,
        "unit": sim.unit,
        "durations_from": sim.durations_from,
        "priority_from": sim.priority_from,
        "stages": [
            {
                "stage": n,
                "name": sim.names.get(n, ""),
                "duration": sim.durations[n],
                "start": run.start,
                "end": run.end,
            }
            for n, run in res.runs.items()
        ],
        "launch_order": res.launch_order,
        "makespan": res.makespan,
        "lower_bound": res.lower_bound,
        "critical_path": {"length": res.critical_path, "stages": sim.critical_path},
        "total_work": res.total_work,
        "ratio": res.ratio,
        "other": {
            "schedule": other.schedule,
            "makespan": other.makespan,
            "ratio": other.ratio,
            "stages": {str(n): {"start": r.start, "end": r.end} for n, r in other.runs.items()},
        },
    }


@click.command("simulate")
@click.argument("plan", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--durations",
    "durations_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help='JSON file {"<stage>": seconds} (default: the plan\'s estimates, else 1 per stage).',
)
@click.option(
    "--max-parallel",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="At most N stages at once (default: unlimited).",
)
@click.option(
    "--schedule",
    type=click.Choice(SCHEDULES),
    default=DEFAULT_SCHEDULE,
    show_default=True,
    help="dataflow: start a stage when its dependencies are merged; waves: the seed's barrier.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def simulate(
    plan: Path,
    durations_file: Path | None,
    max_parallel: int | None,
    schedule: str,
    as_json: bool,
) -> None:
    """Run the scheduler on PLAN with simulated stage durations.

    Prints each stage's start and end, the makespan, the lower bound
    max(critical path, total work / cap), and the makespan under the other
    schedule. Stages are ranked as a real run ranks them: by the longest
    remaining path, weighted by the plan's estimates.
    """
    from autorun_py.simulate import simulate_plan

    sim = simulate_plan(
        plan, durations_file=durations_file, schedule=schedule, max_parallel=max_parallel
    )
    if as_json:
        click.echo(json.dumps(to_json(sim), indent=2, ensure_ascii=False))
    else:
        click.echo(render_text(sim))
