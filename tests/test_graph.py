"""The dependency graph: waves, cycles, critical path, descendants."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autorun_py import graph


@st.composite
def dags(draw: st.DrawFn, max_nodes: int = 9) -> dict[int, list[int]]:
    """A random DAG over random positive stage numbers (edges point to earlier nodes)."""
    numbers = draw(st.lists(st.integers(1, 60), min_size=1, max_size=max_nodes, unique=True))
    order = draw(st.permutations(numbers))
    deps: dict[int, list[int]] = {}
    for i, n in enumerate(order):
        deps[n] = draw(st.lists(st.sampled_from(order[:i]), unique=True)) if i else []
    return deps


def all_chains(deps: dict[int, list[int]]) -> list[list[int]]:
    """Every dependency chain [a, b, ...] where b depends on a (brute force)."""
    rev = graph.dependents(deps)
    chains: list[list[int]] = []

    def walk(path: list[int]) -> None:
        chains.append(path)
        for nxt in rev.get(path[-1], ()):
            walk([*path, nxt])

    for n in deps:
        walk([n])
    return chains


def test_seed_wave_example() -> None:
    deps = {1: [], 2: [1], 3: [1], 4: [1], 5: [2, 3, 4]}
    assert graph.compute_waves(deps) == [[1], [2, 3, 4], [5]]
    assert graph.wave_of(graph.compute_waves(deps)) == {1: 1, 2: 2, 3: 2, 4: 2, 5: 3}


@given(dags())
@settings(max_examples=100, deadline=None)
def test_waves_follow_the_seed_definition(deps: dict[int, list[int]]) -> None:
    waves = graph.compute_waves(deps)
    assert sorted(n for w in waves for n in w) == sorted(deps)
    assert all(w == sorted(w) and w for w in waves)
    level = graph.wave_of(waves)
    for n, ds in deps.items():
        assert level[n] == 1 + max((level[d] for d in ds), default=0)


@given(dags())
@settings(max_examples=100, deadline=None)
def test_critical_path_is_a_longest_chain(deps: dict[int, list[int]]) -> None:
    path = graph.critical_path(deps)
    chains = all_chains(deps)
    assert path in chains
    assert len(path) == max(len(c) for c in chains)
    assert not deps[path[0]]  # starts at a stage with no dependencies


@given(dags(), st.data())
@settings(max_examples=100, deadline=None)
def test_weighted_critical_path(deps: dict[int, list[int]], data: st.DataObject) -> None:
    weights = {n: data.draw(st.sampled_from([0.5, 1.0, 2.0, 8.0])) for n in deps}
    path = graph.critical_path(deps, weights)
    best = max(graph.path_length(c, weights) for c in all_chains(deps))
    assert path in all_chains(deps)
    assert graph.path_length(path, weights) == pytest.approx(best)
    rem = graph.remaining_path(deps, weights)
    assert max(rem.values()) == pytest.approx(best)


def test_weights_change_the_critical_path() -> None:
    deps = {1: [], 2: [1], 3: [2], 4: []}
    assert graph.critical_path(deps) == [1, 2, 3]
    assert graph.critical_path(deps, {1: 1, 2: 1, 3: 1, 4: 10}) == [4]


def test_critical_path_ties_are_deterministic() -> None:
    deps = {3: [], 1: [], 2: []}
    assert graph.critical_path(deps) == [1]
    assert graph.critical_path({}) == []


def test_critical_path_of_remaining_work_ignores_finished_dependencies() -> None:
    # Stage 1 is done: the remaining graph references it but does not contain it.
    remaining = {2: [1], 3: [2], 4: [1]}
    assert graph.critical_path(remaining) == [2, 3]


@given(dags())
@settings(max_examples=100, deadline=None)
def test_descendants_are_the_transitive_dependents(deps: dict[int, list[int]]) -> None:
    for n in deps:
        expected = {c[-1] for c in all_chains(deps) if c[0] == n and len(c) > 1}
        assert graph.descendants(deps, n) == expected


def test_find_cycle_examples() -> None:
    assert graph.find_cycle({1: [3], 2: [1], 3: [2]}) == [1, 3, 2, 1]
    assert graph.find_cycle({1: [1]}) == [1, 1]
    assert graph.find_cycle({1: [], 2: [1], 3: [9]}) is None  # 9 is unknown, not a cycle
    with pytest.raises(ValueError):
        graph.compute_waves({1: [2], 2: [1]})


@given(dags(), st.data())
@settings(max_examples=100, deadline=None)
def test_find_cycle(deps: dict[int, list[int]], data: st.DataObject) -> None:
    assert graph.find_cycle(deps) is None
    # Add one back edge from a node to one of its descendants: now there is a cycle.
    candidates = [(n, d) for n in deps for d in graph.descendants(deps, n)]
    if not candidates:
        n = data.draw(st.sampled_from(sorted(deps)))
        candidates = [(n, n)]
    n, d = data.draw(st.sampled_from(candidates))
    cyclic = {k: list(v) for k, v in deps.items()}
    cyclic[n].append(d)
    cycle = graph.find_cycle(cyclic)
    assert cycle is not None
    assert cycle[0] == cycle[-1] == min(cycle)
    assert len(set(cycle[:-1])) == len(cycle) - 1
    for a, b in zip(cycle, cycle[1:]):
        assert b in cyclic[a]


def test_find_cycle_on_a_dense_graph() -> None:
    n = 600
    deps = {i: list(range(1, i)) for i in range(1, n + 1)}  # ~180k edges, no cycle
    assert graph.find_cycle(deps) is None
    deps[1] = [n]
    cycle = graph.find_cycle(deps)
    assert cycle is not None and cycle[0] == 1


def test_find_cycles_lists_separate_cycles() -> None:
    assert graph.find_cycles({1: [2], 2: [1], 3: [4], 4: [3], 5: [1]}) == [[1, 2, 1], [3, 4, 3]]
    # Two cycles through one stage: both are found (each closing edge is dropped in turn).
    assert graph.find_cycles({1: [2, 3], 2: [1], 3: [1]}) == [[1, 2, 1], [1, 3, 1]]
    assert graph.find_cycles({1: [], 2: [1]}) == []
