"""The monitor loop (``autorun monitor``): keep a run going unattended.

This module is the loop; it calls the others for the rest: the answers to a
quiet pane (:mod:`autorun_py.stalls`, over the pure classifier
:mod:`autorun_py.panes`), the supervisor (:mod:`autorun_py.supervisor`: the
one-per-run lock, the pid record, the log, the options), recovery
(:mod:`autorun_py.recovery`: dead stages, interrupted and blocked merges) and
:func:`autorun_py.launch.launch_ready`. Each check reads
``status.json`` and the run's tmux sessions, takes two snapshots of every
running stage's pane ``gap`` seconds apart, and then:

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
  (:func:`autorun_py.recovery.recover_dead_stage`: finish its merge, or resume its
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
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from autorun_py import launchers
from autorun_py.config import Config, load_config
from autorun_py.errors import AutorunError
from autorun_py.events import ensure_flushed, utc_now
from autorun_py.launch import launch_ready
from autorun_py.launchers import stage_alive, stage_uses_tmux
from autorun_py.recovery import (
    finish_interrupted_merges,
    recover_dead_stage,
    retry_blocked_if_changed,
)
from autorun_py.stalls import CheckResult, PaneWatch
from autorun_py.state import IN_PROGRESS, RUN_RUNNING
from autorun_py.supervisor import MonitorOptions, monitor_pid, try_lock
from autorun_py.timeutil import parse_utc as _parse_iso

# ---------------------------------------------------------------------------- the monitor


@dataclass
class MonitorOutcome:
    """How a monitor loop ended, and what it did."""
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


class Monitor(PaneWatch):
    """The loop: checks every ``interval`` seconds until the run ends (see the module doc).

    ``environ``: the environment the monitor was started with, captured at its CLI
    edge; each check re-loads the configuration with it, so that an edit of
    ``config.json`` during the run is seen."""

    def _config(self) -> Optional[Config]:
        try:
            return load_config(self.environ)
        except AutorunError:
            return None  # _recover_missing loads it again (and reports what is wrong)

    # -- one check -----------------------------------------------------------------------
    def check(self) -> CheckResult:
        result = CheckResult()
        ensure_flushed(self.orch_dir)  # events of a writer killed after its state write
        state = self.store.read()
        if state.is_finished() or state.status != RUN_RUNNING:
            result.finished = True
            return result
        config = load_config(self.environ)
        for rec in finish_interrupted_merges(self.orch_dir, source="monitor", config=config):
            self._finding(result, "interrupted_merge", stage=rec.stage, outcome=rec.action)
        for rec in retry_blocked_if_changed(self.orch_dir, source="monitor", config=config):
            self._finding(result, "blocked_merge_retried", stage=rec.stage, outcome=rec.action)
        from autorun_py.merge import merge  # passed down: the launchers sit below merge

        def merge_stage(orch: Path, number: int) -> Any:
            return merge(orch, number, config=config)

        for found in launchers.poll(state, merge_stage):  # stages that report through git
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
            pane = self.tmux.live_pane(st.session, state.orch_dir) if st.session else None
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
            launched = launch_ready(
                self.orch_dir, config=config, tmux=self.tmux, gap_source="monitor"
            ).launched
        except AutorunError as exc:
            self._finding(result, "launch_error", error=str(exc))
            launched = []
        if launched:
            self._finding(result, "wave_gap_detected", stages=launched)
        result.finished = self.store.read().is_finished()
        return result

    def _recover_missing(self, result: CheckResult, n: int, config: Optional[Config]) -> bool:
        """Bring back (or fail) a stage in progress whose session is gone; True when
        something was done."""
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
                config=config or load_config(self.environ),
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

    def _sleep_watching(
        self, seconds: float, result: CheckResult, config: Optional[Config]
    ) -> set[int]:
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


def run_monitor(
    orch_dir: Path,
    options: MonitorOptions,
    *,
    environ: Mapping[str, str],
    echo: Optional[Callable[[str], None]] = None,
) -> MonitorOutcome:
    """``autorun monitor``: check until the run ends (or once); ``environ``: the
    environment its CLI edge was started with (see :class:`Monitor`)."""
    return Monitor(orch_dir, options, environ=environ, echo=echo).run()
