"""The speculative merge queue: gated merges waiting together are verified in
parallel as a chain (base + 1, base + 1 + 2, ...); a red one drops out with exit 5
and the ones behind it are rebuilt without it; the base only moves to verified
commits. Real git, real tmux (quiet agents), real `autorun merge` processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from autorun_py import gate
from autorun_py.config import load_config
from autorun_py.orchestrate import run_orchestrate
from autorun_py.state import StatusStore
from tests.helpers import git, read_events, write_plan

VERIFY = "sleep 1; if grep -rq BAD stages; then echo 'BAD found in stages/'; exit 1; fi"


def test_waiting_merges_are_verified_speculatively_and_a_red_one_drops_out(
    repo: Path, quiet_agent: None, tmp_path: Path
) -> None:
    plan = write_plan(repo.parent, [(n, f"Stage {n}", []) for n in range(1, 5)])
    plan.write_text(
        f'---\nverify: "{VERIFY}"\nverify_parallel: 4\nverify_attempts: 3\n---\n' + plan.read_text()
    )
    base = git(repo, "rev-parse", "main")
    orch = Path(run_orchestrate(plan, repo, monitor=False, config=load_config(os.environ)).orch_dir)
    st = StatusStore(orch).read().stages
    for n in range(1, 5):
        wt = Path(st[n].worktree or "")
        (wt / "stages").mkdir(exist_ok=True)
        (wt / "stages" / f"s{n}.txt").write_text("BAD\n" if n == 2 else f"stage {n}\n")
        git(wt, "add", "-A")
        git(wt, "commit", "-q", "-m", f"stage {n}")
    procs = {
        n: subprocess.Popen(
            [sys.executable, "-m", "autorun_py", "merge", str(orch), str(n), "--json"],
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(1, 5)
    }
    out = {n: p.communicate(timeout=120) for n, p in procs.items()}
    codes = {n: p.returncode for n, p in procs.items()}
    assert codes == {1: 0, 2: 5, 3: 0, 4: 0}, out
    red = json.loads(out[2][0])
    assert "BAD found" in red["verify"]["tail"] and red["verify"]["attempt"] == 1
    final = StatusStore(orch).read().stages
    assert [final[n].status for n in range(1, 5)] == [
        "completed",
        "in_progress",
        "completed",
        "completed",
    ]
    # every commit the base moved to is one that passed, as it is
    events = read_events(orch)
    passed = {e["candidate"] for e in events if e["type"] == "verify_passed"}
    chain = git(repo, "rev-list", "--first-parent", f"{base}..main").split()
    assert len(chain) == 3 and set(chain) <= passed
    for c in chain:
        v = gate.run_verify(
            repo,
            c,
            VERIFY,
            timeout=30,
            worktree=gate.verify_worktree_path(tmp_path / "check", "c", c),
            log=tmp_path / f"{c}.log",
        )
        assert v.passed, v.tail
    assert not (repo / "stages" / "s2.txt").exists()
    # several candidates were verified at the same time (the queue, not one by one)
    running, overlap = 0, 0
    for e in events:
        if e["type"] == "verify_started":
            running += 1
            overlap = max(overlap, running)
        elif e["type"] in ("verify_passed", "verify_failed", "verify_cancelled"):
            running -= 1
    assert overlap >= 2, [e["type"] for e in events]
    stderr = "".join(err for _, err in out.values())
    assert "verifying" in stderr and "speculatively" in stderr
    queue_files = list((Path(str(orch)).parent.parent / "locks").glob("merge-queue-*.json"))
    assert queue_files and all(
        json.loads(q.read_text())["entries"] == [] for q in queue_files
    )  # every entry taken out again
