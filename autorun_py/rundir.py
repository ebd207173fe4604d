"""The run directory: creating it, and finding it again.

``$AUTORUN_HOME/orchestration/<plan-name>/`` holds ``status.json``,
``events.jsonl`` and ``stages/stage-N-context.md`` in the seed's formats. It is
assembled in a hidden temp directory and renamed into place in one step, so a
crash never leaves a half-written orchestration, and a previous run is never
overwritten.

Creation holds one lock (``$AUTORUN_HOME/locks/orchestrate.lock``) from picking
the project slug to the rename: two ``orchestrate`` started together for plans
with the same slug get ``token-audit`` and ``token-audit-2``, never both the
same one (the slug names the run's tmux sessions), nor one whose stage session
names an existing tmux session already holds. Under that lock the
``.creating-<name>.pid<N>-*`` directories of interrupted runs are swept: those
whose creator is dead, and any older than an hour.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from autorun_py import git, paths, worktrees
from autorun_py.errors import AutorunError, UsageError
from autorun_py.events import append_event, utc_now
from autorun_py.launchers import parse_spec, set_run_launchers
from autorun_py.state import (
    RUN_RUNNING,
    STATUS_FILE,
    RunState,
    StageMap,
    StageState,
    StatusStore,
    write_json_atomic,
)

if TYPE_CHECKING:
    from autorun_py.plan import Plan

MAX_SLUG = 20
CREATE_LOCK = "orchestrate.lock"
CREATING_PREFIX = worktrees.CREATING_PREFIX
STALE_CREATING = 3600.0  # seconds; a creation takes well under one
_CREATING_PID = re.compile(r"\.pid([0-9]+)-[a-z0-9_]+$")
_SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True)
class RepoInfo:
    """The repository a run starts from: its root, branch and head."""
    root: Path
    branch: str
    head: str


def repo_info(cwd: Path) -> RepoInfo:
    """The project the run belongs to; refuse what autorun cannot work from."""
    root = git.repo_root(cwd)
    if not git.has_commits(root):
        raise AutorunError(
            f"{root} has no commits yet; commit something first (worktrees branch off a commit)"
        )
    branch = git.current_branch(root)
    if branch is None:
        raise AutorunError(
            f"{root} is on a detached HEAD; check out the branch the stages should merge into"
        )
    head = git.rev_parse("HEAD", root)
    return RepoInfo(root=root, branch=branch, head=head)


def check_component(name: str, what: str = "plan name") -> str:
    """A name used as one path component below $AUTORUN_HOME: no escape possible."""
    if (
        not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or "\0" in name
        or os.path.isabs(name)
        or not _SAFE_NAME.match(name)
    ):
        raise AutorunError(f"unsafe {what} {name!r}: use lowercase letters, digits, '-', '.', '_'")
    return name


def is_running(orch_dir: Path) -> bool:
    store = StatusStore(orch_dir)
    if not store.exists():
        return False
    try:
        state = store.read()
    except AutorunError:
        return False
    return state.status == RUN_RUNNING and not state.is_finished()


def all_orchestrations() -> list[Path]:
    root = paths.layout().orchestration
    if not root.is_dir():
        return []
    # lexists: a run whose status.json is broken is still listed (as unreadable)
    return sorted(p for p in root.iterdir() if os.path.lexists(p / STATUS_FILE))


def _tmux_sessions() -> list[str]:
    from autorun_py.tmux import Tmux

    with contextlib.suppress(AutorunError, OSError):
        return Tmux.from_env().list_sessions()
    return []


def _slug_in_use(slug: str, sessions: Optional[list[str]] = None) -> bool:
    # A stage session of that slug still there (a finished run's kept session, or
    # anybody's): the new run's launch would find its name taken.
    if any(name.startswith(f"{slug}_stage-") for name in sessions or ()):
        return True
    for d in all_orchestrations():
        if is_running(d):
            try:
                if StatusStore(d).read().project_slug == slug:
                    return True
            except AutorunError:
                continue
    return False


def unique_slug(slug: str) -> str:
    """The plan's slug, or ``slug-2``... when a live run already uses it, or a tmux
    session of that slug's stage names exists (tmux names)."""
    sessions = _tmux_sessions()
    if not _slug_in_use(slug, sessions):
        return slug
    for i in range(2, 1000):
        suffix = f"-{i}"
        candidate = slug[: MAX_SLUG - len(suffix)].rstrip("-") + suffix
        if not _slug_in_use(candidate, sessions):
            return candidate
    raise AutorunError(f"too many live runs using the project slug {slug!r}")


def context_file_text(state: RunState, stage: StageState, scope: str) -> str:
    """A stage context file, exactly in the seed's format."""
    if stage.depends_on:
        deps = ", ".join(f"Stage {d}" for d in stage.depends_on)
    else:
        deps = "None"
    orch = state.orch_dir.rstrip("/") + "/"
    return (
        f"# Stage {stage.number}: {stage.name}\n\n"
        f"## Scope\n\n{scope.strip() or '(no scope given in the master plan)'}\n\n"
        f"## Dependencies\n\n- Depends on: {deps}\n\n"
        f"## Orchestration\n\n"
        f"orchestration_dir: {orch}\n"
        f"stage_number: {stage.number}\n"
        f"status_file: {Path(state.orch_dir) / STATUS_FILE}\n"
        f"base_branch: {state.base_branch}\n"
    )


def context_file_path(orch_dir: Path, number: int) -> Path:
    return Path(orch_dir) / "stages" / f"stage-{number}-context.md"


def initial_state(
    plan: Plan,
    repo: RepoInfo,
    orch_dir: Path,
    slug: str,
    *,
    schedule: str,
    max_parallel: Optional[int],
    verify: Optional[dict[str, Any]] = None,
    launcher: str = "tmux",
) -> RunState:
    stages = {
        s.number: StageState(
            number=s.number,
            name=s.name,
            depends_on=list(s.depends_on),
            context_file=str(context_file_path(orch_dir, s.number)),
            estimate_hours=s.estimate_hours,
        )
        for s in plan.stages
    }
    state = RunState(
        plan_path=str(plan.path),
        plan_name=plan.name,
        project_slug=slug,
        project_root=str(repo.root),
        base_branch=repo.branch,
        created_at=utc_now(),
        orch_dir=str(orch_dir),
        stages=StageMap(stages),
        waves=[list(w) for w in plan.waves],
        current_wave=1,
        base_commit=repo.head,
        schedule=schedule,
        max_parallel=max_parallel,
        critical_path=list(plan.critical_path),
    )
    # ``launcher``: one name or a spec with caps, ``tmux=2,background=4`` (launchers/)
    set_run_launchers(state.extra, parse_spec(launcher, "launcher"))
    if verify is not None:
        state.extra["verify"] = dict(verify)  # the merge gate (autorun_py/gate/)
    return state


def target_dir(plan_name: str, project_root: Path) -> Path:
    """The directory for a new run of ``plan_name``.

    A run of the same plan still running for the same project is refused (never
    overwritten); one for another repository, or a finished one, is stepped over
    to ``<plan-name>-2``, ``-3``...
    """
    root = paths.layout().orchestration
    for i in range(1, 10000):
        cand = root / (plan_name if i == 1 else f"{plan_name}-{i}")
        if not cand.exists():
            return cand
        if is_running(cand) and _project_of(cand) == project_root:
            raise AutorunError(
                f"an orchestration of {plan_name} is still running for {project_root} in "
                f"{cand}; see `autorun status {cand.name}` (finish or fail its stages first)"
            )
    raise AutorunError(f"too many runs of {plan_name} under {root}")


def _project_of(orch_dir: Path) -> Optional[Path]:
    try:
        return Path(StatusStore(orch_dir).read().project_root)
    except AutorunError:
        return None


def create_orchestration(
    plan: Plan,
    cwd: Path,
    *,
    schedule: str = "dataflow",
    max_parallel: Optional[int] = None,
    verify: Optional[dict[str, Any]] = None,
    launcher: str = "tmux",
) -> RunState:
    """Create ``$AUTORUN_HOME/orchestration/<plan-name>[-N]/`` for ``plan``; return its state."""
    if max_parallel is not None and max_parallel < 1:
        raise UsageError("--max-parallel must be at least 1")
    repo = repo_info(cwd)
    check_component(plan.name)
    root = paths.layout().orchestration
    root.mkdir(parents=True, exist_ok=True)
    with creation_lock():
        _sweep_creating()
        return _create_locked(
            plan,
            repo,
            root,
            schedule=schedule,
            max_parallel=max_parallel,
            verify=verify,
            launcher=launcher,
        )


def _create_locked(
    plan: Plan,
    repo: RepoInfo,
    root: Path,
    *,
    schedule: str,
    max_parallel: Optional[int],
    verify: Optional[dict[str, Any]] = None,
    launcher: str = "tmux",
) -> RunState:
    import tempfile  # creating a run only (a merge resolves one: issue 16, its CPU)

    slug = unique_slug(plan.slug)
    for _attempt in range(20):
        target = target_dir(plan.name, repo.root)
        check_component(target.name)
        prefix = f"{CREATING_PREFIX}{target.name}.pid{os.getpid()}-"
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=str(root)))
        try:
            state = initial_state(
                plan,
                repo,
                target,
                slug,
                schedule=schedule,
                max_parallel=max_parallel,
                verify=verify,
                launcher=launcher,
            )
            (tmp / "stages").mkdir()
            for s in plan.stages:
                ctx = context_file_path(tmp, s.number)
                ctx.write_text(
                    context_file_text(state, state.stages[s.number], s.scope), encoding="utf-8"
                )
            write_json_atomic(tmp / STATUS_FILE, state.to_raw())
            append_event(
                tmp,
                "orchestration_started",
                plan_name=state.plan_name,
                project_slug=state.project_slug,
                project_root=state.project_root,
                total_stages=len(state.stages),
                total_waves=len(state.waves),
                waves=state.waves,
                recorded_dir=target,
                base_branch=state.base_branch,
                schedule=schedule,
                max_parallel=max_parallel,
                verify=verify,
                launcher=launcher,
            )
            try:
                os.rename(tmp, target)  # atomic; fails if another run took the name
            except OSError:
                continue
            return state
        finally:
            if tmp.exists():
                with contextlib.suppress(AutorunError, OSError):
                    worktrees.remove_creating_dir(tmp)
    raise AutorunError(f"could not claim an orchestration directory for {plan.name}")


# --------------------------------------------------------------------------- the lock


@contextlib.contextmanager
def creation_lock(timeout: float = 120.0) -> Iterator[None]:
    """One ``orchestrate`` at a time picks a slug and a directory: two runs started
    together never get the same slug (their tmux session names)."""
    from autorun_py.errors import ExitCode
    from autorun_py.fsutil import Lock

    path = paths.layout().lock(CREATE_LOCK)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AutorunError(f"cannot create: {exc.strerror}", path=path.parent) from None
    lock = Lock(
        path,
        timeout=timeout,
        message="another `autorun orchestrate` is creating a run",
        exit_code=ExitCode.FAILURE,
    ).acquire()
    try:
        yield
    finally:
        lock.release()


def _pid_alive(pid: int) -> bool:
    from autorun_py.proc import pid_alive

    return pid_alive(pid)


def _sweep_creating(now: Optional[float] = None) -> list[Path]:
    """Delete the ``.creating-*`` directories of interrupted ``orchestrate`` runs:
    those whose creator (the ``.pidN`` in the name) is dead, and any older than
    :data:`STALE_CREATING` seconds (an older version's, without a pid; or a pid
    reused since). The caller holds :func:`creation_lock`."""
    root = paths.layout().orchestration
    if not root.is_dir():
        return []
    now = time.time() if now is None else now
    swept = []
    for entry in sorted(root.iterdir()):
        if not entry.name.startswith(CREATING_PREFIX) or entry.is_symlink() or not entry.is_dir():
            continue
        m = _CREATING_PID.search(entry.name)
        try:
            age = now - entry.stat().st_mtime
        except OSError:
            continue
        dead = m is not None and not _pid_alive(int(m.group(1)))
        if dead or age > STALE_CREATING:
            with contextlib.suppress(AutorunError, OSError):
                worktrees.remove_creating_dir(entry)
                swept.append(entry)
    return swept


def sweep_creating() -> list[Path]:
    """:func:`_sweep_creating` under the creation lock; the directories removed."""
    with creation_lock():
        return _sweep_creating()


# --------------------------------------------------------------------------- lookup


def resolve(ref: Optional[str], cwd: Optional[Path] = None) -> Path:
    """Find an orchestration directory from a name, a path, or (None) the current place."""
    if ref:
        p = Path(ref).expanduser()
        # lexists: a status.json that is a symlink, a FIFO or corrupt is still
        # this run's; reading it gives the precise error.
        if os.path.lexists(p / STATUS_FILE):
            return p.resolve()
        if p.name == STATUS_FILE and os.path.lexists(p):
            return p.parent.resolve()
        if "/" not in ref and ref not in (".", ".."):
            cand = paths.layout().run_dir(ref)
            if os.path.lexists(cand / STATUS_FILE):
                return cand
        known = ", ".join(d.name for d in all_orchestrations()) or "none"
        raise AutorunError(f"no orchestration {ref!r} (known: {known})")
    return current_orchestration(cwd or Path.cwd())


def current_orchestration(cwd: Path) -> Path:
    """The run that ``cwd`` belongs to: a stage worktree of it, or its project repo."""
    runs = all_orchestrations()
    if not runs:
        raise AutorunError(
            f"no orchestrations under {paths.layout().orchestration}; start one with "
            "`autorun orchestrate PLAN`"
        )
    here = cwd.resolve()
    root: Optional[Path] = None
    with contextlib.suppress(AutorunError):
        root = git.repo_root(here)
        root = git.main_worktree(root)
    mine: list[tuple[bool, str, Path]] = []
    for d in runs:
        try:
            st = StatusStore(d).read()
        except AutorunError:
            continue
        in_stage = any(
            s.worktree and (here == Path(s.worktree) or Path(s.worktree) in here.parents)
            for s in st.stages.values()
        )
        if in_stage or (root is not None and Path(st.project_root) == root):
            mine.append((st.status == RUN_RUNNING, st.created_at, d))
    if not mine:
        names = ", ".join(d.name for d in runs)
        raise AutorunError(f"no orchestration belongs to {here}; name one of: {names}")
    running = [m for m in mine if m[0]]
    pool = running or mine
    if len(running) > 1:
        names = ", ".join(m[2].name for m in running)
        raise AutorunError(f"several runs of this repository are running ({names}); name one")
    return max(pool, key=lambda m: m[1])[2]
