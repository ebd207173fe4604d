"""Timestamps and durations as autorun writes and shows them (one copy each).

``utc_iso`` / ``format_utc`` write the seed's format (``2026-02-20T14:03:05Z``,
as in events.jsonl) and ``parse_utc_iso`` / ``parse_utc`` read it back;
``format_duration`` is the compact form of the inbox, the status view, the
summaries and the report (``45s``, ``3m07s``, ``2h05m``, ``1d03h``; whole
seconds, truncated; ``-`` for an unknown duration).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    import datetime

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc_iso(ts: Optional[float] = None) -> str:
    """``ts`` (seconds since the epoch; default now) in the seed's UTC format (whole
    seconds, truncated; no :mod:`datetime` import on the path of every state change)."""
    moment = time.time() if ts is None else ts
    return time.strftime(ISO_FORMAT, time.gmtime(moment))


def format_utc(dt: datetime.datetime, *, ceil: bool = False) -> str:
    """``dt`` in the seed's format, whole seconds (a naive ``dt`` is local time).

    ``ceil``: a fraction of a second rounds up (a deadline written this way is
    never earlier than ``dt``).
    """
    import datetime

    if ceil and dt.microsecond:
        dt = dt.replace(microsecond=0) + datetime.timedelta(seconds=1)
    return dt.astimezone(datetime.timezone.utc).strftime(ISO_FORMAT)


def parse_utc(text: object) -> Optional[datetime.datetime]:
    """The aware UTC datetime of a :func:`utc_iso` string, or None."""
    if not isinstance(text, str):
        return None
    import datetime

    try:
        dt = datetime.datetime.strptime(text, ISO_FORMAT)
    except ValueError:
        return None
    return dt.replace(tzinfo=datetime.timezone.utc)


def parse_utc_iso(text: object) -> Optional[float]:
    """Seconds since the epoch of a :func:`utc_iso` string, or None."""
    dt = parse_utc(text)
    return None if dt is None else dt.timestamp()


def format_duration(seconds: Optional[float]) -> str:
    """``seconds`` compactly: ``45s``, ``3m07s``, ``2h05m``, ``1d03h``; ``-`` for None."""
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"
