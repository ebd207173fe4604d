"""``autorun chain``: hand a stage's session to its next pipeline step.

A command text ends a step with ``autorun chain "/autorun:<next>" --window W
[--close-caller]``: the next step opens as a new window of the stage's tmux
session (or a new session of the stage's launcher), with a fresh Claude session
id recorded on the stage, the phases the hand-off implies recorded by the
engine (no model turn), and the caller's pane ended shortly after. A second
chain to the same step while its window runs starts nothing. The command text
never meets a shell.

A chain to ``/autorun:merge`` that needs no judgment is merged in place (issue 16):
in a run without a merge gate, the engine runs the very ``autorun merge`` the merge
window's first line would run, in this process, and opens no window (no model
session, one process and one Python start fewer per stage). Anything else (a
conflict, the user's uncommitted changes, a refusal, a gated run, the merge lock
busy) opens the merge window as before, whose ``autorun merge`` shows the model
what happened.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from autorun_py import git, launchers, paths
from autorun_py.config import Config, agent_argv, load_config
from autorun_py.errors import AutorunError
from autorun_py.launch import kill_later, log_path, record_session_id
from autorun_py.names import slug
from autorun_py.state import (
    IN_PROGRESS,
    RunState,
    StageState,
    StatusStore,
    Transaction,
    update_phase,
)
from autorun_py.tmux import Tmux, forwarded_env, pipe_pane_args


@dataclass(frozen=True)
class ChainResult:
    """What `autorun chain` did: the window (or session) it opened, or the merge it did in place."""
    session: str
    window: str
    pane: str
    cwd: str
    argv: list[str]
    already: bool = False  # the same step was chained to before: nothing started
    # A chain to the merge that the engine merged itself (no window opened): what
    # ``autorun merge`` would have printed, as text and as its JSON.
    merged: str = ""
    merge: Optional[dict[str, Any]] = None


# How long a chain waits for the repository's merge lock before it leaves the
# merge to the merge window (another run's merge may hold it a while).
IN_PLACE_LOCK_TIMEOUT = 20.0


def _same_chain(tmux: Tmux, st: StageState, command: str) -> Optional[ChainResult]:
    """The earlier chain of this stage to ``command`` when its window still runs (or
    the stage is already merged), else None."""
    from autorun_py.state import COMPLETED

    if st.status == COMPLETED:
        return ChainResult(st.session or "", "", "", st.worktree or "", [], already=True)
    prev = st.extra.get("chained_to")
    if not isinstance(prev, dict) or prev.get("command") != command or not st.session:
        return None
    for p in tmux.list_panes(st.session):
        if p.get("window") == prev.get("window") and p.get("dead") != "1":
            return ChainResult(
                st.session, str(prev.get("window")), p.get("pane_id", ""), st.worktree or "",
                [], already=True,
            )  # fmt: skip
    return None


@dataclass(frozen=True)
class BranchSeen:
    """The stage branch as the chain's ``git log`` saw it: the stage's start, its
    tip, the number of commits beyond the start, and the first one's committer date
    (UTC)."""
    start: str
    tip: str
    ahead: int
    first_commit: str


def _branch_seen(state: RunState, st: StageState) -> Optional[BranchSeen]:
    """The stage's commits beyond its start (one ``git log``), or None (no start or
    branch recorded, no commits, git failed)."""
    if not st.branch or not st.start_commit:
        return None
    try:
        out = git.git_out(
            ["log", "--format=%H %ct", f"{st.start_commit}..refs/heads/{st.branch}"],
            Path(state.project_root),
        )
        lines = out.splitlines()
        if not lines:
            return None
        # newest first: the tip is the first line, the stage's first commit the last
        tip, last = lines[0].split()[0], int(lines[-1].split()[1])
    except (AutorunError, ValueError, IndexError):
        return None
    if not last:
        return None
    from autorun_py.timeutil import utc_iso

    return BranchSeen(st.start_commit, tip, len(lines), utc_iso(last))


def record_chain_phases(txn: Transaction, number: int, command: str) -> Optional[BranchSeen]:
    """What a chain says about the phases, recorded by the engine (no model turn):
    triage is over at any chain; a chain to the merge ends the implementation.
    Returns the stage branch as a chain to the merge saw it (for the merge)."""
    st = txn.state.stage(number)
    if st.status != IN_PROGRESS:
        return None
    words = command.split(maxsplit=1)
    step = words[0] if words else ""
    seen = _branch_seen(txn.state, st) if step == "/autorun:merge" else None
    first_commit = seen.first_commit if seen is not None else None
    triage = st.phases.get("triage")
    if triage is not None and triage.started_at and not triage.completed_at:
        update_phase(txn, number, "triage", "completed")
        if first_commit and first_commit >= triage.started_at:
            triage.completed_at = first_commit  # the implementation began before it
    if step == "/autorun:merge":
        impl = st.phase("implement")
        if not impl.started_at and first_commit:
            impl.started_at = triage.completed_at if triage is not None else first_commit
        if not impl.completed_at:
            update_phase(txn, number, "implement", "completed")
    elif step == "/autorun:implement_plan":
        for name in ("create_plan", "research"):
            ph = st.phases.get(name)
            if ph is not None and ph.started_at and not ph.completed_at:
                update_phase(txn, number, name, "completed")
        if len(words) > 1 and Path(words[1].strip()).expanduser().is_file():
            st.plan_file = str(Path(words[1].strip()).expanduser().resolve())
        if not st.phase("implement").started_at:
            update_phase(txn, number, "implement", "started")
    elif step == "/autorun:create_plan":
        ph = st.phases.get("research")
        if ph is not None and ph.started_at and not ph.completed_at:
            update_phase(txn, number, "research", "completed")
    return seen


def chain(
    command: str,
    *,
    window: str,
    session: Optional[str] = None,
    cwd: Optional[Path] = None,
    close_caller: bool = False,
    phase: Optional[str] = None,
    environ: Mapping[str, str],
) -> ChainResult:
    """Open the next pipeline step as a new window (or session); the text never meets a shell.

    ``environ``: the caller's process environment (the stage it names, its tmux pane
    and Claude Code session, which ``close_caller`` ends)."""
    from autorun_py.stage import current_tmux_session, find_context

    tmux = Tmux.from_env()
    config = load_config(environ)
    ctx = None
    with contextlib.suppress(AutorunError):
        # a merged stage too: a chain repeated after its merge starts nothing
        ctx = find_context(cwd or Path.cwd(), session, include_done=True, environ=environ)
    workdir = (cwd or Path.cwd()).resolve()
    run_state = StatusStore(Path(ctx.orch_dir)).read(lazy=True) if ctx is not None else None
    announced = False  # the hand-off's `chained` event is out (one per hand-off)
    if ctx is not None and run_state is not None:
        if _in_place_step(run_state, run_state.stage(ctx.stage), command):
            done, announced = _merge_in_place(
                Path(ctx.orch_dir), ctx.stage, command, workdir, config, environ
            )
            if done is not None:
                return done
            run_state = StatusStore(Path(ctx.orch_dir)).read(lazy=True)
    session = session or (ctx.session if ctx else None) or current_tmux_session()
    step = phase or window.split("-")[0]
    from autorun_py.names import new_session_id

    session_id = new_session_id()
    argv = agent_argv(config, command, phase=step, session_id=session_id)
    env = forwarded_env()
    if ctx is not None and run_state is not None:
        env.update({"AUTORUN_ORCH_DIR": ctx.orch_dir, "AUTORUN_STAGE": str(ctx.stage)})
        if not launchers.stage_uses_tmux(run_state, run_state.stage(ctx.stage)):
            caller_id = environ.get("CLAUDE_CODE_SESSION_ID") if close_caller else None
            return _chain_launcher(
                run_state, ctx.stage, argv, env, workdir, window, caller_id, announce=not announced
            )
        store = StatusStore(Path(ctx.orch_dir))
        with store.transaction() as txn:
            st = txn.state.stage(ctx.stage)
            again = _same_chain(tmux, st, command)
            if again is not None:
                return again  # a second chain to the same step: nothing to do
            st.claude_session_id = session_id
            record_session_id(st, session_id)
            record_chain_phases(txn, ctx.stage, command)
            st.extra["chained_to"] = {"command": command, "window": window}
            if not announced:
                txn.emit("chained", stage=ctx.stage, window=window, command=command)
        log_file = paths.layout().stage_log(ctx.project_slug, ctx.stage)
    else:
        log_file = paths.layout().chain_log(slug(window, 30, "stage"))
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pane = ""
    if session:
        # a window in the session; when it is gone, a session of that name
        with contextlib.suppress(AutorunError):
            pane = tmux.new_window(session, argv, cwd=workdir, window=window, env=env)
    if not pane:
        session = session or f"autorun_{slug(window, 20, 'stage')}_{session_id[:6]}"
        pane = tmux.new_session(session, argv, cwd=workdir, window=window, env=env)
    caller = environ.get("TMUX_PANE") if close_caller else None
    if caller:
        # The caller's window closed by the tmux server a second from now; the new
        # pane's log piped in that same tmux call (one tmux process fewer, issue 16).
        with contextlib.suppress(AutorunError, OSError):
            tmux.kill_later(
                caller,
                1.0,
                session=False,
                owner=ctx.orch_dir if ctx is not None else None,
                before=pipe_pane_args(pane, log_file),
            )
    else:
        with contextlib.suppress(AutorunError):
            tmux.pipe_pane(pane, log_file)
    return ChainResult(session=session or "", window=window, pane=pane, cwd=str(workdir), argv=argv)


def _in_place_step(state: RunState, st: StageState, command: str) -> bool:
    """Does the engine merge this chain itself: a chain to ``/autorun:merge`` (of
    this stage) of a stage in progress with nothing waiting (no conflict, no
    blocked or interrupted merge), in a run without a merge gate (its verify can
    outlast a Bash call), on a launcher whose sessions run on this machine."""
    from autorun_py.gate import spec_of

    words = command.split()
    if not words or words[0] != "/autorun:merge":
        return False
    if words[1:] and words[1:] != [state.orch_dir, str(st.number)]:
        return False
    if st.status != IN_PROGRESS or st.merge_state or st.merge_intent:
        return False
    if launchers.stage_launcher_name(state, st) not in ("tmux", "background"):
        return False
    return not spec_of(state).gated


def _merge_in_place(
    orch_dir: Path,
    number: int,
    command: str,
    workdir: Path,
    config: Config,
    environ: Mapping[str, str],
) -> tuple[Optional[ChainResult], bool]:
    """A chain to the merge, done by the engine: the phases the hand-off implies
    recorded, then the merge and the launches it unlocks, exactly as
    ``autorun merge`` does them (the same lock, intents and checks), with no model
    session for a merge that needs no judgment. ``None`` when the merge window is
    needed after all (not such a step; a conflict, the user's uncommitted changes,
    a refusal, the lock busy): it opens as before, and its ``autorun merge`` shows
    the model what happened (and re-shows a waiting conflict). The second value:
    the hand-off's ``chained`` event was emitted (the window's is then not)."""
    store = StatusStore(orch_dir)
    seen = None
    with store.transaction() as txn:
        eligible = _in_place_step(txn.state, txn.state.stage(number), command)
        if eligible:  # (else a second chain got there first: nothing new)
            seen = record_chain_phases(txn, number, command)
            txn.emit("chained", stage=number, window="", command=command, in_place=True)
    if not eligible:
        return None, False
    from autorun_py.merge import merge

    try:
        report = merge(
            orch_dir,
            number,
            lock_timeout=IN_PLACE_LOCK_TIMEOUT,
            claude_shell=bool(environ.get("CLAUDECODE")),
            config=config,
            seen_ahead=(seen.start, seen.tip, seen.ahead) if seen is not None else None,
        )
    except AutorunError:
        return None, True
    if report.result not in ("merged", "already_merged"):
        return None, True
    done = ChainResult(
        session="",
        window="",
        pane="",
        cwd=str(workdir),
        argv=[],
        merged=report.to_text(),
        merge=report.to_json(),
    )
    return done, True


def _chain_launcher(
    state: RunState,
    number: int,
    argv: list[str],
    env: dict[str, str],
    workdir: Path,
    window: str,
    caller: Optional[str],
    *,
    announce: bool = True,
) -> ChainResult:
    """``chain`` in a stage whose launcher is not tmux: the next step is a new session
    of that launcher in the same worktree; the caller's session (``caller``, its
    Claude session id, given with ``--close-caller``) is ended shortly after."""
    stage = state.stage(number)
    launcher = launchers.for_stage(state, stage)
    started = launcher.start(
        state,
        stage,
        argv,
        cwd=workdir,
        window=window,
        env=env,
        log_file=log_path(state, number),
    )
    store = StatusStore(Path(state.orch_dir))
    old_handles: list[str] = []
    with store.transaction() as txn:
        st = txn.state.stage(number)
        old_handles = [h for h in st.extra.get("launcher_handles") or [] if isinstance(h, str)]
        launchers.record_started(launcher, st, started)
        if announce:
            txn.emit("chained", stage=number, window=window, command=argv[-1])
    if caller:
        # the caller is one of this stage's own sessions (never anyone else's)
        target = next((h for h in old_handles if caller.startswith(h)), None)
        if target:
            kill_later(f"bg:{target}", owner=state.orch_dir)
    return ChainResult(
        session=stage.session or "",
        window=window,
        pane=started.handle,
        cwd=str(workdir),
        argv=argv,
    )
