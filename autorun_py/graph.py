"""The stage dependency graph: waves, cycles, critical path, descendants.

Pure functions over ``{stage: dependencies}`` mappings, shared by the plan
parser, the scheduler and the simulator.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Optional

Deps = Mapping[int, Iterable[int]]


def find_cycle(deps: Deps) -> Optional[list[int]]:
    """A dependency cycle as ``[a, b, ..., a]`` (a depends on b ...), or None.

    The cycle is reported in dependency order starting from its smallest stage,
    so the same graph always gives the same message.
    """
    cycles = find_cycles(deps, limit=1)
    return cycles[0] if cycles else None


def find_cycles(deps: Deps, limit: int = 50) -> list[list[int]]:
    """Up to ``limit`` dependency cycles, each as ``[a, b, ..., a]`` (a depends on b ...).

    :mod:`graphlib` finds a cycle; its closing edge is dropped and the search
    repeats, so every edge that takes part in some cycle shows up in one of the
    answers (two separate cycles are two answers; fixing every one reported
    leaves an acyclic graph). Unknown dependencies are ignored.
    """
    # Only edges between known stages, in a fixed order (graphlib follows it).
    graph = {n: sorted(c for c in set(d) if c in deps) for n, d in sorted(deps.items())}
    found: list[list[int]] = []
    while len(found) < limit:
        try:
            graphlib.TopologicalSorter(graph).prepare()
        except graphlib.CycleError as exc:
            # graphlib lists each node as a predecessor (dependency) of the next.
            ring = list(reversed(exc.args[1]))[:-1]
            k = ring.index(min(ring))
            ring = ring[k:] + ring[:k]
            found.append([*ring, ring[0]])
            a, b = ring[-1], ring[0]  # the closing edge: a depends on b
            graph[a] = [c for c in graph[a] if c != b]
            continue
        break
    return found


def compute_waves(deps: Deps) -> list[list[int]]:
    """Topological waves as the seed defines them.

    Wave 1 holds the stages with no dependencies; wave N the stages whose
    dependencies all lie in earlier waves (so a stage's wave is one more than
    the latest wave among its dependencies). Raises ValueError on a cycle.
    """
    graph = {n: set(d) for n, d in deps.items()}
    sorter: graphlib.TopologicalSorter[int] = graphlib.TopologicalSorter(graph)
    try:
        order = list(sorter.static_order())
    except graphlib.CycleError as exc:
        raise ValueError("dependency cycle") from exc
    level: dict[int, int] = {}
    for node in order:
        if node not in graph:
            continue
        level[node] = 1 + max((level[d] for d in graph[node] if d in level), default=0)
    waves: dict[int, list[int]] = {}
    for node, lvl in level.items():
        waves.setdefault(lvl, []).append(node)
    return [sorted(waves[k]) for k in sorted(waves)]


def wave_of(waves: Sequence[Sequence[int]]) -> dict[int, int]:
    return {n: i + 1 for i, wave in enumerate(waves) for n in wave}


def dependents(deps: Deps) -> dict[int, set[int]]:
    """Reverse edges: stage -> the stages that depend on it directly."""
    out: dict[int, set[int]] = {n: set() for n in deps}
    for n, ds in deps.items():
        for d in ds:
            out.setdefault(d, set()).add(n)
    return out


def descendants(deps: Deps, stage: int) -> set[int]:
    """Every stage that depends on ``stage``, directly or transitively."""
    rev = dependents(deps)
    seen: set[int] = set()
    todo = list(rev.get(stage, ()))
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(rev.get(n, ()))
    return seen


def remaining_path(deps: Deps, weights: Optional[Mapping[int, float]] = None) -> dict[int, float]:
    """For each stage, the weight of the longest chain from it to the end of the plan.

    Includes the stage's own weight (1 per stage when no weights are given).
    This is the scheduler's priority: start the stages on the longest remaining path first.
    """
    w = {n: (weights or {}).get(n, 1.0) for n in deps}
    rev = dependents(deps)
    out: dict[int, float] = {}
    # Reverse topological order: dependents before the stages they depend on.
    for wave in reversed(compute_waves(deps)):
        for n in wave:
            out[n] = w[n] + max((out[c] for c in rev.get(n, ()) if c in out), default=0.0)
    return out


def critical_path(deps: Deps, weights: Optional[Mapping[int, float]] = None) -> list[int]:
    """The longest dependency chain, by stage count or by the given weights.

    Ties break towards the smaller stage number, so the answer is deterministic.
    """
    if not deps:
        return []
    rem = remaining_path(deps, weights)
    rev = dependents(deps)
    # A root has no dependency inside the graph (dependencies outside it, e.g.
    # stages already merged when the graph is the remaining work, are satisfied).
    roots = [n for n, d in deps.items() if not any(c in deps for c in d)]
    node = min(roots, key=lambda n: (-rem[n], n))
    path = [node]
    while True:
        nxt = [c for c in rev.get(node, ()) if c in rem]
        if not nxt:
            return path
        node = min(nxt, key=lambda n: (-rem[n], n))
        path.append(node)


def path_length(path: Sequence[int], weights: Optional[Mapping[int, float]] = None) -> float:
    return sum((weights or {}).get(n, 1.0) for n in path)
