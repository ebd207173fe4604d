"""`autorun merge` against the number of worktrees of the repository (issue 16, goal 3).

Two repositories, one with no other worktrees and one with ``--worktrees`` (256)
detached ones. Each round, in each repository (alternating which goes first, so a
shared machine's load falls on both alike): a one-stage run whose stage is in
progress in its own worktree with one commit, as a launch leaves it, then one
``autorun merge RUN 1`` process, timed, its git calls counted by a ``git`` first on
PATH that logs and execs the real one. The merge carries the checked-out base
forward, removes the stage worktree and deletes its branch. Prints, per
repository, the median wall time of the merge process, its git calls and how many
were ``git worktree list``, the ratio of the medians (goal <= 1.2x), and, for what
still grows with worktrees, the two git commands that read every worktree
(``worktree list``, ``worktree remove``) timed alone in each repository.

    .venv/bin/python benchmarks/merge_worktrees.py [--worktrees 256] [--rounds 9] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autorun_py import worktrees  # noqa: E402
from autorun_py.state import IN_PROGRESS, StatusStore  # noqa: E402

PY = sys.executable
COUNTING_GIT = """#!/bin/sh
printf '%s\\n' "$*" >> "$AUTORUN_BENCH_GITLOG"
exec {real} "$@"
"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def make_repo(root: Path, others: int) -> Path:
    repo = root / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    for i in range(20):
        (repo / f"f{i}.txt").write_text(f"file {i}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    for i in range(others):
        git(repo, "worktree", "add", "-q", "--detach", str(root / "other" / f"w{i}"))
    return repo


def engine(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-I", "-m", "autorun_py", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def one_merge(tmp: Path, repo: Path, w: int, r: int, env: dict[str, str]) -> tuple[float, int, int]:
    """(wall s, git calls, worktree lists) of one `autorun merge` in ``repo``."""
    plan = tmp / "plans" / f"w{w}-r{r}" / f"bench-{w}-{r}.md"
    plan.parent.mkdir(parents=True, exist_ok=True)
    plan.write_text(f"# Bench {w} {r}\n\n## Stage 1: Part\n\n**Dependencies**: None\n\nWork.\n")
    out = engine(
        "orchestrate", str(plan), "--no-launch", "--no-monitor", "--json", cwd=repo, env=env
    )
    if out.returncode != 0:
        raise SystemExit(f"orchestrate failed: {out.stderr[-1500:]}")
    orch = Path(json.loads(out.stdout)["orch_dir"])
    run = orch.name
    wt = Path(env["AUTORUN_HOME"]) / "worktrees" / run / "stage-1"
    branch = f"autorun/{run}/stage-1-part"
    start = git(repo, "rev-parse", "main")
    worktrees.create(repo, wt, branch, start, run=run)
    (wt / f"stage-{w}-{r}.txt").write_text("work\n")
    git(wt, "add", "-A")
    git(wt, "commit", "-q", "-m", "work")
    with StatusStore(orch).transaction() as txn:
        st = txn.state.stage(1)
        st.status, st.worktree, st.branch, st.start_commit = IN_PROGRESS, str(wt), branch, start
    log = tmp / f"git-{w}-{r}.log"
    menv = dict(env, AUTORUN_BENCH_GITLOG=str(log))
    t0 = time.perf_counter()
    res = engine("merge", str(orch), "1", "--json", cwd=repo, env=menv)
    wall = time.perf_counter() - t0
    if res.returncode != 0 or json.loads(res.stdout)["result"] != "merged":
        raise SystemExit(f"merge failed: {res.stdout[-800:]} {res.stderr[-800:]}")
    if wt.exists() or (repo / f"stage-{w}-{r}.txt").read_text() != "work\n":
        raise SystemExit("the stage worktree is still there or the checkout was not carried")
    calls = log.read_text().splitlines()
    return wall, len(calls), sum(c.startswith(f"-C {repo} worktree list") for c in calls)


def _median_call(repo: Path, args: list[str], n: int = 15) -> float:
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worktrees", type=int, default=256, help="other worktrees (default 256)")
    ap.add_argument("--rounds", type=int, default=9, help="merges into each repository")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    opts = ap.parse_args()
    sizes = (0, opts.worktrees)
    with tempfile.TemporaryDirectory(prefix="autorun-merge-wt-") as tmp_s:
        tmp = Path(tmp_s)
        home = tmp / "home"
        home.mkdir()
        (home / ".gitconfig").write_text(
            "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n"
            "[user]\n\tname = bench\n\temail = bench@autorun.invalid\n"
        )
        bindir = tmp / "bin"
        bindir.mkdir()
        (bindir / "git").write_text(COUNTING_GIT.format(real=shutil.which("git") or "/usr/bin/git"))
        (bindir / "git").chmod(0o755)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GIT_", "TMUX", "AUTORUN_", "CLAUDE"))
        }
        env.update(
            HOME=str(home),
            AUTORUN_HOME=str(home / ".autorun"),
            GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
            GIT_CONFIG_NOSYSTEM="1",
            AUTORUN_BENCH_GITLOG=str(tmp / "setup-git.log"),
            PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        os.environ.update(
            {
                k: env[k]
                for k in ("HOME", "AUTORUN_HOME", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM")
            }
        )
        repos = {w: make_repo(tmp / f"w{w}", w) for w in sizes}
        walls: dict[int, list[float]] = {w: [] for w in sizes}
        calls: dict[int, list[int]] = {w: [] for w in sizes}
        lists: dict[int, list[int]] = {w: [] for w in sizes}
        for r in range(opts.rounds):
            for w in sizes if r % 2 == 0 else tuple(reversed(sizes)):
                wall, n_calls, n_lists = one_merge(tmp, repos[w], w, r + 1, env)
                walls[w].append(wall)
                calls[w].append(n_calls)
                lists[w].append(n_lists)
        per_worktree = {
            w: {
                "worktree list": _median_call(repos[w], ["worktree", "list", "--porcelain", "-z"]),
                "rev-parse HEAD": _median_call(repos[w], ["rev-parse", "HEAD"]),
            }
            for w in sizes
        }
    med = {w: statistics.median(walls[w]) for w in sizes}
    ratio = med[opts.worktrees] / med[0]
    rows: dict[str, Any] = {
        "rounds": opts.rounds,
        "merge_wall_median_s": {str(w): round(med[w], 4) for w in sizes},
        "git_calls_per_merge": {str(w): sorted(set(calls[w])) for w in sizes},
        "worktree_lists_per_merge": {str(w): sorted(set(lists[w])) for w in sizes},
        "ratio": round(ratio, 2),
        "goal": "<= 1.2x and <= 15 git calls",
        "ok": ratio <= 1.2 and all(max(calls[w]) <= 15 for w in sizes),
        "git_alone_s": {
            str(w): {k: round(v, 4) for k, v in per_worktree[w].items()} for w in sizes
        },
    }
    if opts.json:
        print(json.dumps(rows, indent=2))
        return 0
    for w in sizes:
        alone = per_worktree[w]
        print(
            f"worktrees={w}: `autorun merge` median {med[w]:.3f} s over {opts.rounds}, "
            f"git calls {rows['git_calls_per_merge'][str(w)]}, worktree list "
            f"{rows['worktree_lists_per_merge'][str(w)]}; alone: `worktree list` "
            f"{alone['worktree list'] * 1000:.1f} ms, `rev-parse HEAD` "
            f"{alone['rev-parse HEAD'] * 1000:.1f} ms"
        )
    print(
        f"merge wall, {opts.worktrees} worktrees / none: {ratio:.2f}x (goal <= 1.2x) "
        + ("ok" if rows["ok"] else "NO")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
