"""The master-plan parser: every shape of plan people and models write."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from autorun_py.plan import Plan, load_plan, parse_dependency_value, parse_plan

FIXTURES = Path(__file__).parent / "fixtures" / "plans"


def parse(text: str, name: str = "plan.md") -> Plan:
    return parse_plan(textwrap.dedent(text), Path("/plans") / name)


def deps_of(plan: Plan) -> dict[int, tuple[int, ...]]:
    return plan.deps()


# --------------------------------------------------------------------- headings


@pytest.mark.parametrize(
    "heading",
    [
        "## Stage 3: Name Here",
        "## Stage 3 — Name Here",
        "## Stage 3 – Name Here",
        "## Stage 3 - Name Here",
        "## Stage 3. Name Here",
        "# Stage 3: Name Here",
        "###### Stage 3: Name Here",
        "## **Stage 3**: Name Here",
        "## stage 3: Name Here",
        "## ✅ Stage 3: Name Here",
        "Stage 3: Name Here\n==================",
    ],
)
def test_stage_heading_forms(heading: str) -> None:
    plan = parse(f"# Plan\n\n{heading}\nDepends on: none\n\nDo the thing.\n")
    assert [s.number for s in plan.stages] == [3]
    assert plan.stages[0].name == "Name Here"
    assert plan.stages[0].scope == "Do the thing."
    assert plan.stages[0].line == 3


def test_heading_without_name_gets_a_fallback_name_and_a_warning() -> None:
    plan = parse("## Stage 1\nDepends on: none\n\nScope.\n")
    assert plan.stages[0].name == "Stage 1"
    assert any("no name" in w for w in plan.warnings)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("**Dependencies**: None", ()),
        ("**Dependencies:** None", ()),
        ("Depends on: Stage 1, Stage 2", (1, 2)),
        ("- Depends on: Stages 1 and 2", (1, 2)),
        ("Dependencies: 1, 2", (1, 2)),
        ("Dependencies: Stage 1 (Ingest)", (1,)),
        ("Dependencies: Stage 1 (Ingest v2), Stage 2 (Parse)", (1, 2)),
        ("Depends on: nothing", ()),
        ("Depends on: none", ()),
        ("Depends on: —", ()),
        ("Depends on: n/a", ()),
        ("Depends on: N/A", ()),
        ("Depends on: None (first stage)", ()),
        ("*Depends on*: Stage 2", (2,)),
        ("Depends on Stage 1 and Stage 2", (1, 2)),
        ("Dependencies — Stage 2", (2,)),
        ("Blocked by: #1, #2", (1, 2)),
        ("Dependencies: Stages 1-2", (1, 2)),
        ("Dependencies: Stages 1 to 2", (1, 2)),
        ("Dependencies: S1, S2", (1, 2)),
        ("> **Depends on:** Stage 2", (2,)),
        ("Dependencies: `Stage 1`, `Stage 2`", (1, 2)),
        ("Depends on: Ingest and Parse", (1, 2)),
    ],
)
def test_dependency_line_forms(line: str, expected: tuple[int, ...]) -> None:
    plan = parse(
        f"""\
        ## Stage 1: Ingest
        Depends on: none

        One.

        ## Stage 2: Parse
        Depends on: Stage 1

        Two.

        ## Stage 3: Target
        {line}

        Three.
        """
    )
    assert plan.stage(3).depends_on == expected
    assert plan.stage(3).scope == "Three."


def test_dependencies_as_a_list_below_the_label() -> None:
    plan = parse(
        """\
        ## Stage 1: A
        **Dependencies**: none

        ## Stage 2: B
        **Dependencies**: none

        ## Stage 3: C
        **Dependencies:**
        - Stage 1 (A)
        - Stage 2

        The scope.
        """
    )
    assert plan.stage(3).depends_on == (1, 2)
    assert plan.stage(3).scope == "The scope."


def test_dependency_subheading_with_list() -> None:
    plan = parse(
        """\
        ## Stage 1: A
        Depends on: none

        ## Stage 2: B

        ### Dependencies
        - Stage 1

        ### Tasks
        Build B.
        """
    )
    assert plan.stage(2).depends_on == (1,)
    assert plan.stage(2).scope == "### Tasks\nBuild B."


def test_dependency_line_inside_a_paragraph_keeps_the_other_lines() -> None:
    plan = parse(
        """\
        ## Stage 1: A
        **Dependencies**: None
        **Estimate**: 3h
        **Owner**: Ada

        Scope text.
        """
    )
    stage = plan.stage(1)
    assert stage.depends_on == ()
    assert stage.estimate_hours == 3.0
    assert stage.scope == "**Estimate**: 3h\n**Owner**: Ada\n\nScope text."


def test_only_the_first_dependency_line_counts() -> None:
    plan = parse(
        """\
        ## Stage 1: A
        Depends on: none

        ## Stage 2: B
        Depends on: Stage 1

        Notes:

        Depends on: the weather
        """
    )
    assert plan.stage(2).depends_on == (1,)
    assert "Depends on: the weather" in plan.stage(2).scope


def test_prose_starting_with_depends_on_is_not_a_dependency_line() -> None:
    plan = parse(
        """\
        ## Stage 1: A
        Depends on: none

        ## Stage 2: B
        Depends on: Stage 1

        ## Stage 3: C
        Depends on the cache being warm, which stage 1 provides.

        Dependencies: Stage 2
        """
    )
    assert plan.stage(3).depends_on == (2,)


# --------------------------------------------------------------------- fixtures


def test_out_of_order_stages_and_seed_names() -> None:
    plan = load_plan(FIXTURES / "2026-02-20-wave2-token-design-audit.md")
    assert plan.name == "2026-02-20-wave2-token-design-audit"
    assert plan.slug == "token-audit"
    assert [s.number for s in plan.stages] == [1, 2, 3]
    assert deps_of(plan) == {1: (), 2: (1,), 3: (1, 2)}
    assert plan.waves == ((1,), (2,), (3,))
    assert plan.critical_path == (1, 2, 3)
    assert plan.path.is_absolute()
    assert plan.stage(3).scope == (
        "Write the report in `docs/audit.md`.\n\n- list every token\n- flag the unused ones"
    )
    assert plan.stage(3).line == 5


def test_every_separator_and_dependency_form() -> None:
    plan = load_plan(FIXTURES / "separators.md")
    assert deps_of(plan) == {
        1: (),
        2: (1,),
        3: (1, 2),
        4: (1,),
        5: (3, 4),
        6: (),
        7: (),
        8: (),
        9: (5, 6, 7, 8),
    }
    assert [s.name for s in plan.stages][:5] == ["Ingest", "Parse", "Validate", "Index", "Export"]
    # The dependency list item is gone from the scope, its sibling stays.
    assert plan.stage(3).scope == "- Check the schema\n\nValidate everything."
    assert plan.waves == ((1, 6, 7, 8), (2, 4), (3,), (5,), (9,))
    assert plan.warnings == ()


def test_waves_declared_under_wave_headings() -> None:
    plan = load_plan(FIXTURES / "waves.md")
    assert [s.declared_wave for s in plan.stages] == [1, 1, 2, 2, 3]
    assert plan.waves == ((1, 2), (3,), (4,), (5,))
    contradictions = [w for w in plan.warnings if "declared in wave" in w]
    assert len(contradictions) == 2
    assert "stage 4 is declared in wave 2" in contradictions[0]
    assert contradictions[0].startswith("line 22:")


def test_wave_headings_without_dependency_lines_imply_previous_wave() -> None:
    plan = parse(
        """\
        ## Wave 1
        ### Stage 1: A
        Scope A.
        ### Stage 2: B
        Scope B.
        ## Wave 2
        ### Stage 3: C
        Scope C.
        ## Wave 3
        ### Stage 4: D
        Scope D.
        """
    )
    assert deps_of(plan) == {1: (), 2: (), 3: (1, 2), 4: (3,)}
    assert plan.waves == ((1, 2), (3,), (4,))
    assert any("assuming it depends on wave 1" in w for w in plan.warnings)


def test_a_non_wave_heading_ends_the_wave() -> None:
    plan = parse(
        """\
        ## Wave 2
        ### Stage 1: A
        Depends on: none
        ## Appendix
        ### Stage 2: B
        Depends on: none
        """
    )
    assert plan.stage(1).declared_wave == 2
    assert plan.stage(2).declared_wave is None


def test_summary_table_with_sections() -> None:
    plan = load_plan(FIXTURES / "summary_table.md")
    assert deps_of(plan) == {1: (), 2: (1,), 3: (1, 2), 4: (3,)}
    assert [s.name for s in plan.stages] == ["Ingest", "Transform", "Load", "Report"]
    assert plan.stage(3).scope == "Load into the warehouse."
    assert plan.stage(4).line == 24  # the section heading, not the table row
    assert plan.warnings == ()


def test_table_only_plan_takes_lines_from_rows() -> None:
    plan = parse(
        """\
        | # | Stage name | Dependencies | Estimate | Scope |
        |---|---|---|---|---|
        | 1 | Ingest | None | 2h | Read it |
        | 2 | Parse | **1** | 1h | Parse it |
        | Total | | | 3h | |
        """
    )
    assert deps_of(plan) == {1: (), 2: (1,)}
    assert plan.stage(2).line == 4
    assert plan.stage(2).scope == "Parse it"
    assert plan.stage(1).estimate_hours == 2.0
    assert any("without a stage number" in w for w in plan.warnings)


def test_table_and_sections_disagreeing_warn_and_union_dependencies() -> None:
    plan = parse(
        """\
        | Stage | Name | Depends on |
        |---|---|---|
        | 1 | Ingest | — |
        | 2 | Parse | 1 |
        | 3 | Load | 1 |

        ## Stage 1: Ingest
        Scope.

        ## Stage 2: Parsing
        Scope.

        ## Stage 3: Load
        Depends on: Stage 2

        Scope.
        """
    )
    assert plan.stage(2).name == "Parsing"
    assert plan.stage(3).depends_on == (1, 2)
    assert any("'Parse' differs from 'Parsing'" in w for w in plan.warnings)
    assert any("using both: [1, 2]" in w for w in plan.warnings)


def test_table_stage_column_with_combined_name() -> None:
    plan = parse(
        """\
        | Stage | Depends on |
        |---|---|
        | Stage 1: Ingest | — |
        | Stage 2 — Parse | Stage 1 |
        """
    )
    assert [s.name for s in plan.stages] == ["Ingest", "Parse"]
    assert deps_of(plan) == {1: (), 2: (1,)}


def test_unrelated_tables_are_ignored() -> None:
    plan = parse(
        """\
        | Risk | Mitigation |
        |---|---|
        | 1 | 2 |

        ## Stage 1: A
        Depends on: none
        """
    )
    assert [s.number for s in plan.stages] == [1]


def test_fenced_fake_stage_headings_are_scope() -> None:
    plan = load_plan(FIXTURES / "fenced.md")
    assert [s.number for s in plan.stages] == [1, 2]
    scope = plan.stage(1).scope
    assert "```markdown\n## Stage 2: Not a stage\nDepends on: Stage 1\n```" in scope
    assert "## Stage 7: also not a stage" in scope
    assert "## Stage 8: hidden in a comment" in scope
    assert "    ## Stage 9: indented code, not a stage" in scope
    assert plan.stage(1).depends_on == ()
    assert plan.stage(2).depends_on == (1,)


def test_unicode_and_shell_metacharacters_in_names() -> None:
    plan = load_plan(FIXTURES / "unicode_shell.md")
    assert plan.stage(1).name == "Données $(rm -rf ~) `id` ; echo \"pwned\" | cat & 'quote'"
    assert plan.stage(2).name == "日本語のステージ — «ünïcode» \\ back\\slash"
    assert "日本語, emoji 🚀" in plan.stage(2).scope
    assert plan.slug == "unicode-shell"


def test_sections_end_at_a_higher_level_heading_but_keep_subheadings() -> None:
    plan = parse(
        """\
        # Plan
        ### Stage 1: A
        Depends on: none

        Scope A.
        #### Details
        More A.
        ## Appendix
        Not part of stage 1.
        """
    )
    assert plan.stage(1).scope == "Scope A.\n#### Details\nMore A."


def test_trailing_rules_and_setext_dashes_do_not_cut_a_scope() -> None:
    plan = parse(
        """\
        ## Stage 1: A
        Depends on: none

        First paragraph.
        Last line before a rule
        ---

        ## Stage 2: B
        Depends on: Stage 1

        B scope.

        ***
        """
    )
    assert plan.stage(1).scope == "First paragraph.\nLast line before a rule"
    assert plan.stage(2).scope == "B scope."


def test_front_matter_is_ignored_and_line_numbers_kept() -> None:
    plan = parse(
        """\
        ---
        title: Stage 9 plan
        chain_on_complete: true
        ---
        ## Stage 1: A
        Depends on: none
        """
    )
    assert [s.number for s in plan.stages] == [1]
    assert plan.stage(1).line == 5


def test_crlf_and_bom_files(tmp_path: Path) -> None:
    path = tmp_path / "crlf.md"
    path.write_bytes(
        b"\xef\xbb\xbf## Stage 1: A\r\nDepends on: none\r\n\r\nScope A.\r\n"
        b"## Stage 2: B\r\nDepends on: Stage 1\r\n"
    )
    plan = load_plan(path)
    assert deps_of(plan) == {1: (), 2: (1,)}
    assert plan.stage(1).scope == "Scope A."
    assert plan.stage(2).line == 5


def test_empty_scope_and_missing_dependency_line_warn() -> None:
    plan = parse(
        """\
        ## Stage 1: A

        ## Stage 2: B
        Depends on: Stage 1
        """
    )
    assert plan.stage(1).depends_on == ()
    assert any("stage(s) 1, 2 have an empty scope" in w for w in plan.warnings)
    assert any("stage(s) 1 have no dependency line" in w for w in plan.warnings)


# --------------------------------------------------------------------- estimates, graph


@pytest.mark.parametrize(
    ("value", "hours"),
    [("3h", 3.0), ("90 min", 1.5), ("2 days", 16.0), ("1.5 hours", 1.5), ("2-3h", 3.0)],
)
def test_estimates(value: str, hours: float) -> None:
    plan = parse(f"## Stage 1: A\nDepends on: none\nEstimate: {value}\n")
    assert plan.stage(1).estimate_hours == pytest.approx(hours)


def test_critical_path_uses_estimates() -> None:
    plan = load_plan(FIXTURES / "estimates.md")
    # By stage count 1 -> 3 -> 4 is longest; by hours the 2-day stage 2 wins.
    assert plan.critical_path == (2,)
    assert plan.weights() == {1: 1.0, 2: 16.0, 3: 0.5, 4: 1.0}


def test_weights_median_for_stages_without_estimates() -> None:
    plan = parse(
        """\
        ## Stage 1: A
        Depends on: none
        Estimate: 2h
        ## Stage 2: B
        Depends on: none
        Estimate: 6h
        ## Stage 3: C
        Depends on: Stage 1
        Estimate: 10h
        ## Stage 4: D
        Depends on: Stage 2
        """
    )
    assert plan.weights() == {1: 2.0, 2: 6.0, 3: 10.0, 4: 6.0}
    assert plan.critical_path == (1, 3)


def test_critical_path_by_count_and_descendants() -> None:
    plan = load_plan(FIXTURES / "separators.md")
    assert plan.critical_path == (1, 2, 3, 5, 9)
    assert plan.descendants(1) == frozenset({2, 3, 4, 5, 9})
    assert plan.descendants(9) == frozenset()
    assert plan.weights() == dict.fromkeys(range(1, 10), 1.0)


def test_to_json_shape() -> None:
    plan = load_plan(FIXTURES / "summary_table.md")
    data = plan.to_json()
    assert set(data) == {
        "plan_name",
        "project_slug",
        "stages",
        "waves",
        "critical_path",
        "warnings",
    }
    assert data["stages"][2] == {
        "number": 3,
        "name": "Load",
        "depends_on": [1, 2],
        "scope": "Load into the warehouse.",
    }
    assert data["waves"] == [[1], [2], [3], [4]]


def test_parse_dependency_value_none_forms() -> None:
    for text in ["none", "None.", "nothing", "—", "-", "n/a", "N/A", "(none)", "No dependencies"]:
        assert parse_dependency_value(text).numbers == (), text
        assert not parse_dependency_value(text).names, text


def test_dependencies_in_the_heading() -> None:
    plan = parse(
        """\
        ## Stage 1: Ingest
        ## Stage 2: Parse (depends on Stage 1)
        ## Stage 3: Report [Dependencies: 1, 2]
        Duration: 2h
        """
    )
    assert plan.deps() == {1: (), 2: (1,), 3: (1, 2)}
    assert plan.stage(2).name == "Parse"
    assert plan.stage(3).name == "Report"
    assert plan.stage(3).estimate_hours == 2.0


def test_title_mentioning_a_wave_is_not_a_wave_heading(tmp_path: Path) -> None:
    path = tmp_path / "wave_2_master_plan.md"
    path.write_text(
        "# Wave 2 master plan\n\n## Stage 1: Ingest `--json`\nDepends on: none\n\nRead.\n\n"
        "## Wave 3: Later\n\n### Stage 2: Use\nDepends on: Stage 1\n\nUse.\n"
    )
    plan = load_plan(path)
    assert plan.stage(1).declared_wave is None
    assert plan.stage(2).declared_wave == 3
    assert plan.stage(1).name == "Ingest `--json`"
    assert any("declared in wave 3" in w for w in plan.warnings)
