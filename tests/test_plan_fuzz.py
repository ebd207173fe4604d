"""Whatever the bytes, the parser returns a valid plan or raises PlanError: nothing else."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autorun_py import graph
from autorun_py.plan import Plan, PlanError, load_plan, parse_plan, render_dot, render_mermaid

SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def check_plan(plan: Plan) -> None:
    """Invariants of every plan the parser accepts."""
    numbers = [s.number for s in plan.stages]
    assert numbers == sorted(set(numbers)) and numbers and numbers[0] >= 1
    deps = plan.deps()
    for s in plan.stages:
        assert s.depends_on == tuple(sorted(set(s.depends_on)))
        assert s.number not in s.depends_on
        assert all(d in deps for d in s.depends_on)
        assert s.name and "\n" not in s.name
        assert s.line >= 1
    assert [list(w) for w in plan.waves] == graph.compute_waves(deps)
    path = plan.critical_path
    assert path and all(b in deps and a in deps[b] for a, b in zip(path, path[1:]))
    json.loads(json.dumps(plan.to_json()))
    render_mermaid(plan)
    render_dot(plan)
    assert 1 <= len(plan.slug) <= 20


def check_error(err: PlanError) -> None:
    assert err.problems
    for p in err.problems:
        assert p.message and "\n" not in p.message
        assert p.line is None or p.line >= 1
    assert len(str(err).splitlines()) == len(err.problems)


@given(st.binary(max_size=2000))
@SETTINGS
def test_arbitrary_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "plan.md"
    path.write_bytes(data)
    try:
        plan = load_plan(path)
    except PlanError as err:
        check_error(err)
    else:
        check_plan(plan)


@given(st.text(max_size=2000))
@SETTINGS
def test_arbitrary_text(text: str) -> None:
    try:
        plan = parse_plan(text, Path("/x/plan.md"))
    except PlanError as err:
        check_error(err)
    else:
        check_plan(plan)


# Markdown made of the pieces plans are built from, shuffled and broken at random.
GOOD_NUMBER = st.integers(1, 8).map(str)
NUMBER = st.one_of(
    GOOD_NUMBER, GOOD_NUMBER, GOOD_NUMBER, st.sampled_from(["0", "-1", "3.5", "2a", "9" * 30])
)
NAME = st.text(max_size=20).map(lambda s: s.replace("\n", " "))
HEADING = st.builds(
    lambda level, num, sep, name: f"{'#' * level} Stage {num}{sep}{name}",
    st.integers(1, 6),
    NUMBER,
    st.sampled_from([": ", " — ", " - ", ". ", " ", ""]),
    NAME,
)
DEP_LINE = st.builds(
    lambda label, value: f"{label} {value}",
    st.sampled_from(
        [
            "**Dependencies**:",
            "Depends on:",
            "- Depends on:",
            "Dependencies:",
            "Depends on",
            "*Blocked by*:",
            "Dependencies —",
            "### Dependencies\n-",
        ]
    ),
    st.one_of(
        st.sampled_from(
            [
                "None",
                "nothing",
                "—",
                "n/a",
                "",
                "Stage 1",
                "Stages 1 and 2",
                "1, 2",
                "Stage 1 (Ingest)",
                "Stages 1-3",
                "whatever",
                "S1, #2",
            ]
        ),
        st.lists(NUMBER, max_size=4).map(", ".join),
        NAME,
    ),
)
BLOCK = st.one_of(
    HEADING,
    DEP_LINE,
    st.builds(lambda n: f"## Wave {n}", NUMBER),
    st.sampled_from(
        [
            "```\n## Stage 1: fake\n```",
            "```",
            "~~~",
            "<!--",
            "-->",
            "---",
            "Estimate: 3h",
            "Estimate: soon",
            "Wave: 2",
            "| Stage | Name | Depends on |\n|---|---|---|",
            "| 1 | A | — |",
            "| 2 | B | 1 |",
            "| x | y |",
            "> quote",
            "- item",
            "    indented",
            "Title\n=====",
            "Title\n-----",
        ]
    ),
    st.text(max_size=40),
)


@given(st.lists(BLOCK, max_size=25), st.sampled_from(["\n", "\n\n", "\r\n"]))
@SETTINGS
def test_arbitrary_markdown(blocks: list[str], sep: str) -> None:
    text = sep.join(blocks)
    try:
        plan = parse_plan(text, Path("/x/wave_2_plan.md"))
    except PlanError as err:
        check_error(err)
    else:
        check_plan(plan)


SAFE_NAME = st.text(
    st.characters(
        blacklist_categories=("Cs", "Cc", "Zl", "Zp"),
        blacklist_characters="\\`*_[]<>&#|!~",
    ),
    min_size=1,
    max_size=20,
).filter(lambda s: s.strip() == s and s.strip(".:-–—)") == s and not s[0].isdigit())


def dep_text(style: int, deps: list[int]) -> str:
    if not deps:
        return ["None", "nothing", "—", "n/a"][style % 4]
    if style % 3 == 0:
        return ", ".join(f"Stage {d}" for d in deps)
    if style % 3 == 1:
        return ", ".join(str(d) for d in deps)
    return (
        "Stages "
        + ", ".join(str(d) for d in deps[:-1])
        + (f" and {deps[-1]}" if len(deps) > 1 else str(deps[-1]))
    )


@st.composite
def generated_plans(draw: st.DrawFn) -> tuple[str, dict[int, list[int]], dict[int, str]]:
    numbers = draw(st.lists(st.integers(1, 40), min_size=1, max_size=8, unique=True))
    deps = {
        n: sorted(draw(st.lists(st.sampled_from(numbers[:i]), unique=True)) if i else [])
        for i, n in enumerate(numbers)
    }
    names = {n: draw(SAFE_NAME) for n in numbers}
    sections = []
    for n in draw(st.permutations(numbers)):
        level = draw(st.integers(1, 4))
        sep = draw(st.sampled_from([": ", " — ", " - ", ". "]))
        label = draw(
            st.sampled_from(["**Dependencies**:", "Depends on:", "- Depends on:", "Dependencies:"])
        )
        noise = draw(st.sampled_from(["", "```\n## Stage 99: fake\n```", "- a\n- b", "> q"]))
        style = draw(st.integers(0, 11))
        sections.append(
            f"{'#' * level} Stage {n}{sep}{names[n]}\n{label} {dep_text(style, deps[n])}\n\n"
            f"Scope of {n}.\n\n{noise}\n"
        )
    return "# Plan\n\n" + "\n".join(sections), deps, names


@given(generated_plans())
@SETTINGS
def test_generated_plans_round_trip(case: tuple[str, dict[int, list[int]], dict[int, str]]) -> None:
    text, deps, names = case
    plan = parse_plan(text, Path("/x/generated.md"))
    check_plan(plan)
    assert {n: list(d) for n, d in plan.deps().items()} == deps
    # Names come back as plain text with whitespace runs collapsed.
    assert {s.number: s.name for s in plan.stages} == {
        n: " ".join(name.split()) for n, name in names.items()
    }
    for s in plan.stages:
        assert s.scope.startswith(f"Scope of {s.number}.")
