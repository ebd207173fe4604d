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

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

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
        # ... and none of them outlives the test (ps: the claude binary on this HOME).
        wait_until(
            lambda: not _claude_processes(claude),
            timeout=90,
            what=f"claude processes of the test's HOME to end: {_claude_processes(claude)}",
        )


def _claude_processes(claude: ClaudeRunner) -> list[int]:
    """Processes of the claude binary whose HOME is this test's (the daemon, its
    background sessions)."""
    exe = os.path.realpath(claude.claude)
    home = f"HOME={claude.home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.path.realpath(entry / "exe") != exe:
                continue
            if home in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


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
        # quicker (then resume finds it alive, or already merged: its chain merges
        # it at once, and starts nothing): never both.
        if 4 in actions:
            assert actions[4]["action"] == "resumed", actions
        else:
            merged_already = watch.status()["stages"]["4"]["status"] == "completed"
            assert 4 in result["alive"] or merged_already, result

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


# ---------------------------------------------------------------- cancel and resume

PAIR_PLAN = """# Pair master plan

## Stage 1: North wing

**Dependencies**: None

Build the north wing.

## Stage 2: South wing

**Dependencies**: None

Build the south wing.
"""

OTHER_PLAN = """# Other master plan

## Stage 1: Other lighthouse

**Dependencies**: None

Keep the light on.
"""

CRASH_PLAN = """# Crash master plan

## Stage 1: Harbor

**Dependencies**: None

Build the harbor.

## Stage 2: Quay

**Dependencies**: None

Build the quay.

## Stage 3: Pier

**Dependencies**: None

Build the pier.
"""


@dataclass
class HoldFirst(AutorunModel):
    """The scripted model, except that the first request of each stage named in
    ``hold`` waits (its event in ``reached`` set) until ``release`` is set."""

    hold: tuple[str, ...] = ()
    reached: dict[str, threading.Event] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)
    held: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.reached = {name: threading.Event() for name in self.hold}

    def start(self, req: MessagesRequest, first: str) -> Reply:
        name = next((n for n in self.hold if n in first), None)
        if name and not req.tool_results() and name not in self.held:
            self.held.add(name)
            self.reached[name].set()
            self.release.wait(timeout=180)
        return super().start(req, first)


def _trust(home: Path, folder: Path) -> None:
    """Trust ``folder`` in ``~/.claude.json`` (as accepting the trust prompt does)."""
    path = home / ".claude.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    projects = config.setdefault("projects", {})
    projects.setdefault(str(folder.resolve()), {})["hasTrustDialogAccepted"] = True
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")


def _autorun(
    claude: ClaudeRunner, *args: str, cwd: Path = REPO, timeout: float = 180, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autorun_py", *args],
        env=claude.env(**env),
        cwd=str(cwd),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _orchestrate(claude: ClaudeRunner, project: Path, plan: str, **env: str) -> Path:
    (project / "plan.md").write_text(plan, encoding="utf-8")
    proc = _autorun(claude, "orchestrate", "plan.md", "--json", cwd=project, **env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Path(json.loads(proc.stdout)["orch_dir"])


def _status(orch: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((orch / "status.json").read_text(encoding="utf-8"))
    return data


def _events(orch: Path) -> list[dict[str, Any]]:
    lines = (orch / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line]


def _handles(orch: Path) -> set[str]:
    stages = _status(orch)["stages"].values()
    return {h for s in stages for h in s.get("launcher_handles", [])}


def _running(claude: ClaudeRunner, handles: set[str]) -> set[str]:
    """Those of ``handles`` Claude Code lists with a process that runs."""
    out = set()
    for row in _agents(claude):
        pid = row.get("pid")
        if row.get("id") in handles and isinstance(pid, int):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            out.add(str(row["id"]))
    return out


def _ended(claude: ClaudeRunner, handles: set[str]) -> bool:
    rows = [r for r in _agents(claude) if r.get("id") in handles]
    return not _running(claude, handles) and not any(r.get("state") == "working" for r in rows)


def _wait_finished(orch: Path, model: AutorunModel, timeout: float = 300) -> dict[str, Any]:
    def done() -> Any:
        assert not model.problems, model.problems
        status = _status(orch)
        return status if status.get("status") not in (None, "running") else None

    result: dict[str, Any] = wait_until(done, timeout=timeout, interval=0.5, what=f"{orch} done")
    return result


def _diag(claude: ClaudeRunner, *orchs: Path) -> str:
    parts = [f"--- claude agents: {_agents(claude)}"]
    for orch in orchs:
        for name in ("status.json", "events.jsonl"):
            f = orch / name
            if f.exists():
                parts.append(f"--- {f}:\n{f.read_text(encoding='utf-8')[-5000:]}")
    parts.append("--- fake API requests:\n" + claude.fake.describe()[-5000:])
    return "\n".join(parts)


def _stop_monitors(*orchs: Path) -> None:
    from .runs import _monitor_pid

    for orch in orchs:
        pid = _monitor_pid(orch)
        if pid:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)


def test_background_cancel_ends_this_runs_sessions_only_and_a_retried_stage_lands(
    bg_env: tuple[ClaudeRunner, Plugin], tmp_path: Path
) -> None:
    """Two runs side by side. ``cancel --stage`` ends that stage's session only;
    ``cancel`` of the run ends every session the run started (``claude agents --json
    --all``: none with a process, none working); the other run's session never
    stops and its stage lands. A retry of the cancelled stage runs a new session
    that lands, and ``resume`` afterwards starts nothing."""
    claude, _plugin = bg_env
    model = HoldFirst(hold=("North wing", "South wing", "Other lighthouse"))
    claude.fake.script = model
    ours = make_project(tmp_path / "project", {"README.md": "# pair\n"})
    theirs = make_project(tmp_path / "other", {"README.md": "# other\n"})
    _trust(claude.home, theirs)  # its stage worktrees are trusted through it
    initial = git(ours, "rev-parse", "HEAD")
    run = _orchestrate(claude, ours, PAIR_PLAN)
    other = _orchestrate(claude, theirs, OTHER_PLAN)
    try:
        for name, event in model.reached.items():
            assert event.wait(timeout=180), f"{name} never asked the model\n" + _diag(
                claude, run, other
            )
        st = _status(run)["stages"]
        h1, h2 = st["1"]["launcher_handle"], st["2"]["launcher_handle"]
        (h_other,) = _handles(other)
        assert st["1"]["launcher"] == st["2"]["launcher"] == "background"
        wait_until(
            lambda: _running(claude, {h1, h2, h_other}) == {h1, h2, h_other},
            timeout=60,
            what="the three sessions running",
        )
        view = json.loads(_autorun(claude, "status", run.name, "--json").stdout)
        rows = {r["number"]: r for r in view["stages"]}
        assert rows[1]["attach"] == f"claude attach {h1}" and rows[1]["launcher"] == "background"

        one = _autorun(claude, "cancel", run.name, "--stage", "2", "--json")
        assert one.returncode == 0, one.stderr
        assert h2 in json.loads(one.stdout)["sessions_killed"]
        wait_until(lambda: _ended(claude, {h2}), timeout=60, what="stage 2's session ended")
        assert _running(claude, {h1, h_other}) == {h1, h_other}  # the others run on

        whole = _autorun(claude, "cancel", run.name, "--json")
        assert whole.returncode == 0, whole.stderr
        ours_all = _handles(run)
        wait_until(
            lambda: _ended(claude, ours_all),
            timeout=60,
            what=f"every session of the run ended: {_agents(claude)}",
        )
        assert _running(claude, {h_other}) == {h_other}  # not this run's: untouched
        assert _status(run)["status"] == "cancelled"

        model.release.set()
        done_other = _wait_finished(other, model)
        assert done_other["status"] == "completed", done_other
        assert_merged_stage(theirs, done_other, "1")

        retried = _autorun(claude, "retry", run.name, "2", "--json")
        assert retried.returncode == 0, retried.stderr
        assert json.loads(retried.stdout)["launched"] == [2]
        final = _wait_finished(run, model)
        assert final["stages"]["2"]["status"] == "completed", final
        assert final["stages"]["1"]["status"] == "cancelled"
        assert final["stages"]["2"]["launcher_handle"] != h2  # a new session
        assert_merged_stage(ours, final, "2")
        merged = [e["stage"] for e in _events(run) if e["type"] == "merge_complete"]
        assert merged == [2], merged
        subjects = git(ours, "log", "--format=%s", f"{initial}..main").splitlines()
        assert subjects.count("stage work: South wing") == 1, subjects
        assert "stage work: North wing" not in subjects
        # resume after the cancel and the retry: nothing to start, nothing restarted
        again = _autorun(claude, "resume", run.name, "--json")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["actions"] == []
        wait_until(
            lambda: _ended(claude, _handles(run) | {h_other}),
            timeout=60,
            what="the merged stages' sessions ended",
        )
        assert model.problems == []
    finally:
        model.release.set()
        _stop_monitors(run, other)


def test_background_resume_after_the_engine_was_killed_mid_launch(
    bg_env: tuple[ClaudeRunner, Plugin], tmp_path: Path
) -> None:
    """``autorun orchestrate`` SIGKILLed after it started the first of three claimed
    stages (in the 5 s between two starts): the other two are claimed with no
    session and no monitor watches the run. ``autorun resume`` starts exactly those
    two and the monitor; the first, alive, is left alone; every stage lands once."""
    claude, _plugin = bg_env
    model = HoldFirst(hold=("Harbor",))
    claude.fake.script = model
    project = make_project(tmp_path / "project", {"README.md": "# crash\n"})
    (project / "plan.md").write_text(CRASH_PLAN, encoding="utf-8")
    initial = git(project, "rev-parse", "HEAD")
    proc = subprocess.Popen(
        [sys.executable, "-m", "autorun_py", "orchestrate", "plan.md", "--json"],
        env=claude.env(AUTORUN_LAUNCH_STAGGER="5"),
        cwd=str(project),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    root = Path(os.environ["AUTORUN_HOME"]) / "orchestration"
    run: Optional[Path] = None
    try:

        def first_started() -> Optional[Path]:
            for orch in root.glob("*/status.json"):
                with contextlib.suppress(ValueError, OSError):
                    st = _status(orch.parent)["stages"]
                    if st["1"].get("launcher_handle"):
                        return orch.parent
            return None

        run = wait_until(first_started, timeout=120, what="stage 1 started")
        assert run is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        st = _status(run)["stages"]
        # Stage 1 runs; 2 and 3 are claimed, neither started (the kill came between).
        assert [st[n]["status"] for n in "123"] == ["in_progress"] * 3, st
        assert not st["2"].get("launcher_handle") and not st["3"].get("launcher_handle"), st
        from .runs import _monitor_pid

        assert _monitor_pid(run) is None  # the monitor starts after the launches
        assert model.reached["Harbor"].wait(timeout=120)
        h1 = st["1"]["launcher_handle"]

        resumed = _autorun(claude, "resume", run.name, "--json")
        assert resumed.returncode == 0, resumed.stderr
        result = json.loads(resumed.stdout)
        actions = {a["stage"]: a["action"] for a in result["actions"]}
        assert actions == {2: "started", 3: "started"}, result
        assert 1 in result["alive"] and result["monitor_started"], result
        model.release.set()
        final = _wait_finished(run, model)
        assert final["status"] == "completed", final
        events = _events(run)
        assert h1 in final["stages"]["1"]["launcher_handles"]
        assert not [e for e in events if e["type"] == "stage_restarted"], events  # none
        launched = sorted(e["stage"] for e in events if e["type"] == "stage_launched")
        assert launched == [1, 2, 3], launched  # one start each (1 by orchestrate)
        for n in "123":
            assert_merged_stage(project, final, n)
        merged = [e["stage"] for e in events if e["type"] == "merge_complete"]
        assert sorted(merged) == [1, 2, 3], merged  # each exactly once
        subjects = git(project, "log", "--format=%s", f"{initial}..main").splitlines()
        for name in ("Harbor", "Quay", "Pier"):
            assert subjects.count(f"stage work: {name}") == 1, subjects
        assert model.problems == []
        wait_until(lambda: _ended(claude, _handles(run)), timeout=60, what="sessions ended")
    finally:
        model.release.set()
        if proc.poll() is None:
            proc.kill()
        if run is not None:
            _stop_monitors(run)


MIXED_PLAN = """# Mixed master plan

## Stage 1: Red room

**Dependencies**: None

Paint the red room.

## Stage 2: Green room

**Dependencies**: None

Paint the green room.

## Stage 3: Blue room

**Dependencies**: None

Paint the blue room.

## Stage 4: Hallway

**Dependencies**: Stage 1, Stage 2, Stage 3

Join the rooms.
"""


def test_a_run_mixing_tmux_and_background_places_stages_by_cap(
    bg_env: tuple[ClaudeRunner, Plugin], tmp_path: Path, tmux_socket: str
) -> None:
    """``--launcher tmux=1,background=1``: stage 1 in tmux, stage 2 a background
    session, stage 3 waits for a free slot; never two stages of one launcher at once;
    every stage merged exactly once; status and the report say where each ran."""
    claude, _plugin = bg_env
    model = AutorunModel()
    claude.fake.script = model
    project = make_project(tmp_path / "project", {"README.md": "# mixed\n"})
    initial = git(project, "rev-parse", "HEAD")
    run = _orchestrate(claude, project, MIXED_PLAN, AUTORUN_LAUNCHER="tmux=1,background=1")
    try:
        raw = _status(run)
        assert raw["launchers"] == [
            {"name": "tmux", "max_parallel": 1},
            {"name": "background", "max_parallel": 1},
        ]
        assert raw["max_parallel"] == 2  # the caps' sum
        assert raw["stages"]["1"]["launcher"] == "tmux"
        assert raw["stages"]["2"]["launcher"] == "background"
        # Stage 3 waits for a free slot (unless one of the first two merged already:
        # a chain merges at once); the spans below check the caps throughout.
        freed = any(raw["stages"][n]["status"] == "completed" for n in "12")
        assert raw["stages"]["3"]["status"] == "pending" or freed, raw["stages"]
        final = _wait_finished(run, model)
        assert final["status"] == "completed", _diag(claude, run)
        for n in "1234":
            assert_merged_stage(project, final, n)
        events = _events(run)
        merged = [e["stage"] for e in events if e["type"] == "merge_complete"]
        assert sorted(merged) == [1, 2, 3, 4], merged
        # at most one stage per launcher at any moment (launch .. merge)
        spans: dict[str, list[tuple[str, str]]] = {}
        end = {e["stage"]: e["ts"] for e in events if e["type"] == "merge_complete"}
        for e in events:
            if e["type"] == "stage_launched":
                spans.setdefault(e["launcher"], []).append((e["ts"], end[e["stage"]]))
        assert set(spans) == {"tmux", "background"}, spans
        for name, items in spans.items():
            items.sort()
            for (_a0, a1), (b0, _b1) in zip(items, items[1:]):
                assert a1 <= b0, (name, items)
        placed = {n: final["stages"][n]["launcher"] for n in "1234"}
        assert placed["1"] == "tmux" and placed["2"] == "background", placed
        report = json.loads(_autorun(claude, "report", run.name, "--json").stdout)
        where = {s["number"]: (s["launcher"], s["sessions"]) for s in report["stages"]}
        assert where[1] == ("tmux", [final["stages"]["1"]["session"]]), where
        assert where[2][0] == "background" and where[2][1], where
        subjects = git(project, "log", "--format=%s", f"{initial}..main").splitlines()
        for name in ("Red room", "Green room", "Blue room", "Hallway"):
            assert subjects.count(f"stage work: {name}") == 1, subjects
        assert model.problems == []
    finally:
        _stop_monitors(run)
