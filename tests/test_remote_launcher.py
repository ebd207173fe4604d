"""Contract tests of the ``remote`` launcher (docs/scale-out.md): no real pool can be
reached here, so a stand-in ``claude`` (tests/remote_standin/claude) is first on
PATH. It implements exactly the two calls the launcher makes (``-p ... --environment
... --ref ... --output-format json`` and ``-p ... --cloud <id>``), refuses anything
else like the real CLI, and acts like a cloud session: a detached process that
clones a local bare repository (the project's ``origin``), works on the pushed
stage branch, commits with the completion trailer and pushes.

Real git, real subprocesses, the real monitor; no tmux.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from autorun_py.errors import AutorunError
from autorun_py.launchers import remote
from tests.helpers import (
    events_of,
    git,
    orchestrate_plan,
    read_status,
    run_cli,
    wait_finished,
    wait_until,
    write_plan,
)

STANDIN = Path(__file__).parent / "remote_standin"
ENV_ID = "ccpool_contract01"
SIX = [
    (1, "Alpha module", []),
    (2, "Beta module", []),
    (3, "Gamma module", []),
    (4, "Delta feature", [1]),
    (5, "Epsilon feature", [2, 3]),
    (6, "Zeta release", [4, 5]),
]


@dataclass
class Cloud:
    repo: Path  # the project (origin = bare)
    bare: Path
    state: Path  # the stand-in's sessions and call log
    hold: Path

    def calls(self) -> list[list[str]]:
        log = self.state / "calls.jsonl"
        if not log.exists():
            return []
        return [json.loads(x)["argv"] for x in log.read_text().splitlines() if x]

    def sessions(self) -> dict[str, Path]:
        root = self.state / "sessions"
        return {p.name: p for p in sorted(root.iterdir())} if root.is_dir() else {}

    def session_log(self, sid: str) -> str:
        path = self.state / "sessions" / sid / "events.log"
        return path.read_text() if path.exists() else ""

    def release(self, *stages: int) -> None:
        for n in stages:
            (self.hold / f"stage-{n}").touch()

    def remote_branches(self) -> list[str]:
        return git(self.bare, "for-each-ref", "--format=%(refname)", "refs/heads/autorun/").split()


@pytest.fixture
def cloud(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "origin", "main")
    state, hold = tmp_path / "cloud", tmp_path / "hold"
    hold.mkdir()
    monkeypatch.setenv("PATH", f"{STANDIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("AUTORUN_CLAUDE", raising=False)
    monkeypatch.delenv("AUTORUN_AGENT_ARGS", raising=False)
    monkeypatch.setenv("REMOTE_STANDIN_DIR", str(state))
    monkeypatch.setenv("REMOTE_STANDIN_ENVIRONMENT", ENV_ID)
    monkeypatch.setenv("REMOTE_STANDIN_REPO", str(bare))
    monkeypatch.setenv("AUTORUN_MONITOR_INTERVAL", "0.3")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-not-a-real-secret-0123")
    c = Cloud(repo, bare, state, hold)
    try:
        yield c
    finally:
        for run in (Path(os.environ["AUTORUN_HOME"]) / "orchestration").glob("*"):
            if read_status(run).get("status") == "running":
                run_cli(["cancel", run.name], repo)
        for sdir in c.sessions().values():  # only the stand-in sessions this test made
            pid = int((sdir / "pid").read_text())
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _orchestrate(cloud: Cloud, *extra: str) -> Path:
    return orchestrate_plan(
        cloud.repo, SIX, "--launcher", "remote", "--remote-environment", ENV_ID,
        "--verify", "test -f README.md && test -d work", *extra,
    )  # fmt: skip


def _events(orch: Path, kind: str, stage: Any = None) -> list[dict[str, Any]]:
    try:
        return events_of(orch, kind, stage)
    except (OSError, ValueError):  # a line being written
        return []


def _finished(orch: Path, timeout: float = 120) -> dict[str, Any]:
    """The run's status once every stage is terminal and, for a completed run, its
    events are written too (they follow the status write)."""
    status = wait_finished(orch, timeout=timeout)
    if status.get("status") == "completed":
        wait_until(lambda: _events(orch, "orchestration_complete"), 30, "the run's last events")
    return status


def _started(orch: Path) -> dict[int, str]:
    return {e["stage"]: e["session"] for e in _events(orch, "remote_session_started")}


def _check_calls(cloud: Cloud, orch: Path) -> None:
    """Every call autorun made is one of the two documented forms."""
    status = read_status(orch)
    branches = {s["branch"] for s in status["stages"].values()}
    for argv in cloud.calls():
        if "--environment" in argv:
            assert argv[0] == "-p" and argv[2:] == [
                "--environment", ENV_ID, "--ref", argv[5], "--name", argv[7],
                "--output-format", "json",
            ], argv  # fmt: skip
            assert argv[5] in branches
        else:
            assert argv[0] == "-p" and argv[2:] == ["--cloud", argv[3], "--output-format", "json"]
            assert argv[3].startswith("session_"), argv


def _answer_review(path: Path, answer: str) -> None:
    from autorun_py.review import read_meta
    from autorun_py.review.format import end_marker, start_marker

    text = path.read_text(encoding="utf-8")
    meta = read_meta(text)
    assert meta is not None
    start, end = start_marker(1, meta.nonce), end_marker(1, meta.nonce)
    head, rest = text.split(start + "\n", 1)
    _old, tail = rest.split(end, 1)
    text = f"{head}{start}\n{answer}\n{end}{tail}"
    head, sep, tail = text.rpartition("- [ ] done")
    assert sep
    path.write_text(head + "- [x] done" + tail, encoding="utf-8")


def test_six_stages_run_as_cloud_sessions_each_merged_once_through_the_gate(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMOTE_STANDIN_ASK", "3")  # stage 3 asks a question first
    initial = git(cloud.repo, "rev-parse", "HEAD")
    orch = _orchestrate(cloud)
    # Stage 3's question reaches the review inbox (from its pushed question file).
    asked = wait_until(lambda: _events(orch, "remote_question", 3), 60, "stage 3's question")
    review = Path(asked[0]["review"])
    assert "Which colour should Gamma module use?" in review.read_text()
    # The status view shows it: in the run's waiting questions and on the stage.
    view = json.loads(run_cli(["status", orch.name, "--json"], cloud.repo, check=True).stdout)
    rows = view["stages"] if isinstance(view["stages"], list) else list(view["stages"].values())
    row3 = next(r for r in rows if r["number"] == 3)
    assert str(review) in str(row3["waiting_for"]), row3
    assert [r["stage"] for r in view["reviews_waiting"]] == [3], view["reviews_waiting"]
    _answer_review(review, "teal")
    status = _finished(orch, timeout=180)
    assert status["status"] == "completed", json.dumps(status, indent=1)
    for n in range(1, 7):
        st = status["stages"][str(n)]
        assert st["status"] == "completed"
        parents = git(cloud.repo, "rev-list", "--parents", "-n", "1", st["merge_commit"]).split()
        assert len(parents) == 3, st
        assert st["launcher_handle"].startswith("session_")
        assert st["remote_url"] == f"https://claude.ai/code/{st['launcher_handle']}"
        assert git(cloud.repo, "show", f"main:work/stage-{n}.md").startswith("# ")
    merged = [e["stage"] for e in events_of(orch, "merge_complete")]
    assert sorted(merged) == [1, 2, 3, 4, 5, 6], merged  # each exactly once
    passed = sorted({e["stage"] for e in events_of(orch, "verify_passed")})
    assert passed == [1, 2, 3, 4, 5, 6]  # every merge through the gate
    assert len(git(cloud.repo, "rev-list", "--merges", f"{initial}..main").split()) == 6
    assert len(_started(orch)) == 6 and len(cloud.sessions()) == 6  # one session each
    # Dependants were pushed and started from a tip holding their dependencies.
    for n, deps in ((4, [1]), (5, [2, 3]), (6, [4, 5])):
        start = status["stages"][str(n)]["remote_started_from"]
        for d in deps:
            merge_commit = status["stages"][str(d)]["merge_commit"]
            git(cloud.repo, "merge-base", "--is-ancestor", merge_commit, start)
    # The answer went back with --cloud and into the stage's work; the question file
    # did not reach the base branch.
    answer_calls = [a for a in cloud.calls() if "--cloud" in a and a[1].startswith("Answers")]
    assert len(answer_calls) == 1 and "A: teal" in answer_calls[0][1]
    assert "teal" in git(cloud.repo, "show", "main:work/stage-3.md")
    assert git(cloud.repo, "ls-tree", "-r", "main", "--", ".autorun") == ""
    _check_calls(cloud, orch)
    # Nothing secret in a prompt or the repository.
    for argv in cloud.calls():
        assert "sk-ant-" not in " ".join(argv)
    assert "sk-ant-" not in git(cloud.repo, "log", "-p", "--all")
    # autorun's branches: gone locally and on the remote; the user's checkout clean.
    wait_until(lambda: cloud.remote_branches() == [], 30, "remote stage branches deleted")
    assert git(cloud.repo, "branch", "--list", "autorun/*") == ""
    assert git(cloud.repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert git(cloud.repo, "status", "--porcelain") == ""
    assert git(cloud.bare, "rev-parse", "main") == initial  # the user's branch there: untouched


def test_cancel_stops_the_cloud_sessions_and_merges_nothing(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMOTE_STANDIN_HOLD", str(cloud.hold))
    orch = _orchestrate(cloud)
    started = wait_until(lambda: len(_started(orch)) == 3 and _started(orch), 60, "3 starts")
    for sid in started.values():  # each session has pushed its first work
        wait_until(lambda s=sid: "pushed" in cloud.session_log(s), 60, "work pushed")
    # The status view says where to look at each running stage: its session's URL.
    view = json.loads(run_cli(["status", orch.name, "--json"], cloud.repo, check=True).stdout)
    rows = view["stages"] if isinstance(view["stages"], list) else list(view["stages"].values())
    attach = {r["number"]: r["attach"] for r in rows if r["status"] == "in_progress"}
    assert attach == {n: f"https://claude.ai/code/{sid}" for n, sid in started.items()}
    res = run_cli(["cancel", orch.name, "--json"], cloud.repo)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert sorted(out["sessions_killed"]) == sorted(started.values())
    for sid in started.values():
        wait_until(lambda s=sid: "stopped" in cloud.session_log(s), 30, "session stopped")
    cloud.release(1, 2, 3)
    status = read_status(orch)
    assert status["status"] == "cancelled"
    assert {s["status"] for s in status["stages"].values()} == {"cancelled"}
    assert events_of(orch, "merge_complete") == []
    assert git(cloud.repo, "rev-list", "--merges", "main") == ""
    stops = [a for a in cloud.calls() if "--cloud" in a]
    assert sorted(a[3] for a in stops) == sorted(started.values())
    assert all(a[1].startswith("autorun: stop") for a in stops)
    # A second cancel sends nothing again.
    run_cli(["cancel", orch.name], cloud.repo, check=True)
    assert len([a for a in cloud.calls() if "--cloud" in a]) == 3
    # No completion was pushed after the stop.
    for sid in started.values():
        assert "done" not in cloud.session_log(sid)
    # clean keeps the cancelled stages' branches on the remote (their sessions'
    # work is only there), saying how to drop them.
    cleaned = json.loads(run_cli(["clean", orch.name, "--json"], cloud.repo, check=True).stdout)
    assert not [b for b in cleaned["branches_deleted"] if b.startswith("origin/")]
    assert len([k for k in cleaned["kept"] if k.startswith("origin/autorun/")]) == 3
    assert len(cloud.remote_branches()) == 3


def test_resume_after_the_monitor_was_killed_merges_what_the_sessions_pushed(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autorun_py.monitor import monitor_pid

    monkeypatch.setenv("REMOTE_STANDIN_HOLD", str(cloud.hold))
    orch = _orchestrate(cloud)
    started = wait_until(lambda: len(_started(orch)) == 3 and _started(orch), 60, "3 starts")
    pid = wait_until(lambda: monitor_pid(orch), 30, "the monitor")
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: monitor_pid(orch) is None, 30, "the monitor gone")
    cloud.release(1, 2, 3)
    for sid in started.values():
        wait_until(lambda s=sid: "done" in cloud.session_log(s), 60, "completion pushed")
    # Nothing watches the run: the completed branches wait on the remote.
    status = read_status(orch)
    assert [status["stages"][str(n)]["status"] for n in (1, 2, 3)] == ["in_progress"] * 3
    res = run_cli(["resume", orch.name, "--json"], cloud.repo)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert sorted(out["alive"]) == [1, 2, 3] and out["monitor_pid"], out  # none restarted
    cloud.release(4, 5, 6)
    status = _finished(orch, timeout=180)
    assert status["status"] == "completed", json.dumps(status, indent=1)
    merged = [e["stage"] for e in events_of(orch, "merge_complete")]
    assert sorted(merged) == [1, 2, 3, 4, 5, 6], merged
    assert events_of(orch, "stage_restarted") == []
    assert len(cloud.sessions()) == 6  # no second session for any stage
    _check_calls(cloud, orch)


# --------------------------------------------------------------------------- refusals


def test_orchestrate_refuses_a_remote_run_without_a_usable_environment_or_git_remote(
    cloud: Cloud,
) -> None:
    plan = write_plan(cloud.repo.parent, SIX)
    runs = Path(os.environ["AUTORUN_HOME"]) / "orchestration"
    for args, needle in (
        ([], "needs a self-hosted environment"),
        (["--remote-environment", "pool-1"], "must be a self-hosted environment id"),
        (["--remote-environment", ENV_ID, "--remote-git-remote", "upstream"], "no git remote"),
    ):
        res = run_cli(["orchestrate", str(plan), "--launcher", "remote", *args], cloud.repo)
        assert res.returncode != 0, res.stdout
        assert needle in res.stderr and "Traceback" not in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert not runs.exists() or list(runs.iterdir()) == []
    assert cloud.calls() == []


def test_the_environment_comes_from_front_matter_or_config_and_is_kept_in_status(
    cloud: Cloud,
) -> None:
    plan = write_plan(cloud.repo.parent, SIX[:1])
    plan.write_text(f"---\nremote.environment: {ENV_ID}\n---\n" + plan.read_text())
    res = run_cli(["orchestrate", str(plan), "--launcher", "remote", "--json"], cloud.repo)
    assert res.returncode == 0, res.stderr
    orch = Path(json.loads(res.stdout)["orch_dir"])
    assert read_status(orch)["remote"] == {"environment": ENV_ID, "git_remote": "origin"}
    assert _finished(orch, 60)["status"] == "completed"
    config = Path(os.environ["AUTORUN_HOME"]) / "config.json"
    config.write_text(json.dumps({"launcher": "remote", "remote": {"environment": "bad"}}))
    res = run_cli(["orchestrate", str(write_plan(cloud.repo.parent, SIX[:1], "p2.md"))],
                  cloud.repo)  # fmt: skip
    assert res.returncode != 0 and "remote.environment in config.json" in res.stderr


def test_the_prompt_is_self_contained() -> None:
    @dataclass
    class St:
        number: int
        name: str
        depends_on: list[int]
        branch: str
        context_file: str
        extra: dict[str, Any]

    @dataclass
    class Run:
        orch_dir: str
        plan_name: str
        stages: dict[int, St]
        extra: dict[str, Any]

    s1 = St(1, "Alpha", [], "autorun/p/stage-1-alpha", "/nonexistent", {})
    s2 = St(2, "Beta", [1], "autorun/p/stage-2-beta", "/nonexistent", {})
    state = Run("/h/orchestration/p", "p", {1: s1, 2: s2}, {})
    text = remote.stage_prompt(state, s2, remote.RemoteSettings(ENV_ID))
    assert "Autorun-Stage: p/2" in text
    assert "git push origin HEAD:refs/heads/autorun/p/stage-2-beta" in text
    assert "Stage 1 (Alpha): merged already" in text
    assert ".autorun/questions/" in text and "autorun: stop" in text
    assert ENV_ID not in text


def test_parse_created_reads_the_session_or_refuses_in_one_line() -> None:
    from autorun_py.proc import Result

    ok = Result(("claude",), 0, '{"ok":true,"session_id":"session_01ab","url":"u"}\n', "", 0.0)
    assert remote.parse_created(ok) == ("session_01ab", "u")
    no_url = Result(("claude",), 0, '{"ok":true,"session_id":"cse_9"}', "", 0.0)
    assert remote.parse_created(no_url) == ("cse_9", "https://claude.ai/code/cse_9")
    # what 2.1.332 prints without a claude.ai login (docs/claude-code.md)
    login = (
        '{"ok":false,"error":"Cloud sessions require a claude.ai login. Run /login to '
        'authenticate."}'
    )
    with pytest.raises(AutorunError, match="require a claude.ai login"):
        remote.parse_created(Result(("claude",), 1, login, "Error: ...", 0.0))
    with pytest.raises(AutorunError, match="no session id"):
        remote.parse_created(Result(("claude",), 0, '{"ok":true}', "", 0.0))


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["-p", "x", "--environment", "pool", "--ref", "b", "--output-format", "json"],
         'expects a self-hosted environment id (ccpool_...), got "pool"'),
        (["-p", "x", "--environment", ENV_ID, "--refs", "b"], "unknown option '--refs'"),
        (["-p", "x", "--environment", ENV_ID, "--ref", "b", "--output-format", "stream-json"],
         "does not support --output-format stream-json"),
        (["-p", "x", "--cloud", "sess_1"], 'is not a cloud session ID or URL'),
        (["-p", "x", "--cloud", "session_unknown", "--output-format", "json"], "not found"),
        (["agents", "--json"], "unknown option"),
        (["agents"], "only `-p"),
        (["x"], "only `-p"),
    ],
)  # fmt: skip
def test_the_standin_refuses_what_the_contract_does_not_cover(
    cloud: Cloud, argv: list[str], needle: str
) -> None:
    res = subprocess.run(
        [str(STANDIN / "claude"), *argv], capture_output=True, text=True, timeout=30
    )
    assert res.returncode != 0 and needle in res.stderr, (res.returncode, res.stderr)
    assert cloud.sessions() == {}


def test_a_cancelled_stage_is_retried_as_a_new_cloud_session(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMOTE_STANDIN_HOLD", str(cloud.hold))
    orch = orchestrate_plan(
        cloud.repo, SIX[:2], "--launcher", "remote", "--remote-environment", ENV_ID
    )
    first = wait_until(lambda: _started(orch).get(1), 60, "stage 1 started")
    wait_until(lambda: "pushed" in cloud.session_log(first), 60, "stage 1's work pushed")
    res = run_cli(["cancel", orch.name, "--stage", "1", "--json"], cloud.repo)
    assert res.returncode == 0 and json.loads(res.stdout)["sessions_killed"] == [first]
    wait_until(lambda: "stopped" in cloud.session_log(first), 30, "stage 1's session stopped")
    run_cli(["retry", orch.name, "1"], cloud.repo, check=True)
    second = wait_until(
        lambda: [e["session"] for e in _events(orch, "remote_session_started", 1)][1:], 60,
        "stage 1 started again",
    )[0]  # fmt: skip
    assert second != first
    cloud.release(1, 2)
    status = _finished(orch, timeout=120)
    assert status["status"] == "completed", json.dumps(status, indent=1)
    assert sorted(e["stage"] for e in events_of(orch, "merge_complete")) == [1, 2]
    assert "done" in cloud.session_log(second) and "done" not in cloud.session_log(first)
    assert status["stages"]["1"]["launcher_handle"] == second
    wait_until(lambda: cloud.remote_branches() == [], 30, "remote stage branches deleted")


def test_a_check_killed_at_every_git_call_still_merges_the_stage_exactly_once(
    cloud: Cloud, tmp_path: Path
) -> None:
    """SIGKILL the monitor's check (``autorun monitor --once``) at its 1st, 2nd, ...
    git call while it fetches, fast-forwards and merges a completed remote stage; the
    next check finishes or rolls back what the killed one left, every time."""
    import shutil

    from tests.killharness import WRAPPER

    orch = orchestrate_plan(
        cloud.repo, SIX[:1], "--launcher", "remote", "--remote-environment", ENV_ID,
        "--verify", "test -d work", "--no-monitor",
    )  # fmt: skip
    sid = wait_until(lambda: _started(orch).get(1), 60, "stage 1 started")
    wait_until(lambda: "done" in cloud.session_log(sid), 60, "its completion pushed")
    wrap = tmp_path / "killgit"
    wrap.mkdir()
    (wrap / "git").write_text(WRAPPER)
    (wrap / "git").chmod(0o755)
    count = tmp_path / "killgit.count"
    env = {
        "PATH": f"{wrap}{os.pathsep}{os.environ['PATH']}",
        "KILLGIT_REAL": str(shutil.which("git")),
        "KILLGIT_COUNT": str(count),
        "KILLGIT_LOG": str(tmp_path / "killgit.log"),
    }
    base = git(cloud.repo, "rev-parse", "main")
    kills = 0
    for at in range(1, 300):
        count.unlink(missing_ok=True)
        res = run_cli(
            ["monitor", orch.name, "--once"], cloud.repo, env={**env, "KILLGIT_AT": str(at)}
        )
        merges = git(cloud.repo, "rev-list", "--merges", f"{base}..main").split()
        assert len(merges) <= 1, merges  # never merged twice
        assert "Traceback" not in res.stderr, res.stderr
        if res.returncode != -signal.SIGKILL:
            break  # this check ran to its end before its git call number `at`
        kills += 1
    print(f"remote poll kill drill: {kills} checks killed, one per git call")
    assert kills >= 10, kills  # ls-remote, fetch, the merge's and the gate's steps...
    status = read_status(orch)
    assert status["stages"]["1"]["status"] == "completed", json.dumps(status, indent=1)
    assert len(events_of(orch, "merge_complete")) == 1
    assert len(git(cloud.repo, "rev-list", "--merges", f"{base}..main").split()) == 1
    assert git(cloud.repo, "show", "main:work/stage-1.md").startswith("# Alpha")
    assert git(cloud.repo, "status", "--porcelain") == ""
    # A kill between the merge and the deletion of the stage branch on the remote
    # leaves it there: `autorun clean` deletes it (a merged stage's, this run's).
    left = cloud.remote_branches()
    cleaned = json.loads(run_cli(["clean", orch.name, "--json"], cloud.repo, check=True).stdout)
    assert sorted(b for b in cleaned["branches_deleted"] if b.startswith("origin/")) == sorted(
        "origin/" + b[len("refs/heads/") :] for b in left
    )
    assert cloud.remote_branches() == []


def test_a_red_gate_goes_back_to_the_session_which_pushes_a_fix(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMOTE_STANDIN_BREAK", "1")
    orch = orchestrate_plan(
        cloud.repo, SIX[:1], "--launcher", "remote", "--remote-environment", ENV_ID,
        "--verify", "test -d work && ! test -e work/BROKEN",
    )  # fmt: skip
    status = _finished(orch, timeout=120)
    assert status["status"] == "completed", json.dumps(status, indent=1)
    assert [e["stage"] for e in events_of(orch, "verify_failed")] == [1]
    assert [e["stage"] for e in events_of(orch, "merge_complete")] == [1]
    completions = [e["commit"] for e in events_of(orch, "remote_completed")]
    assert len(completions) == 2 and completions[0] != completions[1]
    told = [a[1] for a in cloud.calls() if "--cloud" in a]
    assert len(told) == 1 and "checks failed" in told[0], told  # the failure, via --cloud
    assert f"Autorun-Stage: {orch.name}/1" in told[0] and "command:" in told[0], told[0]
    assert git(cloud.repo, "ls-tree", "main", "--", "work/BROKEN") == ""
    assert git(cloud.repo, "show", "main:work/stage-1.md").startswith("# Alpha")


def test_autorun_killed_before_it_recorded_the_session_adopts_it_instead_of_a_second(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL of ``autorun orchestrate`` right after ``claude -p --environment``
    answered: the session runs, unknown to autorun. ``resume`` sees the stage branch
    on the remote moved past what autorun pushed, adopts that session (no second
    one) and merges its completion."""
    monkeypatch.setenv("REMOTE_STANDIN_KILL_CALLER", "1")
    plan = write_plan(cloud.repo.parent, SIX[:1])
    res = run_cli(
        ["orchestrate", str(plan), "--launcher", "remote", "--remote-environment", ENV_ID,
         "--verify", "test -d work"],
        cloud.repo,
    )  # fmt: skip
    assert res.returncode == -signal.SIGKILL, (res.returncode, res.stderr)
    monkeypatch.delenv("REMOTE_STANDIN_KILL_CALLER")
    (orch,) = list((Path(os.environ["AUTORUN_HOME"]) / "orchestration").iterdir())
    (sid,) = cloud.sessions()
    wait_until(lambda: "done" in cloud.session_log(sid), 60, "the unknown session finished")
    out = json.loads(run_cli(["resume", orch.name, "--json"], cloud.repo, check=True).stdout)
    assert [a["stage"] for a in out["actions"]] == [1], out
    status = _finished(orch, timeout=120)
    assert status["status"] == "completed", json.dumps(status, indent=1)
    assert len(cloud.sessions()) == 1  # adopted, not doubled
    assert [e["stage"] for e in events_of(orch, "remote_session_adopted")] == [1]
    assert [e["stage"] for e in events_of(orch, "merge_complete")] == [1]
    assert git(cloud.repo, "show", "main:work/stage-1.md").startswith("# Alpha")


def test_autorun_killed_at_its_push_is_brought_back_by_resume(cloud: Cloud, tmp_path: Path) -> None:
    """SIGKILL of ``autorun orchestrate`` at its ``git push`` of the stage branch:
    ``resume`` pushes again, starts the one session, and the stage merges."""
    import shutil

    wrap = tmp_path / "killpush"
    wrap.mkdir()
    (wrap / "git").write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do\n'
        '  if [ "$a" = push ] && [ ! -e "$KILLPUSH_MARK" ]; then\n'
        '    : > "$KILLPUSH_MARK"; kill -9 "$PPID"; kill -9 $$\n'
        "  fi\n"
        "done\n"
        'exec "$KILLPUSH_REAL" "$@"\n'
    )
    (wrap / "git").chmod(0o755)
    env = {
        "PATH": f"{wrap}{os.pathsep}{os.environ['PATH']}",
        "KILLPUSH_REAL": str(shutil.which("git")),
        "KILLPUSH_MARK": str(tmp_path / "killpush.done"),
    }
    plan = write_plan(cloud.repo.parent, SIX[:1])
    res = run_cli(
        ["orchestrate", str(plan), "--launcher", "remote", "--remote-environment", ENV_ID,
         "--verify", "test -d work"],
        cloud.repo, env=env,
    )  # fmt: skip
    assert res.returncode == -signal.SIGKILL, (res.returncode, res.stderr)
    assert cloud.calls() == [] and cloud.remote_branches() == []
    (orch,) = list((Path(os.environ["AUTORUN_HOME"]) / "orchestration").iterdir())
    out = json.loads(run_cli(["resume", orch.name, "--json"], cloud.repo, check=True).stdout)
    assert [a["stage"] for a in out["actions"]] == [1], out
    status = _finished(orch, timeout=120)
    assert status["status"] == "completed", json.dumps(status, indent=1)
    assert len(cloud.sessions()) == 1
    assert [e["stage"] for e in events_of(orch, "merge_complete")] == [1]


def test_an_idle_check_asks_the_remote_once_however_many_stages_run_there(
    cloud: Cloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three remote stages at work and nothing new pushed: a monitor check makes one
    ``git ls-remote`` (for the run's branches) and fetches nothing."""
    import shutil

    from tests.killharness import WRAPPER, subcommand

    monkeypatch.setenv("REMOTE_STANDIN_HOLD", str(cloud.hold))
    orch = _orchestrate(cloud, "--no-monitor")
    started = wait_until(lambda: len(_started(orch)) == 3 and _started(orch), 60, "3 starts")
    for sid in started.values():
        wait_until(lambda s=sid: "pushed" in cloud.session_log(s), 60, "work pushed")
    run_cli(["monitor", orch.name, "--once"], cloud.repo, check=True)  # sees the pushes
    wrap = tmp_path / "loggit"
    wrap.mkdir()
    (wrap / "git").write_text(WRAPPER)
    (wrap / "git").chmod(0o755)
    log = tmp_path / "loggit.log"
    env = {
        "PATH": f"{wrap}{os.pathsep}{os.environ['PATH']}",
        "KILLGIT_REAL": str(shutil.which("git")),
        "KILLGIT_COUNT": str(tmp_path / "loggit.count"),
        "KILLGIT_LOG": str(log),
        "KILLGIT_AT": "",
    }
    run_cli(["monitor", orch.name, "--once"], cloud.repo, env=env, check=True)
    calls = [subcommand(c.split("\0")[:-1]) for c in log.read_text().split("\n") if c]
    assert calls.count("ls-remote") == 1, calls
    assert "fetch" not in calls and "push" not in calls, calls
    print(f"idle monitor check, 3 remote stages: git calls {len(calls)}: {calls}")


def test_a_run_mixing_tmux_and_remote_stages_merges_every_stage_once(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch, tmux_socket: str
) -> None:
    """``--launcher tmux=1,remote=5``: the first stage placed runs locally in tmux (the
    built-in stand-in agent), the others as cloud sessions; the scheduler, the gate
    and the merges do not ask which."""
    import sys

    monkeypatch.setenv("AUTORUN_STANDIN_PYTHON", sys.executable)
    monkeypatch.setenv("AUTORUN_STANDIN_DELAY", "0.05-0.1")
    monkeypatch.setenv("AUTORUN_MONITOR_GAP", "0.3")  # a check reads tmux panes this far apart
    orch = orchestrate_plan(
        cloud.repo, SIX, "--launcher", "tmux=1,remote=5", "--remote-environment", ENV_ID,
        "--verify", "test -f README.md",
    )  # fmt: skip
    status = _finished(orch, timeout=180)
    assert status["status"] == "completed", json.dumps(status, indent=1)
    where = {int(n): s.get("launcher") for n, s in status["stages"].items()}
    assert set(where.values()) == {"tmux", "remote"}, where
    print(f"mixed run: stage launchers {where}")
    remote_stages = sorted(n for n, name in where.items() if name == "remote")
    assert sorted(_started(orch)) == remote_stages and len(cloud.sessions()) == len(remote_stages)
    assert sorted(e["stage"] for e in events_of(orch, "merge_complete")) == [1, 2, 3, 4, 5, 6]
    assert sorted({e["stage"] for e in events_of(orch, "verify_passed")}) == [1, 2, 3, 4, 5, 6]
    for n in remote_stages:
        assert git(cloud.repo, "show", f"main:work/stage-{n}.md").startswith("# ")
    _check_calls(cloud, orch)


def test_a_conflicting_remote_stage_waits_for_the_user_and_merges_on_continue(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMOTE_STANDIN_SHARED", "1")  # every stage writes work/shared.md
    orch = orchestrate_plan(
        cloud.repo, SIX[:2], "--launcher", "remote", "--remote-environment", ENV_ID,
        "--verify", "test -d work",
    )  # fmt: skip

    def conflicted() -> Any:
        stages = read_status(orch)["stages"]
        return next((int(n) for n, s in stages.items() if s.get("merge_state") == "conflict"), 0)

    n = wait_until(conflicted, 90, "one stage's merge to conflict")
    st = read_status(orch)["stages"][str(n)]
    assert st["status"] == "in_progress"
    mw = Path(st["merge_detail"]["merge_worktree"])
    before = len(cloud.calls())
    run_cli(["monitor", orch.name, "--once"], cloud.repo, check=True)  # leaves it alone
    assert read_status(orch)["stages"][str(n)]["merge_state"] == "conflict"
    assert len(cloud.calls()) == before  # no session started, no message sent
    (mw / "work" / "shared.md").write_text("# both stages\n", encoding="utf-8")
    git(mw, "add", "work/shared.md")
    run_cli(["merge", orch.name, str(n), "--continue"], cloud.repo, check=True)
    status = _finished(orch, 60)
    assert status["status"] == "completed", json.dumps(status, indent=1)
    assert sorted(e["stage"] for e in events_of(orch, "merge_complete")) == [1, 2]
    assert git(cloud.repo, "show", "main:work/shared.md") == "# both stages"
    # The run is over, so no check deletes that stage's branch on the remote: clean does.
    cleaned = json.loads(run_cli(["clean", orch.name, "--json"], cloud.repo, check=True).stdout)
    assert [b for b in cleaned["branches_deleted"] if b.startswith("origin/")] or (
        cloud.remote_branches() == []
    )
    assert cloud.remote_branches() == []
