"""Where a stage stands in its protocol: has it handed off, and what is its one next step.

The Stop hook refuses a stop with :func:`next_step`'s text, the monitor types it
into a quiet session, and the unstick path acts on its ``kind``; all three read
the same answer from ``status.json`` and git, so a model that stops early,
repeats a step or dies mid-tool is steered the same way wherever it is seen.
:func:`fingerprint` is what "no progress since the last refusal" compares.
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from autorun_py.errors import AutorunError


@dataclass(frozen=True)
class Step:
    """What the stage must do next: ``kind`` is one of ``handover`` (committed work in a
    clean worktree: chain to the merge), ``commit``, ``work``, ``resolve``, ``merge``."""

    kind: str
    text: str


def engine_command(environ: Mapping[str, str]) -> str:
    """How the model calls the engine (the commands' ``R``), from the hook's environment."""
    root = environ.get("CLAUDE_PLUGIN_ROOT")
    if not root:
        # The engine's own plugin folder: its shim remembers the data directory.
        shim = Path(__file__).resolve().parent.parent / "scripts" / "autorun"
        return shlex.quote(str(shim)) if shim.is_file() else "autorun"
    cmd = shlex.quote(f"{root}/scripts/autorun")
    data = environ.get("CLAUDE_PLUGIN_DATA")
    return f"{cmd} --data-dir {shlex.quote(data)}" if data else cmd


def dirty_files(worktree: Path) -> list[str]:
    from autorun_py.gitmerge import worktree_dirty_files

    try:
        return list(worktree_dirty_files(worktree))
    except AutorunError:
        return []


def commit_count(state: Any, st: Any) -> int:
    from autorun_py import git

    if not st.branch or not st.start_commit:
        return 0
    try:
        out = git.git_out(
            ["rev-list", "--count", f"{st.start_commit}..refs/heads/{st.branch}"],
            Path(state.project_root),
        )
        return int(out or "0")
    except (AutorunError, ValueError):
        return 0


def handed_off(state: Any, st: Any, session_id: Optional[str] = None) -> Optional[str]:
    """Why the stage (as seen from session ``session_id``) needs nothing more from its
    model, or None when it does."""
    from autorun_py.state import IN_PROGRESS, RUN_RUNNING

    if state.status != RUN_RUNNING:
        return f"the run is {state.status}"
    if st.status != IN_PROGRESS:
        return f"stage {st.number} is {st.status}"
    if st.merge_state == "blocked":
        return "its merge waits for the user's uncommitted changes"
    if session_id and st.claude_session_id and session_id != st.claude_session_id:
        return "this session handed over to a later step"
    from autorun_py.review import is_stage_waiting

    with contextlib.suppress(Exception):
        if is_stage_waiting(Path(state.orch_dir), st.number):
            return "it waits for the user's answers in a review file"
    if not st.worktree or not Path(st.worktree).is_dir():
        return "its worktree is gone"
    return None


def next_step(state: Any, st: Any, r: str = "autorun") -> Step:
    """The one next step of a stage in progress that has not handed off."""
    orch = state.orch_dir
    n = st.number
    chain = f'{r} chain "/autorun:merge" --window merge --close-caller'
    fail = f'{r} stage fail {shlex.quote(orch)} {n} --reason "<why>"'
    if st.merge_state == "conflict":
        files = ", ".join(st.merge_detail.get("files") or []) or "some files"
        mw = st.merge_detail.get("merge_worktree") or "the merge worktree"
        return Step(
            "resolve",
            f"the merge of stage {n} conflicts in {files}: resolve each file in {mw} "
            f"keeping both sides' intent, `git add` it, then run "
            f"`{r} merge {shlex.quote(orch)} {n} --continue`",
        )
    wt = Path(st.worktree or ".")
    dirty = dirty_files(wt)
    if dirty:
        shown = ", ".join(dirty[:8]) + (" ..." if len(dirty) > 8 else "")
        return Step(
            "commit",
            f"you have uncommitted changes in {wt} ({shown}): commit them "
            f'(`git add -A && git commit -m "<what you did>"`), then hand over with `{chain}`',
        )
    merge_ph = st.phases.get("merge")
    if merge_ph is not None and merge_ph.started_at and not merge_ph.completed_at:
        return Step("merge", f"the merge of stage {n} did not finish: run `{r} merge`")
    commits = commit_count(state, st)
    if commits:
        return Step(
            "handover",
            f"stage {n} has {commits} commit(s) and a clean worktree: if its scope is done, "
            f"hand over to the merge with `{chain}`; if it cannot be done, `{fail}`",
        )
    return Step(
        "work",
        f"stage {n} has no commits yet on {st.branch}: do the work its scope asks for "
        f"({st.context_file}), commit it, then hand over with `{chain}`; "
        f"if it cannot be done, `{fail}`",
    )


def fingerprint(state: Any, st: Any) -> str:
    from autorun_py import git

    head = ""
    with contextlib.suppress(AutorunError):
        if st.branch:
            head = git.rev_parse(f"refs/heads/{st.branch}", Path(state.project_root))
    dirty = ",".join(sorted(dirty_files(Path(st.worktree or "."))))
    return f"{head}|{dirty}|{st.merge_state}|{st.current_phase()}"
