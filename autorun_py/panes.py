"""The pure pane classifier: what a Claude Code pane shows, text in, classification out.

:func:`classify_pane` reads a pane's screen (and its scroll-back) and says
whether the session is ``busy`` (Claude Code's ``esc to interrupt``), at a
``dialog`` (a permission or choice menu: never typed into), stopped at a
``usage_limit`` message (which line, how often it appears, and the reset time
:func:`parse_reset_time` reads from it), ``idle`` at its prompt, or ``other``.
:func:`last_lines` turns a pane log's raw bytes into its last readable lines.
No I/O here: the monitor (:mod:`autorun_py.monitor`) captures the panes and
acts; recovery (:mod:`autorun_py.recovery`) reads the logs.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Optional

_MONTHS = {
    m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())
}
_RESET_AT = re.compile(
    r"\breset(?:s)?\b(?:\s+(?:at|on))?\s+"
    r"(?:(?P<mon>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+"
    r"(?P<day>\d{1,2})(?:st|nd|rd|th)?,?\s+(?:at\s+)?)?"
    r"(?P<h>\d{1,2})(?::(?P<m>\d{2}))?(?::(?P<s>\d{2}))?\s*"
    r"(?P<ampm>[ap]\.?\s?m\b\.?)?"
    r"(?:\s*\((?P<tz>[^)\n]{1,64})\))?",
    re.I,
)
_RESET_IN = re.compile(
    r"\breset(?:s)?\s+in\s+(?P<dur>\d+\s*[a-z]+(?:[\s,]+(?:and\s+)?\d+\s*[a-z]+)*)", re.I
)
_UNIT = {"d": 86400, "h": 3600, "m": 60, "s": 1}

_LIMIT_LINE = re.compile(
    r"usage limit reached"
    r"|\blimit reached\b.*\breset"
    r"|you(?:'|’)?ve hit your\b.*\blimit"
    r"|\blimit will reset\b",
    re.I,
)
_BUSY = re.compile(r"\b(?:esc|ctrl\+c) to (?:interrupt|cancel)\b", re.I)
_PROMPT = re.compile(r"^\s*(?:[│|]\s*)?(?:❯|>)(?:\s|$)")
_MENU = re.compile(r"^\s*(?:[│|]\s*)?(?:❯|>)\s*\d+\.\s")

PAST_GRACE = datetime.timedelta(minutes=5)


def _zone(name: Optional[str]) -> Optional[datetime.tzinfo]:
    if not name:
        return None
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name.strip())
    except Exception:  # unknown zone, no tz database: local time
        return None


def parse_reset_time(text: str, now: datetime.datetime) -> Optional[datetime.datetime]:
    """The reset time a usage-limit message names, as an aware datetime.

    Understands ``3pm``, ``3:45pm``, ``3:45 PM``, ``15:45``, ``3:45:07pm``, a
    leading date (``Jan 5, 3pm``, ``Jan 5 at 3pm``), a zone in parentheses
    (``3pm (Europe/London)``; local time when absent or unknown) and
    ``resets in 2h 30m``. A time of day already past today is tomorrow (unless
    it passed less than five minutes ago: printed times are rounded).
    ``now`` must be aware.
    """
    rel = _RESET_IN.search(text)
    if rel:
        total = 0
        for num, unit in re.findall(r"(\d+)\s*([a-z]+)", rel.group("dur"), re.I):
            u = unit[0].lower()
            if unit.lower().startswith("mo"):
                return None
            if u in _UNIT:
                total += int(num) * _UNIT[u]
        if total:
            return now + datetime.timedelta(seconds=total)
    for m in _RESET_AT.finditer(text):
        ampm = (m.group("ampm") or "").replace(".", "").replace(" ", "").lower()
        if not ampm and m.group("m") is None:
            continue  # a bare number is not a time
        hour, minute = int(m.group("h")), int(m.group("m") or 0)
        second = int(m.group("s") or 0)
        if ampm:
            if not 1 <= hour <= 12:
                continue
            hour = hour % 12 + (12 if ampm == "pm" else 0)
        elif hour > 23:
            continue
        if minute > 59 or second > 59:
            continue
        tz = _zone(m.group("tz")) or now.tzinfo
        base = now.astimezone(tz)
        if m.group("mon"):
            month, day = _MONTHS[m.group("mon").lower()[:3]], int(m.group("day"))
            try:
                cand = base.replace(
                    month=month, day=day, hour=hour, minute=minute, second=second, microsecond=0
                )
            except ValueError:
                continue
            if cand < base - datetime.timedelta(days=1):
                try:
                    cand = cand.replace(year=cand.year + 1)
                except ValueError:
                    continue
            return cand
        cand = base.replace(hour=hour, minute=minute, second=second, microsecond=0)
        if cand < base - PAST_GRACE:
            cand += datetime.timedelta(days=1)
        return cand
    return None


@dataclass(frozen=True)
class PaneState:
    """What a Claude Code pane shows, as the classifier reads it."""
    kind: str  # busy | usage_limit | dialog | idle | other
    limit_line: Optional[str] = None
    limit_count: int = 0
    reset_at: Optional[datetime.datetime] = None


def classify_pane(text: str, now: datetime.datetime, *, history: Optional[str] = None) -> PaneState:
    """What a Claude Code pane shows at its bottom (pure: text in, state out).

    ``text`` is the visible screen; ``history`` (default: ``text``) the screen
    with its scroll-back, where a usage-limit message's occurrences are counted.
    """
    lines = [ln.rstrip() for ln in text.splitlines()]
    everything = lines if history is None else [ln.rstrip() for ln in history.splitlines()]
    nonempty = [ln for ln in lines if ln.strip()]
    tail = nonempty[-8:]
    if any(_MENU.match(ln) for ln in tail):
        return PaneState("dialog")  # a permission or choice menu: never type into it
    if any(_BUSY.search(ln) for ln in nonempty[-10:]):
        return PaneState("busy")
    for ln in reversed(nonempty[-15:]):
        if _LIMIT_LINE.search(ln):
            line = ln.strip()
            count = sum(1 for x in everything if x.strip() == line)
            return PaneState("usage_limit", line, count, parse_reset_time(line, now))
    if any(_PROMPT.match(ln) for ln in tail):
        return PaneState("idle")
    return PaneState("other")


_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]")


def last_lines(raw: str, lines: int = 5, limit: int = 600) -> str:
    """The last non-empty lines of a pane log's text, terminal codes removed (a line
    redrawn with ``\\r`` counts as its last drawing), joined by `` | `` and cut to
    ``limit`` characters from the end."""
    text = _ANSI.sub("", raw).replace("\r\n", "\n")
    out: list[str] = []
    for line in text.split("\n"):
        line = line.rsplit("\r", 1)[-1]
        line = "".join(ch for ch in line if ch == "\t" or ch >= " ").strip()
        if line:
            out.append(line)
    joined = " | ".join(out[-lines:])
    return joined if len(joined) <= limit else "…" + joined[-limit:]
