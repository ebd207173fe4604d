"""Killing `autorun merge` at chosen points, then checking the recovery.

Shared by tests/test_merge_kill.py (SIGKILL at every git step of a merge) and
benchmarks/merge_kill_drill.py (SIGKILL after random delays).

A :class:`Scenario` is one real run (``status.json`` made by
``create_orchestration``) with one stage in progress, its work committed on
its own branch and worktree, and the user's checkout in a known state with an
unstaged edit, a staged edit, an untracked file and an ignored file. Three
kinds:

* ``carried``: the user's checkout has the base branch checked out, so the
  merge carries it forward (``read-tree -m -u``) before moving the base;
* ``elsewhere``: the user's checkout is on another branch, so only the ref moves;
* ``continue``: the stage conflicts with the base; the conflict was set up and
  resolved in the merge worktree, and ``autorun merge --continue`` is the
  command that is killed.

:meth:`Scenario.reset` puts everything back to the starting point (the test's
own temp repository and run), so every attempt sees the same git steps.

The git wrapper (``wrapper_dir``) is first on PATH for the killed command:
each git invocation appends its argv to a log; when the invocation count
reaches ``$KILLGIT_AT`` it SIGKILLs its parent (the engine) and itself before
running git.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from autorun_py import worktrees
from autorun_py.config import load_config
from autorun_py.plan import load_plan
from autorun_py.rundir import create_orchestration
from autorun_py.state import IN_PROGRESS, StatusStore, transition
from tests.helpers import git

KINDS = ("carried", "elsewhere", "continue")
STAGE = 1

WRAPPER = """#!/bin/sh
# git, except that invocation number $KILLGIT_AT kills its caller and itself.
n=0
[ -f "$KILLGIT_COUNT" ] && read -r n < "$KILLGIT_COUNT"
n=$((n + 1))
echo "$n" > "$KILLGIT_COUNT"
printf '%s\\0' "$@" >> "$KILLGIT_LOG"
printf '\\n' >> "$KILLGIT_LOG"
if [ -n "$KILLGIT_AT" ] && [ "$n" -eq "$KILLGIT_AT" ]; then
    kill -9 "$PPID"
    kill -9 $$
fi
exec "$KILLGIT_REAL" "$@"
"""


def subcommand(argv: list[str]) -> str:
    """The git subcommand of an argv (after -C/-c options)."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-C", "-c"):
            i += 2
            continue
        if a.startswith("-"):
            i += 1
            continue
        return a
    return "?"


@dataclass
class Observed:
    """What the user can see in a checkout (never commit ids)."""

    status: str
    diff: str
    cached: str
    files: dict[str, bytes]

    @classmethod
    def of(cls, ck: Path) -> Observed:
        files: dict[str, bytes] = {}
        for root, dirs, names in os.walk(ck):
            dirs[:] = [d for d in dirs if d != ".git"]
            for name in names:
                full = Path(root) / name
                files[str(full.relative_to(ck))] = full.read_bytes()
        return cls(
            status=git(ck, "status", "--porcelain=v1", "--untracked-files=all", "--ignored"),
            diff=git(ck, "diff"),
            cached=git(ck, "diff", "--cached"),
            files=files,
        )

    def differences(self, other: Observed) -> list[str]:
        out = []
        for name in ("status", "diff", "cached"):
            if getattr(self, name) != getattr(other, name):
                out.append(name)
        changed = sorted(
            k for k in set(self.files) | set(other.files) if self.files.get(k) != other.files.get(k)
        )
        if changed:
            out.append("files " + ", ".join(changed[:5]))
        return out


class Scenario:
    def __init__(self, root: Path, kind: str, *, in_process: bool = False) -> None:
        """``in_process``: set-up and recovery call the library (faster) instead
        of the CLI; the killed command is always a real ``autorun`` process."""
        assert kind in KINDS
        self.root = root
        self.kind = kind
        self.in_process = in_process
        self.repo = root / "project"
        self.wrapper_dir = root / "gitwrap"
        self.real_git = shutil.which("git") or "git"
        self._build()

    # -- set-up -----------------------------------------------------------------
    def _build(self) -> None:
        repo = self.repo
        repo.mkdir(parents=True)
        git(repo, "init", "-q", "-b", "main")
        files = {
            "README.md": "# project\n",
            "other.txt": "other\n",
            "shared.txt": "one\ntwo\nthree\n",
            "lib/keep.txt": "keep\n",
        }
        for name, text in files.items():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            (repo / name).write_text(text)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "initial")
        (repo / ".git" / "info" / "exclude").write_text("local.conf\n")
        plan = self.root / "plan.md"
        plan.write_text(
            "# Kill plan\n\n## Stage 1: Work\n\n**Dependencies**: None\n\nDo the work.\n"
        )
        state = create_orchestration(load_plan(plan), repo)
        self.orch = Path(state.orch_dir)
        self.base_branch = state.base_branch
        run = worktrees.run_name(self.orch)
        self.branch = f"{worktrees.branch_prefix(run)}stage-1-work"
        self.stage_wt = worktrees.run_root(run) / "stage-1"
        self.stage_wt.parent.mkdir(parents=True, exist_ok=True)
        start = git(repo, "rev-parse", "HEAD")
        git(repo, "worktree", "add", "-q", "-b", self.branch, str(self.stage_wt), start)
        (self.stage_wt / "shared.txt").write_text("one\nSTAGE\nthree\n")
        (self.stage_wt / "lib" / "new.txt").write_text("new from the stage\n")
        (self.stage_wt / "docs").mkdir()
        (self.stage_wt / "docs" / "guide.md").write_text("# guide\n")
        git(self.stage_wt, "add", "-A")
        git(self.stage_wt, "commit", "-q", "-m", "stage work")
        self.stage_tip = git(repo, "rev-parse", self.branch)
        if self.kind == "continue":
            (repo / "shared.txt").write_text("one\nBASE\nthree\n")
            git(repo, "commit", "-q", "-am", "the base changes the same line")
        if self.kind == "elsewhere":
            git(repo, "checkout", "-q", "-b", "feature")
            (repo / "feature.txt").write_text("feature\n")
            git(repo, "add", "feature.txt")
            git(repo, "commit", "-q", "-m", "feature work")
            self.user_branch = "feature"
        else:
            self.user_branch = "main"
        self.base0 = git(repo, "rev-parse", "main")
        self.user0 = git(repo, "rev-parse", "HEAD")
        with StatusStore(self.orch).transaction() as txn:
            st = transition(txn, STAGE, IN_PROGRESS)
            st.branch = self.branch
            st.worktree = str(self.stage_wt)
            st.start_commit = start
        self.status0 = (self.orch / "status.json").read_bytes()
        self.events0 = (self.orch / "events.jsonl").read_bytes()
        self.wrapper_dir.mkdir()
        wrapper = self.wrapper_dir / "git"
        wrapper.write_text(WRAPPER)
        wrapper.chmod(0o755)
        self.reset()
        self.before = Observed.of(repo)

    def _user_files(self) -> None:
        repo = self.repo
        (repo / "README.md").write_text("# project\nthe user's unstaged edit\n")
        (repo / "other.txt").write_text("other, staged by the user\n")
        git(repo, "add", "other.txt")
        (repo / "scratch.txt").write_text("untracked scratch\n")
        (repo / "local.conf").write_text("password=hunter2\n")

    def reset(self) -> None:
        """Back to the starting point: refs, checkouts, worktrees, run state."""
        repo = self.repo
        for wt in self._worktrees():
            if wt != repo.resolve():
                git(repo, "worktree", "remove", "--force", "--force", str(wt), check=False)
                shutil.rmtree(wt, ignore_errors=True)
        git(repo, "worktree", "prune")
        if self.user_branch != "main":
            git(repo, "update-ref", "refs/heads/main", self.base0)
        git(repo, "update-ref", f"refs/heads/{self.user_branch}", self.user0)
        git(repo, "reset", "-q", "--hard", self.user0)
        git(repo, "clean", "-q", "-fdx")
        git(repo, "branch", "-q", "-D", self.branch, check=False)
        git(repo, "worktree", "add", "-q", "-b", self.branch, str(self.stage_wt), self.stage_tip)
        self._user_files()
        (self.orch / "status.json").write_bytes(self.status0)
        (self.orch / "events.jsonl").write_bytes(self.events0)
        for name in ("conflicts.md",):
            (self.orch / name).unlink(missing_ok=True)
        if self.kind == "continue":
            if self.in_process:
                from autorun_py.merge import merge

                report = merge(self.orch, STAGE, config=load_config(os.environ)).to_json()
            else:
                rep = self.cli(["merge", str(self.orch), str(STAGE), "--json"])
                report = json.loads(rep.stdout)
            assert report["result"] == "conflict", report
            mw = Path(report["merge_worktree"])
            (mw / "shared.txt").write_text("one\nBASE\nSTAGE\nthree\n")
            git(mw, "add", "shared.txt")
        self.start_status = (self.orch / "status.json").read_bytes()
        self.start_events = (self.orch / "events.jsonl").read_bytes()

    def _worktrees(self) -> list[Path]:
        out = git(self.repo, "worktree", "list", "--porcelain")
        return [Path(ln[9:]).resolve() for ln in out.splitlines() if ln.startswith("worktree ")]

    # -- running ----------------------------------------------------------------
    def merge_argv(self) -> list[str]:
        argv = ["merge", str(self.orch), str(STAGE), "--json"]
        return [*argv, "--continue"] if self.kind == "continue" else argv

    def cli(
        self, args: list[str], *, env: Optional[dict[str, str]] = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        full = dict(os.environ)
        full.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "autorun_py", *args],
            cwd=self.repo,
            env=full,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def wrapped_env(self, kill_at: int) -> dict[str, str]:
        log = self.root / "git.log"
        count = self.root / "git.count"
        log.unlink(missing_ok=True)
        count.unlink(missing_ok=True)
        return {
            "PATH": f"{self.wrapper_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "KILLGIT_AT": str(kill_at),
            "KILLGIT_COUNT": str(count),
            "KILLGIT_LOG": str(log),
            "KILLGIT_REAL": self.real_git,
        }

    def git_log(self) -> list[list[str]]:
        try:
            raw = (self.root / "git.log").read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return []
        return [ln.split("\0") for ln in raw.split("\0\n") if ln]

    def record_steps(self) -> list[str]:
        """Run the merge once unkilled: its git steps ('subcommand#occurrence')
        and the user's checkout at the merged result."""
        self.reset()
        env = self.wrapped_env(0)
        t0 = time.monotonic()
        proc = self.cli(self.merge_argv(), env=env)
        self.merge_seconds = time.monotonic() - t0
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert json.loads(proc.stdout)["result"] == "merged", proc.stdout
        seen: dict[str, int] = {}
        steps = []
        for argv in self.git_log():
            sub = subcommand(argv)
            seen[sub] = seen.get(sub, 0) + 1
            steps.append(f"{sub}#{seen[sub]}")
        self.merged = Observed.of(self.repo)
        self.merged_tree = git(self.repo, "rev-parse", "main^{tree}")
        self.check(proc_note="unkilled")
        return steps

    def kill_at(self, n: int) -> int:
        """Run the merge with the wrapper killing it at git invocation ``n``."""
        proc = self.cli(self.merge_argv(), env=self.wrapped_env(n))
        return proc.returncode

    def kill_after(
        self, delay: float, *, from_first_git: bool = True, from_git_call: int = 1
    ) -> tuple[bool, int]:
        """Start the merge and SIGKILL it ``delay`` seconds after its git call
        number ``from_git_call`` started (after its start with
        ``from_first_git=False``); (killed, git invocations it started). Waits
        for its orphaned children (a git still running) to end."""
        env = dict(os.environ)
        env.update(self.wrapped_env(0))
        count = Path(env["KILLGIT_COUNT"])
        proc = subprocess.Popen(
            [sys.executable, "-m", "autorun_py", *self.merge_argv()],
            cwd=self.repo,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        if from_first_git:
            while proc.poll() is None:
                try:
                    if int(count.read_text() or "0") >= from_git_call:
                        break
                except (OSError, ValueError):
                    pass
                time.sleep(0.0005)
        time.sleep(delay)
        killed = proc.poll() is None
        if killed:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # a git it started runs to its end
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.005)
        return killed, len(self.git_log())

    # -- after a kill -------------------------------------------------------------
    def base_ok_after_kill(self) -> Optional[str]:
        tip = git(self.repo, "rev-parse", "main")
        if tip != self.base0 and git(self.repo, "rev-parse", f"{tip}^1", check=False) != self.base0:
            return f"base moved to {tip}, not the base or one merge on it"
        return None

    def recover(self) -> str:
        """Recover as a user or the monitor would; return how."""
        raw = json.loads((self.orch / "status.json").read_text())
        st = raw["stages"][str(STAGE)]
        if st["status"] == "completed":
            return "already_completed"
        if st.get("merge_intent") or st.get("merge_state") == "conflict":
            if self.in_process:
                from autorun_py.resume import resume_run

                resume_run(self.orch, monitor=False, config=load_config(os.environ))
            else:
                proc = self.cli(["resume", str(self.orch), "--no-monitor", "--json"])
                assert proc.returncode == 0, proc.stdout + proc.stderr
            raw = json.loads((self.orch / "status.json").read_text())
            if raw["stages"][str(STAGE)]["status"] == "completed":
                return "resume"
        if self.in_process:
            from autorun_py.merge import merge

            action = "continue" if self.kind == "continue" else "merge"
            result = merge(self.orch, STAGE, action=action, config=load_config(os.environ)).result
            if result not in ("merged", "already_merged"):
                raise AssertionError(f"recovery merge: {result}")
            return "merge"
        proc = self.cli(self.merge_argv())
        if proc.returncode != 0:
            raise AssertionError(f"recovery merge failed: {proc.stdout}{proc.stderr}")
        return "merge"

    def check(self, proc_note: str = "") -> list[str]:
        """The invariants after recovery; a list of violations (empty: fine)."""
        bad = []
        repo = self.repo
        raw = json.loads((self.orch / "status.json").read_text())
        st = raw["stages"][str(STAGE)]
        if st["status"] != "completed":
            bad.append(f"stage is {st['status']}, not completed")
        if st.get("merge_intent"):
            bad.append(f"merge intent left: {st['merge_intent'].get('step')}")
        chain = git(repo, "rev-list", "--first-parent", f"{self.base0}..main").split()
        if len(chain) != 1:
            bad.append(f"{len(chain)} commits on the base's first-parent chain, not 1")
        else:
            parents = git(repo, "rev-list", "--parents", "-n", "1", chain[0]).split()[1:]
            if parents != [self.base0, self.stage_tip]:
                bad.append(f"the new base tip has parents {parents}")
        if st.get("merge_commit") != (chain[0] if chain else None):
            bad.append("merge_commit in status.json is not the base tip")
        types = [
            ev.get("type")
            for ev in (json.loads(x) for x in (self.orch / "events.jsonl").read_text().splitlines())
            if ev.get("stage") == STAGE
        ]
        if types.count("merge_complete") != 1:
            bad.append(f"{types.count('merge_complete')} merge_complete events")
        now = Observed.of(repo)
        if self.kind == "elsewhere":
            diff = now.differences(self.before)
            if diff:
                bad.append("the user's checkout on another branch changed: " + "; ".join(diff))
        elif hasattr(self, "merged"):
            diff = now.differences(self.merged)
            if diff:
                bad.append("the user's checkout is not at the merged result: " + "; ".join(diff))
            if git(repo, "rev-parse", "main^{tree}") != self.merged_tree:
                bad.append("the merged tree differs from an unkilled merge's")
        if proc_note == "unkilled":
            assert not bad, bad
        return bad


def run_one(
    sc: Scenario, *, kill_at: Optional[int] = None, delay: Optional[float] = None
) -> dict[str, Any]:
    """One kill and its recovery; the invariant violations."""
    sc.reset()
    if kill_at is not None:
        rc = sc.kill_at(kill_at)
        killed = rc == -signal.SIGKILL
        steps = kill_at
    else:
        assert delay is not None
        killed, steps = sc.kill_after(delay)
    bad = []
    moved = sc.base_ok_after_kill()
    if moved:
        bad.append(moved)
    how = sc.recover()
    bad += sc.check()
    return {"killed": killed, "git_steps": steps, "recovery": how, "violations": bad}
