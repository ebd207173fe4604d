"""What the monitor does about a stage's pane after a check's two snapshots.

A pane that changed is progress: streaks, backoffs and reports are forgotten. A
pane that did not change and shows Claude Code's usage-limit message is left
alone until the reset time it names plus ``limit_margin`` (a doubling backoff
when it names none), then gets ``continue``; a limit wait the ``StopFailure``
hook recorded is continued once it is over, unless the session went on by itself.
A stage waiting for a review answer is never nudged. An idle prompt gets
``continue`` and the stage's next step (:func:`next_step_text`), at most
``max_nudges`` times in a row without progress; then the stage is unstuck
(:func:`autorun_py.hooks.unstick`). A dialog (a permission or choice menu) is
reported once and never typed into. :class:`PaneWatch` also holds what the loop
(:mod:`autorun_py.monitor`) shares with these answers: the run's store, its tmux
server, the options, and the findings (each a log line, an event when it is one).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Optional

from autorun_py.errors import AutorunError
from autorun_py.panes import PaneState, classify_pane
from autorun_py.state import RunState, StatusStore
from autorun_py.state.side import LimitRecord, StageWatch
from autorun_py.supervisor import MonitorLog, MonitorOptions, stage_record
from autorun_py.timeutil import format_utc as _iso
from autorun_py.timeutil import parse_utc as _parse_iso
from autorun_py.tmux import Tmux


@dataclass
class CheckResult:
    """What one monitor check found and whether the run is finished."""
    findings: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False


class PaneWatch:
    """A run's store, tmux server, options and findings, and the answers to a quiet pane."""

    def __init__(
        self,
        orch_dir: Path,
        options: MonitorOptions,
        *,
        environ: Mapping[str, str],
        echo: Optional[Callable[[str], None]] = None,
    ) -> None:
        self.orch_dir = Path(orch_dir)
        self.environ = dict(environ)  # the monitor's, captured at its CLI edge
        self.opts = options
        self.store = StatusStore(self.orch_dir)
        self.tmux = Tmux.from_env()
        self._log = MonitorLog(self.orch_dir, echo)

    # -- findings ---------------------------------------------------------------------
    def log(self, text: str) -> None:
        self._log.write(text)

    def _finding(self, result: CheckResult, kind: str, **fields: Any) -> None:
        result.findings.append({"type": kind, **fields})
        rest = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        self.log(f"{kind} {rest}".rstrip())

    def _emit(self, result: CheckResult, kind: str, **fields: Any) -> None:
        """An event and a log line, in one status transaction."""
        with self.store.transaction() as txn:
            txn.emit(kind, **fields)
        self._finding(result, kind, **fields)

    def _update(self, number: int, fn: Callable[[StageWatch], bool]) -> None:
        """Change the monitor's record of a stage (write only when ``fn`` says so)."""
        probe = stage_record(self.store.read().monitor, number)
        if not fn(probe.copy()):
            return
        with self.store.transaction() as txn:
            fn(stage_record(txn.state.monitor, number))

    # -- a pane after two snapshots ----------------------------------------------------
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
                def reset(r: StageWatch) -> bool:
                    changed = False
                    if r.get("nudge_streak"):
                        r["nudge_streak"] = 0
                        changed = True
                    forget: tuple[_Forgotten, ...] = (
                        "limit_backoff",
                        "stall_reported",
                        "review_waiting",
                        "dialog_reported",
                        "limit",
                    )
                    for key in forget:
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
        limit: LimitRecord,
        changed: bool,
        now: datetime.datetime,
    ) -> None:
        wait_until = _parse_iso(limit.get("until"))
        if wait_until is not None and now < wait_until:
            return  # still waiting; the status view shows until when
        if changed or view.kind == "busy":
            return  # it went on by itself; its Stop hook clears the record
        text = next_step_text(self.store.read(), n, self.opts.engine)
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
        self, result: CheckResult, n: int, session: Optional[str], pane: str, rec: StageWatch
    ) -> None:
        streak = int(rec.get("nudge_streak", 0))
        if streak >= self.opts.max_nudges:
            if not rec.get("stall_reported"):
                from autorun_py.config import load_config
                from autorun_py.hooks import unstick

                try:
                    outcome = unstick(
                        self.orch_dir,
                        n,
                        config=load_config(self.environ),
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
                self.tmux,
                pane,
                next_step_text(self.store.read(), n, self.opts.engine),
                owner=str(self.orch_dir),
            )
        except AutorunError as exc:
            self._finding(result, "nudge_error", stage=n, error=str(exc))
            return
        with self.store.transaction() as txn:
            st = txn.state.stage(n)
            st.bump("nudges")
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
        rec: StageWatch,
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
            record: LimitRecord = {
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
                st.bump("limit_waits")
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


def next_step_text(state: RunState, n: int, engine: Optional[str] = None) -> str:
    """What a nudge types: ``continue`` and the stage's next step, on one line.
    ``engine``: how the step names the engine (None: this package's own shim)."""
    from autorun_py.handoff import engine_command, next_step

    try:
        step = next_step(state, state.stage(n), engine or engine_command({}))
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


# What progress in a pane makes the monitor forget of a stage.
_Forgotten = Literal[
    "limit_backoff", "stall_reported", "review_waiting", "dialog_reported", "limit"
]


def _set(
    key: Literal["review_waiting", "dialog_reported"], value: bool
) -> Callable[[StageWatch], bool]:
    def fn(r: StageWatch) -> bool:
        if r.get(key) == value:
            return False
        r[key] = value
        return True

    return fn
