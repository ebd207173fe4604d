"""Launching stages: worktrees, tmux sessions, and the exactly-once claim.

A launch has three steps:

1. **Claim**, under the status lock: the scheduler picks the ready stages that
   fit the cap; each moves ``pending -> in_progress`` with its planned branch,
   worktree, session and a fresh Claude session id. Two processes that finish
   at the same moment serialise on the lock, so a stage is claimed once.
2. **Start**, outside the lock: a worktree on a new branch from the base
   branch's tip (which holds every dependency, since a stage is ready only
   when its dependencies are merged), ``.worktreeinclude`` files copied in, and
   a tmux session running the agent on ``/autorun:start <context-file>``.
   Before the session starts, the launch writes what ``autorun stage start``
   would print there to ``stages/stage-N-start.txt`` (:func:`prepare_start`):
   start.md's ``!`` line, run inside the worktree, takes that file once through
   the shim (``scripts/autorun``) with no Python process (issue 16); anything
   else (a second start, another directory, a restarted session) goes to
   ``autorun stage start``, which checks everything itself.
3. **Record** the start commit and open the stage's triage phase; or, when the
   start failed, undo what was made and put the stage back to ``pending``
   (``launch_failed`` event) so it is retried, failing it after
   ``max_launch_attempts``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from autorun_py import git, launchers, paths, proc, worktrees
from autorun_py.config import Config, agent_argv, require_agent
from autorun_py.errors import AutorunError
from autorun_py.events import utc_now

# the tmux launcher's own work, here too for its callers (tests, docs)
from autorun_py.launchers.tmux_launcher import start_session, watch_session_close  # noqa: F401
from autorun_py.names import new_session_id, slug
from autorun_py.state import (
    IN_PROGRESS,
    PENDING,
    RUN_RUNNING,
    RunState,
    StageState,
    StatusStore,
    Transaction,
    fail_stage,
    transition,
    update_phase,
)
from autorun_py.tmux import Tmux, forwarded_env


@dataclass
class LaunchResult:
    """The stages a launch started, those it could not (and why), those still running."""

    launched: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    running: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)


def session_name(state: RunState, number: int) -> str:
    return f"{state.project_slug}_stage-{number}"


def branch_name(state: RunState, stage: StageState) -> str:
    """Unique per orchestration (the directory name is unique under $AUTORUN_HOME)."""
    run = Path(state.orch_dir).name
    base = f"autorun/{run}/stage-{stage.number}-{slug(stage.name, 30, 'stage')}"
    return base if stage.launch_attempts <= 1 else f"{base}-retry{stage.launch_attempts - 1}"


def worktree_path(state: RunState, stage: StageState) -> Path:
    run = Path(state.orch_dir).name
    return paths.layout().stage_worktree(run, stage.number)


def log_path(state: RunState, number: int) -> Path:
    return paths.layout().stage_log(state.project_slug, number)


def _priority(state: RunState) -> dict[int, float]:
    from autorun_py.graph import remaining_path  # a launch only, not a chain (issue 16: CPU)

    estimate_of = state.stages.estimate_of  # no stage converted for it
    weights = {n: float(h) for n in state.stages if (h := estimate_of(n))}
    if weights and len(weights) < len(state.stages):
        median = sorted(weights.values())[len(weights) // 2]
        weights = {n: weights.get(n, median) for n in state.stages}
    return remaining_path(state.deps(), weights or None)


def select_ready(state: RunState) -> list[int]:
    from autorun_py.schedule import select_launches

    return select_launches(
        state.views(),
        schedule=state.schedule,
        waves=state.waves,
        priority=_priority(state),
        max_parallel=state.max_parallel,
    )


def record_session_id(stage: StageState, session_id: str) -> None:
    """Remember every Claude session a stage ran (``claude_session_ids``), for the report."""
    stage.add_session_id(session_id)


def claim(
    txn: Transaction,
    numbers: Optional[list[int]] = None,
    *,
    picked: Optional[list[int]] = None,
) -> list[int]:
    """Claim the stages to start now (all the scheduler picks, or just ``numbers``),
    each on the first of the run's launchers with a free slot (``launcher``).
    ``picked``: :func:`select_ready` of this very transaction's state, when the
    caller has it already (the scheduler runs once)."""
    state = txn.state
    chosen = list(picked) if picked is not None else select_ready(state)
    if numbers is not None:
        chosen = [n for n in chosen if n in numbers]
    placed = launchers.place(state, chosen)
    chosen = [n for n in chosen if n in placed]
    for n in chosen:
        stage = state.stages[n]
        stage.extra["launcher"] = placed[n]
        stage.launch_attempts += 1
        transition(txn, n, IN_PROGRESS, source="launch", attempt=stage.launch_attempts)
        stage.launched_at = utc_now()
        stage.branch = branch_name(state, stage)
        stage.worktree = str(worktree_path(state, stage))
        stage.session = session_name(state, n)
        stage.claude_session_id = new_session_id()
        record_session_id(stage, stage.claude_session_id)
        stage.start_commit = None
        stage.merge_state = None
        stage.merge_detail = {}
    return chosen


def copy_worktree_include(repo: Path, worktree: Path) -> list[str]:
    """Copy the ignored files named by the repo's ``.worktreeinclude`` (as Claude Code does)."""
    include = repo / ".worktreeinclude"
    if not include.is_file():
        return []
    wanted = git.run_git(
        ["ls-files", "-z", "--others", "--ignored", f"--exclude-from={include}"], repo
    ).stdout.split("\0")
    ignored = set(
        git.run_git(
            ["ls-files", "-z", "--others", "--ignored", "--exclude-standard"], repo
        ).stdout.split("\0")
    )
    copied = []
    for rel in wanted:
        if not rel or rel not in ignored:
            continue
        src, dst = repo / rel, worktree / rel
        if src.is_file() and not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            import shutil  # (not at import: issue 16)

            shutil.copy2(src, dst)
            copied.append(rel)
    return copied


def start_file_path(orch_dir: str, number: int) -> Path:
    """The stage's prepared start (:func:`prepare_start`): ``<orch>/stages/stage-N-start.txt``;
    ``.taken`` is appended to its name when start.md's ``!`` line took it."""
    return Path(orch_dir) / "stages" / f"stage-{number}-start.txt"


def prepare_start(state: RunState, stage: StageState) -> Path:
    """Write what ``autorun stage start`` prints in the stage's worktree (its context
    and the context file) for start.md's ``!`` line, which the shim answers from
    this file once, inside ``AUTORUN_STAGE_WORKTREE``, without starting Python. The
    stage is already what ``stage start`` would make it: in progress, in the worktree
    and session this launch made (its triage phase opens when the launch is recorded)."""
    from autorun_py.fsutil import write_text_atomic
    from autorun_py.stage import make_context

    path = start_file_path(state.orch_dir, stage.number)
    text = make_context(state, stage).to_text(with_context_file=True)
    write_text_atomic(path, text + "\n")
    return path


def stage_env(state: RunState, stage: StageState) -> dict[str, str]:
    env = forwarded_env()
    env.update(
        {
            "AUTORUN_ORCH_DIR": state.orch_dir,
            "AUTORUN_STAGE": str(stage.number),
            "AUTORUN_STATUS_FILE": str(Path(state.orch_dir) / "status.json"),
        }
    )
    # start.md's `!` line answered by the shim from the launch's prepared start
    # (prepare_start), only inside this worktree (its real path, as `pwd -P` says it).
    env["AUTORUN_STAGE_START"] = str(start_file_path(state.orch_dir, stage.number))
    if stage.worktree:
        env["AUTORUN_STAGE_WORKTREE"] = os.path.realpath(stage.worktree)
    # The stage's tmux session by name: `autorun stage start` need not ask tmux.
    env.pop("AUTORUN_TMUX_SESSION", None)  # (forwarded from a caller's own session)
    if stage.session and launchers.stage_uses_tmux(state, stage):
        env["AUTORUN_TMUX_SESSION"] = stage.session
    env.update(gate_session_env(state))
    return env


def gate_session_env(state: RunState) -> dict[str, str]:
    """A gated run's `/autorun:merge` waits for the verify command (and the merge
    queue): Claude Code's Bash commands get time for that (2 minutes by default),
    unless the user set their own."""
    from autorun_py.gate import spec_of

    spec = spec_of(state)
    if not spec.gated:
        return {}
    ms = str(int((4 * spec.timeout + 600) * 1000))  # the gated merge's longest wait
    names = ("BASH_DEFAULT_TIMEOUT_MS", "BASH_MAX_TIMEOUT_MS")
    own = proc.inherited(*names)
    return {var: own.get(var) or ms for var in names}


def _start_stage(
    state: RunState, number: int, config: Config, tmux: Tmux
) -> tuple[str, launchers.Started]:
    """Make the worktree and the session for a claimed stage (through the run's
    launcher); return the start commit and what the launcher started."""
    stage = state.stages[number]
    repo = Path(state.project_root)
    assert stage.branch and stage.worktree and stage.session
    require_agent(config)  # before anything is made: a session without it dies unseen
    base_tip = git.rev_parse(f"refs/heads/{state.base_branch}", repo)
    missing = [
        d
        for d in stage.depends_on
        if state.stages[d].merge_commit
        and state.stages[d].merge_commit != base_tip  # (the merge that just landed)
        and not git.is_ancestor(str(state.stages[d].merge_commit), base_tip, repo)
    ]
    if missing:
        raise AutorunError(
            f"base branch {state.base_branch} does not hold the merge of stage(s) "
            f"{', '.join(map(str, missing))}"
        )
    wt = worktrees.create(repo, Path(stage.worktree), stage.branch, base_tip, run=state.orch_dir)
    copy_worktree_include(repo, wt)
    prepare_start(state, stage)
    argv = agent_argv(
        config,
        f"/autorun:start {stage.context_file}",
        phase="start",
        session_id=stage.claude_session_id,
    )
    started = launchers.for_stage(state, stage, tmux).start(
        state,
        stage,
        argv,
        cwd=wt,
        window=f"s{number}",
        env=stage_env(state, stage),
        log_file=log_path(state, number),
    )
    return base_tip, started


def _undo_start(state: RunState, number: int, tmux: Tmux) -> None:
    stage = state.stages[number]
    repo = Path(state.project_root)
    with contextlib.suppress(Exception):
        if stage.session:
            launchers.stop_stage(state, stage, tmux)
    with contextlib.suppress(Exception):
        if stage.worktree:
            worktrees.try_remove(repo, Path(stage.worktree), run=state.orch_dir)
    with contextlib.suppress(Exception):
        if stage.branch:
            # only while it holds no work beyond the base (it was just made there)
            worktrees.try_delete_branch(
                repo, stage.branch, run=state.orch_dir, merged_into=state.base_branch
            )


def launch_ready(
    orch_dir: Path,
    *,
    numbers: Optional[list[int]] = None,
    config: Config,
    tmux: Optional[Tmux] = None,
    gap_source: Optional[str] = None,
) -> LaunchResult:
    """Launch whatever is ready and fits the cap. Idempotent: running stages are left alone.

    ``gap_source`` (the monitor's and ``resume``'s sweep, ``monitor`` or ``resume``):
    stages ready but not running are a gap (a merge died before it launched them):
    only a running run is swept, nothing is written when none is ready, and the
    claim is the event ``wave_gap_detected`` naming them."""
    store = StatusStore(orch_dir)
    if gap_source is not None:
        probe = store.read()
        if probe.status != RUN_RUNNING or not claim(Transaction(probe), numbers):
            return LaunchResult()
    with store.transaction() as txn:
        claimed = claim(txn, numbers)
        if claimed and gap_source is not None:
            txn.emit(
                "wave_gap_detected",
                stages=claimed,
                wave=txn.state.lowest_open_wave(),
                source=gap_source,
            )
    if gap_source is not None and not claimed:
        return LaunchResult()
    return start_claimed(orch_dir, claimed, config=config, tmux=tmux)


def start_claimed(
    orch_dir: Path,
    claimed: list[int],
    *,
    config: Config,
    tmux: Optional[Tmux] = None,
) -> LaunchResult:
    """Start the stages a transaction claimed (see :func:`claim`); ``config``: the
    user's configuration as the CLI edge loaded it."""
    store = StatusStore(orch_dir)
    tmux = tmux or Tmux.from_env()
    snapshot = store.read(lazy=True)
    result = LaunchResult()
    for i, n in enumerate(claimed):
        if i and config.launch_stagger > 0:
            # A burst of new sessions right after a usage reset is throttled by the
            # service, and each start costs memory and CPU: space them out.
            time.sleep(config.launch_stagger)
        try:
            start, started = _start_stage(snapshot, n, config, tmux)
        except (AutorunError, OSError) as exc:
            _undo_start(snapshot, n, tmux)
            reason = str(exc)
            with store.transaction() as txn:
                st = txn.state.stages[n]
                if st.status == IN_PROGRESS:
                    transition(txn, n, PENDING, reason="launch failed")
                    txn.emit("launch_failed", stage=n, error=reason, attempt=st.launch_attempts)
                    if st.launch_attempts >= config.max_launch_attempts:
                        fail_stage(txn, n, f"launch failed {st.launch_attempts} times: {reason}")
            result.failed.append((n, reason))
            continue
        with store.transaction() as txn:
            st = txn.state.stages[n]
            st.start_commit = start
            st.extra["session_started_at"] = utc_now()
            if st.phase("triage").started_at is None:  # (what `stage start` opened)
                update_phase(txn, n, "triage", "started")
            launchers.record_started(launchers.for_stage(txn.state, st, tmux), st, started)
            txn.emit(
                "stage_launched",
                stage=n,
                name=st.name,
                branch=st.branch,
                session=st.session,
                worktree=st.worktree,
                start_commit=start,
                claude_session_id=st.claude_session_id,
                launcher=launchers.stage_launcher_name(txn.state, st),
            )
        result.launched.append(n)
    final = store.read(lazy=True).stages  # (statuses only: no stage converted)
    result.running = sorted(n for n in final if final.status_of(n) == IN_PROGRESS)
    result.pending = sorted(n for n in final if final.status_of(n) == PENDING)
    if result.launched:
        # Whoever starts a session makes sure something watches it.
        from autorun_py.supervisor import ensure_monitor

        with contextlib.suppress(AutorunError, OSError):
            ensure_monitor(orch_dir)
    return result


# --------------------------------------------------------------------------- chain


def kill_later(
    target: str,
    delay: float = 1.0,
    *,
    session: bool = False,
    owner: Optional[str] = None,
    then_clean: Optional[tuple[str, str, str, str]] = None,
    merged_tip: Optional[str] = None,
    sweep: bool = False,
) -> None:
    """Kill a tmux pane (or session; ``-``: nothing) shortly after this command has
    returned.

    Used to close the caller's window after ``autorun chain --close-caller`` and a
    stage's session after its merge: the process doing the asking is inside it.
    ``owner`` (an orchestration directory): kill only if the target's session
    belongs to that run (its ``AUTORUN_ORCH_DIR``). ``then_clean`` = (repo,
    worktree, branch, base): afterwards remove the stage's worktree and merged
    branch (see :mod:`autorun_py.killer`; it needs ``owner``); ``merged_tip``: the
    stage tip the merge put on the base (the branch is deleted only while it
    still points there). ``sweep``: then also the run's other merged stages whose
    clean-up waits for their sessions (:mod:`autorun_py.cleanup`; the run's last merge).

    A tmux target without clean-up is killed by the tmux server itself
    (:meth:`Tmux.kill_later`: no process); the rest by the detached killer.
    """
    if then_clean is None and not sweep and target != "-" and not target.startswith("bg:"):
        with contextlib.suppress(AutorunError, OSError):
            Tmux.from_env().kill_later(target, delay, session=session, owner=owner)
        return  # scheduled, or gone / not the owner's: nothing to kill either way
    cmd = [sys.executable, "-m", "autorun_py.killer", target, str(delay)]
    if session:
        cmd.append("--session")
    if owner:
        cmd += ["--owner", owner]
    if then_clean:
        cmd += ["--then-clean", *then_clean]
        if merged_tip:
            cmd += ["--merged-tip", merged_tip]
    if sweep and owner:
        cmd.append("--sweep")
    from autorun_py.proc import spawn

    spawn(cmd)
