"""A chain to the merge that needs no judgment is merged by the engine itself
(autorun_py/chain.py): no merge window, no model session; anything that does need
one (a conflict, a gate, a refusal) opens the merge window as before."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from autorun_py.config import load_config
from autorun_py.orchestrate import run_orchestrate
from autorun_py.state import StatusStore
from autorun_py.tmux import Tmux
from tests.helpers import git, read_events, run_cli, write_plan

CHAIN = ["chain", "/autorun:merge", "--window", "merge", "--close-caller", "--json"]


def _commit_in(wt: Path, rel: str, text: str, msg: str) -> None:
    (wt / rel).parent.mkdir(parents=True, exist_ok=True)
    (wt / rel).write_text(text)
    git(wt, "add", "-A")
    git(wt, "commit", "-q", "-m", msg)


def _env(orch: Path, n: int) -> dict[str, str]:
    return {"AUTORUN_ORCH_DIR": str(orch), "AUTORUN_STAGE": str(n), "CLAUDECODE": ""}


def _windows(session: str) -> list[str]:
    argv = ["list-windows", "-t", f"={session}", "-F", "#{window_name}"]
    return Tmux.from_env().out(argv).split()


def _run(repo: Path, stages: list[tuple[int, str, list[int]]], verify: str = "") -> Path:
    plan = write_plan(repo.parent, stages)
    cfg = load_config(os.environ)
    out = run_orchestrate(plan, repo, monitor=False, verify=verify or None, config=cfg)
    return Path(out.orch_dir)


def test_a_clean_chain_to_the_merge_is_merged_in_place(repo: Path, quiet_agent: None) -> None:
    orch = _run(repo, [(1, "Alpha", []), (2, "Beta", [1])])
    st = StatusStore(orch).read().stages[1]
    wt, session = Path(st.worktree or ""), st.session or ""
    _commit_in(wt, "alpha.txt", "alpha\n", "alpha")
    # From Claude Code's shell (CLAUDECODE=1), as a model's Bash call runs it.
    proc = run_cli(CHAIN, wt, env=dict(_env(orch, 1), CLAUDECODE="1"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert out["window"] == "" and out["merge"]["result"] == "merged"
    assert out["merge"]["launched"] == [2]
    assert "merge" not in _windows(session)  # no model session for the merge
    after = StatusStore(orch).read()
    one = after.stages[1]
    assert one.status == "completed" and one.merge_commit == git(repo, "rev-parse", "main")
    assert one.phase("implement").completed_at and one.phase("merge").completed_at
    assert "chained_to" not in one.extra
    assert after.stages[2].status == "in_progress"
    assert (repo / "alpha.txt").read_text() == "alpha\n"  # the checkout carried forward
    assert [e["type"] for e in read_events(orch)].count("merge_complete") == 1
    # The caller's shell is in the worktree: it stays until the session is gone.
    assert wt.is_dir()
    # The same hand-off again (a model repeating its step): nothing more happens.
    again = run_cli(CHAIN[:-1], wt, env=dict(_env(orch, 1), CLAUDECODE="1"))
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout + again.stderr
    assert [e["type"] for e in read_events(orch)].count("merge_complete") == 1
    # Its session is ended by the tmux server (no process waits for it); the
    # worktree is left marked for the run's next merge (autorun_py.cleanup).
    assert one.extra["cleanup_tip"] == git(repo, "rev-parse", "main^2")
    deadline = time.monotonic() + 20
    while Tmux.from_env().has_session(session) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Tmux.from_env().has_session(session) and wt.is_dir()
    # Outside Claude Code's shell the worktree goes at once; the text is the merge's;
    # and this merge sweeps stage 1's worktree and branch, whose session is gone.
    wt2 = Path(after.stages[2].worktree or "")
    _commit_in(wt2, "beta.txt", "beta\n", "beta")
    text = run_cli(CHAIN[:-1], wt2, env=_env(orch, 2))
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("merged by the engine") and "merged into main" in text.stdout
    final = StatusStore(orch).read()
    assert not wt2.exists() and final.status == "completed"
    assert not wt.exists() and "cleanup_tip" not in final.stages[1].extra
    assert git(repo, "branch", "--list", "autorun/*") == ""


def test_a_conflict_opens_the_merge_window_which_shows_it_once(
    repo: Path, quiet_agent: None
) -> None:
    (repo / "shared.txt").write_text("line 1\nline 2\nline 3\n")
    git(repo, "add", "shared.txt")
    git(repo, "commit", "-q", "-m", "shared file")
    orch = _run(repo, [(1, "Alpha", []), (2, "Beta", [])])
    st = StatusStore(orch).read().stages
    _commit_in(Path(st[1].worktree or ""), "shared.txt", "line 1\nALPHA\nline 3\n", "alpha")
    wt2 = Path(st[2].worktree or "")
    _commit_in(wt2, "shared.txt", "line 1\nBETA\nline 3\n", "beta")
    assert run_cli(["merge", str(orch), "1"], repo).returncode == 0
    base = git(repo, "rev-parse", "main")
    proc = run_cli(CHAIN, wt2, env=_env(orch, 2))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert out["window"] == "merge" and out["merge"] is None
    assert "merge" in _windows(st[2].session or "")
    two = StatusStore(orch).read().stages[2]
    assert two.merge_state == "conflict" and two.count("conflicts") == 1
    assert git(repo, "rev-parse", "main") == base
    # The window's `autorun merge` shows the waiting conflict again: not a new one.
    shown = run_cli(["merge", str(orch), "2", "--json"], wt2)
    assert shown.returncode == 3, shown.stdout + shown.stderr
    data = json.loads(shown.stdout)
    assert [c["path"] for c in data["conflicts"]] == ["shared.txt"]
    assert {t["stage"] for t in data["conflicts"][0]["touched_by"]} == {1, 2}
    assert "--continue" in run_cli(["merge", str(orch), "2"], wt2).stdout
    assert StatusStore(orch).read().stages[2].count("conflicts") == 1
    assert [e["type"] for e in read_events(orch)].count("merge_conflict") == 1
    # One hand-off, one `chained` event (the in-place attempt's).
    assert [e.get("stage") for e in read_events(orch) if e["type"] == "chained"] == [2]


def test_a_gated_run_merges_in_the_window(repo: Path, quiet_agent: None) -> None:
    orch = _run(repo, [(1, "Alpha", [])], verify="true")
    st = StatusStore(orch).read().stages[1]
    wt = Path(st.worktree or "")
    _commit_in(wt, "alpha.txt", "alpha\n", "alpha")
    proc = run_cli(CHAIN, wt, env=_env(orch, 1))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["window"] == "merge"
    one = StatusStore(orch).read().stages[1]
    assert one.status == "in_progress" and one.phase("implement").completed_at
    assert git(repo, "rev-parse", "main") != one.merge_commit


def test_uncommitted_work_is_left_to_the_merge_window(repo: Path, quiet_agent: None) -> None:
    orch = _run(repo, [(1, "Alpha", [])])
    wt = Path(StatusStore(orch).read().stages[1].worktree or "")
    _commit_in(wt, "alpha.txt", "alpha\n", "alpha")
    (wt / "alpha.txt").write_text("more\n")  # not committed
    proc = run_cli(CHAIN, wt, env=_env(orch, 1))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["window"] == "merge"
    assert StatusStore(orch).read().stages[1].status == "in_progress"
    assert [e["type"] for e in read_events(orch)].count("chained") == 1


def test_the_merge_counts_again_unless_the_chain_saw_this_very_tip(
    repo: Path, quiet_agent: None
) -> None:
    """The chain's `git log` count stands in for the merge's own only for the same
    start and tip (issue 16): a count of another tip is not believed."""
    import pytest

    from autorun_py.errors import AutorunError
    from autorun_py.merge import merge

    orch = _run(repo, [(1, "Alpha", [])])
    st = StatusStore(orch).read().stages[1]
    start = st.start_commit or ""
    cfg = load_config(os.environ)
    # no commits yet: a count of 1 seen at another tip is counted again (0: refused)
    with pytest.raises(AutorunError, match="no commits"):
        merge(orch, 1, config=cfg, seen_ahead=(start, "0" * 40, 1))
    _commit_in(Path(st.worktree or ""), "alpha.txt", "alpha\n", "alpha")
    tip = git(repo, "rev-parse", st.branch or "")
    # the very start and tip: the count is taken as it is (here a wrong one, to show it)
    with pytest.raises(AutorunError, match="no commits"):
        merge(orch, 1, config=cfg, seen_ahead=(start, tip, 0))
    # the same tip from another start is counted again: merged
    rep = merge(orch, 1, config=cfg, seen_ahead=("1" * 40, tip, 0))
    assert rep.result == "merged"


def test_the_last_merge_leaves_every_worktree_to_one_killer(
    repo: Path, quiet_agent: None
) -> None:
    """Both stages merged from their own shells (CLAUDECODE=1) one right after the
    other: the first is marked (its session still ends when the second merges), the
    second completes the run, and one detached killer removes both once their
    sessions are gone."""
    orch = _run(repo, [(1, "Alpha", []), (2, "Beta", [])])
    st = StatusStore(orch).read().stages
    wts = {n: Path(st[n].worktree or "") for n in (1, 2)}
    for n, wt in wts.items():
        _commit_in(wt, f"s{n}.txt", f"{n}\n", f"stage {n}")
    for n, wt in wts.items():
        proc = run_cli(CHAIN, wt, env=dict(_env(orch, n), CLAUDECODE="1"))
        assert proc.returncode == 0 and json.loads(proc.stdout)["merge"]["result"] == "merged"
    assert wts[2].is_dir()  # its shell is still in it
    # Stage 1 is marked, unless its session had ended before stage 2 merged (a slow
    # machine): then stage 2's merge removed it.
    marked = "cleanup_tip" in StatusStore(orch).read().stages[1].extra
    assert marked == wts[1].is_dir()
    deadline = time.monotonic() + 30
    while any(wt.exists() for wt in wts.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    final = StatusStore(orch).read()
    assert final.status == "completed"
    assert not any(wt.exists() for wt in wts.values())
    assert not any("cleanup_tip" in s.extra for s in final.stages.values())
    assert git(repo, "branch", "--list", "autorun/*") == ""
    assert not any(Tmux.from_env().has_session(s.session or "") for s in final.stages.values())


def test_looking_for_marked_stages_converts_none(repo: Path) -> None:
    """Every merge asks which merged stages wait for their clean-up: in a large run
    (read lazily), a stage still pending stays the text it was read as."""
    from autorun_py import cleanup
    from autorun_py.state.codec import read_state

    plan = write_plan(repo.parent, [(n, f"Part {n}", []) for n in range(1, 151)])
    cfg = load_config(os.environ)
    orch = Path(run_orchestrate(plan, repo, launch=False, monitor=False, config=cfg).orch_dir)
    with StatusStore(orch).transaction() as txn:
        for n in (1, 2):
            txn.state.stage(n).status = "completed"
        cleanup.mark(txn.state.stage(2), "abc")
    text = (orch / "status.json").read_text()
    assert len(text) > 64 << 10  # the lazy reader's size
    state = read_state(text, orch / "status.json", lazy=True)
    assert state.stages.text_of(3) is not None  # (the premise)
    assert [st.number for st in cleanup.pending(state)] == [2]
    assert all(state.stages.text_of(n) is not None for n in range(3, 151))
