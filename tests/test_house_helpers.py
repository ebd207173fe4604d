"""The one copy each of the small primitives: timestamps, durations, slugs, Mermaid text."""

from __future__ import annotations

import datetime
import os
import re
from pathlib import Path

import pytest

from autorun_py.mermaid import gantt_text, label
from autorun_py.names import slug
from autorun_py.timeutil import (
    format_duration,
    format_utc,
    parse_utc,
    parse_utc_iso,
    utc_iso,
)


def test_timestamps_round_trip() -> None:
    dt = datetime.datetime(2026, 2, 20, 14, 3, 5, 600_000, tzinfo=datetime.timezone.utc)
    assert format_utc(dt) == "2026-02-20T14:03:05Z"
    assert format_utc(dt, ceil=True) == "2026-02-20T14:03:06Z"
    assert format_utc(dt.replace(microsecond=0), ceil=True) == "2026-02-20T14:03:05Z"
    plus_two = dt.astimezone(datetime.timezone(datetime.timedelta(hours=2)))
    assert format_utc(plus_two) == "2026-02-20T14:03:05Z"
    assert parse_utc("2026-02-20T14:03:05Z") == dt.replace(microsecond=0)
    assert parse_utc_iso(utc_iso(1_000_000_000)) == 1_000_000_000
    for bad in (None, "", "2026-02-20 14:03:05", "yesterday", 12):
        assert parse_utc(bad) is None and parse_utc_iso(bad) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (-3, "0s"),
        (0, "0s"),
        (59.9, "59s"),  # truncated, like a clock: never shows a minute not yet passed
        (60, "1m00s"),
        (187, "3m07s"),
        (3599.99, "59m59s"),
        (7500, "2h05m"),
        (86399, "23h59m"),
        (97200, "1d03h"),
    ],
)
def test_one_duration_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_slug() -> None:
    assert slug("Parse the JSON", 30, "stage") == "parse-the-json"
    assert slug("Café crème", 30, "stage") == "cafe-creme"
    assert slug("a" * 25 + " bcd", 26, "stage") == "a" * 25  # no trailing dash after the cut
    assert slug("!!!", 30, "review") == "review"


def test_mermaid_label_escapes_every_special_character() -> None:
    text = 'a & b `code` "q" #1 <x>\tnew\nline'
    out = label(text)
    assert out == "a #amp; b #96;code#96; #quot;q#quot; #35;1 #lt;x#gt; new line"
    # Nothing Mermaid's lexer reads is left bare (entity codes are "#name;").
    bare = out.replace("#amp;", "").replace("#96;", "").replace("#quot;", "")
    bare = bare.replace("#35;", "").replace("#lt;", "").replace("#gt;", "")
    assert not set(bare) & set('&`"#<>\n\t')


def test_gantt_text() -> None:
    assert gantt_text("a: b # c; 100%% d\n e `x`") == "a b c 100 d e x"
    assert gantt_text(":;#") == "-"


def test_report_and_plan_use_the_one_label() -> None:
    from autorun_py import report
    from autorun_py.plan import render

    assert report.mermaid_label is label
    assert render.mermaid_label is label


def test_layout_spells_every_path_under_the_home(tmp_path: Path) -> None:
    from autorun_py.paths import Layout, layout

    lay = Layout.from_env({"AUTORUN_HOME": str(tmp_path / "h")})
    home = (tmp_path / "h").resolve()
    assert lay.home == home
    assert lay.stage_worktree("run-1", 3) == home / "worktrees" / "run-1" / "stage-3"
    assert lay.merge_worktree("run-1", 3) == home / "worktrees" / "run-1" / "merge-stage-3"
    assert (
        lay.verify_worktree("r", "s2", "a" * 40)
        == home / "worktrees" / "r" / f"verify-s2-{'a' * 12}"
    )
    assert lay.stage_log("slug", 2) == home / "logs" / "slug_stage-2.log"
    assert lay.monitor_log("slug") == home / "logs" / "slug-monitor.log"
    assert lay.merge_lock("k") == home / "locks" / "merge-k.lock"
    assert lay.report_base("r").with_suffix(".md") == home / "reports" / "r.md"
    assert lay.config_file == home / "config.json"
    assert Layout.from_env({}).home == (Path.home() / ".autorun").resolve()
    assert layout().home == Path(os.environ["AUTORUN_HOME"]).resolve()  # the autouse fixture's
    assert lay == Layout(home) and hash(lay) == hash(Layout(home))
    with pytest.raises(AttributeError):
        lay.home = tmp_path  # type: ignore[misc]


def test_no_path_under_the_home_is_spelled_outside_paths() -> None:
    """Every path under $AUTORUN_HOME goes through paths.Layout."""
    root = Path(__file__).resolve().parents[1] / "autorun_py"
    pattern = re.compile(r"autorun_home\(\)\s*/|AUTORUN_HOME\"\]\s*\)\s*/")
    offenders = [
        f"{p.relative_to(root)}:{i}"
        for p in sorted(root.rglob("*.py"))
        if p.name != "paths.py"
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []
