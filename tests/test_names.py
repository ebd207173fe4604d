"""Plan names and project slugs, by the seed's rules."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autorun_py.names import kebab, plan_name_from_path, project_slug

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,18}[a-z0-9])?$")


def test_seed_examples() -> None:
    assert plan_name_from_path(Path("wave_2_master_plan.md")) == "wave-2-master-plan"
    assert project_slug("2026-02-20-wave2-token-design-audit") == "token-audit"
    assert project_slug("wave2-pixel-perfect-visual-qa") == "pixel-qa"


@pytest.mark.parametrize(
    ("file_name", "plan_name"),
    [
        ("/some/dir/wave_2_master_plan.md", "wave-2-master-plan"),
        ("2026-02-20-wave2-token-design-audit.md", "2026-02-20-wave2-token-design-audit"),
        ("My Plan (final).md", "my-plan-final"),
        ("TokenDesignAudit.md", "token-design-audit"),
        ("HTTPServerPlan.md", "http-server-plan"),
        ("Café Über Plan.md", "cafe-uber-plan"),
        ("plan", "plan"),
        ("--weird--name--.MD", "weird-name"),
    ],
)
def test_plan_names(file_name: str, plan_name: str) -> None:
    assert plan_name_from_path(Path(file_name)) == plan_name


@pytest.mark.parametrize(
    ("plan_name", "slug"),
    [
        ("wave-2-master-plan", "master-plan"),
        ("2026-02-20-token-design-audit", "token-audit"),
        ("2026-02-20-wave2", "wave2"),  # nothing after the prefixes: keep the wave
        ("2026-02-20", "2026-20"),
        ("auth", "auth"),
        ("auth-refactor", "auth-refactor"),
        ("the-great-migration-of-the-database", "great-database"),
        ("Already Mixed_Case name", "already-name"),
    ],
)
def test_slugs(plan_name: str, slug: str) -> None:
    result = project_slug(plan_name)
    assert result == slug
    assert SLUG_RE.match(result), result


def test_long_words_are_trimmed_evenly() -> None:
    slug = project_slug("internationalization-of-everything-localization")
    assert len(slug) <= 20
    first, last = slug.split("-")
    assert "internationalization".startswith(first)
    assert "localization".startswith(last)
    assert abs(len(first) - len(last)) <= 1


@pytest.mark.parametrize("name", ["日本語の計画", "🚀🚀", "..", "---", "\x00\x01"])
def test_names_without_usable_characters_fall_back(name: str) -> None:
    plan_name = plan_name_from_path(Path(name + ".md"))
    assert re.match(r"^plan-[0-9a-f]{6}$", plan_name)
    assert SLUG_RE.match(project_slug(plan_name))
    assert SLUG_RE.match(project_slug(name))


def test_fallbacks_are_deterministic_and_distinct() -> None:
    a = plan_name_from_path(Path("計画.md"))
    assert a == plan_name_from_path(Path("計画.md"))
    assert a != plan_name_from_path(Path("日程.md"))


@given(st.text(max_size=200))
@settings(max_examples=300, deadline=None)
def test_any_name_gives_a_safe_slug(text: str) -> None:
    plan_name = plan_name_from_path(Path(text.replace("/", "_") + ".md"))
    assert plan_name
    assert re.match(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$", plan_name)
    assert len(plan_name) <= 80
    slug = project_slug(plan_name)
    assert SLUG_RE.match(slug), slug
    assert project_slug(text) == project_slug(text)
    assert SLUG_RE.match(project_slug(text))
    assert kebab(kebab(text)) == kebab(text)


def test_slug_is_a_valid_tmux_session_name(tmux_socket: str) -> None:
    slug = project_slug(plan_name_from_path(Path("2026-02-20-wave2-Ünïcode $(x) plan.md")))
    session = f"{slug}_stage-1"
    subprocess.run(
        ["tmux", "-L", tmux_socket, "new-session", "-d", "-s", session, "sleep 30"], check=True
    )
    listed = subprocess.run(
        ["tmux", "-L", tmux_socket, "list-sessions", "-F", "#{session_name}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert session in listed


def test_a_new_session_id_is_a_random_version_4_uuid() -> None:
    import uuid

    from autorun_py.names import new_session_id

    ids = {new_session_id() for _ in range(200)}
    assert len(ids) == 200
    for sid in ids:
        parsed = uuid.UUID(sid)
        assert str(parsed) == sid and parsed.version == 4 and parsed.variant == uuid.RFC_4122
