"""The monitor's supervisor: whether a run's monitor runs, starting one, and its records.

One monitor per run holds ``<orch>/monitor.lock`` (:func:`try_lock`); its pid and
start/exit are recorded in ``status.json``'s ``monitor`` (:func:`monitor_pid`
probes the lock, :func:`monitor_alive` reads only the record); :func:`spawn_monitor`
starts ``python -m autorun_py monitor`` detached, its output appended to
``$AUTORUN_HOME/logs/<slug>-monitor.log`` (:class:`MonitorLog` writes that log's
lines); :func:`ensure_monitor` is what every command that starts a session calls.
:class:`MonitorOptions` is the monitor's policy (paces, nudge and restart limits,
limit waits) as plain values: the edges read them from the command line and the
``AUTORUN_MONITOR_*`` environment (:mod:`autorun_py.cli.monitor_env`).
:func:`stage_record` is the monitor's own per-stage record in ``status.json``.
Nothing here watches a pane or recovers a stage (:mod:`autorun_py.monitor`,
:mod:`autorun_py.recovery`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from autorun_py import paths
from autorun_py.errors import AutorunError, ExitCode
from autorun_py.events import utc_now
from autorun_py.state import RUN_RUNNING, RunState, StatusStore
from autorun_py.state.side import MonitorState, StageWatch, stage_watch

MONITOR_LOCK = "monitor.lock"


@dataclass(frozen=True)
class MonitorOptions:
    """How the monitor loop runs: its intervals and switches."""
    interval: float = 60.0  # seconds between checks
    gap: float = 60.0  # seconds between a check's two pane snapshots
    once: bool = False
    max_nudges: int = 5  # `continue`s in a row without progress, per stage
    max_restarts: int = 3  # session restarts per stage before it is failed
    limit_margin: float = 60.0  # wait this long past a named reset time
    limit_backoff: float = 300.0  # first wait when the message names no reset time
    limit_backoff_max: float = 3600.0
    dead_grace: float = 120.0  # a claimed stage without a start commit gets this long
    early_death: float = 15.0  # a session silent this soon after its start is not restarted
    # How a nudge names the engine (the commands' ``R``); None: this package's own shim.
    engine: Optional[str] = None


def stage_record(monitor: MonitorState, number: int) -> StageWatch:
    """The monitor's own per-stage record inside ``status.json``'s ``monitor``
    (typed: :mod:`autorun_py.state.side`)."""
    return stage_watch(monitor, number)


# ---------------------------------------------------------------------------- the lock


def lock_path(orch_dir: Path) -> Path:
    return Path(orch_dir) / MONITOR_LOCK


def try_lock(orch_dir: Path, wait: float = 0.0) -> Optional[Any]:
    """The run's monitor lock, or None when another monitor holds it.

    A monitor that starts waits up to ``wait`` seconds: :func:`monitor_pid` takes
    the lock for an instant to see whether anyone holds it, and a monitor that
    starts in that instant must not take the probe for a running monitor.
    """
    from autorun_py.fsutil import Lock

    lock = Lock(lock_path(orch_dir), timeout=wait)
    if wait <= 0:
        return lock if lock.try_acquire() else None
    try:
        lock.acquire()
    except AutorunError as exc:
        if exc.exit_code == ExitCode.TIMEOUT:
            return None
        raise
    return lock


def monitor_pid(orch_dir: Path) -> Optional[int]:
    """The pid of the run's live monitor, or None when no monitor holds the lock."""
    lock = try_lock(orch_dir)
    if lock is not None:
        lock.release()
        return None
    try:
        state = StatusStore(orch_dir).read()
        pid = state.monitor.get("pid")
        return int(pid) if isinstance(pid, int) else -1
    except AutorunError:
        return -1


def monitor_alive(state: RunState) -> Optional[int]:
    """The pid of the run's monitor when it is alive, from ``status.json`` alone (no
    lock is taken: a reader must never make a starting monitor think another runs)."""
    pid = state.monitor.get("pid")
    if not isinstance(pid, int) or pid <= 0 or state.monitor.get("exited_at"):
        return None
    from autorun_py.proc import pid_alive

    return pid if pid_alive(pid) else None


# ---------------------------------------------------------------------------- the log


def monitor_log_path(state: RunState) -> Path:
    return paths.layout().monitor_log(state.project_slug)


class MonitorLog:
    """Lines of ``$AUTORUN_HOME/logs/<slug>-monitor.log``, each stamped with the UTC
    time, and shown through ``echo`` too when given (``autorun monitor`` without
    ``--quiet``)."""

    def __init__(self, orch_dir: Path, echo: Optional[Callable[[str], None]] = None) -> None:
        self.orch_dir = Path(orch_dir)
        self.echo = echo
        self._file: Optional[Path] = None

    def write(self, text: str) -> None:
        line = f"{utc_now()} {text}"
        if self._file is None:
            try:
                self._file = monitor_log_path(StatusStore(self.orch_dir).read())
            except AutorunError:
                self._file = paths.layout().monitor_log(self.orch_dir.name)
        self._file.parent.mkdir(parents=True, exist_ok=True)
        with open(self._file, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
        if self.echo is not None:
            self.echo(line)


# ---------------------------------------------------------------------------- spawning


def spawn_monitor(orch_dir: Path, extra_args: tuple[str, ...] = ()) -> Optional[int]:
    """Start ``python -m autorun_py monitor <orch>`` detached, its output appended to the
    monitor log; return its pid (None when a monitor already runs)."""
    orch_dir = Path(orch_dir)
    if monitor_pid(orch_dir) is not None:
        return None
    state = StatusStore(orch_dir).read()
    log = monitor_log_path(state)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        from autorun_py.proc import spawn

        child = spawn(
            [sys.executable, "-m", "autorun_py", "monitor", str(orch_dir), "--quiet", *extra_args],
            output=out,
        )
    # Until the new monitor has recorded itself (or exited: another one held the
    # lock), a second caller would see no monitor and start another; wait a moment.
    # Only status.json is read: probing the lock could make the child think another
    # monitor runs.
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if child.poll() is not None:
            return None
        try:
            mon = StatusStore(orch_dir).read().monitor
        except AutorunError:
            mon = {}
        if mon.get("pid") == child.pid and not mon.get("exited_at"):
            break
        time.sleep(0.02)
    return child.pid


def ensure_monitor(orch_dir: Path) -> Optional[int]:
    """Make sure the run's monitor is running (idempotent): every command that starts a
    session calls this, so no session runs unwatched. Returns the monitor's pid; None
    when the run is over or was started with ``--no-monitor``."""
    orch_dir = Path(orch_dir)
    state = StatusStore(orch_dir).read(lazy=True)
    if state.status != RUN_RUNNING or state.is_finished() or state.monitor.get("disabled"):
        return None
    pid = monitor_pid(orch_dir)
    if pid is not None:
        return pid
    return spawn_monitor(orch_dir)
