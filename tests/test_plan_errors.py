"""Invalid plans: every error names the file and the line a person must fix."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from autorun_py.errors import AutorunError, ExitCode
from autorun_py.plan import PlanError, PlanProblem, load_plan


def problems(tmp_path: Path, text: str, name: str = "plan.md") -> list[PlanProblem]:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(PlanError) as info:
        load_plan(path)
    err = info.value
    assert err.exit_code == ExitCode.FAILURE
    assert err.path == str(path)
    # str(err): one "path:line: message" line per problem, no traceback material.
    lines = str(err).splitlines()
    assert len(lines) == len(err.problems)
    for line, problem in zip(lines, err.problems):
        prefix = f"{path}:{problem.line}: " if problem.line else f"{path}: "
        assert line == prefix + problem.message
    return err.problems


def test_no_stages(tmp_path: Path) -> None:
    text = "# A plan\n\nJust prose, a [link](x) and\n\n```\n## Stage 1: x\n```\n"
    (p,) = problems(tmp_path, text)
    assert p.line is None
    assert p.message.startswith("no stages found")


def test_empty_file(tmp_path: Path) -> None:
    (p,) = problems(tmp_path, "")
    assert p.message.startswith("no stages found")


def test_duplicate_stage_numbers(tmp_path: Path) -> None:
    (p,) = problems(
        tmp_path,
        """\
        ## Stage 1: A
        Depends on: none

        ## Stage 2: B
        Depends on: Stage 1

        ## Stage 1: A again
        Depends on: none
        """,
    )
    assert p.line == 7
    assert p.message == "duplicate stage number 1 (first on line 1)"


def test_duplicate_rows_in_a_table(tmp_path: Path) -> None:
    (p,) = problems(
        tmp_path,
        """\
        | Stage | Name | Depends on |
        |---|---|---|
        | 1 | A | — |
        | 1 | B | — |
        """,
    )
    assert (p.line, p.message) == (4, "duplicate stage number 1 (first listed on line 3)")


def test_self_dependency(tmp_path: Path) -> None:
    (p,) = problems(
        tmp_path,
        """\
        ## Stage 1: A
        Depends on: none

        ## Stage 2: B
        Depends on: Stage 1, Stage 2
        """,
    )
    assert (p.line, p.message) == (5, "stage 2 depends on itself")


def test_missing_dependency(tmp_path: Path) -> None:
    (p,) = problems(
        tmp_path,
        """\
        ## Stage 1: A
        Depends on: none

        ## Stage 2: B
        Depends on: Stage 1, Stage 7
        """,
    )
    assert (p.line, p.message) == (5, "stage 2 depends on stage 7, which does not exist")


def test_several_missing_dependencies_in_one_message(tmp_path: Path) -> None:
    (p,) = problems(tmp_path, "## Stage 1: A\nDependencies: 5, 6\n")
    assert p.message == "stage 1 depends on stages 5, 6, which do not exist"


def test_cycle_is_printed(tmp_path: Path) -> None:
    (p,) = problems(
        tmp_path,
        """\
        ## Stage 1: A
        Depends on: Stage 3

        ## Stage 2: B
        Depends on: Stage 1

        ## Stage 3: C
        Depends on: Stage 2

        ## Stage 4: D
        Depends on: none
        """,
    )
    assert p.line == 2  # the dependency line, not the heading
    assert p.message == (
        "dependency cycle: 1 -> 3 -> 2 -> 1 (each stage depends on the next: "
        "1 -> 3 on line 2, 3 -> 2 on line 8, 2 -> 1 on line 5)"
    )


def test_cycle_in_a_summary_table(tmp_path: Path) -> None:
    (p,) = problems(
        tmp_path,
        """\
        | Stage | Name | Depends on |
        |---|---|---|
        | 1 | A | 2 |
        | 2 | B | 1 |
        """,
    )
    assert p.line == 3
    assert "1 -> 2 -> 1" in p.message


def test_all_problems_are_reported_in_line_order(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        ## Stage 1: A
        Depends on: Stage 9

        ## Stage 2: B
        Depends on: Stage 2

        ## Stage 1: C
        Depends on: none
        """,
    )
    assert [p.line for p in found] == [2, 5, 7]


@pytest.mark.parametrize(
    "heading", ["## Stage 0: Zero", "## Stage -1: Negative", "## Stage 3.5: Half", "## Stage 2a: X"]
)
def test_stage_numbers_must_be_positive_integers(tmp_path: Path, heading: str) -> None:
    found = problems(tmp_path, f"## Stage 1: A\nDepends on: none\n\n{heading}\nDepends on: none\n")
    assert [p.line for p in found] == [4]
    assert "positive integers" in found[0].message


def test_huge_stage_number(tmp_path: Path) -> None:
    (p,) = problems(tmp_path, "## Stage " + "9" * 5000 + ": big\nDepends on: none\n")
    assert p.line == 1
    assert "too large" in p.message


def test_unreadable_dependencies(tmp_path: Path) -> None:
    (p,) = problems(
        tmp_path,
        """\
        ## Stage 1: A
        Depends on: none

        ## Stage 2: B
        **Depends on**: whatever the API team finishes first
        """,
    )
    assert p.line == 5
    assert p.message.startswith("stage 2: cannot read 'whatever the API team finishes first'")
    assert "expected stage numbers" in p.message


def test_unreadable_dependency_cell(tmp_path: Path) -> None:
    (p,) = problems(
        tmp_path,
        """\
        | Stage | Depends on |
        |---|---|
        | 1 | — |
        | 2 | the first one |
        """,
    )
    assert p.line == 4


def test_absurd_dependency_range(tmp_path: Path) -> None:
    (p,) = problems(tmp_path, "## Stage 1: A\nDepends on: Stages 1-999999999\n")
    assert p.line == 2
    assert "too large" in p.message


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.md"
    path.write_bytes("## Stage 1: A\nDepends on: none\n\nCaf\xe9\n".encode("latin-1"))
    with pytest.raises(PlanError) as info:
        load_plan(path)
    (p,) = info.value.problems
    assert p.line == 4
    assert p.message == "not UTF-8 text (byte 0xe9 at column 4)"
    assert str(info.value) == f"{path}:4: not UTF-8 text (byte 0xe9 at column 4)"


def test_utf16_and_binary(tmp_path: Path) -> None:
    utf16 = tmp_path / "utf16.md"
    utf16.write_bytes("## Stage 1: A\n".encode("utf-16"))
    with pytest.raises(PlanError, match="UTF-16"):
        load_plan(utf16)
    binary = tmp_path / "binary.md"
    binary.write_bytes(b"## Stage 1: A\nDepends on: none\n\x00\x01\x02")
    with pytest.raises(PlanError) as info:
        load_plan(binary)
    assert info.value.problems[0].line == 3
    assert "NUL" in info.value.problems[0].message


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(AutorunError) as info:
        load_plan(tmp_path / "nope.md")
    assert not isinstance(info.value, PlanError)
    assert str(info.value) == f"{tmp_path / 'nope.md'}: no such file"
    with pytest.raises(AutorunError, match="is a directory"):
        load_plan(tmp_path)


def test_unknown_stage_lookup(tmp_path: Path) -> None:
    path = tmp_path / "ok.md"
    path.write_text("## Stage 1: A\nDepends on: none\n")
    plan = load_plan(path)
    with pytest.raises(AutorunError, match="no stage 5"):
        plan.stage(5)


TYPO_PLAN = """\
    ## Stage 1: Core API
    Depends on: none

    ## Stage 2: Ingest
    Depends on: Stage 1

    ## Stage 3: Report
    **Dependencies**: Stage 1

    ## Stage 4: Output
    **Dependencies**: Stage 3, Stgae 2

    ## Stage 5: Five
    **Dependencies**: stage four

    ## Stage 6: Six
    **Dependencies**: the API stage
    """


def test_every_part_of_a_dependency_line_must_be_understood(tmp_path: Path) -> None:
    found = problems(tmp_path, TYPO_PLAN)
    assert [p.line for p in found] == [11, 14, 17]
    typo, word, prose = (p.message for p in found)
    assert typo.startswith("stage 4: cannot read 'Stgae 2' in the dependencies 'Stage 3, Stgae 2'")
    assert "did you mean 'Stage 2'?" in typo
    assert "did you mean 'Stage 4'?" in word and "'stage four'" in word
    assert "did you mean 'Stage 1', 'Core API'?" in prose
    for message in (typo, word, prose):
        assert "expected stage numbers ('Stage 1, Stage 2'" in message
        assert "a stage's exact name, or 'None'" in message


@pytest.mark.parametrize(
    "value",
    [
        "Stage 1 being merged",
        "Stage 1, tomorrow",
        "1 and the docs",
        "Stage 1 — must be done first",
    ],
)
def test_leftover_words_are_an_error_not_dropped(tmp_path: Path, value: str) -> None:
    (p,) = problems(
        tmp_path, f"## Stage 1: A\nDepends on: none\n\n## Stage 2: B\nDepends on: {value}\n"
    )
    assert p.line == 5 and "cannot read" in p.message, p.message


def test_a_stage_named_exactly_is_resolved_and_said_so(tmp_path: Path) -> None:
    path = tmp_path / "plan.md"
    path.write_text(
        "## Stage 1: Core API\nDepends on: none\n\n## Stage 2: Ingest\nDepends on: core api\n\n"
        "## Stage 3: Build and deploy\nDepends on: none\n\n"
        "## Stage 4: Ship\nDepends on: Build and deploy, Stage 2 (the feed)\n"
    )
    plan = load_plan(path)
    assert plan.stage(2).depends_on == (1,)
    assert plan.stage(4).depends_on == (2, 3)
    assert "line 5: stage 2: dependency 'core api' read as stage 1 (its name)" in "\n".join(
        plan.warnings
    )
    assert any("'Build and deploy' read as stage 3" in w for w in plan.warnings)


def test_every_cycle_and_every_missing_stage_is_listed(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        ## Stage 1: A
        Depends on: Stage 2, Stage 7

        ## Stage 2: B
        Depends on: Stage 1

        ## Stage 3: C
        Depends on: Stage 4, Stage 8

        ## Stage 4: D
        Depends on: Stage 3

        ## Stage 5: E
        Depends on: Stgae 1
        """,
    )
    assert [(p.line, p.message.split(" (")[0]) for p in found] == [
        (2, "stage 1 depends on stage 7, which does not exist"),
        (2, "dependency cycle: 1 -> 2 -> 1"),
        (8, "stage 3 depends on stage 8, which does not exist"),
        (8, "dependency cycle: 3 -> 4 -> 3"),
        (
            14,
            "stage 5: cannot read 'Stgae 1' in the dependencies 'Stgae 1': it is not a stage "
            "number or a stage's name",
        ),
    ]
    assert found[1].message.endswith("1 -> 2 on line 2, 2 -> 1 on line 5)")
    assert found[3].message.endswith("3 -> 4 on line 8, 4 -> 3 on line 11)")


def test_stage_number_with_its_title(tmp_path: Path) -> None:
    path = tmp_path / "plan.md"
    path.write_text(
        "## Stage 1: Build and deploy\nDepends on: none\n\n## Stage 2: Docs\nDepends on: none\n\n"
        "## Stage 3: Ship\nDepends on: Stage 1: Build and deploy, Stage 2 — Docs\n"
    )
    plan = load_plan(path)
    assert plan.stage(3).depends_on == (1, 2)
    assert not [w for w in plan.warnings if "read as" in w]  # explicit: nothing to say
    path.write_text(path.read_text().replace("Stage 2 — Docs", "Stage 2: Manual"))
    (p,) = problems(tmp_path, path.read_text())
    assert p.line == 8
    assert "stage 2 is called 'Docs', not 'Manual'" in p.message
