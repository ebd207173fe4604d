"""The report's clock: any timestamp a state file or a transcript holds, read
as aware UTC, and now to the second (below the model and the charts)."""

from __future__ import annotations

import datetime
from typing import Optional

from autorun_py import transcripts
from autorun_py.timeutil import parse_utc


def _ts(text: Optional[str]) -> Optional[datetime.datetime]:
    """The seed's format, or any ISO-8601 form a transcript uses."""
    return parse_utc(text) or transcripts.parse_ts(text)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
