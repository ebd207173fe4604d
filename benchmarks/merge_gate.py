"""The merge gate's cost and the speculative queue's gain, measured in one run.

1. Throughput: ``--stages`` stages (default 8) finish together; each one's
   ``autorun merge`` is started at the same moment, with a verify command that
   takes ``--verify-seconds`` (default 5: ``sleep 5``). Serial: one candidate
   verified at a time (``verify_parallel: 1``, what a plain merge lock gives);
   speculative: the queue verifies the chain base+1, base+1+2, ... in parallel
   (``verify_parallel: N``). Makespan = first merge started to last one done;
   every merge must land. Prints serial / speculative.
2. Overhead on a clean merge: ``--merges`` stages merged one after the other,
   gated with ``verify: true`` vs not gated; prints gated / ungated per merge.

Real git, real ``autorun merge`` processes, stage worktrees launched on a
private tmux server with an agent that does nothing (``true``); everything
lives in a temp dir.

    .venv/bin/python benchmarks/merge_gate.py [--stages 8] [--verify-seconds 5] [--merges 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from autorun_py.config import load_config

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def make_run(tmp: Path, name: str, stages: int, front: Optional[str]) -> tuple[Path, Path]:
    """A repository and an orchestration of ``stages`` independent stages, each
    with one commit in its worktree, ready to merge."""
    from autorun_py.orchestrate import run_orchestrate
    from autorun_py.state import StatusStore

    repo = tmp / name
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# bench\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    parts = [f"---\n{front}\n---\n" if front else "", f"# Plan {name}\n"]
    for n in range(1, stages + 1):
        parts.append(f"## Stage {n}: Part {n}\n\n**Dependencies**: None\n\nDo part {n}.\n")
    plan = tmp / f"{name}-plan.md"
    plan.write_text("\n".join(parts))
    orch = Path(run_orchestrate(plan, repo, monitor=False, config=load_config(os.environ)).orch_dir)
    st = StatusStore(orch).read().stages
    for n in range(1, stages + 1):
        wt = Path(st[n].worktree or "")
        (wt / f"part-{n}.txt").write_text(f"part {n}\n")
        git(wt, "add", "-A")
        git(wt, "commit", "-q", "-m", f"part {n}")
    return repo, orch


def merge_argv(orch: Path, n: int) -> list[str]:
    return [sys.executable, "-m", "autorun_py", "merge", str(orch), str(n)]


def makespan(tmp: Path, name: str, stages: int, verify: str, parallel: int) -> float:
    front = f'verify: "{verify}"\nverify_timeout: 600\nverify_parallel: {parallel}'
    repo, orch = make_run(tmp, name, stages, front)
    base = git(repo, "rev-parse", "main")
    t0 = time.monotonic()
    procs = [
        subprocess.Popen(
            merge_argv(orch, n), cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for n in range(1, stages + 1)
    ]
    outs = [p.communicate(timeout=1800)[0] for p in procs]
    took = time.monotonic() - t0
    bad = [(i + 1, p.returncode) for i, p in enumerate(procs) if p.returncode != 0]
    if bad:
        raise SystemExit(f"{name}: merges failed {bad}:\n" + outs[bad[0][0] - 1].decode())
    merged = git(repo, "rev-list", "--first-parent", "--count", f"{base}..main")
    if int(merged) != stages:
        raise SystemExit(f"{name}: {merged} merges on main, expected {stages}")
    return took


def per_merge(tmp: Path, name: str, merges: int, front: Optional[str]) -> list[float]:
    repo, orch = make_run(tmp, name, merges, front)
    times = []
    for n in range(1, merges + 1):
        t0 = time.monotonic()
        subprocess.run(merge_argv(orch, n), cwd=repo, check=True, capture_output=True)
        times.append(time.monotonic() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stages", type=int, default=8)
    ap.add_argument("--verify-seconds", type=float, default=5.0)
    ap.add_argument("--merges", type=int, default=5)
    opts = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="autorun-bench-gate-") as tmp_s:
        tmp = Path(tmp_s)
        home = tmp / "home"
        home.mkdir()
        (home / ".gitconfig").write_text("[commit]\n\tgpgsign = false\n")
        socket = f"autorun-bench-gate-{os.getpid()}"
        os.environ.update(
            HOME=str(home),
            AUTORUN_HOME=str(home / ".autorun"),
            AUTORUN_TMUX_SOCKET=socket,
            AUTORUN_CLAUDE="true",
            GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
            GIT_CONFIG_NOSYSTEM="1",
            GIT_AUTHOR_NAME="bench",
            GIT_AUTHOR_EMAIL="bench@autorun.invalid",
            GIT_COMMITTER_NAME="bench",
            GIT_COMMITTER_EMAIL="bench@autorun.invalid",
        )
        for var in ("TMUX", "TMUX_PANE", "CLAUDECODE", "AUTORUN_AGENT_ARGS"):
            os.environ.pop(var, None)
        try:
            verify = f"sleep {opts.verify_seconds:g}"
            print(
                f"{opts.stages} stages finish together; verify command `{verify}`; "
                f"{os.cpu_count()} CPU(s)"
            )
            serial = makespan(tmp, "serial", opts.stages, verify, 1)
            print(f"  serial (verify_parallel 1):       makespan {serial:6.1f} s")
            spec = makespan(tmp, "speculative", opts.stages, verify, opts.stages)
            print(f"  speculative (verify_parallel {opts.stages}): makespan {spec:6.1f} s")
            print(f"  serial / speculative = {serial / spec:.2f}")
            print(f"\nclean merges one after the other ({opts.merges} each):")
            ungated = per_merge(tmp, "ungated", opts.merges, None)
            gated = per_merge(tmp, "gated", opts.merges, "verify: true")
            u, g_ = statistics.median(ungated), statistics.median(gated)
            print(f"  ungated: median {u * 1000:.0f} ms per `autorun merge`")
            print(f"  gated (verify: true): median {g_ * 1000:.0f} ms per `autorun merge`")
            print(f"  gated / ungated = {g_ / u:.2f}")
        finally:
            subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)


if __name__ == "__main__":
    main()
