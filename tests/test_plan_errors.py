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
    assert p.line == 1
    assert p.message == "dependency cycle: 1 -> 3 -> 2 -> 1 (each stage depends on the next)"


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
    assert p.message.startswith("stage 2: cannot read the dependencies")
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
