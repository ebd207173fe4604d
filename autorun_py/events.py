"""The run's event log: ``<orch_dir>/events.jsonl``, one JSON object per line.

Every event carries the seed's common fields (``ts``, ``type``, ``plan_name``,
``project_slug``, ``orch_dir``) plus type-specific ones. A line is written with
a single ``write`` on an ``O_APPEND`` descriptor, so concurrent writers never
interleave partial lines; state transitions write theirs while holding the
status lock, so their order matches the order of the state changes.

No event of a state change is ever lost (the *event journal*): a status
transaction (:meth:`autorun_py.state.StatusStore.transaction`) commits by
replacing ``status.json``, and the new file carries the transaction's events,
complete with their timestamps, under ``event_journal`` (``{"offset": size of
events.jsonl before them, "events": [...]}``). Only then are they appended to
``events.jsonl``. A SIGKILL between the two steps (or between two lines) leaves
the state committed and its events in the journal; :func:`flush_journal`
appends exactly the lines that are missing from the log after ``offset``
(compared byte for byte, so an event is never written twice) and is run by the
next transaction before its own events, by :func:`read_events` and
:func:`follow_events` (``autorun events``, ``--follow`` included), ``resume``
and every monitor check. So the log never holds an event of a state change
that did not happen, and holds every event of every one that did, in order.
Readers take the status lock only in that rare case (a journal not yet in the
log), and re-check under it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Optional

# the writer's side lives below the state store (autorun_py.eventlog); its names are here too
from autorun_py.eventlog import (
    EVENTS_FILE,
    event_line,
    events_path,
    flush_journal,
    journal_missing,
    log_size,
    make_event,
    utc_now,
    write_lines,
)


def _identity(orch_dir: Path) -> tuple[str, str]:
    """plan_name and project_slug from status.json (for writers that lack them)."""
    from autorun_py.errors import AutorunError
    from autorun_py.fsutil import read_text_bounded

    try:  # bounded, no symlink, never blocks on a FIFO
        text = read_text_bounded(Path(orch_dir) / "status.json", 64 << 20, follow_symlinks=False)
        raw = json.loads(text)
    except (OSError, ValueError, RecursionError, AutorunError):
        return "", ""
    if not isinstance(raw, dict):
        return "", ""
    return str(raw.get("plan_name", "")), str(raw.get("project_slug", ""))


def _read_journal(orch_dir: Path) -> Any:
    from autorun_py.errors import AutorunError
    from autorun_py.fsutil import read_text_bounded

    try:  # bounded, no symlink, never blocks on a FIFO
        text = read_text_bounded(Path(orch_dir) / "status.json", 64 << 20, follow_symlinks=False)
        raw = json.loads(text)
    except (OSError, ValueError, RecursionError, AutorunError):
        return None
    return raw.get("event_journal") if isinstance(raw, dict) else None


def ensure_flushed(orch_dir: Path) -> int:
    """Flush a journal left by a writer killed before its events reached the log.

    Lock-free when nothing is missing (the common case); otherwise under the
    status lock, re-checked there. Never raises: a reader must still read.
    """
    try:
        if not journal_missing(orch_dir, _read_journal(orch_dir)):
            return 0
        from autorun_py.state import StatusStore

        return StatusStore(orch_dir).flush_events()
    except Exception:  # noqa: BLE001 - a reader still reads what is there
        return 0


def append_event(
    orch_dir: Path,
    event_type: str,
    *,
    plan_name: Optional[str] = None,
    project_slug: Optional[str] = None,
    recorded_dir: Optional[Path] = None,
    **fields: Any,
) -> dict[str, Any]:
    """Append one event line and return the event written.

    ``recorded_dir`` is the ``orch_dir`` written into the event when it differs
    from where the log is (an orchestration assembled in a temp directory).
    """
    orch_dir = Path(orch_dir)
    if plan_name is None or project_slug is None:
        name, slug = _identity(orch_dir)
        plan_name = name if plan_name is None else plan_name
        project_slug = slug if project_slug is None else project_slug
    event = make_event(
        orch_dir,
        event_type,
        plan_name=plan_name,
        project_slug=project_slug,
        recorded_dir=recorded_dir,
        **fields,
    )
    write_lines(orch_dir, [event_line(event)])
    return event


def read_events(orch_dir: Path) -> list[dict[str, Any]]:
    """Every complete event line (a torn last line, if any, is skipped), after
    flushing a journal a killed writer left (see the module doc)."""
    ensure_flushed(orch_dir)
    path = events_path(orch_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    out: list[dict[str, Any]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def follow_events(
    orch_dir: Path,
    *,
    from_start: bool = True,
    poll: float = 0.2,
    stop: Optional[Any] = None,
) -> Iterator[dict[str, Any]]:
    """Yield events as they are appended (``tail -f``). ``stop()`` ends the loop when true."""
    path = events_path(orch_dir)
    offset = 0
    if not from_start and path.exists():
        offset = path.stat().st_size
    buf = b""
    ensure_flushed(orch_dir)
    last_flush = time.monotonic()
    while True:
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
        except FileNotFoundError:
            chunk = b""
        if chunk:
            offset += len(chunk)
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for raw in lines:
                try:
                    obj = json.loads(raw.decode("utf-8"))
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    yield obj
            continue
        stopping = stop is not None and stop()
        if stopping or time.monotonic() - last_flush >= 1.0:
            # a writer killed between its state and its events: flush for it
            last_flush = time.monotonic()
            if ensure_flushed(orch_dir):
                continue
        if stopping:
            return
        time.sleep(poll)


FOLLOW_GRACE = 3.0  # seconds a finished run must stay quiet before a follower stops


def follow_run(
    orch_dir: Path,
    finished: Callable[[], bool],
    *,
    from_start: bool = True,
    grace: float = FOLLOW_GRACE,
    poll: float = 0.2,
) -> Iterator[dict[str, Any]]:
    """Yield a run's events until the run is finished and stays finished.

    An ``orchestration_complete`` event is not the end: a retry after it reopens
    the run and appends more. The follower stops once it has read every event,
    ``finished()`` (the run's state) is true and no event has arrived for
    ``grace`` seconds (so the event a finishing transaction appends right after
    its state write is not missed either).
    """
    last = time.monotonic()

    def stop() -> bool:
        return time.monotonic() - last >= grace and finished()

    for ev in follow_events(orch_dir, from_start=from_start, poll=poll, stop=stop):
        last = time.monotonic()
        yield ev
        last = time.monotonic()


def notable_line(ev: dict[str, Any]) -> Optional[str]:
    """One line for the events a person acts on; None for the rest.

    Used by the plugin's monitor: every line it prints becomes a turn of the
    orchestrating Claude session, so routine events are left out.
    """
    t = ev.get("type")
    n = ev.get("stage")
    name = f" ({ev['name']})" if ev.get("name") else ""
    if t == "merge_complete":
        nxt = ev.get("next") or []
        started = f"; started {', '.join(map(str, nxt))}" if nxt else ""
        commit = str(ev.get("merge_commit") or "")[:12]
        return f"autorun: stage {n}{name} merged into {ev.get('base_branch')} {commit}{started}"
    if t == "stage_failed":
        return f"autorun: stage {n}{name} FAILED: {ev.get('reason', '')}"
    if t == "stage_cancelled":
        return f"autorun: stage {n}{name} cancelled (branch and worktree kept)"
    if t == "stage_blocked" and ev.get("blocked_by") is not None:
        return f"autorun: stage {n}{name} blocked by the failure of stage {ev['blocked_by']}"
    if t == "merge_conflict":
        files = ", ".join(ev.get("files") or [])
        return (
            f"autorun: stage {n} merge conflict in {files}; resolving in {ev.get('merge_worktree')}"
        )
    if t == "merge_blocked":
        files = ", ".join(ev.get("files") or [])
        return f"autorun: stage {n} merge waits for your uncommitted changes in {files}"
    if t == "launch_failed":
        return f"autorun: stage {n} failed to launch (will retry): {ev.get('error', '')}"
    if t == "review_waiting":
        return f"autorun: stage {n} asks you questions: {ev.get('review_file', '')}"
    if t == "orchestration_complete":
        return (
            f"autorun: run {ev.get('plan_name')} finished ({ev.get('result')}): "
            f"{ev.get('completed')}/{ev.get('total_stages')} merged, "
            f"{ev.get('failed')} failed, {ev.get('blocked')} blocked"
            + (f", {ev['cancelled']} cancelled" if ev.get("cancelled") else "")
        )
    if t == "stall_reported":
        how = f"; {ev['command']}" if ev.get("command") else ""
        return f"autorun: stage {n} stalled: {ev.get('reason', '')}{how}".rstrip()
    if t == "permission_waiting":
        what = f"{ev.get('tool')}" + (f" ({ev['detail']})" if ev.get("detail") else "")
        return (
            f"autorun: stage {n}{name} waits for your permission to run {what}: {ev.get('attach')}"
        )
    if t == "usage_limit_detected":
        until = ev.get("wait_until") or ev.get("reset_at") or "later"
        return (
            f"autorun: stage {n} hit a limit ({ev.get('kind') or 'usage'}); continuing at {until}"
        )
    if t in ("session_dead", "stage_restarted"):
        return f"autorun: stage {n}: {t.replace('_', ' ')} {ev.get('reason', '')}".rstrip()
    return None


# Every event type notable_line() prints (a test keeps this list, notable_line
# and the emitters consistent).
NOTABLE_TYPES = (
    "merge_complete",
    "stage_failed",
    "stage_cancelled",
    "stage_blocked",
    "merge_conflict",
    "merge_blocked",
    "launch_failed",
    "review_waiting",
    "orchestration_complete",
    "stall_reported",
    "permission_waiting",
    "usage_limit_detected",
    "session_dead",
    "stage_restarted",
)


__all__ = [
    "EVENTS_FILE",
    "FOLLOW_GRACE",
    "NOTABLE_TYPES",
    "append_event",
    "ensure_flushed",
    "event_line",
    "events_path",
    "flush_journal",
    "follow_events",
    "follow_run",
    "journal_missing",
    "log_size",
    "make_event",
    "notable_line",
    "read_events",
    "utc_now",
    "write_lines",
]
