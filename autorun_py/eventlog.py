"""The event log's lines on disk, the writer's side: a line's bytes, an event
stamped now, appending whole lines, and the lines of a status file's journal
not yet in the log (see :mod:`autorun_py.events` for the commit order). Below
the state store, which writes through it; the readers that flush a killed
writer's journal under the status lock live in :mod:`autorun_py.events`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

from autorun_py.timeutil import utc_iso

EVENTS_FILE = "events.jsonl"


def utc_now() -> str:
    """The seed's timestamp format: ``2026-02-20T14:03:05Z``."""
    return utc_iso()


def events_path(orch_dir: Path) -> Path:
    return Path(orch_dir) / EVENTS_FILE


def event_line(event: dict[str, Any]) -> bytes:
    """The bytes of one event's line in ``events.jsonl``."""
    return (json.dumps(event, ensure_ascii=False) + "\n").encode("utf-8")


def make_event(
    orch_dir: Path,
    event_type: str,
    *,
    plan_name: str,
    project_slug: str,
    recorded_dir: Optional[Path] = None,
    **fields: Any,
) -> dict[str, Any]:
    """An event with the common fields, stamped now (not written)."""
    event: dict[str, Any] = {
        "ts": utc_now(),
        "type": event_type,
        "plan_name": plan_name,
        "project_slug": project_slug,
        "orch_dir": str(recorded_dir or orch_dir),
    }
    event.update(fields)
    return event


def log_size(orch_dir: Path) -> int:
    try:
        return os.stat(events_path(orch_dir)).st_size
    except FileNotFoundError:
        return 0


def write_lines(orch_dir: Path, lines: list[bytes], kill_point: Optional[Any] = None) -> None:
    """Append whole lines (one ``write`` each) and fsync once."""
    if not lines:
        return
    from autorun_py.fsutil import append_lines

    # never through a symlink placed at events.jsonl (O_NOFOLLOW), one clear error
    # naming the file for a full or read-only disk
    append_lines(
        events_path(orch_dir),
        lines,
        between_lines=None if kill_point is None else lambda: kill_point("events:between-lines"),
    )


def journal_missing(orch_dir: Path, journal: Any) -> list[bytes]:
    """The lines of a status file's ``event_journal`` not yet in the log after
    its ``offset`` (each counted once, so repeats of a line are kept)."""
    if not isinstance(journal, dict):
        return []
    events = journal.get("events")
    if not isinstance(events, list) or not events:
        return []
    wanted = [event_line(ev) for ev in events if isinstance(ev, dict)]
    try:
        offset = max(0, int(journal.get("offset", 0)))
    except (TypeError, ValueError):
        offset = 0
    try:
        with open(events_path(orch_dir), "rb") as fh:
            if offset <= os.fstat(fh.fileno()).st_size:
                fh.seek(offset)
            text = fh.read()
    except FileNotFoundError:
        text = b""
    present: dict[bytes, int] = {}
    for raw in text.splitlines(keepends=True):
        present[raw] = present.get(raw, 0) + 1
    missing = []
    for line in wanted:
        if present.get(line, 0) > 0:
            present[line] -= 1
        else:
            missing.append(line)
    return missing


def flush_journal(orch_dir: Path, journal: Any) -> int:
    """Append the journal's missing lines (the caller holds the status lock)."""
    missing = journal_missing(orch_dir, journal)
    write_lines(orch_dir, missing)
    return len(missing)
