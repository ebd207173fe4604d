"""Claude Code's hooks as autorun's control plane (``autorun hook <event>``).

The plugin's ``hooks/hooks.json`` runs ``autorun hook <Event>`` with the hook's
JSON on stdin. Outside an autorun stage (no ``AUTORUN_ORCH_DIR`` /
``AUTORUN_STAGE`` in the session's environment, set by
:func:`autorun_py.launch.stage_env`) it does nothing. Inside one:

- ``Stop``: :func:`next_step` computes from ``status.json`` and git whether the
  stage reached a hand-off (merged, chained to its next step, waiting for a
  review answer or for the user's uncommitted changes, failed). If not, the stop
  is refused with the one next step, said concretely. After
  :data:`MAX_REFUSALS` refusals without progress the stop is let through and the
  stage is *unstuck* (:func:`unstick`): committed work in a clean worktree is
  merged by the engine; anything else is reported (a ``stall_reported`` event, a
  notification, an inbox entry naming the command that would unstick it).
- ``StopFailure``: an API error ended the turn (``rate_limit``, ...): recorded
  as the stage's limit wait (the status view shows it); the monitor types the
  next step once it is over, unless the session went on by itself meanwhile.
- ``PermissionRequest`` / ``Notification``: the session waits for a person
  (a permission answer, or input): an inbox entry and a notification naming the
  stage, the tool and the command to attach.
- ``SessionStart``: the Claude session id and transcript path, recorded.
- ``SessionEnd``: the stage's current session ended without a hand-off: it is
  recovered at once (:func:`autorun_py.recovery.recover_dead_stage`, in a
  detached process). ``tmux-closed <session>`` does the same for a process that
  died without running hooks (tmux's ``session-closed`` hook, set at launch:
  :func:`autorun_py.launchers.tmux_launcher.watch_session_close`).
- every ``Stop``: the session went on (a limit wait and an attention entry end).

What the Stop hook and the monitor tell a stage to do next, and when a stage has
handed off, is :mod:`autorun_py.handoff`; this module is the hooks' side: each
event's handler, their records in ``status.json``, and the detached recovery and
unstick actions they start. It is a little over 500 lines because the handlers
share those records and the rule that a hook never breaks its session; each
handler is short, and the recovery itself is :mod:`autorun_py.recovery`.

A hook never breaks the session: every error is logged
(``$AUTORUN_HOME/logs/hooks.log``) and the hook exits 0 with no output.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from autorun_py import paths
from autorun_py.errors import AutorunError
from autorun_py.events import utc_now
from autorun_py.handoff import engine_command, fingerprint, handed_off, next_step

if TYPE_CHECKING:
    from autorun_py.config import Config
    from autorun_py.supervisor import MonitorOptions

MAX_REFUSALS = 3  # Stop refusals without progress, per stage (Claude Code's own cap is 8)
HOOK_EVENTS = (
    "Stop",
    "StopFailure",
    "Notification",
    "PermissionRequest",
    "SessionStart",
    "SessionEnd",
)


@dataclass(frozen=True)
class HookOutput:
    """What a hook prints for Claude Code, and its exit status."""
    stdout: str = ""
    exit_code: int = 0


# --------------------------------------------------------------------------- context


def stage_of(environ: Mapping[str, str]) -> Optional[tuple[Path, int]]:
    """The stage a session belongs to, from its environment; None outside autorun."""
    orch = environ.get("AUTORUN_ORCH_DIR")
    stage = environ.get("AUTORUN_STAGE") or ""
    if not orch or not stage.isdigit():
        return None
    return Path(orch), int(stage)


def attach_command(session: Optional[str]) -> str:
    from autorun_py.tmux import Tmux

    return f"{Tmux.from_env().shell_prefix()} attach -t {shlex.quote('=' + (session or '?'))}"


def _hook_record(st: Any) -> dict[str, Any]:
    rec = st.extra.get("hooks")
    if not isinstance(rec, dict):
        rec = {}
        st.extra["hooks"] = rec
    return rec


# --------------------------------------------------------------------------- handlers


def _max_refusals(environ: Mapping[str, str]) -> int:
    try:
        return max(0, int(environ.get("AUTORUN_STOP_REFUSALS", "") or MAX_REFUSALS))
    except ValueError:
        return MAX_REFUSALS


def on_stop(
    orch_dir: Path, number: int, payload: dict[str, Any], environ: Mapping[str, str]
) -> HookOutput:
    from autorun_py.state import StatusStore

    store = StatusStore(orch_dir)
    sid = payload.get("session_id") if isinstance(payload.get("session_id"), str) else None
    r = engine_command(environ)
    with store.transaction() as txn:
        state = txn.state
        st = state.stage(number)
        rec = _hook_record(st)
        rec["last_stop_at"] = utc_now()
        _session_went_on(txn, number)
        why = handed_off(state, st, sid)
        if why is not None:
            if rec.get("refusals") and not (sid and sid != st.claude_session_id):
                rec["refusals"] = 0  # a hand-off (an older session's stop changes nothing)
            return HookOutput()
        step = next_step(state, st, r)
        fp = fingerprint(state, st)
        if rec.get("fingerprint") != fp:
            rec["fingerprint"] = fp
            rec["refusals"] = 0
        count = int(rec.get("refusals", 0) or 0)
        limit = _max_refusals(environ)
        if count < limit:
            rec["refusals"] = count + 1
            st.bump("stop_refusals")
            txn.emit(
                "stop_refused", stage=number, step=step.kind, refusal=count + 1, reason=step.text
            )
            reason = f"autorun: not done yet - {step.text}. (refusal {count + 1} of {limit})"
            return HookOutput(json.dumps({"decision": "block", "reason": reason}))
        rec["refusals"] = 0
    spawn("unstick", orch_dir, number, "stop hook")
    return HookOutput()


def on_stop_failure(
    orch_dir: Path, number: int, payload: dict[str, Any], opts: MonitorOptions
) -> HookOutput:
    """An API error ended the turn: wait (the monitor continues it once the wait is over)."""
    import datetime

    from autorun_py.state import StatusStore
    from autorun_py.supervisor import stage_record
    from autorun_py.timeutil import format_utc

    kind = str(payload.get("error") or "unknown")
    message = str(payload.get("last_assistant_message") or payload.get("error_details") or "")
    now = datetime.datetime.now(datetime.timezone.utc)
    store = StatusStore(orch_dir)
    with store.transaction() as txn:
        st = txn.state.stage(number)
        rec = stage_record(txn.state.monitor, number)
        prev = rec.get("limit_backoff")
        backoff = opts.limit_backoff if not prev else min(float(prev) * 2, opts.limit_backoff_max)
        until = now + datetime.timedelta(seconds=float(backoff))
        rec["limit"] = {
            "line": message[:300],
            "count": 0,
            "reset_at": None,
            "until": format_utc(until, ceil=True),
            "named": False,
            "source": "hook",
            "kind": kind,
            "at": format_utc(now),
        }
        rec["limit_backoff"] = backoff
        st.bump("limit_waits")
        txn.emit(
            "usage_limit_detected",
            stage=number,
            session=st.session,
            kind=kind,
            message=message[:300],
            reset_at=None,
            wait_until=rec["limit"]["until"],
            source="hook",
        )
    return HookOutput()


def on_attention(orch_dir: Path, number: int, event: str, payload: dict[str, Any]) -> HookOutput:
    """The session waits for a person: a permission answer (PermissionRequest, or a
    ``permission_prompt`` Notification) or input (``idle_prompt``)."""
    from autorun_py import attention
    from autorun_py.state import StatusStore
    from autorun_py.supervisor import stage_record

    ntype = str(payload.get("notification_type") or "")
    if event == "Notification" and ntype not in ("permission_prompt", "idle_prompt"):
        return HookOutput()
    store = StatusStore(orch_dir)
    state = store.read()
    st = state.stage(number)
    sid = payload.get("session_id") if isinstance(payload.get("session_id"), str) else None
    if event == "Notification" and ntype == "idle_prompt":
        if handed_off(state, st, sid) is not None:
            return HookOutput()
        # Idle without a hand-off, after the Stop hook let it through: unstick it.
        spawn("unstick", orch_dir, number, "idle notification")
        return HookOutput()
    tool = str(payload.get("tool_name") or "")
    tool_input = payload.get("tool_input")
    detail = ""
    if isinstance(tool_input, dict):
        detail = str(tool_input.get("command") or tool_input.get("file_path") or "")[:200]
    rec = stage_record(state.monitor, number)
    known = rec.get("attention") or {}
    if event == "Notification" and known.get("kind") == "permission":
        return HookOutput()  # PermissionRequest already told the user
    attach = attach_command(st.session)
    entry = {
        "kind": "permission",
        "tool": tool or known.get("tool") or "a tool",
        "detail": detail or known.get("detail") or "",
        "since": utc_now(),
        "attach": attach,
        "session": st.session,
    }
    with store.transaction() as txn:
        stage_record(txn.state.monitor, number)["attention"] = entry
        txn.emit(
            "permission_waiting",
            stage=number,
            name=st.name,
            tool=entry["tool"],
            detail=entry["detail"],
            attach=attach,
        )
    what = f"{entry['tool']}" + (f": {entry['detail']}" if entry["detail"] else "")
    message = (
        f"autorun: {Path(orch_dir).name} stage {number} ({st.name}) waits for your "
        f"permission to run {what}; answer it in `{attach}`"
    )
    attention.add(orch_dir, number, "permission", message, attach)
    attention.notify(message)
    return HookOutput()


def on_session_start(orch_dir: Path, number: int, payload: dict[str, Any]) -> HookOutput:
    from autorun_py.launch import record_session_id
    from autorun_py.state import StatusStore

    sid = payload.get("session_id")
    path = payload.get("transcript_path")
    if not isinstance(sid, str):
        return HookOutput()
    with StatusStore(orch_dir).transaction() as txn:
        st = txn.state.stage(number)
        record_session_id(st, sid)
        if isinstance(path, str):
            tr = st.extra.setdefault("claude_transcripts", {})
            if isinstance(tr, dict):
                tr[sid] = path
        txn.emit(
            "session_started",
            stage=number,
            claude_session_id=sid,
            transcript=path,
            source=payload.get("source"),
        )
    return HookOutput()


def _session_went_on(txn: Any, number: int) -> None:
    """A turn ended normally: a limit wait or a permission wait is over."""
    from autorun_py import attention
    from autorun_py.supervisor import stage_record

    r = stage_record(txn.state.monitor, number)
    limit = r.get("limit")
    if isinstance(limit, dict) and limit.get("source") == "hook":
        r.pop("limit", None)
        txn.emit("usage_limit_over", stage=number, source="the session went on")
    if r.pop("attention", None):
        txn.emit("attention_cleared", stage=number)
        attention.remove(Path(txn.state.orch_dir), number)


def on_session_end(
    orch_dir: Path, number: int, payload: dict[str, Any], *, source: str
) -> HookOutput:
    """The stage's session ended (or its pane exited): recover it unless it handed off."""
    from autorun_py.state import StatusStore

    state = StatusStore(orch_dir).read()
    st = state.stage(number)
    sid = payload.get("session_id") if isinstance(payload.get("session_id"), str) else None
    if handed_off(state, st, sid) is not None and st.merge_state != "blocked":
        return HookOutput()
    if st.merge_state == "blocked":
        return HookOutput()
    spawn("recover", orch_dir, number, source)
    return HookOutput()


def session_closed(session: str) -> None:
    """tmux closed ``session``: recover the running stage it was, if any (the one place
    that looks through the runs: tmux knows only the session's name)."""
    from autorun_py.rundir import all_orchestrations
    from autorun_py.state import IN_PROGRESS, RUN_RUNNING, StatusStore

    for orch_dir in all_orchestrations():
        try:
            state = StatusStore(orch_dir).read()
        except AutorunError:
            continue
        if state.status != RUN_RUNNING:
            continue
        for st in state.stages.values():
            if st.status == IN_PROGRESS and st.session == session:
                _log(f"tmux closed session {session}: stage {st.number} of {orch_dir}")
                on_session_end(Path(orch_dir), st.number, {}, source="tmux session-closed hook")


# --------------------------------------------------------------------------- detached work


def spawn(action: str, orch_dir: Path, number: int, source: str) -> None:
    """Run :func:`act` in a detached process (a hook returns at once; a session being
    killed does not take the work with it)."""
    log = paths.layout().hooks_log
    log.parent.mkdir(parents=True, exist_ok=True)
    from autorun_py.proc import child_env, spawn

    # not a Claude Code shell: merge may clean up at once
    env = child_env(drop=("CLAUDECODE",))
    with open(log, "ab") as out:
        spawn(
            [
                sys.executable,
                "-m",
                "autorun_py",
                "hook",
                "act",
                action,
                str(orch_dir),
                str(number),
                source,
            ],
            output=out,
            env=env,
            cwd=str(paths.autorun_home()) if paths.autorun_home().is_dir() else "/",
        )


def act(
    action: str, orch_dir: Path, number: int, source: str, opts: MonitorOptions, config: Config
) -> str:
    if action == "unstick":
        return unstick(orch_dir, number, source=source, config=config)
    if action == "recover":
        return recover(orch_dir, number, source=source, opts=opts, config=config)
    raise AutorunError(f"unknown hook action {action!r}")


def recover(
    orch_dir: Path,
    number: int,
    *,
    source: str,
    opts: MonitorOptions,
    config: Config,
    wait: float = 10.0,
) -> str:
    """Recover a stage whose session ended: wait until its pane is gone, then
    :func:`autorun_py.recovery.recover_dead_stage` (the monitor's recovery, with the
    monitor's restart limit and early-death rule from ``opts``)."""
    import time

    from autorun_py.launchers import stage_alive
    from autorun_py.recovery import recover_dead_stage
    from autorun_py.state import StatusStore
    from autorun_py.tmux import Tmux

    tmux = Tmux.from_env()
    store = StatusStore(orch_dir)
    deadline = time.monotonic() + wait
    while True:
        run = store.read()
        st = run.stage(number)
        if not stage_alive(tmux, run, st):
            break
        if time.monotonic() > deadline:
            return "skipped: the session is still alive"
        time.sleep(0.2)
    from autorun_py.events import read_events
    from autorun_py.timeutil import parse_utc as _parse_iso

    # A resumed session that ended within seconds could not take its conversation
    # back ("No conversation found"): start the stage afresh instead of looping.
    fresh = False
    restarts = [
        e
        for e in read_events(orch_dir)
        if e.get("type") == "stage_restarted" and e.get("stage") == number
    ]
    if restarts and restarts[-1].get("mode") == "resume":
        at = _parse_iso(restarts[-1].get("ts"))
        import datetime

        now = datetime.datetime.now(datetime.timezone.utc)
        fresh = at is not None and (now - at).total_seconds() < 20
    # The monitor's policy: a session that died at its start is failed with its log,
    # and the circuit breaker holds (else an agent that cannot start loops here).
    rec = recover_dead_stage(
        orch_dir,
        number,
        config=config,
        tmux=tmux,
        source=source,
        max_restarts=opts.max_restarts,
        early_death=opts.early_death or None,
        fresh=fresh,
    )
    return f"{rec.action}: {rec.detail}"


def unstick(orch_dir: Path, number: int, *, source: str, config: Config, **fields: Any) -> str:
    """A stage that stopped without a hand-off and did not act on the refusals (or the
    monitor's nudges): committed work in a clean worktree is merged by the engine;
    anything else is reported to the user with the command that would unstick it."""
    from autorun_py import attention
    from autorun_py.state import StatusStore

    store = StatusStore(orch_dir)
    state = store.read()
    st = state.stage(number)
    if handed_off(state, st) is not None:
        return "skipped: handed off meanwhile"
    step = next_step(state, st, "autorun")
    run = Path(orch_dir).name
    if step.kind in ("handover", "merge"):
        from autorun_py.chain import record_chain_phases

        with store.transaction() as txn:
            record_chain_phases(txn, number, "/autorun:merge")  # as its hand-off would
            txn.emit(
                "stall_reported",
                stage=number,
                reason=f"stopped without handing over ({source}); merging its committed work",
                action="merge",
                command=f"autorun merge {run} {number}",
                **fields,
            )
        from autorun_py.merge import merge

        rep = merge(orch_dir, number, config=config)
        return f"merged: {rep.message}"
    command = {
        "commit": f"commit the changes in {st.worktree}, then `autorun merge {run} {number}`",
        "resolve": f"resolve the conflicts, then `autorun merge {run} {number} --continue`",
    }.get(step.kind, f"`{attach_command(st.session)}` and tell it what to do")
    message = (
        f"autorun: {run} stage {number} ({st.name}) stalled: {step.text}. To unstick it: {command}"
    )
    with store.transaction() as txn:
        from autorun_py.supervisor import stage_record

        r = stage_record(txn.state.monitor, number)
        if r.get("stall_reported"):
            return "already reported"
        r["stall_reported"] = True
        txn.emit(
            "stall_reported",
            stage=number,
            reason=f"stopped without handing over ({source}): {step.text}",
            action="report",
            command=command,
            **fields,
        )
    attention.add(orch_dir, number, "stalled", message, attach_command(st.session))
    attention.notify(message)
    return "reported"


# --------------------------------------------------------------------------- entry


def _log(text: str) -> None:
    with contextlib.suppress(OSError):
        log = paths.layout().hooks_log
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"{utc_now()} {text}\n")


def run_hook(event: str, stdin_text: str, environ: Mapping[str, str]) -> HookOutput:
    """``autorun hook <event>``: never raises, never breaks the session."""
    where = stage_of(environ)
    if where is None:
        return HookOutput()
    orch_dir, number = where
    try:
        payload = json.loads(stdin_text) if stdin_text.strip() else {}
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    try:
        if not (orch_dir / "status.json").is_file():
            return HookOutput()
        if event == "Stop":
            return on_stop(orch_dir, number, payload, environ)
        if event == "StopFailure":
            from autorun_py.cli.monitor_env import monitor_options

            return on_stop_failure(orch_dir, number, payload, monitor_options(environ))
        if event in ("PermissionRequest", "Notification"):
            return on_attention(orch_dir, number, event, payload)
        if event == "SessionStart":
            return on_session_start(orch_dir, number, payload)
        if event == "SessionEnd":
            return on_session_end(orch_dir, number, payload, source="session end hook")
    except Exception as exc:  # a hook must never break the session
        _log(f"hook {event} stage {number} of {orch_dir}: {type(exc).__name__}: {exc}")
    return HookOutput()


def main(argv: list[str]) -> int:
    """``python -m autorun_py hook <event>`` without click (a hook runs on every turn)."""
    if not argv:
        sys.stderr.write("usage: autorun hook <event>\n")
        return 2
    if argv[0] == "act" and len(argv) == 5:
        try:
            from autorun_py.cli.monitor_env import monitor_options
            from autorun_py.config import load_config

            opts, config = monitor_options(os.environ), load_config(os.environ)
            out = act(argv[1], Path(argv[2]), int(argv[3]), argv[4], opts, config)
        except Exception as exc:
            _log(f"act {argv[1:]}: {type(exc).__name__}: {exc}")
            return 1
        _log(f"act {argv[1:]}: {out}")
        return 0
    if argv[0] == "tmux-closed" and len(argv) == 2:
        try:
            session_closed(argv[1])
        except Exception as exc:
            _log(f"tmux-closed {argv[1]}: {type(exc).__name__}: {exc}")
        return 0
    environ: Mapping[str, str] = os.environ
    if stage_of(environ) is None:
        return 0
    stdin_text = sys.stdin.read()
    result = run_hook(argv[0], stdin_text, environ)
    if result.stdout:
        sys.stdout.write(result.stdout + "\n")
        sys.stdout.flush()
    return result.exit_code
