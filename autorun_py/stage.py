"""A stage's own view of its run: registering a session, and ``autorun context``.

The lookup works from ``$AUTORUN_HOME`` alone (worktree paths and tmux session
names recorded in ``status.json``): autorun never writes a marker file into the
user's repository or a worktree, where an agent's ``git add -A`` would commit it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

from autorun_py import paths
from autorun_py.errors import AutorunError
from autorun_py.state import (
    COMPLETED,
    IN_PROGRESS,
    PENDING,
    RUN_RUNNING,
    STATUS_FILE,
    RunState,
    StageState,
    StatusStore,
    transition,
    update_phase,
)

# rundir (git, worktrees) and tmux are imported where they are used: the
# lean `phase` / `context` path (autorun_py/fastcli.py) needs neither.
_CONTEXT_NAME = re.compile(r"^stage-([0-9]+)-context\.md$")


@dataclass(frozen=True)
class StageContext:
    """What a stage session needs to know of its stage and run (`autorun context`)."""
    orch_dir: str
    stage: int
    name: str
    status: str
    status_file: str
    context_file: str
    plan_name: str
    project_slug: str
    project_root: str
    base_branch: str
    branch: Optional[str]
    worktree: Optional[str]
    session: Optional[str]
    plan_file: Optional[str]
    depends_on: list[int]
    chain_command: str
    plans_dir: str
    research_dir: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def to_shell(self) -> str:
        """``KEY=value`` lines, shlex-quoted: safe to ``eval``."""
        lines = []
        for key, value in asdict(self).items():
            if isinstance(value, list):
                value = " ".join(str(v) for v in value)
            text = "" if value is None else str(value)
            lines.append(f"AUTORUN_{key.upper()}={shlex.quote(text)}")
        return "\n".join(lines)

    def to_text(self, *, with_context_file: bool = False) -> str:
        rows = [
            ("Stage", f"{self.stage}: {self.name} ({self.status})"),
            ("Orchestration", self.orch_dir),
            ("Status file", self.status_file),
            ("Context file", self.context_file),
            ("Base branch", self.base_branch),
            ("Branch", self.branch or "-"),
            ("Worktree", self.worktree or "-"),
            ("Session", self.session or "-"),
            ("Plan file", self.plan_file or "-"),
            ("Depends on", ", ".join(map(str, self.depends_on)) or "none"),
            ("When done", self.chain_command),
        ]
        text = "\n".join(f"{k + ':':15}{v}" for k, v in rows)
        if with_context_file:
            try:
                text += "\n\n" + Path(self.context_file).read_text(encoding="utf-8")
            except OSError:
                pass
        return text


def make_context(state: RunState, stage: StageState) -> StageContext:
    return StageContext(
        orch_dir=state.orch_dir,
        stage=stage.number,
        name=stage.name,
        status=stage.status,
        status_file=str(Path(state.orch_dir) / STATUS_FILE),
        context_file=stage.context_file,
        plan_name=state.plan_name,
        project_slug=state.project_slug,
        project_root=state.project_root,
        base_branch=state.base_branch,
        branch=stage.branch,
        worktree=stage.worktree,
        session=stage.session,
        plan_file=stage.plan_file,
        depends_on=list(stage.depends_on),
        chain_command=f"/autorun:merge {state.orch_dir} {stage.number}",
        plans_dir=str(paths.layout().plans),
        research_dir=str(paths.layout().research),
    )


def current_tmux_session() -> Optional[str]:
    """The tmux session this process runs in, if any."""
    from autorun_py.tmux import Tmux

    return Tmux.from_env().current_session()


def _locate_context_file(context_file: Path) -> tuple[Path, int]:
    """(orch_dir, stage number) for a stage context file."""
    path = context_file.expanduser()
    if not path.is_file():
        raise AutorunError("stage context file not found", path=path)
    path = path.resolve()
    m = _CONTEXT_NAME.match(path.name)
    if m and (path.parent.parent / STATUS_FILE).is_file():
        return path.parent.parent, int(m.group(1))
    # A copy elsewhere: read the seed's "## Orchestration" section.
    orch: Optional[str] = None
    number: Optional[int] = None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AutorunError(f"cannot read stage context file: {exc}", path=path) from None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        if key.strip() == "orchestration_dir":
            orch = value.strip()
        elif key.strip() == "stage_number" and value.strip().isdigit():
            number = int(value.strip())
    if orch is None or number is None:
        raise AutorunError(
            "not a stage context file (no orchestration_dir / stage_number)", path=path
        )
    orch_dir = Path(orch).expanduser()
    if not (orch_dir / STATUS_FILE).is_file():
        raise AutorunError(f"its orchestration {orch_dir} does not exist", path=path)
    return orch_dir.resolve(), number


def _inside(here: Path, worktree: str) -> bool:
    wt = Path(os.path.realpath(worktree))
    return here == wt or wt in here.parents


def register_stage(context_file: Path, cwd: Path, *, session: Optional[str] = None) -> StageContext:
    """``autorun stage start``: check that this is the stage's own worktree, mark
    the stage in progress, open its triage phase.

    ``session``: the tmux session this runs in, when the caller knows it (the
    ``AUTORUN_TMUX_SESSION`` the launch gave the stage's session, read at the CLI
    edge: no tmux call when it is the stage's); else tmux is asked.

    The stage's branch, worktree and session are the ones autorun's launch
    recorded when it created them (see :mod:`autorun_py.launch`); they are never
    taken from the caller. From any other place (the project checkout, a
    worktree you made yourself, another repository) this refuses with one line
    and changes nothing: a place autorun did not create is never recorded as a
    stage's worktree, so it is never removed, restarted in or merged from. A
    stage without a worktree yet (``orchestrate --no-launch``) is started with
    ``autorun launch-ready``.
    """
    orch_dir, number = _locate_context_file(context_file)
    store = StatusStore(orch_dir)
    here = Path(os.path.realpath(cwd))
    session = session or current_tmux_session()
    with store.transaction() as txn:
        state = txn.state
        stage = state.stage(number)
        run = Path(state.orch_dir).name
        if stage.status == COMPLETED:
            raise AutorunError(f"stage {number} ({stage.name}) is already completed and merged")
        if stage.status not in (PENDING, IN_PROGRESS):
            raise AutorunError(
                f"stage {number} ({stage.name}) is {stage.status}; "
                f"`autorun retry {run} {number}` starts it again"
            )
        if stage.status == PENDING:
            missing = [d for d in stage.depends_on if state.stages[d].status != COMPLETED]
            if missing:
                raise AutorunError(
                    f"stage {number} waits for stage(s) {', '.join(map(str, missing))} "
                    "to be merged first"
                )
        if not stage.worktree or not stage.branch:
            raise AutorunError(
                f"stage {number} has no worktree yet; `autorun launch-ready {run}` creates it "
                "and starts the stage's session there"
            )
        if not _inside(here, stage.worktree):
            raise AutorunError(
                f"{here} is not stage {number}'s worktree ({stage.worktree}); run the stage "
                f"there (autorun made it), or see `autorun status {run}`"
            )
        if stage.status == PENDING:
            transition(txn, number, IN_PROGRESS, source="stage start")
        if stage.phase("triage").started_at is None:
            update_phase(txn, number, "triage", "started")
        if session and session != stage.session:
            from autorun_py.tmux import Tmux

            # Only a session this run started (its AUTORUN_ORCH_DIR) becomes the stage's.
            with contextlib.suppress(AutorunError, OSError):
                if Tmux.from_env().owned_by(session, state.orch_dir):
                    stage.session = session
        txn.emit(
            "stage_registered",
            stage=number,
            worktree=stage.worktree,
            branch=stage.branch,
            session=stage.session,
        )
        return make_context(state, stage)


def context_from_env(
    here: Path, include_done: bool, environ: Mapping[str, str]
) -> Optional[StageContext]:
    """The stage named by the session's environment (``AUTORUN_ORCH_DIR`` and
    ``AUTORUN_STAGE`` in ``environ``, the caller's process environment, set by the
    engine for every stage session), when this directory is its worktree (or that
    worktree is gone: a merged stage)."""
    orch = environ.get("AUTORUN_ORCH_DIR")
    number = environ.get("AUTORUN_STAGE") or ""
    if not orch or not number.isdigit():
        return None
    try:
        state = StatusStore(Path(orch)).read(lazy=True)
        stage = state.stage(int(number))
    except AutorunError:
        return None
    if stage.status != IN_PROGRESS and not (include_done and stage.status == COMPLETED):
        return None
    if stage.worktree:
        wt = Path(stage.worktree)
        if not (here == wt or wt in here.parents or not wt.exists()):
            return None
    return make_context(state, stage)


def find_context(
    cwd: Path,
    session: Optional[str] = None,
    *,
    include_done: bool = False,
    environ: Mapping[str, str],
) -> StageContext:
    """``autorun context``: the running stage this directory or tmux session belongs to.

    ``include_done``: a stage already merged counts too (``autorun merge`` says so
    instead of failing when it is called twice). ``environ``: the caller's process
    environment (its ``AUTORUN_ORCH_DIR`` and ``AUTORUN_STAGE`` name the stage first)."""
    here = cwd.resolve()
    found = context_from_env(here, include_done, environ)
    if found is not None:
        return found
    from autorun_py.rundir import all_orchestrations

    session = session if session is not None else current_tmux_session()
    best: Optional[tuple[int, StageContext]] = None
    wanted = (IN_PROGRESS, COMPLETED) if include_done else (IN_PROGRESS,)
    for orch_dir in all_orchestrations():
        try:
            state = StatusStore(orch_dir).read()
        except AutorunError:
            continue
        if state.status != RUN_RUNNING and not include_done:
            continue
        for stage in state.stages.values():
            if stage.status not in wanted:
                continue
            score = 0
            if stage.worktree:
                wt = Path(stage.worktree)
                if here == wt or wt in here.parents:
                    score = 2 + len(wt.parts)
            if not score and session and stage.session == session:
                score = 1
            if score and stage.status == IN_PROGRESS:
                score += 1000  # a running stage first
            if score and (best is None or score > best[0]):
                best = (score, make_context(state, stage))
    if best is None:
        where = f"{here}" + (f" (tmux session {session})" if session else "")
        raise AutorunError(f"{where} belongs to no running orchestration stage")
    return best[1]
