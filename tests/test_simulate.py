from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autorun_py.errors import AutorunError
from autorun_py.graph import compute_waves, remaining_path, wave_of
from autorun_py.simulate import (
    SimResult,
    critical_path_length,
    lower_bound,
    parse_durations,
    simulate,
)
from tests.helpers import cli_json, run_cli, write_plan

Deps = dict[int, tuple[int, ...]]


def starts(res: SimResult) -> dict[int, float]:
    return {n: r.start for n, r in res.runs.items()}


def test_one_slow_stage_no_longer_holds_back_unrelated_stages() -> None:
    deps: Deps = {1: (), 2: (), 3: (2,)}
    dur = {1: 10.0, 2: 1.0, 3: 1.0}
    flow = simulate(deps, dur, schedule="dataflow", max_parallel=None)
    assert starts(flow) == {1: 0.0, 2: 0.0, 3: 1.0}
    assert flow.makespan == 10.0 == flow.lower_bound
    waves = simulate(deps, dur, schedule="waves", max_parallel=None)
    assert starts(waves) == {1: 0.0, 2: 0.0, 3: 10.0}
    assert waves.makespan == 11.0
    assert waves.ratio == pytest.approx(1.1)


def test_the_cap_is_spent_on_the_longest_remaining_path() -> None:
    # 1 -> 2 -> 3 is the long chain; 4 and 5 stand alone.
    deps: Deps = {1: (), 2: (1,), 3: (2,), 4: (), 5: ()}
    dur = dict.fromkeys(deps, 1.0)
    res = simulate(deps, dur, schedule="dataflow", max_parallel=2)
    assert starts(res) == {1: 0.0, 4: 0.0, 2: 1.0, 5: 1.0, 3: 2.0}
    assert res.launch_order == [1, 4, 2, 5, 3]
    assert res.makespan == 3.0 == res.lower_bound
    # Priority by stage number alone would put 1 and 2 first... here 5 beats 4 instead:
    res = simulate(deps, dur, schedule="dataflow", max_parallel=2, priority={5: 9.0, 1: 5.0})
    assert res.launch_order[:2] == [5, 1]


def test_stages_finishing_together_all_complete_before_the_next_decision() -> None:
    # 1 and 2 end at t=1 together; 3 and 6 (long) need both, 4 and 5 are short.
    deps: Deps = {1: (), 2: (), 3: (1, 2), 4: (), 5: (), 6: (1, 2)}
    dur = {1: 1.0, 2: 1.0, 3: 5.0, 4: 1.0, 5: 1.0, 6: 5.0}
    res = simulate(deps, dur, schedule="dataflow", max_parallel=2)
    # Completing 1 alone would give its slot to 4; completing both first gives 3 and 6 the slots.
    assert res.runs[3].start == res.runs[6].start == 1.0
    assert res.makespan == 7.0 == res.lower_bound == lower_bound(deps, dur, 2)


def test_lower_bound() -> None:
    deps: Deps = {1: (), 2: (1,), 3: ()}
    dur = {1: 2.0, 2: 3.0, 3: 4.0}
    assert critical_path_length(deps, dur) == 5.0
    assert lower_bound(deps, dur, None) == 5.0
    assert lower_bound(deps, dur, 1) == 9.0
    assert lower_bound(deps, dur, 2) == 5.0
    assert lower_bound({}, {}, 3) == 0.0
    empty = simulate({}, {}, schedule="waves", max_parallel=1)
    assert empty.makespan == 0.0 and empty.ratio == 1.0


def test_zero_durations_and_deterministic() -> None:
    deps: Deps = {1: (), 2: (1,), 3: (1,), 4: (2, 3)}
    dur = {1: 0.0, 2: 2.0, 3: 0.0, 4: 1.0}
    a = simulate(deps, dur, schedule="dataflow", max_parallel=1)
    b = simulate(deps, dur, schedule="dataflow", max_parallel=1)
    assert a == b
    assert starts(a) == {1: 0.0, 2: 0.0, 3: 2.0, 4: 2.0}
    assert a.makespan == 3.0


def test_bad_input_is_a_domain_error() -> None:
    with pytest.raises(AutorunError, match="dependency cycle: 1 -> 2 -> 1"):
        simulate({1: (2,), 2: (1,)}, {1: 1.0, 2: 1.0}, schedule="dataflow", max_parallel=None)
    with pytest.raises(AutorunError, match="no duration for stage 2"):
        simulate({1: (), 2: ()}, {1: 1.0}, schedule="dataflow", max_parallel=None)
    with pytest.raises(AutorunError, match="stage 1: duration"):
        simulate({1: ()}, {1: -1.0}, schedule="dataflow", max_parallel=None)
    with pytest.raises(AutorunError, match="stage 1 depends on stage 3"):
        simulate({1: (3,)}, {1: 1.0}, schedule="dataflow", max_parallel=None)
    with pytest.raises(AutorunError, match="unknown schedule"):
        simulate({1: ()}, {1: 1.0}, schedule="greedy", max_parallel=None)
    with pytest.raises(AutorunError, match="positive"):
        simulate({1: ()}, {1: 1.0}, schedule="dataflow", max_parallel=0)


@st.composite
def dags(draw: st.DrawFn) -> tuple[Deps, dict[int, float]]:
    n = draw(st.integers(min_value=1, max_value=14))
    deps: Deps = {}
    for i in range(1, n + 1):
        earlier = list(range(1, i))
        chosen = draw(st.lists(st.sampled_from(earlier), max_size=4)) if earlier else []
        deps[i] = tuple(sorted(set(chosen)))
    durs = draw(
        st.lists(
            st.floats(min_value=0.01, max_value=100.0, allow_nan=False), min_size=n, max_size=n
        )
    )
    return deps, {i + 1: d for i, d in enumerate(durs)}


def running_at(res: SimResult, t: float) -> int:
    return sum(1 for r in res.runs.values() if r.start <= t < r.end)


@settings(max_examples=60, deadline=None)
@given(dags(), st.sampled_from([None, 1, 2, 3]))
def test_timeline_properties(dag: tuple[Deps, dict[int, float]], cap: int | None) -> None:
    deps, dur = dag
    flow = simulate(deps, dur, schedule="dataflow", max_parallel=cap)
    waves = simulate(deps, dur, schedule="waves", max_parallel=cap)
    wave_no = wave_of(compute_waves(deps))
    for res in (flow, waves):
        assert sorted(res.runs) == sorted(deps)
        for n, r in res.runs.items():
            assert r.end == r.start + dur[n]
            assert all(r.start >= res.runs[d].end for d in deps[n])
            if cap is not None:
                assert running_at(res, r.start) <= cap
        assert res.makespan >= res.lower_bound * (1 - 1e-12)
    # The waves barrier: nothing of wave k+1 starts before all of wave k ended.
    for n, r in waves.runs.items():
        earlier = [m for m in deps if wave_no[m] < wave_no[n]]
        assert all(r.start >= waves.runs[m].end for m in earlier)
    if cap is None:
        # Unconstrained dataflow reaches the critical path exactly.
        assert flow.makespan == flow.critical_path == critical_path_length(deps, dur)
        assert flow.makespan <= waves.makespan
    else:
        # Work-conserving: a stage only waits past its readiness while every slot is busy.
        for n, r in flow.runs.items():
            ready = max((flow.runs[d].end for d in deps[n]), default=0.0)
            if r.start > ready:
                assert running_at(flow, ready) == cap
        # Hence Graham's bound for list scheduling.
        graham = flow.total_work / cap + (1 - 1 / cap) * flow.critical_path
        assert flow.makespan <= graham * (1 + 1e-9)


def test_priority_defaults_to_the_remaining_path_by_duration() -> None:
    deps: Deps = {1: (), 2: (), 3: (2,)}
    dur = {1: 5.0, 2: 1.0, 3: 1.0}
    res = simulate(deps, dur, schedule="dataflow", max_parallel=1)
    assert res.launch_order == [1, 2, 3]  # 1's remaining path (5) beats 2's (2)
    est = remaining_path(deps)  # by stage count: 2 -> 3 is longer
    res = simulate(deps, dur, schedule="dataflow", max_parallel=1, priority=est)
    assert res.launch_order == [2, 1, 3]


def test_parse_durations() -> None:
    assert parse_durations('{"1": 30, " 2 ": 1.5}', "d.json", [1, 2]) == {1: 30.0, 2: 1.5}
    bad = {
        "{": r"d\.json:1: not valid JSON",
        "\n[1, 2]": r"d\.json: expected a JSON object",
        '{"x": 1, "2": 1}': r"d\.json: 'x' is not a stage number",
        '{"1_0": 1}': r"d\.json: '1_0' is not a stage number",
        '{"1": 1, "2": 1, "3": 1}': r"d\.json: the plan has no stage 3",
        '{"1": 1, "2": 0}': r"d\.json: stage 2: duration must be a positive number",
        '{"1": 1, "2": "5"}': r"d\.json: stage 2: duration must be a positive number",
        '{"1": true, "2": 1}': r"d\.json: stage 1: duration must be a positive number",
        '{"1": 1, "01": 1}': r"d\.json: stage 1 is given twice",
        '{"2": 1}': r"d\.json: no duration for stage 1$",
        "{}": r"d\.json: no duration for stages 1, 2$",
    }
    for text, msg in bad.items():
        with pytest.raises(AutorunError, match=msg):
            parse_durations(text, "d.json", [1, 2])
    # The JSON error names its line.
    with pytest.raises(AutorunError, match=r"d\.json:3: not valid JSON"):
        parse_durations('{\n"1": 1,\n}', "d.json", [1])


# ------------------------------------------------------------------ the CLI, on real plan files

ESTIMATED_PLAN = """\
# Master plan

## Stage 1: Parser
**Dependencies**: None
**Estimate**: 4h

## Stage 2: Small fix
**Dependencies**: None
**Estimate**: 1h

## Stage 3: Docs for the fix
**Dependencies**: Stage 2
**Estimate**: 1h

## Stage 4: Release
**Dependencies**: Stage 1, Stage 3
**Estimate**: 2h
"""


def test_cli_simulate_uses_the_plan_estimates(tmp_path: Path) -> None:
    plan = tmp_path / "plan.md"
    plan.write_text(ESTIMATED_PLAN, encoding="utf-8")
    out = cli_json(["simulate", str(plan)], tmp_path)
    assert out["unit"] == "hours" and out["schedule"] == "dataflow"
    assert {s["stage"]: (s["start"], s["end"]) for s in out["stages"]} == {
        1: (0.0, 4.0),
        2: (0.0, 1.0),
        3: (1.0, 2.0),
        4: (4.0, 6.0),
    }
    assert out["makespan"] == out["lower_bound"] == 6.0
    assert out["critical_path"] == {"length": 6.0, "stages": [1, 4]}
    # Waves: 3 (wave 2) waits for 1 (wave 1) although it only needs 2.
    assert out["other"]["schedule"] == "waves"
    assert out["other"]["makespan"] == 7.0
    assert out["other"]["stages"]["3"] == {"start": 4.0, "end": 5.0}

    capped = cli_json(["simulate", str(plan), "--max-parallel", "1"], tmp_path)
    assert capped["launch_order"] == [1, 2, 3, 4]  # the longest remaining path first
    assert capped["makespan"] == capped["lower_bound"] == 8.0

    proc = run_cli(["simulate", str(plan), "--schedule", "waves"], tmp_path, check=True)
    text = proc.stdout
    assert "schedule waves, max parallel unlimited" in text
    assert "the plan's estimates (hours)" in text
    assert "makespan:           7.00 h" in text
    assert "critical path:      6.00 h (1 -> 4)" in text
    assert "ratio:              1.167" in text
    assert "dataflow makespan:  6.00 h (-14.3% against waves)" in text
    row3 = next(line for line in text.splitlines() if "Docs for the fix" in line)
    assert "4.00" in row3 and "5.00" in row3 and "#" in row3


def test_cli_simulate_durations_file_and_default(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, [(1, "A", []), (2, "B", [1]), (3, "C", [])])
    out = cli_json(["simulate", str(plan)], tmp_path)
    assert out["unit"] == "stages"
    assert out["makespan"] == 2.0 and out["other"]["makespan"] == 2.0

    durations = tmp_path / "durations.json"
    durations.write_text('{"1": 10, "2": 5, "3": 30}', encoding="utf-8")
    out = cli_json(
        ["simulate", str(plan), "--durations", str(durations), "--max-parallel", "1"], tmp_path
    )
    assert out["unit"] == "seconds"
    # Without estimates the launcher ranks by stage count: 1 -> 2 before 3.
    assert out["launch_order"] == [1, 2, 3]
    assert out["makespan"] == 45.0 and out["lower_bound"] == 45.0

    durations.write_text('{"1": 10, "2": 5, "9": 30}', encoding="utf-8")
    proc = run_cli(["simulate", str(plan), "--durations", str(durations)], tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"autorun: error: {durations}: the plan has no stage 9"
    assert "Traceback" not in proc.stderr

    proc = run_cli(["simulate", str(tmp_path / "missing.md")], tmp_path)
    assert proc.returncode == 1 and "missing.md: no such file" in proc.stderr

    proc = run_cli(["simulate", str(plan), "--max-parallel", "0"], tmp_path)
    assert proc.returncode == 2
