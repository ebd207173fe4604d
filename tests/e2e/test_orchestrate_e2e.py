"""End-to-end runs with the real Claude Code CLI: a whole orchestration, every
session a real ``claude`` (the fake Messages API plays the model, see
:mod:`tests.e2e.autorun_model`).

1. ``claude -p "/autorun:orchestrate plan.md"`` on a 3-stage plan (stage 2 depends
   on stage 1; stage 3 on nothing): the command's ``!`` line creates the run and
   launches stages 1 and 3 in tmux; each stage's interactive session runs
   ``/autorun:start <context>``, does its work, commits, chains to
   ``/autorun:merge``, whose ``!`` line merges and launches stage 2, until the run
   is completed on the base branch.
2. Two stages edit the same line: the second ``/autorun:merge`` shows the conflict
   (exit status 3) to the model, which resolves it in the merge worktree keeping
   both sides, ``git add``s it and runs ``merge --continue``.

The assertions are on the repository and ``status.json``, not on the script.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .autorun_model import AutorunModel, StageSeen
from .conftest import Plugin, link_plugin_data
from .harness import ClaudeRunner
from .runs import (
    RunWatch,
    assert_merged_stage,
    check_three_stage_run,
    git,
    make_project,
    prepare_autorun_home,
    start_three_stage_project,
    turns_per_stage,
)

CONFLICT_PLAN = """# Notes master plan

## Stage 1: North notes

**Dependencies**: None

Fill in the team line of NOTES.md for the north team.

## Stage 2: South notes

**Dependencies**: None

Fill in the team line of NOTES.md for the south team.
"""

NOTES = "# Notes\n\nteam: TBD\n\nend of notes\n"


@pytest.fixture
def run_env(
    claude: ClaudeRunner, e2e_plugin: Plugin, tmp_path: Path, tmux_socket: str
) -> Iterator[tuple[ClaudeRunner, Plugin]]:
    # Claude Code trusts a git worktree when the main repository's folder is
    # trusted (a parent folder's entry does not cover it): trust the project.
    prepare_autorun_home(claude.home, trusted=[tmp_path / "project"])
    link_plugin_data(claude.home, e2e_plugin)
    # Stage sessions: the real claude (AUTORUN_CLAUDE, from ClaudeRunner.env), this
    # plugin folder, the private tmux server; permission mode from settings (dontAsk).
    claude.extra_env["AUTORUN_PLUGIN_DIR"] = str(e2e_plugin.root)
    claude.extra_env["AUTORUN_TMUX_SOCKET"] = tmux_socket
    yield claude, e2e_plugin


def test_orchestrate_runs_a_three_stage_plan_to_completion_with_real_sessions(
    run_env: tuple[ClaudeRunner, Plugin], tmp_path: Path
) -> None:
    claude, plugin = run_env
    project, initial = start_three_stage_project(tmp_path / "project")
    model = AutorunModel()
    claude.fake.script = model
    watch = RunWatch(claude, project, model)
    try:
        watch.orchestrate("plan.md", plugin_dirs=[plugin.root], env=claude.env())
        check_three_stage_run(watch, initial)
        assert watch.wait_orchestrator_exit() == 0, watch.diagnostics()
        print("TURNS PER STAGE", turns_per_stage(watch))
    finally:
        watch.stop()


def test_merge_conflict_is_resolved_by_the_model_and_continued(
    run_env: tuple[ClaudeRunner, Plugin], tmp_path: Path
) -> None:
    claude, plugin = run_env
    project = make_project(tmp_path / "project", {"NOTES.md": NOTES})
    (project / "plan.md").write_text(CONFLICT_PLAN, encoding="utf-8")

    def same_line_work(stage: StageSeen) -> str:
        # Both stages rewrite the same line: whichever merges second conflicts.
        team = stage.name.split()[0].lower()
        return f"sed -i 's/^team: TBD$/team: {team}/' NOTES.md && grep -n team NOTES.md"

    model = AutorunModel(work=same_line_work)
    claude.fake.script = model
    watch = RunWatch(claude, project, model)
    try:
        watch.orchestrate("plan.md", plugin_dirs=[plugin.root], env=claude.env())
        status = watch.wait_run_finished()
        assert status["status"] == "completed", watch.diagnostics()

        notes = (project / "NOTES.md").read_text(encoding="utf-8")
        assert "team: north" in notes and "team: south" in notes, notes
        assert "<<<<<<<" not in notes and ">>>>>>>" not in notes and "=======" not in notes
        assert "team: TBD" not in notes
        assert notes.startswith("# Notes\n") and notes.endswith("end of notes\n")
        for n in ("1", "2"):
            assert_merged_stage(project, status, n)
        assert git(project, "show", "main:NOTES.md") + "\n" == notes
        assert git(project, "status", "--porcelain", "--untracked-files=no") == ""

        conflicted = [e for e in watch.events() if e["type"] == "merge_conflict"]
        assert len(conflicted) == 1 and conflicted[0]["files"] == ["NOTES.md"]
        loser = str(conflicted[0]["stage"])
        assert status["stages"][loser]["counters"].get("conflicts") == 1
        conflicts_md = watch.orch_dirs()[0] / "conflicts.md"
        assert conflicts_md.is_file()
        assert f"Stage {loser}: " in conflicts_md.read_text(encoding="utf-8")
        assert not (watch.autorun_home / "worktrees").exists() or not any(
            (watch.autorun_home / "worktrees").rglob("merge-stage-*")
        )
        watch.wait_orchestrator_exit()
        # The first merged at once from its chain; the second's chain met the
        # conflict and opened the merge window, whose model was shown it (exit
        # status 3) and finished it with --continue.
        assert len(model.merges_seen) == 1, model.merges_seen
        assert "exit status 3" in model.merges_seen[0], model.merges_seen
        assert sum(m.startswith("merged by the engine") for m in model.chains_seen) == 1
        assert model.problems == []
    finally:
        watch.stop()
