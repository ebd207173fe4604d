"""CPU of one ``autorun merge`` against an earlier commit, measured in one run (issue 16).

Two trees side by side, their merges interleaved (a busy machine slows both
alike): this checkout (or ``--this``, a commit) and ``--base`` (a commit,
exported with ``git archive``). Each round, for each tree, a fresh run (as
``benchmarks/startup.py`` sets one up: stage 1 in progress in its worktree,
one commit on its branch; stage 2 in progress elsewhere, so the merge is the
common one: no gate, no conflict, nothing to launch, the run not finished), then
``python -m autorun_py merge ORCH 1 --json`` from the stage's worktree. Figures,
medians over ``--rounds``: the merge process's CPU-seconds (its own and the git
calls it waited for: ``getrusage`` of children around the call), its wall time,
the status writes it made (``rename`` calls onto
``status.json``, one per status transaction that changed it, seen by
``strace`` when it is installed; from the warm-up round) and the
modules it imports (``-X importtime``, which load does not change).

    .venv/bin/python benchmarks/merge_cpu.py [--base REV] [--this REV] [--rounds 11]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from startup import PY, ROOT, export, run, stage_setup  # noqa: E402


def fresh(tmp: Path, tree: Path) -> tuple[dict[str, str], Path, str]:
    env, wt = stage_setup(tmp, tree)
    (wt / "work.txt").write_text("stage work\n")
    run(["git", "-C", str(wt), "add", "-A"], env)
    run(["git", "-C", str(wt), "commit", "-q", "-m", "stage 1 work"], env)
    orch = env["AUTORUN_ORCH_DIR"]
    status = Path(orch) / "status.json"
    data = json.loads(status.read_text())
    data["stages"]["2"]["status"] = "in_progress"  # running elsewhere: nothing to launch
    status.write_text(json.dumps(data, indent=2))
    return env, wt, orch


def merge_argv(orch: str) -> list[str]:
    return [PY, "-m", "autorun_py", "merge", orch, "1", "--json"]


def measured(env: dict[str, str], wt: Path, orch: str) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = run(merge_argv(orch), env, wt)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if json.loads(out)["result"] != "merged":
        raise SystemExit(f"merge did not merge: {out[:500]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def renames(env: dict[str, str], wt: Path, orch: str, tmp: Path) -> int:
    """``rename`` calls onto ``status.json`` (one per status transaction)."""
    log = tmp / "strace.log"
    subprocess.run(
        ["strace", "-f", "-e", "trace=rename,renameat,renameat2", "-o", str(log)]
        + merge_argv(orch),
        env=env,
        cwd=wt,
        capture_output=True,
        check=True,
    )
    return sum(1 for line in log.read_text().splitlines() if 'status.json")' in line)


def modules(env: dict[str, str], wt: Path, orch: str) -> int:
    proc = subprocess.run(
        [PY, "-X", "importtime", *merge_argv(orch)[1:]],
        env=env,
        cwd=wt,
        capture_output=True,
        text=True,
        check=True,
    )
    return sum(1 for line in proc.stderr.splitlines() if line.startswith("import time:"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="3510902", help="the commit to compare with")
    ap.add_argument("--this", default=None, help="a commit instead of this checkout")
    ap.add_argument("--rounds", type=int, default=11, help="merges per tree (median)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="autorun-merge-cpu-") as td:
        tmp = Path(td)
        trees = {
            f"base {args.base}": export(args.base, tmp / "base-tree"),
            f"this {args.this or 'checkout'}": (
                export(args.this, tmp / "this-tree") if args.this else ROOT
            ),
        }
        for tree in trees.values():
            subprocess.run([PY, "-m", "compileall", "-q", str(tree / "autorun_py")], check=False)
        res: dict[str, dict[str, list[float]]] = {t: {"cpu": [], "wall": []} for t in trees}
        counts: dict[str, tuple[int, int]] = {}
        n = 0
        for r in range(args.rounds + 1):
            for label, tree in trees.items():  # interleaved: load hits both alike
                n += 1
                env, wt, orch = fresh(tmp / f"r{n}", tree)
                if r == 0:  # a warm-up round: counts, not timed
                    env2, wt2, orch2 = fresh(tmp / f"r{n}-m", tree)
                    m = modules(env2, wt2, orch2)
                    k = renames(env, wt, orch, tmp) if shutil.which("strace") else -1
                    counts[label] = (m, k)
                    continue
                cpu, wall = measured(env, wt, orch)
                res[label]["cpu"].append(cpu)
                res[label]["wall"].append(wall)
    print(f"{'tree':22} {'merge CPU s':>12} {'wall s':>8} {'modules':>8} {'status writes':>14}")
    meds = {}
    for label in trees:
        cpu = statistics.median(res[label]["cpu"])
        wall = statistics.median(res[label]["wall"])
        meds[label] = cpu
        m, k = counts[label]
        print(f"{label:22} {cpu:12.4f} {wall:8.4f} {m:8d} {k if k >= 0 else 'n/a':>14}")
    a, b = list(meds.values())
    print(f"merge CPU this / base = {b / a:.3f} ({args.rounds} rounds, interleaved)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
