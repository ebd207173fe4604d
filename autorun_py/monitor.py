"""``autorun monitor``: keep a run going unattended.

One monitor per run (a non-blocking file lock, ``<orch>/monitor.lock``). Each
check reads ``status.json`` and the run's tmux sessions, takes two snapshots of
every running stage's pane ``gap`` seconds apart, and then:

- a pane that did not change and shows Claude Code's usage-limit message is
  left alone until the reset time it names (a doubling backoff when it names
  none), then gets ``continue``; the wait is in ``status.json`` (the status
  view shows it);
- a stage waiting for a review answer is never nudged;
- a pane that did not change and sits at the idle prompt (``❯``, older ``>``)
  gets ``continue``, at most ``max_nudges`` times in a row without progress;
  then the stage is unstuck (:func:`autorun_py.hooks.unstick`: its committed
  work merged, or a ``stall_reported`` event, a notification and an inbox
  entry naming the command that would unstick it); a nudge names the stage's
  next step (:func:`autorun_py.handoff.next_step`), not a bare ``continue``;
- a limit wait recorded by the ``StopFailure`` hook is continued once it is over,
  unless the session went on by itself;
- a stage in progress whose session is gone is recovered
  (:func:`autorun_py.resume.recover_dead_stage`: finish its merge, or resume its
  Claude session in its worktree), at most ``max_restarts`` times; then it is
  marked failed with the reason (a circuit breaker);
- merges blocked by the user's uncommitted changes are retried once the base
  checkout changed; stages that are ready but not running are launched.

Every finding is an event in ``events.jsonl`` and a line in
``$AUTORUN_HOME/logs/<slug>-monitor.log``. When every stage is completed,
failed or blocked, the monitor writes the run report and exits.
"""

from __future__ import annotations

import datetime
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from autorun_py import launchers, paths
from autorun_py.errors import AutorunError, ExitCode
from autorun_py.events import utc_now
from autorun_py.launchers import stage_alive, stage_uses_tmux
from autorun_py.resume import stage_record
from autorun_py.state import IN_PROGRESS, RUN_RUNNING, RunState, StatusStore
from autorun_py.timeutil import format_utc as _iso
from autorun_py.timeutil import parse_utc as _parse_iso

MONITOR_LOCK = "monitor.lock"

# ---------------------------------------------------------------------------- options


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, "") or default)
    except ValueError:
        return default


@dataclass(frozen=True)
class MonitorOptions:
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

    @classmethod
    def from_env(cls, **overrides: Any) -> MonitorOptions:
        """Defaults from ``AUTORUN_MONITOR_INTERVAL`` / ``_GAP`` / ``_LIMIT_MARGIN``..."""
        base: dict[str, Any] = {
            "interval": _env_float("AUTORUN_MONITOR_INTERVAL", cls.interval),
            "gap": _env_float("AUTORUN_MONITOR_GAP", cls.gap),
            "max_nudges": int(_env_float("AUTORUN_MONITOR_MAX_NUDGES", cls.max_nudges)),
            "max_restarts": int(_env_float("AUTORUN_MONITOR_MAX_RESTARTS", cls.max_restarts)),
            "limit_margin": _env_float("AUTORUN_MONITOR_LIMIT_MARGIN", cls.limit_margin),
            "limit_backoff": _env_float("AUTORUN_MONITOR_LIMIT_BACKOFF", cls.limit_backoff),
            "dead_grace": _env_float("AUTORUN_MONITOR_DEAD_GRACE", cls.dead_grace),
            "early_death": _env_float("AUTORUN_MONITOR_EARLY_DEATH", cls.early_death),
        }
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)


# ---------------------------------------------------------------------------- panes

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


# ---------------------------------------------------------------------------- lock & spawn


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


def monitor_log_path(state: RunState) -> Path:
    return paths.layout().monitor_log(state.project_slug)


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
    state = StatusStore(orch_dir).read()
    if state.status != RUN_RUNNING or state.is_finished() or state.monitor.get("disabled"):
        return None
    pid = monitor_pid(orch_dir)
    if pid is not None:
        return pid
    return spawn_monitor(orch_dir)


def monitor_alive(state: RunState) -> Optional[int]:
    """The pid of the run's monitor when it is alive, from ``status.json`` alone (no
    lock is taken: a reader must never make a starting monitor think another runs)."""
    pid = state.monitor.get("pid")
    if not isinstance(pid, int) or pid <= 0 or state.monitor.get("exited_at"):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


# ---------------------------------------------------------------------------- the monitor


@dataclass
class CheckResult:
    findings: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False


@dataclass
class MonitorOutcome:
    already_running: bool = False
    pid: Optional[int] = None
    checks: int = 0
    findings: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False
    report: Optional[str] = None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "already_running": self.already_running,
            "pid": self.pid,
            "checks": self.checks,
            "findings": self.findings,
            "finished": self.finished,
            "report": self.report,
            "reason": self.reason,
        }


class Monitor:
    def __init__(
        self,
        orch_dir: Path,
        options: MonitorOptions,
        *,
        echo: Optional[Callable[[str], None]] = None,
    ) -> None:
        from autorun_py.tmux import Tmux

        self.orch_dir = Path(orch_dir)
        self.opts = options
        self.store = StatusStore(self.orch_dir)
        self.tmux = Tmux.from_env()
        self.echo = echo
        self._log_file: Optional[Path] = None

    def _config(self) -> Any:
        from autorun_py.config import load_config

        try:
            return load_config()
        except AutorunError:
            return None  # recover_dead_stage loads it itself (and reports what is wrong)

    # -- logging ---------------------------------------------------------------------
    def log(self, text: str) -> None:
        line = f"{utc_now()} {text}"
        if self._log_file is None:
            try:
                self._log_file = monitor_log_path(self.store.read())
            except AutorunError:
                self._log_file = paths.layout().monitor_log(self.orch_dir.name)
        self._log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self._log_file, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
        if self.echo is not None:
            self.echo(line)

    def _finding(self, result: CheckResult, kind: str, **fields: Any) -> None:
        result.findings.append({"type": kind, **fields})
        rest = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        self.log(f"{kind} {rest}".rstrip())

    def _emit(self, result: CheckResult, kind: str, **fields: Any) -> None:
        """An event and a log line, in one status transaction."""
        with self.store.transaction() as txn:
            txn.emit(kind, **fields)
        self._finding(result, kind, **fields)

    def _update(self, number: int, fn: Callable[[dict[str, Any]], bool]) -> None:
        """Change the monitor's record of a stage (write only when ``fn`` says so)."""
        probe = stage_record(self.store.read().monitor, number)
        if not fn(dict(probe)):
            return
        with self.store.transaction() as txn:
            fn(stage_record(txn.state.monitor, number))

    # -- one check -----------------------------------------------------------------------
    def check(self) -> CheckResult:
        from autorun_py.config import load_config
        from autorun_py.events import ensure_flushed
        from autorun_py.resume import (
            finish_interrupted_merges,
            launch_gaps,
            live_pane,
            retry_blocked_if_changed,
        )

        result = CheckResult()
        ensure_flushed(self.orch_dir)  # events of a writer killed after its state write
        state = self.store.read()
        if state.is_finished() or state.status != RUN_RUNNING:
            result.finished = True
            return result
        config = load_config()
        for rec in finish_interrupted_merges(self.orch_dir, source="monitor"):
            self._finding(result, "interrupted_merge", stage=rec.stage, outcome=rec.action)
        for rec in retry_blocked_if_changed(self.orch_dir, source="monitor"):
            self._finding(result, "blocked_merge_retried", stage=rec.stage, outcome=rec.action)
        for found in launchers.poll(state):  # stages that report through git (remote)
            self._finding(result, f"remote_{found.pop('kind')}", **found)

        running = {
            n: st
            for n, st in state.stages.items()
            if st.status == IN_PROGRESS and st.merge_state != "blocked"
        }
        first: dict[int, tuple[str, str]] = {}
        missing: list[int] = []
        for n, st in sorted(running.items()):
            if not stage_uses_tmux(state, st):  # no pane: liveness from its launcher
                if not stage_alive(self.tmux, state, st):
                    missing.append(n)
                continue
            pane = live_pane(self.tmux, st.session, state.orch_dir) if st.session else None
            if pane is None:
                missing.append(n)
                continue
            try:
                first[n] = (pane, self.tmux.capture_pane(pane))
            except AutorunError:
                missing.append(n)
        for n in missing:  # at once: a session that died early is reported now
            self._recover_missing(result, n, config)
        if first:
            gone = self._sleep_watching(self.opts.gap, result, config)
            first = {n: v for n, v in first.items() if n not in gone}
        state = self.store.read()
        now = datetime.datetime.now().astimezone()

        for n, (pane, before) in sorted(first.items()):
            st = state.stages[n]
            if st.status != IN_PROGRESS:
                continue
            try:
                after = self.tmux.capture_pane(pane)
                screen = self.tmux.capture_pane(pane, lines=0)  # the visible part only
            except AutorunError:
                continue  # gone meanwhile: the next check sees it
            self._check_pane(result, state, n, pane, before, after, screen, now)

        try:
            launched = launch_gaps(self.orch_dir, source="monitor", config=config, tmux=self.tmux)
        except AutorunError as exc:
            self._finding(result, "launch_error", error=str(exc))
            launched = []
        if launched:
            self._finding(result, "wave_gap_detected", stages=launched)
        result.finished = self.store.read().is_finished()
        return result

    def _recover_missing(self, result: CheckResult, n: int, config: Any) -> bool:
        """Bring back (or fail) a stage in progress whose session is gone; True when
        something was done."""
        from autorun_py.resume import recover_dead_stage

        state = self.store.read()
        st = state.stages[n]
        if st.status != IN_PROGRESS or st.merge_state == "blocked":
            return False
        if stage_alive(self.tmux, state, st):
            return False
        if st.start_commit is None:
            now = datetime.datetime.now().astimezone()
            claimed_at = _parse_iso(st.launched_at)
            age = (now - claimed_at).total_seconds() if claimed_at else self.opts.dead_grace
            if age < self.opts.dead_grace:
                return False  # its launcher may still be starting it
        try:
            rec = recover_dead_stage(
                self.orch_dir,
                n,
                config=config,
                tmux=self.tmux,
                source="monitor",
                max_restarts=self.opts.max_restarts,
                early_death=self.opts.early_death or None,
            )
        except AutorunError as exc:
            self._finding(result, "recovery_error", stage=n, error=str(exc))
            return True
        if rec.action != "skipped":
            self._finding(result, f"stage_{rec.action}", stage=n, detail=rec.detail)
        return rec.action != "skipped"

    def _sleep_watching(self, seconds: float, result: CheckResult, config: Any) -> set[int]:
        """Sleep ``seconds``, looking every second for a running stage whose session
        ended: it is handled at once (an agent that cannot start is reported within
        seconds, not after the next check). Returns the stages handled."""
        handled: set[int] = set()
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return handled
            time.sleep(min(1.0, left))
            try:
                state = self.store.read()
                running = [
                    n
                    for n, st in sorted(state.stages.items())
                    if st.status == IN_PROGRESS
                    and st.merge_state != "blocked"
                    and st.session
                    and st.start_commit
                    and n not in handled
                    and stage_uses_tmux(state, st)  # other launchers': at the checks
                ]
                if not running:
                    continue
                names = set(self.tmux.list_sessions())
                for n in running:
                    if state.stages[n].session not in names:
                        handled.add(n)
                        self._recover_missing(result, n, config)
            except AutorunError as exc:
                self.log(f"watch_error {exc}")

    def _check_pane(
        self,
        result: CheckResult,
        state: RunState,
        n: int,
        pane: str,
        before: str,
        after: str,
        screen: str,
        now: datetime.datetime,
    ) -> None:
        st = state.stages[n]
        rec = stage_record(state.monitor, n)
        session = st.session
        view = classify_pane(screen, now, history=after)
        hook_limit = rec.get("limit")
        if isinstance(hook_limit, dict) and hook_limit.get("source") == "hook":
            # Recorded by the StopFailure hook; a Stop hook clears it when the session
            # went on by itself (Claude Code's own auto-continue): never both.
            self._hook_limit(result, n, session, pane, view, hook_limit, before != after, now)
            return
        if before != after:
            if view.kind != "usage_limit":
                # Progress: the agent works. Forget streaks and backoffs.
                def reset(r: dict[str, Any]) -> bool:
                    changed = False
                    if r.get("nudge_streak"):
                        r["nudge_streak"] = 0
                        changed = True
                    for key in (
                        "limit_backoff",
                        "stall_reported",
                        "review_waiting",
                        "dialog_reported",
                        "limit",
                    ):
                        if r.get(key):
                            r.pop(key, None)
                            changed = True
                    return changed

                self._update(n, reset)
            return
        handled = rec.get("limit_handled") or {}
        if view.kind == "usage_limit" and not (
            handled.get("line") == view.limit_line
            and int(handled.get("count", 0)) >= view.limit_count
        ):
            self._usage_limit(result, st.number, session, pane, view, rec, now)
            return
        if view.kind in ("idle", "usage_limit"):
            from autorun_py.review import is_stage_waiting

            if is_stage_waiting(self.orch_dir, n):
                if not rec.get("review_waiting"):
                    self._update(n, _set("review_waiting", True))
                    self._emit(result, "stall_review_wait", stage=n, session=session)
                return
            self._nudge(result, n, session, pane, rec)
            return
        if view.kind == "dialog" and not rec.get("dialog_reported"):
            self._update(n, _set("dialog_reported", True))
            self._emit(result, "stall_dialog", stage=n, session=session)

    def _hook_limit(
        self,
        result: CheckResult,
        n: int,
        session: Optional[str],
        pane: str,
        view: PaneState,
        limit: dict[str, Any],
        changed: bool,
        now: datetime.datetime,
    ) -> None:
        wait_until = _parse_iso(limit.get("until"))
        if wait_until is not None and now < wait_until:
            return  # still waiting; the status view shows until when
        if changed or view.kind == "busy":
            return  # it went on by itself; its Stop hook clears the record
        text = next_step_text(self.store.read(), n)
        try:
            type_continue(self.tmux, pane, text, owner=str(self.orch_dir))
        except AutorunError as exc:
            self._finding(result, "nudge_error", stage=n, error=str(exc))
            return
        with self.store.transaction() as txn:
            r = stage_record(txn.state.monitor, n)
            r.pop("limit", None)
            txn.emit(
                "usage_limit_continue_sent",
                stage=n,
                session=session,
                kind=limit.get("kind"),
                source="hook",
            )
        self._finding(result, "usage_limit_continue_sent", stage=n, session=session)

    def _nudge(
        self, result: CheckResult, n: int, session: Optional[str], pane: str, rec: dict[str, Any]
    ) -> None:
        streak = int(rec.get("nudge_streak", 0))
        if streak >= self.opts.max_nudges:
            if not rec.get("stall_reported"):
                from autorun_py.hooks import unstick

                try:
                    outcome = unstick(
                        self.orch_dir,
                        n,
                        source=f"idle after {streak} nudge(s) from the monitor",
                        nudges=streak,
                    )
                except AutorunError as exc:
                    self._finding(result, "unstick_error", stage=n, error=str(exc))
                    return
                self._finding(result, "stall_reported", stage=n, nudges=streak, outcome=outcome)
            return
        self._emit(result, "stall_detected", stage=n, session=session, idle_for=self.opts.gap)
        try:
            type_continue(
                self.tmux, pane, next_step_text(self.store.read(), n), owner=str(self.orch_dir)
            )
        except AutorunError as exc:
            self._finding(result, "nudge_error", stage=n, error=str(exc))
            return
        with self.store.transaction() as txn:
            st = txn.state.stage(n)
            st.counters["nudges"] = st.counters.get("nudges", 0) + 1
            r = stage_record(txn.state.monitor, n)
            r["nudge_streak"] = streak + 1
            txn.emit("stall_continue_sent", stage=n, session=session, nudge=streak + 1)
        self._finding(result, "stall_continue_sent", stage=n, session=session, nudge=streak + 1)

    def _usage_limit(
        self,
        result: CheckResult,
        n: int,
        session: Optional[str],
        pane: str,
        view: PaneState,
        rec: dict[str, Any],
        now: datetime.datetime,
    ) -> None:
        active = rec.get("limit") or {}
        same = active.get("line") == view.limit_line and active.get("count") == view.limit_count
        if not same:
            if view.reset_at is not None:
                reset_at: Optional[datetime.datetime] = view.reset_at
                until = view.reset_at + datetime.timedelta(seconds=self.opts.limit_margin)
                backoff = rec.get("limit_backoff")
            else:
                reset_at = None
                prev = rec.get("limit_backoff")
                backoff = (
                    self.opts.limit_backoff
                    if not prev
                    else min(float(prev) * 2, self.opts.limit_backoff_max)
                )
                until = now + datetime.timedelta(seconds=float(backoff))
            record = {
                "line": view.limit_line,
                "count": view.limit_count,
                "reset_at": _iso(reset_at) if reset_at else None,
                "until": _iso(until, ceil=True),  # never continue before it
                "named": reset_at is not None,
            }
            with self.store.transaction() as txn:
                r = stage_record(txn.state.monitor, n)
                r["limit"] = record
                r["limit_backoff"] = backoff
                st = txn.state.stage(n)
                st.counters["limit_waits"] = st.counters.get("limit_waits", 0) + 1
                txn.emit(
                    "usage_limit_detected",
                    stage=n,
                    session=session,
                    message=view.limit_line,
                    reset_at=record["reset_at"],
                    wait_until=record["until"],
                )
            self._finding(
                result,
                "usage_limit_detected",
                stage=n,
                session=session,
                reset_at=record["reset_at"],
                wait_until=record["until"],
            )
            return
        wait_until = _parse_iso(active.get("until"))
        if wait_until is not None and now < wait_until:
            return  # still waiting; the status view shows until when
        try:
            type_continue(self.tmux, pane, owner=str(self.orch_dir))
        except AutorunError as exc:
            self._finding(result, "nudge_error", stage=n, error=str(exc))
            return
        with self.store.transaction() as txn:
            r = stage_record(txn.state.monitor, n)
            r.pop("limit", None)
            r["limit_handled"] = {"line": view.limit_line, "count": view.limit_count}
            txn.emit(
                "usage_limit_continue_sent",
                stage=n,
                session=session,
                reset_at=active.get("reset_at"),
            )
        self._finding(
            result,
            "usage_limit_continue_sent",
            stage=n,
            session=session,
            reset_at=active.get("reset_at"),
        )

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> MonitorOutcome:
        outcome = MonitorOutcome(pid=os.getpid())
        lock = try_lock(self.orch_dir, wait=2.0)
        if lock is None:
            outcome.already_running = True
            outcome.pid = monitor_pid(self.orch_dir)
            outcome.reason = "another monitor is running for this run"
            return outcome

        def _term(signum: int, _frame: Any) -> None:
            raise SystemExit(128 + signum)

        previous = signal.signal(signal.SIGTERM, _term)
        reason = "stopped"
        try:
            if not self.opts.once:
                with self.store.transaction() as txn:
                    txn.state.monitor.update(
                        {
                            "pid": os.getpid(),
                            "started_at": utc_now(),
                            "interval": self.opts.interval,
                            "gap": self.opts.gap,
                            "exited_at": None,
                            "exit_reason": None,
                        }
                    )
                    txn.emit(
                        "monitor_started",
                        pid=os.getpid(),
                        interval=self.opts.interval,
                        gap=self.opts.gap,
                    )
                self.log(
                    f"monitor_started pid={os.getpid()} interval={self.opts.interval} "
                    f"gap={self.opts.gap}"
                )
            while True:
                try:
                    res = self.check()
                except AutorunError as exc:
                    if self.opts.once:
                        raise  # one check asked for: its error is the answer
                    if not self.store.exists():
                        reason = "the run's status.json is gone"
                        self.log(f"monitor_error {exc}")
                        break
                    self.log(f"check_error {exc}")
                    res = CheckResult()
                except Exception as exc:  # a bug must not end a run's only monitor
                    if self.opts.once:
                        raise
                    import traceback

                    where = traceback.format_exc().strip().splitlines()
                    self.log(f"check_crash {type(exc).__name__}: {exc} | " + " | ".join(where[-6:]))
                    res = CheckResult()
                outcome.checks += 1
                outcome.findings += res.findings
                if res.finished:
                    outcome.finished = True
                    reason = "every stage is completed, failed or blocked"
                    outcome.report = self._write_report()
                    again = self.store.read()
                    if again.status == "cancelled":
                        reason = "the run was cancelled"
                    if again.status == RUN_RUNNING and not again.is_finished():
                        # A retry started a stage meanwhile: it would find this
                        # monitor holding the lock and start none. Keep watching.
                        outcome.finished = False
                        continue
                    break
                if self.opts.once:
                    reason = "--once"
                    break
                between = CheckResult()
                self._sleep_watching(self.opts.interval, between, self._config())
                outcome.findings += between.findings
        except SystemExit:
            reason = "terminated"
            raise
        finally:
            outcome.reason = reason
            if not self.opts.once:
                try:
                    with self.store.transaction() as txn:
                        txn.state.monitor.update({"exited_at": utc_now(), "exit_reason": reason})
                        txn.emit("monitor_stopped", pid=os.getpid(), reason=reason)
                    self.log(f"monitor_stopped reason={reason!r}")
                except (AutorunError, OSError):
                    pass
            signal.signal(signal.SIGTERM, previous)
            lock.release()
        return outcome

    def _write_report(self) -> Optional[str]:
        from autorun_py.report import write_report

        try:
            md, _js = write_report(self.orch_dir)
        except (AutorunError, OSError) as exc:
            self.log(f"report_error {exc}")
            return None
        self.log(f"report_written path={md}")
        return str(md)


def next_step_text(state: RunState, n: int) -> str:
    """What a nudge types: ``continue`` and the stage's next step, on one line."""
    from autorun_py.handoff import engine_command, next_step

    try:
        step = next_step(state, state.stage(n), engine_command(os.environ))
    except (AutorunError, OSError):
        return "continue"
    return " ".join(f"continue: {step.text}".split())


def type_continue(tmux: Any, pane: str, text: str = "continue", *, owner: str) -> None:
    """Type ``text`` at the pane's prompt, then Enter a moment later (Claude Code
    takes text followed at once by Enter as a paste with a newline). Only into a
    session of the run ``owner`` (its ``AUTORUN_ORCH_DIR``): AutorunError otherwise."""
    if not tmux.owned_by(pane, owner):
        raise AutorunError(f"pane {pane} is not in a session of this run; not typing into it")
    tmux.send_keys(pane, text, enter=False)
    time.sleep(0.3)
    tmux.run(["send-keys", "-t", pane, "Enter"])


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], bool]:
    def fn(r: dict[str, Any]) -> bool:
        if r.get(key) == value:
            return False
        r[key] = value
        return True

    return fn


def run_monitor(
    orch_dir: Path, options: MonitorOptions, *, echo: Optional[Callable[[str], None]] = None
) -> MonitorOutcome:
    """``autorun monitor``: check until the run ends (or once)."""
    return Monitor(orch_dir, options, echo=echo).run()
