"""``--launcher background`` end to end: every stage a real Claude Code background
session (``claude --bg``, supervised by Claude Code's own daemon), the scripted
model playing each of them, and no tmux server at all.

A 6-stage plan (1, 2, 3 independent; 4 after 1; 5 after 2 and 3; 6 after 4 and
5) completes with every stage merged exactly once. Stage 4's session is killed
(SIGKILL to its worker process) before its first answer; ``autorun resume``
finds it dead through ``claude agents --json`` and brings it back (``claude stop
<id>``, then ``claude --bg --resume <session id> continue``), or finds that Claude
Code's own supervisor (which restarts a killed session after ~12 s) already did;
never as a second copy. The run still completes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .autorun_model import AutorunModel, kebab
from .conftest import Plugin, link_plugin_data
from .fake_anthropic import MessagesRequest, Reply
from .harness import REPO, ClaudeRunner, wait_until
from .runs import RunWatch, assert_merged_stage, git, make_project, prepare_autorun_home

SIX_STAGE_PLAN = """# Fleet master plan

## Stage 1: Alpha module

**Dependencies**: None

Create the alpha module.

## Stage 2: Beta module

**Dependencies**: None

Create the beta module.

## Stage 3: Gamma module

**Dependencies**: None

Create the gamma module.

## Stage 4: Delta feature

**Dependencies**: Stage 1

Build delta on alpha.

## Stage 5: Epsilon feature

**Dependencies**: Stage 2, Stage 3

Build epsilon on beta and gamma.

## Stage 6: Zeta release

**Dependencies**: Stage 4, Stage 5

Tie it all together.
"""

KILLED = "Delta feature"


@dataclass
class HoldingModel(AutorunModel):
    """The scripted model, except that the first request of the ``KILLED`` stage's
    session waits (``reached`` set) until the test has killed that session
    (``release``). The session's later requests, after its recovery, go on."""

    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    held: bool = False

    def start(self, req: MessagesRequest, first: str) -> Reply:
        if KILLED in first and not req.tool_results() and not self.held:
            self.held = True
            self.reached.set()
            self.release.wait(timeout=120)
        return super().start(req, first)


def _agents(claude: ClaudeRunner) -> list[dict[str, Any]]:
    out = subprocess.run(
        [str(claude.claude), "agents", "--json", "--all"],
        env=claude.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    data = json.loads(out.stdout or "[]")
    return data if isinstance(data, list) else []


@pytest.fixture
def bg_env(
    claude: ClaudeRunner, e2e_plugin: Plugin, tmp_path: Path, tmux_socket: str
) -> Iterator[tuple[ClaudeRunner, Plugin]]:
    prepare_autorun_home(claude.home, trusted=[tmp_path / "project"])
    # A session behind a gateway (ANTHROPIC_BASE_URL) is restarted only when the
    # gateway is in settings "env" (docs/claude-code.md, "Background sessions").
    settings_path = claude.home / ".claude" / "settings.json"
    settings = json.loads(settings_path.read_text(encoding="utf-8"))
    settings.setdefault("env", {})["ANTHROPIC_BASE_URL"] = claude.fake.base_url
    settings_path.write_text(json.dumps(settings, indent=2), encoding="utf-8")
    link_plugin_data(claude.home, e2e_plugin)
    claude.extra_env["AUTORUN_PLUGIN_DIR"] = str(e2e_plugin.root)
    claude.extra_env["AUTORUN_TMUX_SOCKET"] = tmux_socket  # must stay unused
    claude.extra_env["AUTORUN_LAUNCHER"] = "background"
    try:
        yield claude, e2e_plugin
    finally:
        # The daemon and every background session of this test's HOME.
        subprocess.run(
            [str(claude.claude), "daemon", "stop", "--any"],
            env=claude.env(),
            capture_output=True,
            timeout=60,
        )


def test_background_launcher_runs_six_stages_and_recovers_a_killed_session(
    bg_env: tuple[ClaudeRunner, Plugin], tmp_path: Path, tmux_socket: str
) -> None:
    claude, plugin = bg_env
    project = make_project(tmp_path / "project", {"README.md": "# fleet\n"})
    (project / "plan.md").write_text(SIX_STAGE_PLAN, encoding="utf-8")
    initial = git(project, "rev-parse", "HEAD")
    model = HoldingModel()
    claude.fake.script = model
    watch = RunWatch(claude, project, model)
    try:
        watch.orchestrate("plan.md", plugin_dirs=[plugin.root], env=claude.env())
        # Stage 4 starts once stage 1 is merged; its first request is held.
        if not model.reached.wait(timeout=150):
            pytest.fail("stage 4 never asked the model\n" + watch.diagnostics())
        status = watch.status()
        assert status["launcher"] == "background"
        st4 = status["stages"]["4"]
        handle = st4["launcher_handle"]
        row = next(r for r in _agents(claude) if r.get("id") == handle)
        assert row["kind"] == "background" and row["cwd"] == st4["worktree"], row
        os.kill(int(row["pid"]), signal.SIGKILL)
        wait_until(
            lambda: not any(r.get("id") == handle and r.get("pid") for r in _agents(claude)),
            timeout=30,
            what="claude agents to show stage 4's session without a process",
        )
        model.release.set()
        # Claude Code's supervisor restarts a killed session by itself after ~12 s;
        # autorun's resume usually comes first (stop + wake: never a copy).
        resumed = subprocess.run(
            [sys.executable, "-m", "autorun_py", "resume", watch.orch_dirs()[0].name, "--json"],
            env=claude.env(),
            cwd=str(REPO),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert resumed.returncode == 0, resumed.stderr + watch.diagnostics()
        result = json.loads(resumed.stdout)
        actions = {a["stage"]: a for a in result["actions"]}
        # autorun found it dead and woke it, or Claude Code's supervisor was
        # quicker (then resume finds it alive and starts nothing): never both.
        if 4 in actions:
            assert actions[4]["action"] == "resumed", actions
        else:
            assert 4 in result["alive"], result

        status = watch.wait_run_finished(timeout=300)
        assert status["status"] == "completed", watch.diagnostics()
        names = ["Alpha module", "Beta module", "Gamma module", "Delta feature"]
        names += ["Epsilon feature", "Zeta release"]
        for n in range(1, 7):
            assert_merged_stage(project, status, str(n))
        for name in names:
            assert (project / "work" / f"{kebab(name)}.md").is_file(), watch.diagnostics()
        assert len(git(project, "rev-list", "--merges", f"{initial}..main").split()) == 6
        events = watch.events()
        merged = [e["stage"] for e in events if e["type"] == "merge_complete"]
        assert sorted(merged) == [1, 2, 3, 4, 5, 6], merged  # each exactly once
        restarted = [e["stage"] for e in events if e["type"] == "stage_restarted"]
        assert restarted == ([4] if 4 in actions else []), restarted
        # No second copy did stage 4's work: one commit of it on main.
        subjects = git(project, "log", "--format=%s", "main").splitlines()
        assert subjects.count("stage work: Delta feature") == 1, subjects
        # Dependants started from a base holding their dependencies' merges.
        for n, deps in ((4, [1]), (5, [2, 3]), (6, [4, 5])):
            for d in deps:
                git(
                    project,
                    "merge-base",
                    "--is-ancestor",
                    status["stages"][str(d)]["merge_commit"],
                    status["stages"][str(n)]["start_commit"],
                )
        # Nothing ran in tmux: no server on the socket autorun would have used.
        probe = subprocess.run(
            ["tmux", "-L", tmux_socket, "list-sessions"], capture_output=True, text=True
        )
        assert probe.returncode != 0, probe.stdout
        # Merged stages' sessions are all ended (stopped; `claude rm` drops them
        # from the list when it can), their worktrees and branches gone.
        handles = {h for s in status["stages"].values() for h in s.get("launcher_handles", [])}

        def ended() -> bool:
            rows = [r for r in _agents(claude) if r.get("id") in handles]
            return not any(r.get("pid") or r.get("state") == "working" for r in rows)

        wait_until(ended, timeout=60, what=f"the stages' sessions ended: {_agents(claude)}")
        wait_until(
            lambda: (
                git(project, "worktree", "list", "--porcelain").count("worktree ") == 1
                and git(project, "branch", "--list", "autorun/*") == ""
            ),
            timeout=30,
            what="stage worktrees and branches removed",
        )
        assert git(project, "status", "--porcelain") == "?? plan.md"
        assert model.problems == []
        # the one request that was in flight when stage 4's session was killed
        assert claude.fake.errors() == ["client closed the connection"]
        watch.wait_orchestrator_exit()
    finally:
        model.release.set()
        watch.stop()
