"""The pure pane classifier (autorun_py.panes): real Claude Code screens captured
with tmux (tests/fixtures/transcripts/panes, record_panes.py), usage-limit
messages and their reset times, and a pane log's last lines."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from autorun_py.panes import classify_pane, last_lines, parse_reset_time

PANES = Path(__file__).parent / "fixtures" / "transcripts" / "panes"

# --------------------------------------------------------------------------- reset times

LONDON = "Europe/London"


def _local(y: int, mo: int, d: int, h: int, mi: int = 0, s: int = 0) -> datetime.datetime:
    return datetime.datetime(y, mo, d, h, mi, s).astimezone()


NOW = _local(2026, 3, 10, 14, 20, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Claude usage limit reached. Your limit will reset at 3pm.", _local(2026, 3, 10, 15)),
        ("5-hour limit reached ∙ resets 3:45pm", _local(2026, 3, 10, 15, 45)),
        ("You've hit your session limit · resets 4:05 PM", _local(2026, 3, 10, 16, 5)),
        ("limit reached · resets 15:30", _local(2026, 3, 10, 15, 30)),
        ("usage limit reached, resets 2:30:15pm", _local(2026, 3, 10, 14, 30, 15)),
        # already past today: tomorrow
        ("Your limit will reset at 9am.", _local(2026, 3, 11, 9)),
        ("resets 11:59am", _local(2026, 3, 11, 11, 59)),
        # just past (printed times are rounded): now, not tomorrow
        ("resets 2:17pm", _local(2026, 3, 10, 14, 17)),
        ("You've hit your weekly limit · resets Mar 12, 3pm", _local(2026, 3, 12, 15)),
        ("resets Jan 5 at 9am", _local(2027, 1, 5, 9)),
        ("You've hit your fast limit · resets in 2h 30m", NOW + datetime.timedelta(minutes=150)),
        ("resets in 45 minutes", NOW + datetime.timedelta(minutes=45)),
    ],
)
def test_parse_reset_time_local(text: str, expected: datetime.datetime) -> None:
    assert parse_reset_time(text, NOW) == expected


def test_parse_reset_time_named_zone_and_unknown_zone() -> None:
    from zoneinfo import ZoneInfo

    now = datetime.datetime(2026, 7, 1, 12, 0, tzinfo=datetime.timezone.utc)
    got = parse_reset_time("Your limit will reset at 3pm (Europe/London).", now)
    assert got == datetime.datetime(2026, 7, 1, 15, 0, tzinfo=ZoneInfo(LONDON))
    assert got is not None and got.astimezone(datetime.timezone.utc).hour == 14  # BST
    ny = parse_reset_time("resets 9:30am (America/New_York)", now)  # 08:00 there: later today
    assert ny == datetime.datetime(2026, 7, 1, 9, 30, tzinfo=ZoneInfo("America/New_York"))
    # An unknown zone name falls back to the local zone of `now`.
    assert parse_reset_time("resets 3pm (Mars/Olympus)", now) == now.replace(hour=15)


@pytest.mark.parametrize(
    "text",
    [
        "Claude usage limit reached.",
        "resets 5 times a day",
        "reset the counter at 25:00",
        "nothing to see here",
    ],
)
def test_parse_reset_time_none(text: str) -> None:
    assert parse_reset_time(text, NOW) is None


# --------------------------------------------------------------------------- panes


def test_classify_real_claude_code_screens() -> None:
    """Screens of Claude Code 2.1.330 captured with tmux (record_panes.py)."""
    now = datetime.datetime.now().astimezone()
    assert classify_pane((PANES / "idle.txt").read_text(), now).kind == "idle"
    assert classify_pane((PANES / "busy.txt").read_text(), now).kind == "busy"
    assert classify_pane((PANES / "dialog.txt").read_text(), now).kind == "dialog"


def test_classify_usage_limit_and_its_occurrences() -> None:
    now = _local(2026, 3, 10, 14, 0)
    idle = (PANES / "idle.txt").read_text().splitlines()
    msg = "  ⎿  Claude usage limit reached. Your limit will reset at 3pm (Europe/London)."
    screen = "\n".join(idle[:-6] + [msg] + idle[-6:])
    view = classify_pane(screen, now)
    assert view.kind == "usage_limit"
    assert view.limit_line == msg.strip() and view.limit_count == 1
    assert view.reset_at is not None and view.reset_at.hour == 15
    twice = classify_pane("\n".join(idle[:-6] + [msg, "", msg] + idle[-6:]), now)
    assert twice.limit_count == 2
    # Busy wins over an old limit message; a context limit is not a usage limit.
    busy = (PANES / "busy.txt").read_text().splitlines()
    assert classify_pane("\n".join(busy[:-6] + [msg] + busy[-6:]), now).kind == "busy"
    ctx = "Context limit reached · /compact or /clear to continue"
    assert classify_pane("\n".join(idle[:-6] + [ctx] + idle[-6:]), now).kind == "idle"
    # The old box prompt and a shell-ish output are told apart.
    assert classify_pane("│ > \n│ ? for shortcuts", now).kind == "idle"
    assert classify_pane("compiling...\n[42/100]", now).kind == "other"


# --------------------------------------------------------------------------- pane logs


def test_last_lines_of_a_pane_log_without_terminal_codes() -> None:
    """What a session that died at its start is failed with: its log's last lines."""
    idle = (PANES / "idle.txt").read_text()
    raw = (
        "\x1b[?25l\x1b[2J\x1b]0;claude\x07starting\r\n"
        + idle.replace("\n", "\r\n")
        + "\x1b[31mError: agent not found\x1b[0m\r\nspinner 1\rspinner 2\r\n\x07"
    )
    tail = last_lines(raw, lines=2)
    assert tail == "Error: agent not found | spinner 2"
    assert "\x1b" not in last_lines(raw, lines=50) and "claude" not in last_lines(raw, lines=50)
    assert last_lines("") == ""
    long = last_lines("x" * 1000 + "\n", limit=10)
    assert long == "…" + "x" * 10
