"""Recovery: bringing back one stage whose session is gone, and merges left waiting.

:func:`recover_dead_stage` (used by ``autorun resume``, the monitor and the
``SessionEnd``/tmux ``session-closed`` hooks) does, under ``<orch>/recover.lock``:

1. a conflicted merge whose resolution was committed is finished
   (``merge --continue``); one still conflicted goes back to the model;
2. a stage whose branch is already merged into the base branch (the merge
   died after its git part) is completed by :func:`autorun_py.merge.merge`,
   which finds it ALREADY_MERGED and launches what it unlocks;
3. a stage that was claimed but never started (no branch yet) is started;
4. anything else is restarted in its worktree (re-created from the stage
   branch when it is gone) by :func:`restart_agent`: resuming its recorded
   Claude session (``--resume <id>``), or, when Claude Code has no such
   conversation, starting the stage afresh; with the monitor's policy, a
   session that died at its start is failed with its log's last lines, and a
   stage restarted ``max_restarts`` times is failed (a circuit breaker).

Merges: :func:`finish_interrupted_merges` finishes or rolls back a merge a killed
process left half done (a stage with a ``merge_intent``, see
:mod:`autorun_py.gitmerge`); :func:`settle_merge_intents` does it before a stage
leaves ``in_progress``; :func:`retry_blocked_if_changed` (the one retry of merges
blocked by the user's uncommitted changes) tries again once the base checkout
changed since the last attempt. Launching what is ready is
:func:`autorun_py.launch.launch_ready`'s.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from autorun_py import git, launchers, transcripts, worktrees
from autorun_py.config import Config, agent_argv, find_agent, load_config
from autorun_py.errors import AutorunError, ExitCode
from autorun_py.events import utc_now
from autorun_py.launch import (
    copy_worktree_include,
    log_path,
    record_session_id,
    session_name,
    stage_env,
    start_claimed,
    worktree_path,
)
from autorun_py.panes import last_lines
from autorun_py.state import IN_PROGRESS, StageState, StatusStore, fail_stage
from autorun_py.supervisor import stage_record
from autorun_py.timeutil import parse_utc_iso
from autorun_py.tmux import Tmux

RESUME_PROMPT = "continue"
RECOVER_LOCK = "recover.lock"


@dataclass
class Recovery:
    """What bringing back one stage did."""
    stage: int
    action: str  # merged | resumed | restarted | started | failed | skipped | merge_blocked ...
    detail: str = ""
    mode: Optional[str] = None  # resume | fresh, for restarts

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"stage": self.stage, "action": self.action, "detail": self.detail}
        if self.mode:
            out["mode"] = self.mode
        return out


def recover_lock(orch_dir: Path, timeout: float = 120.0) -> Any:
    """One recoverer at a time per run (the monitor and ``resume`` may overlap)."""
    from autorun_py.fsutil import Lock

    lock = Lock(
        Path(orch_dir) / RECOVER_LOCK,
        timeout=timeout,
        message="another process is recovering this run's stages",
        exit_code=ExitCode.FAILURE,
    )
    return lock.acquire()


def _branch_merged(repo: Path, base: str, st: StageState) -> bool:
    """The stage branch has work and all of it is in the base branch already."""
    if not st.branch or not git.branch_exists(st.branch, repo):
        return False
    start = st.start_commit
    if not start:
        return False
    ahead = git.git_out(["rev-list", "--count", f"{start}..refs/heads/{st.branch}"], repo)
    if int(ahead or "0") == 0:
        return False
    return git.is_ancestor(f"refs/heads/{st.branch}", f"refs/heads/{base}", repo)


def _ensure_worktree(repo: Path, path: Path, st: StageState, base: str, run: str) -> bool:
    """Make sure the stage worktree exists; True when it had to be re-created.
    Only autorun's own worktree and branch of this run (see :mod:`autorun_py.worktrees`)."""
    assert st.branch
    start = st.start_commit or git.rev_parse(f"refs/heads/{base}", repo)
    return worktrees.ensure(repo, path, st.branch, start, run=run)


def restart_agent(
    orch_dir: Path,
    number: int,
    *,
    config: Config,
    tmux: Tmux,
    source: str,
    prompt_note: Optional[str] = None,
    fresh: bool = False,
) -> Recovery:
    """Start the stage's agent again in its worktree: ``--resume`` its Claude session
    when Claude Code has it, else a fresh start on the stage context."""
    store = StatusStore(orch_dir)
    state = store.read()
    st = state.stage(number)
    repo = Path(state.project_root)
    if not st.branch:
        raise AutorunError(f"stage {number} has no branch recorded; cannot restart it")
    wt = Path(st.worktree) if st.worktree else worktree_path(state, st)
    recreated = _ensure_worktree(repo, wt, st, state.base_branch, state.orch_dir)
    if recreated or st.start_commit is None:
        # a new worktree, or a launch killed before it finished: the ignored files
        # named by .worktreeinclude (only those missing; nothing is overwritten)
        copy_worktree_include(repo, wt)
    name = st.session or session_name(state, number)
    sid = st.claude_session_id
    phase = st.current_phase() or "start"
    if sid and not fresh and transcripts.session_exists(sid, wt):
        mode = "resume"
        argv = agent_argv(config, prompt_note or RESUME_PROMPT, phase=phase, resume=sid)
    else:
        mode = "fresh"
        sid = str(uuid.uuid4())
        if st.merge_state == "conflict":
            prompt = f"/autorun:merge {state.orch_dir} {number}"
        else:
            prompt = f"/autorun:start {st.context_file}"
        argv = agent_argv(config, prompt, phase="start", session_id=sid)
    st.session = name
    launcher = launchers.for_stage(state, st, tmux)
    started = launcher.start(
        state,
        st,
        argv,
        cwd=wt,
        window=f"s{number}",
        env=stage_env(state, st),
        log_file=log_path(state, number),
        replace=True,
    )
    with store.transaction() as txn:
        s2 = txn.state.stage(number)
        s2.worktree = str(wt)
        s2.session = name
        s2.claude_session_id = sid
        record_session_id(s2, sid)
        launchers.record_started(launcher, s2, started)
        sid = s2.claude_session_id or sid
        s2.bump("restarts")
        s2.extra["session_started_at"] = utc_now()
        txn.emit(
            "stage_restarted",
            stage=number,
            session=name,
            mode=mode,
            source=source,
            claude_session_id=sid,
            worktree=str(wt),
            worktree_recreated=recreated,
            restarts=s2.count("restarts"),
        )
    detail = f"{'resumed Claude session' if mode == 'resume' else 'started afresh as'} {sid}"
    if recreated:
        detail += f" (worktree {wt} re-created from {st.branch})"
    return Recovery(number, "resumed" if mode == "resume" else "restarted", detail, mode)


def recover_dead_stage(
    orch_dir: Path,
    number: int,
    *,
    config: Config,
    tmux: Optional[Tmux] = None,
    source: str = "resume",
    max_restarts: Optional[int] = None,
    early_death: Optional[float] = None,
    fresh: bool = False,
) -> Recovery:
    """Bring back one stage in progress whose session is gone (see the module doc).

    ``early_death`` (the monitor's): a session whose pane log stopped within that
    many seconds of its start is not restarted but failed with the log's last
    lines (an agent that cannot start dies the same way every time)."""
    from autorun_py.merge import merge

    tmux = tmux or Tmux.from_env()
    lock = recover_lock(orch_dir)
    try:
        store = StatusStore(orch_dir)
        state = store.read()
        st = state.stage(number)
        if st.status != IN_PROGRESS:
            return Recovery(number, "skipped", f"stage is {st.status}")
        if launchers.stage_alive(tmux, state, st):
            return Recovery(number, "skipped", "session is alive")
        if st.merge_state == "blocked":
            return Recovery(number, "skipped", "merge waits for your uncommitted changes")
        repo = Path(state.project_root)
        with store.transaction() as txn:
            txn.emit("session_dead", stage=number, session=st.session, source=source)
        note = None
        if st.merge_state == "conflict":
            try:
                rep = merge(orch_dir, number, action="continue", config=config)
                return Recovery(number, "merged", f"conflicted merge finished: {rep.message}")
            except AutorunError as exc:
                note = (
                    f"{RESUME_PROMPT}: the merge of this stage conflicted ({exc}); resolve it in "
                    f"{st.merge_detail.get('merge_worktree', 'the merge worktree')}, `git add` the "
                    f"files, then run `autorun merge {state.orch_dir} {number} --continue`"
                )
        elif _branch_merged(repo, state.base_branch, st):
            rep = merge(orch_dir, number, config=config)
            return Recovery(number, "merged", f"merge finished: {rep.message}")
        if st.start_commit is None and not (st.branch and git.branch_exists(st.branch, repo)):
            res = start_claimed(orch_dir, [number], config=config, tmux=tmux)
            if res.launched:
                return Recovery(number, "started", "claimed but never started: launched now")
            err = res.failed[0][1] if res.failed else "unknown error"
            return Recovery(number, "launch_failed", err)
        run = Path(state.orch_dir).name
        if find_agent(config) is None:
            reason = (
                f"session {st.session} is gone and the agent {config.agent!r} "
                f"({config.agent_source}) is not found, so it is not restarted; install it "
                f"(`autorun doctor` says how), then `autorun retry {run} {number}`"
            )
            with store.transaction() as txn:
                if txn.state.stage(number).status == IN_PROGRESS:
                    fail_stage(txn, number, reason)
            return Recovery(number, "failed", reason)
        lived = session_lifetime(state, st)
        if early_death is not None and lived is not None and lived < early_death:
            log = log_path(state, number)
            reason = (
                f"session {st.session} exited {lived:.0f}s after it started, so it is not "
                f"restarted; the last lines of {log}: {log_tail(log) or '(nothing)'}"
            )
            with store.transaction() as txn:
                if txn.state.stage(number).status == IN_PROGRESS:
                    fail_stage(txn, number, reason)
                    txn.emit("session_died_early", stage=number, seconds=round(lived, 1))
            return Recovery(number, "failed", reason)
        if max_restarts is not None and st.count("restarts") >= max_restarts:
            reason = (
                f"session {st.session} died again after {st.count('restarts')} "
                f"restart(s); the monitor stops restarting it (circuit breaker, "
                f"--max-restarts {max_restarts})"
            )
            with store.transaction() as txn:
                if txn.state.stage(number).status == IN_PROGRESS:
                    fail_stage(txn, number, reason)
            return Recovery(number, "failed", reason)
        return restart_agent(
            orch_dir, number, config=config, tmux=tmux, source=source, prompt_note=note,
            fresh=fresh,
        )  # fmt: skip
    finally:
        lock.release()


def log_tail(log: Path, lines: int = 5, limit: int = 600) -> str:
    """The last non-empty lines of a pane log (its last 16 KiB), terminal codes removed,
    joined by `` | `` (:func:`autorun_py.panes.last_lines`)."""
    try:
        with open(log, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 16384))
            raw = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return last_lines(raw, lines, limit)


def session_lifetime(state: Any, st: StageState) -> Optional[float]:
    """How long the stage's last session showed signs of life: from its start to the
    last write to its pane log (to now when it wrote none). None when unknown."""
    started = parse_utc_iso(st.extra.get("session_started_at") or st.launched_at)
    if started is None:
        return None
    try:
        last = log_path(state, st.number).stat().st_mtime
    except OSError:
        last = time.time()
    return max(0.0, last - started)


# --------------------------------------------------------------------------- merges


def blocked_fingerprint(state_root: Path, st: StageState, base: str) -> str:
    """What a blocked merge depends on: the base checkout's changes and both tips."""
    checkout = Path(str(st.merge_detail.get("checkout") or state_root))
    parts = []
    for args, cwd in (
        (["status", "--porcelain=v1", "-z", "--untracked-files=all"], checkout),
        (["rev-parse", f"refs/heads/{base}"], state_root),
        (["rev-parse", f"refs/heads/{st.branch}"], state_root),
    ):
        res = git.run_git(args, cwd, check=False)
        parts.append(res.stdout if res.ok else f"!{res.returncode}")
    # the blocking paths themselves: an ignored file moved away changes no status
    for rel in st.merge_detail.get("files") or []:
        try:
            info = os.lstat(checkout / str(rel))
            parts.append(f"{rel}:{info.st_mode}:{info.st_size}:{info.st_mtime_ns}")
        except OSError:
            parts.append(f"{rel}:-")
    return hashlib.sha1("\0".join(parts).encode("utf-8", "replace")).hexdigest()


def retry_blocked_if_changed(orch_dir: Path, *, source: str, config: Config) -> list[Recovery]:
    """Retry each blocked merge whose base checkout changed since the last attempt."""
    from autorun_py.merge import merge

    store = StatusStore(orch_dir)
    state = store.read()
    out: list[Recovery] = []
    root = Path(state.project_root)
    for n, st in sorted(state.stages.items()):
        if st.status != IN_PROGRESS or st.merge_state != "blocked" or not st.branch:
            continue
        fp = blocked_fingerprint(root, st, state.base_branch)
        rec = stage_record(state.monitor, n)
        if rec.get("blocked_fp") == fp:
            continue
        try:
            rep = merge(orch_dir, n, config=config)
            action, detail = rep.result, rep.message
        except AutorunError as exc:
            action, detail = "merge_error", str(exc)
        after = store.read().stages[n]
        if after.status == IN_PROGRESS and after.merge_state == "blocked":
            new_fp = blocked_fingerprint(root, after, state.base_branch)
            with store.transaction() as txn:
                stage_record(txn.state.monitor, n)["blocked_fp"] = new_fp
        out.append(Recovery(n, action if action != "blocked" else "merge_blocked", detail))
    return out


def finish_interrupted_merges(orch_dir: Path, *, source: str, config: Config) -> list[Recovery]:
    """Finish or roll back (then redo) every merge a killed process left half
    done (a stage with a ``merge_intent``); a merge still running holds the
    merge lock and is left to finish."""
    from autorun_py.merge import merge

    state = StatusStore(orch_dir).read()
    out: list[Recovery] = []
    for n, st in sorted(state.stages.items()):
        if st.status != IN_PROGRESS or not st.merge_intent:
            continue
        try:
            rep = merge(orch_dir, n, action="recover", lock_timeout=0, config=config)
        except AutorunError as exc:
            if exc.exit_code is ExitCode.TIMEOUT:
                continue  # a live merge holds the lock
            out.append(Recovery(n, "merge_error", str(exc)))
            continue
        if rep.result != "none":
            action = "merge_blocked" if rep.result == "blocked" else f"merge_{rep.result}"
            out.append(Recovery(n, action, f"interrupted merge finished: {rep.message}"))
    return out


def settle_merge_intents(
    orch_dir: Path, numbers: list[int], *, source: str, environ: Mapping[str, str]
) -> None:
    """Before a stage leaves ``in_progress`` (cancel, ``stage fail``): finish or roll
    back an interrupted merge of it first, so that no carried checkout or moved ref is
    left with nothing to recover it. An error names the stage when one remains.
    ``environ``: the caller's (CLI edge); the configuration is loaded with it only
    when there is a merge to finish."""
    state = StatusStore(orch_dir).read()
    if not any(state.stages[n].merge_intent for n in numbers if n in state.stages):
        return
    finish_interrupted_merges(orch_dir, source=source, config=load_config(environ))
    after = StatusStore(orch_dir).read()
    left = [n for n in numbers if n in after.stages and after.stages[n].merge_intent]
    if left:
        raise AutorunError(
            f"stage(s) {', '.join(map(str, left))} have an interrupted merge that could not be "
            f"finished yet; run `autorun merge {orch_dir} {left[0]}` (it finishes or rolls "
            "it back), then try again"
        )
