"""Driving a whole autorun run through the real Claude Code CLI, for the
end-to-end tests: a project, a HOME in which every session runs unattended,
``claude -p "/autorun:orchestrate <plan>"``, waiting for the run, diagnostics
(status.json, events, every tmux pane, the pane logs, the fake API's requests),
and the checks of a finished three-stage run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pytest

from tests.helpers import git

from .autorun_model import AutorunModel, kebab
from .harness import QUIET_ENV, ClaudeRunner, prepare_home, wait_until

# Stage 2 depends on stage 1; stage 3 on nothing.
THREE_STAGE_PLAN = """# Widgets master plan

## Stage 1: Alpha module

**Dependencies**: None

Create the alpha module.

## Stage 2: Beta feature

**Dependencies**: Stage 1

Build the beta feature on top of alpha.

## Stage 3: Gamma docs

**Dependencies**: None

Write the gamma documentation.
"""

RUN_TIMEOUT = 150.0  # seconds for a whole run (typically well under a minute)


def make_project(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    for rel, content in files.items():
        (root / rel).write_text(content, encoding="utf-8")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial commit")
    return root


def prepare_autorun_home(home: Path, trusted: list[Path]) -> None:
    """A HOME for a run: no first-run screen, dontAsk + allow list, the quiet
    variables in settings ``env`` (the engine forwards only CLAUDE_*, ANTHROPIC_*,
    AUTORUN_* and a few basics to stage sessions), and a git identity in
    ~/.gitconfig for the stage sessions' commits."""
    prepare_home(home, trusted=trusted, settings={"env": dict(QUIET_ENV)})
    with open(home / ".gitconfig", "a", encoding="utf-8") as fh:
        fh.write("[user]\n\tname = autorun e2e\n\temail = e2e@autorun.invalid\n")


@dataclass
class RunWatch:
    """One orchestration run driven through ``claude -p``, and its diagnostics."""

    claude: ClaudeRunner
    project: Path
    model: AutorunModel
    proc: Optional[subprocess.Popen[str]] = None
    out_path: Optional[Path] = None
    started: float = field(default_factory=time.monotonic)

    @property
    def autorun_home(self) -> Path:
        return Path(os.environ["AUTORUN_HOME"])

    @property
    def tmux_socket(self) -> str:
        return os.environ["AUTORUN_TMUX_SOCKET"]

    def orchestrate(
        self, plan: str, *, plugin_dirs: Sequence[Path] = (), env: dict[str, str]
    ) -> None:
        """Start ``claude -p "/autorun:orchestrate <plan>"`` in the project (in the
        background: the run goes on in tmux after it answered)."""
        argv = [str(self.claude.claude), "-p"]
        for p in plugin_dirs:
            argv += ["--plugin-dir", str(p)]
        argv.append(f"/autorun:orchestrate {plan}")
        self.out_path = self.project.parent / "orchestrate.out"
        with open(self.out_path, "w", encoding="utf-8") as out:
            self.proc = subprocess.Popen(
                argv,
                cwd=str(self.project),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
            )

    def orch_dirs(self) -> list[Path]:
        root = self.autorun_home / "orchestration"
        return sorted(p for p in root.glob("*") if (p / "status.json").is_file())

    def status(self) -> dict[str, Any]:
        dirs = self.orch_dirs()
        assert len(dirs) == 1, f"expected one orchestration, found {dirs}\n{self.diagnostics()}"
        data: dict[str, Any] = json.loads((dirs[0] / "status.json").read_text(encoding="utf-8"))
        return data

    def events(self) -> list[dict[str, Any]]:
        path = self.orch_dirs()[0] / "events.jsonl"
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]

    def wait_run_finished(self, timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            if self.model.problems:
                pytest.fail(
                    "the scripted model stopped:\n"
                    + "\n".join(self.model.problems)
                    + "\n"
                    + self.diagnostics()
                )
            if self.orch_dirs():
                try:
                    status = self.status()
                except (ValueError, OSError):
                    status = {}
                if status.get("status") not in (None, "running"):
                    return status
            if time.monotonic() > deadline:
                pytest.fail(f"the run did not finish in {timeout:.0f}s\n{self.diagnostics()}")
            time.sleep(0.5)

    def wait_orchestrator_exit(self, timeout: float = 60) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"claude -p /autorun:orchestrate did not exit\n{self.diagnostics()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        # The engine's own background monitor (a detached process this test started).
        for orch in self.orch_dirs():
            pid = _monitor_pid(orch)
            if pid:
                try:
                    os.kill(pid, 15)
                except OSError:
                    pass
        subprocess.run(["tmux", "-L", self.tmux_socket, "kill-server"], capture_output=True)

    # -- diagnostics -----------------------------------------------------------------
    def diagnostics(self) -> str:
        parts = [f"--- after {time.monotonic() - self.started:.0f}s"]
        if self.out_path and self.out_path.exists():
            parts.append("--- claude -p /autorun:orchestrate output:\n" + self.out_path.read_text())
        for orch in self.orch_dirs():
            for name in ("status.json", "events.jsonl", "conflicts.md"):
                f = orch / name
                if f.exists():
                    parts.append(f"--- {f}:\n{f.read_text(encoding='utf-8')[-6000:]}")
        tmux = ["tmux", "-L", self.tmux_socket]
        panes = subprocess.run(
            [*tmux, "list-panes", "-a", "-F", "#{pane_id} #{session_name}:#{window_name}"],
            capture_output=True,
            text=True,
        ).stdout.splitlines()
        for line in panes:
            pane = line.split(" ")[0]
            shot = subprocess.run(
                [*tmux, "capture-pane", "-p", "-J", "-t", pane, "-S", "-80"],
                capture_output=True,
                text=True,
            ).stdout
            parts.append(f"--- pane {line}:\n{shot.rstrip()}")
        for log in sorted((self.autorun_home / "logs").glob("*.log")):
            raw = log.read_bytes()[-3000:].decode("utf-8", "replace")
            parts.append(f"--- {log.name} (tail):\n{_strip_ansi(raw)}")
        parts.append("--- fake API requests:\n" + self.claude.fake.describe()[-8000:])
        parts.append("--- model problems: " + repr(self.model.problems))
        return "\n".join(parts)


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]|\r", "", text)


def _monitor_pid(orch: Path) -> Optional[int]:
    try:
        from autorun_py.supervisor import monitor_pid  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    pid = monitor_pid(orch)  # -1 when held but unknown: never signal that
    return int(pid) if pid is not None and pid > 1 else None


def assert_merged_stage(project: Path, status: dict[str, Any], number: str) -> None:
    st = status["stages"][number]
    assert st["status"] == "completed", st
    commit = st["merge_commit"]
    parents = git(project, "rev-list", "--parents", "-n", "1", commit).split()
    assert len(parents) == 3, f"stage {number}: {commit} is not a merge commit"
    assert git(project, "merge-base", "--is-ancestor", commit, "main") == ""
    subject = git(project, "log", "-1", "--format=%s", commit)
    assert subject == f"Merge stage {number}: {st['name']}"


def start_three_stage_project(root: Path) -> tuple[Path, str]:
    """A repository with one commit and THREE_STAGE_PLAN as an untracked plan.md (as
    users keep them); returns (project, initial commit)."""
    project = make_project(root, {"README.md": "# widgets\n"})
    (project / "plan.md").write_text(THREE_STAGE_PLAN, encoding="utf-8")
    return project, git(project, "rev-parse", "HEAD")


def check_three_stage_run(watch: RunWatch, initial: str) -> None:
    """The checks of a finished THREE_STAGE_PLAN run: on the repository and on
    status.json / events.jsonl."""
    project = watch.project
    status = watch.wait_run_finished()
    assert status["status"] == "completed", watch.diagnostics()

    # The repository: every stage's work on main, one merge commit per stage, the
    # user's checkout on main at the tip, clean.
    for name in ("Alpha module", "Beta feature", "Gamma docs"):
        assert (project / "work" / f"{kebab(name)}.md").is_file(), watch.diagnostics()
    for n in ("1", "2", "3"):
        assert_merged_stage(project, status, n)
    assert len(git(project, "rev-list", "--merges", f"{initial}..main").split()) == 3
    assert git(project, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert git(project, "rev-parse", "HEAD") == git(project, "rev-parse", "main")
    assert git(project, "status", "--porcelain", "--untracked-files=no") == ""
    # Stage 2 branched from a base that already held stage 1's merge.
    s1, s2 = status["stages"]["1"], status["stages"]["2"]
    ancestor = subprocess.run(
        ["git", "-C", str(project), "merge-base", "--is-ancestor"]
        + [s1["merge_commit"], s2["start_commit"]]
    )
    assert ancestor.returncode == 0, "stage 2 started before stage 1 was merged"
    # Worktrees and branches of merged stages are removed (once the session that
    # merged from inside its worktree is gone: a couple of seconds).
    wait_until(
        lambda: (
            git(project, "worktree", "list", "--porcelain").count("worktree ") == 1
            and git(project, "branch", "--list", "autorun/*") == ""
        ),
        timeout=20,
        what="stage worktrees and branches removed",
    )
    assert git(project, "status", "--porcelain") == "?? plan.md"

    # status.json and events: the sessions recorded their phases themselves.
    for n, st in status["stages"].items():
        for phase in ("triage", "implement", "merge"):
            assert st["phases"].get(phase, {}).get("completed_at"), (n, phase, st["phases"])
    events = watch.events()
    types = [e["type"] for e in events]
    assert types[0] == "orchestration_started"
    assert types.count("stage_launched") == 3
    # /autorun:start's `!` line ran in each session, answered by the shim from the
    # start the launch prepared (no engine process, so no stage_registered), and
    # the prompt hook's record of its arguments went with it.
    orch = watch.orch_dirs()[0]
    for n in status["stages"]:
        assert (orch / "stages" / f"stage-{n}-start.txt.taken").is_file(), n
        assert not (orch / "stages" / f"stage-{n}-start.txt").exists(), n
    assert types.count("stage_registered") == 0
    assert sorted((watch.autorun_home / "prompts").glob("*.json")) == []
    assert types.count("chained") == 3  # each chained to /autorun:merge
    assert types.count("merge_complete") == 3
    assert types.count("orchestration_complete") == 1
    nexts = {e["stage"]: e.get("next") for e in events if e["type"] == "merge_complete"}
    assert nexts == {1: [2], 2: [], 3: []}, nexts
    # Each stage's chain to the merge was merged by the engine right there (no
    # /autorun:merge session was needed), and its model saw the result.
    seen = sorted(
        m.splitlines()[1].split(" (")[0]
        for m in watch.model.chains_seen
        if m.startswith("merged by the engine")
    )
    assert seen == ["stage 1", "stage 2", "stage 3"], watch.model.chains_seen
    assert watch.model.merges_seen == []
    assert watch.model.problems == []
    assert watch.claude.fake.errors() == []


def turns_per_stage(watch: RunWatch) -> dict[str, int]:
    """Agent-loop requests the fake API received for each stage, by stage name: its
    ``/autorun:start`` session, every step it chained to, and its ``/autorun:merge``
    window (a request is attributed by the stage name its first turn shows)."""
    from .autorun_model import MERGE, START, command_output

    status = watch.status()
    names = {st["name"]: n for n, st in status["stages"].items()}
    counts = dict.fromkeys(names.values(), 0)
    for req in watch.claude.fake.main_requests():
        first = req.first_user_text()
        if START not in first and MERGE not in first:
            continue
        out = command_output(first, START if START in first else MERGE)
        m = re.search(r"^Stage:\s*\d+:\s*(.+?)\s*\([a-z_]+\)\s*$", out, re.M)
        if m is None:
            m = re.search(r"stage (\d+) \(", out)
            if m and m.group(1) in counts:
                counts[m.group(1)] += 1
            continue
        if m.group(1) in names:
            counts[names[m.group(1)]] += 1
    return counts
